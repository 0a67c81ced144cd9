"""Clients of the web processes under test: HTTP through httpx, WebSockets through
the ``websockets`` package, and a raw socket that never reads."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

#: Largest frame the client accepts. A message is capped at 64 KiB of text and
#: 64 KiB of options, but a snapshot frame carries many messages.
MAX_FRAME_BYTES = 256 * 1024 * 1024


def http_client(base_url: str, session: str | None = None) -> httpx.Client:
    """Return an HTTP client logged in with ``session``, passing Django's CSRF check."""
    token = "f" * 32
    cookies = {"csrftoken": token}
    if session is not None:
        cookies["sessionid"] = session
    return httpx.Client(
        base_url=base_url,
        cookies=cookies,
        headers={"X-CSRFToken": token, "Referer": base_url + "/"},
        timeout=30,
    )


@dataclass
class Stream:
    """What one WebSocket client received for one task, checked as it arrives."""

    task_id: str
    after: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    snapshot_task: dict[str, Any] | None = None
    other_frames: list[dict[str, Any]] = field(default_factory=list)
    #: (seq, time the job logged it, seconds from then until it arrived here) of
    #: each live message. Snapshot messages are left out, being read from the
    #: database.
    latencies: list[tuple[int, float, float]] = field(default_factory=list)
    close_code: int | None = None

    @property
    def seqs(self) -> list[int]:
        return [message["seq"] for message in self.messages]

    @property
    def last_seq(self) -> int:
        return self.messages[-1]["seq"] if self.messages else self.after

    @property
    def finished(self) -> dict[str, Any] | None:
        for message in reversed(self.messages):
            if message.get("event") == "finished":
                return message
        return None

    def add_frame(self, frame: dict[str, Any], received_at: float) -> None:
        kind = frame.get("type")
        if kind == "snapshot":
            self.snapshot_task = frame.get("task")
            self._add(frame.get("messages", []), None)
        elif kind == "log":
            self._add([frame["message"]], received_at)
        elif kind == "logs":
            self._add(frame["messages"], received_at)
        else:
            self.other_frames.append(frame)

    def _add(self, messages: list[dict[str, Any]], received_at: float | None) -> None:
        for message in messages:
            self.messages.append(message)
            if received_at is not None and message.get("event") == "log":
                sent_at = _parse_timestamp(message["timestamp"])
                self.latencies.append((message["seq"], sent_at, received_at - sent_at))

    def assert_contiguous(self) -> None:
        """Fail unless the seqs run on from ``after`` with no gap or repeat."""
        expected = list(range(self.after + 1, self.after + 1 + len(self.messages)))
        assert self.seqs == expected, (
            f"task {self.task_id}: seqs after {self.after} are not contiguous: "
            f"{_describe_difference(self.seqs, expected)}"
        )
        gaps = [frame for frame in self.other_frames if frame.get("type") == "gap"]
        assert not gaps, f"task {self.task_id}: the consumer sent gap frames {gaps}"


def _parse_timestamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def _describe_difference(actual: list[int], expected: list[int]) -> str:
    seen = set()
    repeats = sorted({seq for seq in actual if seq in seen or seen.add(seq)})
    missing = sorted(set(expected) - set(actual))
    return (
        f"{len(actual)} received, first {actual[:5]}, last {actual[-5:]}, "
        f"repeated {repeats[:20]}, missing {missing[:20]}"
    )


async def open_stream(
    ws_url: str, task_id: str, session: str | None, after: int | None = None
) -> ClientConnection:
    """Open the task's WebSocket as a browser logged in with ``session`` would."""
    query = "" if after is None else f"?after={after}"
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return await connect(
        f"{ws_url}/ws/migration/{task_id}/{query}",
        origin=ws_url.replace("ws://", "http://", 1),
        additional_headers=headers,
        max_size=MAX_FRAME_BYTES,
        open_timeout=20,
        ping_interval=None,
    )


async def read_stream(
    connection: ClientConnection,
    stream: Stream,
    until_seq: int | None = None,
    timeout: float = 60.0,
) -> Stream:
    """Read frames into ``stream`` until the ``finished`` message, ``until_seq``, the
    socket's close or ``timeout`` seconds, whichever comes first."""
    deadline = time.monotonic() + timeout
    while stream.finished is None:
        if until_seq is not None and stream.last_seq >= until_seq:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            raw = await asyncio.wait_for(connection.recv(), remaining)
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            stream.close_code = exc.rcvd.code if exc.rcvd else None
            break
        stream.add_frame(json.loads(raw), time.time())
    return stream


async def watch(
    ws_url: str,
    task_id: str,
    session: str | None,
    after: int | None = None,
    timeout: float = 60.0,
) -> Stream:
    """Connect, read the whole stream up to ``finished`` (or ``timeout``), close."""
    stream = Stream(task_id, after or 0)
    async with await open_stream(ws_url, task_id, session, after) as connection:
        await read_stream(connection, stream, timeout=timeout)
    return stream


async def close_code_of(
    ws_url: str, path: str, session: str | None, timeout: float = 10.0
) -> tuple[int | None, list[dict[str, Any]]]:
    """Open ``path`` and return the close code the server sends, with the frames
    received before it; ``None`` when the socket stays open for ``timeout``."""
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    frames = []
    async with connect(
        f"{ws_url}{path}",
        origin=ws_url.replace("ws://", "http://", 1),
        additional_headers=headers,
        open_timeout=20,
        ping_interval=None,
    ) as connection:
        deadline = time.monotonic() + timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                raw = await asyncio.wait_for(connection.recv(), remaining)
                frames.append(json.loads(raw))
        except TimeoutError:
            return None, frames
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), frames
    return None, frames


class StalledClient:
    """A WebSocket client that completes the handshake and then never reads.

    Its receive buffer is made small, so the server's writes back up into
    Daphne within a few frames, as with a browser tab frozen by the debugger or
    a phone that lost its network.
    """

    def __init__(self, port: int, task_id: str, session: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/migration/{task_id}/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{port}\r\n"
            f"Cookie: sessionid={session}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.sock.settimeout(20)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("server closed the stalled client's handshake")
            response += chunk
        if not response.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {response[:200]!r}")

    def vanish(self) -> None:
        """Drop the connection with a TCP reset and no WebSocket close frame."""
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
