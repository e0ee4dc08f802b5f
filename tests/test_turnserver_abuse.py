"""Bad input to the built-in TURN server: Hypothesis on the sans-I/O core
and on the live UDP and TCP ports while a legitimate client keeps being
served, and a TCP connection that sends garbage (closed alone)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from tests.turn_support import HOST, TurnTestClient, freePortRange, tcpClient, udpClient
from usages.turnserver.credentials import UserKeys
from usages.turnserver.policy import PeerPolicy
from usages.turnserver.server import Limits, TurnServer
from usages.turnserver.service import TurnServerConfig, TurnServerService
from usages.turnserver.stun import (
    Attr,
    ChannelData,
    MessageClass,
    Method,
    channelNumberValue,
    encodeChannelData,
    encodeMessage,
    longTermKey,
    requestedTransportValue,
    uint32Value,
    xorAddressValue,
)

KEY = longTermKey("alice", "reload", "secret")
METHODS = [int(m) for m in Method] + [0x00A, 0xFFF]


def _fuzzInput() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, well-framed requests with random attributes (with
    and without a valid MESSAGE-INTEGRITY), and ChannelData."""
    attributes = st.lists(
        st.tuples(
            st.sampled_from([int(a) for a in Attr]) | st.integers(0, 0xFFFF),
            st.binary(max_size=24),
        ),
        max_size=6,
    ).map(
        lambda pairs: [
            (t, v)
            for t, v in pairs
            if t not in (Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT)
        ]
    )
    credentials = [
        (Attr.USERNAME, b"alice"),
        (Attr.REALM, b"reload"),
        (Attr.NONCE, b"0" * 32),
    ]
    requests = st.builds(
        lambda method, cls, tid, attrs, signed, algorithm: encodeMessage(
            method,
            cls,
            tid,
            attrs + (credentials if signed else []),
            integrityKey=KEY if signed else None,
            integrity=algorithm,
            fingerprint=True,
        ),
        st.sampled_from(METHODS),
        st.integers(0, 3),
        st.binary(min_size=12, max_size=12),
        attributes,
        st.booleans(),
        st.sampled_from(["sha1", "sha256"]),
    )
    channelData = st.builds(
        lambda channel, data: encodeChannelData(channel, data, pad=True),
        st.integers(0x4000, 0x7FFF),
        st.binary(max_size=64),
    )
    return st.one_of(st.binary(max_size=120), requests, channelData)


class _Link:
    stream = False
    certificateUser: str | None = None

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendTo(self, data: bytes, client: Any) -> None:
        self.sent.append((data, client))


class _Relay:
    def __init__(self, port: int) -> None:
        self.address = ("127.0.0.1", port)
        self.sent: list[tuple[bytes, Any]] = []

    def sendTo(self, data: bytes, peer: Any) -> None:
        self.sent.append((data, peer))

    def close(self) -> None:
        pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_fuzzInput(), min_size=1, max_size=6), st.lists(st.binary(max_size=40)))
def test_coreSurvivesAnyInput(inputs: list[bytes], peerData: list[bytes]) -> None:
    """The sans-I/O core never raises, whatever a client or a peer sends,
    and answers only with well-formed STUN."""
    now = [1000.0]
    server = TurnServer(
        realm="reload",
        users=UserKeys("reload", {"alice": "secret"}),
        policy=PeerPolicy(allowLoopbackPeers=True),
        openRelay=lambda port, df: _Relay(port),
        limits=Limits(relayPorts=(40000, 40100)),
        clock=lambda: now[0],
    )
    link = _Link()
    for data in inputs:
        server.clientDatagram(link, ("127.0.0.1", 5000), data)
        now[0] += 1
    for port in list(server.byRelayPort):
        for data in peerData:
            server.peerDatagram(port, data, ("127.0.0.1", 6000))
    server.expire()
    for data, _ in link.sent:
        assert data[0] & 0xC0 in (0, 0x40)


# -- the live ports ---------------------------------------------------------


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[TurnServerService]:
    service = TurnServerService(
        TurnServerConfig(
            host=HOST,
            udpPort=0,
            tcpPort=0,
            users={"alice": "secret"},
            allowLoopbackPeers=True,
            relayPorts=freePortRange(64),
        ),
        reactor,
    )
    service.startService()
    yield service
    await service.stopService()


class _Peer(DatagramProtocol):
    """A UDP peer that echoes what reaches it."""

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.write(data, addr)


async def _legitimateClient(service: TurnServerService) -> tuple[TurnTestClient, int, Any]:
    """A client with an allocation and channel 0x4000 bound to an echoing
    peer; returns the client, the channel and the peer's listening port."""
    peer = reactor.listenUDP(0, _Peer(), interface=HOST)  # type: ignore[attr-defined]
    peerAddress = (HOST, peer.getHost().port)
    client = await udpClient(service.addresses["udp"][1], "alice", "secret")
    answer = await client.authenticatedRequest(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())]
    )
    assert answer.messageClass == MessageClass.SUCCESS
    tid = b"B" * 12
    bound = await client.request(
        Method.CHANNEL_BIND,
        [
            (Attr.CHANNEL_NUMBER, channelNumberValue(0x4000)),
            (Attr.XOR_PEER_ADDRESS, xorAddressValue(*peerAddress, tid)),
        ],
        transactionId=tid,
    )
    assert bound.messageClass == MessageClass.SUCCESS
    return client, 0x4000, peer


async def _roundTrip(client: TurnTestClient, channel: int, payload: bytes) -> None:
    """ChannelData to the echoing peer and back, within a second."""
    client.sendRaw(encodeChannelData(channel, payload))
    while True:
        frame = await client.unsolicited.get().addTimeout(1.0, reactor)
        if isinstance(frame, ChannelData) and frame.data == payload:
            return


def _blast(udpPort: int, tcpPort: int) -> int:
    """Runs in a thread: Hypothesis sends its inputs to the live UDP port
    and, one connection each, to the TCP port.  Returns how many."""
    sent = [0]

    @settings(max_examples=250, deadline=None, database=None)
    @given(_fuzzInput(), st.booleans())
    def fuzz(data: bytes, overTcp: bool) -> None:
        sent[0] += 1
        if overTcp:
            with socket.create_connection((HOST, tcpPort), timeout=2) as s:
                s.sendall(data)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(data, (HOST, udpPort))

    fuzz()
    return sent[0]


@pytest_twisted.ensureDeferred
async def test_liveFuzzWhileALegitimateClientIsServed(server: TurnServerService) -> None:
    client, channel, peer = await _legitimateClient(server)
    fuzzing = deferToThread(_blast, server.addresses["udp"][1], server.addresses["tcp"][1])
    rounds = 0
    while not fuzzing.called:
        await _roundTrip(client, channel, b"legitimate %d" % rounds)
        rounds += 1
        await deferLater(reactor, 0.01, lambda: None)
    sent = await fuzzing
    print(f"fuzz inputs {sent}, legitimate round trips meanwhile {rounds}")
    assert sent >= 250 and rounds > 0
    # Still served afterwards: relaying, and a Refresh on its allocation.
    await _roundTrip(client, channel, b"after the fuzz")
    refreshed = await client.request(Method.REFRESH, [(Attr.LIFETIME, uint32Value(600))])
    assert refreshed.messageClass == MessageClass.SUCCESS
    assert server.status()["refusals"].get("malformed", 0) > 0
    await client.closed()
    await peer.stopListening()


@pytest_twisted.ensureDeferred
async def test_tcpGarbageClosesThatConnectionOnly(server: TurnServerService) -> None:
    port = server.addresses["tcp"][1]
    good = await tcpClient(port, "alice", "secret")
    answer = await good.authenticatedRequest(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())]
    )
    assert answer.messageClass == MessageClass.SUCCESS
    bad = await tcpClient(port)
    bad.sendRaw(bytes.fromhex("160301020001") + b"\x00" * 60)  # TLS to a TCP port
    await bad.closed.addTimeout(3, reactor)  # the server closed it
    refreshed = await good.request(Method.REFRESH, [(Attr.LIFETIME, uint32Value(600))])
    assert refreshed.messageClass == MessageClass.SUCCESS
    assert server.status()["allocations"] == 1
    assert server.status()["refusals"]["malformed"] == 1
    good.transport.loseConnection()  # type: ignore[attr-defined]
    await good.closed
    # Its allocation goes with its connection (RFC 8656 section 3.1).
    await deferLater(reactor, 0.05, lambda: None)
    assert server.status()["allocations"] == 0
