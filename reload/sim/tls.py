"""Real TLS-TCP-FH-NO-ICE links for the simulator (the ``tls`` switch).

With ``SimSettings(tls=True)`` a connection that an Attach opens is not a
:class:`~reload.sim.network.SimLink` but the link stack of a deployed peer:
a :class:`~reload.link.tls.TLSLink` (framing, ACKs, RTO) inside a
:class:`twisted.protocols.tls.TLSMemoryBIOProtocol` with the connection
creators of :mod:`reload.security.tls` (TLS 1.3, mutual certificate
authentication, the fail-closed verify callback that checks the Node-ID in
the certificate against the one expected) and a
:class:`~reload.link.table.ConnectionTable` (one link per Node-ID).  Only
TCP is simulated: :class:`_Stream` is a byte stream between two hosts that
delivers each write one link latency later, in order.

This is the costly switch: every connection makes a TLS handshake with
ECDSA certificates and every message is encrypted, framed and
acknowledged, so it suits overlays of tens to a few hundred peers.
"""

from __future__ import annotations

from collections.abc import Iterable
from random import Random
from typing import TYPE_CHECKING, Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.link.table import ConnectionTable
from reload.link.tls import (
    HandshakeFailed,
    ILinkStallHandler,
    LinkSettings,
    LinkTLSFactory,
    TLSLink,
    TLSLinkFactory,
)
from reload.security.certificates import PeerIdentity
from reload.security.tls import clientConnectionCreator, serverConnectionCreator

if TYPE_CHECKING:
    from reload.sim.network import Host, SimNetwork
    from reload.sim.node import SimNode, SimPki

__all__ = ["TlsLinkFactory"]


@implementer(ITransport)
class _Stream:
    """One end of a simulated TCP connection."""

    def __init__(
        self, net: SimNetwork, host: Host, local: tuple[str, int], remote: tuple[str, int]
    ) -> None:
        self.net = net
        self.host = host
        self.local = local
        self.remote = remote
        self.peer: _Stream | None = None
        self.protocol: Any = None
        self.connected = True
        self.disconnecting = False
        self.latency = net.latency

    def write(self, data: bytes) -> None:
        if self.connected and not self.disconnecting and data:
            assert self.peer is not None
            self.net.bytes += len(data)
            self.net.sched.later(self.latency, self.peer._receive, bytes(data))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self._close(ConnectionDone("closed"))

    def abortConnection(self) -> None:
        self._close(ConnectionLost("aborted"))

    def _close(self, reason: Exception) -> None:
        if self.disconnecting or not self.connected:
            return
        self.disconnecting = True
        assert self.peer is not None
        # What was written before arrives before the close.
        self.net.sched.later(self.latency, self.peer._lost, reason)
        self.net.sched.later(0, self._lost, reason)

    def _receive(self, data: bytes) -> None:
        if self.connected and self.host.alive:
            self.protocol.dataReceived(data)

    def _lost(self, reason: Exception) -> None:
        if not self.connected:
            return
        self.connected = False
        if self.host.alive:
            self.protocol.connectionLost(Failure(reason))

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", *self.remote)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", *self.local)

    def registerProducer(self, producer: object, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass


class _Owner:
    """The link owner of one host: the role
    :class:`~reload.link.listener.LinkListener` plays in a peer (connection
    table, announcing verified links to the transport)."""

    log = Logger()

    def __init__(
        self,
        factory: TlsLinkFactory,
        host: Host,
        identity: PeerIdentity,
        handler: Any,
        rng: Random,
    ) -> None:
        self.factory = factory
        self.host = host
        self.identity = identity
        self.handler = handler
        self.table: ConnectionTable[TLSLink] = ConnectionTable(host.nodeId, rng=rng)
        self.streams: list[_Stream] = []
        self.waiters: dict[int, Deferred[TLSLink]] = {}
        self._announced: set[int] = set()
        pki = factory.pki
        self.serverFactory = LinkTLSFactory(
            serverConnectionCreator(identity, pki.trust, host.clock),
            False,
            TLSLinkFactory(self, handler, factory.settings, host.clock, False),
            clock=host.clock,
        )

    def clientFactory(self, expected: bytes) -> TLSMemoryBIOFactory:
        clock = self.host.clock
        creator = clientConnectionCreator(self.identity, self.factory.pki.trust, expected, clock)
        links = TLSLinkFactory(self, self.handler, self.factory.settings, clock, True, expected)
        return LinkTLSFactory(creator, True, links, clock=clock)

    # -- LinkOwner ------------------------------------------------------------------

    def linkVerified(self, link: TLSLink) -> None:
        nodeId = link.nodeId
        assert nodeId is not None
        if self.table.add(nodeId, link, link.outbound):
            self._announced.add(id(link))
            self.handler.linkUp(link)
        waiter = self.waiters.pop(id(link), None)
        if waiter is not None:
            kept = self.table.linkFor(nodeId)
            if kept is not None:
                waiter.callback(kept)
            else:
                waiter.errback(HandshakeFailed("the connection table refused the link"))

    def handshakeFailed(self, link: TLSLink, reason: str) -> None:
        waiter = self.waiters.pop(id(link), None)
        if waiter is not None:
            waiter.errback(HandshakeFailed(reason))

    def linkClosed(self, link: TLSLink, reason: str) -> None:
        self.table.remove(link)
        if id(link) in self._announced:
            self._announced.discard(id(link))
            self.handler.linkClosed(link, reason)

    def linkStalled(self, link: TLSLink) -> None:
        if id(link) in self._announced and ILinkStallHandler.providedBy(self.handler):
            self.handler.linkStalled(link)

    def linkResumed(self, link: TLSLink) -> None:
        if id(link) in self._announced and ILinkStallHandler.providedBy(self.handler):
            self.handler.linkResumed(link)

    def refused(self, reason: str, link: TLSLink, format: str, **kwargs: object) -> None:
        """Bad input on a simulated link: logged (a simulation has no
        abusers to rate-limit)."""
        self.log.warn(format, link=link, address=link.peerAddress, **kwargs)


class TlsLinkFactory:
    """Opens real TLS links between simulated hosts; ``pki`` issues the
    certificates (a node without one, as with signatures off, gets one)."""

    def __init__(self, pki: SimPki, settings: LinkSettings | None = None) -> None:
        self.pki = pki
        self.settings = settings if settings is not None else LinkSettings()
        self.network: SimNetwork | None = None
        self._owners: dict[bytes, _Owner] = {}
        self.handshakes = 0

    def register(self, node: SimNode) -> None:
        """Give ``node`` a link owner (and a certificate if it has none)."""
        identity = node.identity if node.identity is not None else self.pki.identity(node.nodeId)
        node.identity = identity
        rng = Random(int.from_bytes(node.nodeId[:8], "big"))
        self._owners[node.nodeId] = _Owner(self, node.host, identity, node.transport, rng)

    def connect(self, local: Host, address: str, port: int, expected: bytes) -> Deferred[Any]:
        """A TLS link from ``local`` to the node ``expected`` at
        ``address:port``: fires with it once verified."""
        owner = self._owners[local.nodeId]
        existing = owner.table.linkFor(expected)
        if existing is not None:
            return succeed(existing)
        net = self.network
        assert net is not None
        d: Deferred[Any] = Deferred()
        net.sched.later(net.latency, self._syn, owner, (address, port), expected, d)
        return d

    def _syn(
        self, owner: _Owner, address: tuple[str, int], expected: bytes, d: Deferred[Any]
    ) -> None:
        net = self.network
        assert net is not None
        local = owner.host
        if not local.alive:
            return
        target = net.byAddress.get(address)
        remote = None if target is None else self._owners.get(target.nodeId)
        if target is None or not target.alive or remote is None:
            refused = ConnectionRefusedError(address[0], address[1])
            net.sched.later(net.latency, d.errback, Failure(refused))
            return
        self.handshakes += 1
        client = _Stream(net, local, local.address, address)
        server = _Stream(net, target, address, local.address)
        client.peer, server.peer = server, client
        owner.streams.append(client)
        remote.streams.append(server)
        serverProtocol = remote.serverFactory.buildProtocol(server.getPeer())
        clientProtocol = owner.clientFactory(expected).buildProtocol(client.getPeer())
        assert serverProtocol is not None and clientProtocol is not None
        server.protocol, client.protocol = serverProtocol, clientProtocol
        link = clientProtocol.wrappedProtocol
        assert isinstance(link, TLSLink)
        owner.waiters[id(link)] = d
        serverProtocol.makeConnection(server)
        clientProtocol.makeConnection(client)

    def failHost(self, host: Host, detection: float) -> None:
        """``host`` died: its streams go silent, their peers see the
        connection lost after ``detection`` seconds."""
        owner = self._owners.get(host.nodeId)
        if owner is None or self.network is None:
            return
        for stream in owner.streams:
            if stream.connected:
                stream.connected = False
                peer = stream.peer
                if peer is not None and peer.connected:
                    self.network.sched.later(detection, peer._lost, ConnectionLost("peer died"))
        owner.streams.clear()

    def disconnect(self, host: Host) -> None:
        """Close every link of ``host``."""
        owner = self._owners.get(host.nodeId)
        if owner is not None:
            for _, link in owner.table.items():
                link.close()

    def links(self, host: Host) -> int:
        owner = self._owners.get(host.nodeId)
        return 0 if owner is None else len(owner.table)
