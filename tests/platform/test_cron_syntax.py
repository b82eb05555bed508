"""Crons are read with Cloudflare's rules (its parser is cloudflare/saffron), not croniter's:
weekdays are 1 (Sunday) to 7 (Saturday), so ``0 17 * * 1`` fired on Monday here but runs on
Sunday on Cloudflare, and 0 is refused; ``6L`` (last Friday) and the day-of-month forms
``LW``, ``L-3`` and ``L-3W`` (all in Cloudflare's docs: "59 23 LW * *" is their config
example) stopped `edgelet dev` with "not a valid cron expression"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgelet.config import ConfigError, load_config
from edgelet.cron import next_fire

START = datetime(2026, 12, 8, tzinfo=UTC).timestamp()  # a Tuesday


def fires(expr: str, n: int = 3) -> list[str]:
    out, t = [], START
    for _ in range(n):
        t = next_fire(expr, t)
        out.append(datetime.fromtimestamp(t, UTC).strftime("%a %Y-%m-%d %H:%M"))
    return out


@pytest.mark.parametrize("expr,expected", [
    # Cloudflare's own examples (developers.cloudflare.com/workers/configuration/cron-triggers)
    ("0 17 * * 1", ["Sun 2026-12-13 17:00", "Sun 2026-12-20 17:00", "Sun 2026-12-27 17:00"]),
    ("0 17 * * sun", ["Sun 2026-12-13 17:00", "Sun 2026-12-20 17:00", "Sun 2026-12-27 17:00"]),
    ("10 7 * * 2-6", ["Tue 2026-12-08 07:10", "Wed 2026-12-09 07:10", "Thu 2026-12-10 07:10"]),
    ("10 7 * * mon-fri", ["Tue 2026-12-08 07:10", "Wed 2026-12-09 07:10", "Thu 2026-12-10 07:10"]),
    ("0 18 * * 6L", ["Fri 2026-12-25 18:00", "Fri 2027-01-29 18:00", "Fri 2027-02-26 18:00"]),
    ("0 18 * * friL", ["Fri 2026-12-25 18:00", "Fri 2027-01-29 18:00", "Fri 2027-02-26 18:00"]),
    ("59 23 LW * *", ["Thu 2026-12-31 23:59", "Fri 2027-01-29 23:59", "Fri 2027-02-26 23:59"]),
    # saffron's other forms
    ("0 0 L-3 * *", ["Mon 2026-12-28 00:00", "Thu 2027-01-28 00:00", "Thu 2027-02-25 00:00"]),
    ("0 0 L-1W * *", ["Wed 2026-12-30 00:00", "Fri 2027-01-29 00:00", "Fri 2027-02-26 00:00"]),
    ("0 0 * * 2#2", ["Mon 2026-12-14 00:00", "Mon 2027-01-11 00:00", "Mon 2027-02-08 00:00"]),
    ("0 0 * * 7", ["Sat 2026-12-12 00:00", "Sat 2026-12-19 00:00", "Sat 2026-12-26 00:00"]),
    ("0 0 L * *", ["Thu 2026-12-31 00:00", "Sun 2027-01-31 00:00", "Sun 2027-02-28 00:00"]),
    ("*/30 * * * *", ["Tue 2026-12-08 00:30", "Tue 2026-12-08 01:00", "Tue 2026-12-08 01:30"]),
])
def test_a_cron_fires_when_cloudflare_fires_it(expr: str, expected: list[str]) -> None:
    assert fires(expr) == expected


def test_the_last_weekday_rule_fires_once_a_month_at_each_listed_time() -> None:
    assert fires("0,30 9 LW * *", 3) == ["Thu 2026-12-31 09:00", "Thu 2026-12-31 09:30",
                                         "Fri 2027-01-29 09:00"]


def write(tmp_path: Path, cron: str) -> Path:
    (tmp_path / "w.py").write_text("from workers import WorkerEntrypoint\n\nclass Default(WorkerEntrypoint):\n"
                                   "    async def scheduled(self, controller):\n        pass\n")
    path = tmp_path / "wrangler.toml"
    path.write_text(f'name = "a"\nmain = "w.py"\n[triggers]\ncrons = ["{cron}"]\n')
    return path


def test_cloudflares_config_example_loads(tmp_path: Path) -> None:
    assert load_config([write(tmp_path, "59 23 LW * *")]).workers[0].crons == ["59 23 LW * *"]


@pytest.mark.parametrize("cron,why", [
    ("0 0 * * 0", "weekday 0 is out of range: Cloudflare numbers days 1 (Sunday) to 7 (Saturday)"),
    ("0 0 * * 1-8", "weekday 8 is out of range"),
    ("0 0 * * funday", "'funday' is not a weekday expression"),
    ("0 0 LW * MON", "LW cannot be combined with a day of the week; use * there"),
    ("0 0 * *", "it has 4 fields, not 5"),
])
def test_a_cron_cloudflare_refuses_says_why(tmp_path: Path, cron: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config([write(tmp_path, cron)])
    text = str(caught.value)
    assert f'triggers.crons[0]: "{cron}" is not a valid cron expression ({why}' in text, text
    assert "weekdays 1-7 from Sunday, or SUN-SAT" in text
