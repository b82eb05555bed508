"""WAL checkpoints of ``workflows.sqlite3`` on a thread of the host, not in a commit.

Why: SQLite checkpoints a WAL file from inside the COMMIT that pushes it past
``wal_autocheckpoint`` pages (1,000), and with ``synchronous=NORMAL`` a checkpoint is where
the fsyncs happen: 10-20 ms on this machine's disk, every few hundred step commits, on
whichever event loop made that commit (the host's, or an isolate's committing its own
steps, ``local.py``). Every run in that process waited for it. Both connections now leave
checkpoints alone (``wal_autocheckpoint = 0``) and this thread runs a PASSIVE one every
``EVERY_S`` on a connection of its own; CPython releases the GIL while SQLite works, so
neither loop stops.

Durability is unchanged: a commit is in the WAL before it is acknowledged, which is what
survives a ``kill -9``; a checkpoint only copies committed pages into the main file. A
PASSIVE checkpoint never waits for a writer or a reader (it copies what it can), so it
never holds anyone up; when the thread stops (or the platform dies), the next start's
first checkpoint catches up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("edgelet.workflows")

#: how often the WAL is copied into the database file
EVERY_S = 0.05


def leave_checkpoints(conn: sqlite3.Connection) -> None:
    """This connection's commits never checkpoint (the :class:`Checkpointer` does)."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")


class Checkpointer:
    """A daemon thread checkpointing one database file every ``EVERY_S`` until stopped."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgelet-workflows-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        except sqlite3.Error as exc:  # the commits checkpoint nothing now: say why, once
            log.warning("WORKFLOWS cannot open %s to checkpoint it (%s); its WAL file will grow until "
                        "the next start", self.path, exc)
            return
        failed = False
        try:
            while not self._stop.wait(EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    failed = False
                except sqlite3.Error as exc:  # a full disk, say: try again later, say so once
                    if not failed:
                        log.warning("WORKFLOWS checkpoint of %s failed (%s); retrying", self.path, exc)
                    failed = True
        finally:
            conn.close()
