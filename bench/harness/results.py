"""Figures collected over rounds, per measure and side, and what they add up to."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .pairs import Measure


@dataclass
class Cell:
    """One side's figures for one measure: a value and a peak RSS per successful round."""

    values: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def value(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def rss(self) -> float | None:
        return max(self.rss_mb) if self.rss_mb else None

    def problem(self) -> str | None:
        """Why there is no figure (or why it rests on fewer rounds), if so."""
        if self.skipped:
            return f"skipped: {self.skipped}"
        if not self.values and self.errors:
            return f"failed: {self.errors[0]}"
        return None


@dataclass
class Row:
    measure: Measure
    label: str
    peer: str
    edgelet: Cell = field(default_factory=Cell)
    other: Cell = field(default_factory=Cell)

    def cell(self, side: str) -> Cell:
        return self.edgelet if side == "edgelet" else self.other

    @property
    def ratio(self) -> float | None:
        """Oriented so that higher favours edgelet: e ÷ p for throughput, p ÷ e for times."""
        e, p = self.edgelet.value, self.other.value
        if e is None or p is None or e <= 0 or p <= 0:
            return None
        return e / p if self.measure.higher else p / e

    def verdict(self) -> str:
        m = self.measure
        parts: list[str] = []
        if m.target is not None:
            r = self.ratio
            if r is None:
                parts.append(f"not measured (target ≥ {m.target:g}×)")
            elif r >= m.target:
                parts.append(f"met (≥ {m.target:g}×)")
            else:
                parts.append(f"MISSED: target ≥ {m.target:g}×")
        if m.limit is not None:
            e = self.edgelet.value
            if e is None:
                parts.append(f"not measured (target < {m.limit:g} {m.unit})")
            elif e < m.limit:
                parts.append(f"met (< {m.limit:g} {m.unit})")
            else:
                parts.append(f"MISSED: target < {m.limit:g} {m.unit}")
        return "; ".join(parts) or "—"


class Results:
    """Rows in the order the measures were declared."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.scale: list[dict[str, str]] = []

    def row(self, measure: Measure, label: str, peer: str) -> Row:
        if measure.key not in self.rows:
            self.rows[measure.key] = Row(measure, label, peer)
        return self.rows[measure.key]
