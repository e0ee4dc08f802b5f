"""Attach and AppAttach bodies and the ICE candidates they carry.

RFC 6940 section 6.5.1 (Attach) and 6.5.2 (AppAttach) translate the ICE
offer/answer of RFC 5245 into a binary structure: a username fragment, a
password, a role and a list of :class:`IceCandidate`.  The address type
:class:`IpAddressPort` (section 6.3.1.1) lives here too because the
candidates are its main user; the TURN usage (section 9) reuses it.

Extensibility follows the RFC: ``IpAddressPort`` says "this structure can be
extended", so an unknown address type is kept as raw bytes; OverlayLinkType is
an IANA registry (section 14.10) whose new entries travel in a fixed one-byte
field, so an unknown link type is kept as its number; ICE extensions are
name/value pairs and always round-trip.  CandType selects the presence of
``rel_addr_port`` and is not declared extensible, so an unknown candidate type
is a parse error (section 6.3.1.1, last paragraph).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Self

from reload.wire.base import SLOTTED, WireStruct
from reload.wire.buffer import Reader, opaque8, opaque16
from reload.wire.errors import EncodeError

__all__ = [
    "NO_ICE_LINK_TYPES",
    "AddressType",
    "AppAttachAns",
    "AppAttachReq",
    "AttachAns",
    "AttachReq",
    "AttachReqAns",
    "CandType",
    "IceCandidate",
    "IceExtension",
    "IpAddressPort",
    "OverlayLinkType",
]

_V4 = struct.Struct("!BB4sH")  # type, length, addr, port
_V6 = struct.Struct("!BB16sH")
_BB = struct.Struct("!BB")
_LINK_PRIO = struct.Struct("!I")


class AddressType(IntEnum):
    """Section 6.3.1.1; 0 is invalid, other values may be added."""

    IPV4_ADDRESS = 1
    IPV6_ADDRESS = 2


class OverlayLinkType(IntEnum):
    """Section 6.5.1.1 and the IANA registry of section 14.10.

    Value 2 was never assigned (it was DTLS-UDP-SR with a draft framing);
    EXP-LINK (5) is for experiments only.
    """

    DTLS_UDP_SR = 1
    DTLS_UDP_SR_NO_ICE = 3
    TLS_TCP_FH_NO_ICE = 4
    EXP_LINK = 5


#: Link types whose description says "No-ICE" (section 6.5.1.1: one
#: AttachReqAns must not mix these with ICE candidates; section 6.5.1.11).
NO_ICE_LINK_TYPES = frozenset(
    {OverlayLinkType.DTLS_UDP_SR_NO_ICE, OverlayLinkType.TLS_TCP_FH_NO_ICE}
)


class CandType(IntEnum):
    """Section 6.5.1.1, the ICE cand-type production.

    RFC 6940's enum comments out ``RESERVED(3)``, yet its prose says
    ``rel_addr_port`` is present for "relay", "prfix" [sic] and "srflx"; the
    drafts (and Wireshark's dissector) give peer-reflexive the value 3.  It is
    accepted here, with a related address, so draft-era peers interoperate.
    """

    HOST = 1
    SRFLX = 2
    PRFLX = 3
    RELAY = 4


_ADDRESS_TYPES = {t.value: t for t in AddressType}
_LINK_TYPES = {t.value: t for t in OverlayLinkType}
_CAND_TYPES = {t.value: t for t in CandType}


@dataclass(frozen=True, init=False, **SLOTTED)
class IpAddressPort(WireStruct):
    """Section 6.3.1.1: an address type, a length, then the address.

    ``address`` is the 4-byte (IPv4) or 16-byte (IPv6) address in network
    order.  For an address type this peer does not know, ``address`` holds
    the raw bytes after the length field and ``port`` must be 0, so the
    structure is passed on unchanged (the RFC put the length first for
    exactly that).  :meth:`of` and :attr:`ip` convert to and from
    :mod:`ipaddress` objects.
    """

    type: int
    address: bytes
    port: int = 0

    def __init__(self, type: int, address: bytes, port: int = 0) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "port", port)

    @classmethod
    def of(cls, address: str | IPv4Address | IPv6Address, port: int) -> IpAddressPort:
        """Build from an address in text or :mod:`ipaddress` form."""
        ip = ip_address(address) if isinstance(address, str) else address
        kind = AddressType.IPV4_ADDRESS if ip.version == 4 else AddressType.IPV6_ADDRESS
        return cls(kind, ip.packed, port)

    @property
    def ip(self) -> IPv4Address | IPv6Address | None:
        """The address as an :mod:`ipaddress` object; None for unknown types."""
        if self.type == AddressType.IPV4_ADDRESS and len(self.address) == 4:
            return IPv4Address(self.address)
        if self.type == AddressType.IPV6_ADDRESS and len(self.address) == 16:
            return IPv6Address(self.address)
        return None

    def encode(self) -> bytes:
        t, address, port = self.type, self.address, self.port
        if t == 1 or t == 2:
            fmt = _V4 if t == 1 else _V6
            if len(address) != fmt.size - 4:
                raise EncodeError(f"address type {t} needs {fmt.size - 4} address bytes")
            if not 0 <= port <= 0xFFFF:
                raise EncodeError(f"port out of range: {port}")
            return fmt.pack(t, fmt.size - 2, address, port)
        if not 1 <= t <= 255:
            raise EncodeError(f"address type {t} is not allowed")
        if port:
            raise EncodeError(f"address type {t} is opaque here and has no port")
        return bytes((t,)) + opaque8(address)

    @classmethod
    def read(cls, r: Reader) -> Self:
        data, pos = r.data, r.pos
        if pos + 2 > r.end:
            raise r.error("type", "address type and length need 2 bytes")
        t, n = _BB.unpack_from(data, pos)
        if pos + 2 + n > r.end:
            raise r.error("length", f"{n} bytes announced, {r.end - pos - 2} left")
        r.pos = pos + 2 + n
        if t == 1:
            if n != 6:
                raise r.error("length", f"an IPv4 address and port are 6 bytes, not {n}")
            _, _, address, port = _V4.unpack_from(data, pos)
            return cls(AddressType.IPV4_ADDRESS, address, port)
        if t == 2:
            if n != 18:
                raise r.error("length", f"an IPv6 address and port are 18 bytes, not {n}")
            _, _, address, port = _V6.unpack_from(data, pos)
            return cls(AddressType.IPV6_ADDRESS, address, port)
        if t == 0:
            raise r.error("type", "invalid address type 0")
        return cls(t, bytes(data[pos + 2 : pos + 2 + n]))


def _vector(r: Reader, length_bytes: int, field: str) -> Reader:
    """A reader over the vector ``field`` whose errors name its elements
    ``field[i]`` (not ``field.[i]``)."""
    sub = r.sub(length_bytes, field)
    sub.path = r.path
    return sub


def _read_addr(r: Reader, field: str) -> IpAddressPort:
    sub = r.enter(field)
    value = IpAddressPort.read(sub)
    r.pos = sub.pos
    return value


@dataclass(frozen=True, init=False, **SLOTTED)
class IceExtension(WireStruct):
    """Section 6.5.1.1: an ICE extension attribute, as binary name and value.

    RELOAD defines none, so every extension is carried as it came.
    """

    name: bytes
    value: bytes

    def __init__(self, name: bytes, value: bytes) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "value", value)

    def encode(self) -> bytes:
        return opaque16(self.name) + opaque16(self.value)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.opaque(2, "name"), r.opaque(2, "value"))


@dataclass(frozen=True, init=False, **SLOTTED)
class IceCandidate(WireStruct):
    """Section 6.5.1.1: one ICE candidate (the component ID is always 1 and
    left out).

    ``overlay_link`` is an :class:`OverlayLinkType`, or the number of a link
    type registered after this code was written (kept so the candidate can
    be skipped rather than the whole message refused).  ``rel_addr_port`` is
    present exactly for server-reflexive, peer-reflexive and relayed
    candidates.
    """

    addr_port: IpAddressPort
    overlay_link: int
    foundation: bytes
    priority: int
    type: CandType
    rel_addr_port: IpAddressPort | None = None
    extensions: tuple[IceExtension, ...] = ()

    def __init__(
        self,
        addr_port: IpAddressPort,
        overlay_link: int,
        foundation: bytes,
        priority: int,
        type: CandType,
        rel_addr_port: IpAddressPort | None = None,
        extensions: tuple[IceExtension, ...] = (),
    ) -> None:
        object.__setattr__(self, "addr_port", addr_port)
        object.__setattr__(self, "overlay_link", overlay_link)
        object.__setattr__(self, "foundation", foundation)
        object.__setattr__(self, "priority", priority)
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "rel_addr_port", rel_addr_port)
        object.__setattr__(self, "extensions", extensions)

    def encode(self) -> bytes:
        link = self.overlay_link
        if not 1 <= link <= 255:
            raise EncodeError(f"overlay link type {link} is not allowed")
        if not 0 <= self.priority <= 0xFFFFFFFF:
            raise EncodeError(f"priority out of range: {self.priority}")
        t = self.type
        if t not in _CAND_TYPES:
            raise EncodeError(f"unknown candidate type {t}")
        parts = [self.addr_port.encode(), bytes((link,)), opaque8(self.foundation)]
        parts.append(_LINK_PRIO.pack(self.priority))
        parts.append(bytes((t,)))
        if t == CandType.HOST:
            if self.rel_addr_port is not None:
                raise EncodeError("a host candidate has no rel_addr_port")
        else:
            if self.rel_addr_port is None:
                raise EncodeError(f"a {CandType(t).name.lower()} candidate needs rel_addr_port")
            parts.append(self.rel_addr_port.encode())
        parts.append(opaque16(b"".join(e.encode() for e in self.extensions)))
        return b"".join(parts)

    @classmethod
    def read(cls, r: Reader) -> Self:
        addr_port = _read_addr(r, "addr_port")
        link = r.u8("overlay_link")
        if link == 0:
            raise r.error("overlay_link", "invalid overlay link type 0")
        foundation = r.opaque(1, "foundation")
        priority = r.u32("priority")
        raw_type = r.u8("type")
        cand_type = _CAND_TYPES.get(raw_type)
        if cand_type is None:
            raise r.error("type", f"unknown candidate type {raw_type}")
        rel = None if cand_type is CandType.HOST else _read_addr(r, "rel_addr_port")
        ext_r = _vector(r, 2, "extensions")
        extensions = _read_extensions(ext_r) if ext_r.pos < ext_r.end else ()
        return cls(
            addr_port, _LINK_TYPES.get(link, link), foundation, priority, cand_type, rel, extensions
        )


def _read_extensions(r: Reader) -> tuple[IceExtension, ...]:
    out: list[IceExtension] = []
    while r.pos < r.end:
        index = len(out)
        # Both fields are 16-bit length vectors; name the element on failure.
        name = r.opaque(2, f"extensions[{index}].name")
        value = r.opaque(2, f"extensions[{index}].value")
        out.append(IceExtension(name, value))
    return tuple(out)


def _encode_candidates(candidates: tuple[IceCandidate, ...]) -> bytes:
    return opaque16(b"".join(c.encode() for c in candidates))


def _read_candidates(r: Reader) -> tuple[IceCandidate, ...]:
    sub = _vector(r, 2, "candidates")
    out: list[IceCandidate] = []
    while sub.pos < sub.end:
        item = sub.enter(f"candidates[{len(out)}]")
        out.append(IceCandidate.read(item))
        sub.pos = item.pos
    return tuple(out)


@dataclass(frozen=True, **SLOTTED)
class AttachReqAns(WireStruct):
    """Section 6.5.1.1: the body of both the Attach request and its answer.

    Use :class:`AttachReq` or :class:`AttachAns`, which differ only in their
    message code.  ``role`` is RFC 4145's "passive" (offerer) or "active"
    (answerer), carried as bytes.  ``send_update`` asks the answerer for an
    Update once the connection is up (section 6.4.2.3).
    """

    ufrag: bytes
    password: bytes
    role: bytes
    candidates: tuple[IceCandidate, ...] = ()
    send_update: bool = False

    def encode(self) -> bytes:
        return b"".join(
            (
                opaque8(self.ufrag),
                opaque8(self.password),
                opaque8(self.role),
                _encode_candidates(self.candidates),
                b"\x01" if self.send_update else b"\x00",
            )
        )

    @classmethod
    def read(cls, r: Reader) -> Self:
        ufrag = r.opaque(1, "ufrag")
        password = r.opaque(1, "password")
        role = r.opaque(1, "role")
        candidates = _read_candidates(r)
        return cls(ufrag, password, role, candidates, r.boolean("send_update"))


@dataclass(frozen=True, **SLOTTED)
class AttachReq(AttachReqAns):
    """Section 6.5.1.1: attach_req (section 14.8)."""


AttachReq.CODE = 0x03


@dataclass(frozen=True, **SLOTTED)
class AttachAns(AttachReqAns):
    """Section 6.5.1.2: attach_ans, the answerer's AttachReqAns."""


AttachAns.CODE = 0x04


@dataclass(frozen=True, **SLOTTED)
class _AppAttachBody(WireStruct):
    """Sections 6.5.2.1 and 6.5.2.2: AppAttachReq and AppAttachAns share
    one layout; ``application`` is the Application-ID of section 14.5
    (5060 for SIP) naming the protocol to run over the connection."""

    ufrag: bytes
    password: bytes
    application: int
    role: bytes
    candidates: tuple[IceCandidate, ...] = ()

    def encode(self) -> bytes:
        if not 0 <= self.application <= 0xFFFF:
            raise EncodeError(f"application out of range: {self.application}")
        return b"".join(
            (
                opaque8(self.ufrag),
                opaque8(self.password),
                self.application.to_bytes(2, "big"),
                opaque8(self.role),
                _encode_candidates(self.candidates),
            )
        )

    @classmethod
    def read(cls, r: Reader) -> Self:
        ufrag = r.opaque(1, "ufrag")
        password = r.opaque(1, "password")
        application = r.u16("application")
        role = r.opaque(1, "role")
        return cls(ufrag, password, application, role, _read_candidates(r))


@dataclass(frozen=True, **SLOTTED)
class AppAttachReq(_AppAttachBody):
    """Section 6.5.2.1: app_attach_req (section 14.8)."""


AppAttachReq.CODE = 0x1D


@dataclass(frozen=True, **SLOTTED)
class AppAttachAns(_AppAttachBody):
    """Section 6.5.2.2: app_attach_ans (section 14.8)."""


AppAttachAns.CODE = 0x1E
