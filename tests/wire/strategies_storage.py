"""Hypothesis strategies for the storage bodies (RFC 6940 section 7).

Decoding a value needs the data model of its Kind, so the strategies for
bodies that carry values or specifiers draw a ``models`` mapping (Kind-ID ->
:class:`DataModel`) and return ``(body, models)`` pairs whose Kinds are all
in ``models``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import strategies as st

from reload.wire.storage import (
    ArrayEntry,
    ArrayEntryMeta,
    ArrayRange,
    DataModel,
    DataValue,
    DictionaryEntry,
    DictionaryEntryMeta,
    FetchAns,
    FetchKindResponse,
    FetchReq,
    FindAns,
    FindKindData,
    FindReq,
    MetaData,
    MetaDataValue,
    StatAns,
    StatKindResponse,
    StatReq,
    StoreAns,
    StoredData,
    StoredDataSpecifier,
    StoredDataValue,
    StoredMetaData,
    StoreKindData,
    StoreKindResponse,
    StoreReq,
    UnknownKindsInfo,
)
from tests.wire.strategies_message import hash_algorithms, signatures, uint8, uint32, uint64

Models = Mapping[int, DataModel]

kind_ids = uint32
resource_ids = st.binary(max_size=32)
#: Kind-ID -> model maps with at least one Kind.
kind_models = st.dictionaries(kind_ids, st.sampled_from(DataModel), min_size=1, max_size=4)

# -- values -------------------------------------------------------------------

data_values = st.builds(DataValue, st.booleans(), st.binary(max_size=64))
array_entries = st.builds(ArrayEntry, uint32, data_values)
dictionary_keys = st.binary(max_size=16)
dictionary_entries = st.builds(DictionaryEntry, dictionary_keys, data_values)

_VALUES: dict[DataModel, st.SearchStrategy[StoredDataValue]] = {
    DataModel.SINGLE: data_values,
    DataModel.ARRAY: array_entries,
    DataModel.DICTIONARY: dictionary_entries,
}


def stored_data(model: DataModel) -> st.SearchStrategy[StoredData]:
    """StoredData whose value has the form of ``model``."""
    return st.builds(StoredData, uint64, uint32, _VALUES[model], signatures)


metadata = st.builds(MetaData, st.booleans(), uint32, hash_algorithms, st.binary(max_size=64))
array_entry_metas = st.builds(ArrayEntryMeta, uint32, metadata)
dictionary_entry_metas = st.builds(DictionaryEntryMeta, dictionary_keys, metadata)

_METAS: dict[DataModel, st.SearchStrategy[MetaDataValue]] = {
    DataModel.SINGLE: metadata,
    DataModel.ARRAY: array_entry_metas,
    DataModel.DICTIONARY: dictionary_entry_metas,
}


def stored_metadata(model: DataModel) -> st.SearchStrategy[StoredMetaData]:
    """StoredMetaData whose metadata has the form of ``model``."""
    return st.builds(StoredMetaData, uint64, uint32, _METAS[model])


# -- per-Kind structures ------------------------------------------------------


@st.composite
def _kind_items(
    draw: st.DrawFn,
    kind_class: Callable[[int, int, tuple[Any, ...]], Any],
    values_of: Callable[[DataModel], st.SearchStrategy[Any]],
) -> tuple[tuple[Any, ...], Models]:
    """Per-Kind structures for distinct Kinds of a drawn ``models``."""
    models = draw(kind_models)
    chosen = draw(st.lists(st.sampled_from(sorted(models)), unique=True, max_size=len(models)))
    items = []
    for kind in chosen:
        values = draw(st.lists(values_of(models[kind]), max_size=3))
        items.append(kind_class(kind, draw(uint64), tuple(values)))
    return tuple(items), models


@st.composite
def store_reqs(draw: st.DrawFn) -> tuple[StoreReq, Models]:
    items, models = draw(_kind_items(StoreKindData, stored_data))
    return StoreReq(draw(resource_ids), draw(uint8), items), models


@st.composite
def fetch_anss(draw: st.DrawFn) -> tuple[FetchAns, Models]:
    items, models = draw(_kind_items(FetchKindResponse, stored_data))
    return FetchAns(items), models


@st.composite
def stat_anss(draw: st.DrawFn) -> tuple[StatAns, Models]:
    items, models = draw(_kind_items(StatKindResponse, stored_metadata))
    return StatAns(items), models


@st.composite
def store_kind_datas(draw: st.DrawFn) -> tuple[StoreKindData, Models]:
    models = draw(kind_models)
    kind = draw(st.sampled_from(sorted(models)))
    values = draw(st.lists(stored_data(models[kind]), max_size=3))
    return StoreKindData(kind, draw(uint64), tuple(values)), models


# -- specifiers ---------------------------------------------------------------

array_ranges = st.builds(ArrayRange, uint32, uint32)


def specifier(kind: int, model: DataModel) -> st.SearchStrategy[StoredDataSpecifier]:
    """A specifier for ``kind`` in the form of ``model``, sometimes with
    extension bytes after the model specifier."""
    extension = st.one_of(st.just(b""), st.binary(max_size=8))
    if model == DataModel.ARRAY:
        return st.builds(
            StoredDataSpecifier,
            st.just(kind),
            st.just(model),
            uint64,
            indices=st.lists(array_ranges, max_size=4).map(tuple),
            extension=extension,
        )
    if model == DataModel.DICTIONARY:
        return st.builds(
            StoredDataSpecifier,
            st.just(kind),
            st.just(model),
            uint64,
            keys=st.lists(dictionary_keys, max_size=4).map(tuple),
            extension=extension,
        )
    return st.builds(
        StoredDataSpecifier, st.just(kind), st.just(model), uint64, extension=extension
    )


@st.composite
def specifiers(draw: st.DrawFn) -> tuple[tuple[StoredDataSpecifier, ...], Models]:
    models = draw(kind_models)
    kinds = draw(st.lists(st.sampled_from(sorted(models)), max_size=4))
    return tuple(draw(specifier(k, models[k])) for k in kinds), models


@st.composite
def fetch_reqs(draw: st.DrawFn) -> tuple[FetchReq, Models]:
    specs, models = draw(specifiers())
    return FetchReq(draw(resource_ids), specs), models


@st.composite
def stat_reqs(draw: st.DrawFn) -> tuple[StatReq, Models]:
    specs, models = draw(specifiers())
    return StatReq(draw(resource_ids), specs), models


# -- model-independent bodies -------------------------------------------------


@st.composite
def store_anss(draw: st.DrawFn) -> tuple[StoreAns, int]:
    """A StoreAns and the NodeIdLength its replicas use."""
    node_id_length = draw(st.integers(min_value=16, max_value=20))
    node_ids = st.binary(min_size=node_id_length, max_size=node_id_length)
    responses = draw(
        st.lists(
            st.builds(StoreKindResponse, uint32, uint64, st.lists(node_ids, max_size=3).map(tuple)),
            max_size=3,
        )
    )
    return StoreAns(tuple(responses)), node_id_length


unknown_kinds_infos = st.builds(UnknownKindsInfo, st.lists(kind_ids, max_size=63).map(tuple))
find_reqs = st.builds(FindReq, resource_ids, st.lists(kind_ids, unique=True, max_size=8).map(tuple))
find_kind_datas = st.builds(FindKindData, kind_ids, resource_ids)
find_anss = st.builds(FindAns, st.lists(find_kind_datas, max_size=5).map(tuple))
