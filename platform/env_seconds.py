"""A number of seconds from an environment variable, for the limits and delays tests and
users override (``EDGELET_D1_QUERY_TIMEOUT``, ``EDGELET_DO_ALARM_TIMEOUT``, ...).

Why one function: each binding read its own variable with its own copy of the same parse,
range check and warning; a value that is not a number, or out of range, is named in the log
and the default is used, never a crash at the first call that reads it."""

from __future__ import annotations

import logging
import math
import os


def seconds_from_env(name: str, default: float, log: logging.Logger, *, positive: bool = True,
                     maximum: float | None = None) -> float:
    """``name``'s value in seconds, or ``default`` when it is unset, not a number, not
    positive (when ``positive``) or above ``maximum`` (then with a warning naming it)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or (positive and value <= 0) or (maximum is not None and value > maximum):
        bounds = f" in (0, {maximum:g}]" if maximum is not None else " above 0" if positive else ""
        log.warning("%s=%r is not a number of seconds%s; using %g", name, raw, bounds, default)
        return default
    return value
