"""Fan-out of messages to the sinks, one thread and one queue per sink."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from ._stream import Message

__all__ = ["BatchSink", "Sink", "SinkFanout", "SinkWorker"]

logger = logging.getLogger(__name__)

#: A sink: any callable taking one message dict. It may also have
#: ``send_batch(list[dict])`` and ``close()``.
Sink = Callable[[Message], object] | Any

FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 5.0
#: Seconds between two failure log lines of one sink; failures in between are
#: counted in the next line.
FAILURE_LOG_INTERVAL = 5.0


@runtime_checkable
class BatchSink(Protocol):
    """A sink that takes lists of messages, each list in seq order per task."""

    def send_batch(self, messages: list[Message]) -> object: ...


def check_sink(name: str, sink: object) -> None:
    """Raise TypeError unless ``sink`` is callable or has ``send_batch``."""
    if not (callable(sink) or isinstance(sink, BatchSink)):
        raise TypeError(
            f"invalid sink {name!r}: {sink!r} is neither callable nor has send_batch()"
        )


class SinkWorker:
    """Deliver messages to one sink from a thread of its own, in order.

    A call that raises is retried with the same message (or the same batch)
    after an exponential back-off, so the sink sees each message once, in order,
    however often it fails. At most ``max_pending`` messages wait; beyond that
    the oldest are dropped and reported through ``on_dropped``.
    """

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        max_pending: int,
        batch_size: int,
        on_dropped: Callable[[str, dict[str, int]], None],
        on_finished: Callable[[str, Message], None],
    ) -> None:
        self.name = name
        self._sink = sink
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._on_dropped = on_dropped
        self._on_finished = on_finished
        self._pending: collections.deque[Message] = collections.deque()
        self._in_flight: list[Message] = []
        self._condition = threading.Condition()
        self._closing = False
        self._abandon = threading.Event()
        self._failures = 0
        self._last_failure_log = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"supervisor-sink-{name}", daemon=True
        )
        self._thread.start()

    @property
    def sink(self) -> Sink:
        return self._sink

    def replace(self, sink: Sink) -> None:
        """Send pending and later messages to ``sink`` instead."""
        self._sink = sink

    def put(self, messages: Iterable[Message]) -> None:
        """Queue messages for delivery; never blocks on the sink."""
        with self._condition:
            idle = not self._pending
            self._pending.extend(messages)
            overflow = len(self._pending) - self._max_pending
            dropped = [self._pending.popleft() for _ in range(max(overflow, 0))]
            # The thread only waits while nothing is pending.
            if idle:
                self._condition.notify()
        if dropped:
            self._give_up(dropped, "it has too many messages pending")

    def stop(self, timeout: float, reason: str) -> None:
        """Deliver what is pending for up to ``timeout`` seconds, then give up.

        ``reason`` completes the log line "dropped N messages because ...".

        Messages not delivered by then are reported as dropped. A sink call
        that hangs keeps its (daemon) thread alive after this returns.
        """
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._condition:
                self._abandon.set()
                left = [*self._in_flight, *self._pending]
                self._pending.clear()
            self._give_up(left, reason)
        close = getattr(self._sink, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                logger.exception("Sink %s failed to close", self.name)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            if isinstance(self._sink, BatchSink):
                self._deliver(batch)
            else:
                for message in batch:
                    if not self._deliver([message]):
                        break
            with self._condition:
                # After stop() gave up on the in-flight batch, it is not ours
                # to report any more.
                if self._abandon.is_set():
                    return
                self._in_flight = []
            self._report_finished(batch)

    def _take(self) -> list[Message] | None:
        with self._condition:
            while not self._pending:
                if self._closing:
                    return None
                self._condition.wait()
            size = min(self._batch_size, len(self._pending))
            self._in_flight = [self._pending.popleft() for _ in range(size)]
            return self._in_flight

    def _deliver(self, messages: list[Message]) -> bool:
        """Call the sink until it accepts ``messages``; False once abandoned."""
        delay = FIRST_RETRY_DELAY
        while True:
            sink = self._sink
            try:
                send_batch = getattr(sink, "send_batch", None)
                if send_batch is not None:
                    send_batch(messages)
                else:
                    # One message, unless the sink was replaced by a plain
                    # callable during a batch.
                    for message in messages:
                        sink(message)
            except Exception as exc:
                self._log_failure(messages[0], delay, exc)
                if self._abandon.wait(delay):
                    return False
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            if self._failures:
                logger.info(
                    "Sink %s recovered on task %s seq %s after %d failed calls",
                    self.name,
                    messages[0]["task_id"],
                    messages[0]["seq"],
                    self._failures,
                )
                self._failures = 0
            return True

    def _log_failure(self, message: Message, delay: float, exc: Exception) -> None:
        self._failures += 1
        now = time.monotonic()
        if self._failures > 1 and now - self._last_failure_log < FAILURE_LOG_INTERVAL:
            return
        self._last_failure_log = now
        logger.warning(
            "Sink %s failed on task %s seq %s (%d failed calls so far); "
            "retrying in %.2f s",
            self.name,
            message["task_id"],
            message["seq"],
            self._failures,
            delay,
            exc_info=exc,
        )

    def _give_up(self, messages: list[Message], reason: str) -> None:
        if not messages:
            return
        counts: dict[str, int] = collections.Counter(m["task_id"] for m in messages)
        for task_id, count in counts.items():
            logger.error(
                "Sink %s dropped %d messages of task %s because %s",
                self.name,
                count,
                task_id,
                reason,
            )
        self._on_dropped(self.name, counts)
        self._report_finished(messages)

    def _report_finished(self, messages: list[Message]) -> None:
        for message in messages:
            if message["event"] == "finished":
                self._on_finished(self.name, message)


class SinkFanout:
    """Hand every message to every sink's worker, and track finished messages."""

    def __init__(
        self,
        sinks: Mapping[str, Sink],
        *,
        max_pending: int,
        batch_size: int,
        on_dropped: Callable[[str, dict[str, int]], None],
    ) -> None:
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._on_dropped = on_dropped
        self._lock = threading.Lock()
        self._workers: dict[str, SinkWorker] = {}
        #: Per tracked ``finished`` message (by id), the sinks that have
        #: neither delivered nor given it up yet, and what to call then.
        self._awaiting: dict[int, tuple[set[str], Callable[[], None]]] = {}
        for name, sink in sinks.items():
            self.set_sink(name, sink)

    def dispatch(
        self,
        messages: list[Message],
        on_delivered: Mapping[int, Callable[[], None]] | None = None,
    ) -> None:
        """Queue ``messages`` at every sink, in order.

        ``on_delivered`` maps ``id(message)`` of ``finished`` messages to a
        callback, called once every sink has delivered or given up on it.
        """
        ready: list[Callable[[], None]] = []
        with self._lock:
            workers = list(self._workers.values())
            for key, callback in (on_delivered or {}).items():
                if workers:
                    self._awaiting[key] = (set(self._workers), callback)
                else:
                    ready.append(callback)
        # put() may report dropped messages through callbacks that take locks,
        # so it runs outside this one.
        for worker in workers:
            worker.put(messages)
        for callback in ready:
            callback()

    def set_sink(self, name: str, sink: Sink | None) -> None:
        """Add, replace or (with None) remove the sink called ``name``."""
        if sink is not None:
            check_sink(name, sink)
        with self._lock:
            worker = self._workers.get(name)
            if worker is not None and sink is not None:
                worker.replace(sink)
                return
            if sink is not None:
                self._workers[name] = SinkWorker(
                    name,
                    sink,
                    max_pending=self._max_pending,
                    batch_size=self._batch_size,
                    on_dropped=self._on_dropped,
                    on_finished=self._finished_at,
                )
                return
            if worker is not None:
                del self._workers[name]
        if worker is not None:
            worker.stop(0, "the sink was removed")

    def stop(self, timeout: float) -> None:
        """Give all sinks ``timeout`` seconds together to drain, then close them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop(
                max(deadline - time.monotonic(), 0.0),
                "it did not finish before the supervisor stopped",
            )

    def _finished_at(self, name: str, message: Message) -> None:
        with self._lock:
            entry = self._awaiting.get(id(message))
            if entry is None:
                return
            waiting, callback = entry
            waiting.discard(name)
            if waiting:
                return
            del self._awaiting[id(message)]
        callback()
