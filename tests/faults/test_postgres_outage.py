"""PostgreSQL stops for ten seconds while a job logs."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.faults.checks import check_stored_stream, numbered_lines
from tests.faults.clients import Stream, http_client, open_stream, read_stream
from tests.faults.harness import start_job, wait_async
from tests.faults.jobs import touch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

OUTAGE_SECONDS = 10
#: Messages the database sink may hold in the small-limit case. The job logs
#: about 50 a second, so a ten-second outage overflows it several times over.
SMALL_HOLD_LIMIT = 40
#: The first whole number in a warning, such as 123 in "sink 'database' lost 123
#: message(s)".
COUNT = re.compile(r"\b(\d+)\b")


async def run_outage(server, postgres, session, task_id, stop_file) -> Stream:
    """Run a job through a database outage; return what a WebSocket client saw."""
    start_job(
        server,
        session,
        task_id,
        "log_until_stopped",
        stop_file=str(stop_file),
        interval=0.02,
    )
    stream = Stream(task_id)
    async with await open_stream(server.ws_url, task_id, session) as ws:
        await read_stream(ws, stream, until_seq=20, timeout=30)
        assert stream.last_seq >= 20, f"no live stream before the outage: {stream.seqs}"

        loop = asyncio.get_running_loop()
        postgres.stop()
        try:
            seq_at_stop = stream.last_seq
            outage_ends = loop.time() + OUTAGE_SECONDS
            await read_stream(ws, stream, timeout=OUTAGE_SECONDS)
            await asyncio.sleep(max(0.0, outage_ends - loop.time()))
            seq_after_outage = stream.last_seq
        finally:
            postgres.start()

        # The live stream does not wait for the database.
        assert seq_after_outage - seq_at_stop >= 50, (
            f"only {seq_after_outage - seq_at_stop} live messages arrived during "
            f"the {OUTAGE_SECONDS} s database outage"
        )
        touch(stop_file)
        await read_stream(ws, stream, timeout=60)

    stream.assert_contiguous()
    assert stream.finished is not None, (
        f"the stream did not reach 'finished'; last seq {stream.last_seq}\n"
        f"{server.log()}"
    )
    return stream


async def test_postgres_outage_holds_messages(
    web, sessions, postgres, database, task_id, stop_file, figures
):
    """Messages logged while the database is down are stored once it is back."""
    server = web.start()
    stream = await run_outage(server, postgres, sessions["owner"], task_id, stop_file)
    assert stream.finished["state"] == "succeeded"

    rows = await wait_async(
        lambda: _stored_through(database, task_id, stream.last_seq),
        30,
        f"task {task_id} stored through seq {stream.last_seq}",
    )
    stats = check_stored_stream(rows, task_id)
    task = database.task(task_id)
    assert task["state"] == "succeeded"
    assert task["dropped"] == 0
    assert task["message_count"] == len(rows)

    figures.update(
        outage_seconds=OUTAGE_SECONDS,
        messages_checked=len(rows),
        messages_lost=0,
        logging_helper=stats,
    )


async def test_postgres_outage_over_hold_limit(
    web, sessions, postgres, database, task_id, stop_file, figures
):
    """Messages beyond the hold limit are counted and reported, never silently lost."""
    server = web.start(DB_MAX_PENDING=SMALL_HOLD_LIMIT)
    stream = await run_outage(server, postgres, sessions["owner"], task_id, stop_file)

    task = await wait_async(
        lambda: _final_task(database, task_id), 30, f"task {task_id} final"
    )
    rows = database.messages(task_id)
    stored = {row["seq"] for row in rows}
    missing = sorted(set(range(1, stream.last_seq + 1)) - stored)
    assert missing, "the hold limit was never reached: the test proves nothing"
    assert task["dropped"] == len(missing), (
        f"{len(missing)} messages are missing from the database but the task "
        f"counts {task['dropped']} dropped"
    )
    assert len(numbered_lines(rows)) == len(set(numbered_lines(rows)))

    with http_client(server.base_url, sessions["owner"]) as client:
        status = client.get(f"/migrations/tasks/{task_id}/status/").json()
    assert status["dropped"] == len(missing)

    # One warning may name the whole count, or several may name parts of it.
    reports = [
        message["message"]
        for message in stream.messages
        if message["message_type"] == "warning" and "database" in message["message"]
    ]
    counts = [int(found[0]) for found in map(COUNT.findall, reports) if found]
    assert len(missing) in counts or sum(counts) == len(missing), (
        f"the warnings in the stream do not name the {len(missing)} messages the "
        f"database lost: {reports[:10]}"
    )

    figures.update(
        hold_limit=SMALL_HOLD_LIMIT,
        messages_streamed=stream.last_seq,
        messages_dropped_from_database=len(missing),
        dropped_reported=task["dropped"],
    )


def _stored_through(database, task_id, last_seq):
    rows = database.messages(task_id)
    if rows and rows[-1]["seq"] >= last_seq:
        return rows
    return None


def _final_task(database, task_id):
    task = database.task(task_id)
    if task is not None and task["state"] not in ("queued", "running"):
        return task
    return None
