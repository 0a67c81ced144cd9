"""Starting a child process with its pipes, without forking the web process."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib
import io
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.popen_forkserver
import multiprocessing.process
import os
import sys
from multiprocessing import reduction, spawn, util
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext, set_spawning_popen
from typing import Any

from worker._spec import ChildSpec, Limits

__all__ = ["ChildLauncher", "LaunchedChild", "default_start_method"]

#: Modules the forkserver imports once, so a child starts with them loaded.
PRELOAD = ["worker._child", "supervisor._process"]
CHILD_ENTRY_MODULE = "worker._child"
PIPE_BUFFER_BYTES = 1 << 20


def default_start_method() -> str:
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


class _ForkServerPopen(multiprocessing.popen_forkserver.Popen):
    """Start a process through the supervisor's own forkserver.

    Unlike the standard one, it leaves out the main-module fix-up: that would
    make every child run the web process's ``__main__`` script again (daphne's,
    gunicorn's or pytest's), which costs an import of a whole web stack per
    start. Targets are import paths, so children never need ``__main__``.

    NOTE: this overrides a private method of ``multiprocessing`` (checked
    against CPython 3.11); recheck it when moving to a newer Python.
    """

    def _launch(self, process_obj: Any) -> None:
        server: multiprocessing.forkserver.ForkServer = process_obj.server
        prep_data = spawn.get_preparation_data(process_obj.name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buffer = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buffer)
            reduction.dump(process_obj, buffer)
        finally:
            set_spawning_popen(None)

        self.sentinel, write_fd = server.connect_to_new_process(
            self._fds  # type: ignore[attr-defined]
        )
        # As in the standard library: a duplicate of the write end tells the
        # child that its parent is alive.
        parent_w = os.dup(write_fd)
        self.finalizer = util.Finalize(
            self,
            util.close_fds,  # type: ignore[attr-defined]
            (parent_w, self.sentinel),
        )
        with open(write_fd, "wb", closefd=True) as stream:
            stream.write(buffer.getbuffer())
        self.pid = multiprocessing.forkserver.read_signed(self.sentinel)


class ChildProcess(multiprocessing.process.BaseProcess):
    """A process started by a given (private) forkserver."""

    _start_method = "forkserver"

    def __init__(
        self, server: multiprocessing.forkserver.ForkServer, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.server = server

    @staticmethod
    def _Popen(process_obj: Any) -> _ForkServerPopen:
        return _ForkServerPopen(process_obj)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("server", None)
        return state


@dataclasses.dataclass
class LaunchedChild:
    """A started child process and the parent's ends of its pipes."""

    process: multiprocessing.process.BaseProcess
    data_fd: int
    stdout_fd: int
    stderr_fd: int
    #: Write end of the alive pipe; closing it (or the web process dying) makes
    #: the child kill every descendant and then its process group.
    alive_fd: int


def _enlarge_pipe(fd: int) -> None:
    # A larger pipe buffer lets the child write longer before it blocks and
    # the drain thread read more frames per wake-up. Linux only; the default
    # buffer (64 KiB) stays where the call fails.
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_size, PIPE_BUFFER_BYTES)


class ChildLauncher:
    """Start children with ``forkserver`` (own server) or ``spawn``, never ``fork``."""

    def __init__(self, start_method: str | None) -> None:
        method = default_start_method() if start_method is None else start_method
        if method == "fork":
            raise ValueError(
                "invalid start_method 'fork': forking a threaded web process can "
                "deadlock the child on locks held at that moment and shares the "
                "parent's database connections; use 'forkserver' or 'spawn'"
            )
        if method not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"invalid start_method {method!r}: use 'forkserver' or 'spawn' "
                f"(available here: {multiprocessing.get_all_start_methods()})"
            )
        self.start_method = method
        self._context: BaseContext = multiprocessing.get_context(method)
        self._server: multiprocessing.forkserver.ForkServer | None = None
        if method == "forkserver":
            self._server = multiprocessing.forkserver.ForkServer()
            self._server.set_forkserver_preload(PRELOAD)

    def warm_up(self) -> None:
        """Start the forkserver now, so the first task does not wait for it."""
        if self._server is not None:
            self._server.ensure_running()

    def launch(
        self,
        task_id: str,
        target: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        total_steps: int | None,
        limits: Limits,
    ) -> LaunchedChild:
        """Start a child running ``target`` and return it with its pipes."""
        entry = importlib.import_module(CHILD_ENTRY_MODULE).main
        data, stdout, stderr, alive = (os.pipe() for _ in range(4))
        _enlarge_pipe(data[0])
        child_ends = (
            Connection(data[1], readable=False),
            Connection(stdout[1], readable=False),
            Connection(stderr[1], readable=False),
            Connection(alive[0], writable=False),
        )
        spec = ChildSpec(
            task_id=task_id,
            target=target,
            args=args,
            kwargs=kwargs,
            total_steps=total_steps,
            data=child_ends[0],
            stdout=child_ends[1],
            stderr=child_ends[2],
            alive=child_ends[3],
            limits=limits,
        )
        try:
            process = self._start(task_id, entry, spec)
        except BaseException:
            for fd in (data[0], stdout[0], stderr[0], alive[1]):
                os.close(fd)
            raise
        finally:
            for end in child_ends:
                end.close()
        return LaunchedChild(process, data[0], stdout[0], stderr[0], alive[1])

    def _start(
        self, task_id: str, entry: Any, spec: ChildSpec
    ) -> multiprocessing.process.BaseProcess:
        name = f"task-{task_id}"
        process: multiprocessing.process.BaseProcess
        if self._server is not None:
            self._server.ensure_running()
            process = ChildProcess(self._server, target=entry, args=(spec,), name=name)
        else:
            # NOTE: with spawn the standard main-module fix-up still runs, so
            # each child imports the web process's __main__ script again.
            process = self._context.Process(target=entry, args=(spec,), name=name)  # type: ignore[attr-defined]
        process.start()
        # The supervisor reaps its children itself. Left in multiprocessing's
        # registry, any thread calling active_children() or starting another
        # process would poll them too, racing for the exit status.
        multiprocessing.process._children.discard(process)  # type: ignore[attr-defined]
        return process

    def close(self) -> None:
        """Stop the forkserver; children already started keep running."""
        if self._server is not None:
            self._server._stop()  # type: ignore[attr-defined]
