"""STUN (RFC 5389) as far as RELOAD's ICE needs it: Binding requests,
responses and indications with the ICE attributes (RFC 8445 section 16),
and the TURN methods and attributes (RFC 8656 sections 16-18) of the
relayed candidates' client (:mod:`reload.link.turnclient`).

RFC 6940 section 6.5.1 makes every peer a STUN server for the others and
runs ICE connectivity checks and keepalives (section 6.5.1.10.3) as STUN
Binding transactions on the same UDP port as the DTLS links; RFC 7983
tells the two apart by the first byte (:func:`looksLikeStun`).

Sans-I/O: bytes in, :class:`StunMessage` out and back.  Every decoding
failure is a :class:`~reload.wire.errors.DecodeError`.  MESSAGE-INTEGRITY
uses short-term credentials (the key is the password itself, RFC 5389
section 15.4); FINGERPRINT is added to everything encoded here and, when
present, checked on decoding.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import os
import struct
from dataclasses import dataclass, field
from typing import Final

from reload.wire.errors import DecodeError

__all__ = [
    "ALLOCATE",
    "BINDING",
    "CREATE_PERMISSION",
    "DATA",
    "ERROR",
    "INDICATION",
    "REFRESH",
    "REQUEST",
    "SEND",
    "SUCCESS",
    "Attr",
    "StunMessage",
    "checkIntegrity",
    "decodeErrorCode",
    "decodeXorAddress",
    "encodeXorAddress",
    "longTermKey",
    "looksLikeStun",
    "newTransactionId",
]

MAGIC_COOKIE = 0x2112A442
_HEADER = struct.Struct("!HHI12s")
_ATTR = struct.Struct("!HH")
_FINGERPRINT_XOR = 0x5354554E

BINDING = 0x0001
#: TURN methods (RFC 8656 section 17).
ALLOCATE = 0x0003
REFRESH = 0x0004
SEND = 0x0006
DATA = 0x0007
CREATE_PERMISSION = 0x0008
#: Message classes (RFC 5389 section 6), as bits of the message type.
REQUEST = 0x0000
INDICATION = 0x0010
SUCCESS = 0x0100
ERROR = 0x0110
_CLASS_MASK = 0x0110


class Attr:
    """Attribute types used here (RFC 5389 section 18.2, RFC 8445 section 16.1)."""

    MAPPED_ADDRESS: Final = 0x0001
    USERNAME: Final = 0x0006
    MESSAGE_INTEGRITY: Final = 0x0008
    ERROR_CODE: Final = 0x0009
    # TURN (RFC 8656 section 18).
    LIFETIME: Final = 0x000D
    XOR_PEER_ADDRESS: Final = 0x0012
    DATA: Final = 0x0013
    REALM: Final = 0x0014
    NONCE: Final = 0x0015
    XOR_RELAYED_ADDRESS: Final = 0x0016
    REQUESTED_TRANSPORT: Final = 0x0019
    XOR_MAPPED_ADDRESS: Final = 0x0020
    PRIORITY: Final = 0x0024
    USE_CANDIDATE: Final = 0x0025
    SOFTWARE: Final = 0x8022
    FINGERPRINT: Final = 0x8028
    ICE_CONTROLLED: Final = 0x8029
    ICE_CONTROLLING: Final = 0x802A


def newTransactionId() -> bytes:
    return os.urandom(12)


def looksLikeStun(datagram: bytes) -> bool:
    """RFC 7983 section 7: a first byte of 0-3 is STUN (DTLS is 20-63);
    the magic cookie confirms it."""
    return (
        len(datagram) >= 20
        and datagram[0] < 4
        and struct.unpack_from("!I", datagram, 4)[0] == MAGIC_COOKIE
    )


@dataclass(frozen=True)
class StunMessage:
    """One STUN message; ``attributes`` in wire order, MESSAGE-INTEGRITY
    and FINGERPRINT excluded (:meth:`encode` adds them)."""

    method: int
    cls: int
    transactionId: bytes
    attributes: tuple[tuple[int, bytes], ...] = field(default=())

    def get(self, kind: int) -> bytes | None:
        for t, value in self.attributes:
            if t == kind:
                return value
        return None

    def has(self, kind: int) -> bool:
        return any(t == kind for t, _ in self.attributes)

    def encode(self, integrityKey: bytes | None = None) -> bytes:
        """The message, with MESSAGE-INTEGRITY under ``integrityKey`` when
        given, and FINGERPRINT."""
        body = b"".join(_attribute(t, v) for t, v in self.attributes)
        kind = self.method | self.cls
        if integrityKey is not None:
            length = len(body) + 24
            header = _HEADER.pack(kind, length, MAGIC_COOKIE, self.transactionId)
            mac = hmac.new(integrityKey, header + body, hashlib.sha1).digest()
            body += _attribute(Attr.MESSAGE_INTEGRITY, mac)
        header = _HEADER.pack(kind, len(body) + 8, MAGIC_COOKIE, self.transactionId)
        crc = (binascii.crc32(header + body) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
        return header + body + _attribute(Attr.FINGERPRINT, struct.pack("!I", crc))

    @classmethod
    def decode(cls, data: bytes) -> StunMessage:
        if len(data) < 20:
            raise DecodeError("stun", f"a STUN header is 20 bytes, not {len(data)}")
        kind, length, cookie, transactionId = _HEADER.unpack_from(data)
        if kind & 0xC000 or cookie != MAGIC_COOKIE:
            raise DecodeError("stun", "not a STUN message (first bits or magic cookie)")
        if length % 4 or 20 + length != len(data):
            raise DecodeError("stun.length", f"{length} does not fit {len(data) - 20} bytes")
        attributes: list[tuple[int, bytes]] = []
        pos = 20
        while pos < len(data):
            if pos + 4 > len(data):
                raise DecodeError("stun.attributes", "truncated attribute header")
            t, n = _ATTR.unpack_from(data, pos)
            if pos + 4 + n > len(data):
                raise DecodeError("stun.attributes", f"attribute {t:#06x} overruns the message")
            value = data[pos + 4 : pos + 4 + n]
            if t == Attr.FINGERPRINT:
                if n != 4 or pos + 8 != len(data):
                    raise DecodeError("stun.fingerprint", "FINGERPRINT must come last")
                prefix = struct.pack("!HH", kind, pos + 8 - 20) + data[4:pos]
                expected = (binascii.crc32(prefix) ^ _FINGERPRINT_XOR) & 0xFFFFFFFF
                if struct.unpack("!I", value)[0] != expected:
                    raise DecodeError("stun.fingerprint", "wrong FINGERPRINT")
            elif t != Attr.MESSAGE_INTEGRITY:
                attributes.append((t, value))
            pos += 4 + n + (-n % 4)
        return cls(
            kind & ~_CLASS_MASK & 0x3FFF, kind & _CLASS_MASK, transactionId, tuple(attributes)
        )


def _attribute(kind: int, value: bytes) -> bytes:
    return _ATTR.pack(kind, len(value)) + value + b"\0" * (-len(value) % 4)


def checkIntegrity(data: bytes, key: bytes) -> bool:
    """Whether ``data`` (a STUN message that decoded) carries a
    MESSAGE-INTEGRITY that ``key`` produced (RFC 5389 section 15.4)."""
    pos = 20
    while pos + 4 <= len(data):
        t, n = _ATTR.unpack_from(data, pos)
        if t == Attr.MESSAGE_INTEGRITY:
            if n != 20 or pos + 24 > len(data):
                return False
            header = data[:2] + struct.pack("!H", pos + 24 - 20) + data[4:20]
            mac = hmac.new(key, header + data[20:pos], hashlib.sha1).digest()
            return hmac.compare_digest(mac, data[pos + 4 : pos + 24])
        pos += 4 + n + (-n % 4)
    return False


def encodeXorAddress(host: str, port: int, transactionId: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS (RFC 5389 section 15.2)."""
    ip = ipaddress.ip_address(host)
    xport = port ^ (MAGIC_COOKIE >> 16)
    mask = struct.pack("!I", MAGIC_COOKIE) + (transactionId if ip.version == 6 else b"")
    packed = bytes(a ^ b for a, b in zip(ip.packed, mask, strict=False))
    return struct.pack("!BBH", 0, 1 if ip.version == 4 else 2, xport) + packed


def decodeXorAddress(value: bytes, transactionId: bytes) -> tuple[str, int]:
    if len(value) < 8:
        raise DecodeError("stun.xor-mapped-address", "too short")
    _, family, xport = struct.unpack_from("!BBH", value)
    size = {1: 4, 2: 16}.get(family)
    if size is None or len(value) != 4 + size:
        raise DecodeError("stun.xor-mapped-address", f"bad family {family} or length")
    mask = struct.pack("!I", MAGIC_COOKIE) + transactionId
    packed = bytes(a ^ b for a, b in zip(value[4:], mask, strict=False))
    return str(ipaddress.ip_address(packed)), xport ^ (MAGIC_COOKIE >> 16)


def decodeErrorCode(value: bytes) -> int:
    """The number of an ERROR-CODE attribute (RFC 5389 section 15.6)."""
    if len(value) < 4:
        raise DecodeError("stun.error-code", "too short")
    return (value[2] & 0x07) * 100 + value[3]


def longTermKey(username: str, realm: str, password: str) -> bytes:
    """RFC 5389 section 15.4: the long-term credential key TURN uses,
    MD5(username ":" realm ":" password)."""
    text = f"{username}:{realm}:{password}".encode()
    return hashlib.md5(text, usedforsecurity=False).digest()
