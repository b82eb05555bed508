"""Isolate side of ``edgelet dev``'s developer tools: the files a Worker imported, and
``breakpoint()``.

Imported files: after the script's top level has run, the isolate reports every module file
it loaded from outside the interpreter, site-packages and edgelet itself, so the host can
reload only the Workers that imported a file that changed (not every Worker beside it).

``breakpoint()``: ``sys.breakpointhook`` is replaced by :func:`breakpoint_hook`. When the
host serves a debugger relay (``dev`` runs in a terminal), pdb runs over a unix socket
whose other end is the host's terminal; the Worker's event loop waits at the prompt (the
host holds this Worker's request deadlines meanwhile), every other Worker keeps serving.
Without a relay, ``breakpoint()`` raises an error that says how to get a prompt, where
Python would otherwise fail later with a bare ``BdbQuit``.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

#: set by :func:`install` from the isolate's spec
_relay_path: str | None = None
_worker = ""


class DebuggerUnavailable(RuntimeError):
    """``breakpoint()`` where no terminal can host a debugger."""


@functools.cache
def interpreter_dirs() -> frozenset[str]:
    """The interpreter's and site-packages' folders (read once, in the fork server)."""
    paths = sysconfig.get_paths()
    return frozenset(os.path.realpath(p) + os.sep for p in (
        sys.prefix, sys.base_prefix, sys.exec_prefix, paths.get("purelib", sys.prefix),
        paths.get("platlib", sys.prefix), paths.get("stdlib", sys.prefix)))


def user_module_files(platform_dirs: tuple[str, ...],
                      modules: Iterable[ModuleType] | None = None) -> list[str]:
    """The ``.py`` files of loaded modules that belong to the user (their own code).

    ``modules``: only these (those the script's import added; every loaded module by
    default), so an isolate checks a few paths instead of the runtime's hundreds."""
    skip = set(interpreter_dirs())
    skip.update(platform_dirs)
    files: set[str] = set()
    for module in list(sys.modules.values()) if modules is None else modules:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            continue
        real = os.path.realpath(path)
        if any(real.startswith(prefix) for prefix in skip) or "site-packages" in real:
            continue
        files.add(real)
    return sorted(files)


#: how often an isolate looks for modules imported after its start
IMPORT_CHECK_S = 0.25


async def report_late_imports(platform_dirs: tuple[str, ...], known: Iterable[str],
                              notify: Callable[[list[str]], None]) -> None:
    """Report the user's files a Worker imports after its start (an ``import`` inside a
    handler, as Python Workers are told to do for heavy modules), so that ``dev`` reloads
    it when one of them changes; the start's imports are in the ``init`` answer.

    Why a poll: an import hook would run inside every import; ``len(sys.modules)`` every
    quarter second costs little, and only a change makes it look at the new modules. It
    runs only where something reloads on edits (the spec's ``watch_imports``: ``edgelet dev``
    without ``--no-reload``), not in every isolate of tests, benchmarks or ``--no-reload``."""
    import asyncio

    reported = set(known)
    seen = set(sys.modules)
    while True:
        await asyncio.sleep(IMPORT_CHECK_S)
        if len(sys.modules) == len(seen):
            continue
        names = set(sys.modules)
        new = [sys.modules[n] for n in names - seen if n in sys.modules]
        seen = names
        files = [f for f in user_module_files(platform_dirs, new) if f not in reported]
        if files:
            reported.update(files)
            notify(files)


def install(worker: str, relay_path: str | None) -> None:
    """Route ``breakpoint()`` through :func:`breakpoint_hook` (unless PYTHONBREAKPOINT=0)."""
    global _relay_path, _worker
    _relay_path = relay_path
    _worker = worker
    if os.environ.get("PYTHONBREAKPOINT") == "0":
        return
    sys.breakpointhook = breakpoint_hook


def breakpoint_hook(*args: Any, **kwargs: Any) -> None:
    """``breakpoint()`` inside a Worker: a pdb prompt on ``dev``'s terminal, or a clear error."""
    frame = sys._getframe(1)
    where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
    if _relay_path is None:
        raise DebuggerUnavailable(
            f"breakpoint() at {where} in Worker {_worker!r}: no terminal to debug in. Run "
            f"`edgelet dev` in a terminal (stdin a tty) to get a pdb prompt there, or set "
            f"PYTHONBREAKPOINT=0 to make breakpoint() do nothing")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(_relay_path)
    except OSError as exc:
        sock.close()
        raise DebuggerUnavailable(
            f"breakpoint() at {where} in Worker {_worker!r}: the debugger relay of `edgelet dev` "
            f"is not reachable ({exc.strerror or exc})") from None
    sock.sendall(f"{_worker}\t{os.getpid()}\t{where}\n".encode())
    from edgelet.runtime.isolate import Runtime
    if Runtime.current is not None:  # answers queued this iteration must not wait for the prompt
        Runtime.current.channel.flush()
    _socket_pdb()(sock).set_trace(frame)


@functools.cache
def _socket_pdb() -> type:
    """The class of pdb over a socket, made at the first ``breakpoint()`` so that pdb's
    imports stay out of every isolate's start."""
    import pdb

    class SocketPdb(pdb.Pdb):
        """pdb reading and writing a socket; the connection ends when the user continues."""

        def __init__(self, sock: socket.socket) -> None:
            self._sock = sock
            # two files: one read-write text file drops its read-ahead on every write, which
            # lost every line typed after the first when several arrived together
            self._in = sock.makefile("r", encoding="utf-8", newline="\n")
            self._file = sock.makefile("w", encoding="utf-8", newline="\n", buffering=1)
            super().__init__(stdin=self._in, stdout=self._file, nosigint=True)
            self.prompt = "(Pdb) "

        def _close(self) -> None:
            try:
                self._file.flush()
                self._file.close()
                self._in.close()
                self._sock.close()
            except OSError:
                pass

        def set_continue(self) -> None:
            super().set_continue()
            if not self.breaks:  # nothing can stop here again: hand the terminal back
                self._close()

        def set_quit(self) -> None:
            super().set_quit()
            self._close()

    return SocketPdb
