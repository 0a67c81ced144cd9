"""The web side: run jobs in supervised child processes and stream their messages.

``Supervisor`` starts each job in a child process (``forkserver`` or ``spawn``,
never ``fork``), reads what the child sends through its own pipes in one drain
thread, numbers the messages, applies the progress rules and hands every message
to every sink in order, each sink in a thread of its own. Nothing here imports
Django.
"""

from worker._spec import Limits

from ._escalation import signal_process_group, terminate
from ._sinks import BatchSink, Sink
from ._status import ErrorInfo, TaskState, TaskStatus
from ._stream import Message
from ._supervisor import Supervisor
from .exceptions import (
    InvalidStateTransitionError,
    InvalidTargetError,
    InvalidTaskIdError,
    SupervisorClosedError,
    SupervisorError,
    TaskAlreadyActiveError,
    UnknownTaskError,
    UnpicklableArgumentsError,
)

__all__ = [
    "BatchSink",
    "ErrorInfo",
    "InvalidStateTransitionError",
    "InvalidTargetError",
    "InvalidTaskIdError",
    "Limits",
    "Message",
    "Sink",
    "Supervisor",
    "SupervisorClosedError",
    "SupervisorError",
    "TaskAlreadyActiveError",
    "TaskState",
    "TaskStatus",
    "UnknownTaskError",
    "UnpicklableArgumentsError",
    "signal_process_group",
    "terminate",
]
