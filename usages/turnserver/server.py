"""The TURN server's protocol core (RFC 8656), free of sockets and clocks.

The I/O edge (:mod:`usages.turnserver.service`) hands it what arrives --
a client's datagram or stream frame, a peer's datagram at a relayed
address -- and the time; it answers through two small interfaces the edge
implements: :class:`ClientLink` (send to a client) and :class:`RelaySocket`
(send to a peer from a relayed address, opened by a :class:`RelayOpener`).
Timers are one sweep, :meth:`TurnServer.expire`, that the edge calls every
second: no per-allocation timer objects.

What it implements, by RFC 8656 section:

- 5: long-term credentials with nonces that go stale (401, 438), either
  MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 (the answer uses the one
  the request used), FINGERPRINT on every response; or a user name vouched
  for by the link (an overlay member's TLS client certificate);
- 7: Allocate, UDP relays only (442), EVEN-PORT and RESERVATION-TOKEN
  (held 30 s), 437 for a second allocation on a 5-tuple, 486 per-user
  quota, 508 when the server is full or has no port;
- 8: Refresh (lifetime 0 deletes);
- 9, 10: permissions for 300 s, CreatePermission;
- 11: Send and Data indications;
- 12: ChannelBind (0x4000-0x7FFF, 600 s) and ChannelData;
- 21.2.3: no relaying to denied peers (403), a relayed-bandwidth bound.
"""

from __future__ import annotations

import os
import random
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.logger import Logger

from usages.turnserver.credentials import NonceIssuer, UserKeys
from usages.turnserver.policy import PeerPolicy
from usages.turnserver.stun import (
    FAMILY_IPV4,
    FAMILY_IPV6,
    KNOWN_ATTRIBUTES,
    MAX_CHANNEL,
    MIN_CHANNEL,
    TRANSPORT_UDP,
    Attr,
    ChannelData,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    decodeMessage,
    encodeMessage,
    errorCodeValue,
    integrityAlgorithm,
    isComprehensionRequired,
    uint32Value,
    unknownAttributesValue,
    verifyIntegrity,
    xorAddressValue,
)

log = Logger()

#: RFC 8656 section 2 / 7.2: default and (recommended) maximum lifetimes.
DEFAULT_LIFETIME = 600
MAX_LIFETIME = 3600
#: RFC 8656 section 9: permissions last 300 s; section 12: channels 600 s.
PERMISSION_LIFETIME = 300
CHANNEL_LIFETIME = 600
#: RFC 8656 section 7.2: a reserved port is held at least 30 s.
RESERVATION_LIFETIME = 30
#: RFC 8656 section 12: a channel number stays unusable 5 min after expiry.
CHANNEL_QUARANTINE = 300

Address = tuple[str, int]

_CHANNEL_HEADER = struct.Struct("!HH")
_PADDING = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


class ClientLink(Protocol):
    """Where client messages come from and answers go: a UDP listener (one
    for many clients) or one TCP/TLS connection."""

    #: Stream transports pad ChannelData to 4 bytes (RFC 8656 section 12.5).
    stream: bool
    #: The user name an authenticated TLS client certificate stands for.
    certificateUser: str | None

    def sendTo(self, data: bytes, client: Address) -> None: ...


class RelaySocket(Protocol):
    address: Address

    def sendTo(self, data: bytes, peer: Address) -> None: ...

    def close(self) -> None: ...


#: Open a UDP socket on ``(relayHost, port)`` that hands what it receives to
#: ``TurnServer.peerDatagram(port, data, peer)``; None when the port is taken.
#: ``dontFragment`` asks for the DF bit (RFC 8656 section 18.9).
RelayOpener = Callable[[int, bool], "RelaySocket | None"]


@dataclass
class Allocation:
    """RFC 8656 section 6: the state of one allocation."""

    link: ClientLink
    client: Address
    username: str
    key: bytes | None
    relay: RelaySocket
    createdBy: bytes  # the Allocate transaction id, for retransmissions
    expires: float
    lastAnswer: bytes = b""
    #: peer IP -> expiry (section 9).
    permissions: dict[str, float] = field(default_factory=dict)
    #: channel number -> (peer, expiry); and peer -> channel (section 12).
    channels: dict[int, tuple[Address, float]] = field(default_factory=dict)
    channelOf: dict[Address, int] = field(default_factory=dict)

    @property
    def fiveTuple(self) -> tuple[ClientLink, Address]:
        return (self.link, self.client)


@dataclass
class Reservation:
    """A port held by EVEN-PORT's R bit for a later Allocate with the
    RESERVATION-TOKEN (RFC 8656 section 7.2)."""

    relay: RelaySocket
    expires: float


@dataclass(frozen=True)
class Limits:
    maxAllocations: int = 1000
    maxAllocationsPerUser: int = 10
    maxRelayBytesPerSecond: int | None = None
    relayPorts: tuple[int, int] = (49152, 65535)
    nonceLifetime: float = 600.0


class _Refusal(Exception):
    """An error response to send (the code, reason, extra attributes)."""

    def __init__(self, code: int, reason: str, extra: Sequence[tuple[int, bytes]] = ()) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason
        self.extra = list(extra)


class TurnServer:
    """The state of a TURN server and the handling of every message."""

    def __init__(
        self,
        *,
        realm: str,
        users: UserKeys,
        policy: PeerPolicy,
        openRelay: RelayOpener,
        relayFamily: int = FAMILY_IPV4,
        limits: Limits = Limits(),
        clock: Callable[[], float],
        software: str = "reload TURN",
    ) -> None:
        self.realm = realm
        self.users = users
        self.policy = policy
        self.openRelay = openRelay
        self.relayFamily = relayFamily
        self.limits = limits
        self.clock = clock
        self.software = software.encode()
        self.nonces = NonceIssuer(limits.nonceLifetime)
        self.allocations: dict[tuple[Any, Address], Allocation] = {}
        self.byRelayPort: dict[int, Allocation] = {}
        self.perUser: Counter[str] = Counter()
        self.reservations: dict[bytes, Reservation] = {}
        self.bytesRelayed = 0
        self.packetsRelayed = 0
        self.refusals: Counter[str] = Counter()
        self._random = random.Random()
        # Token bucket of the relayed-bandwidth bound.
        self._bucket = float(limits.maxRelayBytesPerSecond or 0)
        self._bucketAt = 0.0

    # -- status ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "allocations": len(self.allocations),
            "permissions": sum(len(a.permissions) for a in self.allocations.values()),
            "channels": sum(len(a.channels) for a in self.allocations.values()),
            "reservations": len(self.reservations),
            "bytesRelayed": self.bytesRelayed,
            "packetsRelayed": self.packetsRelayed,
            "refusals": dict(self.refusals),
            "users": len(self.users),
        }

    # -- input from clients -------------------------------------------------

    def clientDatagram(self, link: ClientLink, client: Address, data: bytes) -> None:
        """One UDP datagram from ``client``: ChannelData or STUN.  Anything
        malformed is dropped (and counted); the server never raises."""
        if data and data[0] & 0xC0 == 0x40:
            if len(data) < 4:
                self.refusals["malformed"] += 1
                return
            channel, length = _CHANNEL_HEADER.unpack_from(data)
            if len(data) < 4 + length:
                self.refusals["malformed"] += 1
                return
            self.channelData(link, client, channel, data[4 : 4 + length])
            return
        try:
            message = decodeMessage(data)
        except StunDecodeError:
            self.refusals["malformed"] += 1
            return
        self.clientMessage(link, client, message)

    def clientFrame(self, link: ClientLink, client: Address, frame: Message | ChannelData) -> None:
        """One frame the stream framer cut from a TCP or TLS connection."""
        if isinstance(frame, ChannelData):
            self.channelData(link, client, frame.channel, frame.data)
        else:
            self.clientMessage(link, client, frame)

    def clientMessage(self, link: ClientLink, client: Address, message: Message) -> None:
        try:
            if message.messageClass == MessageClass.REQUEST:
                self._request(link, client, message)
            elif message.messageClass == MessageClass.INDICATION and message.method == Method.SEND:
                self._sendIndication(link, client, message)
            # Responses sent to a server are ignored (RFC 8489 section 6.3).
        except StunDecodeError as e:
            # A well-framed message whose attribute is malformed.
            self.refusals["malformed"] += 1
            if message.messageClass == MessageClass.REQUEST:
                self._answerError(link, client, message, _Refusal(400, f"Bad Request: {e}"))

    # -- requests -------------------------------------------------------------

    def _request(self, link: ClientLink, client: Address, message: Message) -> None:
        method = message.method
        if method == Method.BINDING:
            # RFC 8489 section 7.3: no authentication needed.
            self._answer(link, client, message, [self._mappedAddress(message, client)], None)
            return
        if method not in (
            Method.ALLOCATE,
            Method.REFRESH,
            Method.CREATE_PERMISSION,
            Method.CHANNEL_BIND,
        ):
            self.refusals["badRequest"] += 1
            self._answerError(link, client, message, _Refusal(400, "Bad Request: unknown method"))
            return
        try:
            username, key = self._authenticate(link, client, message)
        except _Refusal as refusal:
            self._answerError(link, client, message, refusal)
            return
        try:
            unknown = [
                a.type
                for a in message.attributes
                if isComprehensionRequired(a.type) and a.type not in KNOWN_ATTRIBUTES
            ]
            if unknown:
                raise _Refusal(
                    420,
                    "Unknown Attribute",
                    [(Attr.UNKNOWN_ATTRIBUTES, unknownAttributesValue(unknown))],
                )
            if method == Method.ALLOCATE:
                attributes = self._allocate(link, client, message, username, key)
            else:
                allocation = self.allocations.get((link, client))
                if allocation is None:
                    self.refusals["allocationMismatch"] += 1
                    raise _Refusal(437, "Allocation Mismatch")
                if allocation.username != username:
                    self.refusals["wrongCredentials"] += 1
                    raise _Refusal(441, "Wrong Credentials")
                if method == Method.REFRESH:
                    attributes = self._refresh(allocation, message)
                elif method == Method.CREATE_PERMISSION:
                    attributes = self._createPermission(allocation, message)
                else:
                    attributes = self._channelBind(allocation, message)
        except _Refusal as refusal:
            self._answerError(link, client, message, refusal, key)
            return
        answer = self._answer(link, client, message, attributes, key)
        if method == Method.ALLOCATE:
            self.allocations[(link, client)].lastAnswer = answer

    def _authenticate(
        self, link: ClientLink, client: Address, message: Message
    ) -> tuple[str, bytes | None]:
        """RFC 8489 section 9.2.4 (long-term credentials), or the user name
        the link's TLS client certificate vouches for.  Fails closed."""
        if link.certificateUser is not None:
            return link.certificateUser, None
        now = self.clock()
        challenge = [
            (Attr.REALM, self.realm.encode()),
            (Attr.NONCE, self.nonces.issue(client, now).encode()),
        ]
        if integrityAlgorithm(message) is None:
            self.refusals["unauthenticated"] += 1
            raise _Refusal(401, "Unauthorized", challenge)
        username = message.text(Attr.USERNAME)
        realm = message.text(Attr.REALM)
        nonce = message.text(Attr.NONCE)
        if username is None or realm is None or nonce is None:
            self.refusals["badRequest"] += 1
            raise _Refusal(400, "Bad Request: USERNAME, REALM and NONCE are required")
        if not self.nonces.isFresh(nonce, client, now):
            self.refusals["staleNonce"] += 1
            raise _Refusal(438, "Stale Nonce", challenge)
        key = self.users.keyFor(username) if realm == self.realm else None
        if key is None or not verifyIntegrity(message, key):
            self.refusals["badCredentials"] += 1
            raise _Refusal(401, "Unauthorized", challenge)
        return username, key

    def _allocate(
        self,
        link: ClientLink,
        client: Address,
        message: Message,
        username: str,
        key: bytes | None,
    ) -> list[tuple[int, bytes]]:
        """RFC 8656 section 7.2."""
        existing = self.allocations.get((link, client))
        if existing is not None:
            if existing.createdBy == message.transactionId:
                raise _Resend(existing.lastAnswer)
            self.refusals["allocationMismatch"] += 1
            raise _Refusal(437, "Allocation Mismatch")
        transport = message.requestedTransport()
        if transport is None:
            self.refusals["badRequest"] += 1
            raise _Refusal(400, "Bad Request: REQUESTED-TRANSPORT is required")
        if transport != TRANSPORT_UDP:
            self.refusals["unsupportedTransport"] += 1
            raise _Refusal(442, "Unsupported Transport Protocol")
        evenPort = message.evenPort()
        token = message.reservationToken()
        family = message.requestedAddressFamily()
        if token is not None and (evenPort is not None or family is not None):
            self.refusals["badRequest"] += 1
            raise _Refusal(400, "Bad Request: RESERVATION-TOKEN with EVEN-PORT or family")
        if family is not None and family not in (FAMILY_IPV4, FAMILY_IPV6):
            raise _Refusal(440, "Address Family not Supported")
        if family is not None and family != self.relayFamily:
            self.refusals["addressFamily"] += 1
            raise _Refusal(440, "Address Family not Supported")
        if self.perUser[username] >= self.limits.maxAllocationsPerUser:
            self.refusals["userQuota"] += 1
            raise _Refusal(486, "Allocation Quota Reached")
        if len(self.allocations) + len(self.reservations) >= self.limits.maxAllocations:
            self.refusals["capacity"] += 1
            raise _Refusal(508, "Insufficient Capacity")
        dontFragment = message.has(Attr.DONT_FRAGMENT)
        extra: list[tuple[int, bytes]] = []
        if token is not None:
            reservation = self.reservations.pop(token, None)
            if reservation is None:
                self.refusals["capacity"] += 1
                raise _Refusal(508, "Insufficient Capacity: unknown reservation")
            relay = reservation.relay
        else:
            opened = self._openRelay(bool(evenPort is not None), bool(evenPort), dontFragment)
            if opened is None:
                self.refusals["capacity"] += 1
                raise _Refusal(508, "Insufficient Capacity: no relay port")
            relay, reserved = opened
            if reserved is not None:
                newToken = os.urandom(8)
                self.reservations[newToken] = Reservation(
                    reserved, self.clock() + RESERVATION_LIFETIME
                )
                extra.append((Attr.RESERVATION_TOKEN, newToken))
        lifetime = self._lifetime(message)
        if lifetime == 0:
            lifetime = DEFAULT_LIFETIME
        allocation = Allocation(
            link=link,
            client=client,
            username=username,
            key=key,
            relay=relay,
            createdBy=message.transactionId,
            expires=self.clock() + lifetime,
        )
        self.allocations[(link, client)] = allocation
        self.byRelayPort[relay.address[1]] = allocation
        self.perUser[username] += 1
        tid = message.transactionId
        return [
            (Attr.XOR_RELAYED_ADDRESS, xorAddressValue(*relay.address, tid)),
            (Attr.LIFETIME, uint32Value(lifetime)),
            *extra,
            (Attr.XOR_MAPPED_ADDRESS, xorAddressValue(*client, tid)),
            (Attr.SOFTWARE, self.software),
        ]

    def _openRelay(
        self, even: bool, reserveNext: bool, dontFragment: bool
    ) -> tuple[RelaySocket, RelaySocket | None] | None:
        """A relay socket on a free port of the range (an even one when
        asked, with the next one held too for the R bit); a few random
        tries, then None."""
        low, high = self.limits.relayPorts
        for _ in range(40):
            port = self._random.randint(low, high)
            if even:
                port &= ~1
                if port < low or (reserveNext and port + 1 > high):
                    continue
            relay = self.openRelay(port, dontFragment)
            if relay is None:
                continue
            if not reserveNext:
                return relay, None
            reserved = self.openRelay(port + 1, dontFragment)
            if reserved is not None:
                return relay, reserved
            relay.close()
        return None

    def _lifetime(self, message: Message) -> int:
        """RFC 8656 section 7.2 and 8.2: the requested lifetime, at most the
        maximum, at least the default; zero stays zero."""
        requested = message.uint32(Attr.LIFETIME)
        if requested is None:
            return DEFAULT_LIFETIME
        if requested == 0:
            return 0
        return max(DEFAULT_LIFETIME, min(requested, MAX_LIFETIME))

    def _refresh(self, allocation: Allocation, message: Message) -> list[tuple[int, bytes]]:
        """RFC 8656 section 8.2."""
        family = message.requestedAddressFamily()
        if family is not None and family != self.relayFamily:
            raise _Refusal(443, "Peer Address Family Mismatch")
        lifetime = self._lifetime(message)
        if lifetime == 0:
            self._delete(allocation)
        else:
            allocation.expires = self.clock() + lifetime
        return [(Attr.LIFETIME, uint32Value(lifetime))]

    def _checkPeer(self, peer: Address) -> None:
        family = FAMILY_IPV6 if ":" in peer[0] else FAMILY_IPV4
        if family != self.relayFamily:
            self.refusals["peerAddressFamily"] += 1
            raise _Refusal(443, "Peer Address Family Mismatch")
        if self.policy.isDenied(peer):
            self.refusals["deniedPeer"] += 1
            raise _Refusal(403, "Forbidden")

    def _createPermission(
        self, allocation: Allocation, message: Message
    ) -> list[tuple[int, bytes]]:
        """RFC 8656 section 10.2: all the peers, or none."""
        peers = message.xorAddresses(Attr.XOR_PEER_ADDRESS)
        if not peers:
            raise _Refusal(400, "Bad Request: XOR-PEER-ADDRESS is required")
        for peer in peers:
            self._checkPeer(peer)
        expires = self.clock() + PERMISSION_LIFETIME
        for host, _ in peers:
            allocation.permissions[host] = expires
        return []

    def _channelBind(self, allocation: Allocation, message: Message) -> list[tuple[int, bytes]]:
        """RFC 8656 section 12.2."""
        channel = message.channelNumber()
        peer = message.xorAddress(Attr.XOR_PEER_ADDRESS)
        if channel is None or peer is None:
            raise _Refusal(400, "Bad Request: CHANNEL-NUMBER and XOR-PEER-ADDRESS required")
        if not MIN_CHANNEL <= channel <= MAX_CHANNEL:
            raise _Refusal(400, "Bad Request: channel number out of range")
        bound = allocation.channels.get(channel)
        if bound is not None and bound[0] != peer:
            raise _Refusal(400, "Bad Request: channel bound to another peer")
        other = allocation.channelOf.get(peer)
        if other is not None and other != channel:
            raise _Refusal(400, "Bad Request: peer bound to another channel")
        self._checkPeer(peer)
        now = self.clock()
        allocation.channels[channel] = (peer, now + CHANNEL_LIFETIME)
        allocation.channelOf[peer] = channel
        allocation.permissions[peer[0]] = now + PERMISSION_LIFETIME
        return []

    # -- answers -------------------------------------------------------------

    def _mappedAddress(self, message: Message, client: Address) -> tuple[int, bytes]:
        return (Attr.XOR_MAPPED_ADDRESS, xorAddressValue(*client, message.transactionId))

    def _answer(
        self,
        link: ClientLink,
        client: Address,
        message: Message,
        attributes: list[tuple[int, bytes]],
        key: bytes | None,
    ) -> bytes:
        data = encodeMessage(
            message.method,
            MessageClass.SUCCESS,
            message.transactionId,
            attributes,
            integrityKey=key,
            integrity=integrityAlgorithm(message) or "sha1",
            fingerprint=True,
        )
        link.sendTo(data, client)
        return data

    def _answerError(
        self,
        link: ClientLink,
        client: Address,
        message: Message,
        refusal: Exception,
        key: bytes | None = None,
    ) -> None:
        if isinstance(refusal, _Resend):
            link.sendTo(refusal.answer, client)
            return
        assert isinstance(refusal, _Refusal)
        data = encodeMessage(
            message.method,
            MessageClass.ERROR,
            message.transactionId,
            [(Attr.ERROR_CODE, errorCodeValue(refusal.code, refusal.reason)), *refusal.extra],
            integrityKey=key,
            integrity=integrityAlgorithm(message) or "sha1",
            fingerprint=True,
        )
        link.sendTo(data, client)

    # -- relaying -------------------------------------------------------------

    def _spend(self, size: int, now: float) -> bool:
        """The relayed-bandwidth bound: a token bucket of one second."""
        rate = self.limits.maxRelayBytesPerSecond
        if rate is None:
            return True
        self._bucket = min(float(rate), self._bucket + (now - self._bucketAt) * rate)
        self._bucketAt = now
        if self._bucket < size:
            self.refusals["bandwidth"] += 1
            return False
        self._bucket -= size
        return True

    def channelData(self, link: ClientLink, client: Address, channel: int, data: bytes) -> None:
        """RFC 8656 section 12.6: ChannelData from the client to the peer
        the channel is bound to; dropped when there is no such channel."""
        allocation = self.allocations.get((link, client))
        if allocation is None:
            self.refusals["noAllocation"] += 1
            return
        bound = allocation.channels.get(channel)
        now = self.clock()
        if bound is None or bound[1] < now:
            self.refusals["noChannel"] += 1
            return
        if not self._spend(len(data), now):
            return
        allocation.relay.sendTo(data, bound[0])
        self.bytesRelayed += len(data)
        self.packetsRelayed += 1

    def _sendIndication(self, link: ClientLink, client: Address, message: Message) -> None:
        """RFC 8656 section 11.2: dropped silently unless an allocation and
        a permission for the peer exist."""
        allocation = self.allocations.get((link, client))
        if allocation is None:
            self.refusals["noAllocation"] += 1
            return
        peer = message.xorAddress(Attr.XOR_PEER_ADDRESS)
        data = message.get(Attr.DATA)
        if peer is None or data is None:
            self.refusals["malformed"] += 1
            return
        now = self.clock()
        expiry = allocation.permissions.get(peer[0])
        if expiry is None or expiry < now:
            self.refusals["noPermission"] += 1
            return
        if self.policy.isDenied(peer):
            self.refusals["deniedPeer"] += 1
            return
        if not self._spend(len(data), now):
            return
        allocation.relay.sendTo(data, peer)
        self.bytesRelayed += len(data)
        self.packetsRelayed += 1

    def peerDatagram(self, relayPort: int, data: bytes, peer: Address) -> None:
        """RFC 8656 sections 11.3 and 12.7: a datagram at a relayed address,
        from a peer with a permission, goes to the client as ChannelData
        when a channel is bound to the peer, else in a Data indication."""
        allocation = self.byRelayPort.get(relayPort)
        if allocation is None:
            return  # a reserved port, or one closing
        now = self.clock()
        expiry = allocation.permissions.get(peer[0])
        if expiry is None or expiry < now:
            self.refusals["noPermission"] += 1
            return
        if not self._spend(len(data), now):
            return
        channel = allocation.channelOf.get(peer)
        link = allocation.link
        if channel is not None and allocation.channels[channel][1] >= now:
            if len(data) > 0xFFFF:
                return
            framed = _CHANNEL_HEADER.pack(channel, len(data)) + data
            if link.stream:
                framed += _PADDING[len(data) & 3]
        else:
            tid = os.urandom(12)
            framed = encodeMessage(
                Method.DATA,
                MessageClass.INDICATION,
                tid,
                [(Attr.XOR_PEER_ADDRESS, xorAddressValue(*peer, tid)), (Attr.DATA, data)],
            )
        link.sendTo(framed, allocation.client)
        self.bytesRelayed += len(data)
        self.packetsRelayed += 1

    # -- lifetimes -------------------------------------------------------------

    def _delete(self, allocation: Allocation) -> None:
        self.allocations.pop(allocation.fiveTuple, None)
        self.byRelayPort.pop(allocation.relay.address[1], None)
        self.perUser[allocation.username] -= 1
        if self.perUser[allocation.username] <= 0:
            del self.perUser[allocation.username]
        allocation.relay.close()

    def linkLost(self, link: ClientLink) -> None:
        """A TCP or TLS connection closed: its allocation goes with it
        (RFC 8656 section 3.1)."""
        for allocation in [a for a in self.allocations.values() if a.link is link]:
            self._delete(allocation)

    def expire(self) -> None:
        """Drop what has expired: allocations, permissions, channels and
        reservations (RFC 8656 sections 6, 9, 12, 7.2)."""
        now = self.clock()
        for allocation in list(self.allocations.values()):
            if allocation.expires < now:
                self._delete(allocation)
                continue
            for host in [h for h, e in allocation.permissions.items() if e < now]:
                del allocation.permissions[host]
            for channel in [
                c for c, (_, e) in allocation.channels.items() if e + CHANNEL_QUARANTINE < now
            ]:
                peer, _ = allocation.channels.pop(channel)
                allocation.channelOf.pop(peer, None)
        for token in [t for t, r in self.reservations.items() if r.expires < now]:
            self.reservations.pop(token).relay.close()

    def stop(self) -> None:
        """Close every relay (the service is stopping)."""
        for allocation in list(self.allocations.values()):
            self._delete(allocation)
        for reservation in self.reservations.values():
            reservation.relay.close()
        self.reservations.clear()


class _Resend(_Refusal):
    """An Allocate retransmission: send the stored answer again (RFC 8656
    section 7.2, RFC 8489 section 6.3.4)."""

    def __init__(self, answer: bytes) -> None:
        super().__init__(0, "resend")
        self.answer = answer
