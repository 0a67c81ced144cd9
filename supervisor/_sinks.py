"""Fan-out of messages to the sinks: one thread per sink, one queue per task."""

from __future__ import annotations

import collections
import copy
import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ._stream import Message

__all__ = [
    "HIGH_WATER_DIVISOR",
    "LOW_WATER_DIVISOR",
    "STALL_SECONDS",
    "BatchSink",
    "DropReport",
    "Envelope",
    "Sink",
    "SinkFanout",
    "SinkWorker",
]

logger = logging.getLogger(__name__)

#: A sink: any callable taking one message dict. It may also have
#: ``send_batch(list[dict])`` and ``close()``.
Sink = Callable[[Message], object] | Any

FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 5.0
#: Seconds between two failure log lines of one sink; failures in between are
#: counted in the next line.
FAILURE_LOG_INTERVAL = 5.0
#: Seconds between two reports of one task's dropped messages at one sink; the
#: rest is reported at the task's end.
DROP_REPORT_INTERVAL = 5.0
#: Characters of message text after which a batch is closed, so that a batch of
#: huge messages does not hold a sink for long.
MAX_BATCH_CHARS = 1 << 20
#: Estimated bytes a message takes in memory beyond its text: the dict, its
#: keys and the small values.
MESSAGE_OVERHEAD_BYTES = 512
#: Seconds a sink thread pauses after its own bookkeeping failed, so that a
#: persistent failure does not spin.
LOOP_FAILURE_DELAY = 0.5
#: Estimated bytes of pending messages per sink beyond which it drops some.
DEFAULT_MAX_PENDING_BYTES = 256 << 20
#: Seconds without a delivery, while messages are pending, after which a sink
#: counts as stalled and no longer makes the jobs wait.
STALL_SECONDS = 5.0
#: A healthy sink with more than ``1/HIGH_WATER_DIVISOR`` of a limit pending
#: makes the jobs wait until it is down to ``1/LOW_WATER_DIVISOR``.
HIGH_WATER_DIVISOR = 2
LOW_WATER_DIVISOR = 4


class DropReport(NamedTuple):
    """Messages of one task that one sink dropped since the last report.

    ``over_bytes`` is the sink's byte budget when that budget caused any of
    the drops, else None (the message count limit caused them all).
    """

    sink: str
    task_id: str
    dropped: int
    max_pending: int
    over_bytes: int | None = None


class Envelope(NamedTuple):
    """One pending message of one sink: its dict and the facts the worker uses.

    The sink owns the dict and may change it, so the worker reads the task id,
    seq and event from the envelope only.
    """

    task_id: str
    seq: int
    event: str
    #: Estimated bytes the message takes while it waits.
    size: int
    #: Whether the message reports drops (never dropped or counted itself).
    report: bool
    #: Key of the callback awaiting this ``finished`` message, if any.
    key: int | None
    #: The message as this sink receives it.
    message: Message


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
    """Deliver messages to one sink from a thread of its own, in order per task.

    Each task has its own queue. A batch takes one message from each task in
    turn, so a task that floods the sink does not delay the others, and each
    task's messages stay in seq order. A batch ends at ``batch_size`` messages
    (one for a sink without ``send_batch``), or before its message texts pass
    `MAX_BATCH_CHARS` characters unless that is its first message.

    A call that raises is retried with the same message (or the same batch)
    after an exponential back-off, so the sink receives each message once, in order,
    however often it fails. The sink may change the dicts it receives: they are
    its own, and the worker's bookkeeping uses the envelopes.

    At most ``max_pending`` messages, of at most ``max_pending_bytes``
    estimated bytes together, wait. Beyond either limit, the oldest messages of
    the task with the most pending are dropped and counted through
    ``on_dropped``. ``finished`` messages and drop reports are never dropped
    for these limits and do not count against them. The drops are also kept
    per task until they are reported: ``on_report_due`` is called when a report
    is due (`DROP_REPORT_INTERVAL` after the last one), and `take_due_reports`
    or, at the task's end, `take_unreported` collects the counts.
    """

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        max_pending: int,
        max_pending_bytes: int,
        batch_size: int,
        on_dropped: Callable[[str, dict[str, int]], None],
        on_finished: Callable[[str, int], None],
        on_report_due: Callable[[], None],
        on_drained: Callable[[], None] = lambda: None,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.name = name
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self._sink = sink
        # Checking a runtime protocol costs microseconds, so it is done once.
        self._is_batch_sink = isinstance(sink, BatchSink)
        self._batch_size = batch_size
        self._on_dropped = on_dropped
        self._on_finished = on_finished
        self._on_report_due = on_report_due
        self._on_drained = on_drained
        self._stall_seconds = stall_seconds
        #: When the sink last accepted a call, or became busy after being idle.
        self._progress_at = time.monotonic()
        #: Set while someone waits for the pending messages to fall to the
        #: low-water mark; cleared when ``on_drained`` is called.
        self._drain_wanted = False
        #: Pending messages per task in seq order; the order of the tasks is the
        #: order in which batches visit them.
        self._queues: collections.OrderedDict[str, collections.deque[Envelope]] = (
            collections.OrderedDict()
        )
        #: Pending messages that count against the limits, and their bytes.
        self._counted = 0
        self._counted_bytes = 0
        #: Tasks whose ``finished`` message is pending or in flight.
        self._ended: set[str] = set()
        self._in_flight: list[Envelope] = []
        self._unreported: dict[str, int] = {}
        #: Tasks with unreported drops of which the byte budget caused some.
        self._over_bytes: set[str] = set()
        #: Per task with drops, when the last report was taken (or the first
        #: drop happened).
        self._last_report: dict[str, float] = {}
        self._due: set[str] = set()
        self._condition = threading.Condition()
        self._closing = False
        #: Set when stop() ran in this worker's own thread, which then closes
        #: the sink itself once nothing is pending.
        self._close_when_done = False
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

    @property
    def pending(self) -> int:
        """The pending messages that count against the limit."""
        with self._condition:
            return self._counted

    @property
    def pending_bytes(self) -> int:
        """Estimated bytes of the pending messages that count against the budget."""
        with self._condition:
            return self._counted_bytes

    def in_own_thread(self) -> bool:
        """Return whether the caller runs in this worker's thread (inside the sink)."""
        return threading.current_thread() is self._thread

    def healthy(self) -> bool:
        """Return whether the sink neither fails nor stalls.

        A sink stalls when it delivered nothing for ``stall_seconds`` while
        messages were pending. Only a healthy sink makes the jobs wait.
        """
        with self._condition:
            if self._failures:
                return False
            if not (self._queues or self._in_flight):
                return True
            return time.monotonic() - self._progress_at < self._stall_seconds

    def room(self) -> int:
        """Return how many more messages may be queued without passing a limit.

        Zero while the pending bytes are above half their budget, because the
        size of the next messages is not known.
        """
        with self._condition:
            if self._counted_bytes > self.max_pending_bytes // 2:
                return 0
            return max(self.max_pending - self._counted, 0)

    def above(self, divisor: int) -> bool:
        """Return whether more than ``1/divisor`` of either limit is pending."""
        with self._condition:
            return self._above(divisor)

    def want_drained(self) -> None:
        """Call ``on_drained`` once at most a quarter of either limit (the
        low-water mark) is pending, unless that is already so."""
        with self._condition:
            if self._above(LOW_WATER_DIVISOR):
                self._drain_wanted = True

    def _above(self, divisor: int) -> bool:
        return (
            self._counted > self.max_pending // divisor
            or self._counted_bytes > self.max_pending_bytes // divisor
        )

    def replace(self, sink: Sink) -> None:
        """Send pending and later messages to ``sink`` instead."""
        with self._condition:
            self._sink = sink
            self._is_batch_sink = isinstance(sink, BatchSink)

    def put(self, envelopes: Iterable[Envelope]) -> None:
        """Queue messages for delivery without waiting for the sink."""
        with self._condition:
            idle = not self._queues
            if idle and not self._in_flight:
                self._progress_at = time.monotonic()
            for envelope in envelopes:
                self._queue_of(envelope.task_id).append(envelope)
                if envelope.report:
                    continue
                if envelope.event == "finished":
                    self._ended.add(envelope.task_id)
                else:
                    self._counted += 1
                    self._counted_bytes += envelope.size
            dropped = self._drop_overflow()
            report_due = self._note_dropped(dropped)
            # The thread only waits while nothing is pending.
            if idle:
                self._condition.notify()
        if dropped:
            self._on_dropped(self.name, _count_by_task(dropped))
        if report_due:
            self._on_report_due()

    def take_due_reports(self) -> dict[str, tuple[int, bool]]:
        """Return and reset the drops per task whose report is due.

        Each value is the count and whether the byte budget caused any of them.
        """
        now = time.monotonic()
        with self._condition:
            reports = {}
            for task_id in self._due:
                count = self._unreported.pop(task_id, 0)
                over_bytes = task_id in self._over_bytes
                self._over_bytes.discard(task_id)
                if count:
                    reports[task_id] = (count, over_bytes)
                    self._last_report[task_id] = now
            self._due.clear()
        return reports

    def take_unreported(self, task_id: str) -> tuple[int, bool]:
        """Return and reset ``task_id``'s drops not reported yet, as in
        `take_due_reports`."""
        with self._condition:
            self._due.discard(task_id)
            over_bytes = task_id in self._over_bytes
            self._over_bytes.discard(task_id)
            return self._unreported.pop(task_id, 0), over_bytes

    def stop(self, timeout: float, reason: str) -> None:
        """Deliver what is pending for up to ``timeout`` seconds, then give up.

        ``reason`` completes the log line "dropped N messages because ...".

        Messages not delivered by then are counted as dropped, except drop
        reports. A sink call that hangs keeps its (daemon) thread alive after
        this returns. Called from inside the sink, this does not wait: the
        thread delivers what is pending once the sink returns, then closes it.
        """
        with self._condition:
            self._closing = True
            if self.in_own_thread():
                self._close_when_done = True
                return
            self._condition.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._condition:
                self._abandon.set()
                left = [*self._in_flight]
                for queue in self._queues.values():
                    left.extend(queue)
                self._queues.clear()
                self._counted = self._counted_bytes = 0
            self._give_up(
                [envelope for envelope in left if not envelope.report], reason
            )
            self._report_finished(left)
        self._close_sink()

    def _close_sink(self) -> None:
        close = getattr(self._sink, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                logger.exception("Sink %s failed to close", self.name)

    def _queue_of(self, task_id: str) -> collections.deque[Envelope]:
        queue = self._queues.get(task_id)
        if queue is None:
            queue = self._queues[task_id] = collections.deque()
        return queue

    def _over_limit(self) -> bool:
        return (
            self._counted > self.max_pending
            or self._counted_bytes > self.max_pending_bytes
        )

    def _drop_overflow(self) -> list[Envelope]:
        """Drop the oldest of the tasks with the most pending; hold the lock.

        Running tasks come first: an ended task's drops were already reported
        with its stream, so dropping more of its messages would go unreported.
        """
        dropped: list[Envelope] = []
        while self._over_limit():
            over_bytes = self._counted_bytes > self.max_pending_bytes
            for task_id in sorted(self._queues, key=self._drop_order, reverse=True):
                envelope = self._drop_oldest(task_id)
                if envelope is not None:
                    dropped.append(envelope)
                    self._counted -= 1
                    self._counted_bytes -= envelope.size
                    if over_bytes:
                        self._over_bytes.add(task_id)
                    break
            else:
                break  # Only undroppable messages are left.
        return dropped

    def _drop_order(self, task_id: str) -> tuple[bool, int]:
        return task_id not in self._ended, len(self._queues[task_id])

    def _drop_oldest(self, task_id: str) -> Envelope | None:
        queue = self._queues[task_id]
        for index, envelope in enumerate(queue):
            if envelope.event != "finished" and not envelope.report:
                del queue[index]
                if not queue:
                    del self._queues[task_id]
                return envelope
        return None

    def _note_dropped(self, dropped: list[Envelope]) -> bool:
        """Keep the counts for the next report; True if one became due."""
        if not dropped:
            return False
        now = time.monotonic()
        for task_id, count in _count_by_task(dropped).items():
            if task_id not in self._unreported:
                self._unreported[task_id] = 0
                self._last_report.setdefault(task_id, now)
                logger.warning(
                    "Sink %s has more than %d messages or %d bytes pending; "
                    "dropping the oldest of task %s",
                    self.name,
                    self.max_pending,
                    self.max_pending_bytes,
                    task_id,
                )
            self._unreported[task_id] += count
        return self._mark_due(now)

    def _mark_due(self, now: float) -> bool:
        """Mark reports due whose interval has passed; True if any became due."""
        newly_due = False
        for task_id in self._unreported:
            passed = now - self._last_report[task_id] >= DROP_REPORT_INTERVAL
            if passed and task_id not in self._due:
                self._due.add(task_id)
                newly_due = True
        return newly_due

    def _run(self) -> None:
        while True:
            try:
                if not self._run_once():
                    break
            except BaseException:
                # The sink's own errors are caught in _deliver. This catches a
                # failure of the bookkeeping, because a dead thread would leave
                # wait() hanging.
                logger.exception("Sink %s thread failed; continuing", self.name)
                time.sleep(LOOP_FAILURE_DELAY)
        if self._close_when_done:
            self._close_sink()

    def _run_once(self) -> bool:
        """Deliver one batch; False once the worker stopped or was abandoned."""
        batch = self._take()
        if batch is None:
            return False
        if self._is_batch_sink:
            self._deliver(batch)
        else:
            for item in batch:
                if not self._deliver([item]):
                    break
        with self._condition:
            # After stop() gave up on the in-flight batch, it is not ours
            # to report any more.
            if self._abandon.is_set():
                return False
            self._in_flight = []
            self._progress_at = time.monotonic()
            report_due = bool(self._unreported) and self._mark_due(time.monotonic())
            drained = self._drain_wanted and not self._above(LOW_WATER_DIVISOR)
            if drained:
                self._drain_wanted = False
        self._report_finished(batch)
        if report_due:
            self._on_report_due()
        if drained:
            self._on_drained()
        return True

    def _take(self) -> list[Envelope] | None:
        with self._condition:
            while not self._queues:
                if self._closing:
                    return None
                self._condition.wait()
            self._in_flight = self._next_batch()
            return self._in_flight

    def _next_batch(self) -> list[Envelope]:
        """Take one message per task in turn until the batch is full; hold the lock."""
        size = self._batch_size if self._is_batch_sink else 1
        batch: list[Envelope] = []
        chars = 0
        while self._queues and len(batch) < size:
            task_id, queue = next(iter(self._queues.items()))
            envelope = queue[0]
            length = envelope.size - MESSAGE_OVERHEAD_BYTES
            if batch and chars + length > MAX_BATCH_CHARS:
                break
            batch.append(queue.popleft())
            chars += length
            if envelope.event != "finished" and not envelope.report:
                self._counted -= 1
                self._counted_bytes -= envelope.size
            if queue:
                self._queues.move_to_end(task_id)
            else:
                del self._queues[task_id]
        return batch

    def _deliver(self, batch: list[Envelope]) -> bool:
        """Call the sink until it accepts ``batch``; False once abandoned."""
        delay = FIRST_RETRY_DELAY
        while True:
            sink = self._sink
            try:
                send_batch = getattr(sink, "send_batch", None)
                if send_batch is not None:
                    send_batch([envelope.message for envelope in batch])
                else:
                    # One message, unless the sink was replaced by a plain
                    # callable during a batch.
                    for envelope in batch:
                        sink(envelope.message)
            except BaseException as exc:
                # BaseException too: SystemExit or a job's own BaseException
                # raised in a sink would end this thread silently, and wait()
                # would hang on the messages it never delivers.
                self._log_failure(batch[0], delay, exc)
                if self._abandon.wait(delay):
                    return False
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            if self._failures:
                logger.info(
                    "Sink %s recovered on task %s seq %s after %d failed calls",
                    self.name,
                    batch[0].task_id,
                    batch[0].seq,
                    self._failures,
                )
                self._failures = 0
            return True

    def _log_failure(
        self, envelope: Envelope, delay: float, exc: BaseException
    ) -> None:
        self._failures += 1
        now = time.monotonic()
        if self._failures > 1 and now - self._last_failure_log < FAILURE_LOG_INTERVAL:
            return
        self._last_failure_log = now
        logger.warning(
            "Sink %s failed on task %s seq %s (%d failed calls so far); "
            "retrying in %.2f s",
            self.name,
            envelope.task_id,
            envelope.seq,
            self._failures,
            delay,
            exc_info=exc,
        )

    def _give_up(self, envelopes: list[Envelope], reason: str) -> None:
        if not envelopes:
            return
        counts = _count_by_task(envelopes)
        for task_id, count in counts.items():
            logger.error(
                "Sink %s dropped %d messages of task %s because %s",
                self.name,
                count,
                task_id,
                reason,
            )
        self._on_dropped(self.name, counts)

    def _report_finished(self, envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            if envelope.event == "finished":
                self._forget_drops(envelope.task_id)
                if envelope.key is not None:
                    self._on_finished(self.name, envelope.key)

    def _forget_drops(self, task_id: str) -> None:
        with self._condition:
            self._ended.discard(task_id)
            self._unreported.pop(task_id, None)
            self._over_bytes.discard(task_id)
            self._last_report.pop(task_id, None)
            self._due.discard(task_id)


def _count_by_task(envelopes: Iterable[Envelope]) -> dict[str, int]:
    return dict(collections.Counter(envelope.task_id for envelope in envelopes))


class SinkFanout:
    """Hand every message to every sink's worker, and track finished messages.

    ``max_pending`` and ``max_pending_bytes`` bound the messages waiting per
    sink; ``sink_max_pending`` and ``sink_max_pending_bytes`` override them for
    the sinks they name, including sinks added later. Each sink gets a dict of
    its own per message: the first sink the original, the others copies.
    """

    def __init__(
        self,
        sinks: Mapping[str, Sink],
        *,
        max_pending: int,
        max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
        sink_max_pending: Mapping[str, int] | None = None,
        sink_max_pending_bytes: Mapping[str, int] | None = None,
        batch_size: int,
        on_dropped: Callable[[str, dict[str, int]], None],
        on_report_due: Callable[[], None] = lambda: None,
        on_drained: Callable[[], None] = lambda: None,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._sink_max_pending = dict(sink_max_pending or {})
        self._sink_max_pending_bytes = dict(sink_max_pending_bytes or {})
        self._batch_size = batch_size
        self._on_dropped = on_dropped
        self._on_report_due = on_report_due
        self._on_drained = on_drained
        self._stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._workers: dict[str, SinkWorker] = {}
        self._keys = itertools.count()
        #: Per tracked ``finished`` message (by envelope key), the sinks that
        #: have neither delivered nor given it up yet, and what to call then.
        self._awaiting: dict[int, tuple[set[str], Callable[[], None]]] = {}
        for name, sink in sinks.items():
            self.set_sink(name, sink)

    def dispatch(
        self,
        messages: list[Message],
        on_delivered: Mapping[int, Callable[[], None]] | None = None,
        reports: Collection[int] = (),
        sizes: Mapping[int, int] | None = None,
        flat: Collection[int] = (),
    ) -> None:
        """Queue ``messages`` at every sink, in order.

        ``on_delivered`` maps ``id(message)`` of ``finished`` messages to a
        callback, called once every sink has delivered or given up on it.
        ``reports`` contains the ``id()`` of the messages that report drops.
        No sink drops them for its limit, and none counts them when it gives up.
        ``sizes`` maps ``id(message)`` to its estimated bytes where the caller
        knows better than the length of its text plus `MESSAGE_OVERHEAD_BYTES`,
        for example from the frame's length. ``flat`` contains the ``id()`` of
        messages known to hold no dict or list, which a shallow copy suffices
        for.
        """
        ready: list[Callable[[], None]] = []
        with self._lock:
            workers = list(self._workers.values())
            keys: dict[int, int] = {}
            for message_id, callback in (on_delivered or {}).items():
                if workers:
                    key = keys[message_id] = next(self._keys)
                    self._awaiting[key] = (set(self._workers), callback)
                else:
                    ready.append(callback)
        if workers:
            envelopes = _envelopes_of(messages, keys, reports, sizes or {})
            # The copies are made before the first sink can change the
            # original.
            copies = [_copy_envelopes(envelopes, flat) for _ in workers[1:]]
            # put() may report dropped messages through callbacks that take
            # locks, so it runs outside this one.
            for worker, batch in zip(workers, [envelopes, *copies], strict=True):
                worker.put(batch)
        for callback in ready:
            callback()

    @property
    def max_pending(self) -> int:
        """The bound of pending messages of a sink without a bound of its own."""
        return self._max_pending

    def room(self) -> int | None:
        """Return how many more messages every healthy sink can take.

        None when no sink is healthy, because a failing or stalled sink makes
        no job wait. It drops messages beyond its limits instead.
        """
        rooms = [w.room() for w in self._current_workers() if w.healthy()]
        return min(rooms) if rooms else None

    def healthy_above(self, divisor: int) -> bool:
        """Return whether a healthy sink has more than ``1/divisor`` of a
        limit pending."""
        return any(w.above(divisor) and w.healthy() for w in self._current_workers())

    def want_drained(self) -> None:
        """Have ``on_drained`` called once by each healthy sink above its
        low-water mark when it gets down to that mark."""
        for worker in self._current_workers():
            if worker.healthy():
                worker.want_drained()

    def take_due_reports(self) -> list[DropReport]:
        """Return the drop counts whose report is due, from every sink."""
        return [
            self._drop_report(worker, task_id, count, over_bytes)
            for worker in self._current_workers()
            for task_id, (count, over_bytes) in worker.take_due_reports().items()
        ]

    def take_unreported(self, task_id: str) -> list[DropReport]:
        """Return the drops of ``task_id`` not reported yet, from every sink."""
        reports = []
        for worker in self._current_workers():
            count, over_bytes = worker.take_unreported(task_id)
            if count:
                reports.append(self._drop_report(worker, task_id, count, over_bytes))
        return reports

    @staticmethod
    def _drop_report(
        worker: SinkWorker, task_id: str, count: int, over_bytes: bool
    ) -> DropReport:
        budget = worker.max_pending_bytes if over_bytes else None
        return DropReport(worker.name, task_id, count, worker.max_pending, budget)

    def worker(self, name: str) -> SinkWorker | None:
        """Return the worker of the sink called ``name``, if there is one."""
        with self._lock:
            return self._workers.get(name)

    def in_sink_thread(self) -> bool:
        """Return whether the caller runs inside one of the sinks."""
        return any(worker.in_own_thread() for worker in self._current_workers())

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
                    max_pending=self._sink_max_pending.get(name, self._max_pending),
                    max_pending_bytes=self._sink_max_pending_bytes.get(
                        name, self._max_pending_bytes
                    ),
                    batch_size=self._batch_size,
                    on_dropped=self._on_dropped,
                    on_finished=self._finished_at,
                    on_report_due=self._on_report_due,
                    on_drained=self._on_drained,
                    stall_seconds=self._stall_seconds,
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

    def _current_workers(self) -> list[SinkWorker]:
        with self._lock:
            return list(self._workers.values())

    def _finished_at(self, name: str, key: int) -> None:
        with self._lock:
            entry = self._awaiting.get(key)
            if entry is None:
                return
            waiting, callback = entry
            waiting.discard(name)
            if waiting:
                return
            del self._awaiting[key]
        callback()


def _envelopes_of(
    messages: list[Message],
    keys: Mapping[int, int],
    reports: Collection[int],
    sizes: Mapping[int, int],
) -> list[Envelope]:
    # tuple.__new__ skips the slower __new__ that NamedTuple generates: this
    # runs for every message.
    make = tuple.__new__
    envelopes = []
    for message in messages:
        message_id = id(message)
        size = sizes.get(message_id) if sizes else None
        if size is None:
            text = message.get("message")
            size = MESSAGE_OVERHEAD_BYTES + (len(text) if isinstance(text, str) else 0)
        fields = (
            message["task_id"],
            message["seq"],
            message["event"],
            size,
            message_id in reports,
            keys.get(message_id),
            message,
        )
        envelopes.append(make(Envelope, fields))
    return envelopes


def _copy_envelopes(envelopes: list[Envelope], flat: Collection[int]) -> list[Envelope]:
    """Return envelopes whose messages are copies, for a sink beyond the first."""
    make = tuple.__new__
    copies = []
    for envelope in envelopes:
        message = envelope.message
        # Values are JSON data, so only dicts and lists can be shared state.
        if id(message) not in flat and _has_nested_values(message):
            message = copy.deepcopy(message)
        else:
            message = message.copy()
        copies.append(make(Envelope, (*envelope[:-1], message)))
    return copies


def _has_nested_values(message: Message) -> bool:
    return any(isinstance(value, dict | list) for value in message.values())
