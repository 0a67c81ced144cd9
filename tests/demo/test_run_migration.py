"""The run_migration management command: output, exit codes and Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import CommandError, call_command

from tests.demo.conftest import REPOSITORY

CONVERT = "demo.tableau.job:convert_workbook"


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("run_migration", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def test_sample_succeeds(runtime, unique_id, sample_path, tmp_path):
    code, output = run(
        "--task-id",
        unique_id,
        "--target",
        CONVERT,
        "--",
        str(sample_path),
        str(tmp_path / "out"),
    )
    assert code == 0
    assert "Table 'Orders': 7 columns" in output
    assert "warning calculated field 'Running Sales'" in output
    assert output.rstrip().endswith(f"Task {unique_id} succeeded at 100%")
    definition = tmp_path / "out" / "small-sales.SemanticModel" / "definition"
    assert (definition / "model.tmdl").is_file()


def test_bad_file_fails(runtime, unique_id, tmp_path):
    bad = tmp_path / "notes.twb"
    bad.write_text("not a workbook")
    code, output = run(
        "--task-id",
        unique_id,
        "--target",
        CONVERT,
        "--json",
        "--",
        str(bad),
        str(tmp_path / "out"),
    )
    assert code == 1
    status = json.loads(output)
    assert status["state"] == "failed"
    assert status["error"]["message"] == (
        "'notes.twb' is not well-formed XML: syntax error: line 1, column 0"
    )


def test_invalid_task_id_is_bad_input(runtime):
    with pytest.raises(CommandError) as excinfo:
        run("--task-id", "no spaces allowed", "--", "a", "b")
    assert excinfo.value.returncode == 2
    assert "'no spaces allowed'" in str(excinfo.value)


def test_invalid_target_is_bad_input(runtime, unique_id):
    with pytest.raises(CommandError) as excinfo:
        run("--task-id", unique_id, "--target", "no_such_module:job")
    assert excinfo.value.returncode == 2


def test_timeout_exit_code(runtime, unique_id):
    code, output = run(
        "--task-id",
        unique_id,
        "--target",
        "tests.demo.jobs:wait_for_cancel",
        "--timeout",
        "1",
        "--",
        "30",
    )
    assert code == 4
    assert f"Task {unique_id} timed_out" in output


@pytest.mark.slow
def test_ctrl_c_cancels(tmp_path):
    """A real terminal run: SIGINT cancels the task and the exit code is 3."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        "MIGRATION_DEMO_VAR": str(tmp_path / "var"),
        "PYTHONPATH": str(REPOSITORY),
    }
    manage = [sys.executable, str(REPOSITORY / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=120)
    process = subprocess.Popen(
        [
            *manage,
            "run_migration",
            "--target",
            "tests.demo.jobs:wait_for_cancel",
            "--",
            "60",
        ],
        env=env,
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "waiting" in line:
                break
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == 3
    assert "Cancelling task" in rest
    assert "cancelled" in rest.splitlines()[-1]
