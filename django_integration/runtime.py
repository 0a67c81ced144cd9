"""The web process's supervisor, its heartbeat thread, and the sink functions.

One ``Runtime`` object per web process contains all of it. ``get_runtime()``
returns it, and ``reset_runtime()`` shuts it down for tests. The supervisor is
created on first use, so importing Django or running a management command starts
no thread and no child process.

Each web process that supervises tasks has a ``SupervisorProcess`` row whose
heartbeat its heartbeat thread refreshes. The same thread picks up cancel
requests other web processes stored on this process's task rows, and marks lost
the unfinished tasks of processes whose heartbeat stopped.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from django_integration import conf
from django_integration.models import (
    MessageEvent,
    MessageType,
    MigrationLog,
    MigrationTask,
    SupervisorProcess,
    TaskState,
)
from django_integration.sinks import ChannelsSender, DatabaseSaver, log_row

logger = logging.getLogger(__name__)

#: Names of the two sinks in the supervisor; the setters replace them.
WEBSOCKET_SINK = "websocket"
DATABASE_SINK = "database"

#: Seconds the ``finished`` message of a lost task may take to reach the channel
#: layer; watchers who miss it read it from the database.
LOST_NOTICE_TIMEOUT = 2.0

_ACTIVE_STATES = (TaskState.QUEUED, TaskState.RUNNING)

MessageFunction = Callable[[dict[str, Any]], object]


def make_process_id() -> str:
    """Return ``hostname:pid:token``, whose random token separates reused pids."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def mark_lost_tasks(
    lost_after: float,
    now: datetime.datetime | None = None,
    notify: MessageFunction | None = None,
) -> int:
    """Mark lost the unfinished tasks of processes silent for ``lost_after`` seconds.

    A task counts as orphaned when its supervising process has no row with a
    heartbeat newer than ``lost_after`` seconds. Each task marked lost gets a
    stored ``finished`` message (state ``lost``) after its last one, which is
    also passed to ``notify`` so that its watchers see the end. Returns how
    many tasks changed; rows of the silent processes are deleted afterwards.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=lost_after)
    live = SupervisorProcess.objects.filter(heartbeat_at__gte=cutoff)
    orphaned = list(
        MigrationTask.objects.filter(state__in=_ACTIVE_STATES)
        .exclude(supervised_by="")
        .exclude(supervised_by__in=live.values("process_id"))
        .values_list("task_id", "supervised_by")
    )
    changed = 0
    for task_id, process_id in orphaned:
        finished = _mark_lost(task_id, process_id, lost_after, now)
        if finished is None:
            continue
        changed += 1
        logger.warning(
            "task %s: marked lost because its web process %s sent no heartbeat "
            "for %s s",
            task_id,
            process_id,
            lost_after,
        )
        if notify is not None:
            notify(finished)
    SupervisorProcess.objects.filter(heartbeat_at__lt=cutoff).delete()
    return changed


def _mark_lost(
    task_id: str, process_id: str, lost_after: float, now: datetime.datetime
) -> dict[str, Any] | None:
    """Mark one task lost and store its ``finished`` message; return that message.

    Returns None when the task is no longer unfinished under ``process_id``,
    such as when another web process marked it first: the update is
    conditional, so only the process whose update changed the row stores the
    message.
    """
    explanation = (
        f"the web process {process_id} that supervised the task stopped sending "
        f"heartbeats (none for {lost_after} s), so the task's outcome is unknown"
    )
    with transaction.atomic():
        updated = MigrationTask.objects.filter(
            task_id=task_id, state__in=_ACTIVE_STATES, supervised_by=process_id
        ).update(
            state=TaskState.LOST,
            finished_at=now,
            error_type="lost",
            error_message=explanation,
        )
        if not updated:
            return None
        task = MigrationTask.objects.only("progress", "message_count").get(
            task_id=task_id
        )
        stored = MigrationLog.objects.filter(task_id=task_id).aggregate(
            last=Max("seq")
        )["last"]
        # Messages the stream carried but the saver never stored keep their seq.
        # NOTE: a watcher that got live messages past the stored ones drops this
        # message as a repeat, and learns the end from its poll's status frame.
        seq = max(stored or 0, task.message_count) + 1
        finished = lost_message(task_id, seq, task.progress, explanation, now)
        log_row(finished).save()
        MigrationTask.objects.filter(task_id=task_id).update(message_count=seq)
    return finished


def lost_message(
    task_id: str,
    seq: int,
    progress: int | None,
    explanation: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """Return the ``finished`` message that ends the stream of a lost task."""
    return {
        "task_id": task_id,
        "seq": seq,
        "event": MessageEvent.FINISHED.value,
        "message": f"Task lost: {explanation}.",
        "message_type": MessageType.ERROR.value,
        "progress": progress,
        "timestamp": now.isoformat(),
        "state": TaskState.LOST.value,
        "exit_code": None,
        "signal": None,
        "error": {"type": "lost", "message": explanation, "traceback": ""},
    }


class Heartbeat:
    """Daemon thread that keeps this process's row alive and polls the database.

    Every ``interval`` seconds it refreshes the heartbeat and marks lost the
    tasks of silent processes, passing their ``finished`` messages to
    ``notify``. Every ``poll_interval`` seconds it looks for cancel requests
    stored for tasks this process supervises, and passes them to ``cancel``.
    ``stop()`` ends the thread and closes its database connection; without it
    the thread ends with the process.
    """

    def __init__(
        self,
        process_id: str,
        *,
        interval: float,
        poll_interval: float,
        lost_after: float,
        active_tasks: Callable[[], list[str]],
        cancel: Callable[[str], object],
        notify: MessageFunction | None = None,
    ) -> None:
        self.process_id = process_id
        self.interval = interval
        self.poll_interval = min(poll_interval, interval)
        self.lost_after = lost_after
        self._active_tasks = active_tasks
        self._cancel = cancel
        self._notify = notify
        self._cancelled: set[str] = set()
        self._registered = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="migration-heartbeat", daemon=True
        )

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        """End the thread and remove this process's row; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def beat(self) -> None:
        """Refresh this process's heartbeat, then mark the tasks of silent ones lost."""
        now = timezone.now()
        updated = SupervisorProcess.objects.filter(process_id=self.process_id).update(
            heartbeat_at=now
        )
        if not updated:
            if self._registered:
                logger.warning(
                    "web process %s: its heartbeat row was gone, so other "
                    "processes may have marked its tasks lost; registering again",
                    self.process_id,
                )
            self._register(now)
            self._registered = True
        mark_lost_tasks(self.lost_after, now, self._notify)

    def poll_cancel_requests(self) -> None:
        """Cancel the tasks of this process that another process asked to cancel."""
        running = set(self._active_tasks())
        self._cancelled &= running
        active = running - self._cancelled
        if not active:
            return
        requested = MigrationTask.objects.filter(
            task_id__in=active,
            supervised_by=self.process_id,
            cancel_requested_at__isnull=False,
        ).values_list("task_id", flat=True)
        for task_id in requested:
            logger.info("task %s: cancelling on a request from the database", task_id)
            self._cancelled.add(task_id)
            self._cancel(task_id)

    def _register(self, now: datetime.datetime) -> None:
        hostname, pid, _ = self.process_id.split(":")
        SupervisorProcess.objects.update_or_create(
            process_id=self.process_id,
            defaults={"hostname": hostname, "pid": int(pid), "heartbeat_at": now},
        )

    def _run(self) -> None:
        next_beat = time.monotonic() + self.interval
        try:
            while not self._stop.wait(self.poll_interval):
                beat = time.monotonic() >= next_beat
                if beat:
                    next_beat = time.monotonic() + self.interval
                self._tick(beat=beat)
        finally:
            self._remove_row()
            connection.close()

    def _tick(self, *, beat: bool) -> None:
        try:
            if beat:
                self.beat()
            self.poll_cancel_requests()
        except Exception:
            # The database may be restarting; the next tick tries again on a new
            # connection.
            logger.exception("heartbeat of web process %s failed", self.process_id)
            connection.close()

    def _remove_row(self) -> None:
        try:
            SupervisorProcess.objects.filter(process_id=self.process_id).delete()
        except Exception:
            logger.exception(
                "web process %s could not remove its heartbeat row", self.process_id
            )


class Runtime:
    """Everything this web process shares between requests: one private instance.

    It contains the functions set with ``set_websocket_post_function`` and
    ``set_db_save_function``, the step counts set with ``set_task_info``, and,
    once first needed, the supervisor and the heartbeat.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sink_functions: dict[str, Callable[[dict[str, Any]], object] | None] = {
            WEBSOCKET_SINK: None,
            DATABASE_SINK: None,
        }
        self._total_steps: dict[str, int] = {}
        self._supervisor: Any = None
        self._heartbeat: Heartbeat | None = None
        self._exit_hook_registered = False
        self.process_id = ""
        self._lost_check_lock = threading.Lock()
        self._next_lost_check = 0.0
        self._lost_sender: ChannelsSender | None = None

    def set_sink_function(
        self, name: str, func: Callable[[dict[str, Any]], object] | None
    ) -> None:
        """Use ``func`` as the sink ``name``; None restores the default sink."""
        if func is not None and not callable(func):
            raise TypeError(
                f"invalid {name} function {func!r}: pass a callable taking one "
                "message dict, or None for the default"
            )
        with self._lock:
            self._sink_functions[name] = func
            if self._supervisor is not None:
                self._supervisor.set_sink(name, self._make_sink(name))

    def sink_function(self, name: str) -> Callable[[dict[str, Any]], object] | None:
        return self._sink_functions[name]

    def set_total_steps(self, task_id: str, total_steps: int | None) -> None:
        with self._lock:
            if total_steps is None:
                self._total_steps.pop(task_id, None)
            else:
                self._total_steps[task_id] = total_steps

    def pop_total_steps(self, task_id: str) -> int | None:
        with self._lock:
            return self._total_steps.pop(task_id, None)

    def supervisor(self) -> Any:
        """Return the supervisor, creating it and the heartbeat on first use."""
        with self._lock:
            if self._supervisor is None:
                self._start()
            return self._supervisor

    def check_lost_tasks(self) -> None:
        """Mark lost the tasks of silent processes, at most once per heartbeat interval.

        The places that read tasks call this, so that a process without a
        heartbeat thread, such as a restarted one that only serves pages, still
        corrects the state of tasks whose process died. A process with a
        heartbeat thread leaves it to that thread.
        """
        if self._heartbeat is not None:
            return
        settings = conf.get_settings()
        with self._lost_check_lock:
            now = time.monotonic()
            if now < self._next_lost_check:
                return
            self._next_lost_check = now + settings.heartbeat_interval
        try:
            mark_lost_tasks(settings.lost_after, notify=self.notify_lost)
        except DatabaseError:
            # The caller's own query reports an unreachable database; this
            # check runs again on a later read.
            logger.exception(
                "web process %s: looking for lost tasks failed", os.getpid()
            )

    def notify_lost(self, message: dict[str, Any]) -> None:
        """Send the ``finished`` message of a lost task to its watchers.

        It goes to the function set with ``set_websocket_post_function``, or
        else to the task's Channels group. A failure is logged only: watchers
        read the message from the database as well.
        """
        try:
            func = self._sink_functions[WEBSOCKET_SINK]
            if func is not None:
                func(message)
            else:
                self._notice_sender().send_batch([message])
        except Exception:
            logger.warning(
                "task %s: could not send its lost message to watchers",
                message["task_id"],
                exc_info=True,
            )

    def _notice_sender(self) -> ChannelsSender:
        with self._lock:
            if self._lost_sender is None:
                self._lost_sender = ChannelsSender(
                    batch_send=False, concurrency=1, send_timeout=LOST_NOTICE_TIMEOUT
                )
            return self._lost_sender

    def local_supervisor(self) -> Any:
        """Return the supervisor if this process created one, else None."""
        return self._supervisor

    def shutdown(self) -> None:
        """Cancel running tasks, then stop the sinks, heartbeat and lost-task sender.

        Safe to call twice; registered with ``atexit`` once a supervisor exists.
        """
        with self._lock:
            supervisor, heartbeat = self._supervisor, self._heartbeat
            self._supervisor = self._heartbeat = None
        if supervisor is not None:
            logger.info("web process %s: shutting down its supervisor", self.process_id)
            supervisor.shutdown(cancel_running=True)
        if heartbeat is not None:
            heartbeat.stop()
        # Last, because the heartbeat thread sends through it until it stops.
        with self._lock:
            lost_sender, self._lost_sender = self._lost_sender, None
        if lost_sender is not None:
            lost_sender.close()

    def _start(self) -> None:
        from supervisor import Supervisor

        settings = conf.get_settings()
        self.process_id = make_process_id()
        self._supervisor = Supervisor(
            {name: self._make_sink(name) for name in self._sink_functions},
            **self._supervisor_options(settings),
        )
        self._heartbeat = Heartbeat(
            self.process_id,
            interval=settings.heartbeat_interval,
            poll_interval=settings.cancel_poll_interval,
            lost_after=settings.lost_after,
            active_tasks=self._supervisor.active_tasks,
            cancel=self._supervisor.cancel,
            notify=self.notify_lost,
        )
        self._heartbeat.start()
        if not self._exit_hook_registered:
            atexit.register(self.shutdown)
            self._exit_hook_registered = True
        logger.info("web process %s: supervisor started", self.process_id)

    def _supervisor_options(self, settings: conf.MigrationSettings) -> dict[str, Any]:
        from worker._spec import Limits

        return {
            "max_workers": settings.max_workers,
            "grace_period": settings.grace_period,
            "start_method": settings.start_method,
            # Only the database saver is bounded by the setting; the other
            # sinks keep the supervisor's default bound.
            "sink_max_pending": {DATABASE_SINK: settings.db_max_pending},
            "limits": Limits(
                max_message_chars=settings.max_message_chars,
                max_options_bytes=settings.max_options_bytes,
            ),
        }

    def _make_sink(self, name: str) -> Any:
        func = self._sink_functions[name]
        if func is not None:
            return func
        settings = conf.get_settings()
        if name == WEBSOCKET_SINK:
            return ChannelsSender(
                batch_send=settings.batch_send, concurrency=settings.send_concurrency
            )
        return DatabaseSaver(
            batch_size=settings.db_batch_size, dropped_count=self.dropped_count
        )

    def dropped_count(self, task_id: str) -> int:
        """Return how many messages of a task this process's sinks gave up on."""
        from supervisor import UnknownTaskError

        supervisor = self._supervisor
        if supervisor is None:
            return 0
        try:
            return int(supervisor.status(task_id).dropped)
        except UnknownTaskError:
            return 0

    def reset(self) -> None:
        """Shut down, then forget the sink functions and step counts (for tests)."""
        self.shutdown()
        with self._lock:
            self._sink_functions = dict.fromkeys(self._sink_functions)
            self._total_steps.clear()
        with self._lost_check_lock:
            self._next_lost_check = 0.0


_runtime = Runtime()


def get_runtime() -> Runtime:
    """Return this process's runtime, the one object behind the public functions."""
    return _runtime


def reset_runtime() -> None:
    _runtime.reset()
