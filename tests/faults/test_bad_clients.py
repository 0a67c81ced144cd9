"""WebSocket clients that stop reading or vanish while a job streams."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import pytest

from tests.faults.checks import check_stored_stream
from tests.faults.clients import (
    StalledClient,
    Stream,
    http_client,
    open_stream,
    read_stream,
)
from tests.faults.harness import start_job, wait_async
from tests.faults.jobs import touch
from tests.faults.servers import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

#: A client process that connects, reads one frame and then hangs until killed.
VANISHING_CLIENT = """
import asyncio, sys
from websockets.asyncio.client import connect

async def main(url, origin, session):
    async with connect(url, origin=origin, ping_interval=None,
                       additional_headers={"Cookie": f"sessionid={session}"}) as ws:
        await ws.recv()
        print("connected", flush=True)
        await asyncio.sleep(600)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_stalled_and_vanished_clients(
    web, sessions, database, task_id, stop_file, figures
):
    """A reading client gets every message; the database stores every message."""
    server = web.start()
    session = sessions["owner"]
    # Lines of 2 KB fill a stalled client's buffers within a second.
    start_job(
        server,
        session,
        task_id,
        "log_until_stopped",
        stop_file=str(stop_file),
        interval=0.005,
        size=2048,
    )

    reader = Stream(task_id)
    async with await open_stream(server.ws_url, task_id, session) as ws:
        await read_stream(ws, reader, until_seq=1, timeout=30)
        stalled = StalledClient(server.port, task_id, session)
        reset = StalledClient(server.port, task_id, session)
        killed = subprocess.Popen(
            [
                sys.executable,
                "-c",
                VANISHING_CLIENT,
                f"{server.ws_url}/ws/migration/{task_id}/",
                server.base_url,
                session,
            ],
            stdout=subprocess.PIPE,
            cwd=REPO_ROOT,
        )
        try:
            assert killed.stdout is not None
            line = await asyncio.to_thread(killed.stdout.readline)
            assert line.strip() == b"connected"

            await read_stream(ws, reader, until_seq=reader.last_seq + 200, timeout=30)
            killed.send_signal(signal.SIGKILL)
            reset.vanish()
            await read_stream(ws, reader, until_seq=reader.last_seq + 300, timeout=30)
            touch(stop_file)
            await read_stream(ws, reader, timeout=60)
        finally:
            killed.kill()
            killed.wait()
            stalled.close()
            reset.close()

    reader.assert_contiguous()
    assert reader.finished is not None, (
        f"the reading client stopped at seq {reader.last_seq}\n{server.log()}"
    )
    assert reader.finished["state"] == "succeeded"

    rows = await wait_async(
        lambda: _stored_through(database, task_id, reader.last_seq), 30, "all rows"
    )
    stats = check_stored_stream(rows, task_id)

    with http_client(server.base_url, session) as client:
        status = client.get(f"/migrations/tasks/{task_id}/status/")
    assert status.status_code == 200
    assert status.json()["state"] == "succeeded"

    figures.update(
        messages_checked=len(rows),
        messages_lost=0,
        stalled_clients=1,
        vanished_clients=2,
        logging_helper=stats,
    )


def _stored_through(database, task_id, last_seq):
    rows = database.messages(task_id)
    if rows and rows[-1]["seq"] >= last_seq:
        return rows
    return None


async def test_late_client_gets_large_stream(
    web, sessions, database, task_id, stop_file, figures
):
    """A client joining after megabytes were stored still receives all of them."""
    server = web.start()
    session = sessions["owner"]
    start_job(
        server,
        session,
        task_id,
        "log_until_stopped",
        stop_file=str(stop_file),
        interval=0,
        size=8192,
        max_calls=400,
    )
    rows = await wait_async(
        lambda: _finished_rows(database, task_id), 60, "the job's end"
    )
    stored_bytes = sum(len(row["message"]) for row in rows)

    late = Stream(task_id)
    async with await open_stream(server.ws_url, task_id, session) as ws:
        await read_stream(ws, late, timeout=30)

    assert late.close_code is None, (
        f"the server closed the socket with code {late.close_code} instead of "
        f"sending {len(rows)} stored messages ({stored_bytes} characters)\n"
        f"{server.log(20)}"
    )
    late.assert_contiguous()
    assert late.last_seq == len(rows)
    figures.update(messages_checked=len(rows), stored_characters=stored_bytes)


def _finished_rows(database, task_id):
    rows = database.messages(task_id)
    if rows and rows[-1]["event"] == "finished":
        return rows
    return None
