"""Bad input at every entry point gets a clear error and changes nothing else.

One web process serves the whole module, with one task left running throughout
(``running``) and one that has ended (``ended``). Every test compares the
database before and after its bad requests: the task rows, the stored messages
of every task but the running one, and the running task still running.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.clients import (
    Stream,
    close_code_of,
    http_client,
    open_stream,
    read_stream,
)
from tests.faults.harness import Database, WebFactory, fault_env, run_django_tool
from tests.faults.jobs import touch
from tests.faults.servers import DaphneServer, RedisServer, wait_for

pytestmark = pytest.mark.timeout(120)

TARGET = "tests.faults.jobs:log_until_stopped"
INVALID_IDS = ["has space", "slash/inside", "x" * 65, "dot.dot", "ünïcode"]
UNKNOWN_ID = "no-such-task-ever"
MAX_UPLOAD_BYTES = 256 * 1024


@dataclass
class Scene:
    server: DaphneServer
    database: Database
    sessions: dict[str, str]
    redis_url: str
    workdir: Path
    running: str
    ended: str

    def snapshot(self) -> dict[str, Any]:
        """Return what no bad input may change."""
        tasks = self.database.query(
            "SELECT task_id, state, owner_id, target, arguments, exit_code, "
            "cancel_requested_at, cancelled_by_id, finished_at "
            "FROM django_integration_migrationtask ORDER BY task_id"
        )
        logs = self.database.query(
            "SELECT task_id, count(*) AS n FROM django_integration_migrationlog "
            "WHERE task_id <> %s GROUP BY task_id ORDER BY task_id",
            self.running,
        )
        uploads = self.workdir / "var" / "uploads"
        stored_files = sorted(
            str(path.relative_to(uploads)) for path in uploads.rglob("*")
        )
        return {"tasks": tasks, "logs": logs, "uploads": stored_files}

    def http(self, user: str | None = "owner"):
        session = None if user is None else self.sessions[user]
        return http_client(self.server.base_url, session)


@pytest.fixture(scope="module")
def scene(
    redis_binary: str,
    fault_workdir: Path,
    postgres,
    database_url: str,
    sessions: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scene]:
    postgres.ensure_running()
    stop_file = tmp_path_factory.mktemp("bad-input") / "stop"
    ended_stop = stop_file.with_name("ended-stop")
    touch(ended_stop)
    with RedisServer(fault_workdir, redis_binary) as redis:
        factory = WebFactory(fault_workdir, database_url, redis)
        try:
            server = factory.start(TARGET=TARGET, MAX_UPLOAD_BYTES=MAX_UPLOAD_BYTES)
            scene = Scene(
                server,
                Database(database_url),
                sessions,
                redis.url,
                fault_workdir,
                "",
                "",
            )
            scene.running = _start(scene, {"stop_file": str(stop_file)})
            scene.ended = _start(scene, {"stop_file": str(ended_stop)})
            wait_for(
                lambda: _state(scene, scene.ended) == "succeeded", 30, "ended task"
            )
            wait_for(
                lambda: _state(scene, scene.running) == "running", 30, "running task"
            )
            yield scene
        finally:
            touch(stop_file)
            factory.stop_all()


@pytest.fixture
def unchanged(scene: Scene) -> Iterator[None]:
    """Fail the test if the database or the running task changed under it."""
    before = scene.snapshot()
    yield
    assert scene.snapshot() == before
    assert _state(scene, scene.running) == "running"


def _start(scene: Scene, kwargs: dict[str, Any]) -> str:
    task_id = f"bad-input-{uuid.uuid4().hex[:12]}"
    with scene.http() as client:
        response = client.post(
            "/migrations/start/", json={"task_id": task_id, "kwargs": kwargs}
        )
    assert response.status_code == 202, response.text
    return task_id


def _state(scene: Scene, task_id: str) -> str | None:
    task = scene.database.task(task_id)
    return None if task is None else task["state"]


def _error(response) -> str:
    """Return the error text of a JSON error response, failing on any other body."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"].strip(), body
    return body["error"]


# HTTP views.


@pytest.mark.parametrize("task_id", INVALID_IDS)
@pytest.mark.parametrize("view", ["status", "cancel"])
def test_views_reject_invalid_task_id(scene, unchanged, view, task_id):
    method = "get" if view == "status" else "post"
    with scene.http() as client:
        response = getattr(client, method)(f"/migrations/tasks/{task_id}/{view}/")
    # "slash/inside" does not match the route at all.
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert repr(task_id) in _error(response)


@pytest.mark.parametrize("view", ["status", "cancel"])
def test_views_reject_unknown_task_id(scene, unchanged, view):
    method = "get" if view == "status" else "post"
    with scene.http() as client:
        response = getattr(client, method)(f"/migrations/tasks/{UNKNOWN_ID}/{view}/")
    assert response.status_code == 404
    assert repr(UNKNOWN_ID) in _error(response)


@pytest.mark.parametrize("task_id", ["has space", "x" * 65, 12, ["list"]])
def test_start_rejects_invalid_task_id(scene, unchanged, task_id):
    with scene.http() as client:
        response = client.post("/migrations/start/", json={"task_id": task_id})
    assert response.status_code == 400
    assert "task_id" in _error(response)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"kwargs": []}', b'{"args": {}}', b'{"bogus": 1}'],
)
def test_start_rejects_malformed_body(scene, unchanged, body):
    with scene.http() as client:
        response = client.post(
            "/migrations/start/",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 400
    _error(response)


def test_start_rejects_running_task_id(scene, unchanged):
    with scene.http() as client:
        response = client.post("/migrations/start/", json={"task_id": scene.running})
    assert response.status_code == 409
    assert repr(scene.running) in _error(response)


def test_start_rejects_ended_task_id(scene, unchanged):
    with scene.http() as client:
        response = client.post("/migrations/start/", json={"task_id": scene.ended})
    assert response.status_code == 409
    assert repr(scene.ended) in _error(response)


def test_start_rejects_chosen_target_without_permission(scene, unchanged):
    with scene.http() as client:
        response = client.post(
            "/migrations/start/",
            json={"task_id": f"t-{uuid.uuid4().hex}", "target": "os:system"},
        )
    assert response.status_code == 403
    assert "'os:system'" in _error(response)


def test_start_rejects_anonymous_user(scene, unchanged):
    with scene.http(user=None) as client:
        response = client.post(
            "/migrations/start/", json={"task_id": f"t-{uuid.uuid4().hex}"}
        )
    assert response.status_code == 403
    _error(response)


def test_cancel_of_ended_task_changes_nothing(scene, unchanged):
    with scene.http() as client:
        response = client.post(f"/migrations/tasks/{scene.ended}/cancel/")
    assert response.status_code == 409
    body = response.json()
    assert body["cancelled"] is False
    assert body["state"] == "succeeded"


@pytest.mark.parametrize("view", ["status", "cancel"])
def test_other_user_rejected(scene, unchanged, view):
    method = "get" if view == "status" else "post"
    with scene.http(user="other") as client:
        response = getattr(client, method)(f"/migrations/tasks/{scene.running}/{view}/")
    assert response.status_code == 403
    assert repr(scene.running) in _error(response)


def test_other_user_cannot_open_task_page(scene, unchanged):
    with scene.http(user="other") as client:
        response = client.get(f"/migrations/tasks/{scene.running}/")
    assert response.status_code == 403


# WebSocket.


@pytest.mark.parametrize("task_id", ["has space", "x" * 65, "ünïcode"])
async def test_websocket_rejects_invalid_task_id(scene, unchanged, task_id):
    from urllib.parse import quote

    code, frames = await close_code_of(
        scene.server.ws_url, f"/ws/migration/{quote(task_id)}/", scene.sessions["owner"]
    )
    assert code == 4400
    assert frames == []


async def test_websocket_rejects_unknown_task_id(scene, unchanged):
    code, _ = await close_code_of(
        scene.server.ws_url, f"/ws/migration/{UNKNOWN_ID}/", scene.sessions["owner"]
    )
    assert code == 4404


@pytest.mark.parametrize("after", ["-1", "abc", "1.5", str(2**31), "9" * 40])
async def test_websocket_rejects_invalid_after(scene, unchanged, after):
    code, _ = await close_code_of(
        scene.server.ws_url,
        f"/ws/migration/{scene.running}/?after={after}",
        scene.sessions["owner"],
    )
    assert code == 4400


@pytest.mark.parametrize("user", ["other", None])
async def test_websocket_rejects_other_user(scene, unchanged, user):
    session = None if user is None else scene.sessions[user]
    code, frames = await close_code_of(
        scene.server.ws_url, f"/ws/migration/{scene.running}/", session
    )
    assert code == 4403
    assert frames == []


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"action": "explode"}', "unknown action"),
        ('{"no_action": 1}', "unknown action"),
        ('{"action": "replay", "after": -3}', "invalid replay after"),
        ("x" * 1_000_000, "too long"),
        (b"\x00\x01binary", "binary frames"),
    ],
    ids=["not-json", "array", "unknown", "missing", "replay", "1mb", "binary"],
)
async def test_websocket_malformed_frame(scene, unchanged, frame, expected):
    """Each bad frame gets an error frame; the socket stays open and streams on."""
    stream = Stream(scene.running)
    async with await open_stream(
        scene.server.ws_url, scene.running, scene.sessions["owner"]
    ) as ws:
        await read_stream(ws, stream, until_seq=1, timeout=10)
        await ws.send(frame)
        error = await _next_frame_of_type(ws, stream, "error")
        assert expected in error["message"]
        await ws.send(json.dumps({"action": "ping"}))
        await _next_frame_of_type(ws, stream, "pong")
        seq_before = stream.last_seq
        await read_stream(ws, stream, until_seq=seq_before + 2, timeout=10)
        assert stream.last_seq >= seq_before + 2, "the stream stopped after the frame"
    stream.assert_contiguous()


async def test_websocket_cancel_by_watcher(scene, unchanged):
    """A user who may watch but not cancel is rejected over the socket."""
    stream = Stream(scene.running)
    async with await open_stream(
        scene.server.ws_url, scene.running, scene.sessions["watcher"]
    ) as ws:
        await read_stream(ws, stream, until_seq=1, timeout=10)
        await ws.send(json.dumps({"action": "cancel"}))
        result = await _next_frame_of_type(ws, stream, "cancel_result")
        assert result["accepted"] is False
        assert repr(scene.running) in result["message"]


async def test_websocket_cancel_of_ended_task(scene, unchanged):
    """Cancelling an ended task over the socket is rejected and changes nothing."""
    stream = Stream(scene.ended)
    async with await open_stream(
        scene.server.ws_url, scene.ended, scene.sessions["owner"]
    ) as ws:
        await read_stream(ws, stream, timeout=10)
        await ws.send(json.dumps({"action": "cancel"}))
        result = await _next_frame_of_type(ws, stream, "cancel_result")
    assert result["accepted"] is False
    assert "already ended" in result["message"]
    assert stream.finished is not None
    assert stream.finished["state"] == "succeeded"


async def _next_frame_of_type(ws, stream: Stream, kind: str) -> dict[str, Any]:
    import asyncio

    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == kind:
                return frame
            stream.add_frame(frame, 0.0)


# Python API.


def _call(scene: Scene, function: str, **kwargs: Any) -> dict[str, Any]:
    env = fault_env(scene.workdir, scene.database.url, scene.redis_url)
    return run_django_tool(env, ["call", function, json.dumps(kwargs)])


@pytest.mark.parametrize("task_id", ["has space", "", "x" * 65, "a/b"])
def test_api_start_rejects_invalid_task_id(scene, unchanged, task_id):
    outcome = _call(scene, "start_migration", task_id=task_id, target=TARGET)
    assert outcome["raised"] == "InvalidTaskIdError"
    assert "ValueError" in outcome["bases"]
    assert repr(task_id) in outcome["message"]


def test_api_start_rejects_running_task_id(scene, unchanged):
    outcome = _call(
        scene, "start_migration", task_id=scene.running, target=TARGET, owner="owner"
    )
    assert outcome["raised"] == "TaskAlreadyExistsError"
    assert repr(scene.running) in outcome["message"]


def test_api_status_of_unknown_task(scene, unchanged):
    outcome = _call(scene, "get_status", task_id=UNKNOWN_ID)
    assert outcome["raised"] == "TaskNotFoundError"
    assert "LookupError" in outcome["bases"]
    assert repr(UNKNOWN_ID) in outcome["message"]


def test_api_cancel_of_unknown_and_ended_tasks(scene, unchanged):
    assert _call(scene, "cancel_migration", task_id=UNKNOWN_ID) == {"returned": False}
    assert _call(scene, "cancel_migration", task_id=scene.ended) == {"returned": False}


def test_api_cancel_rejects_invalid_task_id(scene, unchanged):
    outcome = _call(scene, "cancel_migration", task_id="has space")
    assert outcome["raised"] == "InvalidTaskIdError"


# The demo's workbook upload.


def _upload(scene: Scene, name: str, content: bytes):
    with scene.http() as client:
        return client.post(
            "/start/",
            files={"workbook": (name, content, "application/octet-stream")},
        )


def test_upload_rejects_oversized_file(scene, unchanged):
    response = _upload(scene, "big.twb", b"<workbook>" + b" " * (4 * MAX_UPLOAD_BYTES))
    assert response.status_code == 413
    assert "workbooks of at most" in response.text


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("notes.txt", b"hello", "is not a Tableau workbook"),
        ("no-suffix", b"<workbook/>", "is not a Tableau workbook"),
        ("garbage.twb", b"\x00\x01 not xml at all", "The upload was rejected"),
        ("empty.twb", b"", "The upload was rejected"),
        ("not-zip.twbx", b"<workbook/>", "The upload was rejected"),
        ("html.twb", b"<html><body>hi</body></html>", "The upload was rejected"),
    ],
    ids=["txt", "no-suffix", "binary-twb", "empty-twb", "not-zip-twbx", "html-twb"],
)
def test_upload_rejects_non_workbook(scene, unchanged, name, content, expected):
    response = _upload(scene, name, content)
    assert response.status_code == 400
    assert expected in response.text


def test_upload_without_file(scene, unchanged):
    with scene.http() as client:
        response = client.post("/start/", data={"source": "upload"})
    assert response.status_code == 400
    assert "No workbook was uploaded" in response.text
