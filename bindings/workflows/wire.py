"""The records a running workflow sends its host half (``runtime.call_host("workflows",
method, record)``), each defined once, here, by name.

They cross the channel as msgpack lists (a NamedTuple is a tuple), so the wire stays data
only; both halves build and read them through these names, never by position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Attempt(NamedTuple):
    """One attempt of a step, as the isolate measured it."""

    duration_s: float
    success: bool
    error_name: str | None
    error_message: str | None


class StepDone(NamedTuple):
    """``step_done``: a step finished for good (``ok``, or ``failed`` with no retry left)."""

    workflow: str
    instance: str
    generation: int
    name: str
    count: int  # type: ignore[assignment]  # the step's number; shadows tuple.count, which no one calls
    state: str
    value: bytes | None
    error_name: str | None
    error_message: str | None
    attempts: list[Attempt]
    config: str
    #: the number of the first attempt in ``attempts`` (earlier ones were recorded before)
    first: int


class Retry(NamedTuple):
    """``step_retry`` / ``rollback_retry``: an attempt of step (name, count), or of its
    rollback, failed and the next one is due after ``delay_s``. One shape for both: the
    method name says which table it lands in."""

    workflow: str
    instance: str
    generation: int
    name: str
    count: int  # type: ignore[assignment]  # the step's number; shadows tuple.count, which no one calls
    attempts: list[Attempt]
    config: str
    first: int
    delay_s: float


class Sleep(NamedTuple):
    """``sleep``: a new ``step.sleep`` (``seconds``) or ``step.sleep_until`` (``until``)."""

    workflow: str
    instance: str
    generation: int
    name: str
    count: int  # type: ignore[assignment]  # the step's number; shadows tuple.count, which no one calls
    seconds: float | None
    until: float | None


class WaitEvent(NamedTuple):
    """``wait_event``: a new ``step.wait_for_event``; ``mock`` is a test mock's answer."""

    workflow: str
    instance: str
    generation: int
    name: str
    count: int  # type: ignore[assignment]  # the step's number; shadows tuple.count, which no one calls
    event_type: str
    timeout_s: float
    mock: Any


class RollbackDone(NamedTuple):
    """``rollback_done``: the rollback of step (name, count) finished for good (ok or failed)."""

    workflow: str
    instance: str
    generation: int
    name: str
    count: int  # type: ignore[assignment]  # the step's number; shadows tuple.count, which no one calls
    state: str
    error_name: str | None
    error_message: str | None
    attempts: list[Attempt]
    config: str
    first: int


class AttemptNote(NamedTuple):
    """``attempt_timer`` (virtual clock: time the attempt out on the platform clock after
    ``timeout_s``) and ``attempt_started`` (an attempt still running after a moment, kept so
    that one cut off by a crash is listed in ``describe``)."""

    workflow: str
    instance: str
    generation: int
    name: str
    count: int  # type: ignore[assignment]  # the step's number; shadows tuple.count, which no one calls
    attempt: int
    timeout_s: float


#: method name -> the record it carries
RECORDS: dict[str, Callable[..., tuple[Any, ...]]] = {
    "step_done": StepDone, "step_retry": Retry, "sleep": Sleep, "wait_event": WaitEvent,
    "rollback_done": RollbackDone, "rollback_retry": Retry,
    "attempt_timer": AttemptNote, "attempt_started": AttemptNote}


class Recorded(NamedTuple):
    """A ``step_done`` the isolate committed itself (``local.py``), told to the host for
    what follows a commit there: events, the log line, watchers. ``status`` and ``seq``
    are the instance's as the commit saw them, ``at`` the commit's time."""

    record: StepDone
    status: str
    seq: int
    at: float


def attempts_of(raw: list[Any]) -> list[Attempt]:
    return [Attempt(*a) for a in raw]
