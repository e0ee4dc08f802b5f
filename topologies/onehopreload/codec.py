"""ONE-HOP-RELOAD's own structures, carried in the generic topology bodies
of RFC 6940 section 6.4.2 (presentation language of section 3.3):

::

    struct {
        NodeId  node_id;
        uint32  version;
        Boolean alive;
    } OneHopEntry;                        /* 16 + 4 + 1 bytes */

    enum { events(1), digest(2), neighbours(3), (255) } OneHopUpdateType;

    struct {
        OneHopUpdateType type;
        select (type) {
            case events:     OneHopEntry entries<0..2^16-1>;
            case digest:     opaque digests<0..2^8-1>;   /* 8 bytes a segment */
            case neighbours: OneHopEntry entries<0..2^16-1>;
        };
    } OneHopUpdate;                       /* the whole UpdateReq body */

An UpdateAns to a ``digest`` carries ``OneHopEntry entries<0..2^16-1>``:
the answering peer's entries of the segments whose digests differ (empty
when none do).  ``neighbours`` is the exchange of two ring neighbours: the
request lists the sender and its ring neighbourhood, the answer (the same
entry list) the answering peer, its neighbourhood and its newer entries of
the peers the request listed; an answer is the sender's confirmation.  The
UpdateAns to ``events`` is empty.  A JoinReq's overlay_specific_data is the
joining peer's ``uint32 version``, the JoinAns's an entry list, a
LeaveReq's the leaving peer's ``uint32 version``, a RouteQueryAns the
``NodeId`` of the next peer (as CHORD-RELOAD's, section 10.8).

Lists are bounded by the sender (at most ``maxEntries``, so every message
fits the overlay's max-message-size, section 6.6); a receiver refuses a
list whose length is not a whole number of entries.
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
)
from topologies.onehopreload.membership import Entry

__all__ = [
    "OneHopUpdate",
    "OneHopUpdateType",
    "decodeEntries",
    "decodeVersion",
    "encodeEntries",
    "encodeVersion",
]

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_UINT32_MAX = 0xFFFFFFFF


class OneHopUpdateType(IntEnum):
    EVENTS = 1
    DIGEST = 2
    NEIGHBOURS = 3


def encodeVersion(version: int) -> bytes:
    if not 0 <= version <= _UINT32_MAX:
        raise EncodeError(f"a version is a uint32, not {version}")
    return _U32.pack(version)


def decodeVersion(data: bytes) -> int:
    r = Reader(data, path="version")
    version = r.u32("version")
    r.finish()
    return version


def _writeEntries(entries: tuple[Entry, ...] | list[Entry]) -> bytes:
    parts = []
    length: int | None = None
    for e in entries:
        if length is None:
            length = len(e.nodeId)
        elif len(e.nodeId) != length:
            raise EncodeError("Node-IDs of different lengths in one entry list")
        parts.append(e.nodeId + encodeVersion(e.version) + (b"\x01" if e.alive else b"\x00"))
    body = b"".join(parts)
    if len(body) > 0xFFFF:
        raise EncodeError(f"{len(parts)} entries do not fit a list of at most 65535 bytes")
    return _U16.pack(len(body)) + body


def _readEntries(r: Reader, nodeIdLength: int) -> tuple[Entry, ...]:
    size = nodeIdLength + 5
    n = r.u16("entries")
    if n % size:
        raise r.error("entries", f"{n} bytes is not a whole number of {size}-byte entries")
    out = []
    for _ in range(n // size):
        nodeId = r.fixed(nodeIdLength, "entries.node_id")
        version = r.u32("entries.version")
        out.append(Entry(nodeId, version, r.boolean("entries.alive")))
    return tuple(out)


def encodeEntries(entries: tuple[Entry, ...] | list[Entry]) -> bytes:
    """``OneHopEntry entries<0..2^16-1>`` (JoinAns, UpdateAns data)."""
    return _writeEntries(entries)


def decodeEntries(data: bytes, nodeIdLength: int = DEFAULT_NODE_ID_LENGTH) -> tuple[Entry, ...]:
    """An entry list and nothing after it; empty data is an empty list
    (an UpdateAns to ``events``)."""
    if not data:
        return ()
    r = Reader(data, path="OneHopEntries")
    entries = _readEntries(r, nodeIdLength)
    r.finish()
    return entries


@dataclass(frozen=True, slots=True)
class OneHopUpdate(NodeIdStruct):
    """The UpdateReq body: membership events, segment digests, or a
    neighbour exchange."""

    type: OneHopUpdateType
    entries: tuple[Entry, ...] = ()
    digests: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        if self.type in (OneHopUpdateType.EVENTS, OneHopUpdateType.NEIGHBOURS):
            if self.digests:
                raise EncodeError(f"a {self.type.name.lower()} OneHopUpdate carries no digests")
            return bytes((self.type,)) + _writeEntries(self.entries)
        if self.type is OneHopUpdateType.DIGEST:
            if self.entries:
                raise EncodeError("a digest OneHopUpdate carries no entries")
            body = b"".join(self.digests)
            if any(len(d) != 8 for d in self.digests) or len(body) > 0xFF:
                raise EncodeError("digests are at most 31 of 8 bytes each")
            return bytes((self.type, len(body))) + body
        raise EncodeError(f"unknown OneHopUpdateType {self.type}")

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        raw = r.u8("type")
        if raw in (OneHopUpdateType.EVENTS, OneHopUpdateType.NEIGHBOURS):
            return cls(OneHopUpdateType(raw), _readEntries(r, node_id_length))
        if raw == OneHopUpdateType.DIGEST:
            body = r.opaque(1, "digests")
            if len(body) % 8:
                raise r.error("digests", f"{len(body)} bytes is not a whole number of digests")
            return cls(
                OneHopUpdateType.DIGEST,
                digests=tuple(body[i : i + 8] for i in range(0, len(body), 8)),
            )
        raise r.error("type", f"unknown OneHopUpdateType {raw}")
