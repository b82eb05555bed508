"""The documented limits of Workflows, in one place for the isolate and the host.

Each check raises ValueError/TypeError with a message that names the value, the rule and
the fix, because these errors reach users through ``run``, the binding and the API alike.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

from edgelet.clock import parse_duration

#: ``\Z``, not ``$``: ``$`` also matches before a final newline, and "abc\n" is no valid id
ID_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9-_]*\Z")
#: Cloudflare's limit since 2026 (it was 100)
MAX_ID = 64
MAX_EVENT_TYPE = 100
MAX_STEP_NAME = 256
MAX_SLEEP_S = 365 * 86400.0
MIN_WAIT_TIMEOUT_S = 1.0
MAX_BATCH = 100
#: ids Cloudflare refuses (``instance.invalid_id``): they name routes of its REST API
#: (``.../instances/batch``, ``.../instances/terminate``...), so an app that creates them
#: here would fail once deployed
RESERVED_IDS = ("batch", "terminate", "terminateAll")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

BACKOFFS = ("constant", "linear", "exponential")
#: SPEC 8 defaults; ``limit`` counts retries after the first attempt
DEFAULT_RETRIES: dict[str, Any] = {"limit": 5, "delay": "10 seconds", "backoff": "exponential"}
DEFAULT_TIMEOUT = "10 minutes"
DEFAULT_WAIT_TIMEOUT = "24 hours"
#: what a person sees instead of a step result marked ``sensitive: "output"``
REDACTED = "[REDACTED]"


def check_instance_id(value: Any, *, workflow: str = "") -> str:
    where = f" for workflow '{workflow}'" if workflow else ""
    if not isinstance(value, str):
        raise TypeError(f"instance id{where} must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_ID or not ID_PATTERN.match(value):
        raise ValueError(
            f"invalid instance id {value[:120]!r}{where}: use 1 to {MAX_ID} letters, digits, '-' "
            f"or '_', not starting with '-' (pattern ^[a-zA-Z0-9_][a-zA-Z0-9-_]*$)")
    if value in RESERVED_IDS:
        raise ValueError(f"invalid instance id {value!r}{where}: {', '.join(map(repr, RESERVED_IDS))} are "
                         f"reserved by Cloudflare (they name API routes); choose another id")
    return value


def check_event_type(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"event type must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_EVENT_TYPE or not ID_PATTERN.match(value):
        raise ValueError(
            f"invalid event type {value[:120]!r}: use 1 to {MAX_EVENT_TYPE} letters, digits, '-' "
            f"or '_', not starting with '-' (pattern ^[a-zA-Z0-9_][a-zA-Z0-9-_]*$)")
    return value


def check_step_name(value: Any, kind: str = "step.do") -> str:
    if not isinstance(value, str):
        raise TypeError(f"{kind} name must be a string, got {type(value).__name__} ({value!r})")
    if not value:
        raise ValueError(f"{kind} name must not be empty")
    if len(value) > MAX_STEP_NAME:
        raise ValueError(f"{kind} name {value[:40]!r}... is {len(value)} characters; the limit "
                         f"is {MAX_STEP_NAME}. Use a shorter name")
    if _CONTROL.search(value):
        raise ValueError(f"{kind} name {value!r} contains control characters; remove them")
    return value


RESTART_OPTIONS = ("from_step", "fromStep")


def restart_from(from_step: Any = None, options: dict[str, Any] | None = None) -> str | None:
    """The step a ``restart`` keeps the results before, or None (from the top), from
    ``restart(NAME)``, ``restart(from_step=NAME)``, ``restart(fromStep=NAME)`` or
    ``restart({"fromStep": NAME})``. Why so strict: a restart from the top erases the
    whole history, so a misspelt option, an empty name or a non-string is refused rather
    than read as "from the top"."""
    options = dict(options or {})
    if isinstance(from_step, dict):
        options, from_step = {**from_step, **options}, None
    unknown = sorted(set(options) - set(RESTART_OPTIONS))
    if unknown:
        raise TypeError(f"restart() got unknown option(s) {unknown}; use from_step=NAME (or fromStep), "
                        f"or no option to restart from the top")
    given = [options[k] for k in RESTART_OPTIONS if options.get(k) is not None]
    if from_step is None and given:
        from_step = given[0]
    if from_step is None:
        return None
    if not isinstance(from_step, str):
        raise TypeError(f"restart from_step must be a step name (a string), got {type(from_step).__name__}")
    if not from_step:
        raise ValueError("restart from_step must not be empty; name a step, or leave it out to restart "
                         "from the top")
    return from_step


def duration_s(value: Any, what: str) -> float:
    """Seconds from milliseconds, a "5 minutes" string, or a ``timedelta``."""
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
        if seconds < 0:
            raise ValueError(f"{what} must not be negative, got {value}")
        return seconds
    return parse_duration(value, what=what)


def sleep_s(value: Any, name: str) -> float:
    seconds = duration_s(value, f"step.sleep '{name}' duration")
    if seconds > MAX_SLEEP_S:
        raise ValueError(f"step.sleep '{name}' duration {value!r} is longer than 365 days")
    return seconds


def until_epoch(value: Any, name: str, now: float) -> float:
    """``sleep_until`` target: a datetime (naive means UTC) or epoch seconds."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        when = value.timestamp()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = float(value)
    else:
        raise TypeError(f"step.sleep_until '{name}': expected a datetime or epoch seconds, "
                        f"got {type(value).__name__}")
    if when - now > MAX_SLEEP_S:
        raise ValueError(f"step.sleep_until '{name}' target {value!r} is more than 365 days away")
    return when


def wait_timeout_s(value: Any, name: str) -> float:
    seconds = duration_s(value, f"step.wait_for_event '{name}' timeout")
    if seconds < MIN_WAIT_TIMEOUT_S or seconds > MAX_SLEEP_S:
        raise ValueError(f"step.wait_for_event '{name}' timeout {value!r} is out of range: "
                         f"use between 1 second and 365 days")
    return seconds


def step_config(config: Any, name: str) -> dict[str, Any]:
    """Merge a step's config over the defaults; reject anything malformed, naming the key."""
    where = f"config of step '{name}'"
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise TypeError(f"{where} must be a dict like {{'retries': {{'limit': 3}}, "
                        f"'timeout': '30 seconds'}}, got {type(config).__name__}")
    unknown = set(config) - {"retries", "timeout", "sensitive"}
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {sorted(unknown)}; allowed: retries, timeout, sensitive")
    sensitive = config.get("sensitive")
    if sensitive not in (None, "output"):
        raise ValueError(f"{where}: sensitive must be \"output\" (the result is stored and replayed but "
                         f"shown as {REDACTED}), got {sensitive!r}")
    retries_in = config.get("retries") or {}
    if not isinstance(retries_in, dict):
        raise TypeError(f"{where}: retries must be a dict with limit, delay, backoff")
    unknown = set(retries_in) - {"limit", "delay", "backoff"}
    if unknown:
        raise ValueError(f"{where}: retries has unknown key(s) {sorted(unknown)}; "
                         f"allowed: limit, delay, backoff")
    retries = {**DEFAULT_RETRIES, **retries_in}
    limit = retries["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        if isinstance(limit, float) and limit == float("inf"):
            retries["limit"] = 1_000_000_000
        else:
            raise ValueError(f"{where}: retries.limit must be a whole number >= 0 (retries after "
                             f"the first attempt), got {limit!r}")
    if not callable(retries["delay"]):  # a function is called after each failed attempt
        duration_s(retries["delay"], f"{where}: retries.delay")
    if retries["backoff"] not in BACKOFFS:
        raise ValueError(f"{where}: retries.backoff {retries['backoff']!r} is unknown; use "
                         f"'constant', 'linear' or 'exponential'")
    timeout = config.get("timeout", DEFAULT_TIMEOUT)
    if duration_s(timeout, f"{where}: timeout") <= 0:
        raise ValueError(f"{where}: timeout must be longer than zero, got {timeout!r}")
    out = {"retries": retries, "timeout": timeout}
    if sensitive is not None:
        out["sensitive"] = sensitive
    return out


def config_json(config: dict[str, Any]) -> str:
    """The resolved config as stored for ``describe``: a delay function appears by name."""
    delay = config["retries"]["delay"]
    if callable(delay):
        name = getattr(delay, "__qualname__", None) or type(delay).__name__
        config = {**config, "retries": {**config["retries"], "delay": f"<function {name}>"}}
    return json.dumps(config, default=_duration_json)


def _duration_json(value: Any) -> Any:
    """A ``timedelta`` delay or timeout (accepted like a sleep's) is stored as milliseconds,
    a duration it reads back the same; it failed the step with "timedelta is not JSON
    serializable"."""
    if isinstance(value, _dt.timedelta):
        return value.total_seconds() * 1000
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def retry_delay_s(config: dict[str, Any], retry: int, base: float | None = None) -> float:
    """Delay before retry number ``retry`` (1 = the second attempt); ``base`` is what a delay
    function returned (it goes through the backoff like a fixed delay, as on Cloudflare)."""
    if base is None:
        base = duration_s(config["retries"]["delay"], "retries.delay")
    backoff = config["retries"].get("backoff", "exponential")
    if backoff == "linear":
        return base * retry
    if backoff == "exponential":
        return base * (2 ** (retry - 1))
    return base


def describe_s(seconds: float) -> str:
    """Human words for a duration in log lines and errors."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{n:g} {unit}" + ("" if n == 1 else "s")
    return f"{seconds:g} s"
