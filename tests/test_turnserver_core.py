"""The TURN server's sans-I/O core with a fake clock: lifetimes (RFC 8656
sections 6, 9, 12), Data indications, the bandwidth bound; and the users
file and configuration checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from usages.turnserver.credentials import UserKeys, UsersFileError, loadUsers
from usages.turnserver.policy import PeerPolicy
from usages.turnserver.server import Limits, TurnServer
from usages.turnserver.service import TurnServerConfig
from usages.turnserver.stun import (
    Attr,
    ChannelData,
    Message,
    MessageClass,
    Method,
    channelNumberValue,
    decodeChannelData,
    decodeMessage,
    encodeChannelData,
    encodeMessage,
    longTermKey,
    newTransactionId,
    requestedTransportValue,
    uint32Value,
    xorAddressValue,
)

CLIENT = ("192.0.2.10", 5000)
PEER = ("198.51.100.20", 7000)


class Link:
    def __init__(self, stream: bool = False) -> None:
        self.stream = stream
        self.certificateUser: str | None = None
        self.sent: list[bytes] = []

    def sendTo(self, data: bytes, client: Any) -> None:
        self.sent.append(data)


class Relay:
    def __init__(self, port: int) -> None:
        self.address = ("203.0.113.1", port)
        self.sent: list[tuple[bytes, Any]] = []
        self.closed = False

    def sendTo(self, data: bytes, peer: Any) -> None:
        self.sent.append((data, peer))

    def close(self) -> None:
        self.closed = True


class Harness:
    """A core, one client link, and a clock the test moves."""

    def __init__(self, **limits: Any) -> None:
        self.now = 1000.0
        self.relays: dict[int, Relay] = {}
        self.server = TurnServer(
            realm="reload",
            users=UserKeys("reload", {"alice": "secret"}),
            policy=PeerPolicy(allowLoopbackPeers=False),
            openRelay=self.openRelay,
            limits=Limits(relayPorts=(50000, 50009), **limits),
            clock=lambda: self.now,
        )
        self.link = Link()
        self.nonce = ""

    def openRelay(self, port: int, dontFragment: bool) -> Relay:
        self.relays[port] = Relay(port)
        return self.relays[port]

    def request(
        self, method: int, attributes: list[tuple[int, bytes]], tid: bytes | None = None
    ) -> Message:
        tid = tid or newTransactionId()
        credentials = [
            (Attr.USERNAME, b"alice"),
            (Attr.REALM, b"reload"),
            (Attr.NONCE, self.nonce.encode()),
        ]
        data = encodeMessage(
            method,
            MessageClass.REQUEST,
            tid,
            attributes + credentials,
            integrityKey=longTermKey("alice", "reload", "secret"),
            fingerprint=True,
        )
        self.server.clientDatagram(self.link, CLIENT, data)
        answer = decodeMessage(self.link.sent.pop())
        if answer.messageClass == MessageClass.ERROR and answer.errorCode()[0] in (401, 438):  # type: ignore[index]
            self.nonce = answer.text(Attr.NONCE) or ""
            return self.request(method, attributes, tid)
        return answer

    def allocate(self) -> Relay:
        answer = self.request(
            Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())]
        )
        assert answer.messageClass == MessageClass.SUCCESS
        relayed = answer.xorAddress(Attr.XOR_RELAYED_ADDRESS)
        assert relayed is not None
        return self.relays[relayed[1]]

    def withPeer(self, method: int, extra: list[tuple[int, bytes]] | None = None) -> Message:
        tid = newTransactionId()
        extra = extra or []
        return self.request(
            method, [*extra, (Attr.XOR_PEER_ADDRESS, xorAddressValue(*PEER, tid))], tid
        )


def send(harness: Harness, data: bytes) -> None:
    tid = newTransactionId()
    harness.server.clientDatagram(
        harness.link,
        CLIENT,
        encodeMessage(
            Method.SEND,
            MessageClass.INDICATION,
            tid,
            [(Attr.XOR_PEER_ADDRESS, xorAddressValue(*PEER, tid)), (Attr.DATA, data)],
        ),
    )


def test_permissionLastsFiveMinutes() -> None:
    """RFC 8656 section 9: 300 s, then Send indications and peer data are
    dropped until the client refreshes it."""
    h = Harness()
    relay = h.allocate()
    send(h, b"before")
    assert relay.sent == []  # no permission yet
    assert h.withPeer(Method.CREATE_PERMISSION).messageClass == MessageClass.SUCCESS
    send(h, b"one")
    h.server.peerDatagram(relay.address[1], b"reply", PEER)
    data = decodeMessage(h.link.sent.pop())  # a Data indication (no channel)
    assert (data.method, data.messageClass) == (Method.DATA, MessageClass.INDICATION)
    assert data.xorAddress(Attr.XOR_PEER_ADDRESS) == PEER and data.get(Attr.DATA) == b"reply"
    h.now += 301
    h.server.expire()
    send(h, b"two")
    h.server.peerDatagram(relay.address[1], b"late", PEER)
    assert [d for d, _ in relay.sent] == [b"one"]
    assert h.link.sent == []
    assert h.server.status()["permissions"] == 0


def test_channelLastsTenMinutesAndCarriesPeerData() -> None:
    h = Harness()
    relay = h.allocate()
    bound = h.withPeer(Method.CHANNEL_BIND, [(Attr.CHANNEL_NUMBER, channelNumberValue(0x4001))])
    assert bound.messageClass == MessageClass.SUCCESS
    h.server.clientDatagram(h.link, CLIENT, encodeChannelData(0x4001, b"hello"))
    assert relay.sent == [(b"hello", PEER)]
    h.server.peerDatagram(relay.address[1], b"back", PEER)
    assert decodeChannelData(h.link.sent.pop()) == ChannelData(0x4001, b"back")
    # The permission the bind installed expires at 300 s; refresh it and
    # the channel is still there at 599 s, gone at 601 s.
    h.now += 299
    assert h.withPeer(Method.CREATE_PERMISSION).messageClass == MessageClass.SUCCESS
    h.now += 300
    h.server.clientDatagram(h.link, CLIENT, encodeChannelData(0x4001, b"still"))
    assert relay.sent[-1] == (b"still", PEER)
    h.now += 2
    h.server.clientDatagram(h.link, CLIENT, encodeChannelData(0x4001, b"gone"))
    assert relay.sent[-1] == (b"still", PEER)
    # A second channel for the same peer is refused (section 12.2).
    other = h.withPeer(Method.CHANNEL_BIND, [(Attr.CHANNEL_NUMBER, channelNumberValue(0x4002))])
    assert other.errorCode() is not None and other.errorCode()[0] == 400  # type: ignore[index]


def test_allocationExpiresAndLifetimeIsClamped() -> None:
    h = Harness()
    relay = h.allocate()
    answer = h.request(Method.REFRESH, [(Attr.LIFETIME, uint32Value(99999))])
    assert answer.uint32(Attr.LIFETIME) == 3600
    answer = h.request(Method.REFRESH, [(Attr.LIFETIME, uint32Value(5))])
    assert answer.uint32(Attr.LIFETIME) == 600
    h.now += 601
    h.server.expire()
    assert relay.closed and h.server.status()["allocations"] == 0


def test_bandwidthBound() -> None:
    h = Harness(maxRelayBytesPerSecond=1000)
    relay = h.allocate()
    h.withPeer(Method.CHANNEL_BIND, [(Attr.CHANNEL_NUMBER, channelNumberValue(0x4000))])
    for _ in range(20):
        h.server.clientDatagram(h.link, CLIENT, encodeChannelData(0x4000, b"x" * 100))
    assert len(relay.sent) == 10
    assert h.server.status()["refusals"]["bandwidth"] == 10
    h.now += 0.5
    for _ in range(20):
        h.server.clientDatagram(h.link, CLIENT, encodeChannelData(0x4000, b"x" * 100))
    assert len(relay.sent) == 15


def test_unknownComprehensionRequiredAttributeGets420() -> None:
    h = Harness()
    answer = h.request(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, requestedTransportValue()), (0x7F00, b"????")]
    )
    assert answer.errorCode() is not None and answer.errorCode()[0] == 420  # type: ignore[index]
    assert answer.unknownAttributes() == [0x7F00]


def test_channelNumberOutOfRangeGets400() -> None:
    h = Harness()
    h.allocate()
    for channel in (0x3FFF, 0x8000):
        answer = h.withPeer(
            Method.CHANNEL_BIND, [(Attr.CHANNEL_NUMBER, channelNumberValue(channel))]
        )
        assert answer.errorCode() is not None and answer.errorCode()[0] == 400  # type: ignore[index]


# -- the users file and the configuration ----------------------------------------


def test_loadUsers(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# TURN users\nalice:secret\n\n  bob:pass:with:colons  \n")
    assert loadUsers(path) == {"alice": "secret", "bob": "pass:with:colons"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("alice\n", r"users:1: expected username:password"),
        ("ok:pw\n:pw\n", r"users:2: empty user name"),
        ("alice:\n", r"users:1: empty password for user 'alice'"),
        ("a:1\na:2\n", r"users:2: user 'a' is listed twice"),
    ],
)
def test_loadUsersNamesFileAndLine(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "users"
    path.write_text(text)
    with pytest.raises(UsersFileError, match=error):
        loadUsers(path)


def test_loadUsersMissingFile(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="cannot read the TURN users file"):
        loadUsers(tmp_path / "nope")


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"tlsPort": 0}, "tlsContextFactory"),
        ({"relayPorts": (5000, 4000)}, "relay port range"),
        ({"deniedPeers": ("not-a-cidr",)}, "not a CIDR"),
        ({"maxAllocations": 0}, "at least 1"),
    ],
)
def test_configurationErrors(settings: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        TurnServerConfig(**settings).validate()


def test_relayAddressDefaults() -> None:
    assert TurnServerConfig(host="192.0.2.1").relayAddress() == "192.0.2.1"
    assert TurnServerConfig(allowLoopbackPeers=True).relayAddress() == "127.0.0.1"
    assert TurnServerConfig(relayHost="192.0.2.9").relayAddress() == "192.0.2.9"
    assert TurnServerConfig().relayAddress() not in ("0.0.0.0", "")
