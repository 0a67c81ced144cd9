"""The tasks a supervisor tracks: active ones, the FIFO queue, recent ended ones."""

from __future__ import annotations

import collections
import threading

from ._status import TaskState
from ._task import TaskRecord
from .exceptions import TaskAlreadyActiveError, UnknownTaskError

__all__ = ["TaskRegistry"]


class TaskRegistry:
    """Task records, guarded by ``lock``, which callers hold around every use.

    Ended tasks are kept in a least-recently-ended order and the oldest are
    forgotten beyond ``max_ended``, so a long-lived web process does not grow
    without bound.
    """

    def __init__(self, max_workers: int, max_ended: int) -> None:
        self.lock = threading.Lock()
        self.max_workers = max_workers
        self.max_ended = max_ended
        self.closed = False
        self.active: dict[str, TaskRecord] = {}
        self.queue: collections.deque[TaskRecord] = collections.deque()
        self.ended: collections.OrderedDict[str, TaskRecord] = collections.OrderedDict()

    def add(self, record: TaskRecord) -> None:
        """Queue a new task; raise if a task with its id is still active."""
        if record.task_id in self.active:
            raise TaskAlreadyActiveError(
                f"task {record.task_id!r} is already "
                f"{self.active[record.task_id].state.value}; wait for it to end "
                "or cancel it before starting it again"
            )
        self.active[record.task_id] = record
        self.queue.append(record)

    def get(self, task_id: str) -> TaskRecord:
        """Return the active or recently ended task ``task_id``."""
        record = self.active.get(task_id) or self.ended.get(task_id)
        if record is None:
            raise UnknownTaskError(
                f"unknown task id {task_id!r}: no such task was started, or it "
                f"ended before the last {self.max_ended} ended tasks"
            )
        return record

    def running(self) -> list[TaskRecord]:
        return [r for r in self.active.values() if r.state is TaskState.RUNNING]

    def next_to_start(self) -> TaskRecord | None:
        """Take the oldest queued task if a worker slot is free."""
        if not self.queue or len(self.running()) >= self.max_workers:
            return None
        return self.queue.popleft()

    def retire(self, record: TaskRecord) -> None:
        """Move an ended task from the active ones to the ended ones."""
        if self.active.get(record.task_id) is record:
            del self.active[record.task_id]
        if record in self.queue:
            self.queue.remove(record)
        self.ended[record.task_id] = record
        self.ended.move_to_end(record.task_id)
        while len(self.ended) > self.max_ended:
            self.ended.popitem(last=False)
