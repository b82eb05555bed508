"""Start the fork server before the CLI imports anything heavy (``edgelet dev``'s first act).

Why: the fork server imports the isolate runtime (asyncio, uvloop, msgpack, cloudpickle,
the SDK, every binding's isolate half); the host meanwhile imports click, starlette,
uvicorn, rich and the binding plug-ins. Launched first, the fork server's imports run on
another core while the host imports its own, and the host adopts the running server
(:meth:`edgelet.forkserver.ForkServer.start`) instead of starting one and waiting for it.
This module imports only ``os``, ``socket`` and ``sys``, so calling it costs about a
millisecond.

A server nobody adopts (the config has no Worker, the port is taken, ``--help``) ends by
itself: it reads EOF when the host's end of its socket closes (:func:`discard`, or the
host's exit), and it dies with the host in any case (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import os
import socket
import sys

#: (pid, the host's end of the control socket) of a fork server launched and not yet adopted
_early: tuple[int, socket.socket] | None = None


def wanted(argv: list[str]) -> bool:
    """``argv`` runs ``edgelet dev`` (not its help), with the fork server enabled."""
    if os.environ.get("EDGELET_FORKSERVER", "1") == "0" or len(argv) < 2 or argv[1] != "dev":
        return False
    if os.path.basename(argv[0]) not in ("edgelet", "cli.py"):  # only the edgelet program itself
        return False
    return not any(a in ("-h", "--help") for a in argv[2:])


def launch() -> None:
    """Spawn ``python -m edgelet.runtime.forkserver`` now; :func:`take` hands it over.

    ``posix_spawn`` rather than ``subprocess``: it needs no module beyond ``os``, and the
    only descriptors inherited are the standard ones and the server's socket."""
    global _early
    if _early is not None:
        return
    host_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fd = child_sock.fileno()
    os.set_inheritable(fd, True)
    try:
        pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "edgelet.runtime.forkserver", str(fd)],
                             os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)])
    except OSError:  # the host starts one the usual way
        host_sock.close()
        return
    finally:
        child_sock.close()
    _early = (pid, host_sock)


def take() -> tuple[int, socket.socket] | None:
    """The launched fork server's pid and socket, once (None if none was launched)."""
    global _early
    early, _early = _early, None
    return early


def discard() -> None:
    """End a launched fork server that will not be used (the config has no Worker)."""
    early = take()
    if early is None:
        return
    import signal
    pid, sock = early
    sock.close()
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
