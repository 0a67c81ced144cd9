"""Helpers for the tests of the consumer and the views: users, tasks, sockets."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_integration.models import MigrationLog, MigrationTask
from tests.asgi import application

WATCH = "django_integration.watch_any_migration"
CANCEL = "django_integration.cancel_any_migration"
ORIGIN = (b"origin", b"http://testserver")

#: Seconds a test waits for one frame from the consumer.
FRAME_TIMEOUT = 10.0


def make_user(*permissions: str) -> User:
    # No password: hashing one would cost a third of a second per user.
    user = User.objects.create_user(f"user-{uuid.uuid4().hex[:12]}")
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def make_task(
    owner: User | None, state: str = "running", **fields: Any
) -> MigrationTask:
    fields.setdefault("task_id", f"web-{uuid.uuid4().hex[:16]}")
    fields.setdefault("target", "tests.django_integration.jobs:count_to")
    return MigrationTask.objects.create(owner=owner, state=state, **fields)


def make_message(task_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    """Return a stream message as the supervisor sends it."""
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    message = {
        "task_id": task_id,
        "seq": seq,
        "event": "log",
        "message": f"line {seq}",
        "message_type": "info",
        "progress": min(seq, 100),
        "timestamp": (moment + datetime.timedelta(seconds=seq)).isoformat(),
    }
    message.update(fields)
    return message


def store_messages(task_id: str, seqs: Iterable[int]) -> None:
    """Store messages as the database saver does."""
    MigrationLog.objects.bulk_create(
        MigrationLog(
            task_id=task_id,
            seq=seq,
            event="log",
            message=f"line {seq}",
            message_type="info",
            progress=min(seq, 100),
            timestamp=datetime.datetime.fromisoformat(
                make_message(task_id, seq)["timestamp"]
            ),
        )
        for seq in seqs
    )


def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


async def group_send(task_id: str, event: dict[str, Any]) -> None:
    await get_channel_layer().group_send(f"migration_{task_id}", event)


async def open_socket(
    task_id: str, user: User | None = None, *, query: str = ""
) -> WebsocketCommunicator:
    """Connect through the test project's full ASGI stack, with a session cookie."""
    headers = [ORIGIN]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
    path = f"/ws/migration/{task_id}/{query}"
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await socket.connect(timeout=FRAME_TIMEOUT)
    assert connected, f"handshake of {path} was refused"
    return socket


async def close_code(socket: WebsocketCommunicator) -> int:
    """Return the close code of the next output, failing if it is not a close."""
    output = await socket.receive_output(timeout=FRAME_TIMEOUT)
    assert output["type"] == "websocket.close", output
    return int(output["code"])


async def receive(socket: WebsocketCommunicator) -> dict[str, Any]:
    frame: dict[str, Any] = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
    return frame


def frame_messages(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the stream messages one frame carries, in order."""
    if frame["type"] == "log":
        return [frame["message"]]
    if frame["type"] in ("snapshot", "logs", "replay"):
        return list(frame["messages"])
    return []


async def receive_until_finished(
    socket: WebsocketCommunicator, frames: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Collect frames until one carries the ``finished`` message; return them all."""
    frames = [] if frames is None else frames
    while not any(
        m.get("event") == "finished" for f in frames for m in frame_messages(f)
    ):
        frames.append(await receive(socket))
    return frames


def seqs(frames: Iterable[dict[str, Any]]) -> list[int]:
    return [m["seq"] for frame in frames for m in frame_messages(frame)]
