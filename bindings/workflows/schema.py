"""The whole durable state of Workflows: one SQLite database, four tables.

Read this file to know what survives a ``kill -9``. Everything else (the scheduler's
running set, the one armed timer, test mocks) is rebuilt from these rows on start.

``instances``
    One row per instance, forever (ids stay unique per workflow). ``seq`` is the creation
    order and the key the other tables use. ``status`` is exactly what users see.
    A ``waiting`` instance is nothing but this row: ``wake_at`` says when the scheduler
    dispatches it again (sleep over, retry due, event timeout) and ``waiting_for`` lists the
    event types that wake it sooner. ``generation`` grows on restart/terminate so that a
    run still in flight can no longer record anything.
``steps``
    The history: one row per step occurrence, keyed by (instance, name, count) where
    ``count`` numbers the calls with that name in call order. ``kind`` is step / sleep /
    waitForEvent. ``state`` is ``ok`` (``value`` holds the codec-encoded result or event),
    ``failed`` (``error_*``; replays raise it again), ``pending`` (a sleep or an event wait
    not over yet; ``wake_at`` is its end or deadline) or ``retrying`` (a step between
    attempts; ``wake_at`` is when the next attempt may start). ``seq`` orders the history
    for ``describe`` and ``restart(from_step=...)``.
``attempts``
    Every finished attempt of a step, for ``describe``: times, outcome, error, except the
    one attempt of a step that succeeded at its first try: that attempt is the step row's
    own ``started``/``ended`` (``views.steps`` lists it from there; files written before
    this rule hold a row for it as well, and both read the same). An attempt cut short by
    a crash leaves no row and runs again (at least once per attempt; exactly once per
    recorded result).
``events``
    ``sendEvent`` payloads in arrival order. ``consumed_by`` is NULL while buffered and
    names the waitForEvent ("name#count") that took it.

``rollbacks`` and ``rollback_attempts`` (version 2)
    The saga half: when an instance fails, the rollback of each completed step that
    declared one runs in reverse step-start order and is recorded here exactly like a step
    (``ok``, ``failed`` after its retries, or ``retrying`` with ``wake_at``). A recorded
    rollback never runs again: a replay after a crash skips it. ``seq`` is the order they ran.

Why SQLite in WAL mode with synchronous=NORMAL: a commit survives the death of the process
(the platform), which is what the durability promise is about, without an fsync per step.

Versions (``PRAGMA user_version``, see :mod:`edgelet.state`):
    1. The layout of edgelet before versions were recorded (version 0), stamped.
    2. ``rollbacks`` and ``rollback_attempts`` (saga rollbacks), and ``instances_by_end``:
       finished instances by end time, for the retention sweep.
    3. ``history_events``: what ``subscribe`` replays (see ``events.py``); written once per
       loop turn, so a ``kill -9`` may lose the last turn's events, never a step.
    4. ``attempts_in_flight``: attempts still running a moment after they started (fast
       ones never get here). The row is removed when the step is recorded; one written by an
       earlier platform run was cut off by a crash, and ``describe`` lists it; so is one whose
       isolate died while the platform ran on (``boot`` set to 0 then).
    5. ``history_events.started``: a step that succeeded at its first attempt is one row,
       not three. A ``step.completed`` row with ``started`` set stands for three events:
       ``step.started`` (eventId ``id - 2``) and ``attempt.started`` (``id - 1``, attempt 1),
       both at ``started``, and itself (``id``); readers expand it (``events.expand``), so
       ``subscribe`` and its cursors see exactly the events of a file written before. Rows
       written before this version have ``started`` NULL and are read as they are.
       Why: with many instances running, each flush of events wrote three index entries per
       step at as many places of ``history_events_by_instance``, holding the write lock the
       isolates commit their steps under for most of each flush.
"""

from __future__ import annotations

import sqlite3

from edgelet.state import Schema, migrate

#: the file is ``<state folder>/workflows.sqlite3``
DATABASE = "workflows"

STATUSES = ("queued", "running", "paused", "waitingForPause", "waiting",
            "errored", "terminated", "complete", "unknown")
FINISHED = ("errored", "terminated", "complete")
LIVE = ("queued", "running", "paused", "waitingForPause", "waiting")

DDL = """
CREATE TABLE IF NOT EXISTS workflows (
    name        TEXT PRIMARY KEY,          -- the workflow's config name
    class_name  TEXT NOT NULL,             -- the WorkflowEntrypoint subclass that runs it
    script_name TEXT NOT NULL,             -- the Worker whose script defines that class
    created     REAL NOT NULL,
    modified    REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS instances (
    seq           INTEGER PRIMARY KEY,     -- creation order
    workflow      TEXT NOT NULL,
    id            TEXT NOT NULL,
    status        TEXT NOT NULL,           -- one of STATUSES
    generation    INTEGER NOT NULL DEFAULT 0,
    params        BLOB,                    -- codec-encoded event.payload
    trigger       TEXT NOT NULL DEFAULT 'api',   -- api | binding | cron
    created       REAL NOT NULL,
    started       REAL,
    ended         REAL,
    modified      REAL NOT NULL,
    wake_at       REAL,                    -- status waiting: when to dispatch again
    waiting_for   TEXT,                    -- status waiting: JSON list of event types
    output        BLOB,                    -- codec-encoded return value of run
    error_name    TEXT,
    error_message TEXT,
    UNIQUE (workflow, id)
);
-- the queue (status = 'queued' in creation order) and listings by status
CREATE INDEX IF NOT EXISTS instances_by_status ON instances (workflow, status, seq);
-- the wake-up index: the earliest waiting instance per workflow
CREATE INDEX IF NOT EXISTS instances_by_wake ON instances (workflow, status, wake_at);

CREATE TABLE IF NOT EXISTS steps (
    instance      INTEGER NOT NULL,        -- instances.seq
    name          TEXT NOT NULL,
    count         INTEGER NOT NULL,        -- 1 for the first call with this name, 2 ...
    seq           INTEGER NOT NULL,        -- history order
    kind          TEXT NOT NULL,           -- step | sleep | waitForEvent
    state         TEXT NOT NULL,           -- ok | failed | pending | retrying
    value         BLOB,                    -- codec-encoded result (step) or event (waitForEvent)
    error_name    TEXT,
    error_message TEXT,
    config        TEXT,                    -- JSON: resolved step config / wait parameters
    started       REAL NOT NULL,
    ended         REAL,
    wake_at       REAL,                    -- pending/retrying: when it is due
    PRIMARY KEY (instance, name, count)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS steps_in_order ON steps (instance, seq);

CREATE TABLE IF NOT EXISTS attempts (
    instance      INTEGER NOT NULL,
    name          TEXT NOT NULL,
    count         INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,        -- 1 = the first try
    started       REAL NOT NULL,
    ended         REAL NOT NULL,
    success       INTEGER NOT NULL,
    error_name    TEXT,
    error_message TEXT,
    PRIMARY KEY (instance, name, count, attempt)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,       -- arrival order
    instance    INTEGER NOT NULL,
    type        TEXT NOT NULL,
    payload     BLOB,                      -- codec-encoded
    timestamp   REAL NOT NULL,
    consumed_by TEXT                       -- NULL = buffered; else "name#count"
);
CREATE INDEX IF NOT EXISTS events_buffered ON events (instance, type, seq) WHERE consumed_by IS NULL;
"""


ROLLBACKS = """
CREATE TABLE IF NOT EXISTS rollbacks (
    instance      INTEGER NOT NULL,        -- instances.seq
    name          TEXT NOT NULL,           -- the step it undoes
    count         INTEGER NOT NULL,
    seq           INTEGER NOT NULL,        -- the order rollbacks ran in
    state         TEXT NOT NULL,           -- ok | failed | retrying
    error_name    TEXT,
    error_message TEXT,
    config        TEXT,                    -- JSON: resolved rollback_config
    started       REAL NOT NULL,
    ended         REAL,
    wake_at       REAL,                    -- retrying: when the next attempt may start
    PRIMARY KEY (instance, name, count)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rollback_attempts (
    instance      INTEGER NOT NULL,
    name          TEXT NOT NULL,
    count         INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    started       REAL NOT NULL,
    ended         REAL NOT NULL,
    success       INTEGER NOT NULL,
    error_name    TEXT,
    error_message TEXT,
    PRIMARY KEY (instance, name, count, attempt)
) WITHOUT ROWID;

-- the retention sweep: the oldest finished instances of a workflow
CREATE INDEX IF NOT EXISTS instances_by_end ON instances (workflow, ended)
    WHERE status IN ('complete', 'errored', 'terminated');
"""

HISTORY_EVENTS = """
CREATE TABLE IF NOT EXISTS history_events (
    id        INTEGER PRIMARY KEY,         -- eventId: grows across the database; the cursor
    instance  INTEGER NOT NULL,            -- instances.seq
    type      TEXT NOT NULL,               -- Cloudflare's event type (events.EVENT_TYPES)
    timestamp REAL NOT NULL,
    step      TEXT,                        -- step.*, attempt.*, sleep.*, wait.*, rollback.*
    count     INTEGER,
    attempt   INTEGER,
    data      TEXT,                        -- JSON: error {name, message}, until, event_type
    output    BLOB                         -- codec-encoded output (step, wait, workflow.completed)
    -- version 5 adds: started REAL (see HISTORY_EVENTS_STARTED)
);
CREATE INDEX IF NOT EXISTS history_events_by_instance ON history_events (instance, id);
"""

ATTEMPTS_IN_FLIGHT = """
CREATE TABLE IF NOT EXISTS attempts_in_flight (
    id       INTEGER PRIMARY KEY,
    instance INTEGER NOT NULL,             -- instances.seq
    name     TEXT NOT NULL,
    count    INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    started  REAL NOT NULL,
    boot     REAL NOT NULL                 -- the platform run that wrote it (recorder.boot); 0: its isolate died
);
CREATE INDEX IF NOT EXISTS attempts_in_flight_by_step ON attempts_in_flight (instance, name, count);
"""

HISTORY_EVENTS_STARTED = """
-- set on a step.completed row that also stands for the step's step.started (id - 2) and
-- attempt.started (id - 1, attempt 1) events at this time; NULL on every other row
ALTER TABLE history_events ADD COLUMN started REAL;
"""

SCHEMA = Schema("workflows", [DDL, ROLLBACKS, HISTORY_EVENTS, ATTEMPTS_IN_FLIGHT, HISTORY_EVENTS_STARTED])


def install(conn: sqlite3.Connection) -> None:
    """Bring ``conn`` to the current version (creating the tables in a new file)."""
    migrate(conn, SCHEMA)
