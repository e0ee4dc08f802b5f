"""The STUN (RFC 8489) and TURN (RFC 8656) message layer, sans-I/O.

Bytes in, frozen dataclasses out, and back; no sockets, no clock, no
Twisted.  The TURN server, the Binding probe and the tests all speak
through this module, and the decoder is the one place hostile bytes meet
(every malformed input raises :class:`StunDecodeError` and nothing else).

**Why our own layer and not a library.**  We looked at what is packaged:

- aioice's ``stun`` module is a client's codec (its transactions run on
  asyncio), knows none of the TURN attributes a server must parse strictly
  (EVEN-PORT, RESERVATION-TOKEN, REQUESTED-ADDRESS-FAMILY, DONT-FRAGMENT),
  has no MESSAGE-INTEGRITY-SHA256, and on mutated input raises assorted
  exceptions (``ValueError``, ``UnicodeDecodeError``, ``struct.error``: we
  fuzzed its ``parse_message``), so a server would have to wrap it in a
  catch-all;
- pystun3 and similar are Binding-only clients;
- coturn's codec is C, not importable.

A server needs three things a client codec does not give: one exception
type on any hostile input (so the I/O edge can refuse it and go on), the
exact received bytes kept beside every attribute offset (MESSAGE-INTEGRITY
and FINGERPRINT are computed over a prefix of the message *with a rewritten
length field*, RFC 8489 sections 14.5 to 14.7), and ChannelData framing with
a TCP stream splitter (RFC 8656 section 12.5).  Those are a few hundred lines
that we can fuzz with Hypothesis and check against the RFC 5769 test
vectors, which is less risk than an extra runtime dependency we would have
to wrap anyway.  Following DESIGN.md (sans-I/O core, like h11 and h2), the
state machine of the server and the probe take these objects as input.

Passwords are used as UTF-8 bytes as given: the OpaqueString preparation of
RFC 8489 section 9.2.2 is the operator's business (the users file holds
ASCII in practice).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

#: RFC 8489 section 5: the fixed value in bytes 4..8 of every message.
MAGIC_COOKIE = 0x2112A442
MAGIC_COOKIE_BYTES = struct.pack("!I", MAGIC_COOKIE)
HEADER_LENGTH = 20
#: RFC 8489 section 14.7.
FINGERPRINT_XOR = 0x5354554E
#: RFC 8656 section 12: ChannelData header (channel number, length).
CHANNEL_DATA_HEADER_LENGTH = 4
#: Channel numbers RFC 5766 section 11 allowed; RFC 8656 section 12 narrowed
#: them to 0x4000-0x4FFF, but deployed clients (coturn's) use the old range.
MIN_CHANNEL = 0x4000
MAX_CHANNEL = 0x7FFF

_HEADER = struct.Struct("!HHI12s")
_ATTRIBUTE_HEADER = struct.Struct("!HH")
_UINT32 = struct.Struct("!I")
_UINT16 = struct.Struct("!H")


class StunDecodeError(ValueError):
    """Bytes that are not a well-formed STUN message, ChannelData message
    or attribute value.  The only exception the decoders raise."""


class Method(IntEnum):
    """STUN methods (RFC 8489 section 18.2, RFC 8656 section 17)."""

    BINDING = 0x001
    ALLOCATE = 0x003
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009


class MessageClass(IntEnum):
    """RFC 8489 section 5: the two class bits C1 C0."""

    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


class Attr(IntEnum):
    """Attribute types (RFC 8489 section 18.3, RFC 8656 section 18)."""

    MAPPED_ADDRESS = 0x0001
    USERNAME = 0x0006
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    CHANNEL_NUMBER = 0x000C
    LIFETIME = 0x000D
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    MESSAGE_INTEGRITY_SHA256 = 0x001C
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    ADDITIONAL_ADDRESS_FAMILY = 0x8000
    ADDRESS_ERROR_CODE = 0x8001
    PASSWORD_ALGORITHMS = 0x8002
    ALTERNATE_DOMAIN = 0x8003
    ICMP = 0x8004
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    FINGERPRINT = 0x8028


#: Address families of the (XOR-)address attributes (RFC 8489 section 14.1)
#: and REQUESTED-ADDRESS-FAMILY (RFC 8656 section 18.6).
FAMILY_IPV4 = 0x01
FAMILY_IPV6 = 0x02
#: REQUESTED-TRANSPORT protocol number for UDP (RFC 8656 section 18.8).
TRANSPORT_UDP = 17

#: Attributes whose type is below 0x8000 must be understood (RFC 8489
#: section 14): the server answers 420 with the others it does not know.
KNOWN_ATTRIBUTES = frozenset(int(a) for a in Attr)


def isComprehensionRequired(attributeType: int) -> bool:
    """RFC 8489 section 14: types 0x0000-0x7FFF are comprehension-required."""
    return attributeType < 0x8000


# -- message type -----------------------------------------------------------


def encodeMessageType(method: int, messageClass: int) -> int:
    """RFC 8489 section 5: interleave the 12 method bits with C1 C0."""
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((messageClass & 0x1) << 4)
        | ((messageClass & 0x2) << 7)
    )


def decodeMessageType(messageType: int) -> tuple[int, int]:
    """The (method, class) of a 14-bit message type."""
    method = (messageType & 0x000F) | ((messageType & 0x00E0) >> 1) | ((messageType & 0x3E00) >> 2)
    messageClass = ((messageType & 0x0010) >> 4) | ((messageType & 0x0100) >> 7)
    return method, messageClass


# -- the message ------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    """One attribute as on the wire: ``offset`` is where its header starts
    in the received message (-1 for one built locally)."""

    type: int
    value: bytes
    offset: int = -1


@dataclass(frozen=True)
class Message:
    """A STUN message.  ``raw`` is the exact received bytes (empty for one
    built locally): integrity and fingerprint are checked over them."""

    method: int
    messageClass: int
    transactionId: bytes
    attributes: tuple[Attribute, ...] = ()
    raw: bytes = field(default=b"", repr=False, compare=False)

    def get(self, attributeType: int) -> bytes | None:
        """The value of the first attribute of this type, or None."""
        for attribute in self.attributes:
            if attribute.type == attributeType:
                return attribute.value
        return None

    def find(self, attributeType: int) -> Attribute | None:
        """The first attribute of this type, or None."""
        for attribute in self.attributes:
            if attribute.type == attributeType:
                return attribute
        return None

    def has(self, attributeType: int) -> bool:
        return self.find(attributeType) is not None

    # Typed views of the attributes; each raises StunDecodeError when the
    # attribute is there but malformed, and answers None when it is absent.

    def text(self, attributeType: int) -> str | None:
        """USERNAME, REALM, NONCE, SOFTWARE: UTF-8 text."""
        value = self.get(attributeType)
        return None if value is None else decodeText(value)

    def xorAddress(self, attributeType: int) -> tuple[str, int] | None:
        """XOR-MAPPED-, XOR-PEER- or XOR-RELAYED-ADDRESS."""
        value = self.get(attributeType)
        if value is None:
            return None
        return decodeXorAddress(value, self.transactionId)

    def xorAddresses(self, attributeType: int) -> list[tuple[str, int]]:
        """All the XOR-PEER-ADDRESS attributes (CreatePermission may carry
        several, RFC 8656 section 10)."""
        return [
            decodeXorAddress(a.value, self.transactionId)
            for a in self.attributes
            if a.type == attributeType
        ]

    def address(self, attributeType: int) -> tuple[str, int] | None:
        """MAPPED-ADDRESS or ALTERNATE-SERVER (not XORed)."""
        value = self.get(attributeType)
        return None if value is None else decodeAddress(value)

    def uint32(self, attributeType: int) -> int | None:
        """LIFETIME: a 32-bit unsigned integer."""
        value = self.get(attributeType)
        if value is None:
            return None
        if len(value) != 4:
            raise StunDecodeError(f"attribute 0x{attributeType:04x} must be 4 bytes")
        return int(_UINT32.unpack(value)[0])

    def channelNumber(self) -> int | None:
        """CHANNEL-NUMBER (RFC 8656 section 18.1): 16 bits, then RFFU."""
        value = self.get(Attr.CHANNEL_NUMBER)
        if value is None:
            return None
        if len(value) != 4:
            raise StunDecodeError("CHANNEL-NUMBER must be 4 bytes")
        return int(_UINT16.unpack(value[:2])[0])

    def requestedTransport(self) -> int | None:
        """REQUESTED-TRANSPORT (RFC 8656 section 18.8): the protocol number."""
        value = self.get(Attr.REQUESTED_TRANSPORT)
        if value is None:
            return None
        if len(value) != 4:
            raise StunDecodeError("REQUESTED-TRANSPORT must be 4 bytes")
        return value[0]

    def requestedAddressFamily(self) -> int | None:
        """REQUESTED-ADDRESS-FAMILY (RFC 8656 section 18.6)."""
        value = self.get(Attr.REQUESTED_ADDRESS_FAMILY)
        if value is None:
            return None
        if len(value) != 4:
            raise StunDecodeError("REQUESTED-ADDRESS-FAMILY must be 4 bytes")
        return value[0]

    def evenPort(self) -> bool | None:
        """EVEN-PORT (RFC 8656 section 18.7): None when absent, else the R
        bit (reserve the next port too)."""
        value = self.get(Attr.EVEN_PORT)
        if value is None:
            return None
        if len(value) != 1:
            raise StunDecodeError("EVEN-PORT must be 1 byte")
        return bool(value[0] & 0x80)

    def reservationToken(self) -> bytes | None:
        """RESERVATION-TOKEN (RFC 8656 section 18.10): 8 opaque bytes."""
        value = self.get(Attr.RESERVATION_TOKEN)
        if value is not None and len(value) != 8:
            raise StunDecodeError("RESERVATION-TOKEN must be 8 bytes")
        return value

    def errorCode(self) -> tuple[int, str] | None:
        """ERROR-CODE (RFC 8489 section 14.8): (code, reason)."""
        value = self.get(Attr.ERROR_CODE)
        return None if value is None else decodeErrorCode(value)

    def unknownAttributes(self) -> list[int]:
        """UNKNOWN-ATTRIBUTES (RFC 8489 section 14.9)."""
        value = self.get(Attr.UNKNOWN_ATTRIBUTES)
        if value is None:
            return []
        if len(value) % 2:
            raise StunDecodeError("UNKNOWN-ATTRIBUTES must hold 16-bit types")
        return [int(_UINT16.unpack_from(value, i)[0]) for i in range(0, len(value), 2)]


def newTransactionId() -> bytes:
    """RFC 8489 section 6: 96 random bits."""
    return os.urandom(12)


# -- attribute values -------------------------------------------------------


def decodeText(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StunDecodeError(f"text attribute is not UTF-8: {e.reason}") from None


def _packAddress(host: str, port: int) -> bytes:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address: {host!r}") from None
    family = FAMILY_IPV4 if ip.version == 4 else FAMILY_IPV6
    return struct.pack("!BBH", 0, family, port) + ip.packed


def addressValue(host: str, port: int) -> bytes:
    """MAPPED-ADDRESS value (RFC 8489 section 14.1)."""
    return _packAddress(host, port)


def decodeAddress(value: bytes) -> tuple[str, int]:
    if len(value) < 4:
        raise StunDecodeError("address attribute too short")
    family = value[1]
    port = int(_UINT16.unpack_from(value, 2)[0])
    if family == FAMILY_IPV4 and len(value) == 8:
        return str(ipaddress.IPv4Address(value[4:8])), port
    if family == FAMILY_IPV6 and len(value) == 20:
        return str(ipaddress.IPv6Address(value[4:20])), port
    raise StunDecodeError(f"bad address family {family} or length {len(value)}")


def _xorMask(transactionId: bytes) -> bytes:
    return MAGIC_COOKIE_BYTES + transactionId


def xorAddressValue(host: str, port: int, transactionId: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS value (RFC 8489 section 14.2): the port XOR the
    cookie's top 16 bits, the address XOR the cookie (and transaction id)."""
    plain = _packAddress(host, port)
    mask = _xorMask(transactionId)
    body = bytes(b ^ m for b, m in zip(plain[2:], mask[:2] + mask, strict=False))
    return plain[:2] + body


def decodeXorAddress(value: bytes, transactionId: bytes) -> tuple[str, int]:
    if len(value) < 4:
        raise StunDecodeError("XOR address attribute too short")
    mask = _xorMask(transactionId)
    plain = value[:2] + bytes(b ^ m for b, m in zip(value[2:], mask[:2] + mask, strict=False))
    return decodeAddress(plain)


def uint32Value(number: int) -> bytes:
    return _UINT32.pack(number)


def channelNumberValue(channel: int) -> bytes:
    """CHANNEL-NUMBER value: the number and two RFFU bytes."""
    return _UINT16.pack(channel) + b"\x00\x00"


def requestedTransportValue(protocol: int = TRANSPORT_UDP) -> bytes:
    return bytes([protocol, 0, 0, 0])


def requestedAddressFamilyValue(family: int) -> bytes:
    return bytes([family, 0, 0, 0])


def evenPortValue(reserveNext: bool) -> bytes:
    return b"\x80" if reserveNext else b"\x00"


def errorCodeValue(code: int, reason: str) -> bytes:
    """ERROR-CODE value (RFC 8489 section 14.8): class and number."""
    if not 300 <= code <= 699:
        raise ValueError(f"error code out of range: {code}")
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode("utf-8")


def decodeErrorCode(value: bytes) -> tuple[int, str]:
    if len(value) < 4:
        raise StunDecodeError("ERROR-CODE too short")
    code = (value[2] & 0x07) * 100 + value[3]
    return code, decodeText(value[4:])


def unknownAttributesValue(types: Iterable[int]) -> bytes:
    return b"".join(_UINT16.pack(t) for t in types)


# -- credentials ------------------------------------------------------------


def longTermKey(username: str, realm: str, password: str) -> bytes:
    """RFC 8489 section 9.2.2: MD5(username ":" realm ":" password)."""
    text = f"{username}:{realm}:{password}".encode()
    return hashlib.md5(text, usedforsecurity=False).digest()


# -- decoding ---------------------------------------------------------------


def isStunMessage(data: bytes) -> bool:
    """The first two bits are zero and the cookie is there: a cheap test to
    tell STUN from ChannelData and noise (RFC 8489 section 5)."""
    return len(data) >= HEADER_LENGTH and data[0] & 0xC0 == 0 and data[4:8] == MAGIC_COOKIE_BYTES


def decodeMessage(data: bytes) -> Message:
    """One whole STUN message (a datagram, or a frame the stream framer
    cut).  Checks the header, every attribute's bounds and padding, the
    placement of MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT, and the
    fingerprint value when present (RFC 8489 sections 5, 14, 14.7)."""
    if len(data) < HEADER_LENGTH:
        raise StunDecodeError("shorter than a STUN header")
    messageType, length, cookie, transactionId = _HEADER.unpack_from(data)
    if messageType & 0xC000:
        raise StunDecodeError("the first two bits of a STUN message must be 0")
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError("no STUN magic cookie")
    if length % 4:
        raise StunDecodeError("STUN message length is not a multiple of 4")
    if HEADER_LENGTH + length != len(data):
        raise StunDecodeError(
            f"STUN length field says {length}, body has {len(data) - HEADER_LENGTH}"
        )
    method, messageClass = decodeMessageType(messageType)
    attributes: list[Attribute] = []
    offset = HEADER_LENGTH
    sawIntegrity = sawIntegritySha256 = sawFingerprint = False
    while offset < len(data):
        if sawFingerprint:
            raise StunDecodeError("FINGERPRINT must be the last attribute")
        if offset + 4 > len(data):
            raise StunDecodeError("truncated attribute header")
        attributeType, attributeLength = _ATTRIBUTE_HEADER.unpack_from(data, offset)
        start = offset + 4
        end = start + attributeLength
        padded = start + (attributeLength + 3) // 4 * 4
        if padded > len(data):
            raise StunDecodeError(f"attribute 0x{attributeType:04x} overruns the message")
        value = data[start:end]
        attribute = Attribute(attributeType, value, offset)
        offset = padded
        if attributeType == Attr.FINGERPRINT:
            if len(value) != 4:
                raise StunDecodeError("FINGERPRINT must be 4 bytes")
            if value != _fingerprint(data, attribute.offset):
                raise StunDecodeError("FINGERPRINT does not match")
            sawFingerprint = True
        elif attributeType == Attr.MESSAGE_INTEGRITY_SHA256:
            if sawIntegritySha256:
                continue
            if not 16 <= len(value) <= 32 or len(value) % 4:
                raise StunDecodeError("MESSAGE-INTEGRITY-SHA256 has a bad length")
            sawIntegritySha256 = True
        elif attributeType == Attr.MESSAGE_INTEGRITY:
            if sawIntegrity or sawIntegritySha256:
                continue  # RFC 8489 section 14.5: ignored after the integrity
            if len(value) != 20:
                raise StunDecodeError("MESSAGE-INTEGRITY must be 20 bytes")
            sawIntegrity = True
        elif sawIntegrity or sawIntegritySha256:
            continue  # RFC 8489 sections 14.5, 14.6: ignore what follows
        attributes.append(attribute)
    return Message(method, messageClass, transactionId, tuple(attributes), data)


def _withLength(data: bytes, end: int, length: int) -> bytes:
    """``data[:end]`` with the header's length field set to ``length``: the
    text MESSAGE-INTEGRITY and FINGERPRINT cover (RFC 8489 section 14.5)."""
    return data[:2] + _UINT16.pack(length) + data[4:end]


def _fingerprint(data: bytes, offset: int) -> bytes:
    covered = _withLength(data, offset, offset - HEADER_LENGTH + 8)
    return _UINT32.pack(binascii.crc32(covered) ^ FINGERPRINT_XOR)


def integrityAlgorithm(message: Message) -> str | None:
    """The integrity attribute the message carries, "sha256" or "sha1"
    (SHA-256 wins when both are there, RFC 8489 section 9.2.4), or None."""
    if message.has(Attr.MESSAGE_INTEGRITY_SHA256):
        return "sha256"
    if message.has(Attr.MESSAGE_INTEGRITY):
        return "sha1"
    return None


def verifyIntegrity(message: Message, key: bytes) -> bool:
    """Whether the received message's MESSAGE-INTEGRITY-SHA256 (preferred)
    or MESSAGE-INTEGRITY is right for ``key``; False when it has neither.
    Constant-time comparison."""
    data = message.raw
    attribute = message.find(Attr.MESSAGE_INTEGRITY_SHA256)
    if attribute is not None:
        size = len(attribute.value)
        covered = _withLength(data, attribute.offset, attribute.offset - HEADER_LENGTH + 4 + size)
        expected = hmac.new(key, covered, hashlib.sha256).digest()[:size]
        return hmac.compare_digest(expected, attribute.value)
    attribute = message.find(Attr.MESSAGE_INTEGRITY)
    if attribute is not None:
        covered = _withLength(data, attribute.offset, attribute.offset - HEADER_LENGTH + 24)
        expected = hmac.new(key, covered, hashlib.sha1).digest()
        return hmac.compare_digest(expected, attribute.value)
    return False


# -- encoding ---------------------------------------------------------------


def _encodeAttribute(attributeType: int, value: bytes, padding: bytes) -> bytes:
    pad = (-len(value)) % 4
    return _ATTRIBUTE_HEADER.pack(attributeType, len(value)) + value + padding * pad


def encodeMessage(
    method: int,
    messageClass: int,
    transactionId: bytes,
    attributes: Sequence[tuple[int, bytes]] = (),
    *,
    integrityKey: bytes | None = None,
    integrity: str = "sha1",
    fingerprint: bool = False,
    padding: bytes = b"\x00",
) -> bytes:
    """A STUN message with ``attributes`` in order, then, when
    ``integrityKey`` is given, MESSAGE-INTEGRITY (``integrity="sha1"``),
    MESSAGE-INTEGRITY-SHA256 (``"sha256"``) or both (``"both"``), then
    FINGERPRINT (RFC 8489 sections 14.5 to 14.7).  ``padding`` is the pad
    byte (any value is legal; RFC 5769 uses spaces)."""
    if len(transactionId) != 12:
        raise ValueError("a transaction id is 12 bytes")
    if integrity not in ("sha1", "sha256", "both"):
        raise ValueError(f"unknown integrity algorithm {integrity!r}")
    messageType = encodeMessageType(method, messageClass)
    body = b"".join(_encodeAttribute(t, v, padding) for t, v in attributes)

    def header(bodyLength: int) -> bytes:
        return _HEADER.pack(messageType, bodyLength, MAGIC_COOKIE, transactionId)

    if integrityKey is not None:
        if integrity in ("sha1", "both"):
            mac = hmac.new(integrityKey, header(len(body) + 24) + body, hashlib.sha1).digest()
            body += _encodeAttribute(Attr.MESSAGE_INTEGRITY, mac, padding)
        if integrity in ("sha256", "both"):
            mac = hmac.new(integrityKey, header(len(body) + 36) + body, hashlib.sha256).digest()
            body += _encodeAttribute(Attr.MESSAGE_INTEGRITY_SHA256, mac, padding)
    if fingerprint:
        crc = binascii.crc32(header(len(body) + 8) + body) ^ FINGERPRINT_XOR
        body += _encodeAttribute(Attr.FINGERPRINT, _UINT32.pack(crc), padding)
    return header(len(body)) + body


# -- ChannelData (RFC 8656 section 12.4) -------------------------------------


@dataclass(frozen=True)
class ChannelData:
    """A ChannelData message: the channel number and the application data."""

    channel: int
    data: bytes


def isChannelData(data: bytes) -> bool:
    """The first two bits are 01 (RFC 8656 section 12, RFC 7983)."""
    return len(data) >= 1 and data[0] & 0xC0 == 0x40


def encodeChannelData(channel: int, data: bytes, *, pad: bool = False) -> bytes:
    """A ChannelData message; ``pad`` adds the zero padding to a multiple of
    4 that stream transports need (RFC 8656 section 12.5)."""
    if not MIN_CHANNEL <= channel <= MAX_CHANNEL:
        raise ValueError(f"channel number out of range: 0x{channel:04x}")
    if len(data) > 0xFFFF:
        raise ValueError("ChannelData carries at most 65535 bytes")
    framed = struct.pack("!HH", channel, len(data)) + data
    if pad:
        framed += b"\x00" * ((-len(data)) % 4)
    return framed


def decodeChannelData(datagram: bytes) -> ChannelData:
    """A ChannelData message from one datagram (or stream frame).  Over UDP
    the padding may or may not be there (RFC 8656 section 12.5), so bytes
    past the length are ignored; fewer than the length is an error."""
    if len(datagram) < CHANNEL_DATA_HEADER_LENGTH:
        raise StunDecodeError("shorter than a ChannelData header")
    channel, length = struct.unpack_from("!HH", datagram)
    if not MIN_CHANNEL <= channel <= MAX_CHANNEL:
        raise StunDecodeError(f"not a ChannelData channel number: 0x{channel:04x}")
    if CHANNEL_DATA_HEADER_LENGTH + length > len(datagram):
        raise StunDecodeError("ChannelData shorter than its length field")
    return ChannelData(channel, datagram[4 : 4 + length])


def decodeDatagram(datagram: bytes) -> Message | ChannelData:
    """A UDP datagram to a TURN server: a STUN message or ChannelData."""
    if isChannelData(datagram):
        return decodeChannelData(datagram)
    return decodeMessage(datagram)


# -- TCP and TLS streams (RFC 8656 section 12.5) ----------------------------


class StreamFramer:
    """Splits a byte stream into STUN messages and ChannelData messages.

    Feed it what the transport delivers; it returns the whole frames and
    keeps the rest.  A frame that is neither raises :class:`StunDecodeError`
    (the connection should be closed: a stream cannot resynchronise).  The
    buffer never holds more than one frame's worth (at most 65,555 bytes)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message | ChannelData]:
        self._buffer += data
        frames: list[Message | ChannelData] = []
        buffer = self._buffer
        while len(buffer) >= CHANNEL_DATA_HEADER_LENGTH:
            first = buffer[0] & 0xC0
            length = (buffer[2] << 8) | buffer[3]
            if first == 0x40:
                size = CHANNEL_DATA_HEADER_LENGTH + length + ((-length) % 4)
                if len(buffer) < size:
                    break
                frame = bytes(buffer[:size])
                del buffer[:size]
                frames.append(decodeChannelData(frame))
            elif first == 0:
                if len(buffer) >= 8 and buffer[4:8] != MAGIC_COOKIE_BYTES:
                    raise StunDecodeError("no STUN magic cookie in the stream")
                size = HEADER_LENGTH + length
                if length % 4:
                    raise StunDecodeError("STUN message length is not a multiple of 4")
                if len(buffer) < size:
                    break
                frame = bytes(buffer[:size])
                del buffer[:size]
                frames.append(decodeMessage(frame))
            else:
                raise StunDecodeError("stream data is neither STUN nor ChannelData")
        return frames

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)
