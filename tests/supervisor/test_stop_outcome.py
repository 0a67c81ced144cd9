"""The outcome of a task asked to stop: the request wins over the job's report."""

from __future__ import annotations

import pytest

from supervisor import TaskState

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    "target",
    [
        "tests.supervisor.stop_jobs:catch_cancel_and_return",
        "tests.supervisor.stop_jobs:exit_zero_on_sigterm",
    ],
)
def test_job_that_swallows_cancel_ends_cancelled(
    make_supervisor, collector, task_id, target
):
    supervisor = make_supervisor(sinks={"collector": collector}, grace_period=5.0)
    name = task_id("swallow")
    supervisor.start(name, target)
    collector.wait_for(lambda: "waiting" in " ".join(collector.texts(name)))

    assert supervisor.cancel(name) is True
    status = supervisor.wait(name, timeout=30)

    assert status.state is TaskState.CANCELLED
    assert status.progress == 40
    assert collector.of(name)[-1]["state"] == "cancelled"


def test_report_before_cancel_keeps_success(make_supervisor, collector, task_id):
    supervisor = make_supervisor(sinks={"collector": collector})
    name = task_id("done")
    supervisor.start(name, "tests.supervisor.stop_jobs:return_at_once")
    status = supervisor.wait(name, timeout=30)

    assert supervisor.cancel(name) is False
    assert status.state is TaskState.SUCCEEDED
    assert status.progress == 100


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), 31 * 24 * 3600, "5"])
def test_start_rejects_timeout_out_of_range(make_supervisor, task_id, timeout):
    supervisor = make_supervisor()
    with pytest.raises(ValueError, match="invalid timeout"):
        supervisor.start(
            task_id("t"), "tests.supervisor.stop_jobs:return_at_once", timeout=timeout
        )
    assert supervisor.active_tasks() == []


def test_start_accepts_longest_timeout(make_supervisor, task_id):
    supervisor = make_supervisor()
    name = task_id("long")
    supervisor.start(
        name, "tests.supervisor.stop_jobs:return_at_once", timeout=30 * 24 * 3600
    )
    assert supervisor.wait(name, timeout=30).state is TaskState.SUCCEEDED
