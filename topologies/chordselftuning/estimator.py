"""The estimates of RFC 7363 section 6, without I/O.

- overlay size N from the density of Node-IDs in the Neighbor Table
  (section 6.1);
- routing-table sizes from N (section 6.2);
- failure rate U from the history of the last K failures (section 6.3);
- join rate L from the median age of the peers in the Routing Table
  (section 6.4);
- the stabilisation interval min(Tstab-1, Tstab-2) (section 6.6), kept
  between a lower limit (15 s RECOMMENDED) and an upper one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "LOWER_LIMIT",
    "Estimates",
    "FailureHistory",
    "failureRate",
    "joinRate",
    "networkSize",
    "routingTableSizes",
    "stabilisationInterval",
]

#: Section 6.6: "a lower limit of 15 s is RECOMMENDED".
LOWER_LIMIT = 15.0
#: Section 6.2: "at least three" successors (the implementation's floor).
MIN_NEIGHBOURS = 3
#: RFC 6940 section 10.7.4.3: at least 16 fingers.
MIN_FINGERS = 16


def networkSize(
    predecessors: Sequence[int], successors: Sequence[int], nodeId: int, bits: int
) -> float:
    """Section 6.1: 2^bits / d, where d is the average distance between
    successive peers from the most distant predecessor to the most distant
    successor.  Arguments are ids as integers, closest first.  A ring whose
    predecessors and successors overlap is small enough to count."""
    known = set(predecessors) | set(successors)
    if not known:
        return 1.0
    if known & set(predecessors) & set(successors):
        return float(len(known) + 1)
    modulus = 1 << bits
    span = (successors[-1] - predecessors[-1]) % modulus if successors and predecessors else 0
    gaps = len(predecessors) + len(successors)
    if not span or not gaps:
        return float(len(known) + 1)
    return modulus / (span / gaps)


def routingTableSizes(size: float, bits: int = 128) -> tuple[int, int]:
    """Section 6.2: (successor and predecessor list size, finger table
    size): ceiling(log2 N) each, at least 3 and 16."""
    log = math.ceil(math.log2(max(size, 2.0)))
    return max(MIN_NEIGHBOURS, log), min(bits, max(MIN_FINGERS, log))


class FailureHistory:
    """Section 6.3: the times of the last K failures; the join time is the
    first entry."""

    def __init__(self, joinedAt: float) -> None:
        self._times: deque[float] = deque([joinedAt])

    def add(self, when: float, capacity: int) -> None:
        self._times.append(when)
        while len(self._times) > max(1, capacity):
            self._times.popleft()

    def __len__(self) -> int:
        return len(self._times)

    @property
    def times(self) -> tuple[float, ...]:
        return tuple(self._times)


def failureRate(history: FailureHistory, capacity: int, peers: int, now: float) -> float:
    """Section 6.3: U = k / (M * Tk); "if k is smaller than K, the estimate
    is computed as if there was a failure at the current time"."""
    times = list(history.times)
    if len(times) < capacity:
        times.append(now)
    k = len(times)
    span = times[-1] - times[0]
    if span <= 0 or peers <= 0:
        return 0.0
    return k / (peers * span)


def joinRate(size: float, ages: Sequence[float]) -> float:
    """Section 6.4: L = N / Ages[floor(rsize / 2)], the ages sorted."""
    if not ages:
        return 0.0
    median = sorted(ages)[len(ages) // 2]
    return size / median if median > 0 else 0.0


def stabilisationInterval(
    size: float, failures: float, joins: float, lower: float, upper: float
) -> float:
    """Section 6.6: min(Tf / log2(N)^2, N / (L * log2(N)^2)), Tf = 1/(2U),
    kept within [lower, upper]."""
    square = max(math.log2(max(size, 2.0)), 1.0) ** 2
    candidates = []
    if failures > 0:
        candidates.append(1.0 / (2.0 * failures) / square)
    if joins > 0:
        candidates.append(size / (joins * square))
    interval = min(candidates) if candidates else upper
    return min(upper, max(lower, interval))


@dataclass(frozen=True, slots=True)
class Estimates:
    """What a self-tuning peer believes at the end of a stabilisation
    period (RFC 7363 section 6)."""

    networkSize: float
    failureRate: float
    joinRate: float
    interval: float
    neighbours: int
    fingers: int

    def summary(self) -> dict[str, float]:
        return {
            "networkSize": round(self.networkSize, 1),
            "failureRatePerPeerPerSecond": self.failureRate,
            "joinRatePerSecond": self.joinRate,
            "stabilisationInterval": round(self.interval, 1),
            "neighbours": self.neighbours,
            "fingers": self.fingers,
        }
