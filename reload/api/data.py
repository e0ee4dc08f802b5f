"""The values a plugin stores and fetches through :class:`reload.interfaces.INode`.

These are the public shapes of RFC 6940 section 7's data: a usage writes
``bytes`` (or a mapping of array indices or dictionary keys to ``bytes``)
and reads back :class:`KindValues` whose every :class:`Value` has been
verified -- signature and access policy (section 7.4.2.2) and the Kind's
own ``IKind.validate`` -- before the Deferred fires.  The wire structures
behind them (``StoredData``, ``StoredDataSpecifier``...) stay inside the
node, so the codec can change without breaking a plugin.

Usage records that carry a route to a node (RFC 7904's SipRegistration,
RFC 7374's RedirServiceProvider: ``Destination destination_list<...>``)
use :class:`Destination` (section 6.3.2.2) and the list codec
:func:`encodeDestinations` / :func:`decodeDestinations`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.header import Destination, DestinationType

__all__ = [
    "ALL",
    "APPEND",
    "DEFAULT_LIFETIME",
    "Destination",
    "DestinationType",
    "EntryMetadata",
    "KindMetadata",
    "KindValues",
    "Specifier",
    "StoreResult",
    "StoreValues",
    "Value",
    "decodeDestinations",
    "encodeDestinations",
]

#: Section 7.4.1.1: the array index that means "append after the last".
APPEND = 0xFFFFFFFF
#: Section 7.4.2.1: the last array index, for "every entry" in a range.
ALL = ((0, 0xFFFFFFFF),)
#: Section 7.4.1.1 leaves lifetimes to the storer; a day unless told.
DEFAULT_LIFETIME = 86400

#: What :meth:`INode.store` takes for one Kind, by its data model (section
#: 7.2): SINGLE a value; ARRAY index -> value; DICTIONARY key -> value.
#: ``None`` as a value stores "exists = False" (a deletion, section 7.4.1.1).
StoreValues = bytes | None | Mapping[int, bytes | None] | Mapping[bytes, bytes | None]


@dataclass(frozen=True, slots=True)
class Value:
    """One verified value of a Fetch (section 7.4.2.2).

    ``entry`` is the array index or dictionary key (``None`` for SINGLE);
    ``exists`` False is a deleted or never-written slot, whose ``value`` is
    empty.  ``storageTime`` is milliseconds since the epoch and ``lifetime``
    seconds (section 7).  ``signerNodeId`` and ``signerUserName`` come from
    the signer's verified certificate (empty for a placeholder of a value
    that does not exist).
    """

    entry: int | bytes | None
    value: bytes
    exists: bool
    storageTime: int
    lifetime: int
    signerNodeId: bytes = b""
    signerUserName: str = ""


@dataclass(frozen=True, slots=True)
class KindValues:
    """What a Fetch returned for one Kind: its generation counter (section
    7.4.1.1) and the values asked for."""

    kindId: int
    generation: int
    values: tuple[Value, ...]

    def existing(self) -> dict[int | bytes | None, bytes]:
        """Entry -> value of the values that exist."""
        return {v.entry: v.value for v in self.values if v.exists}


@dataclass(frozen=True, slots=True)
class Specifier:
    """Which values of one Kind to fetch or stat (section 7.4.2.1).

    SINGLE takes neither ``indices`` nor ``keys``.  ARRAY takes inclusive
    ``(first, last)`` ranges (default :data:`ALL`).  DICTIONARY takes keys
    (default: every key).  ``generation`` is the last generation counter
    seen: a peer answers nothing new when it is current (0: none seen).
    """

    kindId: int
    indices: tuple[tuple[int, int], ...] = ALL
    keys: tuple[bytes, ...] = ()
    generation: int = 0


@dataclass(frozen=True, slots=True)
class StoreResult:
    """The answer for one Kind of a Store (section 7.4.1.2): the generation
    counter now stored and the Node-IDs of the replicas that hold it."""

    kindId: int
    generation: int
    replicas: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class EntryMetadata:
    """Stat of one value (section 7.4.3.2): everything but the value."""

    entry: int | bytes | None
    exists: bool
    size: int
    hashAlgorithm: int
    hash: bytes
    storageTime: int
    lifetime: int


@dataclass(frozen=True, slots=True)
class KindMetadata:
    """What a Stat returned for one Kind."""

    kindId: int
    generation: int
    entries: tuple[EntryMetadata, ...]


def encodeDestinations(destinations: Iterable[Destination]) -> bytes:
    """The concatenated Destinations of a ``destination_list`` (section
    6.3.2.2), without the list's length prefix.  :class:`ValueError` for a
    destination that cannot be encoded."""
    try:
        return b"".join(destination.encode() for destination in destinations)
    except EncodeError as exc:
        raise ValueError(str(exc)) from None


def decodeDestinations(data: bytes, field: str = "destination_list") -> tuple[Destination, ...]:
    """The Destinations of a ``destination_list``'s bytes (without its
    length prefix); :class:`ValueError` naming ``field`` for bytes that are
    not a sequence of valid Destinations."""
    reader = Reader(bytes(data), path=field)
    out: list[Destination] = []
    try:
        while reader.pos < reader.end:
            out.append(Destination.read(reader, f"[{len(out)}]"))
    except DecodeError as exc:
        raise ValueError(str(exc)) from None
    return tuple(out)
