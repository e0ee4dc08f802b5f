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
  carries (section 6.4, RFC 6940 section 10.7);
- shares its estimates (section 6.5): every period it Probes
  ``number-of-peers-to-probe`` random fingers (section 7, default 4) with
  the self_tuning_data extension, answers Probes that carry it with its
  own, and takes the third quartile of its own and the received estimates
  at the end of the period.

Mixed overlays: its Updates are CHORD-RELOAD Updates, with lists as long
as its own sizes; RFC 7363 section 5.1 makes the receiver ignore entries
beyond its own list sizes and update only a subset from shorter lists,
which is what CHORD-RELOAD's Routing Table does with any list (it takes
every peer named as a candidate and keeps the closest).  So self-tuning and
CHORD-RELOAD peers run in one overlay; only the timers differ.  The
self_tuning_data extension is not critical: a CHORD-RELOAD peer answers
the Probe without it, and the self-tuning peer goes on with the estimates
it has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from random import Random
from typing import Protocol, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.api.config import selfTuningPeersToProbe
from reload.api.topology import (
    DecodeError,
    MessageExtension,
    ProbeAns,
    ProbeInformationType,
    ProbeReq,
)
from reload.interfaces import ITopologyExtensions
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
from topologies.chordselftuning.sharing import SELF_TUNING_DATA, SelfTuningData, thirdQuartile

__all__ = ["SelfTuningTopology"]


class _ExtensionsNode(Protocol):
    """INode.request with message extensions (section 6.5)."""

    def request(
        self,
        destination: bytes,
        messageCode: int,
        body: bytes,
        extensions: Sequence[MessageExtension] = (),
    ) -> Deferred[tuple[int, bytes]]: ...


@implementer(ITopologyExtensions)
class SelfTuningTopology(ChordTopology):
    """CHORD-RELOAD with RFC 7363's adaptive stabilisation."""

    log = Logger()
    #: Section 9.1: the one message extension this topology defines.
    extensionTypes = frozenset({SELF_TUNING_DATA})

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
        #: Section 7: fingers Probed per period.
        self.peersToProbe = selfTuningPeersToProbe(getattr(node, "configuration", None))
        #: (N, U, L) of this peer alone at the end of its last period.
        self.local: tuple[float, float, float] | None = None
        #: Section 6.5: estimates received in Probes and their answers
        #: during the current period.
        self.received: list[SelfTuningData] = []
        #: Probes sent and estimates received, for tests and status.
        self.sharing = {"probesSent": 0, "estimatesReceived": 0, "probesUnanswered": 0}

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

    def localEstimate(self) -> tuple[float, float, float]:
        """This peer's own (N, U, L) from its Routing Table now (sections
        6.1, 6.3 and 6.4), before any sharing."""
        now = self.clock.seconds()
        preds = [idToInt(p) for p in self.ring.predecessors]
        succs = [idToInt(s) for s in self.ring.successors]
        size = networkSize(preds, succs, idToInt(self.nodeId), self.ring.bits)
        peers = len(self.ring)
        failures = failureRate(self.failures, self._historySize(), peers, now)
        ages = [now - started for p, started in self._peerStarts.items() if p in self.ring]
        self.local = (size, failures, joinRate(size, ages))
        return self.local

    def estimate(self) -> Estimates:
        """Recompute N, U, L (section 6), merge them with the estimates
        received this period (section 6.5), and derive the list sizes and
        the period from the result."""
        size, failures, joins = self.localEstimate()
        received, self.received = self.received, []
        if received:
            # The leave rate shared is the overlay's (U is per peer, 6.3).
            leaves = thirdQuartile([failures * size, *(r.leavesPerSecond for r in received)])
            joins = thirdQuartile([joins, *(r.joinsPerSecond for r in received)])
            size = thirdQuartile([size, *(float(r.networkSize) for r in received)])
            failures = leaves / size
        interval = stabilisationInterval(size, failures, joins, self.lowerLimit, self.upperLimit)
        neighbours, fingers = routingTableSizes(size, self.ring.bits)
        self.estimates = Estimates(size, failures, joins, interval, neighbours, fingers)
        return self.estimates

    # -- section 6.5: estimate sharing ------------------------------------------------

    def _share(self) -> SelfTuningData:
        """Section 6.5: "the latest ... estimate calculated by the sender":
        this peer's own, from its last period (or now, before its first),
        never the merged one -- peers that passed on merged figures would
        keep agreeing on them whatever their Routing Tables say."""
        size, failures, joins = self.local if self.local is not None else self.localEstimate()
        return SelfTuningData.fromEstimates(size, joins, failures * size)

    def _receive(self, sender: bytes, extensions: Sequence[MessageExtension]) -> None:
        for extension in extensions:
            try:
                data = SelfTuningData.decode(extension.contents)
            except DecodeError as exc:
                self.log.info(
                    "CHORD-SELF-TUNING: ignored self_tuning_data from {peer}: {why}",
                    peer=sender.hex(),
                    why=str(exc),
                )
                continue
            self.received.append(data)
            self.sharing["estimatesReceived"] += 1

    def requestExtensions(
        self, sender: bytes, messageCode: int, extensions: Sequence[MessageExtension]
    ) -> Sequence[MessageExtension]:
        """A Probe carrying the sender's estimates: keep them, answer with
        ours ("Both the Probe request and the answer ... MUST contain" the
        extension, section 6.5).  Other requests do not share estimates."""
        if messageCode != ProbeReq.CODE or not self.inRing:
            return ()
        self._receive(sender, extensions)
        return (self._share().extension(),)

    def answerExtensions(
        self, sender: bytes, messageCode: int, extensions: Sequence[MessageExtension]
    ) -> None:
        if messageCode == ProbeAns.CODE and self.inRing:
            self._receive(sender, extensions)

    def _probeFingers(self) -> None:
        """Section 6.5: "a peer selects number-of-peers-to-probe random
        peers from its finger table and send each of them a Probe
        request" carrying self_tuning_data; the uptime asked for with it
        dates the finger (section 6.4)."""
        fingers = sorted(set(self.ring.fingers()) - {self.nodeId})
        if not fingers or self.peersToProbe <= 0:
            return
        chosen = self._rng.sample(fingers, min(self.peersToProbe, len(fingers)))
        body = ProbeReq((ProbeInformationType.UPTIME,)).encode()
        extension = self._share().extension()
        node = cast(_ExtensionsNode, self.node)
        for finger in chosen:
            self.sharing["probesSent"] += 1
            d = node.request(finger, ProbeReq.CODE, body, (extension,))
            d.addCallbacks(self._probed, self._unanswered, callbackArgs=(finger,))

    def _probed(self, answer: tuple[int, bytes], finger: bytes) -> None:
        code, body = answer
        if code != ProbeAns.CODE:
            return
        try:
            probe = ProbeAns.decode(body)
        except DecodeError:
            return
        known = finger in self.ring
        for info in probe.probe_info:
            uptime = info.value
            if known and info.type == ProbeInformationType.UPTIME and isinstance(uptime, int):
                self._peerStarts[finger] = self.clock.seconds() - uptime

    def _unanswered(self, failure: Failure) -> None:
        """A finger that does not answer is found by the link layer and
        CHORD-RELOAD's checks; estimate sharing only goes without it."""
        self.sharing["probesUnanswered"] += 1

    def _retune(self) -> None:
        """Section 6: "at the end of each stabilization period before
        restarting the stabilization timer"."""
        estimates = self.estimate()
        self.ring.neighbourCount = estimates.neighbours
        self.ring.minFingers = estimates.fingers

    # -- section 5.2: neighbour stabilisation ---------------------------------------------

    def _stabiliseNeighbours(self) -> None:
        """Section 5.2: a 'neighbors' Update to the first predecessor and
        the first successor only; then the estimates for the next period
        (section 6), then the Probes that share them (section 6.5)."""
        self._sentTable = self._table()
        targets = {*self.ring.predecessors[:1], *self.ring.successors[:1]}
        for peer in sorted(targets):
            self.sendUpdate(peer, ChordUpdateType.NEIGHBORS)
        self._retune()
        self._probeFingers()

    def _arm(self, name: str, interval: float, action: Callable[[], None]) -> None:
        """The neighbour timer runs on the self-tuned period (section 6.6)."""
        if name == "neighbourTimer":
            interval = self.estimates.interval
        super()._arm(name, interval, action)
