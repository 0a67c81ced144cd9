"""Set up the fault-test database and call the Python API, in a process of its own.

The pytest process runs on the test suite's own settings, so whatever needs the
fault-test settings (the loopback PostgreSQL and Redis) runs here instead:

    python -m tests.faults.django_tool setup
        migrate, create the users, print {username: session key} as JSON
    python -m tests.faults.django_tool call FUNCTION JSON_KWARGS
        call django_integration.FUNCTION(**kwargs) and print its result or the
        exception it raised as JSON
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

#: Users of the fault tests and the permissions they hold: ``owner`` starts
#: tasks, ``other`` may do nothing with them, ``watcher`` may watch any task but
#: cancel none.
USERS = {"owner": [], "other": [], "watcher": ["watch_any_migration"]}


def setup() -> dict[str, str]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", interactive=False, verbosity=0)
    user_model = get_user_model()
    sessions = {}
    for name, codenames in USERS.items():
        user, _ = user_model.objects.get_or_create(username=name)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client = Client()
        client.force_login(user)
        sessions[name] = client.cookies["sessionid"].value
    return sessions


def call(function: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    import django_integration

    if "owner" in kwargs:
        from django.contrib.auth import get_user_model

        kwargs["owner"] = get_user_model().objects.get(username=kwargs["owner"])
    try:
        result = getattr(django_integration, function)(**kwargs)
    except Exception as exc:
        return {
            "raised": type(exc).__name__,
            "bases": [cls.__name__ for cls in type(exc).__mro__],
            "message": str(exc),
        }
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    return {"returned": json.loads(json.dumps(result, default=str))}


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.faults.settings")
    import django

    django.setup()
    if argv[0] == "setup":
        output: Any = setup()
    elif argv[0] == "call":
        output = call(argv[1], json.loads(argv[2]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}: use 'setup' or 'call'")
    print(json.dumps(output))


if __name__ == "__main__":
    main(sys.argv[1:])
