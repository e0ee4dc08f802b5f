"""Request and answer bodies of the RFC 6940 methods other than storage.

Topology maintenance (section 6.4.2: Join, Leave, Update, RouteQuery, Probe)
and link management (section 6.5: Ping, ConfigUpdate; Attach and AppAttach
are in :mod:`reload.wire.attach`).  Each body class carries its message code
(section 14.8) as ``CODE``; :data:`METHOD_BODIES` maps those codes to classes.

Node-IDs are ``opaque NodeId[NodeIdLength]`` (section 6.3.1.1): fixed length,
16 to 20 bytes as the overlay configuration says (section 11.1), with no
length byte on the wire.  Bodies that hold one take ``node_id_length`` in
``read``/``decode`` (default 16, CHORD-RELOAD's value); encoding just writes
the bytes given, after checking their length is a legal Node-ID length.

Topology-specific contents (section 10 for CHORD-RELOAD) stay opaque here;
the topology plug-in decodes them (for CHORD-RELOAD,
:mod:`topologies.chordreload.codec`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from mypy_extensions import mypyc_attr

from reload.wire.attach import (
    AppAttachAns,
    AppAttachReq,
    AttachAns,
    AttachReq,
    _vector,  # shared vector reader; one package
)
from reload.wire.base import SLOTTED, WireStruct
from reload.wire.buffer import Buffer, Reader, opaque8, opaque16, opaque24
from reload.wire.errors import EncodeError
from reload.wire.header import Destination
from reload.wire.nodeid import (
    DEFAULT_NODE_ID_LENGTH,
    MAX_NODE_ID_LENGTH,
    MIN_NODE_ID_LENGTH,
    check_node_id_length,
    encode_node_id,
)

__all__ = [
    "DEFAULT_NODE_ID_LENGTH",
    "MAX_NODE_ID_LENGTH",
    "METHOD_BODIES",
    "MIN_NODE_ID_LENGTH",
    "NODE_ID_BODIES",
    "ConfigUpdateAns",
    "ConfigUpdateReq",
    "ConfigUpdateType",
    "JoinAns",
    "JoinReq",
    "LeaveAns",
    "LeaveReq",
    "NodeIdStruct",
    "PingAns",
    "PingReq",
    "ProbeAns",
    "ProbeInformation",
    "ProbeInformationType",
    "ProbeReq",
    "RouteQueryAns",
    "RouteQueryReq",
    "UpdateAns",
    "UpdateReq",
    "check_node_id_length",
    "encode_node_id",
]

_U32 = struct.Struct("!I")
_U64X2 = struct.Struct("!QQ")


# -- Node-IDs ----------------------------------------------------------------


@mypyc_attr(allow_interpreted_subclasses=True)
class NodeIdStruct(WireStruct):
    """Base of structures that hold Node-IDs: their length is not on the
    wire, so ``read`` and ``decode`` take it (default 16).  Topology plugins
    subclass it (:mod:`reload.api.topology`), compiled or not."""

    __slots__ = ()

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        """Read one structure whose Node-IDs are ``node_id_length`` bytes
        long (trusted: :meth:`decode` checks it)."""
        raise NotImplementedError(f"{cls.__name__}.read")

    @classmethod
    def decode(cls, data: Buffer, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        """Decode exactly one structure whose Node-IDs are ``node_id_length``
        bytes long."""
        check_node_id_length(node_id_length)
        r = Reader(data, path=cls.__name__)
        value = cls.read(r, node_id_length)
        r.finish()
        return value


# -- Join, Leave, Update, RouteQuery (section 6.4.2) ------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class JoinReq(NodeIdStruct):
    """Section 6.4.2.1: a peer asks to take over ``joining_peer_id``'s part of
    the overlay.  The receiver checks that this Node-ID signed the message."""

    joining_peer_id: bytes
    overlay_specific_data: bytes = b""

    def __init__(self, joining_peer_id: bytes, overlay_specific_data: bytes = b"") -> None:
        object.__setattr__(self, "joining_peer_id", joining_peer_id)
        object.__setattr__(self, "overlay_specific_data", overlay_specific_data)

    def encode(self) -> bytes:
        return encode_node_id(self.joining_peer_id) + opaque16(self.overlay_specific_data)

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        node_id = r.fixed(node_id_length, "joining_peer_id")
        return cls(node_id, r.opaque(2, "overlay_specific_data"))


JoinReq.CODE = 15


@dataclass(frozen=True, init=False, **SLOTTED)
class JoinAns(WireStruct):
    """Section 6.4.2.1: the admitting peer's answer; CHORD-RELOAD puts
    nothing in it."""

    overlay_specific_data: bytes = b""

    def __init__(self, overlay_specific_data: bytes = b"") -> None:
        object.__setattr__(self, "overlay_specific_data", overlay_specific_data)

    def encode(self) -> bytes:
        return opaque16(self.overlay_specific_data)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.opaque(2, "overlay_specific_data"))


JoinAns.CODE = 16


@dataclass(frozen=True, init=False, **SLOTTED)
class LeaveReq(NodeIdStruct):
    """Section 6.4.2.2: ``leaving_peer_id`` exits the overlay.  For
    CHORD-RELOAD ``overlay_specific_data`` is a
    :class:`topologies.chordreload.codec.ChordLeaveData` (section 10.9)."""

    leaving_peer_id: bytes
    overlay_specific_data: bytes = b""

    def __init__(self, leaving_peer_id: bytes, overlay_specific_data: bytes = b"") -> None:
        object.__setattr__(self, "leaving_peer_id", leaving_peer_id)
        object.__setattr__(self, "overlay_specific_data", overlay_specific_data)

    def encode(self) -> bytes:
        return encode_node_id(self.leaving_peer_id) + opaque16(self.overlay_specific_data)

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        node_id = r.fixed(node_id_length, "leaving_peer_id")
        return cls(node_id, r.opaque(2, "overlay_specific_data"))


LeaveReq.CODE = 17


@dataclass(frozen=True, **SLOTTED)
class LeaveAns(WireStruct):
    """Section 6.4.2.2: "LeaveAns is an empty message"."""

    def encode(self) -> bytes:
        return b""

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls()


LeaveAns.CODE = 18


@dataclass(frozen=True, init=False, **SLOTTED)
class UpdateReq(WireStruct):
    """Section 6.4.2.3: "The contents of the UpdateReq message are completely
    overlay specific", so the whole body is ``overlay_specific_data``, with
    no length of its own (the message body already has one, section 6.3.3).
    For CHORD-RELOAD it is a :class:`topologies.chordreload.codec.ChordUpdate`."""

    overlay_specific_data: bytes = b""

    def __init__(self, overlay_specific_data: bytes = b"") -> None:
        object.__setattr__(self, "overlay_specific_data", overlay_specific_data)

    def encode(self) -> bytes:
        return self.overlay_specific_data

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.rest())


UpdateReq.CODE = 19


@dataclass(frozen=True, init=False, **SLOTTED)
class UpdateAns(WireStruct):
    """Section 6.4.2.3: "either success or an error"; the RFC gives no
    structure, so the body is kept whole (empty for CHORD-RELOAD)."""

    overlay_specific_data: bytes = b""

    def __init__(self, overlay_specific_data: bytes = b"") -> None:
        object.__setattr__(self, "overlay_specific_data", overlay_specific_data)

    def encode(self) -> bytes:
        return self.overlay_specific_data

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.rest())


UpdateAns.CODE = 20


@dataclass(frozen=True, init=False, **SLOTTED)
class RouteQueryReq(WireStruct):
    """Section 6.4.2.4.1: where would the receiver route ``destination``?
    ``send_update`` also asks it for an Update carrying its Routing Table."""

    send_update: bool
    destination: Destination
    overlay_specific_data: bytes = b""

    def __init__(
        self, send_update: bool, destination: Destination, overlay_specific_data: bytes = b""
    ) -> None:
        object.__setattr__(self, "send_update", send_update)
        object.__setattr__(self, "destination", destination)
        object.__setattr__(self, "overlay_specific_data", overlay_specific_data)

    def encode(self) -> bytes:
        return b"".join(
            (
                b"\x01" if self.send_update else b"\x00",
                self.destination.encode(),
                opaque16(self.overlay_specific_data),
            )
        )

    @classmethod
    def read(cls, r: Reader) -> Self:
        send_update = r.boolean("send_update")
        destination = Destination.read(r, "destination")
        return cls(send_update, destination, r.opaque(2, "overlay_specific_data"))


RouteQueryReq.CODE = 21


@dataclass(frozen=True, init=False, **SLOTTED)
class RouteQueryAns(WireStruct):
    """Section 6.4.2.4.2: "completely overlay specific", kept whole like
    :class:`UpdateReq`.  For CHORD-RELOAD it is a
    :class:`topologies.chordreload.codec.ChordRouteQueryAns` (section 10.8)."""

    overlay_specific_data: bytes = b""

    def __init__(self, overlay_specific_data: bytes = b"") -> None:
        object.__setattr__(self, "overlay_specific_data", overlay_specific_data)

    def encode(self) -> bytes:
        return self.overlay_specific_data

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.rest())


RouteQueryAns.CODE = 22


# -- Probe (section 6.4.2.5) -------------------------------------------------


class ProbeInformationType(IntEnum):
    """Section 6.4.2.5.1 and the registry of section 14.13; 0 is invalid."""

    RESPONSIBLE_SET = 1
    NUM_RESOURCES = 2
    UPTIME = 3
    EXP_PROBE = 4


_PROBE_TYPES = {t.value: t for t in ProbeInformationType}
#: Section 6.4.2.5.2: "Each of the current possible Probe information types
#: is a 32-bit unsigned integer."  EXP_PROBE has no defined value format.
_UINT32_PROBE_TYPES = frozenset({1, 2, 3})


@dataclass(frozen=True, init=False, **SLOTTED)
class ProbeReq(WireStruct):
    """Section 6.4.2.5.1: the status items wanted, in the order wanted.

    Types the responder does not know are legal here (it leaves them out of
    its answer), so they are kept as plain integers.
    """

    requested_info: tuple[int, ...] = ()

    def __init__(self, requested_info: tuple[int, ...] = ()) -> None:
        object.__setattr__(self, "requested_info", requested_info)

    def encode(self) -> bytes:
        info = self.requested_info
        if any(not 1 <= t <= 255 for t in info):
            raise EncodeError(f"probe information types must be 1-255: {info}")
        return opaque8(bytes(info))

    @classmethod
    def read(cls, r: Reader) -> Self:
        raw = r.opaque(1, "requested_info")
        if 0 in raw:
            raise r.error(f"requested_info[{raw.index(0)}]", "invalid probe information type 0")
        return cls(tuple([_PROBE_TYPES.get(t, t) for t in raw]))


ProbeReq.CODE = 1


@dataclass(frozen=True, init=False, **SLOTTED)
class ProbeInformation(WireStruct):
    """Section 6.4.2.5.2: one status item, type and length first so that
    unknown types can be skipped ("This structure allows for unknown option
    types").

    ``value`` is an ``int`` (uint32) for responsible_set (parts per billion),
    num_resources and uptime (seconds), and the raw bytes for any other type.
    """

    type: int
    value: int | bytes

    def __init__(self, type: int, value: int | bytes) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "value", value)

    def encode(self) -> bytes:
        t, value = self.type, self.value
        if not 1 <= t <= 255:
            raise EncodeError(f"probe information type {t} is not allowed")
        if t in _UINT32_PROBE_TYPES:
            if not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
                raise EncodeError(f"probe information type {t} needs a uint32, not {value!r}")
            return bytes((t, 4)) + _U32.pack(value)
        if not isinstance(value, bytes):
            raise EncodeError(f"probe information type {t} is opaque here and needs bytes")
        return bytes((t,)) + opaque8(value)

    @classmethod
    def read(cls, r: Reader) -> Self:
        t = r.u8("type")
        if t == 0:
            raise r.error("type", "invalid probe information type 0")
        if t in _UINT32_PROBE_TYPES:
            n = r.u8("length")
            if n != 4:
                raise r.error(
                    "length", f"a {_PROBE_TYPES[t].name.lower()} value is 4 bytes, not {n}"
                )
            return cls(_PROBE_TYPES[t], r.u32("value"))
        return cls(_PROBE_TYPES.get(t, t), r.opaque(1, "value"))


@dataclass(frozen=True, init=False, **SLOTTED)
class ProbeAns(WireStruct):
    """Section 6.4.2.5.2: the requested items the responder recognises."""

    probe_info: tuple[ProbeInformation, ...] = ()

    def __init__(self, probe_info: tuple[ProbeInformation, ...] = ()) -> None:
        object.__setattr__(self, "probe_info", probe_info)

    def encode(self) -> bytes:
        return opaque16(b"".join(p.encode() for p in self.probe_info))

    @classmethod
    def read(cls, r: Reader) -> Self:
        sub = _vector(r, 2, "probe_info")
        out: list[ProbeInformation] = []
        while sub.pos < sub.end:
            item = sub.enter(f"probe_info[{len(out)}]")
            out.append(ProbeInformation.read(item))
            sub.pos = item.pos
        return cls(tuple(out))


ProbeAns.CODE = 2


# -- Ping (section 6.5.3) ----------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class PingReq(WireStruct):
    """Section 6.5.3.1: no content but up to 65535 bytes of padding, used to
    discover how large a message the path carries."""

    padding: bytes = b""

    def __init__(self, padding: bytes = b"") -> None:
        object.__setattr__(self, "padding", padding)

    def encode(self) -> bytes:
        return opaque16(self.padding)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.opaque(2, "padding"))


PingReq.CODE = 23


@dataclass(frozen=True, init=False, **SLOTTED)
class PingAns(WireStruct):
    """Section 6.5.3.2: a random ``response_id`` telling answers apart and
    the ``time`` the answer was made, as storage_time is (section 7:
    milliseconds since the Unix epoch)."""

    response_id: int
    time: int

    def __init__(self, response_id: int, time: int) -> None:
        object.__setattr__(self, "response_id", response_id)
        object.__setattr__(self, "time", time)

    def encode(self) -> bytes:
        try:
            return _U64X2.pack(self.response_id, self.time)
        except struct.error:
            raise EncodeError(
                f"PingAns fields must be uint64: {self.response_id}, {self.time}"
            ) from None

    @classmethod
    def read(cls, r: Reader) -> Self:
        pos = r.pos
        if pos + 16 > r.end:
            field = "response_id" if pos + 8 > r.end else "time"
            raise r.error(field, f"needs 16 bytes, {r.end - pos} left")
        r.pos = pos + 16
        response_id, time = _U64X2.unpack_from(r.data, pos)
        return cls(response_id, time)


PingAns.CODE = 24


# -- ConfigUpdate (section 6.5.4) --------------------------------------------


class ConfigUpdateType(IntEnum):
    """Section 6.5.4.1; 0 is invalid and new types may be added."""

    CONFIG = 1
    KIND = 2


_CONFIG_UPDATE_TYPES = {t.value: t for t in ConfigUpdateType}


@dataclass(frozen=True, init=False, **SLOTTED)
class ConfigUpdateReq(WireStruct):
    """Section 6.5.4.1: push a newer configuration document or Kind
    definitions across the overlay.

    Exactly one payload field is used, chosen by ``type``: ``config_data``
    (the whole configuration document) for CONFIG, ``kinds`` (signed XML
    kind-block productions, UTF-8, each an opaque KindDescription) for KIND,
    and ``raw`` (the bytes after the length field, passed on unread) for a
    type this peer does not know ("This structure allows for unknown content
    types").  :meth:`for_config` and :meth:`for_kinds` build the first two.
    """

    type: int
    config_data: bytes = b""
    kinds: tuple[bytes, ...] = ()
    raw: bytes = b""

    def __init__(
        self, type: int, config_data: bytes = b"", kinds: tuple[bytes, ...] = (), raw: bytes = b""
    ) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "config_data", config_data)
        object.__setattr__(self, "kinds", kinds)
        object.__setattr__(self, "raw", raw)

    @classmethod
    def for_config(cls, config_data: bytes) -> ConfigUpdateReq:
        return cls(ConfigUpdateType.CONFIG, config_data=config_data)

    @classmethod
    def for_kinds(cls, kinds: Iterable[bytes]) -> ConfigUpdateReq:
        """Any iterable of kind blocks: the compiled codec's field takes a
        tuple only, so a list from a caller is turned into one here."""
        return cls(ConfigUpdateType.KIND, kinds=tuple(kinds))

    def encode(self) -> bytes:
        t = self.type
        if t == ConfigUpdateType.CONFIG:
            if self.kinds or self.raw:
                raise EncodeError("a config ConfigUpdateReq carries only config_data")
            body = opaque24(self.config_data)
        elif t == ConfigUpdateType.KIND:
            if self.config_data or self.raw:
                raise EncodeError("a kind ConfigUpdateReq carries only kinds")
            body = opaque24(b"".join(opaque16(k) for k in self.kinds))
        elif 1 <= t <= 255:
            if self.config_data or self.kinds:
                raise EncodeError(f"ConfigUpdateReq type {t} is opaque here and carries raw")
            body = self.raw
        else:
            raise EncodeError(f"ConfigUpdateReq type {t} is not allowed")
        if len(body) > 0xFFFFFFFF:
            raise EncodeError("ConfigUpdateReq body longer than 2^32-1 bytes")
        return bytes((t,)) + _U32.pack(len(body)) + body

    @classmethod
    def read(cls, r: Reader) -> Self:
        t = r.u8("type")
        if t == 0:
            raise r.error("type", "invalid ConfigUpdateType 0")
        length = r.u32("length")
        start = r.pos
        if length > r.end - start:
            raise r.error("length", f"{length} bytes announced, {r.end - start} left")
        r.pos = start + length
        if t == 1:
            sub = Reader(r.data, start, start + length, r.path)
            config_data = sub.opaque(3, "config_data")
            if sub.pos != sub.end:
                raise r.error("length", f"{sub.end - sub.pos} bytes after config_data")
            return cls(ConfigUpdateType.CONFIG, config_data=config_data)
        if t == 2:
            sub = Reader(r.data, start, start + length, r.path)
            vec = _vector(sub, 3, "kinds")
            kinds: list[bytes] = []
            while vec.pos < vec.end:
                kinds.append(vec.opaque(2, f"kinds[{len(kinds)}]"))
            if sub.pos != sub.end:
                raise r.error("length", f"{sub.end - sub.pos} bytes after kinds")
            return cls(ConfigUpdateType.KIND, kinds=tuple(kinds))
        return cls(_CONFIG_UPDATE_TYPES.get(t, t), raw=bytes(r.data[start : start + length]))


ConfigUpdateReq.CODE = 33


@dataclass(frozen=True, **SLOTTED)
class ConfigUpdateAns(WireStruct):
    """Section 6.5.4.2: an empty structure; success is the answer itself."""

    def encode(self) -> bytes:
        return b""

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls()


ConfigUpdateAns.CODE = 34


# -- registry ----------------------------------------------------------------

#: Message code (section 14.8) -> body class, for every body in this module
#: and in :mod:`reload.wire.attach`.
METHOD_BODIES: dict[int, type[WireStruct]] = {
    ProbeReq.CODE: ProbeReq,
    ProbeAns.CODE: ProbeAns,
    AttachReq.CODE: AttachReq,
    AttachAns.CODE: AttachAns,
    JoinReq.CODE: JoinReq,
    JoinAns.CODE: JoinAns,
    LeaveReq.CODE: LeaveReq,
    LeaveAns.CODE: LeaveAns,
    UpdateReq.CODE: UpdateReq,
    UpdateAns.CODE: UpdateAns,
    RouteQueryReq.CODE: RouteQueryReq,
    RouteQueryAns.CODE: RouteQueryAns,
    PingReq.CODE: PingReq,
    PingAns.CODE: PingAns,
    AppAttachReq.CODE: AppAttachReq,
    AppAttachAns.CODE: AppAttachAns,
    ConfigUpdateReq.CODE: ConfigUpdateReq,
    ConfigUpdateAns.CODE: ConfigUpdateAns,
}

#: The bodies whose ``decode``/``read`` take ``node_id_length``.
NODE_ID_BODIES: frozenset[type[WireStruct]] = frozenset({JoinReq, LeaveReq})
