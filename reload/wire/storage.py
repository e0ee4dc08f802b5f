"""Bodies of the storage methods: Store, Fetch, Stat and Find (RFC 6940 section 7).

The shape of a stored value depends on the data model of its Kind (section
7.2: "The actual data model is known from the Kind being stored"), and the
model is configuration, not bytes.  So the decoders of the structures that
hold values or value specifiers take the models of the Kinds this peer
knows, ``models: Mapping[int, DataModel]`` (Kind-ID -> model)::

    req = StoreReq.decode(body, models)

A Kind-ID missing from ``models`` is skipped (every such structure is
length-prefixed) and, once the whole body has been read, reported by
:class:`UnknownKind` -- a :class:`DecodeError` -- which lists every unknown
Kind so that the storage layer can answer Error_Unknown_Kind with the
``unknown_kinds`` list of section 7.4.1.2 (:class:`UnknownKindsInfo`).

Value-carrying structures are hot (a StoreReq, a FetchAns), so their readers
walk ``(data, pos, end)`` with :mod:`struct` rather than through
:class:`~reload.wire.buffer.Reader` calls; the bounds rule is the same: every
length is checked against its enclosing structure before it is used.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, ClassVar, Self, TypeVar

from reload.wire.base import COMPILED, SLOTTED, WireStruct, WireValue, constructor
from reload.wire.buffer import Buffer, Reader, opaque8, opaque16
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.nodeid import DEFAULT_NODE_ID_LENGTH, check_node_id_length
from reload.wire.security_block import (
    HashAlgorithm,
    Signature,
    SignerIdentity,
    read_signature_at,
)

__all__ = [
    "DEFAULT_NODE_ID_LENGTH",
    "STORAGE_BODIES",
    "ArrayEntry",
    "ArrayEntryMeta",
    "ArrayRange",
    "DataModel",
    "DataValue",
    "DictionaryEntry",
    "DictionaryEntryMeta",
    "DictionaryKey",
    "FetchAns",
    "FetchKindResponse",
    "FetchReq",
    "FindAns",
    "FindKindData",
    "FindReq",
    "MetaData",
    "MetaDataValue",
    "StatAns",
    "StatKindResponse",
    "StatReq",
    "StoreAns",
    "StoreKindData",
    "StoreKindResponse",
    "StoreReq",
    "StoredData",
    "StoredDataSpecifier",
    "StoredDataValue",
    "StoredMetaData",
    "UnknownKind",
    "UnknownKindsInfo",
    "stored_data_signature_input",
]

#: Section 11.1: NodeIdLength when the configuration does not say (16-20).

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_BOOL_U32 = struct.Struct("!BI")  # DataValue: exists, value length
_TIME_LIFE = struct.Struct("!QI")  # storage_time, lifetime
_KIND_GEN_U32 = struct.Struct("!IQI")  # kind, generation, length of a uint32 vector
_KIND_GEN_U16 = struct.Struct("!IQH")  # kind, generation, length of a uint16 vector
_KIND_GEN = struct.Struct("!IQ")
_LEN_TIME_LIFE = struct.Struct("!IQI")  # length, storage_time, lifetime
_META_HEAD = struct.Struct("!BIBB")  # MetaData: exists, value_length, hash_algorithm, hash len
_RANGE = struct.Struct("!II")
# StoredData heads up to the value bytes, per data model (the fast paths).
_SINGLE_HEAD = struct.Struct("!IQIBI")  # length, storage_time, lifetime, exists, value length
_ARRAY_HEAD = struct.Struct("!IQIIBI")  # length, storage_time, lifetime, index, exists, length
_DICTIONARY_HEAD = struct.Struct("!IQIH")  # length, storage_time, lifetime, key length
_HASH_ALGORITHMS = {a.value: a for a in HashAlgorithm}


class DataModel(IntEnum):
    """Section 7.2 data models (registry of section 14.7).

    The model never appears on the wire -- it comes from the Kind -- so these
    numbers are this implementation's own.
    """

    SINGLE = 1
    ARRAY = 2
    DICTIONARY = 3


#: Section 7.2.3: ``typedef opaque DictionaryKey<0..2^16-1>``.
DictionaryKey = bytes


class UnknownKind(DecodeError):
    """A body names Kind-IDs that are not in the ``models`` given.

    ``kinds`` lists every unknown Kind-ID of the body in order of
    appearance (``kind`` is the first), ready for the Error_Unknown_Kind
    error_info of section 7.4.1.2.  The rest of the body was well formed.
    """

    def __init__(self, kinds: Iterable[int], path: str = "") -> None:
        self.kinds = tuple(kinds)
        self.kind = self.kinds[0]
        listed = ", ".join(f"{k:#x}" for k in self.kinds)
        super().__init__(path, f"unknown Kind-ID {listed}")

    def within(self, outer: str) -> UnknownKind:
        return UnknownKind(self.kinds, f"{outer}.{self.path}" if self.path else outer)


# -- helpers ------------------------------------------------------------------


def _missing(have: int, *fields: tuple[str, int]) -> DecodeError:
    """The error for a structure cut short: name the first field that the
    ``have`` bytes do not cover."""
    for name, size in fields:
        if have < size:
            return DecodeError(name, f"needs {size} bytes, {max(have, 0)} left")
        have -= size
    return DecodeError(fields[-1][0], "truncated")  # pragma: no cover - callers check first


def _within(exc: DecodeError, path: str) -> DecodeError:
    return exc.within(path) if path else exc


def _data_of(r: Reader) -> bytes:
    data = r.data
    return data if type(data) is bytes else bytes(data)


_T = TypeVar("_T")


def _run(r: Reader, read: Callable[[bytes, int, int], tuple[_T, int]]) -> _T:
    """Run a fast reader on ``r``, advancing it and rooting errors at
    ``r.path``."""
    try:
        value, r.pos = read(_data_of(r), r.pos, r.end)
    except DecodeError as exc:
        raise _within(exc, r.path) from None
    return value


def _decode_all(name: str, data: Buffer, read: Callable[[bytes, int, int], tuple[_T, int]]) -> _T:
    """Decode exactly one structure from ``data``: refuse trailing bytes."""
    if type(data) is not bytes:
        data = bytes(data)
    try:
        value, pos = read(data, 0, len(data))
    except DecodeError as exc:
        raise exc.within(name) from None
    if pos != len(data):
        raise DecodeError(name, f"{len(data) - pos} unexpected trailing bytes")
    return value


def _u32_vector(payload: bytes, what: str) -> bytes:
    if len(payload) > 0xFFFFFFFF:
        raise EncodeError(f"{what} of {len(payload)} bytes do not fit 2^32-1")
    return _U32.pack(len(payload)) + payload


def _check_unique(kinds: list[int] | tuple[int, ...], what: str) -> None:
    if len(kinds) > 1 and len(set(kinds)) != len(kinds):
        twice = next(k for i, k in enumerate(kinds) if k in kinds[:i])
        raise EncodeError(f"Kind-ID {twice:#x} appears twice in {what}")


# -- data values (section 7.2) ------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class DataValue(WireStruct):
    """Section 7.2: a value, or (``exists`` False) the statement that there
    is none -- how values are removed (section 7.4.1.3)."""

    exists: bool
    value: bytes

    def __init__(self, exists: bool, value: bytes = b"") -> None:
        # Written out, not generated: compiled, this __init__ is native
        # (reload.wire.base, "Hot decoders").
        object.__setattr__(self, "exists", exists)
        object.__setattr__(self, "value", value)

    def encode(self) -> bytes:
        value = self.value
        if len(value) > 0xFFFFFFFF:
            raise EncodeError(f"value of {len(value)} bytes does not fit 2^32-1")
        return _BOOL_U32.pack(1 if self.exists else 0, len(value)) + value

    @classmethod
    def read(cls, r: Reader) -> Self:
        return _run(r, _read_data_value)  # type: ignore[return-value]


def _read_data_value(data: bytes, pos: int, end: int) -> tuple[DataValue, int]:
    if pos + 5 > end:
        raise _missing(end - pos, ("exists", 1), ("value", 4))
    exists: int
    n: int
    exists, n = _BOOL_U32.unpack_from(data, pos)
    if exists > 1:
        raise DecodeError("exists", f"Boolean must be 0 or 1, got {exists}")
    value_end = pos + 5 + n
    if value_end > end:
        raise DecodeError("value", f"{n} bytes announced, {end - pos - 5} left")
    return _new_data_value(exists == 1, data[pos + 5 : value_end]), value_end


class _AppendIndex(WireStruct):
    """Holds ``ArrayEntry.APPEND`` outside the dataclass body (a class
    variable there is a field once compiled: see :mod:`reload.wire.base`)."""

    __slots__ = ()

    #: Section 7.4.1.1: the index that means "append".
    APPEND: ClassVar[int] = 0xFFFFFFFF


@dataclass(frozen=True, init=False, **SLOTTED)
class ArrayEntry(_AppendIndex):
    """Section 7.2.2: the value at ``index`` of an array.  In a store,
    index 0xffffffff appends (section 7.4.1.1)."""

    index: int
    value: DataValue

    def __init__(self, index: int, value: DataValue) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "value", value)

    def encode(self) -> bytes:
        if not 0 <= self.index <= 0xFFFFFFFF:
            raise EncodeError(f"array index out of range: {self.index}")
        return _U32.pack(self.index) + self.value.encode()

    @classmethod
    def read(cls, r: Reader) -> Self:
        return _run(r, _read_array_entry)  # type: ignore[return-value]


def _read_array_entry(data: bytes, pos: int, end: int) -> tuple[ArrayEntry, int]:
    if pos + 4 > end:
        raise DecodeError("index", f"needs 4 bytes, {max(end - pos, 0)} left")
    (index,) = _U32.unpack_from(data, pos)
    try:
        value, pos = _read_data_value(data, pos + 4, end)
    except DecodeError as exc:
        raise exc.within("value") from None
    return _new_array_entry(index, value), pos


@dataclass(frozen=True, init=False, **SLOTTED)
class DictionaryEntry(WireStruct):
    """Section 7.2.3: the value stored under ``key``."""

    key: DictionaryKey
    value: DataValue

    def __init__(self, key: DictionaryKey, value: DataValue) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "value", value)

    def encode(self) -> bytes:
        return opaque16(self.key) + self.value.encode()

    @classmethod
    def read(cls, r: Reader) -> Self:
        return _run(r, _read_dictionary_entry)  # type: ignore[return-value]


def _read_key(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise DecodeError("key", f"needs 2 bytes, {max(end - pos, 0)} left")
    (n,) = _U16.unpack_from(data, pos)
    key_end = pos + 2 + n
    if key_end > end:
        raise DecodeError("key", f"{n} bytes announced, {end - pos - 2} left")
    return data[pos + 2 : key_end], key_end


def _read_dictionary_entry(data: bytes, pos: int, end: int) -> tuple[DictionaryEntry, int]:
    key, pos = _read_key(data, pos, end)
    try:
        value, pos = _read_data_value(data, pos, end)
    except DecodeError as exc:
        raise exc.within("value") from None
    return _new_dictionary_entry(key, value), pos


#: Section 7.2 ``StoredDataValue``: which arm is given by the Kind's model.
StoredDataValue = DataValue | ArrayEntry | DictionaryEntry

_new_data_value = constructor(DataValue)
_new_array_entry = constructor(ArrayEntry)
_new_dictionary_entry = constructor(DictionaryEntry)

_VALUE_READERS: dict[DataModel, Callable[[bytes, int, int], tuple[StoredDataValue, int]]] = {
    DataModel.SINGLE: _read_data_value,
    DataModel.ARRAY: _read_array_entry,
    DataModel.DICTIONARY: _read_dictionary_entry,
}


# -- StoredData (section 7, signature section 7.1) ----------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class StoredData:
    """Section 7: one stored value with its storage time (milliseconds since
    the epoch), lifetime (seconds) and the storer's signature (section 7.1).

    The uint32 ``length`` prefix is computed on encode.  Reading needs the
    Kind's data model: ``StoredData.read(r, DataModel.ARRAY)``.
    """

    storage_time: int
    lifetime: int
    value: StoredDataValue
    signature: Signature

    def __init__(
        self, storage_time: int, lifetime: int, value: StoredDataValue, signature: Signature
    ) -> None:
        object.__setattr__(self, "storage_time", storage_time)
        object.__setattr__(self, "lifetime", lifetime)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "signature", signature)

    @property
    def model(self) -> DataModel:
        """The data model this value's form belongs to."""
        value = self.value
        if isinstance(value, DataValue):
            return DataModel.SINGLE
        return DataModel.ARRAY if isinstance(value, ArrayEntry) else DataModel.DICTIONARY

    def encode(self) -> bytes:
        signature = self.signature.encode()
        value = self.value
        payload: bytes
        # One struct.pack for the fixed fields up to the value bytes.
        try:
            if isinstance(value, ArrayEntry):
                data_value = value.value
                payload = data_value.value
                head = _ARRAY_HEAD.pack(
                    21 + len(payload) + len(signature),
                    self.storage_time,
                    self.lifetime,
                    value.index,
                    1 if data_value.exists else 0,
                    len(payload),
                )
            elif isinstance(value, DataValue):
                payload = value.value
                head = _SINGLE_HEAD.pack(
                    17 + len(payload) + len(signature),
                    self.storage_time,
                    self.lifetime,
                    1 if value.exists else 0,
                    len(payload),
                )
            else:
                payload = value.encode()
                head = _LEN_TIME_LIFE.pack(
                    12 + len(payload) + len(signature), self.storage_time, self.lifetime
                )
        except struct.error:
            raise EncodeError(
                f"StoredData field out of range: storage_time {self.storage_time}, "
                f"lifetime {self.lifetime}, or a length beyond 2^32-1"
            ) from None
        return b"".join((head, payload, signature))

    def signature_input(self, resource_id: bytes, kind: int) -> bytes:
        """The bytes this value's signature covers (section 7.1)."""
        return stored_data_signature_input(
            resource_id, kind, self.storage_time, self.value, self.signature.identity
        )

    @classmethod
    def read(cls, r: Reader, model: DataModel) -> StoredData:
        return _run(r, _STORED_DATA_READERS[model])

    @classmethod
    def decode(cls, data: Buffer, model: DataModel) -> StoredData:
        return _decode_all(cls.__name__, data, _STORED_DATA_READERS[model])


def _read_stored_data(
    data: bytes,
    pos: int,
    end: int,
    read_value: Callable[[bytes, int, int], tuple[StoredDataValue, int]],
) -> tuple[StoredData, int]:
    if pos + 4 > end:
        raise DecodeError("length", f"needs 4 bytes, {max(end - pos, 0)} left")
    (length,) = _U32.unpack_from(data, pos)
    start = pos + 4
    stop = start + length
    if stop > end:
        raise DecodeError("length", f"{length} bytes announced, {end - start} left")
    if length < 12:
        raise _missing(length, ("storage_time", 8), ("lifetime", 4))
    storage_time, lifetime = _TIME_LIFE.unpack_from(data, start)
    try:
        value, p = read_value(data, start + 12, stop)
    except DecodeError as exc:
        raise exc.within("value") from None
    try:
        signature, p = read_signature_at(data, p, stop)
    except DecodeError as exc:
        raise exc.within("signature") from None
    if p != stop:
        raise DecodeError("", f"{stop - p} unexpected trailing bytes inside length")
    return _new_stored_data(storage_time, lifetime, value, signature), stop


_new_stored_data = constructor(StoredData)

# The readers below are the hot path of StoreReq and FetchAns: one unpack for
# the fixed fields and no intermediate calls.  Anything unusual -- including
# every malformed input -- goes to _read_stored_data, the reference reader,
# which produces the value or the precise error.


def _read_stored_single(data: bytes, pos: int, end: int) -> tuple[StoredData, int]:
    if pos + 21 <= end:
        length: int
        storage_time: int
        lifetime: int
        exists: int
        n: int
        length, storage_time, lifetime, exists, n = _SINGLE_HEAD.unpack_from(data, pos)
        stop = pos + 4 + length
        value_end = pos + 21 + n
        if value_end <= stop <= end and exists <= 1:
            try:
                signature, p = read_signature_at(data, value_end, stop)
            except DecodeError:
                p = -1
            if p == stop:
                raw = data[pos + 21 : value_end]
                if COMPILED:  # native constructors, called directly (reload.wire.base)
                    single = DataValue(exists == 1, raw)
                    return StoredData(storage_time, lifetime, single, signature), stop
                value = _new_data_value(exists == 1, raw)
                return _new_stored_data(storage_time, lifetime, value, signature), stop
    return _read_stored_data(data, pos, end, _read_data_value)


def _read_stored_array(data: bytes, pos: int, end: int) -> tuple[StoredData, int]:
    if pos + 25 <= end:
        length: int
        storage_time: int
        lifetime: int
        index: int
        exists: int
        n: int
        length, storage_time, lifetime, index, exists, n = _ARRAY_HEAD.unpack_from(data, pos)
        stop = pos + 4 + length
        value_end = pos + 25 + n
        if value_end <= stop <= end and exists <= 1:
            try:
                signature, p = read_signature_at(data, value_end, stop)
            except DecodeError:
                p = -1
            if p == stop:
                raw = data[pos + 25 : value_end]
                if COMPILED:  # native constructors, called directly (reload.wire.base)
                    item = ArrayEntry(index, DataValue(exists == 1, raw))
                    return StoredData(storage_time, lifetime, item, signature), stop
                entry = _new_array_entry(index, _new_data_value(exists == 1, raw))
                return _new_stored_data(storage_time, lifetime, entry, signature), stop
    return _read_stored_data(data, pos, end, _read_array_entry)


def _read_stored_dictionary(data: bytes, pos: int, end: int) -> tuple[StoredData, int]:
    if pos + 18 <= end:
        length: int
        storage_time: int
        lifetime: int
        key_length: int
        length, storage_time, lifetime, key_length = _DICTIONARY_HEAD.unpack_from(data, pos)
        stop = pos + 4 + length
        key_end = pos + 18 + key_length
        if key_end + 5 <= stop <= end:
            exists: int
            n: int
            exists, n = _BOOL_U32.unpack_from(data, key_end)
            value_end = key_end + 5 + n
            if value_end <= stop and exists <= 1:
                try:
                    signature, p = read_signature_at(data, value_end, stop)
                except DecodeError:
                    p = -1
                if p == stop:
                    raw, key = data[key_end + 5 : value_end], data[pos + 18 : key_end]
                    if COMPILED:  # native constructors, called directly (reload.wire.base)
                        pair = DictionaryEntry(key, DataValue(exists == 1, raw))
                        return StoredData(storage_time, lifetime, pair, signature), stop
                    value = _new_data_value(exists == 1, raw)
                    entry = _new_dictionary_entry(key, value)
                    return _new_stored_data(storage_time, lifetime, entry, signature), stop
    return _read_stored_data(data, pos, end, _read_dictionary_entry)


_STORED_DATA_READERS: dict[DataModel, Callable[[bytes, int, int], tuple[StoredData, int]]] = {
    DataModel.SINGLE: _read_stored_single,
    DataModel.ARRAY: _read_stored_array,
    DataModel.DICTIONARY: _read_stored_dictionary,
}


def stored_data_signature_input(
    resource_id: bytes,
    kind: int,
    storage_time: int,
    value: StoredDataValue,
    identity: SignerIdentity,
) -> bytes:
    """The bytes a stored value's signature covers (section 7.1):
    ``resource_id || kind || storage_time || StoredDataValue ||
    SignerIdentity``.

    ``resource_id`` is the Resource-ID's bytes without their length byte
    (7.1 names "the Resource-ID", as 6.3.4 does for the raw NodeId), ``kind``
    a uint32 (KindId), ``storage_time`` a uint64.  For an array entry the
    index is zeroed first (section 7.4.2.2), so that appended values, whose
    index the storing peer chooses, still verify.
    """
    if isinstance(value, ArrayEntry) and value.index:
        value = replace(value, index=0)
    try:
        head = _KIND_GEN.pack(kind, storage_time)
    except struct.error:
        raise EncodeError(f"kind {kind} or storage_time {storage_time} out of range") from None
    return b"".join((resource_id, head, value.encode(), identity.encode()))


# -- per-Kind value lists -----------------------------------------------------

_ValueReader = Callable[[bytes, int, int], tuple[Any, int]]


@dataclass(frozen=True, init=False, **SLOTTED)
class _KindValuesForm:
    """How to read one of the three ``kind, uint64, values<0..2^32-1>``
    structures (StoreKindData, FetchKindResponse, StatKindResponse)."""

    names: tuple[str, str, str]
    readers: Mapping[DataModel, _ValueReader]
    make: Callable[[int, int, tuple[Any, ...]], Any]

    def __init__(
        self,
        names: tuple[str, str, str],
        readers: Mapping[DataModel, _ValueReader],
        make: Callable[[int, int, tuple[Any, ...]], Any],
    ) -> None:
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "readers", readers)
        object.__setattr__(self, "make", make)


def _read_kind_values(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel], form: _KindValuesForm
) -> tuple[Any, int, int]:
    """Read one per-Kind structure; return it (``None`` for a Kind missing
    from ``models``, whose values are skipped), its end and its Kind-ID."""
    names = form.names
    if pos + 16 > end:
        raise _missing(end - pos, (names[0], 4), (names[1], 8), (names[2], 4))
    kind: int
    generation: int
    length: int
    kind, generation, length = _KIND_GEN_U32.unpack_from(data, pos)
    p = pos + 16
    stop = p + length
    if stop > end:
        raise DecodeError(names[2], f"{length} bytes announced, {end - p} left")
    model = models.get(kind)
    if model is None:
        return None, stop, kind
    read_one = form.readers[model]
    values: list[Any] = []
    while p < stop:
        try:
            value, p = read_one(data, p, stop)
        except DecodeError as exc:
            raise exc.within(f"{names[2]}[{len(values)}]") from None
        values.append(value)
    return form.make(kind, generation, tuple(values)), stop, kind


def _read_kind_list(
    data: bytes,
    pos: int,
    end: int,
    models: Mapping[int, DataModel],
    form: _KindValuesForm,
    field: str,
) -> tuple[Any, ...]:
    """Read a vector (``data[pos:end]``) of per-Kind structures; raise
    :class:`UnknownKind` naming all unknown Kinds once all are read."""
    out = []
    unknown = []
    index = 0
    while pos < end:
        try:
            item, pos, kind = _read_kind_values(data, pos, end, models, form)
        except DecodeError as exc:
            raise exc.within(f"{field}[{index}]") from None
        if item is None:
            unknown.append(kind)
        else:
            out.append(item)
        index += 1
    if unknown:
        raise UnknownKind(unknown, field)
    return tuple(out)


def _one_kind_reader(
    models: Mapping[int, DataModel], form: _KindValuesForm
) -> Callable[[bytes, int, int], tuple[Any, int]]:
    """A reader of one per-Kind structure that raises :class:`UnknownKind`
    for a Kind missing from ``models``."""

    def read(data: bytes, pos: int, end: int) -> tuple[Any, int]:
        item, pos, kind = _read_kind_values(data, pos, end, models, form)
        if item is None:
            raise UnknownKind((kind,), form.names[0])
        return item, pos

    return read


def _encode_kind_values(
    kind: int, generation: int, values: Iterable[StoredData | StoredMetaData]
) -> bytes:
    payload = b"".join([v.encode() for v in values])
    try:
        head = _KIND_GEN_U32.pack(kind, generation, len(payload))
    except struct.error:
        raise EncodeError(
            f"kind {kind}, generation {generation} or {len(payload)} bytes of values out of range"
        ) from None
    return head + payload


# -- Store (section 7.4.1) ----------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class StoreKindData:
    """Section 7.4.1.1: the values of one Kind to store, with the generation
    counter the storer expects (0: do not check)."""

    kind: int
    generation_counter: int
    values: tuple[StoredData, ...]

    def __init__(self, kind: int, generation_counter: int, values: tuple[StoredData, ...]) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "generation_counter", generation_counter)
        object.__setattr__(self, "values", values)

    def encode(self) -> bytes:
        return _encode_kind_values(self.kind, self.generation_counter, self.values)

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> StoreKindData:
        return _run(r, _one_kind_reader(models, _STORE_KIND_DATA))  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> StoreKindData:
        read = _one_kind_reader(models, _STORE_KIND_DATA)
        return _decode_all(cls.__name__, data, read)  # type: ignore[no-any-return]


_STORE_KIND_DATA = _KindValuesForm(
    ("kind", "generation_counter", "values"),
    _STORED_DATA_READERS,
    constructor(StoreKindData),
)


@dataclass(frozen=True, init=False, **SLOTTED)
class StoreReq(WireValue):
    """Section 7.4.1.1: store values of several Kinds at ``resource``.
    ``replica_number`` is 0 for an original store.  A Kind-ID may appear
    only once ("MUST NOT be used twice"); both directions enforce it."""

    resource: bytes
    replica_number: int
    kind_data: tuple[StoreKindData, ...]

    def __init__(
        self, resource: bytes, replica_number: int, kind_data: tuple[StoreKindData, ...]
    ) -> None:
        object.__setattr__(self, "resource", resource)
        object.__setattr__(self, "replica_number", replica_number)
        object.__setattr__(self, "kind_data", kind_data)

    def encode(self) -> bytes:
        _check_unique([k.kind for k in self.kind_data], "a StoreReq")
        if not 0 <= self.replica_number <= 0xFF:
            raise EncodeError(f"replica_number out of range: {self.replica_number}")
        payload = b"".join([k.encode() for k in self.kind_data])
        return b"".join(
            (
                opaque8(self.resource),
                bytes((self.replica_number,)),
                _u32_vector(payload, "kind_data"),
            )
        )

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> StoreReq:
        return _run(r, lambda d, p, e: _read_store_req(d, p, e, models))

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> StoreReq:
        return _decode_all(cls.__name__, data, lambda d, p, e: _read_store_req(d, p, e, models))


StoreReq.CODE = 7


def _read_resource(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """``ResourceId resource`` (section 6.3.1.1: ``opaque<0..2^8-1>``)."""
    if pos >= end:
        raise DecodeError("resource", "needs 1 byte, 0 left")
    n = data[pos]
    stop = pos + 1 + n
    if stop > end:
        raise DecodeError("resource", f"{n} bytes announced, {end - pos - 1} left")
    return data[pos + 1 : stop], stop


def _read_store_req(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel]
) -> tuple[StoreReq, int]:
    resource, pos = _read_resource(data, pos, end)
    if pos + 5 > end:
        raise _missing(end - pos, ("replica_number", 1), ("kind_data", 4))
    replica_number = data[pos]
    (length,) = _U32.unpack_from(data, pos + 1)
    start = pos + 5
    stop = start + length
    if stop > end:
        raise DecodeError("kind_data", f"{length} bytes announced, {end - start} left")
    kind_data = _read_kind_list(data, start, stop, models, _STORE_KIND_DATA, "kind_data")
    seen: set[int] = set()
    for index, item in enumerate(kind_data):
        if item.kind in seen:
            raise DecodeError(f"kind_data[{index}].kind", f"Kind-ID {item.kind:#x} appears twice")
        seen.add(item.kind)
    return StoreReq(resource, replica_number, kind_data), stop


@dataclass(frozen=True, init=False, **SLOTTED)
class StoreKindResponse(WireStruct):
    """Section 7.4.1.2: the generation counter now stored for ``kind`` and
    the Node-IDs of the peers that will hold replicas (``NodeId`` has no
    length on the wire, so reading needs ``node_id_length``)."""

    kind: int
    generation_counter: int
    replicas: tuple[bytes, ...] = ()

    def __init__(
        self, kind: int, generation_counter: int, replicas: tuple[bytes, ...] = ()
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "generation_counter", generation_counter)
        object.__setattr__(self, "replicas", replicas)

    def encode(self) -> bytes:
        lengths = {len(r) for r in self.replicas}
        if len(lengths) > 1 or not lengths <= set(range(16, 21)):
            raise EncodeError("replicas must be Node-IDs of one length, 16 to 20 bytes")
        replicas = b"".join(self.replicas)
        if len(replicas) > 0xFFFF:
            raise EncodeError(f"replicas of {len(replicas)} bytes do not fit 2^16-1")
        try:
            head = _KIND_GEN.pack(self.kind, self.generation_counter)
        except struct.error:
            raise EncodeError("kind or generation_counter out of range") from None
        return head + _U16.pack(len(replicas)) + replicas

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        check_node_id_length(node_id_length)
        read = _store_kind_response_reader(node_id_length)
        return _run(r, read)  # type: ignore[return-value]

    @classmethod
    def decode(cls, data: Buffer, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        check_node_id_length(node_id_length)
        read = _store_kind_response_reader(node_id_length)
        return _decode_all(cls.__name__, data, read)  # type: ignore[return-value]


def _store_kind_response_reader(
    node_id_length: int,
) -> Callable[[bytes, int, int], tuple[StoreKindResponse, int]]:
    def read(data: bytes, pos: int, end: int) -> tuple[StoreKindResponse, int]:
        if pos + 14 > end:
            raise _missing(end - pos, ("kind", 4), ("generation_counter", 8), ("replicas", 2))
        kind, generation, n = _KIND_GEN_U16.unpack_from(data, pos)
        start = pos + 14
        stop = start + n
        if stop > end:
            raise DecodeError("replicas", f"{n} bytes announced, {end - start} left")
        if n % node_id_length:
            raise DecodeError(
                "replicas", f"{n} bytes are not a whole number of {node_id_length}-byte Node-IDs"
            )
        replicas = tuple([data[p : p + node_id_length] for p in range(start, stop, node_id_length)])
        return StoreKindResponse(kind, generation, replicas), stop

    return read


@dataclass(frozen=True, init=False, **SLOTTED)
class StoreAns(WireStruct):
    """Section 7.4.1.2: one StoreKindResponse per Kind stored.  Also the
    error_info of Error_Generation_Counter_Too_Low."""

    kind_responses: tuple[StoreKindResponse, ...]

    def __init__(self, kind_responses: tuple[StoreKindResponse, ...]) -> None:
        object.__setattr__(self, "kind_responses", kind_responses)

    def encode(self) -> bytes:
        return opaque16(b"".join([k.encode() for k in self.kind_responses]))

    @classmethod
    def read(cls, r: Reader, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        check_node_id_length(node_id_length)
        sub = r.sub(2, "kind_responses")
        read = _store_kind_response_reader(node_id_length)
        return cls(_read_each(sub, read))

    @classmethod
    def decode(cls, data: Buffer, node_id_length: int = DEFAULT_NODE_ID_LENGTH) -> Self:
        r = Reader(data, path=cls.__name__)
        value = cls.read(r, node_id_length)
        r.finish()
        return value


StoreAns.CODE = 8


def _read_each(sub: Reader, read: Callable[[bytes, int, int], tuple[_T, int]]) -> tuple[_T, ...]:
    """Read elements with ``read`` until ``sub`` (a vector) is exhausted;
    errors name the element as ``field[i]``."""
    data = _data_of(sub)
    pos, end = sub.pos, sub.end
    out: list[_T] = []
    while pos < end:
        try:
            item, pos = read(data, pos, end)
        except DecodeError as exc:
            raise exc.within(f"{sub.path}[{len(out)}]") from None
        out.append(item)
    sub.pos = pos
    return tuple(out)


@dataclass(frozen=True, init=False, **SLOTTED)
class UnknownKindsInfo(WireStruct):
    """Section 7.4.1.2: the error_info of Error_Unknown_Kind,
    ``KindId unknown_kinds<0..2^8-1>`` (at most 63 Kinds)."""

    kinds: tuple[int, ...]

    def __init__(self, kinds: tuple[int, ...]) -> None:
        object.__setattr__(self, "kinds", kinds)

    def encode(self) -> bytes:
        return _encode_kind_ids(self.kinds)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(_read_kind_ids(r, "unknown_kinds"))


def _encode_kind_ids(kinds: tuple[int, ...]) -> bytes:
    """``KindId kinds<0..2^8-1>``."""
    if len(kinds) > 63:
        raise EncodeError(f"{len(kinds)} Kind-IDs do not fit 2^8-1 bytes")
    try:
        return bytes((4 * len(kinds),)) + b"".join([_U32.pack(k) for k in kinds])
    except struct.error:
        raise EncodeError(f"Kind-ID out of range in {kinds}") from None


def _read_kind_ids(r: Reader, field: str) -> tuple[int, ...]:
    raw = r.opaque(1, field)
    if len(raw) % 4:
        raise r.error(field, f"{len(raw)} bytes are not a whole number of 4-byte Kind-IDs")
    return tuple([k for (k,) in _U32.iter_unpack(raw)])


# -- Fetch (section 7.4.2) ----------------------------------------------------


class _LastIndex(WireStruct):
    """Holds ``ArrayRange.LAST`` outside the dataclass body (see
    :class:`_AppendIndex`)."""

    __slots__ = ()

    #: Section 7.4.2.1: the index of the final element.
    LAST: ClassVar[int] = 0xFFFFFFFF


@dataclass(frozen=True, init=False, **SLOTTED)
class ArrayRange(_LastIndex):
    """Section 7.4.2.1: the array indices ``first`` to ``last``, inclusive;
    0xffffffff is the last element.

    The RFC declares both fields ``int32`` but uses 0xffffffff for "the final
    element" and requires first <= last, which only makes sense unsigned, so
    they are read as uint32 (the bytes are the same either way).  Order and
    overlap of ranges are for the storage layer to check.
    """

    first: int
    last: int

    def __init__(self, first: int, last: int) -> None:
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "last", last)

    def encode(self) -> bytes:
        try:
            return _RANGE.pack(self.first, self.last)
        except struct.error:
            raise EncodeError(f"array range out of range: {self.first}..{self.last}") from None

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u32("first"), r.u32("last"))


@dataclass(frozen=True, init=False, **SLOTTED)
class StoredDataSpecifier:
    """Section 7.4.2.1: which values of ``kind`` to fetch (or stat).

    ``model`` is the Kind's data model (not on the wire, but it decides the
    form): SINGLE has no specifier, ARRAY has ``indices``, DICTIONARY has
    ``keys`` (none: all of them).  ``generation`` is the last generation
    counter seen (0: none).

    ``length`` covers the rest of the structure "thus allowing
    extensibility": bytes after the model specifier are kept in
    ``extension``, uninterpreted, and re-encoded unchanged.
    """

    kind: int
    model: DataModel
    generation: int = 0
    indices: tuple[ArrayRange, ...] = ()
    keys: tuple[DictionaryKey, ...] = ()
    extension: bytes = b""

    def __init__(
        self,
        kind: int,
        model: DataModel,
        generation: int = 0,
        indices: tuple[ArrayRange, ...] = (),
        keys: tuple[DictionaryKey, ...] = (),
        extension: bytes = b"",
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "generation", generation)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "extension", extension)

    @classmethod
    def single(cls, kind: int, generation: int = 0) -> StoredDataSpecifier:
        return cls(kind, DataModel.SINGLE, generation)

    @classmethod
    def array(
        cls, kind: int, indices: Iterable[ArrayRange], generation: int = 0
    ) -> StoredDataSpecifier:
        return cls(kind, DataModel.ARRAY, generation, indices=tuple(indices))

    @classmethod
    def dictionary(
        cls, kind: int, keys: Iterable[bytes] = (), generation: int = 0
    ) -> StoredDataSpecifier:
        return cls(kind, DataModel.DICTIONARY, generation, keys=tuple(keys))

    def encode(self) -> bytes:
        model = self.model
        if self.indices and model != DataModel.ARRAY:
            raise EncodeError("indices are only for the array model")
        if self.keys and model != DataModel.DICTIONARY:
            raise EncodeError("keys are only for the dictionary model")
        if model == DataModel.ARRAY:
            specifier = opaque16(b"".join([i.encode() for i in self.indices]))
        elif model == DataModel.DICTIONARY:
            specifier = opaque16(b"".join([opaque16(k) for k in self.keys]))
        else:
            specifier = b""
        rest = specifier + self.extension
        try:
            return _KIND_GEN_U16.pack(self.kind, self.generation, len(rest)) + rest
        except struct.error:
            raise EncodeError("kind, generation or specifier length out of range") from None

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> StoredDataSpecifier:
        return _run(r, _one_specifier_reader(models))

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> StoredDataSpecifier:
        return _decode_all(cls.__name__, data, _one_specifier_reader(models))


def _one_specifier_reader(
    models: Mapping[int, DataModel],
) -> Callable[[bytes, int, int], tuple[StoredDataSpecifier, int]]:
    def read(data: bytes, pos: int, end: int) -> tuple[StoredDataSpecifier, int]:
        spec, pos, kind = _read_specifier(data, pos, end, models)
        if spec is None:
            raise UnknownKind((kind,), "kind")
        return spec, pos

    return read


def _read_specifier(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel]
) -> tuple[StoredDataSpecifier | None, int, int]:
    """Read one specifier; ``None`` (skipped) for a Kind missing from
    ``models``.  Returns it, its end and its Kind-ID."""
    if pos + 14 > end:
        raise _missing(end - pos, ("kind", 4), ("generation", 8), ("length", 2))
    kind, generation, length = _KIND_GEN_U16.unpack_from(data, pos)
    p = pos + 14
    stop = p + length
    if stop > end:
        raise DecodeError("length", f"{length} bytes announced, {end - p} left")
    model = models.get(kind)
    if model is None:
        return None, stop, kind
    if model == DataModel.SINGLE:
        return _new_specifier(kind, model, generation, (), (), data[p:stop]), stop, kind
    field = "indices" if model == DataModel.ARRAY else "keys"
    if p + 2 > stop:
        raise DecodeError(field, f"needs 2 bytes, {stop - p} left")
    (n,) = _U16.unpack_from(data, p)
    p += 2
    vector_end = p + n
    if vector_end > stop:
        raise DecodeError(field, f"{n} bytes announced, {stop - p} left")
    indices: tuple[ArrayRange, ...] = ()
    keys: tuple[bytes, ...] = ()
    if model == DataModel.ARRAY:
        if n % 8:
            raise DecodeError(field, f"{n} bytes are not a whole number of 8-byte ArrayRanges")
        indices = tuple([_new_range(f, last) for f, last in _RANGE.iter_unpack(data[p:vector_end])])
    else:
        out: list[bytes] = []
        while p < vector_end:
            try:
                key, p = _read_key(data, p, vector_end)
            except DecodeError as exc:
                raise DecodeError(f"keys[{len(out)}]", exc.reason) from None
            out.append(key)
        keys = tuple(out)
    spec = _new_specifier(kind, model, generation, indices, keys, data[vector_end:stop])
    return spec, stop, kind


_new_specifier = constructor(StoredDataSpecifier)
_new_range = constructor(ArrayRange)


def _read_specifier_request(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel]
) -> tuple[bytes, tuple[StoredDataSpecifier, ...], int]:
    """FetchReq and StatReq: ``resource`` and ``specifiers<0..2^16-1>``."""
    resource, pos = _read_resource(data, pos, end)
    if pos + 2 > end:
        raise DecodeError("specifiers", f"needs 2 bytes, {max(end - pos, 0)} left")
    (n,) = _U16.unpack_from(data, pos)
    p = pos + 2
    stop = p + n
    if stop > end:
        raise DecodeError("specifiers", f"{n} bytes announced, {end - p} left")
    out = []
    unknown = []
    index = 0
    while p < stop:
        try:
            spec, p, kind = _read_specifier(data, p, stop, models)
        except DecodeError as exc:
            raise exc.within(f"specifiers[{index}]") from None
        if spec is None:
            unknown.append(kind)
        else:
            out.append(spec)
        index += 1
    if unknown:
        raise UnknownKind(unknown, "specifiers")
    return resource, tuple(out), stop


def _encode_specifier_request(
    resource: bytes, specifiers: tuple[StoredDataSpecifier, ...]
) -> bytes:
    return opaque8(resource) + opaque16(b"".join([s.encode() for s in specifiers]))


@dataclass(frozen=True, init=False, **SLOTTED)
class FetchReq(WireValue):
    """Section 7.4.2.1: fetch values of one or more Kinds from ``resource``."""

    resource: bytes
    specifiers: tuple[StoredDataSpecifier, ...]

    def __init__(self, resource: bytes, specifiers: tuple[StoredDataSpecifier, ...]) -> None:
        object.__setattr__(self, "resource", resource)
        object.__setattr__(self, "specifiers", specifiers)

    def encode(self) -> bytes:
        return _encode_specifier_request(self.resource, self.specifiers)

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> FetchReq:
        return _run(r, lambda d, p, e: _read_fetch_req(d, p, e, models))

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> FetchReq:
        return _decode_all(cls.__name__, data, lambda d, p, e: _read_fetch_req(d, p, e, models))


FetchReq.CODE = 9


def _read_fetch_req(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel]
) -> tuple[FetchReq, int]:
    resource, specifiers, pos = _read_specifier_request(data, pos, end, models)
    return _new_fetch_req(resource, specifiers), pos


_new_fetch_req = constructor(FetchReq)


@dataclass(frozen=True, init=False, **SLOTTED)
class FetchKindResponse:
    """Section 7.4.2.2: the generation counter and the requested values of
    one Kind (none when the request's generation matched)."""

    kind: int
    generation: int
    values: tuple[StoredData, ...]

    def __init__(self, kind: int, generation: int, values: tuple[StoredData, ...]) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "generation", generation)
        object.__setattr__(self, "values", values)

    def encode(self) -> bytes:
        return _encode_kind_values(self.kind, self.generation, self.values)

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> FetchKindResponse:
        return _run(r, _one_kind_reader(models, _FETCH_KIND_RESPONSE))  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> FetchKindResponse:
        read = _one_kind_reader(models, _FETCH_KIND_RESPONSE)
        return _decode_all(cls.__name__, data, read)  # type: ignore[no-any-return]


_FETCH_KIND_RESPONSE = _KindValuesForm(
    ("kind", "generation", "values"), _STORED_DATA_READERS, constructor(FetchKindResponse)
)


def _read_kind_responses(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel], form: _KindValuesForm
) -> tuple[tuple[Any, ...], int]:
    """FetchAns and StatAns: ``kind_responses<0..2^32-1>``."""
    if pos + 4 > end:
        raise DecodeError("kind_responses", f"needs 4 bytes, {max(end - pos, 0)} left")
    (n,) = _U32.unpack_from(data, pos)
    start = pos + 4
    stop = start + n
    if stop > end:
        raise DecodeError("kind_responses", f"{n} bytes announced, {end - start} left")
    return _read_kind_list(data, start, stop, models, form, "kind_responses"), stop


@dataclass(frozen=True, init=False, **SLOTTED)
class FetchAns(WireValue):
    """Section 7.4.2.2: one FetchKindResponse per Kind requested."""

    kind_responses: tuple[FetchKindResponse, ...]

    def __init__(self, kind_responses: tuple[FetchKindResponse, ...]) -> None:
        object.__setattr__(self, "kind_responses", kind_responses)

    def encode(self) -> bytes:
        return _u32_vector(b"".join([k.encode() for k in self.kind_responses]), "kind_responses")

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> FetchAns:
        return _run(r, lambda d, p, e: _read_fetch_ans(d, p, e, models))

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> FetchAns:
        return _decode_all(cls.__name__, data, lambda d, p, e: _read_fetch_ans(d, p, e, models))


FetchAns.CODE = 10


def _read_fetch_ans(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel]
) -> tuple[FetchAns, int]:
    responses, pos = _read_kind_responses(data, pos, end, models, _FETCH_KIND_RESPONSE)
    return FetchAns(responses), pos


# -- Stat (section 7.4.3) -----------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class StatReq(WireValue):
    """Section 7.4.3.1: "identical to the Fetch request", for metadata."""

    resource: bytes
    specifiers: tuple[StoredDataSpecifier, ...]

    def __init__(self, resource: bytes, specifiers: tuple[StoredDataSpecifier, ...]) -> None:
        object.__setattr__(self, "resource", resource)
        object.__setattr__(self, "specifiers", specifiers)

    def encode(self) -> bytes:
        return _encode_specifier_request(self.resource, self.specifiers)

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> StatReq:
        return _run(r, lambda d, p, e: _read_stat_req(d, p, e, models))

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> StatReq:
        return _decode_all(cls.__name__, data, lambda d, p, e: _read_stat_req(d, p, e, models))


StatReq.CODE = 25


def _read_stat_req(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel]
) -> tuple[StatReq, int]:
    resource, specifiers, pos = _read_specifier_request(data, pos, end, models)
    return StatReq(resource, specifiers), pos


@dataclass(frozen=True, init=False, **SLOTTED)
class MetaData(WireStruct):
    """Section 7.4.3.2: what Stat says about a value instead of the value:
    its length and a digest of its ``value`` field *including* the 4 length
    bytes."""

    exists: bool
    value_length: int
    hash_algorithm: int
    hash_value: bytes

    def __init__(
        self, exists: bool, value_length: int, hash_algorithm: int, hash_value: bytes
    ) -> None:
        object.__setattr__(self, "exists", exists)
        object.__setattr__(self, "value_length", value_length)
        object.__setattr__(self, "hash_algorithm", hash_algorithm)
        object.__setattr__(self, "hash_value", hash_value)

    def encode(self) -> bytes:
        try:
            head = _META_HEAD.pack(
                1 if self.exists else 0,
                self.value_length,
                self.hash_algorithm,
                len(self.hash_value),
            )
        except struct.error:
            raise EncodeError("MetaData value_length, hash_algorithm or hash too big") from None
        return head + self.hash_value

    @classmethod
    def read(cls, r: Reader) -> Self:
        return _run(r, _read_meta)  # type: ignore[return-value]


def _read_meta(data: bytes, pos: int, end: int) -> tuple[MetaData, int]:
    if pos + 7 > end:
        raise _missing(
            end - pos, ("exists", 1), ("value_length", 4), ("hash_algorithm", 1), ("hash_value", 1)
        )
    exists, value_length, hash_algorithm, n = _META_HEAD.unpack_from(data, pos)
    if exists > 1:
        raise DecodeError("exists", f"Boolean must be 0 or 1, got {exists}")
    stop = pos + 7 + n
    if stop > end:
        raise DecodeError("hash_value", f"{n} bytes announced, {end - pos - 7} left")
    algorithm = _HASH_ALGORITHMS.get(hash_algorithm, hash_algorithm)
    return MetaData(exists == 1, value_length, algorithm, data[pos + 7 : stop]), stop


@dataclass(frozen=True, init=False, **SLOTTED)
class ArrayEntryMeta(WireStruct):
    """Section 7.4.3.2: metadata of the array entry at ``index``."""

    index: int
    value: MetaData

    def __init__(self, index: int, value: MetaData) -> None:
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "value", value)

    def encode(self) -> bytes:
        if not 0 <= self.index <= 0xFFFFFFFF:
            raise EncodeError(f"array index out of range: {self.index}")
        return _U32.pack(self.index) + self.value.encode()

    @classmethod
    def read(cls, r: Reader) -> Self:
        return _run(r, _read_array_meta)  # type: ignore[return-value]


def _read_array_meta(data: bytes, pos: int, end: int) -> tuple[ArrayEntryMeta, int]:
    if pos + 4 > end:
        raise DecodeError("index", f"needs 4 bytes, {max(end - pos, 0)} left")
    (index,) = _U32.unpack_from(data, pos)
    try:
        value, pos = _read_meta(data, pos + 4, end)
    except DecodeError as exc:
        raise exc.within("value") from None
    return ArrayEntryMeta(index, value), pos


@dataclass(frozen=True, init=False, **SLOTTED)
class DictionaryEntryMeta(WireStruct):
    """Section 7.4.3.2: metadata of the dictionary entry under ``key``."""

    key: DictionaryKey
    value: MetaData

    def __init__(self, key: DictionaryKey, value: MetaData) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "value", value)

    def encode(self) -> bytes:
        return opaque16(self.key) + self.value.encode()

    @classmethod
    def read(cls, r: Reader) -> Self:
        return _run(r, _read_dictionary_meta)  # type: ignore[return-value]


def _read_dictionary_meta(data: bytes, pos: int, end: int) -> tuple[DictionaryEntryMeta, int]:
    key, pos = _read_key(data, pos, end)
    try:
        value, pos = _read_meta(data, pos, end)
    except DecodeError as exc:
        raise exc.within("value") from None
    return DictionaryEntryMeta(key, value), pos


#: Section 7.4.3.2 ``MetaDataValue``: the arm is given by the Kind's model.
MetaDataValue = MetaData | ArrayEntryMeta | DictionaryEntryMeta

_META_READERS: dict[DataModel, Callable[[bytes, int, int], tuple[MetaDataValue, int]]] = {
    DataModel.SINGLE: _read_meta,
    DataModel.ARRAY: _read_array_meta,
    DataModel.DICTIONARY: _read_dictionary_meta,
}


@dataclass(frozen=True, init=False, **SLOTTED)
class StoredMetaData:
    """Section 7.4.3.2: StoredData with MetaData in place of the value and
    no signature.

    The first field, ``value_length``, stands where StoredData has
    ``length``, and the RFC says the fields are "the same as the
    corresponding fields in StoredData", so it is read as StoredData's
    length is: the size of the rest of the structure, computed on encode.
    (The stored value's own length is :attr:`MetaData.value_length`.)
    """

    storage_time: int
    lifetime: int
    metadata: MetaDataValue

    def __init__(self, storage_time: int, lifetime: int, metadata: MetaDataValue) -> None:
        object.__setattr__(self, "storage_time", storage_time)
        object.__setattr__(self, "lifetime", lifetime)
        object.__setattr__(self, "metadata", metadata)

    def encode(self) -> bytes:
        try:
            head = _TIME_LIFE.pack(self.storage_time, self.lifetime)
        except struct.error:
            raise EncodeError("storage_time or lifetime out of range") from None
        return _u32_vector(head + self.metadata.encode(), "StoredMetaData")

    @classmethod
    def read(cls, r: Reader, model: DataModel) -> StoredMetaData:
        return _run(r, _STAT_READERS[model])  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: Buffer, model: DataModel) -> StoredMetaData:
        return _decode_all(cls.__name__, data, _STAT_READERS[model])  # type: ignore[no-any-return]


def _read_stored_meta(
    data: bytes,
    pos: int,
    end: int,
    read_meta: Callable[[bytes, int, int], tuple[MetaDataValue, int]],
) -> tuple[StoredMetaData, int]:
    if pos + 4 > end:
        raise DecodeError("value_length", f"needs 4 bytes, {max(end - pos, 0)} left")
    (length,) = _U32.unpack_from(data, pos)
    start = pos + 4
    stop = start + length
    if stop > end:
        raise DecodeError("value_length", f"{length} bytes announced, {end - start} left")
    if length < 12:
        raise _missing(length, ("storage_time", 8), ("lifetime", 4))
    storage_time, lifetime = _TIME_LIFE.unpack_from(data, start)
    try:
        metadata, p = read_meta(data, start + 12, stop)
    except DecodeError as exc:
        raise exc.within("metadata") from None
    if p != stop:
        raise DecodeError("", f"{stop - p} unexpected trailing bytes inside value_length")
    return StoredMetaData(storage_time, lifetime, metadata), stop


def _stored_meta_reader(model: DataModel) -> _ValueReader:
    read_meta = _META_READERS[model]
    return lambda d, p, e: _read_stored_meta(d, p, e, read_meta)


_STAT_READERS = {m: _stored_meta_reader(m) for m in DataModel}


@dataclass(frozen=True, init=False, **SLOTTED)
class StatKindResponse:
    """Section 7.4.3.2: like FetchKindResponse, with StoredMetaData."""

    kind: int
    generation: int
    values: tuple[StoredMetaData, ...]

    def __init__(self, kind: int, generation: int, values: tuple[StoredMetaData, ...]) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "generation", generation)
        object.__setattr__(self, "values", values)

    def encode(self) -> bytes:
        return _encode_kind_values(self.kind, self.generation, self.values)

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> StatKindResponse:
        return _run(r, _one_kind_reader(models, _STAT_KIND_RESPONSE))  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> StatKindResponse:
        read = _one_kind_reader(models, _STAT_KIND_RESPONSE)
        return _decode_all(cls.__name__, data, read)  # type: ignore[no-any-return]


_STAT_KIND_RESPONSE = _KindValuesForm(
    ("kind", "generation", "values"), _STAT_READERS, StatKindResponse
)


@dataclass(frozen=True, init=False, **SLOTTED)
class StatAns(WireValue):
    """Section 7.4.3.2: one StatKindResponse per Kind requested."""

    kind_responses: tuple[StatKindResponse, ...]

    def __init__(self, kind_responses: tuple[StatKindResponse, ...]) -> None:
        object.__setattr__(self, "kind_responses", kind_responses)

    def encode(self) -> bytes:
        return _u32_vector(b"".join([k.encode() for k in self.kind_responses]), "kind_responses")

    @classmethod
    def read(cls, r: Reader, models: Mapping[int, DataModel]) -> StatAns:
        return _run(r, lambda d, p, e: _read_stat_ans(d, p, e, models))

    @classmethod
    def decode(cls, data: Buffer, models: Mapping[int, DataModel]) -> StatAns:
        return _decode_all(cls.__name__, data, lambda d, p, e: _read_stat_ans(d, p, e, models))


StatAns.CODE = 26


def _read_stat_ans(
    data: bytes, pos: int, end: int, models: Mapping[int, DataModel]
) -> tuple[StatAns, int]:
    responses, pos = _read_kind_responses(data, pos, end, models, _STAT_KIND_RESPONSE)
    return StatAns(responses), pos


# -- Find (section 7.4.4) -----------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class FindReq(WireStruct):
    """Section 7.4.4.1: the closest Resource-ID to ``resource`` for each of
    ``kinds``.  "Each value MUST appear only once", enforced both ways."""

    resource: bytes
    kinds: tuple[int, ...]

    def __init__(self, resource: bytes, kinds: tuple[int, ...]) -> None:
        object.__setattr__(self, "resource", resource)
        object.__setattr__(self, "kinds", kinds)

    def encode(self) -> bytes:
        _check_unique(self.kinds, "a FindReq")
        return opaque8(self.resource) + _encode_kind_ids(self.kinds)

    @classmethod
    def read(cls, r: Reader) -> Self:
        resource = r.opaque(1, "resource")
        kinds = _read_kind_ids(r, "kinds")
        if len(set(kinds)) != len(kinds):
            raise r.error("kinds", "a Kind-ID appears twice")
        return cls(resource, kinds)


FindReq.CODE = 13


@dataclass(frozen=True, init=False, **SLOTTED)
class FindKindData(WireStruct):
    """Section 7.4.4.2: the Resource-ID closest to the request's for
    ``kind`` (0 when none is known)."""

    kind: int
    closest: bytes

    def __init__(self, kind: int, closest: bytes) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "closest", closest)

    def encode(self) -> bytes:
        if not 0 <= self.kind <= 0xFFFFFFFF:
            raise EncodeError(f"Kind-ID out of range: {self.kind}")
        return _U32.pack(self.kind) + opaque8(self.closest)

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(r.u32("kind"), r.opaque(1, "closest"))


def _read_find_kind_data(data: bytes, pos: int, end: int) -> tuple[FindKindData, int]:
    r = Reader(data, pos, end)
    item = FindKindData.read(r)
    return item, r.pos


@dataclass(frozen=True, init=False, **SLOTTED)
class FindAns(WireStruct):
    """Section 7.4.4.2: one FindKindData per Kind that may be found."""

    results: tuple[FindKindData, ...]

    def __init__(self, results: tuple[FindKindData, ...]) -> None:
        object.__setattr__(self, "results", results)

    def encode(self) -> bytes:
        return opaque16(b"".join([k.encode() for k in self.results]))

    @classmethod
    def read(cls, r: Reader) -> Self:
        return cls(_read_each(r.sub(2, "results"), _read_find_kind_data))


FindAns.CODE = 14


#: The body classes of this module (each has ``CODE``, section 14.8).
STORAGE_BODIES: tuple[type, ...] = (
    StoreReq,
    StoreAns,
    FetchReq,
    FetchAns,
    StatReq,
    StatAns,
    FindReq,
    FindAns,
)
