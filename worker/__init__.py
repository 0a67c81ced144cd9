"""The child side: what a migration job calls to report its log and progress.

Inside a child started by the supervisor, every message is written to the
supervisor's pipe. Anywhere else the functions log through the ``worker`` logger
and send nothing, so jobs also run as plain scripts and in unit tests.
"""

from worker._api import get_progress, increment_progress, logging_helper, set_task_info
from worker._cancel import Cancelled
from worker._handler import WebSocketLogHandler
from worker._spec import ChildSpec, Limits

__all__ = [
    "Cancelled",
    "ChildSpec",
    "Limits",
    "WebSocketLogHandler",
    "get_progress",
    "increment_progress",
    "logging_helper",
    "set_task_info",
]
