"""Redis, behind the channel layer, stops or freezes for ten seconds mid-task."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.checks import check_stored_stream
from tests.faults.clients import Stream, open_stream, read_stream
from tests.faults.harness import start_job, wait_async
from tests.faults.jobs import touch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

OUTAGE_SECONDS = 10
#: ``logging_helper`` writes one line to a pipe, which takes tens to hundreds of
#: microseconds. Had the web process stopped reading during the outage, the pipe
#: would fill within seconds and calls would block for as long; 20 ms leaves room
#: for a busy two-core machine preempting the job now and then.
MAX_CALL_P99_US = 20_000


@pytest.mark.parametrize("fault", ["stopped", "paused"])
async def test_redis_outage_mid_task(
    web, sessions, redis, database, task_id, stop_file, figures, fault
):
    """The stream outlives a Redis outage: stored whole, replayed on reconnect.

    ``stopped`` restarts Redis empty: clients see refused connections, and the
    channel layer's groups are gone. ``paused`` freezes it with SIGSTOP, so
    clients see a server that accepts connections and never replies.
    """
    halt, restore = (
        (redis.stop, redis.start) if fault == "stopped" else (redis.pause, redis.resume)
    )
    server = web.start()
    start_job(
        server,
        sessions["owner"],
        task_id,
        "log_until_stopped",
        stop_file=str(stop_file),
        interval=0.02,
    )

    first = Stream(task_id)
    async with await open_stream(server.ws_url, task_id, sessions["owner"]) as ws:
        await read_stream(ws, first, until_seq=20, timeout=30)
        assert first.last_seq >= 20, f"no live stream before the outage: {first.seqs}"

        loop = asyncio.get_running_loop()
        halt()
        outage_ends = loop.time() + OUTAGE_SECONDS
        await read_stream(ws, first, timeout=OUTAGE_SECONDS)
        await asyncio.sleep(max(0.0, outage_ends - loop.time()))
        restore()
        # The first socket must not hang silently: it either carries live
        # messages again or was closed, so that the browser reconnects.
        stalled_at = first.last_seq
        await read_stream(ws, first, until_seq=stalled_at + 10, timeout=5)
        assert first.close_code is not None or first.last_seq > stalled_at, (
            "the socket open during the outage stays open but silent"
        )
        seen_before_reconnect = first.last_seq

    second = Stream(task_id, after=seen_before_reconnect)
    async with await open_stream(
        server.ws_url, task_id, sessions["owner"], after=seen_before_reconnect
    ) as ws:
        await read_stream(ws, second, until_seq=seen_before_reconnect + 1, timeout=30)
        replayed = len(second.messages)
        # Live messages must flow again after the restart, not only the replay.
        live_target = second.last_seq + 25
        await read_stream(ws, second, until_seq=live_target, timeout=30)
        live_after_restart = len(second.latencies)
        touch(stop_file)
        await read_stream(ws, second, timeout=30)

    first.assert_contiguous()
    second.assert_contiguous()
    assert second.finished is not None, (
        f"the resumed stream did not reach 'finished'; last seq {second.last_seq}\n"
        f"{server.log()}"
    )
    assert second.finished["state"] == "succeeded"
    assert live_after_restart > 0, "no live message arrived after Redis came back"

    rows = await wait_async(
        lambda: _finished_rows(database, task_id), 30, "the stored finished row"
    )
    stats = check_stored_stream(rows, task_id)
    assert [row["seq"] for row in rows] == list(range(1, second.last_seq + 1))
    assert stats["p99_us"] < MAX_CALL_P99_US, f"logging_helper stats {stats}"

    figures.update(
        outage_seconds=OUTAGE_SECONDS,
        messages_stored=len(rows),
        messages_replayed_on_reconnect=replayed,
        first_socket_close_code=first.close_code,
        messages_lost=0,
        logging_helper=stats,
    )


def _finished_rows(database, task_id):
    rows = database.messages(task_id)
    if rows and rows[-1]["event"] == "finished":
        return rows
    return None
