"""A second web process for the tests: ``start TASK_ID`` or ``cancel TASK_ID``.

``start`` starts a job that runs until cancelled, prints ``started``, waits until
the task is final in the database and prints its state. ``cancel`` prints what
``cancel_migration`` returned. Run with ``python -m`` and Django settings that
point at the test database.
"""

from __future__ import annotations

import sys
import time

import django


def start(task_id: str) -> None:
    from django_integration import get_status, start_migration

    start_migration(task_id, "tests.django_integration.jobs:sleep_forever")
    print("started", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = get_status(task_id)
        if status.is_final:
            print(status.state, flush=True)
            return
        time.sleep(0.05)
    print("timeout", flush=True)


def cancel(task_id: str) -> None:
    from django_integration import cancel_migration

    print(cancel_migration(task_id), flush=True)


def main() -> None:
    django.setup()
    command, task_id = sys.argv[1:3]
    {"start": start, "cancel": cancel}[command](task_id)


if __name__ == "__main__":
    main()
