"""The forwarding header (RFC 6940 section 6.3.2) and the forwarding fast path.

A peer in the middle of a route must look at the fixed header and the
destination list, push the previous hop on the via list, decrement the TTL
and send the message on: it never needs the message body.
:class:`HeaderView` does exactly that on the raw bytes, re-using the encoded
via list, destination list, options and body as they arrived.  The full
:class:`ForwardingHeader` dataclass is for building messages and for tests.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from reload.wire.base import SLOTTED
from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError, EncodeError

#: Section 6.3.2: "RELO" with the high bit of the first byte set.
RELO_TOKEN = 0xD2454C4F
#: Section 6.3.2: version 1.0 times ten.
VERSION = 0x0A
#: Section 6.3.2: the initial TTL SHOULD be 100.
DEFAULT_TTL = 100
#: Section 6.3.2: fragment field bits.
FRAGMENT_HIGH_BIT = 0x80000000
LAST_FRAGMENT = 0x40000000
FRAGMENT_OFFSET_MASK = 0x00FFFFFF
#: Section 11.1: max-message-size default when the configuration is silent.
DEFAULT_MAX_MESSAGE_SIZE = 5000

_FIXED = struct.Struct("!IIHBBIIQIHHH")
FIXED_HEADER_SIZE = _FIXED.size  # 38 bytes
_LENGTH_OFFSET = 16  # byte offset of the length field inside the fixed header

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_TTL",
    "FIXED_HEADER_SIZE",
    "RELO_TOKEN",
    "VERSION",
    "Destination",
    "DestinationType",
    "ForwardingFlags",
    "ForwardingHeader",
    "ForwardingOption",
    "HeaderView",
    "overlay_hash",
]


def overlay_hash(overlay_name: str) -> int:
    """Section 6.3.2: the lower 32 bits of SHA-1 of the overlay name."""
    digest = hashlib.sha1(overlay_name.encode("ascii")).digest()
    return int.from_bytes(digest[-4:], "big")


class DestinationType(IntEnum):
    """Section 6.3.2.2; 128-255 are not allowed (they mark the 16-bit form)."""

    NODE = 1
    RESOURCE = 2
    OPAQUE_ID = 3


class ForwardingFlags(IntFlag):
    """Section 6.3.2.3 forwarding option flags."""

    FORWARD_CRITICAL = 0x01
    DESTINATION_CRITICAL = 0x02
    RESPONSE_COPY = 0x04


@dataclass(frozen=True, init=False, **SLOTTED)
class Destination:
    """One entry of a via list or destination list (section 6.3.2.2).

    ``type`` is a :class:`DestinationType` value or, for types this peer does
    not know, the raw type byte (1-127), with ``value`` the raw
    destination_data so that the entry is forwarded unchanged.  For NODE it
    is the Node-ID, for RESOURCE the Resource-ID, for OPAQUE_ID the opaque id.
    ``compressed`` selects the 16-bit form: an OPAQUE_ID of two bytes whose
    top bit is set, encoded as just those two bytes.
    """

    type: int
    value: bytes
    compressed: bool = False

    def __init__(self, type: int, value: bytes, compressed: bool = False) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "compressed", compressed)

    @classmethod
    def node(cls, node_id: bytes) -> Destination:
        return cls(DestinationType.NODE, node_id)

    @classmethod
    def resource(cls, resource_id: bytes) -> Destination:
        return cls(DestinationType.RESOURCE, resource_id)

    @classmethod
    def opaque(cls, opaque_id: bytes) -> Destination:
        return cls(DestinationType.OPAQUE_ID, opaque_id)

    @classmethod
    def compressed_id(cls, value: int) -> Destination:
        """The 16-bit form; ``value`` must have its top bit set."""
        if not 0x8000 <= value <= 0xFFFF:
            raise EncodeError(f"a compressed destination needs the top bit set: {value:#x}")
        return cls(DestinationType.OPAQUE_ID, value.to_bytes(2, "big"), True)

    def encode(self) -> bytes:
        value = self.value
        if self.compressed:
            if len(value) != 2 or not value[0] & 0x80 or self.type != DestinationType.OPAQUE_ID:
                raise EncodeError(
                    "a compressed destination is a 2-byte opaque id with the top bit set"
                )
            return value
        t = self.type
        if not 1 <= t <= 127:
            raise EncodeError(f"destination type {t} is not allowed")
        n = len(value)
        if t == DestinationType.RESOURCE or t == DestinationType.OPAQUE_ID:
            # resource_id and opaque_id carry their own <0..2^8-1> length byte.
            if n > 254:
                raise EncodeError(f"destination value of {n} bytes is too long")
            return bytes((t, n + 1, n)) + value
        if n > 255:
            raise EncodeError(f"destination value of {n} bytes is too long")
        return bytes((t, n)) + value

    @classmethod
    def read(cls, r: Reader, field_name: str) -> Destination:
        data, pos = r.data, r.pos
        if pos >= r.end:
            raise r.error(field_name, "needs 1 byte, 0 left")
        first = data[pos]
        if first & 0x80:
            if pos + 2 > r.end:
                raise r.error(field_name, "compressed destination needs 2 bytes")
            r.pos = pos + 2
            return cls(DestinationType.OPAQUE_ID, bytes(data[pos : pos + 2]), True)
        if pos + 2 > r.end:
            raise r.error(field_name, "destination needs type and length")
        if first == 0:
            raise r.error(f"{field_name}.type", "invalid destination type 0")
        n = data[pos + 1]
        end = pos + 2 + n
        if end > r.end:
            raise r.error(f"{field_name}.length", f"{n} bytes announced, {r.end - pos - 2} left")
        r.pos = end
        if first == 2 or first == 3:
            if n == 0 or data[pos + 2] != n - 1:
                raise r.error(
                    f"{field_name}.destination_data",
                    "inner length does not match the destination length",
                )
            return cls(DestinationType(first), bytes(data[pos + 3 : end]))
        kind = DestinationType.NODE if first == 1 else first
        return cls(kind, bytes(data[pos + 2 : end]))


@dataclass(frozen=True, init=False, **SLOTTED)
class ForwardingOption:
    """Section 6.3.2.3.  No option types are defined by RFC 6940; unknown
    ones are carried opaquely so that a peer can apply the flag rules."""

    type: int
    flags: int
    value: bytes = b""

    def __init__(self, type: int, flags: int, value: bytes = b"") -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "flags", flags)
        object.__setattr__(self, "value", value)

    def encode(self) -> bytes:
        if not 1 <= self.type <= 255:
            raise EncodeError(f"forwarding option type {self.type} is not allowed")
        if not 0 <= self.flags <= 255 or len(self.value) > 0xFFFF:
            raise EncodeError("forwarding option flags or length out of range")
        return struct.pack("!BBH", self.type, self.flags, len(self.value)) + self.value

    @classmethod
    def read(cls, r: Reader, field_name: str) -> ForwardingOption:
        option_type = r.u8(f"{field_name}.type")
        if option_type == 0:
            raise r.error(f"{field_name}.type", "invalid forwarding option type 0")
        flags = r.u8(f"{field_name}.flags")
        value = r.opaque(2, f"{field_name}.value")
        return cls(option_type, flags, value)


def _encode_list(items: tuple[Destination, ...] | tuple[ForwardingOption, ...]) -> bytes:
    if not items:
        return b""
    return b"".join([item.encode() for item in items])


def _read_destinations(r: Reader, field_name: str) -> tuple[Destination, ...]:
    out = []
    index = 0
    while r.pos < r.end:
        out.append(Destination.read(r, f"{field_name}[{index}]"))
        index += 1
    return tuple(out)


def _read_options(r: Reader) -> tuple[ForwardingOption, ...]:
    out = []
    index = 0
    while r.pos < r.end:
        out.append(ForwardingOption.read(r, f"options[{index}]"))
        index += 1
    return tuple(out)


@dataclass(frozen=True, init=False, **SLOTTED)
class ForwardingHeader:
    """Section 6.3.2.  ``length`` is filled in when the message is encoded."""

    overlay: int
    transaction_id: int
    destination_list: tuple[Destination, ...]
    via_list: tuple[Destination, ...] = ()
    options: tuple[ForwardingOption, ...] = ()
    configuration_sequence: int = 0
    ttl: int = DEFAULT_TTL
    fragment: int = FRAGMENT_HIGH_BIT | LAST_FRAGMENT
    length: int = 0
    max_response_length: int = 0
    version: int = VERSION

    def __init__(
        self,
        overlay: int,
        transaction_id: int,
        destination_list: tuple[Destination, ...],
        via_list: tuple[Destination, ...] = (),
        options: tuple[ForwardingOption, ...] = (),
        configuration_sequence: int = 0,
        ttl: int = DEFAULT_TTL,
        fragment: int = FRAGMENT_HIGH_BIT | LAST_FRAGMENT,
        length: int = 0,
        max_response_length: int = 0,
        version: int = VERSION,
    ) -> None:
        object.__setattr__(self, "overlay", overlay)
        object.__setattr__(self, "transaction_id", transaction_id)
        object.__setattr__(self, "destination_list", destination_list)
        object.__setattr__(self, "via_list", via_list)
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "configuration_sequence", configuration_sequence)
        object.__setattr__(self, "ttl", ttl)
        object.__setattr__(self, "fragment", fragment)
        object.__setattr__(self, "length", length)
        object.__setattr__(self, "max_response_length", max_response_length)
        object.__setattr__(self, "version", version)

    @property
    def is_last_fragment(self) -> bool:
        return bool(self.fragment & LAST_FRAGMENT)

    @property
    def fragment_offset(self) -> int:
        return self.fragment & FRAGMENT_OFFSET_MASK

    @property
    def is_fragmented(self) -> bool:
        """True unless this is the whole message (offset 0 and last)."""
        return self.fragment_offset != 0 or not self.is_last_fragment

    def encode(self, body_length: int = 0) -> bytes:
        """Encode with ``length`` = header size + ``body_length``."""
        via = _encode_list(self.via_list)
        dest = _encode_list(self.destination_list)
        opts = _encode_list(self.options)
        if max(len(via), len(dest), len(opts)) > 0xFFFF:
            raise EncodeError("via list, destination list or options longer than 65535 bytes")
        total = FIXED_HEADER_SIZE + len(via) + len(dest) + len(opts) + body_length
        try:
            fixed = _FIXED.pack(
                RELO_TOKEN,
                self.overlay,
                self.configuration_sequence,
                self.version,
                self.ttl,
                self.fragment,
                total,
                self.transaction_id,
                self.max_response_length,
                len(via),
                len(dest),
                len(opts),
            )
        except struct.error as exc:
            raise EncodeError(f"forwarding header field out of range: {exc}") from None
        return fixed + via + dest + opts

    @classmethod
    def decode_from(
        cls, data: bytes, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> tuple[ForwardingHeader, int]:
        """Decode the header at the start of ``data``; return it and the
        offset where the message contents begin."""
        view = HeaderView(data, max_message_size)
        r = Reader(data, view.via_start, view.options_end, "ForwardingHeader")
        via_r = r.sub_fixed(view.dest_start - view.via_start, "via_list")
        via = _read_destinations(via_r, "")
        dest_r = r.sub_fixed(view.options_start - view.dest_start, "destination_list")
        dest = _read_destinations(dest_r, "")
        opts = _read_options(r.sub_fixed(view.options_end - view.options_start, "options"))
        header = cls(
            overlay=view.overlay,
            transaction_id=view.transaction_id,
            destination_list=dest,
            via_list=via,
            options=opts,
            configuration_sequence=view.configuration_sequence,
            ttl=view.ttl,
            fragment=view.fragment,
            length=view.length,
            max_response_length=view.max_response_length,
            version=view.version,
        )
        return header, view.options_end


def _scan(data: bytes, pos: int, end: int, field_name: str) -> list[int]:
    """End offsets of the destinations in ``data[pos:end]``, bounds-checked
    without building objects (the fast path's hot loop)."""
    ends: list[int] = []
    while pos < end:
        first = data[pos]
        if first & 0x80:
            pos += 2
        elif first == 0:
            raise DecodeError(
                f"ForwardingHeader.{field_name}[{len(ends)}].type", "invalid destination type 0"
            )
        elif pos + 1 < end:
            pos += 2 + data[pos + 1]
        else:
            pos = end + 1
        if pos > end:
            raise DecodeError(
                f"ForwardingHeader.{field_name}[{len(ends)}]", "runs past the end of the list"
            )
        ends.append(pos)
    return ends


#: Decoded destinations by their encoding.  A peer sees the same few hundred
#: Node-IDs over and over; re-using their objects keeps the fast path cheap.
#: Bounded: cleared when full.
_DESTINATION_CACHE: dict[bytes, Destination] = {}
_DESTINATION_CACHE_SIZE = 4096


def _destinations(
    data: bytes, pos: int, ends: list[int], field_name: str
) -> tuple[Destination, ...]:
    """Decode the destinations ``_scan`` delimited, through the cache."""
    out = []
    cache = _DESTINATION_CACHE
    for index, end in enumerate(ends):
        raw = data[pos:end]
        destination = cache.get(raw)
        if destination is None:
            r = Reader(raw, path=f"ForwardingHeader.{field_name}")
            destination = Destination.read(r, f"[{index}]")
            if len(cache) >= _DESTINATION_CACHE_SIZE:
                cache.clear()
            cache[raw] = destination
        out.append(destination)
        pos = end
    return tuple(out)


class HeaderView:
    """The fixed header and the destination list of a received message,
    read without touching the rest (the forwarding fast path).

    Raises :class:`DecodeError` for a message that is not RELOAD, has another
    version, announces a length other than the bytes given or above
    ``max_message_size``, or whose lists do not fit.
    """

    __slots__ = (
        "_dest_ends",
        "configuration_sequence",
        "data",
        "dest_start",
        "destinations",
        "fragment",
        "length",
        "max_response_length",
        "options_end",
        "options_start",
        "overlay",
        "transaction_id",
        "ttl",
        "version",
        "via_start",
    )

    overlay: int
    configuration_sequence: int
    version: int
    ttl: int
    fragment: int
    length: int
    transaction_id: int
    max_response_length: int
    via_start: int
    dest_start: int
    options_start: int
    options_end: int

    def __init__(self, data: bytes, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        size = len(data)
        if size < FIXED_HEADER_SIZE:
            raise DecodeError("ForwardingHeader", f"needs {FIXED_HEADER_SIZE} bytes, {size} given")
        (
            token,
            self.overlay,
            self.configuration_sequence,
            self.version,
            self.ttl,
            self.fragment,
            length,
            self.transaction_id,
            self.max_response_length,
            via_len,
            dest_len,
            opt_len,
        ) = _FIXED.unpack_from(data, 0)
        if token != RELO_TOKEN:
            raise DecodeError("ForwardingHeader.relo_token", f"{token:#010x} is not RELO")
        if self.version != VERSION:
            raise DecodeError("ForwardingHeader.version", f"unsupported version {self.version:#x}")
        if length > max_message_size:
            raise DecodeError(
                "ForwardingHeader.length",
                f"{length} exceeds the maximum message size {max_message_size}",
            )
        if length != size:
            raise DecodeError("ForwardingHeader.length", f"announces {length} bytes, {size} given")
        if not self.fragment & FRAGMENT_HIGH_BIT:
            raise DecodeError("ForwardingHeader.fragment", "the high bit must be set")
        self.length = length
        self.data = data
        self.via_start = FIXED_HEADER_SIZE
        self.dest_start = dest_start = FIXED_HEADER_SIZE + via_len
        self.options_start = options_start = dest_start + dest_len
        self.options_end = options_start + opt_len
        if self.options_end > size:
            raise DecodeError(
                "ForwardingHeader", "via list, destination list and options exceed the message"
            )
        # Walk the via list for bounds only; decode the destination list.
        _scan(data, FIXED_HEADER_SIZE, dest_start, "via_list")
        ends = _scan(data, dest_start, options_start, "destination_list")
        if not ends:
            raise DecodeError("ForwardingHeader.destination_list", "is empty")
        self._dest_ends = ends
        self.destinations: tuple[Destination, ...] = _destinations(
            data, dest_start, ends, "destination_list"
        )

    @property
    def via_list(self) -> tuple[Destination, ...]:
        """The via list, decoded (it was only bounds-checked on receipt)."""
        if self.dest_start == self.via_start:
            return ()
        ends = _scan(self.data, self.via_start, self.dest_start, "via_list")
        return _destinations(self.data, self.via_start, ends, "via_list")

    @property
    def body_offset(self) -> int:
        """Where MessageContents begins."""
        return self.options_end

    def forward(
        self,
        previous_hop: Destination | bytes | None = None,
        pop: int = 0,
        ttl: int | None = None,
    ) -> bytes:
        """The message as it leaves this peer (section 6.1.2).

        ``previous_hop`` (a Destination, or its encoding, which a link can
        compute once) is appended to the via list, the first ``pop``
        destination entries are removed, and the TTL becomes ``ttl`` (by
        default one less than received).  Body and options are copied as
        they are.
        """
        data = self.data
        via = data[self.via_start : self.dest_start]
        if previous_hop is not None:
            via += previous_hop if isinstance(previous_hop, bytes) else previous_hop.encode()
        if pop:
            if pop >= len(self._dest_ends):
                raise EncodeError("cannot pop the whole destination list")
            dest = data[self._dest_ends[pop - 1] : self.options_start]
        else:
            dest = data[self.dest_start : self.options_start]
        rest = data[self.options_start :]
        new_ttl = self.ttl - 1 if ttl is None else ttl
        if new_ttl < 0 or len(via) > 0xFFFF:
            raise EncodeError("TTL exhausted or via list too long")
        fixed = _FIXED.pack(
            RELO_TOKEN,
            self.overlay,
            self.configuration_sequence,
            self.version,
            new_ttl,
            self.fragment,
            FIXED_HEADER_SIZE + len(via) + len(dest) + len(rest),
            self.transaction_id,
            self.max_response_length,
            len(via),
            len(dest),
            self.options_end - self.options_start,
        )
        return b"".join((fixed, via, dest, rest))


# The length field offset is used by fragmentation to patch lengths in place.
LENGTH_FIELD_OFFSET = _LENGTH_OFFSET
_ = field  # dataclasses.field is re-exported for subclasses of the header
