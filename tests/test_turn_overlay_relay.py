"""Relayed candidates on an overlay member's TURN server (RFC 6940 sections
6.5.1.5 and 9, RFC 8656 section 3.1): :func:`reload.link.turntls.
allocateOverTls` against the built-in server of a real peer (the fixture of
``test_turn_member_tls``), the stream framing, and the TURN usage as the
node's :class:`~reload.interfaces.IRelaySource`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import deferLater
from zope.interface import implementer

from reload.interfaces import IRelaySource, MemberTurnServer
from reload.link.turnclient import TurnClient, TurnError
from reload.link.turntls import StreamFrames, allocateOverTls
from reload.wire.attach import CandType

from . import test_turn_member_tls
from .test_turn_member_tls import Overlay
from .turn_support import HOST

#: Two real peers, the first with TURN over TLS for members.
overlay = test_turn_member_tls.overlay

reactor: Any = _reactor


class _Peer(DatagramProtocol):
    """A UDP peer on the far side of the relay."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Any]] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.received.append((datagram, addr))


async def _until(condition: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds * 20)):
        if condition():
            return
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("condition not met in time")


async def _allocate(overlay: Overlay, nodeId: bytes, deliver: Any) -> TurnClient:
    member = overlay.member.identity
    assert member is not None
    return await allocateOverTls(
        reactor, (HOST, overlay.tlsPort), nodeId, member, overlay.trust, deliver
    )


@pytest_twisted.ensureDeferred
async def test_memberRelaysBothWaysOverTls(overlay: Overlay) -> None:
    server = overlay.server.identity
    assert server is not None
    delivered: list[tuple[bytes, tuple[str, int]]] = []
    turn = await _allocate(overlay, server.nodeId, lambda d, p: delivered.append((d, p)))
    peer = _Peer()
    port = reactor.listenUDP(0, peer, interface=HOST)
    try:
        assert turn.relayed is not None and turn.overTls
        assert overlay.turn.status()["allocations"] == 1
        [allocation] = overlay.turn.server.allocations.values()
        assert allocation.username == "node:" + overlay.member.identity.nodeId.hex()  # type: ignore[union-attr]
        assert await turn.permit([HOST]) == [HOST]
        peerAddress = (HOST, port.getHost().port)
        port.write(b"to the member", turn.relayed)
        await _until(lambda: delivered)
        assert delivered == [(b"to the member", peerAddress)]
        turn.sendTo(b"to the peer", peerAddress)
        await _until(lambda: peer.received)
        assert peer.received[0] == (b"to the peer", turn.relayed)
        assert (turn.relayedIn, turn.relayedOut) == (1, 1)
    finally:
        turn.stop()
        await port.stopListening()
    # stop() deletes the allocation and closes the stream.
    await _until(lambda: overlay.turn.status()["allocations"] == 0)


@pytest_twisted.ensureDeferred
async def test_aServerWithoutTheAdvertisersNodeIdIsRefused(overlay: Overlay) -> None:
    """Fail closed: the certificate must hold the Node-ID that signed the
    TURN-SERVICE value (here: the member's own, which the server lacks)."""
    member = overlay.member.identity
    assert member is not None
    with pytest.raises(TurnError):
        await _allocate(overlay, member.nodeId, lambda d, p: None)
    assert overlay.turn.status()["allocations"] == 0


@pytest_twisted.ensureDeferred
async def test_somethingElseAtThePortFailsInBoundedTime(overlay: Overlay) -> None:
    """Not TLS there (a server that closes on the ClientHello): TurnError,
    so the node moves on to the next server."""

    class Hangup(Protocol):
        def dataReceived(self, data: bytes) -> None:
            assert self.transport is not None
            self.transport.write(b"\x00" * 8)
            self.transport.loseConnection()

    listening = reactor.listenTCP(0, Factory.forProtocol(Hangup), interface=HOST)
    member, server = overlay.member.identity, overlay.server.identity
    assert member is not None and server is not None
    started = reactor.seconds()
    try:
        with pytest.raises(TurnError):
            await allocateOverTls(
                reactor,
                (HOST, listening.getHost().port),
                server.nodeId,
                member,
                overlay.trust,
                lambda d, p: None,
            )
    finally:
        await listening.stopListening()
    assert reactor.seconds() - started < 6


@pytest_twisted.ensureDeferred
async def test_theTurnUsageOffersTheServersItFinds(overlay: Overlay) -> None:
    """The usage registers with its node as an IRelaySource and offers a
    found server (here none is advertised: advertise=never, so the offer
    is empty; the NAT lab test sees a real one)."""
    api = overlay.server.api
    assert api is not None
    service = overlay.server.usages.service("TURN")
    assert IRelaySource.providedBy(service)
    assert api.relaySources == [service]
    offered: Deferred[Any] = service.relayServers()
    assert list(await offered) == []


def test_streamFramesCutStunAndPaddedChannelData() -> None:
    """RFC 8489 section 6.2.2 (STUN is self-delimiting over streams) and
    RFC 8656 section 12.5 (ChannelData padded to four bytes)."""
    stun = bytes([0x01, 0x01, 0x00, 0x04]) + b"\x21\x12\xa4\x42" + b"t" * 12 + b"abcd"
    channel = bytes([0x40, 0x00, 0x00, 0x05]) + b"hello" + b"\x00\x00\x00"
    frames = StreamFrames()
    stream = stun + channel
    got = []
    for i in range(0, len(stream), 3):
        got += frames.feed(stream[i : i + 3])
    assert got == [stun, channel]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xc0\x00\x00\x10", "neither STUN nor ChannelData"),
        (b"\x16\x03\x01\x00\x10\x01\x00\x00", "without the magic cookie"),
    ],
)
def test_streamFramesRefuseOtherBytes(data: bytes, why: str) -> None:
    """Bad input from the server: a clear error (the stream is then closed)."""
    with pytest.raises(ValueError, match=why):
        StreamFrames().feed(data)


@implementer(IRelaySource)
class _Offer:
    """A relay source offering fixed servers, counting the calls."""

    def __init__(self, servers: list[MemberTurnServer]) -> None:
        self.servers = servers
        self.asked = 0

    def relayServers(self) -> Deferred[Sequence[MemberTurnServer]]:
        self.asked += 1
        return succeed(self.servers)


@pytest_twisted.ensureDeferred
async def test_aPeerBehindANatTakesTheFirstServerWhoseCertificateMatches(
    overlay: Overlay,
) -> None:
    """RFC 6940 section 6.5.1.5 with section 9, at the peer: a server
    offered under another Node-ID is refused (fail closed), the next one,
    the real member's, gives the relay the ICE candidates use."""
    member, api = overlay.member, overlay.member.api
    server = overlay.server.identity
    assert member.ice is not None and member.stun is not None and api is not None
    assert server is not None
    impostor = MemberTurnServer(HOST, overlay.tlsPort, b"\x07" * len(server.nodeId))
    real = MemberTurnServer(HOST, overlay.tlsPort, server.nodeId)
    source = _Offer([impostor, real])
    api.addRelaySource(source)
    member.ice.behindNat = True  # what ICE would have found behind a NAT
    try:
        seeking = member._keepOverlayRelay()
        assert seeking is not None
        await seeking
        turn = member.stun.turn
        assert turn is not None and turn.overTls and turn.relayed is not None
        assert member.relayNodeId == server.nodeId
        assert overlay.turn.status()["allocations"] == 1
        # The Attach candidates now carry it (section 6.5.1.5).
        assert CandType.RELAY in [c.type for c in member.ice.candidates()]
        status = member.status()["nat"]
        assert (status["relayTransport"], status["relayNodeId"]) == ("tls", server.nodeId.hex())
        # AppAttach ports use the same member's server, over TLS.
        [forApps] = member._relayServers()
        assert (forApps.address, forApps.nodeId) == ((HOST, overlay.tlsPort), server.nodeId)
        # With a relay there is nothing to seek.
        assert member._keepOverlayRelay() is None and source.asked == 1
    finally:
        api.removeRelaySource(source)
        member.ice.behindNat = False
        if member.stun.turn is not None:
            member.stun.turn.stop()
            member.stun.turn = None


def test_aPublicPeerSeeksNoRelay(overlay: Overlay) -> None:
    """Not behind a NAT (loopback: the STUN-reflexive address is its own):
    the sources are never asked."""
    member, api = overlay.member, overlay.member.api
    assert member.ice is not None and api is not None
    assert member.ice.behindNat is False
    source = _Offer([])
    api.addRelaySource(source)
    try:
        assert member._keepOverlayRelay() is None
        assert source.asked == 0
    finally:
        api.removeRelaySource(source)
