# mypy: disable-error-code="untyped-decorator"
"""TLS-TCP-FH-NO-ICE links over real TLS on 127.0.0.1 (RFC 6940 section
6.6.5), between peers with self-signed certificates (section 11.3.1)."""

from __future__ import annotations

import os
import time
from typing import Any, cast

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from reload.link.errors import LinkClosed
from reload.link.table import ConnectionTable
from reload.link.tls import HandshakeFailed, LinkSettings, TLSLink
from tests.link.conftest import Peer, Peers, sleep, until


async def _linked(
    tlsPeers: Peers, settings: LinkSettings | None = None
) -> tuple[TLSLink, TLSLink, Peer, Peer]:
    """Two new peers, ``a`` connected to ``b``: (a's link, b's link, a, b)."""
    a, b = await tlsPeers.make(settings), await tlsPeers.make(settings)
    link = await a.listener.connect("127.0.0.1", b.port, b.nodeId)
    await until(lambda: b.handler.up)
    back = b.handler.up[0]
    assert isinstance(back, TLSLink)
    return link, back, a, b


@pytest_twisted.ensureDeferred
async def test_twoSelfSignedPeersExchangeMessagesBothWays(tlsPeers: Peers) -> None:
    """Section 6.6.5: a verified link carries messages in data frames both
    ways; each side's linkUp comes with the other's verified Node-ID."""
    a, b = await tlsPeers.make(), await tlsPeers.make()
    link = await a.listener.connect("127.0.0.1", b.port, b.nodeId)
    assert isinstance(link, TLSLink)
    assert a.handler.up == [link]
    assert link.peer.nodeIds == b.identity.nodeIds and link.outbound
    await until(lambda: b.handler.up)
    back = b.handler.up[0]
    assert isinstance(back, TLSLink)
    assert back.peer.nodeIds == a.identity.nodeIds and back.nodeId == a.nodeId
    assert not back.outbound
    for i in range(50):
        link.send(b"ping %d" % i)
        back.send(b"pong %d" % i)
    await until(lambda: len(b.handler.messages) == 50 and len(a.handler.messages) == 50)
    assert b.handler.messagesOn(back) == [b"ping %d" % i for i in range(50)]
    assert a.handler.messagesOn(link) == [b"pong %d" % i for i in range(50)]
    big = os.urandom(a.listener.settings.maxMessageSize)
    link.send(big)
    await until(lambda: len(b.handler.messages) == 51)
    assert b.handler.messages[-1][1] == big


@pytest_twisted.ensureDeferred
async def test_acksUpdateTheRto(tlsPeers: Peers) -> None:
    """Sections 6.6.2 and 6.6.5: every data frame is ACKed and the ACKs
    give the RTT samples of an RFC 6298 RTO (minRto 0 shows it unclamped)."""
    settings = LinkSettings(minRto=0.0)
    link, back, _, _ = await _linked(tlsPeers, settings)
    assert link.rto is None and link.srtt is None
    link.send(b"first")
    await until(lambda: link.outstanding == 0)
    first, srtt = link.rto, link.srtt
    assert srtt is not None and 0 < srtt < 1
    # RFC 6298 (2.2): the first sample R gives RTO = R + 4 R/2 (ceiling ms).
    assert first is not None and first == pytest.approx(max(3 * srtt, 0.001), abs=0.0011)
    assert first < settings.initialRto
    for _ in range(20):
        link.send(b"more")
    await until(lambda: link.outstanding == 0)
    assert link.srtt != srtt  # (2.3): later samples moved the estimate
    assert back.framesReceived == 21 and link.acksReceived == 21


@pytest_twisted.ensureDeferred
async def test_garbageClosesOnlyThatLink(tlsPeers: Peers) -> None:
    """DESIGN.md: a peer that sends bytes that are not framing loses its
    link; the listener goes on serving another link, both ways."""
    server = await tlsPeers.make()
    bad, good = await tlsPeers.make(), await tlsPeers.make()
    badLink = await bad.listener.connect("127.0.0.1", server.port, server.nodeId)
    goodLink = await good.listener.connect("127.0.0.1", server.port, server.nodeId)
    await until(lambda: len(server.handler.up) == 2)
    byNodeIds = {link.peer.nodeIds: link for link in server.handler.up}
    fromBad, fromGood = byNodeIds[bad.identity.nodeIds], byNodeIds[good.identity.nodeIds]
    badLink.send(b"a valid message first")
    await until(lambda: server.handler.messagesOn(fromBad))
    # Inside TLS, after the handshake: a frame type that does not exist.
    assert badLink.transport is not None
    badLink.transport.write(b"\x07not framing at all")
    await until(lambda: server.handler.reasonFor(fromBad) is not None)
    reason = server.handler.reasonFor(fromBad)
    assert reason is not None and "framing error" in reason
    await until(lambda: bad.handler.reasonFor(badLink) is not None)
    with pytest.raises(LinkClosed):
        badLink.send(b"more")
    # The other link is untouched and works both ways.
    assert server.handler.reasonFor(fromGood) is None
    goodLink.send(b"still there?")
    await until(lambda: server.handler.messagesOn(fromGood) == [b"still there?"])
    fromGood.send(b"yes")
    await until(lambda: good.handler.messagesOn(goodLink) == [b"yes"])
    # And the listener accepts the bad peer again.
    again = await bad.listener.connect("127.0.0.1", server.port, server.nodeId)
    assert again is not badLink and again.isOpen


@pytest_twisted.ensureDeferred
async def test_oversizedFrameAnnouncedClosesTheLink(tlsPeers: Peers) -> None:
    """Section 6.6: a message over max-message-size closes the session,
    before the rest of it arrives."""
    server = await tlsPeers.make(LinkSettings(maxMessageSize=1000))
    client = await tlsPeers.make(LinkSettings(maxMessageSize=100000))
    link = await client.listener.connect("127.0.0.1", server.port, server.nodeId)
    await until(lambda: server.handler.up)
    link.send(b"x" * 1001)
    await until(lambda: server.handler.closed)
    assert "more than the maximum 1000" in server.handler.closed[0][1]
    assert server.handler.messages == []


class Silent(Protocol):
    """A TCP client that connects and never says anything."""

    def __init__(self) -> None:
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost.callback(None)


@pytest_twisted.ensureDeferred
async def test_handshakeTimeoutDropsASilentClient(tlsPeers: Peers) -> None:
    from twisted.internet import reactor

    server = await tlsPeers.make(LinkSettings(handshakeTimeout=0.3))
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", server.port)
    started = time.monotonic()
    silent = cast(Silent, await endpoint.connect(Factory.forProtocol(Silent)))
    await silent.lost.addTimeout(5, reactor)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 3
    assert server.handler.up == [] and server.handler.closed == []


@pytest_twisted.ensureDeferred
async def test_handshakeTimeoutOnTheClientSide(tlsPeers: Peers) -> None:
    """A server that accepts TCP but never answers TLS: connect() fails."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint

    mute = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Factory.forProtocol(Protocol)
    )
    try:
        client = await tlsPeers.make(LinkSettings(handshakeTimeout=0.3))
        with pytest.raises(HandshakeFailed, match="handshake"):
            await client.listener.connect("127.0.0.1", mute.getHost().port, os.urandom(20))
        assert client.handler.up == []
    finally:
        await mute.stopListening()


@pytest_twisted.ensureDeferred
async def test_idleTimeoutClosesTheLink(tlsPeers: Peers) -> None:
    """No frame either way for idleTimeout: the link closes (no keepalives
    without ICE, section 6.6.5)."""
    server = await tlsPeers.make(LinkSettings(idleTimeout=0.4))
    client = await tlsPeers.make()
    link = await client.listener.connect("127.0.0.1", server.port, server.nodeId)
    await until(lambda: server.handler.up)
    link.send(b"some traffic")
    started = time.monotonic()
    await until(lambda: server.handler.closed and client.handler.closed)
    assert time.monotonic() - started >= 0.3
    assert "idle" in server.handler.closed[0][1]


@pytest_twisted.ensureDeferred
async def test_expectedNodeIdMismatchGivesNoLinkUp(tlsPeers: Peers) -> None:
    """The server is not the node the client wanted: the client's verify
    callback refuses, no side hears linkUp and connect() fails."""
    server, client = await tlsPeers.make(), await tlsPeers.make()
    wrong = bytes(b ^ 0xFF for b in server.nodeId)
    with pytest.raises(HandshakeFailed):
        await client.listener.connect("127.0.0.1", server.port, wrong)
    await sleep(0.2)
    assert client.handler.up == [] and server.handler.up == []
    assert len(client.listener.table) == 0 and len(server.listener.table) == 0


@pytest_twisted.ensureDeferred
async def test_unackedFramesFailTheLink(tlsPeers: Peers) -> None:
    """Section 6.6.5: a peer that stops ACKing stalls the link after the
    RTO and fails it after the grace period; the handler hears linkClosed."""
    settings = LinkSettings(initialRto=0.1, minRto=0.1, failureGrace=0.3)
    link, back, a, _ = await _linked(tlsPeers, settings)
    link.send(b"acked")
    await until(lambda: link.outstanding == 0)
    back.dataReceived = lambda data: None  # type: ignore[method-assign]
    link.send(b"never acked")
    await until(lambda: link.stalled)
    assert link.isOpen
    await until(lambda: a.handler.closed)
    assert a.handler.closed[0][0] is link and "link failed" in a.handler.closed[0][1]


@pytest_twisted.ensureDeferred
async def test_linkLimitClosesLinksBeyondIt(tlsPeers: Peers) -> None:
    """A table full of links this node opened refuses a newcomer."""
    table: ConnectionTable[TLSLink] = ConnectionTable(None, maxLinks=1)
    server = await tlsPeers.make(table=table)
    first, second = await tlsPeers.make(), await tlsPeers.make()
    await server.listener.connect("127.0.0.1", first.port, first.nodeId)
    await until(lambda: server.handler.up)
    # TLS 1.3: the second client finishes its handshake before the server
    # refuses the link, so it may see linkUp; it then sees the link close.
    refused = await second.listener.connect("127.0.0.1", server.port, server.nodeId)
    await until(lambda: not refused.isOpen)
    await sleep(0.1)
    assert len(server.handler.up) == 1 and len(table) == 1
    assert server.handler.up[0].peer.nodeIds == first.identity.nodeIds


@pytest_twisted.ensureDeferred
async def test_fullTableEvictsAnInboundLinkThatCarriedNothingForANewcomer(
    tlsPeers: Peers,
) -> None:
    table: ConnectionTable[TLSLink] = ConnectionTable(None, maxLinks=1)
    server = await tlsPeers.make(table=table)
    first, second = await tlsPeers.make(), await tlsPeers.make()
    silent = await first.listener.connect("127.0.0.1", server.port, server.nodeId)
    await until(lambda: server.handler.up)
    admitted = await second.listener.connect("127.0.0.1", server.port, server.nodeId)
    await until(lambda: not silent.isOpen)
    await sleep(0.1)
    assert admitted.isOpen and len(table) == 1 and table.evicted == 1
    kept = table.linkFor(second.nodeId)
    assert kept is not None and kept.peer.nodeIds == second.identity.nodeIds


@pytest_twisted.ensureDeferred
async def test_connectTwiceGivesTheSameLink(tlsPeers: Peers) -> None:
    a, b = await tlsPeers.make(), await tlsPeers.make()
    d1 = a.listener.connect("127.0.0.1", b.port, b.nodeId)
    d2 = a.listener.connect("127.0.0.1", b.port, b.nodeId)
    l1, l2 = await d1, await d2
    assert l1 is l2
    assert await a.listener.connect("127.0.0.1", b.port, b.nodeId) is l1
    assert len(a.handler.up) == 1


@pytest_twisted.ensureDeferred
async def test_simultaneousConnectsKeepOneConnection(tlsPeers: Peers) -> None:
    """Both ends connect at once: both keep the same TCP connection."""
    a, b = await tlsPeers.make(), await tlsPeers.make()
    da = a.listener.connect("127.0.0.1", b.port, b.nodeId)
    db = b.listener.connect("127.0.0.1", a.port, a.nodeId)
    await da
    await db
    await sleep(0.2)
    assert len(a.listener.table) == 1 and len(b.listener.table) == 1
    la, lb = a.listener.table.linkFor(b.nodeId), b.listener.table.linkFor(a.nodeId)
    assert la is not None and lb is not None and la.isOpen and lb.isOpen
    ta, tb = cast(Any, la.transport), cast(Any, lb.transport)
    assert ta.getHost().port == tb.getPeer().port and ta.getPeer().port == tb.getHost().port
    la.send(b"over the kept link")
    await until(lambda: b.handler.messagesOn(lb) == [b"over the kept link"])


@pytest_twisted.ensureDeferred
async def test_closeIsSeenByBothSides(tlsPeers: Peers) -> None:
    link, back, a, b = await _linked(tlsPeers)
    link.send(b"last words")
    link.close()
    assert a.handler.closed == [(link, "closed locally")]
    with pytest.raises(LinkClosed):
        link.send(b"too late")
    await until(lambda: b.handler.closed)
    assert b.handler.messagesOn(back) == [b"last words"]
    await link.whenLost()


@pytest_twisted.ensureDeferred
async def test_stopServiceClosesEveryLink(tlsPeers: Peers) -> None:
    link, _, a, b = await _linked(tlsPeers)
    await a.listener.stopService()
    assert a.handler.closed and not link.isOpen
    await until(lambda: b.handler.closed)
    assert len(a.listener.table) == 0
