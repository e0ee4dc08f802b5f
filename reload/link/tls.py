"""TLS-TCP-FH-NO-ICE (RFC 6940 section 6.6.5): framed messages over TLS over TCP.

:class:`TLSLink` is the application protocol inside a
:class:`twisted.protocols.tls.TLSMemoryBIOProtocol` (the listener in
:mod:`reload.link.listener` builds both).  It is the
:class:`~reload.link.interfaces.ILink` the transport sees.

What it does, by section:

* **6.6.2 framing.**  Every message is sent in a ``data`` frame whose
  sequence number starts at 0 on each connection and grows by exactly one
  per frame.  Every ``data`` frame received is acknowledged at once with an
  ``ack`` frame carrying the ``received`` mask of the 32 most recent
  sequence numbers (:func:`reload.wire.reliability.received_mask`).  The
  ACKs for all frames found in one read from TLS are written before the
  messages are handed up, and leave with whatever handling them wrote, in
  one TLS write when the read is done (:mod:`reload.link.output`).
  Received sequence numbers are echoed, not checked: TCP already delivers
  each frame once and in order.

* **6.6.5 RTT and RTO, no retransmission.**  Each ACK of a frame we sent
  gives an RTT sample (its send time to the ACK's arrival) for an RFC 6298
  section 2 estimator (:class:`reload.wire.reliability.RtoEstimator`).  On
  TCP an ACK of sequence N also means every earlier frame arrived, so it
  acknowledges them all (only N gives a sample).  RFC 6298 section 2 as
  section 6.6.5 asks, not the millisecond variant of 6.6.3.1: the initial
  RTO is 1 s (2.1) and a computed RTO below ``minRto`` (1 s, (2.4)) is
  raised to it; both are settings.

* **6.6.5 link failure, the exact rule.**  "The resulting RTO is not used
  for retransmissions, but rather as a timeout to indicate when the link
  SHOULD be removed from the Routing Table.  It is RECOMMENDED that such a
  connection be retained for 30 seconds to determine if the failure was
  transient before concluding the link has failed permanently."  So, with
  ``rto = max(current RTO, minRto)`` and ``grace = failureGrace`` (30 s):

  1. when the oldest unacknowledged ``data`` frame has waited ``rto``, the
     link is *stalled*: :attr:`TLSLink.stalled` becomes True and a handler
     that provides :class:`ILinkStallHandler` gets ``linkStalled(link)``
     (take it out of the Routing Table).  Any ACK ends the stall
     (``linkResumed``);
  2. when that frame has waited ``rto + grace`` without an ACK, the link
     has *failed*: the connection is aborted and the handler gets
     ``linkClosed(link, "link failed: ...")``.

  ``failureGrace=0`` reports the failure (``linkClosed``) as soon as the
  RTO runs out.  Frames sent and not yet written to the socket (Twisted's
  write buffer) count as waiting: a link that cannot drain its data is not
  healthy either.

* **Timeouts.**  The TLS handshake must finish (and the peer be verified)
  within ``handshakeTimeout`` of the TCP connection; a link with no frame
  in either direction for ``idleTimeout`` is closed (there are no
  keepalives without ICE, section 6.6.5).  All timers use the injected
  ``clock``.

* **Bad input (6.6 and DESIGN.md).**  A byte stream that is not framing
  (unknown frame type, a ``data`` frame announcing more than the overlay's
  max-message-size, anything :class:`~reload.wire.framing.StreamDeframer`
  rejects) closes this link only, logged at warning level; the frames
  complete before the bad bytes are still ACKed and delivered.  Section 6.6
  would have us send Error_Message_Too_Large first for an oversized
  message; building a RELOAD Error is the transport's business, so the link
  just closes.

* **Authentication.**  ``linkUp`` happens only after the handshake finished
  and :func:`reload.security.tls.verifiedPeerOf` accepted the peer's
  certificate; the link's :attr:`~TLSLink.peer` is its result.  A link that
  never got that far is never announced, and its ``linkClosed`` is never
  called.

The lifecycle (handshaking -> up -> closed) is a small Automat machine;
sending and receiving frames check one boolean and stay off it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol
from typing import cast

from automat import TypeMachineBuilder
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IHandshakeListener, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from reload.link.errors import LinkBusy, LinkClosed
from reload.link.interfaces import ILink, ILinkHandler
from reload.link.output import BURST, sendNow
from reload.security.tls import verifiedPeerOf
from reload.security.trust import VerifiedPeer
from reload.wire.attach import OverlayLinkType
from reload.wire.errors import EncodeError
from reload.wire.framing import (
    DATA_HEADER_SIZE,
    AckFrame,
    DataFrame,
    DeframingError,
    StreamDeframer,
)
from reload.wire.header import DEFAULT_MAX_MESSAGE_SIZE
from reload.wire.reliability import RECEIVED_HISTORY, RtoEstimator, received_mask

__all__ = [
    "HandshakeFailed",
    "ILinkStallHandler",
    "LinkOwner",
    "LinkSettings",
    "LinkTLSFactory",
    "TLSLink",
    "TLSLinkFactory",
]

_SEQ_MASK = 0xFFFFFFFF
# Section 6.6.2 sets bit N-M for N-32 < M < N: at most 31 bits.
_FULL_RUN = RECEIVED_HISTORY - 1
_FULL_MASK = (1 << _FULL_RUN) - 1
# Timers may fire a hair early in float arithmetic; a deadline this close
# counts as reached (and a timer is never rescheduled for less than this).
_EPSILON = 1e-6


class _TLSTransport(TypingProtocol):
    """What TLSLink uses of ``TLSMemoryBIOProtocol``."""

    def write(self, data: bytes) -> None: ...
    def loseConnection(self) -> None: ...
    def abortConnection(self) -> None: ...
    def getPeer(self) -> IAddress: ...


class HandshakeFailed(ConnectionError):
    """A connection ended before its peer was verified: TLS failed, the
    certificate was rejected, or the handshake timed out."""


class ILinkStallHandler(Interface):
    """Optional, for an :class:`~reload.link.interfaces.ILinkHandler` that
    also wants section 6.6.5's early signal (see the module docstring)."""

    def linkStalled(link: ILink) -> None:
        """A frame has gone unacknowledged for an RTO: remove ``link`` from
        the Routing Table; it may still resume or fail."""

    def linkResumed(link: ILink) -> None:
        """An ACK arrived on a stalled link: it MAY be restored."""


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Tunables of TLS-TCP-FH-NO-ICE links (all times in seconds)."""

    #: The overlay's max-message-size (section 11.1): the largest message a
    #: ``data`` frame may carry in either direction.
    maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE
    #: TCP connect (outbound links only).
    connectTimeout: float = 10.0
    #: From TCP connection to a verified peer: the handshake deadline.  A
    #: TLS handshake on a LAN or the Internet takes a few round trips; a
    #: connection that sends nothing holds a handshake slot this long.
    handshakeTimeout: float = 5.0
    #: No frame either way for this long closes the link; None: never.
    #: The default is three chord-update-intervals (600 s each).
    # Twice CHORD-RELOAD's chord-ping-interval (3600 s, section 10.7.4.3),
    # so a finger that is only pinged keeps its link.
    idleTimeout: float | None = 7200.0
    #: RTO before the first RTT sample (RFC 6298 (2.1)).
    initialRto: float = 1.0
    #: Lower bound on the RTO used as a failure timeout (RFC 6298 (2.4)).
    minRto: float = 1.0
    #: Upper bound on the RTO (RFC 6298 (2.5)).
    maxRto: float = 60.0
    #: Clock granularity G of RFC 6298 (2.2, 2.3).
    clockGranularity: float = 0.001
    #: How long a stalled link is kept before it fails (section 6.6.5: 30 s).
    failureGrace: float = 30.0
    #: Unacknowledged frames allowed before send() raises LinkBusy.
    sendWindow: int = 1024
    #: A graceful close (close(), idle) aborts the connection after this.
    closeTimeout: float = 5.0
    #: Listener: connections still in their handshake at a time.  When all
    #: are taken, a new connection replaces the one that has been in its
    #: handshake longest (a silent connection, as a real handshake takes
    #: milliseconds), so silent connections cannot lock peers out.
    maxHandshakes: int = 64
    #: Listener: handshakes in progress from one IP address; one more aborts
    #: the oldest of them.
    maxHandshakesPerSource: int = 8
    #: Listener: inbound links from one IP address that are verified but
    #: have not carried a message yet ("unproven"); one more closes the
    #: oldest of them.
    #: Links that carry messages do not count, so a lab of many peers on
    #: one address is not limited by it.
    maxUnprovenLinksPerSource: int = 16
    #: Received bytes of an incomplete frame with nothing more for this
    #: long close the link (a stalled partial frame).
    partialFrameTimeout: float = 30.0
    #: Malformed messages one link may deliver in ``malformedInterval``
    #: seconds; one more closes it (enforced by the transport).
    maxMalformed: int = 10
    malformedInterval: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.maxMessageSize <= 0xFFFFFF:
            raise ValueError(f"maxMessageSize must be within 0..2^24-1, not {self.maxMessageSize}")
        for name in (
            "connectTimeout",
            "handshakeTimeout",
            "initialRto",
            "maxRto",
            "closeTimeout",
            "partialFrameTimeout",
            "malformedInterval",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")
        for name in ("minRto", "clockGranularity", "failureGrace"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)!r}")
        if self.idleTimeout is not None and not self.idleTimeout > 0:
            raise ValueError(f"idleTimeout must be positive or None, not {self.idleTimeout!r}")
        for name in (
            "sendWindow",
            "maxHandshakes",
            "maxHandshakesPerSource",
            "maxUnprovenLinksPerSource",
            "maxMalformed",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")

    @property
    def maxFrameSize(self) -> int:
        """The largest frame on the wire: a data frame's header plus a
        max-message-size message."""
        return self.maxMessageSize + DATA_HEADER_SIZE


class LinkOwner(TypingProtocol):
    """Who a :class:`TLSLink` reports its lifecycle to (the listener)."""

    def linkVerified(self, link: TLSLink) -> None:
        """The handshake finished and the peer was verified."""

    def handshakeFailed(self, link: TLSLink, reason: str) -> None:
        """The connection ended before the peer was verified."""

    def linkClosed(self, link: TLSLink, reason: str) -> None:
        """A verified link is closed (once per link)."""

    def linkStalled(self, link: TLSLink) -> None:
        """A frame went unacknowledged for an RTO."""

    def linkResumed(self, link: TLSLink) -> None:
        """An ACK arrived on a stalled link."""

    def refused(self, reason: str, link: TLSLink, format: str, **kwargs: object) -> None:
        """Log that ``link`` is closed for bad input, rate-limited per
        ``reason`` and source address (:class:`reload.link.logs.RefusalLog`);
        ``format`` may use ``{link}`` and ``{address}``."""


# -- the lifecycle -------------------------------------------------------------


class _Lifecycle(TypingProtocol):
    def verified(self, peer: VerifiedPeer) -> None:
        "The peer's certificate was verified after the handshake."

    def fail(self, reason: str) -> None:
        "Abort the connection: timeout, garbage, failed verification."

    def finish(self, reason: str) -> None:
        "Close gracefully: close() or idle."

    def lost(self, reason: str) -> None:
        "The connection went away."


def _buildLifecycle() -> Callable[[TLSLink], _Lifecycle]:
    builder = TypeMachineBuilder(_Lifecycle, TLSLink)
    handshaking = builder.state("handshaking")
    up = builder.state("up")
    closed = builder.state("closed")

    @handshaking.upon(_Lifecycle.verified).to(up)
    def _up(machine: _Lifecycle, link: TLSLink, peer: VerifiedPeer) -> None:
        link._becomeUp(peer)

    @handshaking.upon(_Lifecycle.fail).to(closed)
    def _handshakeAborted(machine: _Lifecycle, link: TLSLink, reason: str) -> None:
        link._enterClosed(reason)
        link._abort()
        link._owner.handshakeFailed(link, reason)

    # Nothing to close gracefully before the peer is known.
    handshaking.upon(_Lifecycle.finish).to(closed)(_handshakeAborted)

    @handshaking.upon(_Lifecycle.lost).to(closed)
    def _handshakeLost(machine: _Lifecycle, link: TLSLink, reason: str) -> None:
        link._enterClosed(reason)
        link._owner.handshakeFailed(link, reason)

    @up.upon(_Lifecycle.fail).to(closed)
    def _failed(machine: _Lifecycle, link: TLSLink, reason: str) -> None:
        link._enterClosed(reason)
        link._abort()
        link._owner.linkClosed(link, reason)

    @up.upon(_Lifecycle.finish).to(closed)
    def _finished(machine: _Lifecycle, link: TLSLink, reason: str) -> None:
        link._enterClosed(reason)
        link._shutdown()
        link._owner.linkClosed(link, reason)

    @up.upon(_Lifecycle.lost).to(closed)
    def _lost(machine: _Lifecycle, link: TLSLink, reason: str) -> None:
        link._enterClosed(reason)
        link._owner.linkClosed(link, reason)

    up.upon(_Lifecycle.verified).loop().returns(None)
    for input in (_Lifecycle.verified, _Lifecycle.fail, _Lifecycle.finish, _Lifecycle.lost):
        closed.upon(input).loop().returns(None)
    return builder.build()


# -- the link ----------------------------------------------------------------------


@implementer(ILink, IHandshakeListener)
class TLSLink(Protocol):
    """One TLS-TCP-FH-NO-ICE link; see the module docstring."""

    log = Logger()
    linkType = OverlayLinkType.TLS_TCP_FH_NO_ICE

    def __init__(
        self,
        owner: LinkOwner,
        handler: ILinkHandler,
        settings: LinkSettings,
        clock: IReactorTime,
        outbound: bool,
        expectedNodeId: bytes | None = None,
        verify: Callable[[object], VerifiedPeer] = verifiedPeerOf,
    ) -> None:
        self._owner = owner
        self.handler = handler
        self.settings = settings
        self.clock = clock
        #: True if this node initiated the connection.
        self.outbound = outbound
        self.expectedNodeId = expectedNodeId
        self._verify = verify
        self._peer: VerifiedPeer | None = None
        #: The Node-ID this link reaches: the expected one for an outbound
        #: link, the first of the certificate's for an inbound one or for an
        #: outbound link to a bootstrap peer whose Node-ID is not known yet
        #: (section 11.4).
        self.nodeId: bytes | None = expectedNodeId
        #: Why the link closed, once it did.
        self.closeReason: str | None = None
        self._lostWaiters: list[Deferred[None]] = []
        self._open = False
        self._stalled = False
        self._deframer = StreamDeframer(settings.maxMessageSize)
        self._estimator = RtoEstimator(
            settings.initialRto, None, settings.clockGranularity, settings.maxRto
        )
        self._sampled = False
        self._nextSequence = 0
        # (sequence, sent at) of unacknowledged data frames; sequences are
        # consecutive, so the frame with sequence s is at s - _unacked[0][0].
        self._unacked: deque[tuple[int, float]] = deque()
        self._received: deque[int] = deque(maxlen=RECEIVED_HISTORY)
        # Length of the run of consecutive sequence numbers received last
        # (capped), and the last one: the fast path of the received mask.
        self._run = 0
        self._lastReceived = -1
        self._lastActivity = 0.0
        self._tls: _TLSTransport | None = None
        # Output held until the burst that made it ends (reload.link.output),
        # or until the next reactor iteration when there is no burst.
        self._out: list[bytes] = []
        self._flushCall: IDelayedCall | None = None
        self._handshakeTimer: IDelayedCall | None = None
        self._ackTimer: IDelayedCall | None = None
        self._ackDue = 0.0
        self._idleTimer: IDelayedCall | None = None
        self._closeTimer: IDelayedCall | None = None
        self._partialTimer: IDelayedCall | None = None
        self._lastInputAt = 0.0
        self._windowWaiters: list[Deferred[None]] = []
        self._lostConnection = False
        #: Counters for metrics and tests.
        self.framesSent = 0
        self.framesReceived = 0
        #: RELOAD messages handed to the handler: a link that carried none
        #: is "unproven" (the listener may evict it when the table is full).
        self.messagesReceived = 0
        #: When the connection was made and when the peer was verified.
        self.connectedAt = 0.0
        self.upSince = 0.0
        self.acksReceived = 0
        self.strayAcks = 0
        self._machine = _newLifecycle(self)

    def __repr__(self) -> str:
        state = "up" if self._open else ("closed" if self.closeReason else "handshaking")
        nodeId = self.nodeId.hex()[:16] if self.nodeId else "?"
        direction = "to" if self.outbound else "from"
        return f"<TLSLink {direction} {nodeId} {state}>"

    # -- ILink -------------------------------------------------------------------

    @property
    def peer(self) -> VerifiedPeer:
        """The verified peer (section 6.6: an authenticated connection)."""
        if self._peer is None:
            raise LinkClosed("the peer of this link has not been verified")
        return self._peer

    @property
    def rto(self) -> float | None:
        """RFC 6298 RTO from the framing ACKs, at least ``minRto``; None
        before the first RTT sample."""
        if not self._sampled:
            return None
        return max(self._estimator.rto, self.settings.minRto)

    @property
    def srtt(self) -> float | None:
        """Smoothed RTT (RFC 6298), None before the first sample."""
        return self._estimator.srtt

    @property
    def stalled(self) -> bool:
        """A frame has waited longer than the RTO (section 6.6.5)."""
        return self._stalled

    @property
    def outstanding(self) -> int:
        """Data frames sent and not acknowledged."""
        return len(self._unacked)

    @property
    def isOpen(self) -> bool:
        return self._open

    @property
    def lastActivity(self) -> float:
        """When the last frame was sent or received (the clock's time)."""
        return self._lastActivity

    @property
    def sourceHost(self) -> str:
        """The peer's IP address as text ("?" before the connection)."""
        address = self.peerAddress
        return str(getattr(address, "host", "?"))

    @property
    def peerAddress(self) -> IAddress | None:
        """The peer's IAddress (None before the connection is made)."""
        return None if self._tls is None else self._tls.getPeer()

    def send(self, message: bytes) -> None:
        if not self._open:
            raise LinkClosed(self.closeReason or "the link is not up")
        settings = self.settings
        if len(message) > settings.maxMessageSize:
            raise EncodeError(
                f"a message of {len(message)} bytes exceeds the overlay's "
                f"max-message-size ({settings.maxMessageSize})"
            )
        unacked = self._unacked
        if len(unacked) >= settings.sendWindow:
            raise LinkBusy(f"{len(unacked)} frames unacknowledged (window {settings.sendWindow})")
        sequence = self._nextSequence
        frame = DataFrame(sequence, message).encode()
        self._nextSequence = (sequence + 1) & _SEQ_MASK
        now = self.clock.seconds()
        unacked.append((sequence, now))
        self._lastActivity = now
        self.framesSent += 1
        self._write(frame)
        self._armAckTimer(now + self._failureRto(), now)

    def close(self) -> None:
        self._machine.finish("closed locally")

    # -- extras --------------------------------------------------------------------

    def whenSendable(self) -> Deferred[None]:
        """Fires when :meth:`send` would not raise LinkBusy; fails with
        LinkClosed if the link closes first."""
        if not self._open:
            return fail(LinkClosed(self.closeReason or "the link is not up"))
        if len(self._unacked) < self.settings.sendWindow:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._windowWaiters.append(d)
        return d

    def whenLost(self) -> Deferred[None]:
        """Fires (with None) once the TCP connection is gone."""
        if self._lostConnection:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._lostWaiters.append(d)
        return d

    def abort(self, reason: str) -> None:
        """Close at once without a TLS shutdown, reporting ``reason``."""
        self._machine.fail(reason)

    # -- Protocol ------------------------------------------------------------------

    def connectionMade(self) -> None:
        self._tls = cast(_TLSTransport, self.transport)
        # Messages and their ACKs are small and latency-bound: without
        # TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms a hop.
        tcp = getattr(self.transport, "transport", None)
        if tcp is not None and hasattr(tcp, "setTcpNoDelay"):
            tcp.setTcpNoDelay(True)
        self.connectedAt = self.clock.seconds()
        self._handshakeTimer = self.clock.callLater(
            self.settings.handshakeTimeout, self._handshakeTimedOut
        )

    def handshakeCompleted(self) -> None:
        try:
            peer = self._verify(self.transport)
            if not peer.nodeIds:
                raise ValueError("the certificate has no Node-ID")
            if self.expectedNodeId is not None and self.expectedNodeId not in peer.nodeIds:
                raise ValueError(f"the certificate is not for {self.expectedNodeId.hex()}")
        except Exception as e:
            # Fail closed, whatever went wrong (DESIGN.md, security rules).
            self._machine.fail(f"peer verification failed: {e}")
            return
        self._machine.verified(peer)

    def dataReceived(self, data: bytes) -> None:
        if not self._open:
            if self.closeReason is None:
                self._machine.fail("data before the peer was verified")
            return
        # The ACKs and whatever handling the messages writes, on this link
        # or others, leave together when this read is done.
        with BURST:
            self._frameReceived(data)

    def _frameReceived(self, data: bytes) -> None:
        error: DeframingError | None = None
        try:
            frames = self._deframer.feed(data)
        except DeframingError as e:
            frames, error = e.frames, e
        now = self.clock.seconds()
        self._lastActivity = self._lastInputAt = now
        acks: list[bytes] = []
        messages: list[bytes] = []
        for frame in frames:
            if type(frame) is DataFrame:
                # Section 6.6.2: "the receiver SHOULD immediately send an ACK".
                acks.append(AckFrame(frame.sequence, self._receivedMask(frame.sequence)).encode())
                messages.append(frame.message)
            else:
                assert isinstance(frame, AckFrame)
                self._onAck(frame.ack_sequence, now)
        self.framesReceived += len(frames)
        self.messagesReceived += len(messages)
        if self._deframer.buffered and self._partialTimer is None:
            self._partialTimer = self.clock.callLater(
                self.settings.partialFrameTimeout, self._checkPartialFrame
            )
        if acks:
            self._write(b"".join(acks))
        for message in messages:
            if not self._open:
                break
            try:
                self.handler.messageReceived(self, message)
            except Exception:
                self.log.failure("Handler failed on a message from {link}", link=self)
        if error is not None and self._open:
            self._owner.refused(
                "framing error",
                self,
                "Closing the link {link} from {address}: it sent bytes that are not "
                "RELOAD framing ({error})",
                error=str(error),
            )
            self._machine.fail(f"framing error: {error}")

    def _checkPartialFrame(self) -> None:
        """A frame started arriving and stopped: after
        ``partialFrameTimeout`` without a byte, close the link (its peer
        holds our buffer and a table entry for nothing)."""
        self._partialTimer = None
        if not self._open or not self._deframer.buffered:
            return
        now = self.clock.seconds()
        waited = now - self._lastInputAt + _EPSILON
        timeout = self.settings.partialFrameTimeout
        if waited >= timeout:
            self._owner.refused(
                "stalled frame",
                self,
                "Closing the link {link} from {address}: {size} bytes of a frame, "
                "nothing more for {waited:.1f} s",
                size=self._deframer.buffered,
                waited=waited,
            )
            self._machine.fail(f"a partial frame stalled for {waited:.1f} s")
            return
        self._partialTimer = self.clock.callLater(timeout - waited, self._checkPartialFrame)

    # -- output ------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """Hold ``data`` for :meth:`flush`: at the end of the current
        burst, or at the next reactor iteration outside one."""
        out = self._out
        out.append(data)
        if len(out) > 1:
            return
        if BURST.open:
            BURST.hold(self)
        elif self._flushCall is None:
            self._flushCall = self.clock.callLater(0, self.flush)

    def flush(self) -> None:
        """Write the held output to TLS in one record write and hand it to
        the socket now, not at the TCP transport's next write turn."""
        call, self._flushCall = self._flushCall, None
        if call is not None and call.active():
            call.cancel()
        if not self._out:
            return
        data = b"".join(self._out)
        self._out = []
        tls = self._tls
        if tls is None or self._lostConnection:
            return
        tls.write(data)
        sendNow(getattr(tls, "transport", None))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lostConnection = True
        self._out = []
        if self._flushCall is not None and self._flushCall.active():
            self._flushCall.cancel()
        self._flushCall = None
        if self._closeTimer is not None and self._closeTimer.active():
            self._closeTimer.cancel()
        self._closeTimer = None
        message = reason.getErrorMessage() or str(reason.type)
        self._machine.lost(f"connection lost: {message}")
        waiters, self._lostWaiters = self._lostWaiters, []
        for d in waiters:
            d.callback(None)

    # -- timers ----------------------------------------------------------------------

    def _failureRto(self) -> float:
        return max(self._estimator.rto, self.settings.minRto)

    def _handshakeTimedOut(self) -> None:
        self._handshakeTimer = None
        self._machine.fail(
            f"the TLS handshake did not finish in {self.settings.handshakeTimeout} s"
        )

    def _checkAcks(self) -> None:
        """Section 6.6.5 failure rule (module docstring)."""
        self._ackTimer = None
        if not self._open or not self._unacked:
            return
        now = self.clock.seconds()
        sequence, sentAt = self._unacked[0]
        rto = self._failureRto()
        grace = self.settings.failureGrace
        waited = now - sentAt + _EPSILON
        if waited >= rto + grace:
            self.log.warn(
                "Link {link} failed: frame {sequence} unacknowledged for {waited:.3f} s "
                "(RTO {rto:.3f} s + {grace} s)",
                link=self,
                sequence=sequence,
                waited=waited,
                rto=rto,
                grace=grace,
            )
            self._machine.fail(
                f"link failed: frame {sequence} not acknowledged in {waited:.3f} s "
                f"(RTO {rto:.3f} s + {grace} s, RFC 6940 section 6.6.5)"
            )
            return
        if waited >= rto:
            if not self._stalled:
                self._stalled = True
                self.log.info(
                    "Link {link} stalled: frame {sequence} unacknowledged after the RTO "
                    "({rto:.3f} s)",
                    link=self,
                    sequence=sequence,
                    rto=rto,
                )
                self._notify(self._owner.linkStalled)
            due = sentAt + rto + grace
        else:
            due = sentAt + rto
        self._armAckTimer(due, now)

    def _armAckTimer(self, due: float, now: float) -> None:
        """Make sure :meth:`_checkAcks` runs by ``due``.  A timer already
        set for no later than that is kept: the check is lazy and
        reschedules itself, so that steady traffic costs one timer per RTO,
        not one per frame."""
        timer = self._ackTimer
        if timer is not None:
            if due >= self._ackDue - _EPSILON:
                return
            timer.cancel()
        self._ackDue = due
        self._ackTimer = self.clock.callLater(max(due - now, _EPSILON), self._checkAcks)

    def _checkIdle(self) -> None:
        self._idleTimer = None
        timeout = self.settings.idleTimeout
        if not self._open or timeout is None:
            return
        now = self.clock.seconds()
        idle = now - self._lastActivity + _EPSILON
        if idle >= timeout:
            self.log.info("Closing idle link {link} ({idle:.1f} s)", link=self, idle=idle)
            self._machine.finish(f"idle for {idle:.1f} s (idle timeout {timeout} s)")
            return
        self._idleTimer = self.clock.callLater(max(timeout - idle, _EPSILON), self._checkIdle)

    # -- ACKs ------------------------------------------------------------------------

    def _receivedMask(self, sequence: int) -> int:
        """The ``received`` field for the ACK of ``sequence`` (section
        6.6.2), and note ``sequence`` as received.  On TCP the sequence
        numbers arrive consecutively, and once 31 have (bits N-1 to N-31),
        the mask is all ones without looking at the history."""
        history = self._received
        if sequence == (self._lastReceived + 1) & _SEQ_MASK:
            if self._run >= _FULL_RUN:
                mask = _FULL_MASK
            else:
                mask = received_mask(sequence, history)
                self._run += 1
        else:
            mask = received_mask(sequence, history)
            self._run = 1
        self._lastReceived = sequence
        history.append(sequence)
        return mask

    def _onAck(self, ackSequence: int, now: float) -> None:
        self.acksReceived += 1
        unacked = self._unacked
        if not unacked:
            self.strayAcks += 1
            return
        index = (ackSequence - unacked[0][0]) & _SEQ_MASK
        if index >= len(unacked):
            # Not a frame waiting for an ACK (a duplicate, or never sent).
            self.strayAcks += 1
            return
        # TCP: the ACK of N means every frame before N arrived too.
        for _ in range(index):
            unacked.popleft()
        _, sentAt = unacked.popleft()
        self._estimator.sample(now - sentAt)
        self._sampled = True
        if unacked:
            # The RTO may have shrunk: the next frame's deadline may come
            # before the timer.
            self._armAckTimer(unacked[0][1] + self._failureRto(), now)
        if self._stalled:
            self._stalled = False
            self.log.info("Link {link} resumed", link=self)
            self._notify(self._owner.linkResumed)
        if self._windowWaiters and len(unacked) < self.settings.sendWindow:
            waiters, self._windowWaiters = self._windowWaiters, []
            for d in waiters:
                d.callback(None)

    def _notify(self, callback: Callable[[TLSLink], None]) -> None:
        try:
            callback(self)
        except Exception:
            self.log.failure("Link event handler failed for {link}", link=self)

    # -- lifecycle outputs (called by the machine) ------------------------------------

    def _becomeUp(self, peer: VerifiedPeer) -> None:
        self._cancel("_handshakeTimer")
        self._peer = peer
        if self.nodeId is None:
            self.nodeId = peer.nodeIds[0]
        self._open = True
        self._lastActivity = self.upSince = self.clock.seconds()
        if self.settings.idleTimeout is not None:
            self._idleTimer = self.clock.callLater(self.settings.idleTimeout, self._checkIdle)
        self._owner.linkVerified(self)

    def _enterClosed(self, reason: str) -> None:
        self._open = False
        self.closeReason = reason
        for name in ("_handshakeTimer", "_ackTimer", "_idleTimer", "_partialTimer"):
            self._cancel(name)
        waiters, self._windowWaiters = self._windowWaiters, []
        for d in waiters:
            d.errback(LinkClosed(reason))

    def _abort(self) -> None:
        if self._tls is not None and not self._lostConnection:
            self.flush()
            self._tls.abortConnection()

    def _shutdown(self) -> None:
        if self._tls is None or self._lostConnection:
            return
        self.flush()
        self._tls.loseConnection()
        if not self._lostConnection:
            self._closeTimer = self.clock.callLater(self.settings.closeTimeout, self._abort)

    def _cancel(self, name: str) -> None:
        timer: IDelayedCall | None = getattr(self, name)
        if timer is not None:
            if timer.active():
                timer.cancel()
            setattr(self, name, None)


_newLifecycle: Callable[[TLSLink], _Lifecycle] = _buildLifecycle()


class LinkTLSFactory(TLSMemoryBIOFactory):
    """TLS for :class:`TLSLink`: Twisted's plain TLSMemoryBIOProtocol,
    without the small-write aggregation of its default
    BufferingTLSTransport, which would delay by a reactor iteration what
    the link already aggregated (:mod:`reload.link.output`)."""

    protocol = TLSMemoryBIOProtocol


class TLSLinkFactory(Factory):
    """Makes :class:`TLSLink` protocols for one listener or one connect
    attempt (wrap it in a TLSMemoryBIOFactory)."""

    def __init__(
        self,
        owner: LinkOwner,
        handler: ILinkHandler,
        settings: LinkSettings,
        clock: IReactorTime,
        outbound: bool,
        expectedNodeId: bytes | None = None,
        verify: Callable[[object], VerifiedPeer] = verifiedPeerOf,
    ) -> None:
        self.owner = owner
        self.handler = handler
        self.settings = settings
        self.clock = clock
        self.outbound = outbound
        self.expectedNodeId = expectedNodeId
        self.verify = verify

    def buildProtocol(self, addr: IAddress | None) -> TLSLink:
        link = TLSLink(
            self.owner,
            self.handler,
            self.settings,
            self.clock,
            self.outbound,
            self.expectedNodeId,
            self.verify,
        )
        link.factory = self
        return link
