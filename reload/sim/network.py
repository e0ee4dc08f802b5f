"""The simulated network: in-memory overlay links with latency on one
:class:`~reload.sim.clock.Scheduler`.

A :class:`SimNetwork` knows every simulated host (an
:class:`~reload.link.interfaces.ILinkHandler`, the node's transport, under
its Node-ID and a pretend address) and the links between them.  A
:class:`SimLink` is one end of a link pair: :meth:`SimLink.send` delivers
the message to the other end's handler one link latency later, in order
(each link has a fixed latency, drawn from the network's seeded random
generator when ``jitter`` is set).

:meth:`SimNetwork.connector` is the ``connect(host, port, nodeId)`` function
a :class:`~reload.transport.attach.NoIceAttachHandler` opens links with:
after a connection round trip it links the two hosts, or fails when the
address is dead or holds another Node-ID (the certificate check of RFC 6940
section 6.5.1.11).  With ``tls=True`` it runs the real TLS-TCP-FH-NO-ICE
link code instead (:mod:`reload.sim.tls`): a TLS handshake with certificate
checks and framing over an in-memory byte stream.

Failures: :meth:`SimNetwork.fail` kills a host (its pending calls are
dropped, nothing it sent arrives any more) and the other end of each of its
links hears ``linkClosed`` after ``detection`` seconds, as a peer whose
process died is seen by its neighbours (connection reset; the default 0) or
by link failure detection (section 6.6.5, a longer ``detection``).
:meth:`SimNetwork.hold` keeps messages matching a predicate in flight until
:meth:`SimNetwork.release`: the simulator holds the topology's repair
traffic that way to measure lookups "before repair".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from heapq import heappush
from random import Random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.link.errors import LinkClosed
from reload.link.interfaces import ILink
from reload.sim.clock import NodeClock, Scheduler
from reload.wire.attach import OverlayLinkType

__all__ = ["DEFAULT_LATENCY", "Host", "SimLink", "SimNetwork", "SimPeer"]

#: One-way latency of a link, in seconds.
DEFAULT_LATENCY = 0.01


@dataclass(frozen=True, slots=True)
class SimPeer:
    """The verified peer of a simulated link (what a
    :class:`~reload.security.trust.VerifiedPeer` offers the transport)."""

    nodeId: bytes

    @property
    def nodeIds(self) -> tuple[bytes, ...]:
        return (self.nodeId,)


class Host:
    """A node on the network: its Node-ID, address, handler and links."""

    __slots__ = ("address", "alive", "clock", "handler", "links", "nodeId")

    def __init__(self, nodeId: bytes, address: tuple[str, int], sched: Scheduler) -> None:
        self.nodeId = nodeId
        self.address = address
        self.alive = True
        self.handler: Any = None
        #: Open links by the Node-ID at their other end.
        self.links: dict[bytes, Any] = {}
        self.clock = NodeClock(sched, self)

    def __repr__(self) -> str:
        return f"<Host {self.nodeId.hex()[:8]} {'up' if self.alive else 'dead'}>"


@implementer(ILink)
class SimLink:
    """One end of an in-memory link; ``peer`` is the host at the other end."""

    __slots__ = ("__weakref__", "latency", "net", "open", "other", "owner", "peer")

    linkType = OverlayLinkType.TLS_TCP_FH_NO_ICE
    rto = None

    def __init__(self, net: SimNetwork, owner: Host, peer: Host, latency: float) -> None:
        self.net = net
        self.owner = owner
        self.peer = SimPeer(peer.nodeId)
        self.latency = latency
        self.other: SimLink | None = None
        self.open = True

    def __repr__(self) -> str:
        return f"<SimLink {self.owner.nodeId.hex()[:8]}->{self.peer.nodeId.hex()[:8]}>"

    def send(self, message: bytes) -> None:
        if not self.open:
            raise LinkClosed("the simulated link is closed")
        net = self.net
        net.messages += 1
        net.bytes += len(message)
        if net._hold is not None and net._hold(message):
            net._held.append((self, message))
            return
        # Scheduler.later, inlined: this is the hottest call of a run.
        sched = net.sched
        sched._seq += 1
        heappush(
            sched._heap,
            (sched.now + self.latency, sched._seq, self.other._arrive, (message,)),  # type: ignore[union-attr]
        )

    def _arrive(self, message: bytes) -> None:
        if self.open and self.owner.alive:
            self.owner.handler.messageReceived(self, message)

    def close(self) -> None:
        """Close both ends: this side hears ``linkClosed`` now, the other
        one latency later."""
        if not self.open:
            return
        self._shut("closed")
        other = self.other
        if other is not None and other.open:
            self.net.sched.later(self.latency, other._closedByPeer)

    def _closedByPeer(self) -> None:
        if self.open:
            self._shut("closed by the peer")

    def _shut(self, reason: str) -> None:
        self.open = False
        owner = self.owner
        if owner.links.get(self.peer.nodeId) is self:
            del owner.links[self.peer.nodeId]
        if owner.alive:
            owner.handler.linkClosed(self, reason)


class SimNetwork:
    """Hosts and the links between them, on one :class:`Scheduler`.

    ``latency`` is the one-way delay of a link; with ``jitter`` each link
    gets ``latency * uniform(1 - jitter, 1 + jitter)``, drawn from ``rng``.
    ``detection`` is how long after a host dies the other ends of its
    links hear ``linkClosed``.  ``tls`` selects real TLS links for
    connections opened through :meth:`connector` (see :mod:`reload.sim.tls`;
    ``tlsFactory`` makes them).
    """

    def __init__(
        self,
        sched: Scheduler | None = None,
        *,
        latency: float = DEFAULT_LATENCY,
        jitter: float = 0.0,
        detection: float = 0.0,
        rng: Random | None = None,
        tlsFactory: Any = None,
    ) -> None:
        if latency < 0 or not 0 <= jitter < 1 or detection < 0:
            raise ValueError("latency and detection are >= 0, jitter in [0, 1)")
        self.sched = sched if sched is not None else Scheduler()
        self.latency = latency
        self.jitter = jitter
        self.detection = detection
        self.rng = rng if rng is not None else Random(0)
        self.tlsFactory = tlsFactory
        self.hosts: dict[bytes, Host] = {}
        self.byAddress: dict[tuple[str, int], Host] = {}
        #: Messages and bytes sent on every link so far.
        self.messages = 0
        self.bytes = 0
        self.connects = 0
        self._hold: Callable[[bytes], bool] | None = None
        self._held: list[tuple[SimLink, bytes]] = []

    # -- hosts ----------------------------------------------------------------------

    def add(self, nodeId: bytes) -> Host:
        """A new host for ``nodeId`` with the next free pretend address;
        set its ``handler`` before linking it."""
        if nodeId in self.hosts and self.hosts[nodeId].alive:
            raise ValueError(f"{nodeId.hex()} is already on the network")
        index = len(self.byAddress) + 1
        address = (f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}", 6084)
        host = Host(nodeId, address, self.sched)
        self.hosts[nodeId] = host
        self.byAddress[address] = host
        return host

    def linkLatency(self) -> float:
        if not self.jitter:
            return self.latency
        return self.latency * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def link(self, a: Host, b: Host) -> ILink:
        """``a``'s end of a link a-b, made now and announced to both
        handlers (``a`` first) if there is none."""
        existing = a.links.get(b.nodeId)
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        if not (a.alive and b.alive):
            raise LinkClosed("cannot link a dead host")
        latency = self.linkLatency()
        ab = SimLink(self, a, b, latency)
        ba = SimLink(self, b, a, latency)
        ab.other, ba.other = ba, ab
        a.links[b.nodeId] = ab
        b.links[a.nodeId] = ba
        a.handler.linkUp(ab)
        if ba.open:
            b.handler.linkUp(ba)
        return ab

    def connector(self, local: Host) -> Callable[[str, int, bytes], Deferred[Any]]:
        """``connect(host, port, expectedNodeId)`` for ``local``'s attach
        handler: a link to the host at that address after one round trip
        (a full TLS handshake with ``tls``)."""

        def connect(address: str, port: int, expected: bytes) -> Deferred[Any]:
            self.connects += 1
            if self.tlsFactory is not None:
                return self.tlsFactory.connect(local, address, port, expected)  # type: ignore[no-any-return]
            d: Deferred[Any] = Deferred()
            self.sched.later(2 * self.latency, self._connected, local, (address, port), expected, d)
            return d

        return connect

    def _connected(
        self, local: Host, address: tuple[str, int], expected: bytes, d: Deferred[Any]
    ) -> None:
        if not local.alive:
            return
        target = self.byAddress.get(address)
        if target is None or not target.alive:
            d.errback(Failure(ConnectionRefusedError(f"nothing at {address[0]}:{address[1]}")))
        elif target.nodeId != expected:
            d.errback(
                Failure(
                    ConnectionError(
                        f"{address[0]}:{address[1]} is {target.nodeId.hex()}, not {expected.hex()}"
                    )
                )
            )
        else:
            d.callback(self.link(local, target))

    # -- failures -----------------------------------------------------------------------

    def fail(self, host: Host) -> None:
        """Kill ``host``: it runs nothing more, and the other end of each of
        its links hears ``linkClosed`` after ``detection`` seconds."""
        if not host.alive:
            return
        host.alive = False
        if self.tlsFactory is not None:
            self.tlsFactory.failHost(host, self.detection)
        for link in list(host.links.values()):
            link.open = False
            other = link.other
            if other is not None and other.open:
                self.sched.later(self.detection, other._closedByPeer)
        host.links.clear()

    def disconnect(self, host: Host) -> None:
        """Close every link of a live ``host`` (a clean shutdown)."""
        if self.tlsFactory is not None:
            self.tlsFactory.disconnect(host)
        for link in list(host.links.values()):
            link.close()

    # -- holding messages -----------------------------------------------------------------

    def hold(self, predicate: Callable[[bytes], bool]) -> None:
        """Keep every message for which ``predicate(message)`` is true in
        flight until :meth:`release`."""
        self._hold = predicate

    def release(self) -> int:
        """Send the held messages on, in the order they were sent (those on
        links closed since are lost); how many there were."""
        self._hold = None
        held, self._held = self._held, []
        for link, message in held:
            other = link.other
            if link.open and other is not None:
                self.sched.later(link.latency, other._arrive, message)
        return len(held)

    @property
    def held(self) -> int:
        return len(self._held)
