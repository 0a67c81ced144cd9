"""Two web processes sharing Redis and PostgreSQL act as one site."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.clients import Stream, http_client, open_stream, read_stream
from tests.faults.harness import start_job, wait_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_start_on_one_watch_and_cancel_on_other(
    web, sessions, database, task_id, stop_file, figures
):
    """A task started on process A streams live on B, and B's cancel stops it."""
    first = web.start(CANCEL_POLL_INTERVAL=0.2)
    second = web.start(CANCEL_POLL_INTERVAL=0.2)
    session = sessions["owner"]
    start_job(
        server=first,
        session=session,
        task_id=task_id,
        job="log_until_stopped",
        stop_file=str(stop_file),
        interval=0.01,
    )

    stream = Stream(task_id)
    async with await open_stream(second.ws_url, task_id, session) as ws:
        await read_stream(ws, stream, until_seq=20, timeout=30)
        assert stream.last_seq >= 20, f"live stream on the other process: {stream.seqs}"

        with http_client(second.base_url, session) as client:
            response = await asyncio.to_thread(
                client.post, f"/migrations/tasks/{task_id}/cancel/"
            )
        assert response.status_code == 200, response.text
        assert response.json()["cancelled"] is True

        await read_stream(ws, stream, timeout=30)

    finished = stream.finished
    assert finished is not None, f"no finished message; last seq {stream.last_seq}"
    assert finished["state"] == "cancelled"
    stream.assert_contiguous()

    row = await wait_async(
        lambda: (
            (database.task(task_id) or {}).get("state") == "cancelled"
            and database.task(task_id)
        ),
        30,
        "the cancelled state stored",
    )
    # The first process ran the task, so the cancel crossed processes.
    assert f":{first.pid}:" in row["supervised_by"], row["supervised_by"]
    assert f":{second.pid}:" not in row["supervised_by"]
    rows = await wait_async(
        lambda: (
            [r for r in database.messages(task_id)]
            if database.messages(task_id)[-1]["event"] == "finished"
            else None
        ),
        30,
        "the finished row stored",
    )
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["event"] == "started"
    assert rows[-1]["options"]["state"] == "cancelled"
    assert [r["seq"] for r in rows] == stream.seqs
    figures.update(
        messages_checked=len(rows), watched_on="second", cancelled_on="second"
    )
