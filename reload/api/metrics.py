"""Metrics a usage adds to its peer's ``/metrics`` (issue 23).

A usage's service that provides :class:`reload.interfaces.IUsageMetrics`
returns :class:`UsageMetric` values from ``metrics()`` each time Prometheus
scrapes the peer.  The peer names them ``reload_usage_<usage>_<name>`` (the
usage name in lower case), so usages never clash with each other or with
the peer's own metrics; follow Prometheus' conventions for ``name``
(``snake_case``, base units, ``_total`` for counters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["COUNTER", "GAUGE", "UsageMetric"]

#: A value that only goes up (requests handled, bytes relayed).
COUNTER = "counter"
#: A value that goes up and down (allocations, registrations held).
GAUGE = "gauge"


@dataclass(frozen=True)
class UsageMetric:
    """One metric: its ``name`` (without the prefix), one line of ``help``,
    its ``type`` (:data:`COUNTER` or :data:`GAUGE`) and its samples, each
    the labels (a name -> value mapping, empty for none) and the value."""

    name: str
    help: str
    type: str = GAUGE
    samples: Sequence[tuple[Mapping[str, str], float]] = field(default_factory=tuple)
