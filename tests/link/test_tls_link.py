# mypy: disable-error-code="no-untyped-call"
"""TLSLink's framing, ACK, RTO and timer rules (RFC 6940 sections 6.6.2 and
6.6.5), driven without sockets: a StringTransport stands in for TLS, a
task.Clock for time, and verification is injected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from reload.link.errors import LinkBusy, LinkClosed
from reload.link.interfaces import ILink
from reload.link.tls import LinkSettings, TLSLink
from reload.security.certificates import makeSelfSignedIdentity
from reload.security.trust import CertificateRejected, VerifiedPeer
from reload.wire.attach import OverlayLinkType
from reload.wire.errors import EncodeError
from reload.wire.framing import AckFrame, DataFrame, StreamDeframer
from reload.wire.reliability import received_mask
from tests.link.conftest import OVERLAY, Recorder

IDENTITY = makeSelfSignedIdentity(OVERLAY, None)
PEER = VerifiedPeer(IDENTITY.certificate, IDENTITY.nodeIds, None, selfSigned=True)


@dataclass
class Owner:
    verified: list[TLSLink] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    stalled: int = 0
    resumed: int = 0
    refusals: list[str] = field(default_factory=list)

    def linkVerified(self, link: TLSLink) -> None:
        self.verified.append(link)

    def handshakeFailed(self, link: TLSLink, reason: str) -> None:
        self.failed.append(reason)

    def linkClosed(self, link: TLSLink, reason: str) -> None:
        self.closed.append(reason)

    def linkStalled(self, link: TLSLink) -> None:
        self.stalled += 1

    def linkResumed(self, link: TLSLink) -> None:
        self.resumed += 1

    def refused(self, reason: str, link: TLSLink, format: str, **kwargs: object) -> None:
        self.refusals.append(reason)


class Abortable(StringTransport):
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


@dataclass
class Rig:
    link: TLSLink
    owner: Owner
    handler: Recorder
    clock: Clock
    transport: Abortable
    sent: StreamDeframer

    def written(self) -> list[Any]:
        """Frames the link wrote since the last call (output written
        outside a burst leaves at the next reactor iteration)."""
        self.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        return self.sent.feed(data)


def rig(verify: Any = None, handshake: bool = True, **settings: Any) -> Rig:
    clock = Clock()
    clock.advance(1000)
    owner, handler = Owner(), Recorder()
    link = TLSLink(
        owner,
        handler,
        LinkSettings(**settings),
        clock,
        outbound=False,
        verify=verify or (lambda transport: PEER),
    )
    transport = Abortable()
    link.makeConnection(transport)
    if handshake:
        link.handshakeCompleted()
    return Rig(link, owner, handler, clock, transport, StreamDeframer(0xFFFFFF))


def test_upOnlyAfterVerificationWithTheVerifiedPeer() -> None:
    r = rig(handshake=False)
    assert r.owner.verified == [] and not r.link.isOpen
    with pytest.raises(LinkClosed):
        r.link.send(b"too early")
    r.link.handshakeCompleted()
    assert r.owner.verified == [r.link]
    assert r.link.peer is PEER and r.link.nodeId == IDENTITY.nodeId
    assert r.link.rto is None  # no RTT sample yet
    assert verifyObject(ILink, r.link)
    assert r.link.linkType == OverlayLinkType.TLS_TCP_FH_NO_ICE


def test_verificationFailureFailsClosed() -> None:
    def reject(transport: object) -> VerifiedPeer:
        raise CertificateRejected("not on this overlay")

    r = rig(verify=reject)
    assert r.owner.verified == []
    assert r.owner.failed and "not on this overlay" in r.owner.failed[0]
    assert r.transport.aborted


def test_outboundLinkRequiresTheExpectedNodeId() -> None:
    clock, owner = Clock(), Owner()
    link = TLSLink(
        owner, Recorder(), LinkSettings(), clock, True, b"\x01" * 16, verify=lambda t: PEER
    )
    link.makeConnection(Abortable())
    link.handshakeCompleted()
    assert owner.verified == [] and "not for" in owner.failed[0]


def test_sequenceNumbersStartAtZeroAndGrowByOne() -> None:
    """Section 6.6.2: each connection's sequence space starts at zero."""
    r = rig()
    for i in range(3):
        r.link.send(b"m%d" % i)
    assert r.written() == [DataFrame(0, b"m0"), DataFrame(1, b"m1"), DataFrame(2, b"m2")]


def test_everyDataFrameIsAckedAtOnceWithTheReceivedMask() -> None:
    """Section 6.6.2: an ACK per data frame; bit N-M set for the earlier M."""
    r = rig()
    r.link.dataReceived(DataFrame(0, b"a").encode() + DataFrame(1, b"b").encode())
    assert r.written() == [AckFrame(0, 0), AckFrame(1, 0b1)]
    r.link.dataReceived(DataFrame(3, b"c").encode())
    assert r.written() == [AckFrame(3, 0b110)]
    assert r.handler.messagesOn(r.link) == [b"a", b"b", b"c"]


def test_partialFramesAreReassembled() -> None:
    r = rig()
    frame = DataFrame(0, b"x" * 100).encode()
    for i in range(len(frame)):
        r.link.dataReceived(frame[i : i + 1])
    assert r.handler.messagesOn(r.link) == [b"x" * 100]
    assert r.written() == [AckFrame(0, 0)]


def test_acksGiveRttSamplesForTheRfc6298Rto() -> None:
    """Section 6.6.5 / RFC 6298 (2.2, 2.3): first sample R gives SRTT = R,
    RTTVAR = R/2; RTO = SRTT + 4 RTTVAR (the estimator rounds up to the ms)."""
    r = rig(minRto=0.0)
    r.link.send(b"one")
    r.clock.advance(0.2)
    r.link.dataReceived(AckFrame(0, 0).encode())
    assert r.link.srtt == pytest.approx(0.2)
    assert r.link.rto == pytest.approx(0.6)
    r.link.send(b"two")
    r.clock.advance(0.1)
    r.link.dataReceived(AckFrame(1, 1).encode())
    # RTTVAR = 3/4 * 0.1 + 1/4 * |0.2 - 0.1| = 0.1; SRTT = 7/8 0.2 + 1/8 0.1
    assert r.link.srtt == pytest.approx(0.1875)
    assert r.link.rto == pytest.approx(0.588)  # 0.1875 + 4 * 0.1, ceiling ms
    assert r.link.outstanding == 0


def test_rtoIsAtLeastMinRto() -> None:
    """RFC 6298 (2.4): a computed RTO below 1 s is rounded up to 1 s."""
    r = rig()
    r.link.send(b"one")
    r.clock.advance(0.01)
    r.link.dataReceived(AckFrame(0, 0).encode())
    assert r.link.srtt == pytest.approx(0.01)
    assert r.link.rto == 1.0


def test_anAckAcknowledgesEveryEarlierFrame() -> None:
    """On TCP the ACK of N means every frame before N arrived."""
    r = rig()
    for _ in range(5):
        r.link.send(b"m")
    r.link.dataReceived(AckFrame(3, 0b111).encode())
    assert r.link.outstanding == 1
    r.link.dataReceived(AckFrame(3, 0).encode())  # a duplicate: ignored
    r.link.dataReceived(AckFrame(99, 0).encode())  # never sent: ignored
    assert r.link.strayAcks == 2 and r.link.outstanding == 1 and r.link.isOpen


def test_unackedFrameStallsTheLinkAfterTheRtoAndFailsItAfterTheGrace() -> None:
    """Section 6.6.5, the rule in reload.link.tls: stalled when the oldest
    unacknowledged frame has waited the RTO (1 s before any sample), closed
    as failed when it has waited RTO + failureGrace (30 s)."""
    r = rig()
    r.link.send(b"lost")
    r.clock.advance(0.999)
    assert not r.link.stalled and r.owner.stalled == 0
    r.clock.advance(0.001)
    assert r.link.stalled and r.owner.stalled == 1
    assert r.link.isOpen
    r.clock.advance(29.999)
    assert r.owner.closed == []
    r.clock.advance(0.001)
    assert len(r.owner.closed) == 1 and "link failed" in r.owner.closed[0]
    assert "6.6.5" in r.owner.closed[0]
    assert r.transport.aborted and not r.link.isOpen
    with pytest.raises(LinkClosed):
        r.link.send(b"after")


def test_anAckEndsTheStall() -> None:
    r = rig()
    r.link.send(b"slow")
    r.clock.advance(1.5)
    assert r.link.stalled
    r.link.dataReceived(AckFrame(0, 0).encode())
    assert not r.link.stalled and r.owner.resumed == 1
    r.clock.advance(60)
    assert r.owner.closed == [] or "idle" in r.owner.closed[0]


def test_zeroGraceFailsTheLinkWhenTheRtoRunsOut() -> None:
    r = rig(failureGrace=0.0, initialRto=0.3, minRto=0.3)
    r.link.send(b"lost")
    r.clock.advance(0.29)
    assert r.owner.closed == []
    r.clock.advance(0.01)
    assert len(r.owner.closed) == 1 and "link failed" in r.owner.closed[0]


def test_failureTimeoutFollowsTheMeasuredRto() -> None:
    r = rig(minRto=0.0, failureGrace=0.0)
    r.link.send(b"one")
    r.clock.advance(0.05)
    r.link.dataReceived(AckFrame(0, 0).encode())
    rto = r.link.rto
    assert rto is not None and rto == pytest.approx(0.15)
    r.link.send(b"two")
    r.clock.advance(rto - 0.01)
    assert r.link.isOpen
    r.clock.advance(0.02)
    assert not r.link.isOpen and "link failed" in r.owner.closed[0]


def test_handshakeTimeout() -> None:
    r = rig(handshake=False, handshakeTimeout=2.0)
    r.clock.advance(1.9)
    assert r.owner.failed == []
    r.clock.advance(0.1)
    assert len(r.owner.failed) == 1 and "handshake" in r.owner.failed[0]
    assert r.transport.aborted
    r.link.handshakeCompleted()  # too late: nothing happens
    assert r.owner.verified == []


def test_idleTimeoutCountsFramesInEitherDirection() -> None:
    r = rig(idleTimeout=10.0)
    r.clock.advance(6)
    r.link.send(b"out")  # activity
    r.clock.advance(6)
    r.link.dataReceived(AckFrame(0, 0).encode())  # activity
    r.clock.advance(9.9)
    assert r.owner.closed == []
    r.clock.advance(0.2)
    assert len(r.owner.closed) == 1 and "idle" in r.owner.closed[0]
    assert r.transport.disconnecting  # a graceful close


def test_gracefulCloseAbortsAfterTheCloseTimeout() -> None:
    r = rig(closeTimeout=5.0)
    r.link.close()
    assert r.owner.closed == ["closed locally"]
    assert r.transport.disconnecting and not r.transport.aborted
    r.clock.advance(5.0)
    assert r.transport.aborted
    r.link.close()
    r.link.connectionLost(Failure(ConnectionError("gone")))
    assert r.owner.closed == ["closed locally"]  # reported once


def test_connectionLostIsReportedOnce() -> None:
    r = rig()
    r.link.connectionLost(Failure(ConnectionError("reset")))
    assert len(r.owner.closed) == 1 and "reset" in r.owner.closed[0]
    r.link.close()
    assert len(r.owner.closed) == 1
    assert r.link.whenLost().called


def test_garbageClosesTheLinkAfterDeliveringTheFramesBeforeIt() -> None:
    """DESIGN.md: bytes that are not framing close this link; the owner
    logs it (rate-limited, reload.link.logs)."""
    r = rig()
    r.link.dataReceived(DataFrame(0, b"good").encode() + b"\x07garbage")
    assert r.handler.messagesOn(r.link) == [b"good"]
    assert r.written() == [AckFrame(0, 0)]
    assert len(r.owner.closed) == 1 and "framing error" in r.owner.closed[0]
    assert r.transport.aborted
    assert r.owner.refusals == ["framing error"]


def test_aStalledPartialFrameClosesTheLink() -> None:
    """Half a frame and then nothing: closed after partialFrameTimeout."""
    r = rig()
    frame = DataFrame(0, b"x" * 100).encode()
    r.link.dataReceived(frame[:50])
    r.clock.advance(r.link.settings.partialFrameTimeout - 1)
    assert r.link.isOpen
    r.clock.advance(2)
    assert not r.link.isOpen and r.owner.refusals == ["stalled frame"]
    assert "partial frame" in r.owner.closed[0]


def test_anOversizedFrameIsRejectedFromItsHeader() -> None:
    """Max frame size = max-message-size plus the 8-byte data header."""
    r = rig(maxMessageSize=100)
    assert r.link.settings.maxFrameSize == 108
    r.link.dataReceived(DataFrame(0, b"x" * 100).encode())
    assert r.handler.messagesOn(r.link) == [b"x" * 100]
    header = DataFrame(1, b"y" * 101).encode()[:8]
    r.link.dataReceived(header)
    assert not r.link.isOpen and "more than the maximum 100" in r.owner.closed[0]


def test_sendRefusesOversizedMessagesAndAFullWindow() -> None:
    r = rig(maxMessageSize=10, sendWindow=2)
    with pytest.raises(EncodeError):
        r.link.send(b"x" * 11)
    r.link.send(b"a")
    r.link.send(b"b")
    with pytest.raises(LinkBusy):
        r.link.send(b"c")
    d = r.link.whenSendable()
    assert not d.called
    r.link.dataReceived(AckFrame(0, 0).encode())
    assert d.called
    r.link.send(b"c")


def test_aFailingHandlerDoesNotCloseTheLink() -> None:
    r = rig()

    def boom(link: object, message: bytes) -> None:
        raise RuntimeError("handler bug")

    r.handler.messageReceived = boom  # type: ignore[method-assign]
    r.link.dataReceived(DataFrame(0, b"x").encode())
    assert r.link.isOpen
    assert r.written() == [AckFrame(0, 0)]


def test_settingsAreValidated() -> None:
    with pytest.raises(ValueError):
        LinkSettings(handshakeTimeout=0)
    with pytest.raises(ValueError):
        LinkSettings(idleTimeout=-1)
    with pytest.raises(ValueError):
        LinkSettings(maxMessageSize=1 << 24)
    with pytest.raises(ValueError):
        LinkSettings(sendWindow=0)
    assert LinkSettings(idleTimeout=None).idleTimeout is None


def test_receivedMaskMatchesTheSection662RuleOnLongRunsGapsAndWrap() -> None:
    """The in-order fast path gives the mask received_mask() computes from
    the 32 most recent sequence numbers, through gaps and 2^32 wrap."""
    r = rig()
    sequences = [*range(40), *range(45, 50), *range(0xFFFFFFF0, 0x100000000), *range(0, 40)]
    history: list[int] = []
    for sequence in sequences:
        r.link.dataReceived(DataFrame(sequence, b"").encode())
        expected = received_mask(sequence, history[-32:])
        history.append(sequence)
        assert r.written() == [AckFrame(sequence, expected)]
    assert received_mask(80, list(range(48, 80))) == 0x7FFFFFFF


class CountingTransport(Abortable):
    """Counts the writes, and stands on a TCP transport that records when
    it is told to send (``doWrite``, the reactor's IWriteDescriptor call)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.transport = SocketSide()

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


@dataclass
class SocketSide:
    connected: bool = True
    disconnecting: bool = False
    sends: int = 0

    def doWrite(self) -> None:
        self.sends += 1


class Answering(Recorder):
    """Answers every message on its link and copies it to ``other``."""

    other: TLSLink | None = None

    def messageReceived(self, link: ILink, message: bytes) -> None:
        super().messageReceived(link, message)
        link.send(b"answer to " + message)
        if self.other is not None:
            self.other.send(b"copy of " + message)


def linkOn(transport: CountingTransport, handler: Recorder, clock: Clock) -> TLSLink:
    link = TLSLink(Owner(), handler, LinkSettings(), clock, False, verify=lambda t: PEER)
    link.makeConnection(transport)
    link.handshakeCompleted()
    return link


def test_acksAndWhatHandlingWritesLeaveInOneWritePerLinkWhenTheReadIsDone() -> None:
    """reload.link.output: the ACKs of a read, the answers written on the
    same link and the messages written on another leave when the read has
    been handled, one TLS write and one send per link, with no reactor
    iteration in between."""
    clock, handler = Clock(), Answering()
    transport, otherTransport = CountingTransport(), CountingTransport()
    link = linkOn(transport, handler, clock)
    handler.other = linkOn(otherTransport, Recorder(), clock)
    link.dataReceived(DataFrame(0, b"a").encode() + DataFrame(1, b"b").encode())
    assert transport.writes == 1 and transport.transport.sends == 1
    assert StreamDeframer(0xFFFFFF).feed(transport.value()) == [
        AckFrame(0, 0),
        AckFrame(1, 0b1),
        DataFrame(0, b"answer to a"),
        DataFrame(1, b"answer to b"),
    ]
    assert otherTransport.writes == 1 and otherTransport.transport.sends == 1
    assert StreamDeframer(0xFFFFFF).feed(otherTransport.value()) == [
        DataFrame(0, b"copy of a"),
        DataFrame(1, b"copy of b"),
    ]
    clock.advance(0)  # nothing was left for the next iteration
    assert transport.writes == 1 and otherTransport.writes == 1


def test_outputOutsideAReadLeavesTogetherAtTheNextReactorIteration() -> None:
    clock = Clock()
    transport = CountingTransport()
    link = linkOn(transport, Recorder(), clock)
    link.send(b"one")
    link.send(b"two")
    assert transport.writes == 0 and transport.value() == b""
    clock.advance(0)
    assert transport.writes == 1 and transport.transport.sends == 1
    assert StreamDeframer(0xFFFFFF).feed(transport.value()) == [
        DataFrame(0, b"one"),
        DataFrame(1, b"two"),
    ]


def test_aClosingLinkWritesWhatItHeldBeforeTheTlsCloseAndLeavesTheSocketToTheReactor() -> None:
    clock = Clock()
    transport = CountingTransport()
    link = linkOn(transport, Recorder(), clock)
    link.send(b"last words")
    transport.transport.disconnecting = True  # the TCP side is closing
    link.close()
    assert StreamDeframer(0xFFFFFF).feed(transport.value()) == [DataFrame(0, b"last words")]
    assert transport.disconnecting
    assert transport.transport.sends == 0  # doWrite would finish the close: the reactor's job
    clock.advance(0)
    assert transport.writes == 1


def test_outputHeldWhenTheConnectionIsLostIsDropped() -> None:
    clock = Clock()
    transport = CountingTransport()
    link = linkOn(transport, Recorder(), clock)
    link.send(b"never sent")
    link.connectionLost(Failure(ConnectionError("reset")))
    clock.advance(0)
    assert transport.writes == 0 and clock.getDelayedCalls() == []
