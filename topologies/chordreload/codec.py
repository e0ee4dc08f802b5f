"""The CHORD-RELOAD topology's own structures (RFC 6940 section 10).

They travel inside the generic topology bodies of
:mod:`reload.api.topology` (section 6.4.2): a :class:`ChordUpdate` is the whole UpdateReq
body (section 10.7), a :class:`ChordRouteQueryAns` the whole RouteQueryAns
body (section 10.8), and a :class:`ChordLeaveData` the LeaveReq
``overlay_specific_data`` (section 10.9); JoinReq carries nothing extra.  So
they have no message code: the Chord plug-in decodes them from those fields.

Node-ID lists are ``NodeId name<0..2^16-1>``: a byte length, then
fixed-length Node-IDs, so the length must be a multiple of NodeIdLength.
Neither ChordUpdateType nor ChordLeaveType is declared extensible, so an
unknown type is a parse error (section 6.3.1.1, last paragraph).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from reload.api.topology import (
    DEFAULT_NODE_ID_LENGTH,
    EncodeError,
    NodeIdStruct,
    Reader,
    encode_node_id,
)

__all__ = [
    "ChordLeaveData",
    "ChordLeaveType",
    "ChordRouteQueryAns",
    "ChordUpdate",
    "ChordUpdateType",
]

_U16 = struct.Struct("!H")
_UPTIME_TYPE = struct.Struct("!IB")


class ChordUpdateType(IntEnum):
    """Section 10.7; 0 is invalid."""

    PEER_READY = 1
    NEIGHBORS = 2
    FULL = 3


class ChordLeaveType(IntEnum):
    """Section 10.9: whether the leaving peer is the receiver's successor
    or predecessor; 0 is invalid."""

    FROM_SUCC = 1
    FROM_PRED = 2


_UPDATE_TYPES = {t.value: t for t in ChordUpdateType}
_LEAVE_TYPES = {t.value: t for t in ChordLeaveType}


def _encode_node_ids(node_ids: tuple[bytes, ...], lengths: set[int]) -> bytes:
    """``NodeId list<0..2^16-1>``; adds each Node-ID's length to ``lengths``
    so the caller can refuse a structure that mixes lengths (a receiver
    decodes all of them with one NodeIdLength)."""
    body = b"".join([encode_node_id(n) for n in node_ids])
    if len(body) > 0xFFFF:
        raise EncodeError(f"{len(node_ids)} Node-IDs do not fit a list of at most 65535 bytes")
    lengths.update(len(n) for n in node_ids)
    return _U16.pack(len(body)) + body


def _check_one_length(lengths: set[int]) -> None:
    if len(lengths) > 1:
        raise EncodeError(f"Node-IDs of different lengths {sorted(lengths)} in one structure")


def _read_node_ids(r: Reader, field: str, node_id_length: int) -> tuple[bytes, ...]:
    n = r.u16(field)
    pos = r.pos
    if pos + n > r.end:
        raise r.error(field, f"{n} bytes announced, {r.end - pos} left")
    if n % node_id_length:
        raise r.error(field, f"{n} bytes is not a whole number of {node_id_length}-byte Node-IDs")
    r.pos = end = pos + n
    data = r.data
    return tuple([bytes(data[i : i + node_id_length]) for i in range(pos, end, node_id_length)])


@dataclass(frozen=True, slots=True)
class ChordUpdate(NodeIdStruct):
    """Section 10.7: the CHORD-RELOAD UpdateReq body.

    ``uptime`` is the sender's uptime in seconds (RFC 7363 relies on it).
    ``peer_ready`` carries no lists, ``neighbors`` the predecessor and
    successor sets, ``full`` (the answer to a RouteQuery with send_update)
    also the Finger Table in ascending order.  Lists that the type does not
    carry must be empty.
    """

    uptime: int
    type: ChordUpdateType
    predecessors: tuple[bytes, ...] = ()
    successors: tuple[bytes, ...] = ()
    fingers: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        t = self.type
        if t not in _UPDATE_TYPES:
            raise EncodeError(f"unknown ChordUpdateType {t}")
        try:
            head = _UPTIME_TYPE.pack(self.uptime, t)
        except struct.error:
            raise EncodeError(f"uptime must be a uint32: {self.uptime}") from None
        if t == ChordUpdateType.PEER_READY:
            if self.predecessors or self.successors or self.fingers:
                raise EncodeError("a peer_ready ChordUpdate carries no Node-IDs")
            return head
        if t == ChordUpdateType.NEIGHBORS and self.fingers:
            raise EncodeError("a neighbors ChordUpdate carries no fingers")
        lengths: set[int] = set()
        parts = [
            head,
            _encode_node_ids(self.predecessors, lengths),
            _encode_node_ids(self.successors, lengths),
        ]
        if t == ChordUpdateType.FULL:
            parts.append(_encode_node_ids(self.fingers, lengths))
        _check_one_length(lengths)
        return b"".join(parts)

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        uptime = r.u32("uptime")
        raw_type = r.u8("type")
        t = _UPDATE_TYPES.get(raw_type)
        if t is None:
            raise r.error("type", f"unknown ChordUpdateType {raw_type}")
        if t is ChordUpdateType.PEER_READY:
            return cls(uptime, t)
        predecessors = _read_node_ids(r, "predecessors", node_id_length)
        successors = _read_node_ids(r, "successors", node_id_length)
        if t is ChordUpdateType.NEIGHBORS:
            return cls(uptime, t, predecessors, successors)
        return cls(
            uptime, t, predecessors, successors, _read_node_ids(r, "fingers", node_id_length)
        )


@dataclass(frozen=True, slots=True)
class ChordRouteQueryAns(NodeIdStruct):
    """Section 10.8: the Node-ID the responder would route the queried
    destination to next (the CHORD-RELOAD RouteQueryAns body)."""

    next_peer: bytes

    def encode(self) -> bytes:
        return encode_node_id(self.next_peer)

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        return cls(r.fixed(node_id_length, "next_peer"))


@dataclass(frozen=True, slots=True)
class ChordLeaveData(NodeIdStruct):
    """Section 10.9: the LeaveReq overlay_specific_data of CHORD-RELOAD.

    A leaving peer tells its predecessors its successor list (``from_succ``)
    and its successors its predecessor list (``from_pred``), so each side
    can repair its Neighbor Table.  ``node_ids`` is that one list; the
    :attr:`successors` and :attr:`predecessors` properties name it by type.
    """

    type: ChordLeaveType
    node_ids: tuple[bytes, ...] = ()

    @classmethod
    def from_succ(cls, successors: tuple[bytes, ...]) -> ChordLeaveData:
        return cls(ChordLeaveType.FROM_SUCC, successors)

    @classmethod
    def from_pred(cls, predecessors: tuple[bytes, ...]) -> ChordLeaveData:
        return cls(ChordLeaveType.FROM_PRED, predecessors)

    @property
    def successors(self) -> tuple[bytes, ...]:
        return self.node_ids if self.type == ChordLeaveType.FROM_SUCC else ()

    @property
    def predecessors(self) -> tuple[bytes, ...]:
        return self.node_ids if self.type == ChordLeaveType.FROM_PRED else ()

    def encode(self) -> bytes:
        t = self.type
        if t not in _LEAVE_TYPES:
            raise EncodeError(f"unknown ChordLeaveType {t}")
        lengths: set[int] = set()
        body = _encode_node_ids(self.node_ids, lengths)
        _check_one_length(lengths)
        return bytes((t,)) + body

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        raw_type = r.u8("type")
        t = _LEAVE_TYPES.get(raw_type)
        if t is None:
            raise r.error("type", f"unknown ChordLeaveType {raw_type}")
        field = "successors" if t is ChordLeaveType.FROM_SUCC else "predecessors"
        return cls(t, _read_node_ids(r, field, node_id_length))
