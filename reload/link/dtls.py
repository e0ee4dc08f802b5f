"""DTLS over UDP with Simple Reliability, No-ICE (RFC 6940 section 6.6.6).

Twisted has no DTLS, so this module drives a pyOpenSSL ``Connection`` with
memory BIOs over one :class:`~twisted.internet.protocol.DatagramProtocol`
per UDP port (:class:`DTLSEndpoint`), which demultiplexes datagrams by
source address to one :class:`DTLSLink` per peer and serves both roles: it
accepts handshakes from anyone and :meth:`DTLSEndpoint.connect` opens links.

Layers, bottom up:

* UDP datagrams of at most ``mtu`` bytes (1200 by default).  OpenSSL is told
  the MTU (``set_ciphertext_mtu``), so it cuts handshake messages into
  records that fit; what it writes to the memory BIO is a byte stream, which
  is split back into DTLS records and packed into datagrams of at most
  ``mtu`` bytes (RFC 6347 section 4.1.1 allows several records per datagram).
* The cookie exchange (RFC 6347 section 4.2.1) before any state: a
  ClientHello from an address without a link is handed to one shared
  listener ``Connection`` and ``DTLSv1_listen``, which answers a
  HelloVerifyRequest whose cookie is an HMAC of the source address under a
  secret that rotates (:class:`CookieJar`).  Only a ClientHello that comes
  back with a valid cookie (the address is reachable) creates a link; the
  listener ``Connection`` becomes that link's and a fresh one takes its place.
* Handshake retransmission by OpenSSL's timer: after every step the link
  asks ``DTLSv1_get_timeout`` and calls ``DTLSv1_handle_timeout`` when it
  expires (OpenSSL measures the expiry on the system clock, so the injected
  clock only decides when to ask).  A handshake that has not finished after
  ``handshakeTimeout`` seconds fails.
* The peer is whatever the handshake verified: the context's verify
  callback (``reload.security.tls``) fails closed, checking the chain, the
  validity and, for outgoing links, the expected Node-ID;
  ``linkUp`` comes only after the handshake finished and
  ``verifiedPeerOf`` produced the peer.
* Framing and Simple Reliability (sections 6.6.2, 6.6.3):
  :class:`reload.wire.reliability.SimpleReliability` ACKs every data frame,
  retransmits after the RTO with a new sequence number and a doubled wait,
  and after ``maxTransmissions`` (5) transmissions the link closes
  (section 6.6.3.1: "the sending node SHOULD close the connection").  After
  three retransmissions without any ACK the link is stalled (section
  6.6.3.1 RECOMMENDS taking it out of the Routing Table): a handler that
  also provides :class:`reload.link.tls.ILinkStallHandler` hears
  ``linkStalled`` and, when ACKs come back, ``linkResumed``.  The sender is
  stop-and-wait (``window=1``, section 6.6.3.1) and waits 10 ms after each
  ACK; messages beyond the window wait in a bounded queue.
* Fragmentation (section 6.7): a message larger than what one record carries
  (``DTLS_get_data_mtu`` minus the 8-byte data frame header) is cut by
  :func:`reload.wire.fragment.fragment` (fragments of at most that size minus
  32 bytes, each framed and acknowledged on its own) and put back together
  by a :class:`reload.wire.fragment.Reassembler` on receipt.

Decisions where the RFCs leave room:

* Reassembly happens on the receiving link, not only at the final
  destination as section 6.7 describes: :class:`ILinkHandler` promises
  whole messages.  The sender may still be any node that fragmented, and a
  forwarding peer simply re-fragments for its next link.
* Duplicates: retransmissions carry new sequence numbers (section 6.6.3.1),
  so when only an ACK was lost the receiver gets the same message again
  under another sequence number, and nothing on the wire tells such a copy
  from an end-to-end retransmission (section 6.2.1: same transaction id,
  same bytes).  A message identical to one received on this link less than
  ``duplicateWindow`` seconds before (500 ms, the default RTO of section
  6.6.3.1) is acknowledged but not delivered again; each such copy restarts
  the window, so that a chain of retransmissions whose waits double is
  followed.  A copy that comes later is delivered again, which section
  6.2.1 already requires receivers to tolerate ("MUST generate
  semantically equivalent responses to retransmissions").  A longer window
  catches longer chains (more transmissions, lossier paths) but may swallow
  an end-to-end retransmission (every 3 s by default, section 10.1) of a
  message that was lost further on; 0 turns suppression off.
* Bad datagrams: a datagram that does not decrypt and authenticate for an
  established link is dropped silently and the link goes on (RFC 6347
  section 4.1.2.7, "invalid records SHOULD be silently discarded"); so is
  anything but a ClientHello from an unknown address.  An authenticated
  record whose frame does not decode, or whose RELOAD message has a
  forwarding header that does not parse or fragments that contradict each
  other, closes that one link ("malformed ..."): its sender is the
  authenticated peer itself.  A fatal DTLS alert closes the link too.
* A ClientHello (epoch 0) with a new client random from the address of an
  established link is a restarted peer: it goes through the same cookie
  exchange, and only once the cookie proves the address (RFC 6347 section
  4.2.8) does the old link close and a new one start.  A late copy of the
  ClientHello that opened the current link (same random) is dropped.
* Idle links: with No-ICE there are no keepalives (section 6.6.6), so a link
  from which no authenticated record arrived for ``idleTimeout`` seconds
  closes.  The layers above keep used links busy (Chord's Update and Ping).
* A handshake in the client role ignores ClientHellos from its peer
  (simultaneous opens are not merged): one link per remote address, and
  :meth:`DTLSEndpoint.connect` to an address that already has a link waits
  for that link instead of starting another.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from automat import TypeMachineBuilder
from OpenSSL import SSL
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from zope.interface import implementer

from reload.link.errors import LinkBusy, LinkClosed
from reload.link.interfaces import ILink, ILinkHandler
from reload.link.tls import HandshakeFailed, ILinkStallHandler
from reload.security.certificates import PeerIdentity
from reload.security.tls import makeContext, prepareConnection, verifiedPeerOf
from reload.security.trust import CertificateRejected, TrustPolicy, VerifiedPeer
from reload.wire.attach import OverlayLinkType
from reload.wire.errors import DecodeError
from reload.wire.fragment import (
    DEFAULT_MAX_REASSEMBLIES,
    DEFAULT_REASSEMBLY_TIMEOUT,
    Reassembler,
    fragment,
)
from reload.wire.framing import DATA_HEADER_SIZE
from reload.wire.header import DEFAULT_MAX_MESSAGE_SIZE
from reload.wire.reliability import (
    DEFAULT_INITIAL_RTO,
    DEFAULT_MAX_TRANSMISSIONS,
    Acked,
    Deliver,
    Event,
    Failed,
    LinkResumed,
    LinkStalled,
    SimpleReliability,
    Transmit,
)
from reload.wire.stun import looksLikeStun

__all__ = [
    "DEFAULT_MTU",
    "CookieJar",
    "DTLSEndpoint",
    "DTLSLink",
    "DTLSSettings",
    "HandshakeFailed",
    "HandshakeTimeout",
    "clientHelloRandom",
    "listenDTLS",
    "packDatagrams",
    "splitRecords",
]

log = Logger()

#: Largest UDP payload sent, DTLS record headers and all (a common safe
#: value below the 1280-byte IPv6 minimum MTU minus IP and UDP headers).
DEFAULT_MTU = 1200
#: TLS plaintext records carry at most 2^14 bytes (RFC 6347 section 4.1,
#: RFC 5246 section 6.2.1).
_MAX_RECORD_PLAINTEXT = 1 << 14
#: RFC 6347 section 4.1: type (1), version (2), epoch (2), sequence (6), length (2).
_RECORD_HEADER = 13
_CONTENT_HANDSHAKE = 22
_HANDSHAKE_CLIENT_HELLO = 1
#: RFC 6347 section 4.2.2: msg_type (1), length (3), message_seq (2),
#: fragment_offset (3), fragment_length (3).
_HANDSHAKE_HEADER = 12
#: client_version (2) comes before the 32-byte random in a ClientHello.
_RANDOM_AT = _RECORD_HEADER + _HANDSHAKE_HEADER + 2
_RANDOM_SIZE = 32
_READ_SIZE = 1 << 16
#: Digests of recent messages kept for duplicate suppression, at most.
_MAX_REMEMBERED = 4096

Address = tuple[str, int]


# The parts of Twisted's interfaces used here, as typing Protocols (zope
# interfaces are opaque to mypy): a reactor or a task.Clock provides them.


class DelayedCall(Protocol):
    def getTime(self) -> float: ...
    def active(self) -> bool: ...
    def cancel(self) -> None: ...
    def reset(self, secondsFromNow: float) -> None: ...


class Clock(Protocol):
    """``IReactorTime``, as far as the links use it."""

    def seconds(self) -> float: ...
    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> DelayedCall: ...


class ListeningPort(Protocol):
    def stopListening(self) -> Deferred[None] | None: ...
    def getHost(self) -> Any: ...


class UDPReactor(Clock, Protocol):
    """``IReactorUDP`` and ``IReactorTime``."""

    def listenUDP(
        self, port: int, protocol: DatagramProtocol, interface: str = "", maxPacketSize: int = 8192
    ) -> ListeningPort: ...


class _UDPTransport(Protocol):
    def write(self, packet: bytes, addr: Address) -> None: ...


class HandshakeTimeout(HandshakeFailed):
    """The handshake did not finish within ``handshakeTimeout`` seconds."""


@dataclass(frozen=True, slots=True)
class DTLSSettings:
    """Tunables of a :class:`DTLSEndpoint` and its links.

    ``mtu``
        the largest UDP payload sent (DTLS records included).
    ``handshakeTimeout``
        seconds a handshake may take, in either role, before it fails.
    ``idleTimeout``
        seconds without an authenticated record before a link closes
        (None: never); as for TLS links, three chord-update-intervals.
    ``window``, ``maxTransmissions``, ``initialRto``
        Simple Reliability (section 6.6.3.1): unacknowledged messages at a
        time (1, stop-and-wait), transmissions before the link fails (5),
        RTO before the first RTT sample (500 ms; "Nodes MAY use smaller
        values of RTO if it is known that all nodes are within the local
        network").
    ``maxQueuedFrames``
        frames (messages or fragments) waiting behind the window before
        :meth:`DTLSLink.send` raises :class:`LinkBusy`.
    ``maxMessageSize``, ``reassemblyTimeout``, ``maxReassemblies``
        the receiving side of section 6.7 (overlay max-message-size, 15 s
        and concurrent partial messages).
    ``duplicateWindow``
        seconds after a message during which an identical one is taken for
        its link retransmission and not delivered (see the module docstring).
    ``maxHandshakes``
        incoming handshakes (from addresses that passed the cookie check)
        in progress at a time; more ClientHellos are dropped.
    ``cookieSecretLifetime``
        seconds between rotations of the cookie secret; a cookie stays
        valid for one to two lifetimes.
    ``applicationData``
        the links carry an application's chunks (AppAttach over ICE, RFC
        6940 section 6.5.2), not RELOAD messages: each chunk goes whole in
        one data frame (at most :attr:`DTLSLink.messageMtu` bytes) and is
        delivered as it arrives, without the section 6.7 fragmentation
        and reassembly or the duplicate suppression of RELOAD messages
        (:class:`reload.link.appstream.ApplicationStream` numbers its
        chunks and drops the copies itself).
    """

    mtu: int = DEFAULT_MTU
    handshakeTimeout: float = 30.0
    # Twice CHORD-RELOAD's chord-ping-interval (3600 s, section 10.7.4.3),
    # so a finger that is only pinged keeps its link.
    idleTimeout: float | None = 7200.0
    window: int = 1
    maxTransmissions: int = DEFAULT_MAX_TRANSMISSIONS
    initialRto: float = DEFAULT_INITIAL_RTO
    maxQueuedFrames: int = 1024
    maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE
    reassemblyTimeout: float = DEFAULT_REASSEMBLY_TIMEOUT
    maxReassemblies: int = DEFAULT_MAX_REASSEMBLIES
    duplicateWindow: float = DEFAULT_INITIAL_RTO
    maxHandshakes: int = 256
    cookieSecretLifetime: float = 60.0
    applicationData: bool = False

    def __post_init__(self) -> None:
        if not 256 <= self.mtu <= 65507:
            raise ValueError(f"mtu must be within 256..65507, got {self.mtu}")
        if self.handshakeTimeout <= 0 or self.cookieSecretLifetime <= 0:
            raise ValueError("handshakeTimeout and cookieSecretLifetime must be positive")
        if self.idleTimeout is not None and self.idleTimeout <= 0:
            raise ValueError("idleTimeout must be positive or None")
        if self.maxQueuedFrames < 1 or self.maxHandshakes < 1 or self.duplicateWindow < 0:
            raise ValueError("maxQueuedFrames, maxHandshakes >= 1 and duplicateWindow >= 0")


# -- DTLS records and datagrams ---------------------------------------------------


def splitRecords(data: bytes) -> list[bytes] | None:
    """Cut what OpenSSL wrote to its memory BIO into DTLS records, or None
    if it is not a sequence of whole DTLS 1.0/1.2 records."""
    records: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < _RECORD_HEADER:
            return None
        stop = pos + _RECORD_HEADER + int.from_bytes(data[pos + 11 : pos + 13], "big")
        if stop > end:
            return None
        records.append(data[pos:stop])
        pos = stop
    return records


def packDatagrams(records: list[bytes], mtu: int) -> list[bytes]:
    """Pack records, in order, into as few datagrams of at most ``mtu``
    bytes as greedy packing gives (a record larger than ``mtu`` goes alone)."""
    datagrams: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if current and size + len(record) > mtu:
            datagrams.append(b"".join(current))
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        datagrams.append(b"".join(current))
    return datagrams


def clientHelloRandom(datagram: bytes) -> bytes | None:
    """The client random of an epoch-0 ClientHello at the start of
    ``datagram`` (its first fragment), or None if it starts otherwise."""
    if (
        len(datagram) < _RANDOM_AT + _RANDOM_SIZE
        or datagram[0] != _CONTENT_HANDSHAKE
        or datagram[3:5] != b"\x00\x00"
        or datagram[_RECORD_HEADER] != _HANDSHAKE_CLIENT_HELLO
        or datagram[_RECORD_HEADER + 6 : _RECORD_HEADER + 9] != b"\x00\x00\x00"
    ):
        return None
    return datagram[_RANDOM_AT : _RANDOM_AT + _RANDOM_SIZE]


def _drain(connection: SSL.Connection) -> bytes:
    """Everything OpenSSL has written to its outgoing memory BIO."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = connection.bio_read(_READ_SIZE)
        except SSL.WantReadError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


# -- cookies --------------------------------------------------------------------------


class CookieJar:
    """Stateless DTLS cookies (RFC 6347 section 4.2.1): HMAC-SHA256 of the
    client's address under a secret that is replaced every ``lifetime``
    seconds; a cookie made under the current or the previous secret is valid."""

    def __init__(
        self,
        clock: Clock,
        lifetime: float = 60.0,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._entropy = entropy
        self._current = entropy(32)
        self._previous: bytes | None = None
        self._since = clock.seconds()
        #: Cookies handed out and cookies checked, for metrics and tests.
        self.made = 0
        self.accepted = 0
        self.rejected = 0

    def _rotate(self) -> None:
        now = self._clock.seconds()
        age = now - self._since
        if age < self._lifetime:
            return
        self._previous = self._current if age < 2 * self._lifetime else None
        self._current = self._entropy(32)
        self._since = now

    @staticmethod
    def _mac(secret: bytes, address: Address) -> bytes:
        return hmac.new(secret, f"{address[0]}|{address[1]}".encode(), hashlib.sha256).digest()

    def cookie(self, address: Address) -> bytes:
        """The cookie to send to ``address`` now."""
        self._rotate()
        self.made += 1
        return self._mac(self._current, address)

    def check(self, address: Address, cookie: bytes) -> bool:
        """Whether ``cookie`` was made for ``address`` under a live secret."""
        self._rotate()
        for secret in (self._current, self._previous):
            if secret is not None and hmac.compare_digest(cookie, self._mac(secret, address)):
                self.accepted += 1
                return True
        self.rejected += 1
        return False


# -- timers -------------------------------------------------------------------------------


class _Timer:
    """One rescheduleable call on the injected clock."""

    __slots__ = ("_call", "_clock", "_function")

    def __init__(self, clock: Clock, function: Callable[[], None]) -> None:
        self._clock = clock
        self._function = function
        self._call: DelayedCall | None = None

    def at(self, when: float) -> None:
        """Call the function at ``when`` (clock seconds), instead of any
        earlier schedule."""
        delay = max(0.0, when - self._clock.seconds())
        call = self._call
        if call is not None and call.active():
            if abs(call.getTime() - when) > 1e-6:
                call.reset(delay)
            return
        self._call = self._clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._call = None
        self._function()

    def cancel(self) -> None:
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()


# -- the link lifecycle ---------------------------------------------------------------


class _Lifecycle(Protocol):
    """handshaking -> up -> closed, or handshaking -> closed.

    The outputs only change the link's own state; the layer above is told
    (linkUp, linkClosed, the connect Deferreds) after the input returned,
    so that its callbacks may use the link and the machine freely.
    """

    def handshakeDone(self, peer: VerifiedPeer) -> bool:
        "The handshake finished and the peer was verified; True if now up."

    def lose(self, reason: str, notify: bool) -> bool | None:
        """The link ends (``notify``: with a close_notify); True if it was
        up, False if it never came up, None if it had closed already."""


# -- the link ---------------------------------------------------------------------------


@implementer(ILink)
class DTLSLink:
    """One DTLS association with one peer address (section 6.6.6).

    Made by :class:`DTLSEndpoint`; the layer above gets it in
    :meth:`ILinkHandler.linkUp` (and from :meth:`DTLSEndpoint.connect`).
    """

    linkType = OverlayLinkType.DTLS_UDP_SR_NO_ICE

    def __init__(
        self,
        endpoint: DTLSEndpoint,
        connection: SSL.Connection,
        address: Address,
        isClient: bool,
        expectedNodeId: bytes | None = None,
    ) -> None:
        settings = endpoint.settings
        self._endpoint = endpoint
        self._clock = endpoint.clock
        self._connection = connection
        self._settings = settings
        self.address = address
        self.isClient = isClient
        self.expectedNodeId = expectedNodeId
        #: The VerifiedPeer of the other side, once the link is up.
        self.peer: VerifiedPeer | None = None
        self.closeReason: str | None = None
        self.clientRandom: bytes | None = None
        self._handshakeComplete = False
        self._timedOut = False
        self._isUp = False
        self._messageMtu = settings.mtu  # replaced by the record size after the handshake
        self._reliability = SimpleReliability(
            window=settings.window,
            max_transmissions=settings.maxTransmissions,
            initial_rto=settings.initialRto,
        )
        self._reassembler = Reassembler(
            max_message_size=settings.maxMessageSize,
            max_reassemblies=settings.maxReassemblies,
            timeout=settings.reassemblyTimeout,
        )
        self._queue: deque[bytes] = deque()
        self._recent: OrderedDict[bytes, float] = OrderedDict()
        self._waiters: list[tuple[Deferred[DTLSLink], bytes | None]] = []
        now = self._clock.seconds()
        self.startedAt = now
        self._lastHeard = now
        #: Section 6.6.3.1: no ACK for three retransmissions; the layer
        #: above may take the link out of its routing table meanwhile.
        self.stalled = False
        #: Counters for metrics and tests.
        self.messagesSent = 0
        self.messagesReceived = 0
        self.duplicatesSuppressed = 0
        self._dtlsTimer = _Timer(self._clock, self._onDtlsTimer)
        self._srTimer = _Timer(self._clock, self._onReliabilityTimer)
        self._pumpTimer = _Timer(self._clock, self._pump)
        self._idleTimer = _Timer(self._clock, self._onIdleTimer)
        self._handshakeTimer = _Timer(self._clock, self._onHandshakeTimeout)
        self._life: _Lifecycle = _LinkMachine(self)

    def __repr__(self) -> str:
        role = "client" if self.isClient else "server"
        return f"<DTLSLink {role} {self.address[0]}:{self.address[1]}>"

    # -- ILink ------------------------------------------------------------------------

    @property
    def rto(self) -> float | None:
        """RFC 6298 RTO from the ACKs, or None before the first RTT sample."""
        if self._reliability.estimator.srtt is None:
            return None
        return self._reliability.rto

    @property
    def up(self) -> bool:
        return self._isUp

    @property
    def established(self) -> bool:
        """The DTLS handshake finished (the link may be up or closed since)."""
        return self._handshakeComplete

    @property
    def messageMtu(self) -> int:
        """The largest RELOAD message (or fragment) sent in one datagram."""
        return self._messageMtu

    @property
    def retransmissions(self) -> int:
        return self._reliability.retransmissions

    def send(self, message: bytes) -> None:
        """Queue one encoded RELOAD message; see :meth:`ILink.send`.

        A message larger than :attr:`messageMtu` is fragmented (section
        6.7); one that cannot be (too short a body for 256-byte fragments,
        or a header leaving too little room) goes whole in one record, and
        IP fragmentation is left to happen.  Raises ValueError for a message
        that fits no DTLS record and cannot be fragmented.
        """
        if not self._isUp:
            state = "not up yet" if self.closeReason is None else f"closed: {self.closeReason}"
            raise LinkClosed(f"link to {self.address[0]}:{self.address[1]} is {state}")
        self._enqueue(message)

    def close(self) -> None:
        """Close the link (with a DTLS close_notify)."""
        self._lose("closed locally", True)

    def whenUp(self, expectedNodeId: bytes | None = None) -> Deferred[DTLSLink]:
        """A Deferred that fires with this link when it is up (and its peer
        has ``expectedNodeId``), or fails with :class:`HandshakeFailed`."""
        if self.closeReason is not None:
            return fail(HandshakeFailed(f"link to {self.address} closed: {self.closeReason}"))
        if self.up:
            problem = self._peerProblem(expectedNodeId)
            if problem is not None:
                return fail(HandshakeFailed(problem))
            return succeed(self)
        d: Deferred[DTLSLink] = Deferred()
        self._waiters.append((d, expectedNodeId))
        return d

    # -- handshake ------------------------------------------------------------------

    def start(self) -> None:
        """Begin (client) or continue (server, after the cookie exchange)
        the handshake."""
        self._handshakeTimer.at(self.startedAt + self._settings.handshakeTimeout)
        self._advanceHandshake()
        self._flush()
        self._armDtlsTimer()

    def _advanceHandshake(self) -> None:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            self._flush()  # the alert, if OpenSSL made one
            self._lose(f"DTLS handshake failed: {_describe(exc)}", False)
            return
        self._handshakeComplete = True
        self._handshakeTimer.cancel()
        self._endpoint._incoming.discard(self)
        try:
            peer = verifiedPeerOf(self._connection)
        except CertificateRejected as exc:
            # Fail closed: a peer that cannot be described is not verified.
            self._lose(f"peer not verified: {exc}", True)
            return
        problem = self._peerProblem(self.expectedNodeId, peer)
        if problem is not None:
            self._lose(problem, True)
            return
        self.clientRandom = self._connection.client_random()
        self._messageMtu = self._connection.get_cleartext_mtu() - DATA_HEADER_SIZE
        if self._life.handshakeDone(peer):
            self._announceUp()

    def _peerProblem(
        self, expectedNodeId: bytes | None, peer: VerifiedPeer | None = None
    ) -> str | None:
        if expectedNodeId is None:
            return None
        peer = self.peer if peer is None else peer
        nodeIds = () if peer is None else peer.nodeIds
        if expectedNodeId in nodeIds:
            return None
        return (
            f"peer at {self.address} has Node-IDs {[n.hex() for n in nodeIds]}, "
            f"expected {expectedNodeId.hex()}"
        )

    def _onHandshakeTimeout(self) -> None:
        if not self._handshakeComplete:
            self._timedOut = True
            self._lose(f"DTLS handshake timed out after {self._settings.handshakeTimeout} s", False)

    def _armDtlsTimer(self) -> None:
        if self.closeReason is not None:
            return
        timeout = self._connection.DTLSv1_get_timeout()
        if timeout is None:
            self._dtlsTimer.cancel()
        else:
            # A millisecond late, so that OpenSSL's own clock agrees it expired.
            self._dtlsTimer.at(self._clock.seconds() + timeout + 0.001)

    def _onDtlsTimer(self) -> None:
        if self.closeReason is not None:
            return
        try:
            self._connection.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._lose(f"DTLS retransmission failed: {_describe(exc)}", False)
            return
        self._flush()
        self._armDtlsTimer()

    def _becameUp(self, peer: VerifiedPeer) -> None:
        self.peer = peer
        self._isUp = True
        self._lastHeard = self._clock.seconds()
        self._armIdleTimer()

    def _announceUp(self) -> None:
        log.info(
            "DTLS link up: {link} ({cipher})",
            link=self,
            cipher=self._connection.get_cipher_name(),
        )
        self._endpoint._linkUp(self)
        waiters, self._waiters = self._waiters, []
        for d, expected in waiters:
            problem = self._peerProblem(expected)
            if self.closeReason is not None:
                d.errback(HandshakeFailed(f"link to {self.address} closed: {self.closeReason}"))
            elif problem is None:
                d.callback(self)
            else:
                d.errback(HandshakeFailed(problem))

    # -- receiving --------------------------------------------------------------------

    def datagramReceived(self, datagram: bytes) -> None:
        """One UDP datagram from the peer's address."""
        if self.closeReason is not None or not datagram:
            return
        try:
            self._connection.bio_write(datagram)
        except SSL.Error as exc:
            self._lose(f"DTLS error: {_describe(exc)}", False)
            return
        if not self._handshakeComplete:
            self._advanceHandshake()
            if not self._handshakeComplete or self.closeReason is not None:
                self._flush()
                self._armDtlsTimer()
                return
        self._readRecords()
        if self.closeReason is None:
            self._flush()
            self._armDtlsTimer()

    def _readRecords(self) -> None:
        while self.closeReason is None:
            try:
                plaintext = self._connection.read(_READ_SIZE)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self._lose("closed by peer (close_notify)", False)
                return
            except SSL.Error as exc:
                self._flush()
                self._lose(f"DTLS error: {_describe(exc)}", False)
                return
            now = self._clock.seconds()
            self._lastHeard = now
            try:
                events = self._reliability.receive(plaintext, now)
            except DecodeError as exc:
                self._lose(f"malformed frame from peer: {exc}", True)
                return
            self._handle(events)

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if self.closeReason is not None:
                return
            if isinstance(event, Transmit):
                self._writeRecord(event.frame)
            elif isinstance(event, Deliver):
                self._deliver(event.message)
            elif isinstance(event, Failed):
                self._lose(
                    f"no ACK after {self._settings.maxTransmissions} transmissions "
                    "(RFC 6940 section 6.6.3.1)",
                    True,
                )
                return
            elif isinstance(event, LinkStalled):
                self.stalled = True
                log.warn("DTLS link {link} stalled: no ACK for 3 retransmissions", link=self)
                self._endpoint._linkStalled(self, True)
            elif isinstance(event, LinkResumed):
                self.stalled = False
                log.info("DTLS link {link} resumed", link=self)
                self._endpoint._linkStalled(self, False)
            else:
                assert isinstance(event, Acked)
        if self.closeReason is None:
            self._pump()

    def _deliver(self, message: bytes) -> None:
        if self._settings.applicationData:
            self.messagesReceived += 1
            self._endpoint._messageReceived(self, message)
            return
        now = self._clock.seconds()
        recent = self._recent
        horizon = now - self._settings.duplicateWindow
        while recent:
            oldest = next(iter(recent))
            if recent[oldest] > horizon:
                break
            del recent[oldest]
        digest = hashlib.blake2b(message, digest_size=16).digest()
        if digest in recent:
            # A retransmission whose ACK was lost: its next copy, if any,
            # comes after a doubled wait, so the window restarts.
            self.duplicatesSuppressed += 1
            recent[digest] = now
            recent.move_to_end(digest)
            return
        if self._settings.duplicateWindow > 0:
            recent[digest] = now
            if len(recent) > _MAX_REMEMBERED:
                recent.popitem(last=False)
        try:
            whole = self._reassembler.feed(message, now)
        except DecodeError as exc:
            self._lose(f"malformed message from peer: {exc}", True)
            return
        if whole is None:
            return
        self.messagesReceived += 1
        self._endpoint._messageReceived(self, whole)

    # -- sending ---------------------------------------------------------------------

    def _enqueue(self, message: bytes) -> None:
        limit = self._messageMtu
        if self._settings.applicationData:
            if len(message) > limit:
                raise ValueError(f"an application chunk of {len(message)} bytes exceeds {limit}")
            pieces = [message]
        else:
            pieces = [message] if len(message) <= limit else fragment(message, limit)
        for piece in pieces:
            if len(piece) + DATA_HEADER_SIZE > _MAX_RECORD_PLAINTEXT:
                raise ValueError(
                    f"a message of {len(message)} bytes cannot be fragmented (section 6.7) "
                    f"and does not fit one DTLS record"
                )
        if len(self._queue) + len(pieces) > self._settings.maxQueuedFrames:
            raise LinkBusy(f"{len(self._queue)} frames already wait on the link to {self.address}")
        self._queue.extend(pieces)
        self.messagesSent += 1
        self._pump()

    def _pump(self) -> None:
        if self.closeReason is not None or not self._handshakeComplete:
            return
        reliability = self._reliability
        now = self._clock.seconds()
        while self._queue:
            ready = reliability.ready_at()
            if ready is None:
                break  # the window is full: an Acked or a Failed comes first
            if ready > now:
                self._pumpTimer.at(ready)  # section 6.6.3.1: 10 ms after an ACK
                break
            self._writeRecord(reliability.send(self._queue.popleft(), now))
            if self.closeReason is not None:
                return
        self._armReliabilityTimer()

    def _armReliabilityTimer(self) -> None:
        when = self._reliability.next_timeout()
        if when is None or self.closeReason is not None:
            self._srTimer.cancel()
        else:
            self._srTimer.at(when)

    def _onReliabilityTimer(self) -> None:
        if self.closeReason is None:
            self._handle(self._reliability.on_timer(self._clock.seconds()))
            self._armReliabilityTimer()

    def _writeRecord(self, frame: bytes) -> None:
        try:
            self._connection.write(frame)
        except SSL.Error as exc:
            self._lose(f"DTLS error while sending: {_describe(exc)}", False)
            return
        self._flush()

    def _flush(self) -> None:
        data = _drain(self._connection)
        if data:
            self._endpoint._sendRecords(data, self.address)

    # -- idle and close -----------------------------------------------------------------

    def _armIdleTimer(self) -> None:
        idle = self._settings.idleTimeout
        if idle is not None:
            self._idleTimer.at(self._lastHeard + idle)

    def _onIdleTimer(self) -> None:
        idle = self._settings.idleTimeout
        if idle is None or self.closeReason is not None:
            return
        if self._clock.seconds() - self._lastHeard >= idle:
            self._lose(f"idle for {idle} s", True)
        else:
            self._armIdleTimer()

    def _lose(self, reason: str, notify: bool) -> None:
        """End the link, then tell whoever waits on it."""
        wasUp = self._life.lose(reason, notify)
        if wasUp is None:
            return
        waiters, self._waiters = self._waiters, []
        error = HandshakeTimeout if self._timedOut else HandshakeFailed
        for d, _ in waiters:
            d.errback(error(f"link to {self.address} failed: {reason}"))
        if wasUp:
            log.info("DTLS link {link} closed: {reason}", link=self, reason=reason)
            self._endpoint._linkClosed(self, reason)
        else:
            log.info("DTLS handshake with {link} failed: {reason}", link=self, reason=reason)

    def _teardown(self, reason: str, notify: bool) -> None:
        self.closeReason = reason
        self._isUp = False
        for timer in (
            self._dtlsTimer,
            self._srTimer,
            self._pumpTimer,
            self._idleTimer,
            self._handshakeTimer,
        ):
            timer.cancel()
        if notify:
            with contextlib.suppress(SSL.Error):
                self._connection.shutdown()
            self._flush()
        self._queue.clear()
        self._endpoint._forget(self)


_builder = TypeMachineBuilder(_Lifecycle, DTLSLink)
_handshaking = _builder.state("handshaking")
_up = _builder.state("up")
_closed = _builder.state("closed")


@_handshaking.upon(_Lifecycle.handshakeDone).to(_up)
def _becameUp(life: _Lifecycle, link: DTLSLink, peer: VerifiedPeer) -> bool:
    link._becameUp(peer)
    return True


@_handshaking.upon(_Lifecycle.lose).to(_closed)
def _neverUp(life: _Lifecycle, link: DTLSLink, reason: str, notify: bool) -> bool | None:
    link._teardown(reason, notify)
    return False


@_up.upon(_Lifecycle.lose).to(_closed)
def _wentDown(life: _Lifecycle, link: DTLSLink, reason: str, notify: bool) -> bool | None:
    link._teardown(reason, notify)
    return True


_closed.upon(_Lifecycle.lose).loop().returns(None)
_closed.upon(_Lifecycle.handshakeDone).loop().returns(False)

_LinkMachine = _builder.build()


def _describe(exc: SSL.Error) -> str:
    """A one-line description of a pyOpenSSL error."""
    args = exc.args[0] if exc.args else None
    if isinstance(args, list) and args:
        return "; ".join(str(part[-1]) if isinstance(part, tuple) else str(part) for part in args)
    return str(exc) or type(exc).__name__


# -- the endpoint ------------------------------------------------------------------------


class _Listener:
    """The cookie exchange (RFC 6347 section 4.2.1) without per-address state.

    One listener ``Connection`` answers every ClientHello from an address
    without a link; ``DTLSv1_listen`` sends the HelloVerifyRequest (the
    cookie callbacks read :attr:`address`) or, for a valid cookie, returns
    and the ``Connection`` is handed over to a new link.
    """

    def __init__(self, endpoint: DTLSEndpoint) -> None:
        self._endpoint = endpoint
        self.address: Address = ("", 0)
        self._connection = self._fresh()

    def _fresh(self) -> SSL.Connection:
        return self._endpoint._newConnection(isClient=False)

    def offer(self, address: Address, datagram: bytes) -> SSL.Connection | None:
        """Run one ClientHello through the cookie check; return the
        Connection to continue the handshake on, or None."""
        connection = self._connection
        self.address = address
        try:
            connection.bio_write(datagram)
            connection.DTLSv1_listen()
        except SSL.WantReadError:
            reply = _drain(connection)
            if reply:
                self._endpoint.helloVerifyRequests += 1
                self._endpoint._sendRecords(reply, address)
            return None
        except SSL.Error:
            # Not a ClientHello OpenSSL would answer: start over clean.
            self._connection = self._fresh()
            self._endpoint.droppedDatagrams += 1
            return None
        self._connection = self._fresh()
        return connection


class DTLSEndpoint(DatagramProtocol):
    """All DTLS-UDP-SR-NO-ICE links of one UDP port, in both roles.

    ``identity`` is this node's certificate and key, ``trust`` the overlay's
    certificate rules: the endpoint makes its own DTLS context with
    :func:`reload.security.tls.makeContext` (the one fail-closed verify
    callback) and adds the cookie callbacks to it.  ``handler`` (an
    :class:`~reload.link.interfaces.ILinkHandler`) hears of every link,
    accepted or connected.  ``clock`` is the injected ``IReactorTime``.
    """

    def __init__(
        self,
        clock: Clock,
        identity: PeerIdentity,
        trust: TrustPolicy,
        handler: ILinkHandler,
        settings: DTLSSettings | None = None,
    ) -> None:
        self.clock = clock
        self.settings = settings if settings is not None else DTLSSettings()
        self.handler = handler
        self.identity = identity
        context = makeContext(identity, trust, method=SSL.DTLS_METHOD)
        context.set_options(SSL.OP_NO_QUERY_MTU)
        self._context = context
        self.cookies = CookieJar(clock, self.settings.cookieSecretLifetime)
        context.set_cookie_generate_callback(self._makeCookie)
        context.set_cookie_verify_callback(self._checkCookie)
        self._listener = _Listener(self)
        self._links: dict[Address, DTLSLink] = {}
        # Links accepted after the cookie exchange whose handshake goes on.
        self._incoming: set[DTLSLink] = set()
        self.port: ListeningPort | None = None
        #: Counters for metrics and tests.
        self.helloVerifyRequests = 0
        self.droppedDatagrams = 0
        self.refusedHandshakes = 0
        #: Given every STUN datagram that arrives on this port (RFC 7983
        #: demultiplexing: ICE checks and the STUN server of RFC 6940
        #: section 6.5.1 share the port with the links); None drops them.
        self.stunReceived: Callable[[bytes, Address], None] | None = None
        #: Peers reached through our TURN relay (RFC 6940 section 6.5.1.5):
        #: what goes to them is handed to their route (a TURN client's
        #: Send indication) instead of the socket.
        self.relayRoutes: dict[Address, Callable[[bytes, Address], None]] = {}

    # -- public API -------------------------------------------------------------------

    @property
    def links(self) -> dict[Address, DTLSLink]:
        """Every link by peer address (handshaking ones too): a copy."""
        return dict(self._links)

    def connect(self, host: str, port: int, expectedNodeId: bytes) -> Deferred[DTLSLink]:
        """Open (or reuse) the link to ``host``:``port`` (an IP address);
        fires with it once it is up and its peer has ``expectedNodeId``,
        or fails with :class:`HandshakeFailed`."""
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            return fail(ValueError(f"{host!r} is not an IP address"))
        if self.transport is None:
            return fail(LinkClosed("the DTLS endpoint is not listening"))
        address = (host, port)
        existing = self._links.get(address)
        if existing is not None:
            return existing.whenUp(expectedNodeId)
        connection = self._newConnection(isClient=True, expectedNodeId=expectedNodeId)
        link = DTLSLink(self, connection, address, isClient=True, expectedNodeId=expectedNodeId)
        self._links[address] = link
        d = link.whenUp(expectedNodeId)
        link.start()
        return d

    def closeAll(self, reason: str = "endpoint stopped", notify: bool = True) -> None:
        """Close every link (handshaking ones fail); ``notify`` sends each
        peer a close_notify alert."""
        for link in list(self._links.values()):
            link._lose(reason, notify)

    def stop(self) -> Deferred[None]:
        """Close every link and stop listening."""
        self.closeAll()
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        result = port.stopListening()
        if isinstance(result, Deferred):
            return result.addCallback(lambda _: None)
        return succeed(None)

    # -- DatagramProtocol -------------------------------------------------------------

    def stopProtocol(self) -> None:
        # The socket is gone: no close_notify can leave any more.
        self.closeAll("UDP port closed", notify=False)

    def relayedReceived(
        self, datagram: bytes, address: Address, route: Callable[[bytes, Address], None]
    ) -> None:
        """A datagram ``address`` sent to our TURN relay: handled as if it
        came from ``address``, which is then answered through ``route``
        (unless a direct link to that address exists)."""
        link = self._links.get(address)
        if link is None or address in self.relayRoutes:
            self.relayRoutes[address] = route
            self.datagramReceived(datagram, address)

    def sendDatagram(self, datagram: bytes, address: Address) -> None:
        """Send one datagram (a STUN message) from this port."""
        route = self.relayRoutes.get(address)
        if route is not None:
            route(datagram, address)
            return
        if self.transport is None:
            return
        try:
            cast(_UDPTransport, self.transport).write(datagram, address)
        except OSError as exc:
            log.debug("UDP send to {address} failed: {exc}", address=address, exc=exc)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        address: Address = (addr[0], addr[1])
        if not datagram:
            self.droppedDatagrams += 1
            return
        if looksLikeStun(datagram):
            if self.stunReceived is None:
                self.droppedDatagrams += 1
            else:
                self.stunReceived(datagram, address)
            return
        # OpenSSL may check the cookie again while a new link processes its
        # ClientHello: the callbacks read the address of the current datagram.
        self._listener.address = address
        link = self._links.get(address)
        if link is not None:
            random = clientHelloRandom(datagram)
            if random is not None and (link.established or link.isClient):
                if link.established and random != link.clientRandom:
                    self._restarted(link, address, datagram)
                else:
                    # A late copy of the ClientHello that opened this link,
                    # or a simultaneous open (ours is on its way): ignored.
                    self.droppedDatagrams += 1
                return
            link.datagramReceived(datagram)
            return
        if clientHelloRandom(datagram) is None:
            self.droppedDatagrams += 1
            return
        if len(self._incoming) >= self.settings.maxHandshakes:
            self.refusedHandshakes += 1
            return
        connection = self._listener.offer(address, datagram)
        if connection is not None:
            self._accept(address, connection)

    def _newConnection(self, isClient: bool, expectedNodeId: bytes | None = None) -> SSL.Connection:
        """A Connection with memory BIOs, registered for the verify callback."""
        connection = SSL.Connection(self._context, None)
        if isClient:
            connection.set_connect_state()
        else:
            connection.set_accept_state()
        connection.set_ciphertext_mtu(self.settings.mtu)
        prepareConnection(
            connection, cast(Any, self.clock), isClient=isClient, expectedNodeId=expectedNodeId
        )
        return connection

    def _makeCookie(self, connection: SSL.Connection) -> bytes:
        return self.cookies.cookie(self._listener.address)

    def _checkCookie(self, connection: SSL.Connection, cookie: bytes) -> bool:
        return self.cookies.check(self._listener.address, cookie)

    def _restarted(self, link: DTLSLink, address: Address, datagram: bytes) -> None:
        connection = self._listener.offer(address, datagram)
        if connection is None:
            return
        link._lose(
            "peer restarted: a new handshake from its address (RFC 6347 section 4.2.8)", False
        )
        self._accept(address, connection)

    def _accept(self, address: Address, connection: SSL.Connection) -> None:
        link = DTLSLink(self, connection, address, isClient=False)
        self._links[address] = link
        self._incoming.add(link)
        link.start()

    # -- from the links ---------------------------------------------------------------

    def _sendRecords(self, data: bytes, address: Address) -> None:
        if self.transport is None:
            return
        transport = cast(_UDPTransport, self.transport)
        mtu = self.settings.mtu
        records = splitRecords(data)
        datagrams = [data] if records is None else packDatagrams(records, mtu)
        route = self.relayRoutes.get(address)
        for datagram in datagrams:
            if route is not None:
                route(datagram, address)
                continue
            try:
                transport.write(datagram, address)
            except OSError as exc:
                # UDP: a send error is a lost datagram; retransmission copes.
                log.debug("UDP send to {address} failed: {exc}", address=address, exc=exc)

    def _forget(self, link: DTLSLink) -> None:
        self._incoming.discard(link)
        if self._links.get(link.address) is link:
            del self._links[link.address]

    def _linkUp(self, link: DTLSLink) -> None:
        try:
            self.handler.linkUp(link)
        except Exception:
            log.failure("linkUp handler failed for {link}", link=link)

    def _messageReceived(self, link: DTLSLink, message: bytes) -> None:
        try:
            self.handler.messageReceived(link, message)
        except Exception:
            log.failure("messageReceived handler failed for {link}", link=link)

    def _linkStalled(self, link: DTLSLink, stalled: bool) -> None:
        if not ILinkStallHandler.providedBy(self.handler):
            return
        handler = ILinkStallHandler(self.handler)
        try:
            if stalled:
                handler.linkStalled(link)
            else:
                handler.linkResumed(link)
        except Exception:
            log.failure("link stall handler failed for {link}", link=link)

    def _linkClosed(self, link: DTLSLink, reason: str) -> None:
        try:
            self.handler.linkClosed(link, reason)
        except Exception:
            log.failure("linkClosed handler failed for {link}", link=link)


def listenDTLS(
    reactor: UDPReactor,
    port: int,
    identity: PeerIdentity,
    trust: TrustPolicy,
    handler: ILinkHandler,
    settings: DTLSSettings | None = None,
    *,
    interface: str = "",
    clock: Clock | None = None,
) -> DTLSEndpoint:
    """Make a :class:`DTLSEndpoint` and listen on UDP ``port`` (0: any free
    port; the bound one is ``endpoint.port.getHost().port``).  ``clock``
    defaults to the reactor."""
    endpoint = DTLSEndpoint(reactor if clock is None else clock, identity, trust, handler, settings)
    endpoint.port = reactor.listenUDP(port, endpoint, interface=interface)
    return endpoint
