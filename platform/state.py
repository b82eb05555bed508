"""Opening the state folder's SQLite files: one opener for the host, the isolates and the CLIs.

Why one place: every store (KV, queues, Durable Objects, workflows, and the bindings still
to come) keeps its state as ``<state folder>/<name>.sqlite3``. Opening one safely takes more
than ``sqlite3.connect``: WAL and synchronous=NORMAL (a commit survives ``kill -9`` of the
platform), a busy timeout, a cheap check that the file is a database at all, a schema
version, and failures told as "which file or folder, why, and what to do" instead of a
bare ``sqlite3.OperationalError`` traceback that names no path. Doing that in each store
and CLI is how it went wrong before; here it is done once.

The integrity check is cheap on purpose: at open, the first read (``PRAGMA user_version``
or ``schema_version``) makes SQLite parse page 1, which catches a file that is not a
database (or whose header was overwritten) in microseconds whatever the file's size;
``PRAGMA quick_check`` would read every page. At start, :func:`check_folder` also reads the
16-byte header of every store file, so one damaged file stops the start before any other
file was opened or migrated.

Schema versions live in ``PRAGMA user_version``. Each store declares a :class:`Schema` (its
own ``schema.py``): the migration steps from version 0 (the unversioned layout of edgelet
before versions were recorded) up to the current one. :func:`migrate` runs the steps the
file still lacks, each in one transaction with its new version number, so a crash during a
migration leaves the file at the old version or the new one, never between.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: the first 16 bytes of every SQLite 3 database file
SQLITE_HEADER = b"SQLite format 3\x00"

#: milliseconds a writer waits for another connection's lock before giving up
BUSY_TIMEOUT_MS = 5000

#: one migration step: a SQL script (no BEGIN/COMMIT of its own), or a function of the connection
Step = str | Callable[[sqlite3.Connection], None]


class StateError(RuntimeError):
    """A state folder or file edgelet cannot use. The message is the whole story: what,
    where, why and the fix, fit to show a user as is (no traceback)."""


@dataclass(frozen=True)
class Schema:
    """A store's tables as a sequence of versions.

    ``steps[i]`` turns version ``i`` into version ``i + 1``; the current version is
    ``len(steps)``. Version 0 is a file written before versions were recorded (or a new,
    empty one), so ``steps[0]`` must be idempotent: ``CREATE ... IF NOT EXISTS`` of the
    layout as it was then.
    """

    name: str
    steps: Sequence[Step]

    @property
    def version(self) -> int:
        return len(self.steps)


def database_path(state_dir: Path, name: str) -> Path:
    """Where the store ``name`` keeps its database in a state folder."""
    return Path(state_dir) / f"{name}.sqlite3"


def open_database(path: Path | str | None, *, read_only: bool = False, exclusive: bool = False,
                  schema: Schema | None = None) -> sqlite3.Connection:
    """Open (creating it and its folder if needed) the SQLite file at ``path``.

    ``None`` or ``":memory:"`` opens a private in-memory database. The connection is in
    autocommit mode (``isolation_level=None``; stores open their own transactions) and usable
    from any thread. Writable files get WAL with synchronous=NORMAL; ``exclusive`` keeps the
    file locked for this connection alone (no ``-shm`` file: a Durable Object's database,
    which only its isolate opens). ``read_only`` opens an existing file without changing it
    (CLIs reading a state folder). With ``schema``, the file is migrated to its current
    version (read-only: only checked not to be newer).

    Raises :class:`StateError` for a folder that cannot be written, a file that is not a
    database, or a file written by a newer edgelet.
    """
    if path is None or str(path) == ":memory:":
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        if schema is not None:
            migrate(conn, schema)
        return conn
    # Only what the open itself needs is checked here (a Durable Object opens its file on
    # every activation); why a failure happened is worked out in _explain, after the fact.
    path = Path(path)
    if not read_only:
        _make_folder(path.parent)
        if not os.access(path, os.R_OK | os.W_OK) and path.exists():
            raise _read_only_file(path.absolute())
    timeout = BUSY_TIMEOUT_MS / 1000
    try:
        if read_only:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                                   isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _explain(path.absolute(), exc) from None
    try:
        if exclusive and not read_only:  # before the first read, or WAL would map a -shm file
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        # The first read parses page 1, which is the integrity check: "is this a database?"
        if schema is None:
            conn.execute("PRAGMA schema_version").fetchone()
        else:
            found = _refuse_newer(conn, schema)  # before anything below writes to the file
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute("PRAGMA synchronous=NORMAL")
            if schema is not None:
                _run_steps(conn, schema, found)
    except sqlite3.Error as exc:
        conn.close()
        raise _explain(path.absolute(), exc) from None
    except StateError:
        conn.close()
        raise
    return conn


def check_folder(state_dir: Path) -> None:
    """Before anything opens a store: the folder is writable and every store file in it
    starts like a database. Checked up front so that one bad file stops the start before
    any other file was opened (and migrated); reads 16 bytes per file."""
    state_dir = Path(state_dir).absolute()
    _check_writable(database_path(state_dir, "probe"))
    for path in sorted(state_dir.glob("*.sqlite3")):
        _check_header(path)


def migrate(conn: sqlite3.Connection, schema: Schema, *, read_only: bool = False) -> int:
    """Bring ``conn``'s database to ``schema.version``; return the version it was at.

    Each step commits together with its new ``user_version``. A file from a newer edgelet
    is refused (its layout is unknown here) rather than read wrongly or written to.
    Read-only, older files are read as they are: readers accept every version since 0.
    """
    found = _refuse_newer(conn, schema)
    if not read_only:
        _run_steps(conn, schema, found)
    return found


def _run_steps(conn: sqlite3.Connection, schema: Schema, found: int) -> None:
    """The migration steps from version ``found`` on, each committed with its version."""
    for version in range(found, schema.version):
        step = schema.steps[version]
        try:
            if isinstance(step, str):
                # one script, one transaction: executescript would commit a transaction
                # opened before it, so BEGIN and COMMIT are part of the script
                conn.executescript(f"BEGIN IMMEDIATE;\n{step}\n;PRAGMA user_version = {version + 1};\nCOMMIT;")
            else:
                conn.execute("BEGIN IMMEDIATE")
                step(conn)
                conn.execute(f"PRAGMA user_version = {version + 1}")
                conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StateError(
                    f"{_file_of(conn)}: upgrading its {schema.name} tables from schema version "
                    f"{version} to {version + 1} failed ({exc}); nothing of that step was stored, "
                    f"the file is still at version {version}. Fix: start from another state folder "
                    f"(--persist-to DIR) and report this, with the file, as a bug of edgelet.") from None
            raise


def _refuse_newer(conn: sqlite3.Connection, schema: Schema) -> int:
    """The file's version, unless it is newer than this edgelet knows."""
    found = schema_version(conn)
    if found > schema.version:
        raise StateError(
            f"{_file_of(conn)} holds {schema.name} state written by a newer edgelet (schema version "
            f"{found}; this edgelet knows versions up to {schema.version}). Nothing was changed. Fix: "
            f"run the newer edgelet, or start from another state folder (--persist-to DIR) and keep "
            f"this one for it.")
    return found


def schema_version(conn: sqlite3.Connection) -> int:
    """The ``user_version`` recorded in ``conn``'s database (0: unversioned or new)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


# -- checks and messages ------------------------------------------------------------------------
def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StateError(f"edgelet's state folder {folder.absolute()} is a file, not a folder. Fix: "
                         f"move the file away, or pass --persist-to DIR to use another folder.") from None
    except OSError as exc:
        raise _folder_error(folder.absolute(), exc.strerror or str(exc)) from None


def _check_writable(path: Path) -> None:
    """The folder must exist (made here) and accept new files: SQLite creates ``-wal`` and
    ``-shm`` files beside the database, so a writable file in a read-only folder fails too."""
    folder = path.parent
    _make_folder(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _folder_error(folder, _why_not_writable(folder))
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise _read_only_file(path)


def _read_only_file(path: Path) -> StateError:
    return StateError(
        f"edgelet cannot write its state file {path}: the file is read-only for this user. "
        f"edgelet must update it in place. Fix: make it writable (chmod u+rw '{path}'), or pass "
        f"--persist-to DIR to use another folder, or --in-memory to keep no state.")


def _why_not_writable(folder: Path) -> str:
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except OSError:
        pass
    return "this user may not create files in it"


def _folder_error(folder: Path, why: str) -> StateError:
    if "read-only file system" in why:
        fix = "remount that file system read-write"
    else:
        fix = f"make it writable (chmod u+rwx '{folder}', or chown it to this user)"
    return StateError(
        f"edgelet cannot write to the state folder {folder}: {why}. edgelet keeps its SQLite "
        f"databases there and creates their journal files beside them, so it needs to create "
        f"and change files in that folder. Fix: {fix}, or pass --persist-to DIR to use another "
        f"folder, or --in-memory to keep no state.")


def _check_header(path: Path) -> None:
    """A file that exists must start like a SQLite database (an empty file is a new one)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise StateError(f"edgelet's state file {path} is a folder, not a file. Fix: move it "
                         f"aside (or delete it to start that store afresh).") from None
    except OSError as exc:
        raise _explain(path, exc) from None
    if head and head != SQLITE_HEADER:
        raise _damaged(path, _NO_HEADER)


_NO_HEADER = "it does not start with the SQLite header (it was overwritten or is not a database)"


def _header_is_bad(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError:
        return False
    return bool(head) and head != SQLITE_HEADER


def _damaged(path: Path, why: str) -> StateError:
    return StateError(
        f"edgelet's state file {path} is damaged: {why}. edgelet left it as it is. "
        f"Fix: move it aside (mv '{path}' '{path}.damaged') to keep it for "
        f"inspection, or delete it to start this store afresh; every other store keeps its data.")


def _explain(path: Path, exc: BaseException) -> StateError:
    """The clearest message for a failure to open or prepare ``path``."""
    text = str(exc)
    err = getattr(exc, "errno", None)
    if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "corrupt" in text):
        return _damaged(path, _NO_HEADER if _header_is_bad(path) else f"SQLite says: {text}")
    if err in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or "read-only" in text \
            or "unable to open" in text:
        folder = path.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            return _folder_error(folder, _why_not_writable(folder))
        return StateError(
            f"edgelet cannot open its state file {path} for writing (SQLite says: {text}). "
            f"Fix: make the file and its folder writable by this user, or pass --persist-to DIR "
            f"to use another folder, or --in-memory to keep no state.")
    return StateError(f"edgelet cannot open its state file {path}: {text}. Fix: check the file "
                      f"and its folder, or pass --persist-to DIR to use another folder.")


def _file_of(conn: sqlite3.Connection) -> str:
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return f"the state file {file}" if file else "the in-memory database"
    return "the database"
