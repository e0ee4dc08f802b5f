"""Simple Reliability (RFC 6940 sections 6.6.2 and 6.6.3) as a sans-I/O machine.

One :class:`SimpleReliability` per DTLS association (DTLS-UDP-SR) keeps both
directions of the hop-by-hop protocol:

* receiving: every data frame is answered at once with an ack frame whose
  ``received`` mask reports which of the 32 sequence numbers before it were
  among the 32 frames most recently received (section 6.6.2);
* sending: each message gets the next sequence number, is kept until
  acknowledged, is retransmitted after an RTO with a *new* sequence number
  and a doubled wait, and fails after five transmissions (section 6.6.3.1);
  the RTO comes from RFC 6298 via :class:`RtoEstimator`.

Time is always a parameter (seconds, any monotonic origin); nothing here
reads a clock or does I/O.  The caller sends what :meth:`~SimpleReliability
.send` returns and the frames of :class:`Transmit` events, hands received
datagrams to :meth:`~SimpleReliability.receive`, and calls
:meth:`~SimpleReliability.on_timer` at :meth:`~SimpleReliability
.next_timeout`.

Decisions where the RFC leaves room (see each docstring for the text):

* RTT samples: every transmission has its own sequence number, so an ACK
  names exactly the transmission it answers and its RTT is unambiguous;
  section 6.6.3.1 therefore says "all received ACKs are used".  Karn's rule
  (RFC 6298 section 3) exists to avoid the ambiguity that this design does
  not have, so it is off by default; ``karn=True`` restores the classic
  rule (no sample from a message that was retransmitted).
* Bits of the ``received`` mask acknowledge the messages sent with those
  sequence numbers (without an RTT sample: their ACK time is not known).
  The RFC describes the mask as a way to estimate loss, and defines no fast
  retransmission; none is done (retransmission is by timer only, which also
  keeps to the congestion rules of RFC 5405 that section 6.6.3 requires).
* The window: section 6.6.3.1's stop-and-wait sender allows one
  unacknowledged message, which is the default (``window=1``); a larger
  window is a different sender algorithm, which section 6.6.3 allows.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from reload.wire.base import SLOTTED
from reload.wire.framing import AckFrame, DataFrame, decode_frame

__all__ = [
    "DEFAULT_ACK_GAP",
    "DEFAULT_INITIAL_RTO",
    "DEFAULT_MAX_RTO",
    "DEFAULT_MAX_TRANSMISSIONS",
    "DEFAULT_STALL_RETRANSMISSIONS",
    "RECEIVED_HISTORY",
    "AckGap",
    "Acked",
    "Deliver",
    "Event",
    "Failed",
    "LinkResumed",
    "LinkStalled",
    "RtoEstimator",
    "SendRefused",
    "SimpleReliability",
    "Transmit",
    "WindowFull",
    "received_mask",
]

#: Section 6.6.3.1: "the default value for RTO is 500 ms"; it is the RTO
#: until a first RTT measurement (the ICE STUN RTT, when there is one).
DEFAULT_INITIAL_RTO = 0.5
#: RFC 6298 (2.5): an upper bound on RTO MAY be placed, of at least 60 s.
DEFAULT_MAX_RTO = 60.0
#: Section 6.6.3.1: retransmissions stop when "a total of 5 requests have
#: been sent".
DEFAULT_MAX_TRANSMISSIONS = 5
#: Section 6.6.3.1: "A sender MUST wait 10 ms between receipt of an ACK and
#: transmission of the next message."
DEFAULT_ACK_GAP = 0.010
#: Section 6.6.3.1: with no ACK, three retransmissions mark the link as
#: likely failed (RECOMMENDED: remove it from the Routing Table).
DEFAULT_STALL_RETRANSMISSIONS = 3
#: Section 6.6.2: the receiver keeps the 32 most recent sequence numbers.
RECEIVED_HISTORY = 32

_SEQ_MOD = 1 << 32
_SEQ_MASK = _SEQ_MOD - 1

# RFC 6298 section 2 constants.
_ALPHA = 1 / 8
_BETA = 1 / 4
_K = 4


# -- events ------------------------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class Deliver:
    """A message received in a new data frame, for the layer above."""

    message: bytes

    def __init__(self, message: bytes) -> None:
        object.__setattr__(self, "message", message)


@dataclass(frozen=True, init=False, **SLOTTED)
class Transmit:
    """A frame to send now: an ACK or a retransmission."""

    frame: bytes

    def __init__(self, frame: bytes) -> None:
        object.__setattr__(self, "frame", frame)


@dataclass(frozen=True, init=False, **SLOTTED)
class Acked:
    """The message first sent with ``sequence`` was acknowledged.

    ``rtt`` is the RTT sample taken from this ACK, or None when the message
    was acknowledged by a bit of the ``received`` mask or the sample was
    not used (``karn=True``).
    """

    sequence: int
    rtt: float | None

    def __init__(self, sequence: int, rtt: float | None) -> None:
        object.__setattr__(self, "sequence", sequence)
        object.__setattr__(self, "rtt", rtt)


@dataclass(frozen=True, init=False, **SLOTTED)
class Failed:
    """The message first sent with ``sequence`` was sent the maximum number
    of times without an ACK.  Section 6.6.3.1: the sender SHOULD close the
    connection."""

    sequence: int
    message: bytes

    def __init__(self, sequence: int, message: bytes) -> None:
        object.__setattr__(self, "sequence", sequence)
        object.__setattr__(self, "message", message)


@dataclass(frozen=True, **SLOTTED)
class LinkStalled:
    """No ACK while several retransmissions happened: section 6.6.3.1
    RECOMMENDs removing the link from the Routing Table."""


@dataclass(frozen=True, **SLOTTED)
class LinkResumed:
    """An ACK arrived after :class:`LinkStalled`: the link MAY be restored."""


Event = Deliver | Transmit | Acked | Failed | LinkStalled | LinkResumed


class SendRefused(Exception):
    """:meth:`SimpleReliability.send` cannot send a new message now."""


class WindowFull(SendRefused):
    """As many messages as the window allows are unacknowledged."""


class AckGap(SendRefused):
    """Less than the required gap (10 ms) since the last ACK was received."""


# -- RTO estimation ---------------------------------------------------------------


def _ceil_ms(seconds: float) -> float:
    """Round up to the millisecond (section 6.6.3.1), ignoring float noise."""
    return math.ceil(seconds * 1000.0 - 1e-6) / 1000.0


class RtoEstimator:
    """RFC 6298 section 2, as section 6.6.3.1 adapts it.

    * before any measurement RTO is ``initial_rto`` (section 6.6.3.1's
      500 ms default; RFC 6298 (2.1) would say 1 s);
    * the first measurement R (the ICE STUN RTT, when there is one, else
      the first ACK) gives SRTT = R, RTTVAR = R/2 (2.2);
    * each later R' gives RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'| and then
      SRTT = 7/8 SRTT + 1/8 R' (2.3);
    * RTO = SRTT + max(G, 4 RTTVAR), rounded up to the millisecond instead
      of up to one second (section 6.6.3.1 replaces RFC 6298 (2.4)), and
      at most ``max_rto`` (2.5);
    * on a timeout the RTO backs off by doubling (5.5) until the next
      measurement recomputes it.
    """

    __slots__ = ("granularity", "max_rto", "rto", "rttvar", "srtt")

    def __init__(
        self,
        initial_rto: float = DEFAULT_INITIAL_RTO,
        initial_rtt: float | None = None,
        granularity: float = 0.001,
        max_rto: float = DEFAULT_MAX_RTO,
    ) -> None:
        if initial_rto <= 0 or max_rto <= 0 or granularity < 0:
            raise ValueError("initial_rto and max_rto must be positive, granularity >= 0")
        self.granularity = granularity
        self.max_rto = max_rto
        self.rto = min(initial_rto, max_rto)
        self.srtt: float | None = None
        self.rttvar: float | None = None
        if initial_rtt is not None:
            self.sample(initial_rtt)

    def sample(self, rtt: float) -> float:
        """Take one RTT measurement; return the new RTO."""
        rtt = max(rtt, 0.0)
        if self.srtt is None or self.rttvar is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(self.srtt - rtt)
            self.srtt = (1 - _ALPHA) * self.srtt + _ALPHA * rtt
        self.rto = min(_ceil_ms(self.srtt + max(self.granularity, _K * self.rttvar)), self.max_rto)
        return self.rto

    def backoff(self, previous_wait: float) -> float:
        """The wait before the next retransmission of a message that just
        waited ``previous_wait`` in vain.

        Section 6.6.3.1: "The node MUST double the time to wait after each
        retransmission"; RFC 6298 (5.5): RTO <- RTO * 2.  The message's own
        wait doubles, and the RTO rises to it, so that several messages
        timing out together (window > 1) double it once, not once each.
        """
        wait = min(max(2 * previous_wait, self.rto), self.max_rto)
        self.rto = max(self.rto, wait)
        return wait


# -- receiver side ---------------------------------------------------------------


def received_mask(sequence: int, history: deque[int] | list[int]) -> int:
    """The ``received`` field of the ACK for ``sequence`` (section 6.6.2).

    ``history`` holds the sequence numbers of the (up to 32) frames received
    before this one.  For each such M with N-32 < M < N (mod 2^32), "the N-M
    bit" is set; bit N-M is ``1 << (N-M-1)``, so the least significant bit
    stands for N-1 (the reading of Wireshark's reload-framing dissector).
    """
    mask = 0
    for earlier in history:
        distance = (sequence - earlier) & _SEQ_MASK
        if 0 < distance < RECEIVED_HISTORY:
            mask |= 1 << (distance - 1)
    return mask


# -- the state machine -----------------------------------------------------------


class _Pending:
    """One unacknowledged message."""

    __slots__ = ("deadline", "first_sequence", "message", "sequences", "wait")

    def __init__(self, first_sequence: int, message: bytes, wait: float, deadline: float):
        self.first_sequence = first_sequence
        self.message = message
        self.sequences = [first_sequence]
        self.wait = wait
        self.deadline = deadline


class SimpleReliability:
    """Both ends of Simple Reliability on one association.

    Parameters (defaults from section 6.6.3.1):

    ``window``
        the most unacknowledged messages at a time; 1 is the stop-and-wait
        sender ("A node MUST NOT have more than one unacknowledged message
        on the DTLS connection at a time").
    ``max_transmissions``
        transmissions of one message before :class:`Failed` (5).  With 1,
        there are no retransmissions and the RTO is only a failure
        timeout, as TLS-TCP-FH-NO-ICE uses it (section 6.6.5).
    ``initial_rto``, ``initial_rtt``, ``max_rto``, ``granularity``
        see :class:`RtoEstimator`; ``initial_rtt`` is the RTT of the ICE
        STUN transaction when there was one.
    ``ack_gap``
        seconds between receiving an ACK and sending the next new message
        (10 ms); retransmissions are not held back by it.
    ``stall_after``
        retransmissions without any ACK before :class:`LinkStalled` (3).
    ``karn``
        discard RTT samples of retransmitted messages (off: see the module
        docstring).
    """

    __slots__ = (
        "_by_sequence",
        "_last_ack_at",
        "_next_sequence",
        "_pending",
        "_received",
        "_retransmitted_since_ack",
        "_stalled",
        "ack_gap",
        "estimator",
        "karn",
        "max_transmissions",
        "retransmissions",
        "stall_after",
        "window",
    )

    def __init__(
        self,
        *,
        window: int = 1,
        max_transmissions: int = DEFAULT_MAX_TRANSMISSIONS,
        initial_rto: float = DEFAULT_INITIAL_RTO,
        initial_rtt: float | None = None,
        max_rto: float = DEFAULT_MAX_RTO,
        granularity: float = 0.001,
        ack_gap: float = DEFAULT_ACK_GAP,
        stall_after: int = DEFAULT_STALL_RETRANSMISSIONS,
        karn: bool = False,
    ) -> None:
        if window < 1 or max_transmissions < 1 or stall_after < 1 or ack_gap < 0:
            raise ValueError("window, max_transmissions, stall_after >= 1 and ack_gap >= 0")
        self.window = window
        self.max_transmissions = max_transmissions
        self.ack_gap = ack_gap
        self.stall_after = stall_after
        self.karn = karn
        self.estimator = RtoEstimator(initial_rto, initial_rtt, granularity, max_rto)
        #: Frames sent again after a timeout, for metrics.
        self.retransmissions = 0
        self._next_sequence = 0
        # Unacknowledged messages by first sequence number, in sending order.
        self._pending: dict[int, _Pending] = {}
        # Every sequence number of an unacknowledged message -> (message, sent at).
        self._by_sequence: dict[int, tuple[_Pending, float]] = {}
        self._received: deque[int] = deque(maxlen=RECEIVED_HISTORY)
        self._last_ack_at: float | None = None
        self._retransmitted_since_ack = 0
        self._stalled = False

    # -- introspection ----------------------------------------------------------

    @property
    def rto(self) -> float:
        return self.estimator.rto

    @property
    def outstanding(self) -> int:
        """Messages sent and not yet acknowledged or failed."""
        return len(self._pending)

    @property
    def next_sequence(self) -> int:
        """The sequence number the next frame sent will carry; the one
        :meth:`send` will use is the id in its :class:`Acked`/:class:`Failed`."""
        return self._next_sequence

    def ready_at(self) -> float | None:
        """Earliest time :meth:`send` accepts a new message, or None while
        the window is full (wait for an :class:`Acked` or :class:`Failed`)."""
        if len(self._pending) >= self.window:
            return None
        if self._last_ack_at is None:
            return -math.inf
        return self._last_ack_at + self.ack_gap

    def next_timeout(self) -> float | None:
        """When :meth:`on_timer` has work, or None if nothing is outstanding."""
        if not self._pending:
            return None
        return min(p.deadline for p in self._pending.values())

    # -- sending ------------------------------------------------------------------

    def _take_sequence(self) -> int:
        sequence = self._next_sequence
        self._next_sequence = (sequence + 1) & _SEQ_MASK
        return sequence

    def send(self, message: bytes, now: float) -> bytes:
        """Frame a new message; return the data frame to transmit.

        Raises :class:`WindowFull` or :class:`AckGap` (both
        :class:`SendRefused`) instead of queueing: the caller keeps its own
        queue and uses :meth:`ready_at`.  The message's id in later events
        is the sequence number of this frame (:attr:`next_sequence` before
        the call).
        """
        if len(self._pending) >= self.window:
            raise WindowFull(f"{len(self._pending)} unacknowledged messages, window {self.window}")
        if self._last_ack_at is not None and now < self._last_ack_at + self.ack_gap:
            raise AckGap(
                f"an ACK arrived at {self._last_ack_at}; send at or after "
                f"{self._last_ack_at + self.ack_gap}"
            )
        frame = DataFrame(self._next_sequence, message).encode()  # EncodeError before any change
        sequence = self._take_sequence()
        wait = self.estimator.rto
        pending = _Pending(sequence, message, wait, now + wait)
        self._pending[sequence] = pending
        self._by_sequence[sequence] = (pending, now)
        return frame

    def on_timer(self, now: float) -> list[Event]:
        """Retransmit or fail every message whose wait is over."""
        events: list[Event] = []
        for pending in list(self._pending.values()):
            if pending.deadline > now:
                continue
            if len(pending.sequences) >= self.max_transmissions:
                self._forget(pending)
                events.append(Failed(pending.first_sequence, pending.message))
                continue
            # Section 6.6.3.1: a new sequence number and a doubled wait.
            sequence = self._take_sequence()
            pending.sequences.append(sequence)
            self._by_sequence[sequence] = (pending, now)
            pending.wait = self.estimator.backoff(pending.wait)
            pending.deadline = now + pending.wait
            events.append(Transmit(DataFrame(sequence, pending.message).encode()))
            self.retransmissions += 1
            self._retransmitted_since_ack += 1
            if self._retransmitted_since_ack >= self.stall_after and not self._stalled:
                self._stalled = True
                events.append(LinkStalled())
        return events

    def _forget(self, pending: _Pending) -> None:
        del self._pending[pending.first_sequence]
        for sequence in pending.sequences:
            self._by_sequence.pop(sequence, None)

    # -- receiving ------------------------------------------------------------------

    def receive(self, frame_bytes: bytes, now: float) -> list[Event]:
        """Handle one received frame.

        A data frame is acknowledged at once (section 6.6.2: the receiver
        SHOULD immediately send an ACK) and delivered, unless its sequence
        number is among the 32 most recent, in which case it is a duplicate:
        it is acknowledged again (its first ACK may have been lost) but not
        delivered twice.  Raises :class:`~reload.wire.errors.DecodeError`
        for a frame that does not decode, without changing any state.
        """
        frame = decode_frame(frame_bytes)
        if isinstance(frame, DataFrame):
            return self._on_data(frame)
        return self._on_ack(frame, now)

    def _on_data(self, frame: DataFrame) -> list[Event]:
        sequence = frame.sequence
        history = self._received
        ack = Transmit(AckFrame(sequence, received_mask(sequence, history)).encode())
        if sequence in history:
            return [ack]
        history.append(sequence)
        return [ack, Deliver(frame.message)]

    def _on_ack(self, frame: AckFrame, now: float) -> list[Event]:
        events: list[Event] = []
        self._last_ack_at = now
        self._retransmitted_since_ack = 0
        if self._stalled:
            self._stalled = False
            events.append(LinkResumed())
        entry = self._by_sequence.get(frame.ack_sequence)
        if entry is not None:
            pending, sent_at = entry
            rtt: float | None = None
            if not (self.karn and len(pending.sequences) > 1):
                rtt = max(now - sent_at, 0.0)
                self.estimator.sample(rtt)
            self._forget(pending)
            events.append(Acked(pending.first_sequence, rtt))
        mask = frame.received
        if mask and self._by_sequence:
            n = frame.ack_sequence
            for sequence, (pending, _) in list(self._by_sequence.items()):
                distance = (n - sequence) & _SEQ_MASK
                if (
                    0 < distance <= RECEIVED_HISTORY
                    and mask >> (distance - 1) & 1
                    and pending.first_sequence in self._pending
                ):
                    self._forget(pending)
                    events.append(Acked(pending.first_sequence, None))
        return events
