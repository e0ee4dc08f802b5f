"""CHORD-SELF-TUNING for one node (RFC 7363): a
:class:`~topologies.chordreload.topology.ChordTopology` that

- uses periodic recovery (section 5: "the periodic recovery strategy is
  used");
- sends its periodic neighbour Update to its first predecessor and first
  successor only (section 5.2: it "MUST NOT send Update requests to
  others");
- at the end of every stabilisation period recomputes the overlay size,
  failure and join rates (section 6), sizes its successor, predecessor and
  finger lists from them (6.2) and sets the next period (6.6);
- records a failure when a neighbour leaves or a link to a peer is lost
  (section 6.3.1) and the age of peers from the uptime every Update
  carries (section 6.4, RFC 6940 section 10.7).

Mixed overlays: its Updates are CHORD-RELOAD Updates, with lists as long
as its own sizes; RFC 7363 section 5.1 makes the receiver ignore entries
beyond its own list sizes and update only a subset from shorter lists,
which is what CHORD-RELOAD's Routing Table does with any list (it takes
every peer named as a candidate and keeps the closest).  So self-tuning and
CHORD-RELOAD peers run in one overlay; only the timers differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from random import Random

from topologies.chordreload.codec import ChordUpdateType
from topologies.chordreload.node import ChordNode
from topologies.chordreload.ring import idToInt
from topologies.chordreload.settings import ChordSettings
from topologies.chordreload.topology import ChordTopology
from topologies.chordselftuning.estimator import (
    LOWER_LIMIT,
    Estimates,
    FailureHistory,
    failureRate,
    joinRate,
    networkSize,
    routingTableSizes,
    stabilisationInterval,
)

__all__ = ["SelfTuningTopology"]


class SelfTuningTopology(ChordTopology):
    """CHORD-RELOAD with RFC 7363's adaptive stabilisation."""

    def __init__(
        self,
        node: ChordNode,
        *,
        settings: ChordSettings | None = None,
        rng: Random | None = None,
        lowerLimit: float = LOWER_LIMIT,
    ) -> None:
        if settings is None:
            settings = ChordSettings.fromConfiguration(getattr(node, "configuration", None))
        # Section 5: periodic recovery.
        super().__init__(node, settings=replace(settings, reactive=False), rng=rng)
        self.lowerLimit = lowerLimit
        #: The upper limit of the period: CHORD-RELOAD's finger interval.
        self.upperLimit = max(settings.pingInterval, lowerLimit)
        self.failures = FailureHistory(self.clock.seconds())
        self.estimates = Estimates(
            networkSize=1.0,
            failureRate=0.0,
            joinRate=0.0,
            interval=settings.updateInterval,
            neighbours=self.ring.neighbourCount,
            fingers=self.ring.minFingers,
        )

    # -- section 6.3.1: failures ----------------------------------------------------

    def _historySize(self) -> int:
        """Section 6.3: K is 25% of the Routing Table size (RECOMMENDED)."""
        return max(1, round(0.25 * len(self.ring)))

    def _recordFailure(self) -> None:
        self.failures.add(self.clock.seconds(), self._historySize())

    def linkDown(self, nodeId: bytes) -> None:
        known = nodeId in self.ring
        super().linkDown(nodeId)
        if known and self.inRing:
            self._recordFailure()

    def handleLeave(self, leavingPeer: bytes, data: bytes) -> None:
        known = leavingPeer in self.ring
        super().handleLeave(leavingPeer, data)
        if known and self.inRing:
            self._recordFailure()

    # -- section 6: the estimates -----------------------------------------------------

    def estimate(self) -> Estimates:
        """Recompute N, U, L, the list sizes and the period (section 6)."""
        now = self.clock.seconds()
        preds = [idToInt(p) for p in self.ring.predecessors]
        succs = [idToInt(s) for s in self.ring.successors]
        size = networkSize(preds, succs, idToInt(self.nodeId), self.ring.bits)
        peers = len(self.ring)
        failures = failureRate(self.failures, self._historySize(), peers, now)
        ages = [now - started for p, started in self._peerStarts.items() if p in self.ring]
        joins = joinRate(size, ages)
        interval = stabilisationInterval(size, failures, joins, self.lowerLimit, self.upperLimit)
        neighbours, fingers = routingTableSizes(size, self.ring.bits)
        self.estimates = Estimates(size, failures, joins, interval, neighbours, fingers)
        return self.estimates

    def _retune(self) -> None:
        """Section 6: "at the end of each stabilization period before
        restarting the stabilization timer"."""
        estimates = self.estimate()
        self.ring.neighbourCount = estimates.neighbours
        self.ring.minFingers = estimates.fingers

    # -- section 5.2: neighbour stabilisation ---------------------------------------------

    def _stabiliseNeighbours(self) -> None:
        """Section 5.2: a 'neighbors' Update to the first predecessor and
        the first successor only; then the estimates for the next period."""
        self._sentTable = self._table()
        targets = {*self.ring.predecessors[:1], *self.ring.successors[:1]}
        for peer in sorted(targets):
            self.sendUpdate(peer, ChordUpdateType.NEIGHBORS)
        self._retune()

    def _arm(self, name: str, interval: float, action: Callable[[], None]) -> None:
        """The neighbour timer runs on the self-tuned period (section 6.6)."""
        if name == "neighbourTimer":
            interval = self.estimates.interval
        super()._arm(name, interval, action)
