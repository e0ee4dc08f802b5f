"""Simulation runs: build an overlay of simulated peers and measure it.

:class:`Simulation` holds one overlay (a :class:`~reload.sim.network
.SimNetwork` of :class:`~reload.sim.node.SimNode`) and the global view the
measurements are checked against: the sorted ring of the peers that are
alive and joined.  Everything random comes from one seeded
:class:`random.Random`, so a run is a function of its
:class:`SimSettings`.

Operations, each through the real protocol:

* :meth:`Simulation.joinPeers`: peers join one by one (``batch=1``) or
  ``batch`` at a time, each through a random joined peer it is linked to
  first (RFC 6940 section 10.5);
* :meth:`Simulation.lookups`: Pings to random Resource-IDs (section 6.5.3)
  from random peers, or iterative RouteQuery (section 6.4.2.4), checking
  that the answering peer is the one responsible on the global ring
  (section 10.1) and recording the hop count: the number of peers that
  forwarded the request, which is the length of the via list it reaches
  its destination with (and of the answer's, section 6.2.2);
* :meth:`Simulation.stabilise`: let simulated time pass (periodic Updates
  and finger searches of section 10.7.4);
* :meth:`Simulation.churn`: joins, graceful leaves (section 10.9) and
  failures as Poisson processes, with lookups on the way;
* :meth:`Simulation.failPeers`: a mass failure.

:func:`joinScenario`, :func:`churnScenario` and :func:`massFailureScenario`
are the three runs of ``python -m reload.sim`` and of
``benchmarks/ring.py``; each returns a JSON-able dict.
"""

from __future__ import annotations

import datetime
import gc
from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from reload.errors import ReloadError, ReloadTimeout
from reload.interfaces import ITopologyPlugin
from reload.plugins import loadTopology
from reload.sim.clock import Scheduler
from reload.sim.network import DEFAULT_LATENCY, SimNetwork
from reload.sim.node import Security, SimConfiguration, SimNode, SimPki, pluginTopology
from reload.sim.report import Histogram, rate
from reload.transport.routing import readMessageCode
from reload.transport.transactions import DEFAULT_RELIABILITY_TIMER
from reload.transport.transport import Response
from reload.wire.errors import DecodeError
from reload.wire.header import Destination, HeaderView
from reload.wire.message import ErrorCode, MessageCode

__all__ = [
    "ChurnStats",
    "JoinStats",
    "LookupStats",
    "SimSettings",
    "Simulation",
    "churnScenario",
    "joinScenario",
    "massFailureScenario",
]

#: 2030-03-17: simulated time starts here (certificates are issued for it).
DEFAULT_START = 1_900_000_000.0
NODE_ID_LENGTH = 16
#: Messages that are not overlay maintenance: the lookups and their errors.
_LOOKUP_CODES = frozenset({MessageCode.PING_REQ, MessageCode.PING_ANS, MessageCode.ERROR})


@dataclass(frozen=True)
class SimSettings:
    """Everything a run depends on."""

    seed: int = 1
    #: One-way link latency (s) and its per-link spread (a fraction).
    latency: float = DEFAULT_LATENCY
    jitter: float = 0.0
    #: Seconds until the neighbours of a dead peer see its links close.
    detection: float = 0.0
    #: Real certificates and signatures (SigningSecurity) or TrustingSecurity.
    signatures: bool = False
    #: Real TLS links (handshake, certificate checks, framing) or SimLinks.
    tls: bool = False
    #: The topology plugin the peers run (``topology-plugin``, 11.1), found
    #: by name with :func:`reload.plugins.loadTopology` unless
    #: :class:`Simulation` is given the plugin itself.
    topology: str = "CHORD-RELOAD"
    #: chord-update-interval, chord-ping-interval, chord-reactive (11.1).
    updateInterval: float = 600.0
    pingInterval: float = 3600.0
    reactive: bool = True
    overlayName: str = "sim.reload.invalid"
    start: float = DEFAULT_START
    #: Keep the collector off the long-lived overlay (see :func:`gcTuned`).
    tuneGc: bool = True

    def describe(self) -> dict[str, Any]:
        return asdict(self)


# -- results -------------------------------------------------------------------------


@dataclass
class LookupStats:
    """What a set of lookups found."""

    method: str = "ping"
    issued: int = 0
    answered: int = 0
    correct: int = 0
    wrong: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    #: Forwarding peers (via-list length) of answered lookups.
    hops: Histogram = field(default_factory=Histogram)
    #: Overlay links crossed by the request (hops + 1, 0 when the origin
    #: was responsible itself).
    links: Histogram = field(default_factory=Histogram)
    #: No more results are recorded (the deadline passed).
    closed: bool = False

    def fail(self, why: str) -> None:
        self.failures[why] = self.failures.get(why, 0) + 1

    @property
    def successRate(self) -> float | None:
        return rate(self.correct, self.issued)

    def summary(self) -> dict[str, Any]:
        links = self.links.mean
        return {
            "method": self.method,
            "issued": self.issued,
            "answered": self.answered,
            "correct": self.correct,
            "wrong": self.wrong,
            "failed": self.issued - self.answered,
            "failures": dict(sorted(self.failures.items())),
            "successRate": self.successRate,
            "hops": self.hops.summary(),
            "meanLinks": None if links is None else round(links, 4),
        }


@dataclass
class JoinStats:
    """What joining peers took."""

    attempted: int = 0
    joined: int = 0
    failed: int = 0
    simSeconds: float = 0.0
    messages: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "attempted": self.attempted,
            "joined": self.joined,
            "failed": self.failed,
            "simSeconds": round(self.simSeconds, 6),
            "messages": self.messages,
            "messagesPerJoin": None if not self.joined else round(self.messages / self.joined, 2),
        }


@dataclass
class ChurnStats:
    """What happened during churn."""

    duration: float = 0.0
    joins: int = 0
    joinFailures: int = 0
    leaves: int = 0
    fails: int = 0
    during: LookupStats = field(default_factory=LookupStats)

    def summary(self) -> dict[str, Any]:
        return {
            "duration": self.duration,
            "joins": self.joins,
            "joinFailures": self.joinFailures,
            "leaves": self.leaves,
            "fails": self.fails,
            "lookupsDuring": self.during.summary(),
        }


def _idToInt(nodeId: bytes) -> int:
    """A Node-ID or Resource-ID as a point on the ring (section 10.1)."""
    return int.from_bytes(nodeId, "big")


# -- the global view ----------------------------------------------------------------------


class Members:
    """The live, joined peers: sorted by Node-ID for responsibility
    (section 10.1) and in a list for picking one at random."""

    def __init__(self) -> None:
        self.ring: list[int] = []
        self.byInt: dict[int, SimNode] = {}
        self.order: list[SimNode] = []
        self._index: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.order)

    def __contains__(self, node: object) -> bool:
        return isinstance(node, SimNode) and _idToInt(node.nodeId) in self.byInt

    def __iter__(self) -> Iterator[SimNode]:
        return iter(list(self.order))

    def add(self, node: SimNode) -> None:
        key = _idToInt(node.nodeId)
        if key in self.byInt:
            return
        insort(self.ring, key)
        self.byInt[key] = node
        self._index[key] = len(self.order)
        self.order.append(node)

    def remove(self, node: SimNode) -> None:
        key = _idToInt(node.nodeId)
        if key not in self.byInt:
            return
        del self.byInt[key]
        del self.ring[bisect_left(self.ring, key)]
        index = self._index.pop(key)
        last = self.order.pop()
        if last is not node:
            self.order[index] = last
            self._index[_idToInt(last.nodeId)] = index

    def random(self, rng: Random) -> SimNode:
        return self.order[rng.randrange(len(self.order))]

    def responsible(self, resourceId: bytes) -> SimNode:
        """Section 10.1: the first peer at or after ``resourceId``."""
        ring = self.ring
        index = bisect_left(ring, _idToInt(resourceId))
        return self.byInt[ring[index % len(ring)]]

    def sortedNodes(self) -> list[SimNode]:
        return [self.byInt[key] for key in self.ring]


@contextmanager
def gcTuned(enabled: bool = True) -> Iterator[None]:
    """Keep Python's cyclic collector off the overlay.

    Thousands of nodes are millions of long-lived objects, and every full
    collection walks them all (a third of the run time at 1,000 peers).
    Inside this block the automatic collector is off; the simulation calls
    :func:`freezeGc` every couple of million scheduled calls, which
    collects what was allocated since the last time and moves what
    survived into the permanent generation, where no collection looks.
    """
    global _gcTuned
    if not enabled or _gcTuned:
        yield
        return
    wasEnabled = gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    _gcTuned = True
    try:
        yield
    finally:
        _gcTuned = False
        gc.unfreeze()
        if wasEnabled:
            gc.enable()


_gcTuned = False


def freezeGc() -> None:
    """Inside :func:`gcTuned`: collect what is not frozen yet (the frozen
    objects are not looked at, so this costs what was allocated since the
    last call) and freeze what survived.  Outside, nothing."""
    if _gcTuned:
        gc.collect()
        gc.freeze()


class _Outstanding:
    """Deferreds started and not fired yet (their outcome is consumed)."""

    __slots__ = ("count", "failed")

    def __init__(self) -> None:
        self.count = 0
        self.failed = 0

    def track(self, d: Deferred[Any]) -> None:
        self.count += 1
        d.addBoth(self._done)

    def _done(self, result: object) -> None:
        self.count -= 1
        if isinstance(result, Failure):
            self.failed += 1

    def idle(self) -> bool:
        return self.count == 0


def _carried(stats: LookupStats) -> dict[str, Any]:
    """The fields of ``stats``, to go on recording in a new object after a
    deadline closed it (late results still refer to the closed one)."""
    return {
        "issued": stats.issued,
        "answered": stats.answered,
        "correct": stats.correct,
        "wrong": stats.wrong,
        "failures": dict(stats.failures),
        "hops": stats.hops,
        "links": stats.links,
    }


def _errorName(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def _isMaintenance(message: bytes) -> bool:
    """Whether a message is overlay maintenance (anything but a lookup's
    Ping and Error): what a mass failure holds to measure "before
    repair"."""
    try:
        code = readMessageCode(HeaderView(message, max(len(message), 1)))
    except DecodeError:
        return False
    return code not in _LOOKUP_CODES


# -- the simulation ------------------------------------------------------------------------


class Simulation:
    """One simulated overlay and its global view."""

    def __init__(
        self, settings: SimSettings | None = None, plugin: ITopologyPlugin | None = None
    ) -> None:
        self.settings = settings = settings if settings is not None else SimSettings()
        if plugin is None:
            plugin = loadTopology(settings.topology)
        self.plugin = plugin
        self._makeTopology = pluginTopology(plugin)
        self.rng = Random(settings.seed)
        self.sched = Scheduler(settings.start)
        self.pki: SimPki | None = None
        if settings.signatures or settings.tls:
            start = datetime.datetime.fromtimestamp(settings.start, datetime.UTC)
            self.pki = SimPki(settings.overlayName, start)
        tlsFactory = None
        if settings.tls:
            from reload.sim.tls import TlsLinkFactory

            assert self.pki is not None
            tlsFactory = TlsLinkFactory(self.pki)
        self.network = SimNetwork(
            self.sched,
            latency=settings.latency,
            jitter=settings.jitter,
            detection=settings.detection,
            rng=Random(self.rng.getrandbits(64)),
            tlsFactory=tlsFactory,
        )
        if tlsFactory is not None:
            tlsFactory.network = self.network
        self.configuration = SimConfiguration(
            instanceName=settings.overlayName,
            chordUpdateInterval=settings.updateInterval,
            chordPingInterval=settings.pingInterval,
            chordReactive=settings.reactive,
        )
        self.nodes: dict[bytes, SimNode] = {}
        self.members = Members()
        self._gcMark = 0

    # -- peers ------------------------------------------------------------------------

    def newNode(self) -> SimNode:
        while True:
            nodeId = self.rng.getrandbits(8 * NODE_ID_LENGTH).to_bytes(NODE_ID_LENGTH, "big")
            if nodeId not in self.nodes:
                break
        node = SimNode(
            self.network,
            nodeId,
            Random(self.rng.getrandbits(64)),
            security=Security.SIGNING if self.settings.signatures else Security.TRUSTING,
            pki=self.pki,
            configuration=self.configuration,
            makeTopology=self._makeTopology,
        )
        if self.network.tlsFactory is not None:
            self.network.tlsFactory.register(node)
        self.nodes[nodeId] = node
        return node

    def responsible(self, resourceId: bytes) -> bytes:
        """The Node-ID responsible for ``resourceId`` on the global ring."""
        return self.members.responsible(resourceId).nodeId

    def _maintainGc(self, every: int = 2_000_000) -> None:
        if self.settings.tuneGc and self.sched.executed - self._gcMark > every:
            self._gcMark = self.sched.executed
            freezeGc()

    def _start(self, node: SimNode) -> Deferred[None]:
        """Join ``node`` through a random member (or start the overlay)."""
        bootstrap = self.members.random(self.rng) if self.members else None
        d = node.join(bootstrap)

        def joined(result: object) -> object:
            if isinstance(result, Failure):
                node.stop()
            elif node.alive:
                node.joinedAt = self.sched.now
                self.members.add(node)
            return result

        return d.addBoth(joined)

    def joinPeers(self, count: int, batch: int = 1, timeout: float = 600.0) -> JoinStats:
        """``count`` new peers join, ``batch`` at a time (each batch runs
        until all its joins finished)."""
        stats = JoinStats()
        started = self.sched.now
        messages = self.network.messages
        remaining = count
        if not self.members and remaining:
            first = self.newNode()
            stats.attempted += 1
            result = self.sched.runUntilFired(self._start(first), timeout)
            if isinstance(result, Failure):
                raise RuntimeError(f"the first peer could not start: {result.getErrorMessage()}")
            stats.joined += 1
            remaining -= 1
        while remaining > 0:
            size = min(batch, remaining)
            remaining -= size
            joins = _Outstanding()
            for _ in range(size):
                joins.track(self._start(self.newNode()))
            stats.attempted += size
            if not self.sched.runUntilTrue(joins.idle, timeout):
                raise RuntimeError(f"joins did not finish within {timeout} simulated seconds")
            stats.joined += size - joins.failed
            stats.failed += joins.failed
            self._maintainGc()
        stats.simSeconds = self.sched.now - started
        stats.messages = self.network.messages - messages
        return stats

    def stabilise(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (periodic stabilisation,
        section 10.7.4, and everything in flight)."""
        step = max(self.settings.updateInterval / 4, 1.0)
        end = self.sched.now + seconds
        while self.sched.now < end:
            self.sched.runUntil(min(end, self.sched.now + step))
            self._maintainGc()

    def settle(self, horizon: float = 30.0) -> None:
        """Run until nothing is due within ``horizon`` seconds (small
        overlays) or ``horizon`` seconds passed."""
        self.sched.runUntilQuiet(horizon, limit=self.sched.now + horizon)

    # -- lookups -----------------------------------------------------------------------

    def lookups(
        self,
        count: int,
        *,
        concurrency: int = 1000,
        method: str = "ping",
        stats: LookupStats | None = None,
        timeout: float = 120.0,
        deadline: float | None = None,
    ) -> LookupStats:
        """``count`` lookups of random Resource-IDs from random members,
        ``concurrency`` at a time.

        With a ``deadline`` (simulated seconds) the lookups of a wave that
        are not answered by then count as failed and the rest of their
        life is ignored; without one, every wave runs until all its
        lookups finished (``timeout`` is a safety net).
        """
        if method not in ("ping", "routequery"):
            raise ValueError(f"unknown lookup method {method!r}")
        stats = stats if stats is not None else LookupStats(method)
        remaining = count
        while remaining > 0:
            wave = min(concurrency, remaining)
            remaining -= wave
            pending = _Outstanding()
            for _ in range(wave):
                pending.track(self.lookup(stats, method))
            if deadline is not None:
                self.sched.runUntilTrue(pending.idle, deadline)
                if pending.count:
                    why = "no answer by the deadline"
                    stats.failures[why] = stats.failures.get(why, 0) + pending.count
                    stats.closed = True
                    stats = LookupStats(method, **_carried(stats))
            elif not self.sched.runUntilTrue(pending.idle, timeout):
                raise RuntimeError(f"lookups did not finish within {timeout} simulated seconds")
            self._maintainGc()
        return stats

    def lookup(self, stats: LookupStats, method: str = "ping") -> Deferred[None]:
        """Start one lookup from a random member; fires when recorded."""
        origin = self.members.random(self.rng)
        resourceId = self.rng.getrandbits(8 * NODE_ID_LENGTH).to_bytes(NODE_ID_LENGTH, "big")
        stats.issued += 1
        if method == "ping":
            d: Deferred[tuple[bytes, int, int]] = origin.node.ping(
                resourceId, resource=True
            ).addCallback(self._pinged, origin)
        else:
            d = Deferred.fromCoroutine(self._routeQuery(origin, resourceId))
        return d.addCallbacks(
            self._answered, self._failed, callbackArgs=(stats, resourceId), errbackArgs=(stats,)
        )

    @staticmethod
    def _pinged(response: Response, origin: SimNode) -> tuple[bytes, int, int]:
        hops = len(response.message.header.via_list)
        responder = response.nodeId
        return responder, hops, 0 if responder == origin.nodeId else hops + 1

    async def _routeQuery(self, origin: SimNode, resourceId: bytes) -> tuple[bytes, int, int]:
        """Iterative routing (section 6.4.2.4): ask the next hop, then the
        peer it names, until a peer names itself.  Hops: peers asked."""
        peer = origin.topology.nextHop(resourceId)
        if peer is None:
            return origin.nodeId, 0, 0
        target = Destination.resource(resourceId)
        for asked in range(1, 64):
            response = await origin.node.routeQuery(peer, target)
            nextPeer = bytes.fromhex(origin.topology.routeQueryAnswer(response.body)["nextPeer"])
            if nextPeer == peer:
                return peer, asked, asked
            peer = nextPeer
        raise ReloadError(0, "RouteQuery did not converge in 64 steps")

    def _answered(
        self, result: tuple[bytes, int, int], stats: LookupStats, resourceId: bytes
    ) -> None:
        if stats.closed:
            return
        responder, hops, links = result
        stats.answered += 1
        stats.hops.add(hops)
        stats.links.add(links)
        if self.members and responder == self.responsible(resourceId):
            stats.correct += 1
        else:
            stats.wrong += 1

    @staticmethod
    def _failed(failure: Failure, stats: LookupStats) -> None:
        if stats.closed:
            return
        error = failure.value
        if isinstance(error, ReloadTimeout):
            why = "timeout"
        elif isinstance(error, ReloadError):
            why = f"error {error.code}"
        elif isinstance(error, CancelledError):
            why = "cancelled"
        else:
            why = type(error).__name__
        stats.fail(why)

    # -- leaving and failing ------------------------------------------------------------

    def failPeers(self, fraction: float) -> list[SimNode]:
        """Kill ``fraction`` of the members at once (chosen at random)."""
        members = sorted(self.members.order, key=lambda n: n.nodeId)
        victims = self.rng.sample(members, round(fraction * len(members)))
        for node in victims:
            self.members.remove(node)
            node.fail()
        return victims

    def leavePeer(self, node: SimNode) -> Deferred[None]:
        """``node`` leaves gracefully (section 10.9) and stops."""
        self.members.remove(node)
        return node.leave()

    def churn(
        self,
        duration: float,
        *,
        joinRate: float,
        leaveRate: float,
        failRate: float,
        lookupRate: float = 0.0,
        minMembers: int = 8,
    ) -> ChurnStats:
        """Joins, leaves and failures as Poisson processes (events per
        second across the overlay) for ``duration`` simulated seconds, with
        ``lookupRate`` lookups per second; then waits for joins and lookups
        under way."""
        stats = ChurnStats(duration=duration)
        end = self.sched.now + duration
        joins = _Outstanding()
        lookups = _Outstanding()

        def joinOne() -> None:
            stats.joins += 1
            joins.track(self._start(self.newNode()))

        def leaveOne() -> None:
            if len(self.members) > minMembers:
                stats.leaves += 1
                self.leavePeer(self.members.random(self.rng)).addErrback(lambda _: None)

        def failOne() -> None:
            if len(self.members) > minMembers:
                stats.fails += 1
                node = self.members.random(self.rng)
                self.members.remove(node)
                node.fail()

        def lookupOne() -> None:
            if self.members:
                lookups.track(self.lookup(stats.during))

        def process(rate: float, action: Callable[[], None]) -> None:
            if rate <= 0:
                return

            def fire() -> None:
                action()
                schedule()

            def schedule() -> None:
                delay = self.rng.expovariate(rate)
                if self.sched.now + delay < end:
                    self.sched.callLater(delay, fire)

            schedule()

        process(joinRate, joinOne)
        process(leaveRate, leaveOne)
        process(failRate, failOne)
        process(lookupRate, lookupOne)
        step = max(self.settings.updateInterval / 4, 1.0)
        while self.sched.now < end:
            self.sched.runUntil(min(end, self.sched.now + step))
            self._maintainGc()
        self.sched.runUntilTrue(lambda: joins.idle() and lookups.idle(), 600.0)
        stats.joinFailures = joins.failed
        stats.joins -= joins.failed
        return stats

    # -- checks ------------------------------------------------------------------------------

    def ringCheck(self) -> dict[str, Any]:
        """How many members have the true first successor and predecessor
        (section 10.1) in their Neighbor Table."""
        ring = self.members.sortedNodes()
        count = len(ring)
        good = 0
        for index, node in enumerate(ring):
            table = node.topology.neighbours()
            succ = table.get("successors", [])
            pred = table.get("predecessors", [])
            if count == 1:
                good += not succ and not pred
                continue
            if (
                succ
                and pred
                and succ[0] == ring[(index + 1) % count].nodeId
                and pred[0] == ring[(index - 1) % count].nodeId
            ):
                good += 1
        return {"members": count, "correctNeighbours": good, "rate": rate(good, count)}

    def counters(self) -> dict[str, int]:
        """The transports' counters summed over every node, and the
        network's."""
        totals: dict[str, int] = {}
        for node in self.nodes.values():
            for key, value in node.transport.counters.items():
                totals[key] = totals.get(key, 0) + value
        totals["linkMessages"] = self.network.messages
        totals["linkBytes"] = self.network.bytes
        totals["connects"] = self.network.connects
        totals["schedulerCalls"] = self.sched.executed
        totals["schedulerErrors"] = self.sched.errors
        return dict(sorted(totals.items()))

    def state(self) -> dict[str, Any]:
        """Where the overlay is now."""
        links = sum(len(n.transport.connected) for n in self.members.order)
        members = len(self.members)
        return {
            "simTime": round(self.sched.now - self.settings.start, 6),
            "nodesCreated": len(self.nodes),
            "members": members,
            "meanLinksPerMember": None if not members else round(links / members, 3),
            "meanRoutingTable": None
            if not members
            else round(sum(_tableSize(n) for n in self.members.order) / members, 3),
        }


def _tableSize(node: SimNode) -> int:
    """The peers in a node's Routing Table (section 10.3): every peer its
    topology names in some role."""
    return len({peer for peers in node.topology.neighbours().values() for peer in peers})


# -- the scenarios -----------------------------------------------------------------------------


def _header(name: str, sim: Simulation, **parameters: Any) -> dict[str, Any]:
    return {"scenario": name, "settings": sim.settings.describe(), "parameters": parameters}


def joinScenario(
    settings: SimSettings,
    *,
    peers: int,
    lookups: int,
    batch: int = 1,
    stabilise: float = 0.0,
    concurrency: int = 1000,
    method: str = "ping",
    progress: Callable[[str], object] | None = None,
) -> tuple[Simulation, dict[str, Any]]:
    """``peers`` join (``batch`` at a time), ``stabilise`` seconds pass,
    then ``lookups`` lookups."""
    sim = Simulation(settings)
    out = _header(
        "join",
        sim,
        peers=peers,
        lookups=lookups,
        batch=batch,
        stabilise=stabilise,
        concurrency=concurrency,
        method=method,
    )
    with gcTuned(settings.tuneGc):
        out["join"] = _buildRing(sim, peers, batch, stabilise, progress)
        out["ring"] = sim.ringCheck()
        if progress is not None:
            progress(f"joined {len(sim.members)} peers; {lookups} lookups")
        out["lookups"] = sim.lookups(lookups, concurrency=concurrency, method=method).summary()
        out["state"] = sim.state()
        out["counters"] = sim.counters()
    return sim, out


def _buildRing(
    sim: Simulation,
    peers: int,
    batch: int,
    stabilise: float,
    progress: Callable[[str], object] | None,
) -> dict[str, Any]:
    """Every scenario's start: join ``peers``, let the messages settle, and
    run ``stabilise`` simulated seconds of maintenance; the join summary."""
    summary = _joinInChunks(sim, peers, batch, progress).summary()
    sim.settle()
    if stabilise:
        sim.stabilise(stabilise)
    return summary


def _joinInChunks(
    sim: Simulation, peers: int, batch: int, progress: Callable[[str], object] | None
) -> JoinStats:
    total = JoinStats()
    chunk = max(batch, 500)
    done = 0
    while done < peers:
        size = min(chunk, peers - done)
        stats = sim.joinPeers(size, batch)
        done += size
        for name in ("attempted", "joined", "failed", "messages"):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
        total.simSeconds += stats.simSeconds
        if progress is not None:
            progress(f"{done}/{peers} joins, simulated {sim.sched.now - sim.settings.start:.0f} s")
    return total


def churnScenario(
    settings: SimSettings,
    *,
    peers: int,
    duration: float,
    joinRate: float,
    leaveRate: float,
    failRate: float,
    lookupRate: float,
    lookups: int,
    settle: float,
    batch: int = 1,
    stabilise: float = 0.0,
    progress: Callable[[str], object] | None = None,
) -> tuple[Simulation, dict[str, Any]]:
    """Build an overlay of ``peers``, churn it for ``duration`` seconds,
    let ``settle`` seconds pass, then ``lookups`` lookups must all be
    correct."""
    sim = Simulation(settings)
    out = _header(
        "churn",
        sim,
        peers=peers,
        duration=duration,
        joinRate=joinRate,
        leaveRate=leaveRate,
        failRate=failRate,
        lookupRate=lookupRate,
        lookups=lookups,
        settle=settle,
        batch=batch,
        stabilise=stabilise,
    )
    with gcTuned(settings.tuneGc):
        out["join"] = _buildRing(sim, peers, batch, stabilise, progress)
        if progress is not None:
            progress(f"churn for {duration} simulated seconds")
        out["churn"] = sim.churn(
            duration,
            joinRate=joinRate,
            leaveRate=leaveRate,
            failRate=failRate,
            lookupRate=lookupRate,
        ).summary()
        sim.stabilise(settle)
        out["ring"] = sim.ringCheck()
        out["lookupsAfter"] = sim.lookups(lookups).summary()
        out["state"] = sim.state()
        out["counters"] = sim.counters()
    return sim, out


def massFailureScenario(
    settings: SimSettings,
    *,
    peers: int,
    fraction: float,
    lookups: int,
    settle: float,
    batch: int = 1,
    stabilise: float = 0.0,
    progress: Callable[[str], object] | None = None,
) -> tuple[Simulation, dict[str, Any]]:
    """Build an overlay of ``peers``; ``fraction`` of them fail at once.

    "Before repair": the failures are seen (the neighbours' links close,
    taking the failed peers out of their Routing Tables, section 10.7.1),
    but every maintenance message (Update, Attach, ...) is held in flight
    while ``lookups`` lookups run.  Then the held messages go on, ``settle``
    seconds pass, and ``lookups`` more run "after repair".
    """
    sim = Simulation(settings)
    out = _header(
        "massFailure",
        sim,
        peers=peers,
        fraction=fraction,
        lookups=lookups,
        settle=settle,
        batch=batch,
        stabilise=stabilise,
    )
    with gcTuned(settings.tuneGc):
        out["join"] = _buildRing(sim, peers, batch, stabilise, progress)
        out["ringBefore"] = sim.ringCheck()
        out["lookupsIntact"] = sim.lookups(lookups).summary()
        sim.network.hold(_isMaintenance)
        victims = sim.failPeers(fraction)
        sim.sched.runUntil(sim.sched.now + settings.detection)
        out["failed"] = len(victims)
        # All at once, answered within the first transmission (before any
        # held request could time out and count as a failure of its own).
        deadline = 0.9 * DEFAULT_RELIABILITY_TIMER
        out["lookupsBeforeRepair"] = sim.lookups(
            lookups, concurrency=lookups, deadline=deadline
        ).summary()
        out["heldMessages"] = sim.network.release()
        if progress is not None:
            progress(f"{len(victims)} peers failed; repairing for {settle} simulated seconds")
        sim.stabilise(settle)
        out["ringAfter"] = sim.ringCheck()
        out["lookupsAfterRepair"] = sim.lookups(lookups).summary()
        out["state"] = sim.state()
        out["counters"] = sim.counters()
    return sim, out
