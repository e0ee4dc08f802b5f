"""The application stream over a DTLS link (AppAttach over ICE, RFC 6940
section 6.5.2): chunks that fit the link, in order, once."""

from __future__ import annotations

import struct
from typing import cast

from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from reload.link.appstream import MAX_AHEAD, ApplicationStream
from reload.link.errors import LinkClosed
from reload.security.trust import VerifiedPeer


class FakeLink:
    """Records what the stream sends (a stand-in for DTLSLink's surface)."""

    def __init__(self, mtu: int = 32) -> None:
        self.messageMtu = mtu
        self.address = ("192.0.2.7", 4000)
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, message: bytes) -> None:
        if self.closed:
            raise LinkClosed("closed")
        assert len(message) <= self.messageMtu
        self.sent.append(message)

    def close(self) -> None:
        self.closed = True


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.lost: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = reason


def _pair(mtu: int = 32) -> tuple[ApplicationStream, Recorder, FakeLink]:
    link = FakeLink(mtu)
    stream = ApplicationStream(link, ("192.0.2.1", 5000), cast(VerifiedPeer, None), "relay")
    protocol = Recorder()
    stream.attach(protocol)
    return stream, protocol, link


def test_writesAreCutToTheLinkMtuAndArriveWhole() -> None:
    sender, _, link = _pair(mtu=20)
    receiver, protocol, _ = _pair()
    data = bytes(range(200))
    sender.write(data)
    assert all(len(chunk) <= 20 for chunk in link.sent) and len(link.sent) == 17
    for chunk in link.sent:
        receiver.chunkReceived(chunk)
    assert protocol.received == data
    assert sender.getPeer().port == 4000 and sender.getHost().port == 5000


def test_retransmittedChunksAreDeliveredOnceAndInOrder() -> None:
    sender, _, link = _pair(mtu=12)
    receiver, protocol, _ = _pair()
    sender.write(b"abcdefghijkl")
    first, second, third = link.sent
    for chunk in (first, first, third, second, third):
        receiver.chunkReceived(chunk)
    assert protocol.received == b"abcdefghijkl"
    assert receiver.duplicates == 2


def test_tooManyChunksAheadOfAGapCloseTheStream() -> None:
    stream, protocol, link = _pair()
    for sequence in range(1, MAX_AHEAD + 2):
        stream.chunkReceived(struct.pack("!Q", sequence) + b"x")
    assert link.closed and stream.closed
    assert protocol.received == b""
    assert protocol.lost is not None and protocol.lost.check(LinkClosed)


def test_aShortChunkClosesTheStream() -> None:
    stream, protocol, link = _pair()
    stream.chunkReceived(b"\x00\x01")
    assert link.closed and protocol.lost is not None


def test_loseConnectionClosesTheLinkCleanlyOnce() -> None:
    closedStreams: list[ApplicationStream] = []
    stream, protocol, link = _pair()
    stream.onClosed = closedStreams.append
    stream.loseConnection()
    stream.loseConnection()
    assert link.closed and closedStreams == [stream]
    assert protocol.lost is not None and protocol.lost.check(ConnectionDone)
    stream.write(b"late")
    assert link.sent == []
