"""In-memory overlay links for testing the transport as one layer.

A :class:`MemoryNetwork` connects :class:`~reload.link.interfaces.ILinkHandler`
instances (transports, or a :class:`Recorder` standing in for a hand-driven
peer) with pairs of :class:`MemoryLink`.  Every message is delivered one
``latency`` later on a :class:`twisted.internet.task.Clock`, so nothing is
re-entrant, and :meth:`MemoryNetwork.settle` runs the network until it is
quiet.  Links can lose or duplicate messages on purpose.

Each node gets a pretend address (``127.0.0.x:6084``); :meth:`MemoryNetwork
.connector` is a ``connect(host, port, nodeId)`` function for
:class:`~reload.transport.attach.NoIceAttachHandler` that opens a link to
whoever has that address, and fails when its Node-ID is not the one
expected (the certificate check of section 6.5.1.11).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.link.errors import LinkClosed
from reload.link.interfaces import ILink, ILinkHandler
from reload.wire.attach import OverlayLinkType

LATENCY = 0.01


@dataclass(frozen=True)
class MemoryPeer:
    """The verified peer of a link (what VerifiedPeer offers the transport)."""

    nodeIds: tuple[bytes, ...]
    userName: str | None = None

    @property
    def nodeId(self) -> bytes:
        return self.nodeIds[0]


@implementer(ILink)
class MemoryLink:
    """One end of an in-memory link; ``peer`` is the node at the other end."""

    linkType = OverlayLinkType.TLS_TCP_FH_NO_ICE
    rto = None

    def __init__(self, net: MemoryNetwork, owner: bytes, handler: Any, peer: bytes) -> None:
        self.net = net
        self.owner = owner
        self.handler = handler
        self.peer = MemoryPeer((peer,))
        self.other: MemoryLink | None = None
        self.open = True
        #: Everything sent on this end.
        self.sent: list[bytes] = []
        #: Outgoing messages to lose (a count) and to deliver twice.
        self.lose = 0
        self.loseIf: Callable[[bytes], bool] | None = None
        self.duplicate = False

    def __repr__(self) -> str:
        return f"<MemoryLink {self.owner.hex()[:6]}->{self.peer.nodeId.hex()[:6]}>"

    def send(self, message: bytes) -> None:
        if not self.open:
            raise LinkClosed("the memory link is closed")
        self.sent.append(message)
        if self.lose > 0:
            self.lose -= 1
            return
        if self.loseIf is not None and self.loseIf(message):
            return
        other = self.other
        assert other is not None
        self.net.clock.callLater(self.net.latency, other.arrive, message)
        if self.duplicate:
            self.net.clock.callLater(2 * self.net.latency, other.arrive, message)

    def arrive(self, message: bytes) -> None:
        if self.open:
            self.handler.messageReceived(self, message)

    def close(self) -> None:
        if not self.open:
            return
        self.open = False
        self.net.forget(self)
        self.handler.linkClosed(self, "closed")
        if self.other is not None:
            self.net.clock.callLater(self.net.latency, self.other.close)


@implementer(ILinkHandler)
class Recorder:
    """An ILinkHandler that keeps what it is told (a peer driven by hand)."""

    def __init__(self, nodeId: bytes) -> None:
        self.nodeId = nodeId
        self.received: list[bytes] = []
        self.links: list[ILink] = []
        self.closed: list[ILink] = []

    def linkUp(self, link: ILink) -> None:
        self.links.append(link)

    def messageReceived(self, link: ILink, message: bytes) -> None:
        self.received.append(message)

    def linkClosed(self, link: ILink, reason: str) -> None:
        self.closed.append(link)


@dataclass
class MemoryNetwork:
    """Nodes, addresses and the links between them, on one clock."""

    clock: Clock = field(default_factory=Clock)
    latency: float = LATENCY

    def __post_init__(self) -> None:
        self.handlers: dict[bytes, Any] = {}
        self.addresses: dict[tuple[str, int], bytes] = {}
        self.addressOf: dict[bytes, tuple[str, int]] = {}
        self.links: dict[tuple[bytes, bytes], MemoryLink] = {}

    def add(self, nodeId: bytes, handler: Any) -> tuple[str, int]:
        """Put ``handler`` (a transport) on the network as ``nodeId``; its
        pretend address."""
        self.handlers[nodeId] = handler
        index = len(self.addresses) + 1
        address = (f"127.0.{index // 250}.{index % 250 + 1}", 6084)
        self.addresses[address] = nodeId
        self.addressOf[nodeId] = address
        return address

    def link(self, a: bytes, b: bytes) -> MemoryLink:
        """The end at ``a`` of the link a-b, made (and announced to both
        handlers, ``a`` first) if there is none."""
        existing = self.links.get((a, b))
        if existing is not None and existing.open:
            return existing
        ab = MemoryLink(self, a, self.handlers[a], b)
        ba = MemoryLink(self, b, self.handlers[b], a)
        ab.other, ba.other = ba, ab
        self.links[(a, b)] = ab
        self.links[(b, a)] = ba
        ab.handler.linkUp(ab)
        ba.handler.linkUp(ba)
        return ab

    def forget(self, link: MemoryLink) -> None:
        key = (link.owner, link.peer.nodeId)
        if self.links.get(key) is link:
            del self.links[key]

    def unlink(self, a: bytes, b: bytes) -> None:
        link = self.links.get((a, b))
        if link is not None:
            link.close()

    def connector(self, local: bytes) -> Callable[[str, int, bytes], Deferred[MemoryLink]]:
        """``connect(host, port, expectedNodeId)`` for ``local``'s attach
        handler: a link to the node at that address, one latency later."""

        def connect(host: str, port: int, expected: bytes) -> Deferred[MemoryLink]:
            d: Deferred[MemoryLink] = Deferred()

            def made() -> None:
                found = self.addresses.get((host, port))
                if found is None:
                    d.errback(ConnectionRefusedError(f"nothing at {host}:{port}"))
                elif found != expected:
                    d.errback(
                        Failure(
                            ConnectionError(f"{host}:{port} is {found.hex()}, not {expected.hex()}")
                        )
                    )
                else:
                    d.callback(self.link(local, found))

            self.clock.callLater(self.latency, made)
            return d

        return connect

    def settle(self, horizon: float = 30.0) -> None:
        """Run every delivery and timer due within ``horizon`` seconds of
        activity (long stabilisation timers do not run)."""
        while True:
            now = self.clock.seconds()
            soon = [
                c.getTime() for c in self.clock.getDelayedCalls() if c.getTime() <= now + horizon
            ]
            if not soon:
                return
            self.clock.advance(max(0.0, min(soon) - now))
