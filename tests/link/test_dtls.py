"""DTLS-UDP-SR-NO-ICE links over real UDP on 127.0.0.1 (RFC 6940 section 6.6.6).

Sections: 6.6.2 (framing), 6.6.3 (Simple Reliability), 6.6.6 (DTLS/UDP with
SR, No-ICE), 6.7 (fragmentation); RFC 6347 sections 4.1.1 (records in
datagrams), 4.1.2.7 (invalid records are dropped), 4.2.1 (the cookie
exchange), 4.2.8 (a ClientHello on an established association).
"""

from __future__ import annotations

import collections
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from OpenSSL import SSL
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from zope.interface import implementer, verify

from reload.link.dtls import (
    CookieJar,
    DTLSEndpoint,
    DTLSLink,
    DTLSSettings,
    HandshakeFailed,
    HandshakeTimeout,
    clientHelloRandom,
    listenDTLS,
    packDatagrams,
    splitRecords,
)
from reload.link.errors import LinkBusy, LinkClosed
from reload.link.interfaces import ILink, ILinkHandler
from reload.link.tls import ILinkStallHandler
from reload.security.certificates import PeerIdentity, makeSelfSignedIdentity
from reload.security.trust import TrustPolicy
from reload.wire.attach import OverlayLinkType
from reload.wire.header import Destination, ForwardingHeader
from tests.link.lossyrelay import LossyRelay

OVERLAY = "dtls.example.org"
WAIT = 20.0
#: Section 6.6.3.1 allows a smaller RTO on a local network; 50 ms keeps the
#: failure tests short.
LOCAL = DTLSSettings(initialRto=0.05)
TRUST = TrustPolicy(OVERLAY, (), selfSignedPermitted=True)


_F = TypeVar("_F", bound=Callable[..., Any])


def twistedTest(test: _F) -> _F:
    """``pytest_twisted.ensureDeferred``, typed: an async test on the reactor."""
    return cast(_F, pytest_twisted.ensureDeferred(test))


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def message(number: int, size: int = 200) -> bytes:
    """An encoded RELOAD message of ``size`` bytes whose transaction id and
    body are ``number``."""
    header = ForwardingHeader(
        overlay=0x5EED,
        transaction_id=number,
        destination_list=(Destination.node(bytes(16)),),
    )
    headerSize = len(header.encode(0))
    stamp = b"message %d;" % number
    body = (stamp * (size // len(stamp) + 1))[: size - headerSize]
    return header.encode(len(body)) + body


@implementer(ILinkHandler, ILinkStallHandler)
class Recorder:
    """An ILinkHandler that writes down what it is told."""

    def __init__(self) -> None:
        self.up: list[DTLSLink] = []
        self.messages: list[tuple[DTLSLink, bytes]] = []
        self.closed: list[tuple[DTLSLink, str]] = []
        #: ("stalled" or "resumed", link), in order.
        self.stalls: list[tuple[str, DTLSLink]] = []

    def linkStalled(self, link: ILink) -> None:
        assert isinstance(link, DTLSLink)
        self.stalls.append(("stalled", link))

    def linkResumed(self, link: ILink) -> None:
        assert isinstance(link, DTLSLink)
        self.stalls.append(("resumed", link))

    def linkUp(self, link: ILink) -> None:
        assert isinstance(link, DTLSLink)
        self.up.append(link)

    def messageReceived(self, link: ILink, message: bytes) -> None:
        assert isinstance(link, DTLSLink)
        self.messages.append((link, message))

    def linkClosed(self, link: ILink, reason: str) -> None:
        assert isinstance(link, DTLSLink)
        self.closed.append((link, reason))

    def on(self, link: DTLSLink) -> list[bytes]:
        return [m for (each, m) in self.messages if each is link]


def atLeast(count: Callable[[], int], target: int) -> Callable[[], bool]:
    return lambda: count() >= target


async def sleep(seconds: float) -> None:
    await deferLater(_reactor(), seconds, lambda: None)


async def until(condition: Callable[[], object], timeout: float = WAIT) -> None:
    """Wait on the real reactor until ``condition()`` is true."""
    deadline = _reactor().seconds() + timeout
    while not condition():
        if _reactor().seconds() > deadline:
            raise AssertionError(f"condition not reached in {timeout} s")
        await sleep(0.005)


@dataclass
class Node:
    identity: PeerIdentity
    handler: Recorder
    endpoint: DTLSEndpoint

    @property
    def nodeId(self) -> bytes:
        return self.identity.nodeId

    @property
    def port(self) -> int:
        assert self.endpoint.port is not None
        port: int = self.endpoint.port.getHost().port
        return port


@dataclass
class Network:
    """Endpoints and relays on 127.0.0.1, all stopped after the test."""

    nodes: list[Node] = field(default_factory=list)
    relays: list[LossyRelay] = field(default_factory=list)

    def node(
        self, settings: DTLSSettings = LOCAL, identity: PeerIdentity | None = None, port: int = 0
    ) -> Node:
        identity = identity or makeSelfSignedIdentity(OVERLAY, None)
        handler = Recorder()
        endpoint = listenDTLS(
            _reactor(), port, identity, TRUST, handler, settings, interface="127.0.0.1"
        )
        made = Node(identity, handler, endpoint)
        self.nodes.append(made)
        return made

    def relay(self, to: Node, **kw: Any) -> LossyRelay:
        made = LossyRelay(_reactor(), ("127.0.0.1", to.port), **kw)
        self.relays.append(made)
        return made

    async def stop(self) -> None:
        for node in self.nodes:
            await node.endpoint.stop()
        for relay in self.relays:
            await relay.stop()


@pytest_twisted.async_yield_fixture  # type: ignore[untyped-decorator, unused-ignore]
async def net() -> AsyncIterator[Network]:
    made = Network()
    yield made
    await made.stop()


async def linked(a: Node, b: Node, via: tuple[str, int] | None = None) -> tuple[DTLSLink, DTLSLink]:
    """Connect ``a`` to ``b``; return both ends once both are up."""
    host, port = via or ("127.0.0.1", b.port)
    link = await a.endpoint.connect(host, port, b.nodeId)
    await until(lambda: b.handler.up)
    return link, b.handler.up[-1]


# -- records, datagrams and cookies, without sockets --------------------------------


def record(contentType: int, epoch: int, body: bytes) -> bytes:
    return (
        bytes([contentType, 0xFE, 0xFD])
        + epoch.to_bytes(2, "big")
        + bytes(6)
        + len(body).to_bytes(2, "big")
        + body
    )


def test_splitRecordsAndPackDatagramsKeepOrderAndMtu() -> None:
    """RFC 6347 section 4.1.1: several records may share a datagram, none
    is split; packing never exceeds the MTU unless one record does."""
    records = [record(22, 0, bytes(n)) for n in (100, 300, 500, 50, 1300)]
    data = b"".join(records)
    assert splitRecords(data) == records
    assert splitRecords(data[:-1]) is None
    assert splitRecords(b"\x16\xfe") is None
    datagrams = packDatagrams(records, 1000)
    assert b"".join(datagrams) == data
    assert [len(d) for d in datagrams] == [113 + 313 + 513, 63, 1313]


def test_clientHelloRandomFindsOnlyEpochZeroClientHellos() -> None:
    context = SSL.Context(SSL.DTLS_METHOD)
    connection = SSL.Connection(context, None)
    connection.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        connection.do_handshake()
    hello = connection.bio_read(65536)
    assert clientHelloRandom(hello) == connection.client_random()
    assert clientHelloRandom(hello[:40]) is None
    assert clientHelloRandom(b"\x17" + hello[1:]) is None  # application data
    assert clientHelloRandom(hello[:3] + b"\x00\x01" + hello[5:]) is None  # epoch 1


def test_cookiesAreBoundToTheAddressAndRotate() -> None:
    """RFC 6347 section 4.2.1: the cookie is an HMAC of the client address
    under a secret that changes; a cookie of the previous secret is still
    accepted, an older one is not."""
    clock = Clock()
    jar = CookieJar(clock, lifetime=60.0)
    here, there = ("127.0.0.1", 4000), ("127.0.0.1", 4001)
    cookie = jar.cookie(here)
    assert jar.check(here, cookie)
    assert not jar.check(there, cookie)
    clock.advance(61)
    assert jar.check(here, cookie)  # the previous secret
    assert jar.cookie(here) != cookie
    clock.advance(61)
    assert not jar.check(here, cookie)
    assert not jar.check(here, b"")


# -- handshake and messages ----------------------------------------------------------------


@twistedTest
async def test_handshakeAndMessagesBothWays_section_6_6_6(net: Network) -> None:
    """A verified DTLS link carries framed, acknowledged messages both ways;
    both sides see the peer the handshake verified."""
    a, b = net.node(), net.node()
    link, back = await linked(a, b)
    assert verify.verifyObject(ILink, link)
    assert link.linkType is OverlayLinkType.DTLS_UDP_SR_NO_ICE
    assert a.handler.up == [link] and b.handler.up == [back]
    assert link.peer is not None and link.peer.nodeIds == b.identity.nodeIds
    assert back.peer is not None and back.peer.nodeIds == a.identity.nodeIds
    assert link.isClient and not back.isClient
    assert 1000 < link.messageMtu < 1200
    sent = [message(i) for i in range(20)]
    replies = [message(1000 + i) for i in range(20)]
    for m, r in zip(sent, replies, strict=True):
        link.send(m)
        back.send(r)
    await until(lambda: len(b.handler.messages) == 20 and len(a.handler.messages) == 20)
    # Stop-and-wait (section 6.6.3.1) keeps the order on a clean path.
    assert b.handler.on(back) == sent
    assert a.handler.on(link) == replies
    assert link.rto is not None and back.rto is not None
    assert len(a.endpoint.links) == len(b.endpoint.links) == 1


@twistedTest
async def test_connectReusesTheLinkToAnAddress(net: Network) -> None:
    a, b = net.node(), net.node()
    link, _ = await linked(a, b)
    again = await a.endpoint.connect("127.0.0.1", b.port, b.nodeId)
    assert again is link
    with pytest.raises(HandshakeFailed, match="expected"):
        await a.endpoint.connect("127.0.0.1", b.port, bytes(16))
    assert len(a.endpoint.links) == 1


@twistedTest
async def test_closeIsSeenOnBothSides(net: Network) -> None:
    a, b = net.node(), net.node()
    link, back = await linked(a, b)
    link.close()
    assert a.handler.closed == [(link, "closed locally")]
    await until(lambda: b.handler.closed)
    assert b.handler.closed[0][0] is back and "close_notify" in b.handler.closed[0][1]
    with pytest.raises(LinkClosed):
        link.send(message(1))
    link.close()  # once only
    assert len(a.handler.closed) == 1
    assert len(a.endpoint.links) == len(b.endpoint.links) == 0


# -- loss, reordering, MTU and fragmentation --------------------------------------------


@pytest.mark.parametrize(("window", "seed"), [(1, 6940), (4, 6940), (1, 1), (4, 2)])
@twistedTest
async def test_lossAndReorderingDeliverEveryMessageExactlyOnce_section_6_6_3(
    net: Network, window: int, seed: int
) -> None:
    """20% loss and reordering in both directions (seeded): the handshake
    completes (OpenSSL retransmits flights) and every message, small or
    fragmented, is delivered exactly once (new sequence numbers on
    retransmission, duplicates of lost ACKs suppressed), with the
    stop-and-wait sender (window 1) and with a window of 4.

    Ten transmissions instead of five: at 20% loss each way all five fail
    once in 170 messages, which section 6.6.3.1 answers by closing the link.
    So chains of retransmissions last seconds (the wait doubles from ~50 ms
    up to 12.8 s), and the duplicate window is the maximum request lifetime
    (15 s) instead of the 500 ms default: there are no end-to-end
    retransmissions here for it to swallow."""
    settings = DTLSSettings(
        initialRto=0.05, maxTransmissions=10, window=window, duplicateWindow=15.0
    )
    a, b = net.node(settings), net.node(settings)
    relay = net.relay(b, loss=0.2, reorder=0.2, maxDelay=0.02, seed=seed)
    link, back = await linked(a, b, via=relay.address)
    forth = [message(i, 3000 if i % 10 == 0 else 300) for i in range(120)]
    backwards = [message(10_000 + i, 300) for i in range(60)]
    for m in forth:
        link.send(m)
    for m in backwards:
        back.send(m)
    await until(lambda: len(b.handler.messages) >= 120 and len(a.handler.messages) >= 60, 60)
    await sleep(0.3)  # room for late duplicates to show up
    assert collections.Counter(b.handler.on(back)) == collections.Counter(forth)
    assert collections.Counter(a.handler.on(link)) == collections.Counter(backwards)
    assert relay.dropped > 50 and relay.delayed > 50
    assert link.retransmissions > 0 and back.retransmissions > 0
    assert not a.handler.closed and not b.handler.closed


@twistedTest
async def test_messageLargerThanTheMtuIsFragmented_section_6_7(net: Network) -> None:
    """Every datagram, handshake included, fits the MTU; a 4,900-byte
    message crosses as section 6.7 fragments and arrives whole."""
    settings = DTLSSettings(mtu=600, initialRto=0.05)
    a, b = net.node(settings), net.node(settings)
    relay = net.relay(b)
    link, back = await linked(a, b, via=relay.address)
    assert relay.largest <= 600  # the handshake flights too
    assert link.messageMtu < 600 - 13 - 8
    big = message(7, 4900)
    forwarded = relay.forwarded
    link.send(big)
    back.send(big)
    await until(lambda: b.handler.messages and a.handler.messages)
    assert b.handler.on(back) == [big] and a.handler.on(link) == [big]
    # data frames and their ACKs: at least 4900 / 600 of each, both ways
    assert relay.forwarded - forwarded >= 2 * 2 * (4900 // 600)
    assert relay.largest <= 600


@twistedTest
async def test_messageThatCannotBeFragmentedGoesWhole_section_6_7(net: Network) -> None:
    """A forwarding header so long that fragments could not carry 256 bytes
    of body each: section 6.7 sends the message unfragmented, in one record
    larger than the MTU, and leaves fragmentation to IP."""
    a, b = net.node(), net.node()
    link, back = await linked(a, b)
    header = ForwardingHeader(
        overlay=1,
        transaction_id=5,
        destination_list=tuple(Destination.node(bytes([i]) * 16) for i in range(60)),
    )
    body = b"body" * 125
    long = header.encode(len(body)) + body
    assert len(long) > link.messageMtu
    link.send(long)
    await until(lambda: b.handler.on(back) == [long])


@twistedTest
async def test_sendQueueIsBounded(net: Network) -> None:
    settings = DTLSSettings(initialRto=0.05, maxQueuedFrames=5)
    a, b = net.node(settings), net.node(settings)
    link, _ = await linked(a, b)
    for i in range(5):
        link.send(message(i))
    with pytest.raises(LinkBusy):
        for i in range(5, 10):
            link.send(message(i))
    await until(lambda: len(b.handler.messages) >= 5)
    with pytest.raises(ValueError, match="RELO"):  # a DecodeError
        link.send(b"not RELOAD" * 200)


@pytest.mark.parametrize(
    ("fromServer", "fromClient"),
    [
        ({2}, set()),  # the server's flight after the cookie exchange
        (set(), {3}),  # the client's flight with its Finished
        ({3}, set()),  # the server's Finished: the server is done already
    ],
    ids=["server-flight", "client-finished", "server-finished"],
)
@twistedTest
async def test_lostHandshakeFlightIsRetransmitted(
    net: Network, fromServer: set[int], fromClient: set[int]
) -> None:
    """DTLSv1_get_timeout/DTLSv1_handle_timeout: a lost flight is sent
    again when OpenSSL's timer (1 s) expires, or in answer to the peer's
    retransmission, and the link comes up on both sides."""
    a, b = net.node(), net.node()
    relay = net.relay(b)
    relay.dropFromTarget = fromServer  # the first is the HelloVerifyRequest
    relay.dropFromClient = fromClient  # the first two are the ClientHellos
    started = _reactor().seconds()
    link, back = await linked(a, b, via=relay.address)
    assert 0.9 < _reactor().seconds() - started < 10
    assert relay.dropped == 1
    link.send(message(1))
    back.send(message(2))
    await until(lambda: b.handler.on(back) == [message(1)] and a.handler.on(link) == [message(2)])


# -- failures --------------------------------------------------------------------------------


@twistedTest
async def test_retransmissionsRunOutAndTheLinkCloses_section_6_6_3_1(net: Network) -> None:
    """With every datagram lost, the link is stalled after three
    retransmissions (linkStalled) and resumes when ACKs come back
    (linkResumed); lost for good, the message is sent 5 times (RTO doubling
    from 50 ms) and then the link closes with linkClosed."""
    a, b = net.node(), net.node()
    relay = net.relay(b)
    link, back = await linked(a, b, via=relay.address)
    relay.loss = 1.0
    link.send(message(1))
    await until(lambda: a.handler.stalls, 5)
    assert a.handler.stalls == [("stalled", link)] and link.stalled
    relay.loss = 0.0
    await until(lambda: len(a.handler.stalls) == 2, 5)
    assert a.handler.stalls[1] == ("resumed", link) and not link.stalled
    await until(lambda: b.handler.on(back) == [message(1)])

    relay.loss = 1.0
    retransmitted = link.retransmissions
    started = _reactor().seconds()
    link.send(message(2))
    await until(lambda: a.handler.closed, 10)
    elapsed = _reactor().seconds() - started
    assert a.handler.closed[0][0] is link
    assert "no ACK after 5 transmissions" in a.handler.closed[0][1]
    assert link.retransmissions - retransmitted == 4
    # The RTO from the ACKs so far is a few ms: 5 waits, doubling, of at least that.
    assert elapsed < 5
    with pytest.raises(LinkClosed):
        link.send(message(3))


@twistedTest
async def test_expectedNodeIdMismatchMeansNoLinkUp(net: Network) -> None:
    """The verify callback rejects a server without the expected Node-ID:
    connect fails and neither side ever announces a link."""
    a, b = net.node(), net.node()
    with pytest.raises(HandshakeFailed):
        await a.endpoint.connect("127.0.0.1", b.port, bytes(range(16)))
    await until(lambda: len(b.endpoint.links) == 0 and len(a.endpoint.links) == 0)
    assert a.handler.up == [] and b.handler.up == []
    assert a.handler.closed == [] and b.handler.closed == []


@twistedTest
async def test_untrustedClientIsRejectedByTheServer(net: Network) -> None:
    """Mutual authentication: a client whose certificate the overlay does
    not accept (another overlay's) gets no link on the server side."""
    a = net.node(identity=makeSelfSignedIdentity("elsewhere.example.org", None))
    b = net.node()
    with pytest.raises(HandshakeFailed):
        await a.endpoint.connect("127.0.0.1", b.port, b.nodeId)
    await until(lambda: len(b.endpoint.links) == 0)
    assert b.handler.up == []


@twistedTest
async def test_handshakeTimesOut(net: Network) -> None:
    """A peer that never answers: OpenSSL retransmits the ClientHello, then
    the handshake timeout fails the connect."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        a = net.node(DTLSSettings(handshakeTimeout=1.5))
        started = _reactor().seconds()
        with pytest.raises(HandshakeTimeout):
            await a.endpoint.connect("127.0.0.1", silent.getsockname()[1], bytes(16))
        assert 1.4 < _reactor().seconds() - started < 3
        silent.setblocking(False)
        hellos = []
        with pytest.raises(BlockingIOError):
            while True:
                hellos.append(silent.recv(2048))
        assert len(hellos) >= 2  # the first and a retransmission after 1 s
        assert len({clientHelloRandom(h) for h in hellos}) == 1
        assert len(a.endpoint.links) == 0 and a.handler.up == []
    finally:
        silent.close()


@twistedTest
async def test_timersRunOnTheInjectedClock(net: Network) -> None:
    """Every timer of the links is on the clock given to the endpoint: the
    default 30 s handshake timeout passes in no real time on a task.Clock."""
    clock = Clock()
    clock.advance(_reactor().seconds())  # certificates are checked at clock time
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        endpoint = listenDTLS(
            _reactor(),
            0,
            makeSelfSignedIdentity(OVERLAY, None),
            TRUST,
            Recorder(),
            interface="127.0.0.1",
            clock=clock,
        )
        try:
            d = endpoint.connect("127.0.0.1", silent.getsockname()[1], bytes(16))
            failures: list[BaseException] = []

            def failed(failure: Failure) -> None:
                assert failure.value is not None
                failures.append(failure.value)

            d.addErrback(failed)
            clock.advance(29.9)
            assert not failures and len(endpoint.links) == 1
            clock.advance(0.2)
            assert len(failures) == 1 and isinstance(failures[0], HandshakeTimeout)
            assert endpoint.links == {}
        finally:
            await endpoint.stop()
    finally:
        silent.close()


@twistedTest
async def test_idleLinksClose(net: Network) -> None:
    """No authenticated record for idleTimeout: the link closes, and the
    close_notify closes the other end too."""
    a, b = net.node(), net.node(DTLSSettings(initialRto=0.05, idleTimeout=0.5))
    link, back = await linked(a, b)
    started = _reactor().seconds()
    link.send(message(1))
    await until(lambda: a.handler.closed and b.handler.closed, 5)
    assert b.handler.closed == [(back, "idle for 0.5 s")]
    assert a.handler.closed == [(link, "closed by peer (close_notify)")]
    assert 0.5 <= _reactor().seconds() - started < 2


# -- hostile input -------------------------------------------------------------------------


def _dtlsClient() -> SSL.Connection:
    """A throwaway DTLS client (no certificate): enough for ClientHellos."""
    connection = SSL.Connection(SSL.Context(SSL.DTLS_METHOD), None)
    connection.set_connect_state()
    connection.set_ciphertext_mtu(1200)
    return connection


def _nextFlight(connection: SSL.Connection) -> bytes:
    with pytest.raises(SSL.WantReadError):
        connection.do_handshake()
    flight: bytes = connection.bio_read(65536)
    return flight


def _received(s: socket.socket, into: list[bytes]) -> bool:
    try:
        into.append(s.recv(4096))
    except BlockingIOError:
        return False
    return True


@twistedTest
async def test_clientHelloFloodKeepsNoState_rfc6347_4_2_1(net: Network) -> None:
    """2,000 ClientHellos from 200 addresses (127.0.0.2-11, 20 ports each):
    every one gets a HelloVerifyRequest and none creates any per-peer
    state.  A valid cookie replayed from 199 other addresses is refused
    too (the HMAC covers the address); from its own address it is
    accepted, and a real client still connects as usual."""
    a, b = net.node(), net.node()
    server = ("127.0.0.1", b.port)
    sockets: list[socket.socket] = []
    try:
        for host in range(2, 12):
            for _ in range(20):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((f"127.0.0.{host}", 0))
                s.setblocking(False)
                sockets.append(s)
        hellos = [_nextFlight(_dtlsClient()) for _ in range(20)]
        peak = 0
        sent = 0
        for round_ in range(10):
            # Bursts of 50: more would overflow the socket's receive buffer.
            for burst in range(0, 200, 50):
                for index in range(burst, burst + 50):
                    hello = hellos[(index + round_) % len(hellos)]
                    sockets[index].sendto(hello, server)
                sent += 50
                await until(atLeast(lambda: b.endpoint.helloVerifyRequests, sent), 5)
                peak = max(peak, len(b.endpoint.links))
        assert b.endpoint.helloVerifyRequests == 2000
        assert peak == 0 and len(b.endpoint.links) == 0
        assert b.endpoint.cookies.accepted == 0

        first = sockets[0]
        while _received(first, []):  # the flood's HelloVerifyRequests
            pass
        client = _dtlsClient()
        first.sendto(_nextFlight(client), server)
        replies: list[bytes] = []
        await until(lambda: _received(first, replies), 5)
        client.bio_write(replies[0])
        withCookie = _nextFlight(client)
        for index, s in enumerate(sockets[1:], 1):
            s.sendto(withCookie, server)
            if index % 50 == 0 or index == 199:
                await until(atLeast(lambda: b.endpoint.cookies.rejected, index), 5)
        assert len(b.endpoint.links) == 0 and b.endpoint.cookies.accepted == 0
        first.sendto(withCookie, server)
        await until(lambda: b.endpoint.cookies.accepted >= 1, 5)
        assert list(b.endpoint.links) == [first.getsockname()]
    finally:
        for s in sockets:
            s.close()
    link, back = await linked(a, b)
    link.send(message(1))
    await until(lambda: b.handler.on(back) == [message(1)])


@twistedTest
async def test_incomingHandshakesAreBounded(net: Network) -> None:
    """With maxHandshakes=1, a second address gets nothing (not even a
    HelloVerifyRequest) while one handshake is in progress."""
    b = net.node(DTLSSettings(maxHandshakes=1))
    server = ("127.0.0.1", b.port)
    first, second = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    try:
        for s in (first, second):
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        client = _dtlsClient()
        first.sendto(_nextFlight(client), server)
        replies: list[bytes] = []
        await until(lambda: _received(first, replies), 5)
        client.bio_write(replies[0])
        first.sendto(_nextFlight(client), server)
        await until(lambda: len(b.endpoint.links) == 1, 5)
        second.sendto(_nextFlight(_dtlsClient()), server)
        await until(lambda: b.endpoint.refusedHandshakes == 1, 5)
        assert b.endpoint.helloVerifyRequests == 1
        assert list(b.endpoint.links) == [first.getsockname()]
    finally:
        first.close()
        second.close()


@twistedTest
async def test_garbageDatagramsDoNotBreakAnyLink_rfc6347_4_1_2_7(net: Network) -> None:
    """Datagrams that are not authentic records, whether from a stranger or
    from (the address of) a linked peer, are dropped; every link goes on.
    An authentic record that is not a frame closes that one link only."""
    a, b, c = net.node(), net.node(), net.node()
    ab, ba = await linked(a, b)
    cb, bc = await linked(c, b)
    server = ("127.0.0.1", b.port)
    junk = [
        b"",
        b"\x00",
        b"garbage" * 50,
        record(23, 1, bytes(64)),  # application data that does not decrypt
        record(22, 0, bytes(80)),  # a handshake record that is no ClientHello
        record(21, 1, bytes(26)),  # an encrypted alert that does not decrypt
        _nextFlight(_dtlsClient())[:60],  # a truncated ClientHello
    ]
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for datagram in junk * 20:
            stranger.sendto(datagram, server)
            assert a.endpoint.transport is not None
            a.endpoint.transport.write(datagram, server)  # from a's own address
        await sleep(0.2)
    finally:
        stranger.close()
    assert not b.handler.closed, b.handler.closed
    assert len(b.endpoint.links) == 2
    ab.send(message(1))
    cb.send(message(2))
    await until(lambda: b.handler.on(ba) == [message(1)] and b.handler.on(bc) == [message(2)])
    assert not a.handler.closed and not b.handler.closed and not c.handler.closed

    # An authenticated record that is not a FramedMessage (section 6.6.2).
    ab._writeRecord(b"\x07 is no frame type")
    await until(lambda: b.handler.closed)
    assert b.handler.closed[0][0] is ba and "malformed frame" in b.handler.closed[0][1]
    cb.send(message(3))
    await until(lambda: b.handler.on(bc) == [message(2), message(3)])
    assert len(b.handler.closed) == 1 and not c.handler.closed


@twistedTest
async def test_restartedPeerReplacesItsLink_rfc6347_4_2_8(net: Network) -> None:
    """A peer that lost its state connects again from the same address: the
    cookie exchange proves the address, then the old link closes and the
    new one comes up."""
    a, b = net.node(), net.node()
    _, old = await linked(a, b)
    port = a.port
    # Crash: forget every link without telling the peer, free the port.
    a.endpoint.closeAll("crash", notify=False)
    await a.endpoint.stop()
    again = net.node(identity=a.identity, port=port)
    fresh = await again.endpoint.connect("127.0.0.1", b.port, b.nodeId)
    await until(lambda: len(b.handler.up) == 2)
    assert b.handler.closed[0][0] is old and "restarted" in b.handler.closed[0][1]
    new = b.handler.up[1]
    assert new is not old and b.endpoint.links == {("127.0.0.1", port): new}
    fresh.send(message(5))
    await until(lambda: b.handler.on(new) == [message(5)])
