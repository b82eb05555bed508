"""Host side of ``breakpoint()`` under ``edgelet dev``: a unix socket whose sessions are
relayed to dev's terminal.

An isolate that hits ``breakpoint()`` connects (see :mod:`edgelet.runtime.devtools`) and
runs pdb over the connection. While a session lasts the relay owns the terminal: hotkeys
are paused (the terminal is back in line mode with echo), what pdb writes goes to stdout,
each line typed goes to pdb, and that Worker's request deadlines are held so the waiting
request is not timed out. Other Workers keep serving; one session at a time holds the
terminal, the next waits its turn.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


class DebugRelay:
    def __init__(self, host: Any, hotkeys: Any | None) -> None:
        self.host = host
        self.hotkeys = hotkeys
        self._dir = Path(tempfile.mkdtemp(prefix="edgelet-pdb-"))
        self.path = str(self._dir / "pdb.sock")
        self._server: asyncio.AbstractServer | None = None
        self._turn = asyncio.Lock()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._session, self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._turn:
            header = (await reader.readline()).decode(errors="replace").rstrip("\n").split("\t")
            worker = header[0]
            where = header[2] if len(header) > 2 else "?"
            isolate = self.host.isolates.get(worker)
            if isolate is not None:
                isolate.hold_deadlines(True)
            if self.hotkeys is not None:
                self.hotkeys.pause()
            _out(f"\n-- breakpoint() in Worker {worker!r} at {where}: pdb on this terminal; "
                 f"this Worker waits (its requests queue), other Workers keep serving. `c` continues. --\n")
            loop = asyncio.get_running_loop()
            fd = sys.stdin.fileno()

            def typed() -> None:
                data = os.read(fd, 4096)
                if not data:  # Ctrl-D: pdb reads EOF and quits
                    loop.remove_reader(fd)
                    writer.write_eof()
                    return
                writer.write(data)

            loop.add_reader(fd, typed)
            try:
                while chunk := await reader.read(4096):
                    _out(chunk.decode(errors="replace"))
            except ConnectionError:
                pass
            finally:
                loop.remove_reader(fd)
                writer.close()
                if isolate is not None:
                    isolate.hold_deadlines(False)
                _out(f"-- Worker {worker!r} resumed --\n")
                if self.hotkeys is not None:
                    self.hotkeys.resume()


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
