"""Results of simulation runs: hop-count histograms, percentiles, success
rates, tables and JSON.

Everything here is plain data: a :class:`Histogram` of small integers (hop
counts), and :func:`table` / :func:`toJson` to show a run.  Nothing reads a
clock, so the same run gives the same JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Histogram", "bar", "rate", "render", "table", "toJson", "writeJson"]


class Histogram:
    """Counts of non-negative integers (hop counts)."""

    __slots__ = ("counts",)

    def __init__(self, values: Iterable[int] = ()) -> None:
        self.counts: dict[int, int] = {}
        for value in values:
            self.add(value)

    def add(self, value: int, count: int = 1) -> None:
        if value < 0:
            raise ValueError("a histogram counts non-negative integers")
        self.counts[value] = self.counts.get(value, 0) + count

    def update(self, other: Histogram) -> None:
        for value, count in other.counts.items():
            self.add(value, count)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def mean(self) -> float | None:
        total = self.total
        if not total:
            return None
        return sum(v * c for v, c in self.counts.items()) / total

    @property
    def max(self) -> int | None:
        return max(self.counts) if self.counts else None

    def percentile(self, p: float) -> int | None:
        """The nearest-rank ``p``-th percentile: the smallest value with at
        least ``p`` percent of the counts at or below it."""
        if not 0 < p <= 100:
            raise ValueError("a percentile is in (0, 100]")
        total = self.total
        if not total:
            return None
        need = p / 100 * total
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= need - 1e-9:
                return value
        return max(self.counts)

    def summary(self) -> dict[str, Any]:
        """Mean, p50, p90, p99, max and the histogram (value -> count)."""
        mean = self.mean
        return {
            "count": self.total,
            "mean": None if mean is None else round(mean, 4),
            "p50": self.percentile(50) if self.total else None,
            "p90": self.percentile(90) if self.total else None,
            "p99": self.percentile(99) if self.total else None,
            "max": self.max,
            "histogram": {str(v): self.counts[v] for v in sorted(self.counts)},
        }

    def render(self, width: int = 40, label: str = "hops") -> str:
        """A text histogram, one line per value."""
        total = self.total
        if not total:
            return f"  (no {label})"
        top = max(self.counts.values())
        lines = []
        for value in range(0, (self.max or 0) + 1):
            count = self.counts.get(value, 0)
            lines.append(
                f"  {value:>3} {label} {count:>8} {100 * count / total:6.2f}% "
                f"{bar(count, top, width)}"
            )
        return "\n".join(lines)


def bar(count: int, top: int, width: int) -> str:
    if top <= 0:
        return ""
    return "#" * max(1 if count else 0, round(width * count / top))


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to six places; None for an empty whole."""
    return None if whole == 0 else round(part / whole, 6)


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """A plain text table with aligned columns."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        line = "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        lines.append(line.rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    return str(value)


def toJson(data: Mapping[str, Any]) -> str:
    """``data`` as stable JSON (sorted keys, two-space indent)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def writeJson(path: str | Path, data: Mapping[str, Any]) -> None:
    Path(path).write_text(toJson(data))


def _lookupSections(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    sections = [(k, v) for k, v in result.items() if k.startswith("lookups") and v]
    churn = result.get("churn")
    if churn and churn.get("lookupsDuring"):
        sections.insert(0, ("lookupsDuringChurn", churn["lookupsDuring"]))
    return sections


def render(result: Mapping[str, Any]) -> str:
    """A scenario result (from :mod:`reload.sim.scenarios`) as text: what
    was run, the joins, one table row per set of lookups and their
    hop-count histograms."""
    settings = result.get("settings", {})
    out = [
        f"scenario {result.get('scenario')}: "
        + ", ".join(f"{k}={v}" for k, v in result.get("parameters", {}).items()),
        "settings: "
        + ", ".join(
            f"{k}={settings[k]}"
            for k in ("seed", "latency", "signatures", "tls", "updateInterval", "pingInterval")
            if k in settings
        ),
    ]
    join = result.get("join")
    if join:
        out.append(
            f"joins: {join['joined']}/{join['attempted']} joined, {join['failed']} failed, "
            f"{join['simSeconds']:.1f} simulated s, {join['messagesPerJoin']} messages per join"
        )
    for key in ("churn",):
        churn = result.get(key)
        if churn:
            out.append(
                f"churn: {churn['duration']} s, {churn['joins']} joins "
                f"({churn['joinFailures']} failed), {churn['leaves']} leaves, "
                f"{churn['fails']} failures"
            )
    if "failed" in result:
        out.append(
            f"mass failure: {result['failed']} peers failed at once; "
            f"{result.get('heldMessages', 0)} maintenance messages held before repair"
        )
    for key in ("ring", "ringBefore", "ringAfter"):
        ring = result.get(key)
        if ring:
            out.append(
                f"{key}: {ring['correctNeighbours']}/{ring['members']} members have their true "
                "first successor and predecessor"
            )
    sections = _lookupSections(result)
    if sections:
        rows = []
        for name, stats in sections:
            hops = stats["hops"]
            rows.append(
                [
                    name,
                    stats["issued"],
                    stats["correct"],
                    stats["wrong"],
                    stats["failed"],
                    None if stats["successRate"] is None else f"{100 * stats['successRate']:.2f}%",
                    hops["mean"],
                    hops["p50"],
                    hops["p99"],
                    hops["max"],
                ]
            )
        out.append("")
        out.append(
            table(
                rows,
                [
                    "lookups",
                    "issued",
                    "correct",
                    "wrong",
                    "failed",
                    "success",
                    "mean hops",
                    "p50",
                    "p99",
                    "max",
                ],
            )
        )
        for name, stats in sections:
            histogram = Histogram()
            for value, count in stats["hops"]["histogram"].items():
                histogram.add(int(value), count)
            out.append("")
            out.append(f"{name}: forwarding hops (via-list length)")
            out.append(histogram.render())
    timing = result.get("timing")
    if timing:
        out.append("")
        out.append("timing: " + ", ".join(f"{k}={v}" for k, v in timing.items()))
    return "\n".join(out)
