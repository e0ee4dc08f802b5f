"""What a peer stores for one (Resource-ID, Kind-ID), and the rules that
change it (RFC 6940 sections 7, 7.2 and 7.4.1).

A :class:`KindRecord` is the generation counter and the values of one Kind
at one Resource-ID, each value a :class:`StoredValue`: the StoredData as
received (signature included), when it expires, and who signed it.  Values
are keyed by their *slot*: ``None`` for the single value, the index for an
array entry, the key for a dictionary entry.

Everything here is pure: :func:`merge` takes a record and the values of a
StoreKindData and returns the new record or raises :class:`StoreRejected`
with the RFC error code; :func:`select` answers a StoredDataSpecifier.
Times are milliseconds since the epoch, from the caller's clock.

Rules (section numbers of RFC 6940):

* storage_time (7, 7.4.1.1, 13.5.3): a value replacing a live one must be
  strictly newer ("Storing peers MUST reject Store requests with storage
  times smaller than or equal to those that they are currently storing"),
  else Error_Data_Too_Old.  A replica Store that repeats exactly the value
  held (same storage_time, value and signature) changes nothing and is not
  an error: it is not a rollback, and replicas are re-sent on every
  topology change.
* lifetime (7): counted "from the time the peer receives the StoreReq";
  and, as 7.1 allows, never beyond the signing certificate's validity
  ("Such signatures are not considered valid after the signing certificate
  expires").  What is read back carries the lifetime *remaining*, so a
  replica or a handover Store "adjust[s] the lifetime value downward"
  (7.4.1.1) by construction.
* generation counter (7.4.1.1, 7.4.1.2): see :func:`generationMismatch`;
  an original store that changed data adds 1 for the whole StoreKindData,
  a replica store takes the request's counter.
* exists = False (7.4.1.3) is a value like any other: it replaces, counts,
  is replicated and expires.  Expired values vanish; gaps in an array read
  as synthetic unsigned nonexistent values (7.4.1.3, 7.4.2.2).
* array index 0xffffffff appends "at the end of the array, regardless of
  the length of the array" (7.4.1.1); the stored entry has its real index
  (the signature covers index 0, 7.4.2.2, so it still verifies).
* limits (7.4.1.2, 13.5.2): a value longer than max-size, or a store that
  leaves more than max-count values (for an array: a length, highest index
  + 1, above max-count), is Error_Data_Too_Large.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

from reload.storage.kinds import KindEntry
from reload.wire.message import ErrorCode
from reload.wire.security_block import HashAlgorithm, Signature
from reload.wire.storage import (
    ArrayEntry,
    ArrayEntryMeta,
    ArrayRange,
    DataModel,
    DataValue,
    DictionaryEntry,
    DictionaryEntryMeta,
    MetaData,
    MetaDataValue,
    StoredData,
    StoredDataSpecifier,
    StoredDataValue,
    StoredMetaData,
)

__all__ = [
    "APPEND",
    "Incoming",
    "KindRecord",
    "Slot",
    "StoreRejected",
    "StoredValue",
    "dataValueOf",
    "expiryOf",
    "generationMismatch",
    "merge",
    "metadataOf",
    "select",
    "slotOf",
    "synthetic",
]

#: Section 7.4.1.1: the array index that means "append".
APPEND = ArrayEntry.APPEND
#: The largest lifetime a StoredData can carry (uint32 seconds).
_MAX_LIFETIME = 0xFFFFFFFF

#: Where a value sits in its Kind: None (single value), an array index, a
#: dictionary key.
Slot = int | bytes | None

_EMPTY_SIGNATURE = Signature.empty()


class StoreRejected(Exception):
    """A Store, Fetch or Stat the rules refuse: ``code`` is the RFC error
    code (:class:`~reload.wire.message.ErrorCode`), ``reason`` says why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def slotOf(value: StoredDataValue) -> Slot:
    if isinstance(value, ArrayEntry):
        return value.index
    if isinstance(value, DictionaryEntry):
        return value.key
    return None


def dataValueOf(value: StoredDataValue) -> DataValue:
    if isinstance(value, DataValue):
        return value
    return value.value


def _formOf(value: StoredDataValue) -> DataModel:
    if isinstance(value, ArrayEntry):
        return DataModel.ARRAY
    if isinstance(value, DictionaryEntry):
        return DataModel.DICTIONARY
    return DataModel.SINGLE


@dataclass(frozen=True, slots=True)
class StoredValue:
    """One stored value: the StoredData as received (an appended array
    entry with the index it was given), its expiry (ms since the epoch),
    the Node-ID its signature names (whose quota it uses), the DER of that
    signer's certificate (for the FetchAns certificate bucket, section
    6.3.4) and its encoded size in bytes."""

    data: StoredData
    expiry: int
    signer: bytes
    certificate: bytes = b""
    size: int = 0

    @classmethod
    def make(
        cls, data: StoredData, expiry: int, signer: bytes, certificate: bytes = b""
    ) -> StoredValue:
        return cls(data, expiry, signer, certificate, len(data.encode()))

    @property
    def slot(self) -> Slot:
        return slotOf(self.data.value)

    @property
    def exists(self) -> bool:
        return dataValueOf(self.data.value).exists

    def isLive(self, nowMs: int) -> bool:
        return self.expiry > nowMs

    def remainingLifetime(self, nowMs: int) -> int:
        """Whole seconds left, rounded up (a value alive now has >= 1)."""
        left = max(0, self.expiry - nowMs)
        return min(_MAX_LIFETIME, -(-left // 1000))

    def at(self, nowMs: int) -> StoredData:
        """The StoredData as served at ``nowMs``: lifetime is what remains
        (section 7.4.1.1).  The signature does not cover the lifetime."""
        lifetime = self.remainingLifetime(nowMs)
        if lifetime == self.data.lifetime:
            return self.data
        return replace(self.data, lifetime=lifetime)

    def sameAs(self, data: StoredData) -> bool:
        """Whether ``data`` is this value again (a repeated replica)."""
        mine = self.data
        return (
            mine.storage_time == data.storage_time
            and mine.value == data.value
            and mine.signature == data.signature
        )


@dataclass(frozen=True, slots=True)
class KindRecord:
    """The generation counter and values of one Kind at one Resource-ID.
    ``values`` maps slot -> value and is never mutated (records are
    replaced whole, which is what makes a Store atomic)."""

    resourceId: bytes
    kindId: int
    model: DataModel
    generation: int = 0
    values: Mapping[Slot, StoredValue] = field(default_factory=dict)

    def live(self, nowMs: int) -> dict[Slot, StoredValue]:
        return {s: v for s, v in self.values.items() if v.isLive(nowMs)}

    def hasExpired(self, nowMs: int) -> bool:
        return any(not v.isLive(nowMs) for v in self.values.values())

    def withoutExpired(self, nowMs: int) -> KindRecord:
        if not self.hasExpired(nowMs):
            return self
        return replace(self, values=self.live(nowMs))

    def holdsExisting(self, nowMs: int) -> bool:
        """Whether a live value with exists = True is stored (what Find
        looks for)."""
        return any(v.exists and v.isLive(nowMs) for v in self.values.values())

    def usage(self) -> dict[bytes, int]:
        """Bytes stored per signer Node-ID (expired values included until
        they are purged: they still take the space)."""
        out: dict[bytes, int] = {}
        for value in self.values.values():
            out[value.signer] = out.get(value.signer, 0) + value.size
        return out


def expiryOf(receivedMs: int, lifetime: int, validUntilMs: int | None = None) -> int:
    """Section 7: the lifetime runs "starting from the time the peer
    receives the StoreReq"; section 7.1 lets storage stop at the end of the
    signing certificate's validity."""
    expiry = receivedMs + lifetime * 1000
    if validUntilMs is not None:
        expiry = min(expiry, validUntilMs)
    return expiry


def _length(values: Mapping[Slot, StoredValue]) -> int:
    """An array's length: its highest stored index + 1."""
    return max((s for s in values if isinstance(s, int)), default=-1) + 1


def _count(model: DataModel, values: Mapping[Slot, StoredValue]) -> int:
    """What max-count bounds: the number of values; for an array its
    length, since every index below the highest is a value a Fetch returns
    (section 7.2.2: "arrays can be sparse", the gaps read as exists =
    False)."""
    return _length(values) if model == DataModel.ARRAY else len(values)


def generationMismatch(record: KindRecord | None, requested: int, replica: bool) -> bool:
    """Whether a StoreKindData's generation_counter fails the check of
    section 7.4.1.1: "For original (non-replica) stores, the peer MUST check
    that if the generation counter is nonzero, it equals the current value
    of the generation counter for this Kind."  Replica stores "MUST NOT
    check" it; 0 means "ignore".  A mismatch either way is answered
    Error_Generation_Counter_Too_Low (7.4.1.2), whose error_info gives the
    storer the counters to retry with."""
    if replica or requested == 0:
        return False
    current = record.generation if record is not None else 0
    return requested != current


@dataclass(frozen=True, slots=True)
class Incoming:
    """A value of a StoreKindData whose signature verified: the
    StoredData, its expiry (from :func:`expiryOf`), the signer's Node-ID
    and certificate DER."""

    data: StoredData
    expiry: int
    signer: bytes
    certificate: bytes = b""


def merge(
    record: KindRecord | None,
    resourceId: bytes,
    kind: KindEntry,
    generation: int,
    incoming: Sequence[Incoming],
    nowMs: int,
    replica: bool = False,
) -> KindRecord | None:
    """The record after storing ``incoming`` (in order, section 7.4.1.1:
    "Each value is then processed in turn"), or :class:`StoreRejected`.

    ``generation`` is the StoreKindData's counter; the caller checked it
    with :func:`generationMismatch` (for a replica store it is the new
    counter).  Expired values are dropped.  None when nothing is stored
    and nothing was.
    """
    model = kind.model
    values = record.live(nowMs) if record is not None else {}
    before = _count(model, values)
    changed = False
    for item in incoming:
        data = item.data
        value = data.value
        if _formOf(value) != model:
            raise StoreRejected(
                ErrorCode.INVALID_MESSAGE,
                f"a {_formOf(value).name} value for Kind {kind.label}, a {model.name} Kind",
            )
        payload = dataValueOf(value).value
        if len(payload) > kind.maxSize:
            raise StoreRejected(
                ErrorCode.DATA_TOO_LARGE,
                f"a value of {len(payload)} bytes for Kind {kind.label}, max-size"
                f" {kind.maxSize} (section 7.4.1.2)",
            )
        if isinstance(value, ArrayEntry) and value.index == APPEND:
            index = _length(values)
            if index >= APPEND:
                raise StoreRejected(ErrorCode.DATA_TOO_LARGE, "the array is full")
            data = replace(data, value=replace(value, index=index))
        slot = slotOf(data.value)
        existing = values.get(slot)
        if existing is not None and existing.data.storage_time >= data.storage_time:
            if replica:
                # Section 7.4.1.1 has the sender of a replica Store refused
                # for age fetch the newer data; a replica Store here carries
                # a Kind's whole content, so refusing it for one value would
                # also lose every newer one beside it.  The replica keeps the
                # newer of the two instead: the outcome the RFC aims at.
                continue
            raise StoreRejected(
                ErrorCode.DATA_TOO_OLD,
                f"storage_time {data.storage_time} of Kind {kind.label}{_where(slot)} is not"
                f" after the stored {existing.data.storage_time} (sections 7, 13.5.3)",
            )
        values[slot] = StoredValue.make(data, item.expiry, item.signer, item.certificate)
        changed = True
    count = _count(model, values)
    if count > kind.maxCount and count > before:
        what = "an array of length" if model == DataModel.ARRAY else "with"
        raise StoreRejected(
            ErrorCode.DATA_TOO_LARGE,
            f"Kind {kind.label} would hold {what} {count} values, max-count {kind.maxCount}"
            " (section 7.4.1.2)",
        )
    if replica:
        newGeneration = generation
    else:
        current = record.generation if record is not None else 0
        newGeneration = current + 1 if changed else current
    if record is None and not changed and not replica:
        return None
    return KindRecord(resourceId, kind.kindId, model, newGeneration, values)


def _where(slot: Slot) -> str:
    if isinstance(slot, int):
        return f" index {slot}"
    if isinstance(slot, bytes):
        return f" key {slot.hex() or '(empty)'}"
    return ""


# -- reading -------------------------------------------------------------------


def synthetic(model: DataModel, slot: Slot) -> StoredData:
    """Section 7.4.2.2: "A nonexistent value (i.e., one which the node has
    no knowledge of) is represented by a synthetic value with "exists" set
    to False and has an empty signature"."""
    absent = DataValue(False)
    value: StoredDataValue
    if model == DataModel.ARRAY:
        value = ArrayEntry(slot if isinstance(slot, int) else 0, absent)
    elif model == DataModel.DICTIONARY:
        value = DictionaryEntry(slot if isinstance(slot, bytes) else b"", absent)
    else:
        value = absent
    return StoredData(0, 0, value, _EMPTY_SIGNATURE)


def _checkRanges(ranges: Iterable[ArrayRange]) -> list[tuple[int, int]]:
    """Section 7.4.2.1: "The first integer MUST be less than or equal to
    the second.  While multiple ranges MAY be specified, they MUST NOT
    overlap."""
    out: list[tuple[int, int]] = []
    for r in ranges:
        if r.first > r.last:
            raise StoreRejected(
                ErrorCode.INVALID_MESSAGE,
                f"array range {r.first}..{r.last}: first after last (section 7.4.2.1)",
            )
        out.append((r.first, r.last))
    ordered = sorted(out)
    for (_, last), (first, _) in pairwise(ordered):
        if first <= last:
            raise StoreRejected(ErrorCode.INVALID_MESSAGE, "array ranges overlap (section 7.4.2.1)")
    return out


def select(
    record: KindRecord | None, spec: StoredDataSpecifier, nowMs: int
) -> tuple[int, list[tuple[StoredData, StoredValue | None]]]:
    """The generation counter and the values a Fetch (or Stat) with
    ``spec`` returns (section 7.4.2): each as served now, with the
    :class:`StoredValue` it comes from (None for a synthetic one).

    * No values when the request's generation (nonzero) equals the stored
      counter (7.4.2.1).
    * Single value: the value, or a synthetic nonexistent one.
    * Array: the indices of each range, in request order, 0xffffffff
      standing for the last element; a range is cut at the end of the
      array (the highest stored index), and gaps below it are synthetic
      nonexistent values (7.2.2).
    * Dictionary: the keys asked for (synthetic when absent), or every
      stored entry, in key order, when none are (a "wildcard fetch").
    """
    model = spec.model
    generation = record.generation if record is not None else 0
    if record is not None and record.model != model:
        raise StoreRejected(ErrorCode.INVALID_MESSAGE, "the specifier's model is not the Kind's")
    if spec.generation and spec.generation == generation:
        return generation, []
    values = record.live(nowMs) if record is not None else {}
    out: list[tuple[StoredData, StoredValue | None]] = []

    def one(slot: Slot) -> None:
        found = values.get(slot)
        if found is None:
            out.append((synthetic(model, slot), None))
        else:
            out.append((found.at(nowMs), found))

    if model == DataModel.SINGLE:
        one(None)
    elif model == DataModel.ARRAY:
        ranges = _checkRanges(spec.indices)
        end = _length(values) - 1
        for first, last in ranges:
            for index in range(first, min(last, end) + 1):
                one(index)
    elif spec.keys:
        for key in spec.keys:
            one(key)
    else:
        for key in sorted(s for s in values if isinstance(s, bytes)):
            one(key)
    return generation, out


def metadataOf(data: StoredData) -> StoredMetaData:
    """Section 7.4.3.2: the StoredMetaData of a value: its length and the
    SHA-256 "digest ... on the value field of the DataValue, including its
    4 leading length bytes"."""
    value = data.value
    dataValue = dataValueOf(value)
    payload = dataValue.value
    digest = hashlib.sha256(len(payload).to_bytes(4, "big") + payload).digest()
    meta = MetaData(dataValue.exists, len(payload), HashAlgorithm.SHA256, digest)
    entry: MetaDataValue
    if isinstance(value, ArrayEntry):
        entry = ArrayEntryMeta(value.index, meta)
    elif isinstance(value, DictionaryEntry):
        entry = DictionaryEntryMeta(value.key, meta)
    else:
        entry = meta
    return StoredMetaData(data.storage_time, data.lifetime, entry)
