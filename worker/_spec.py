"""What the supervisor hands a child process, and what the child sends back.

The child writes frames into its data pipe; the supervisor reads them. A frame is
one JSON object encoded as UTF-8 and terminated by ``b"\\n"``. JSON escapes every
newline inside strings, so a newline always ends a frame, and the reader can split
a large ``os.read`` into frames without a length header. Only JSON crosses the
pipe: the web process never unpickles anything the job controls.

Frames, identified by ``"k"``:

``{"k": "log", "message": str, "message_type": str, "progress": number | null,
"ts": float, "options": {...}}``
    One ``logging_helper`` call. ``ts`` is ``time.time()`` in the child.
    ``progress`` is a finite number or null; a value the child could not use
    (``"abc"``, ``True``, NaN) is sent as null with ``"progress_invalid": repr``
    so the supervisor can put a warning in the stream. ``message_type`` is passed
    through as a string; the supervisor maps unknown types to ``info``.
    ``options`` holds JSON-safe values only, with string keys.
``{"k": "result", "value": JSON}``
    The target returned; ``value`` is its return value made JSON-safe.
``{"k": "error", "type": str, "message": str, "traceback": str}``
    The target raised an exception (``type`` is ``module.QualName``, or the bare
    name for builtins).
``{"k": "exit", "code": int, "message": str | null}``
    The target raised ``SystemExit``; code 0 counts as success.
``{"k": "cancelled"}``
    The cancel exception reached the top of the child.

The child's file descriptors 1 and 2 are pipes read by the supervisor, which turns
each line into a ``log`` message of its own (``options["stream"]`` is ``stdout`` or
``stderr``), so output written just before a crash, such as faulthandler's
traceback, survives the process.
"""

from __future__ import annotations

import dataclasses
from multiprocessing.connection import Connection
from typing import Any

FRAME_LOG = "log"
FRAME_RESULT = "result"
FRAME_ERROR = "error"
FRAME_EXIT = "exit"
FRAME_CANCELLED = "cancelled"
FRAME_KINDS = frozenset(
    {FRAME_LOG, FRAME_RESULT, FRAME_ERROR, FRAME_EXIT, FRAME_CANCELLED}
)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits the child applies before a message crosses the pipe."""

    #: Characters of ``message`` kept; the rest is replaced by a truncation marker.
    max_message_chars: int = 64 * 1024
    #: Bytes of encoded ``options`` kept; larger values are cut with a marker.
    max_options_bytes: int = 64 * 1024

    @property
    def max_frame_bytes(self) -> int:
        """Maximum frame a well-behaved child writes; the reader drops longer ones."""
        return 4 * self.max_message_chars + self.max_options_bytes + 4096


@dataclasses.dataclass(frozen=True)
class ChildSpec:
    """Everything the child entry point needs, pickled by multiprocessing."""

    task_id: str
    #: Import path of the job, ``"package.module:function"``.
    target: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    total_steps: int | None
    #: Write end of the frame pipe.
    data: Connection
    #: Write ends that become the child's file descriptors 1 and 2.
    stdout: Connection
    stderr: Connection
    #: Read end of a pipe whose write end only the web process holds. End of file
    #: means the supervising process is gone, and the child kills its group.
    alive: Connection
    limits: Limits = dataclasses.field(default_factory=Limits)
