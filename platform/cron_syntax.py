"""Cloudflare's cron syntax, read into croniter's.

Why a module of its own: Cloudflare parses crons with its own parser (cloudflare/saffron),
whose rules differ from croniter's where it matters most. Weekdays are numbered 1 (Sunday)
to 7 (Saturday), so ``0 17 * * 1`` is Sunday on Cloudflare and was Monday here, and 0 is
out of range; ``6L`` is the last Friday (croniter writes ``L5``); and the day of the month
takes ``LW`` (last weekday), ``L-3`` (third to last day) and ``L-3W``, which croniter does
not know. :func:`translate` rewrites an expression into croniter's terms plus, for the
``L`` forms croniter lacks, a rule that picks the day of each month; :func:`next_fire`
and :func:`problem` are what the rest of edgelet calls.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_VALUE = r"(\d+|[A-Za-z]{3})"
_RANGE = re.compile(rf"^{_VALUE}(?:-{_VALUE})?(?:/(\d+))?$")
_LAST = re.compile(rf"^{_VALUE}L$", re.IGNORECASE)
_NTH = re.compile(rf"^{_VALUE}#(\d+)$")
_DOM_LAST = re.compile(r"^L(?:-(\d+))?(W)?$", re.IGNORECASE)

#: picks the day of the month (or None: no such day that month) for ``L`` forms
DayRule = Callable[[int, int], int | None]


class CronSyntaxError(ValueError):
    """What is wrong with an expression, in words for the config error."""


@dataclass(frozen=True)
class Translated:
    """croniter's expression, and the day rule when the day of the month is an ``L`` form
    croniter lacks (its day-of-month field is then ``*``: the rule chooses the day)."""

    expr: str
    day_rule: DayRule | None = None


def _weekday(value: str) -> str:
    """One Cloudflare weekday (1-7 from Sunday, or a name) as croniter's 0-6."""
    if value.isdigit():
        n = int(value)
        if not 1 <= n <= 7:
            raise CronSyntaxError(f"weekday {n} is out of range: Cloudflare numbers days 1 (Sunday) "
                                  f"to 7 (Saturday), or use names such as SUN")
        return str(n - 1)
    if value.lower() not in _DAYS:
        raise CronSyntaxError(f"{value!r} is not a weekday; use 1 (Sunday) to 7 (Saturday) or SUN-SAT")
    return str(_DAYS.index(value.lower()))


def _weekdays(field: str) -> str:
    if field in ("*", "?"):
        return "*"
    out = []
    for item in field.split(","):
        if item.startswith("*/"):
            out.append(item)  # Sunday-based steps match croniter's 0-based ones
        elif m := _LAST.match(item):
            out.append(f"L{_weekday(m.group(1))}")
        elif m := _NTH.match(item):
            out.append(f"{_weekday(m.group(1))}#{m.group(2)}")
        elif m := _RANGE.match(item):
            first, last, step = m.groups()
            text = _weekday(first) + (f"-{_weekday(last)}" if last else "")
            out.append(text + (f"/{step}" if step else ""))
        else:
            raise CronSyntaxError(f"{item!r} is not a weekday expression")
    return ",".join(out)


def _closest_weekday(year: int, month: int, day: int) -> int:
    """Quartz's ``W``: the weekday nearest ``day``, never leaving the month."""
    last = calendar.monthrange(year, month)[1]
    weekday = date(year, month, day).weekday()  # Monday 0 .. Sunday 6
    if weekday == 5:  # Saturday: Friday, or Monday when Friday is last month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday, or Friday when Monday is next month
        return day + 1 if day < last else day - 2
    return day


def _day_rule(offset: int, weekday: bool) -> DayRule:
    def rule(year: int, month: int) -> int | None:
        day = calendar.monthrange(year, month)[1] - offset
        if day < 1:
            return None
        if weekday:
            if offset == 0:  # LW: the last weekday of the month
                while date(year, month, day).weekday() >= 5:
                    day -= 1
                return day
            return _closest_weekday(year, month, day)
        return day
    return rule


def translate(expr: str) -> Translated:
    """``expr`` in croniter's terms; raises :class:`CronSyntaxError` saying what is wrong."""
    if expr.startswith("@"):
        return Translated(expr)
    fields = expr.split()
    if len(fields) != 5:
        raise CronSyntaxError(f"it has {len(fields)} field{'s' if len(fields) != 1 else ''}, not 5")
    minute, hour, dom, month, dow = fields
    dow = _weekdays(dow)
    m = _DOM_LAST.match(dom)
    if m and (m.group(1) is not None or m.group(2)):
        offset = int(m.group(1) or 0)
        if not 0 <= offset <= 30:
            raise CronSyntaxError(f"L-{offset}: the offset from the last day is 1 to 30")
        if dow != "*":
            raise CronSyntaxError(f"{dom} cannot be combined with a day of the week; use * there")
        return Translated(f"{minute} {hour} * {month} *", _day_rule(offset, bool(m.group(2))))
    return Translated(f"{minute} {hour} {dom} {month} {dow}")


def problem(expr: object) -> str | None:
    """Why ``expr`` is not a cron Cloudflare accepts (None: it is one).

    croniter's strict mode also rejects schedules that can never fire (``0 0 31 2 *``)."""
    from croniter import croniter  # imported lazily: only needed when crons are declared

    if not isinstance(expr, str):
        return "it is not a string"
    try:
        translated = translate(expr)
        if not croniter.is_valid(translated.expr, strict=True):
            return "croniter cannot read it"
        if translated.day_rule is not None:
            next_fire(expr, 0.0)
    except CronSyntaxError as exc:
        return str(exc)
    except Exception:  # croniter raises assorted errors on odd input
        return "croniter cannot read it"
    return None


def next_fire(expr: str, after: float) -> float:
    """Epoch seconds of the first time after ``after`` that ``expr`` matches (UTC)."""
    from croniter import croniter

    translated = translate(expr)
    base = datetime.fromtimestamp(after, tz=UTC)
    rule = translated.day_rule
    if rule is None:
        return float(croniter(translated.expr, base).get_next(float))
    minute, hour, _, month, _ = translated.expr.split()
    year, mon = base.year, base.month
    for _ in range(12 * 30):  # a rule may skip months (L-30 fits only 31-day months)
        day = rule(year, mon)
        if day is not None and date(year, mon, day) >= base.date():
            start = max(base, datetime(year, mon, day, tzinfo=UTC) - timedelta(microseconds=1))
            found = croniter(f"{minute} {hour} {day} {month} *", start).get_next(datetime)
            if found.date() == date(year, mon, day):
                return float(found.timestamp())
        year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    raise CronSyntaxError(f"{expr!r} never fires")
