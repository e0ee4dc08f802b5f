"""Store, Fetch, Stat and Find bodies (RFC 6940 section 7)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reload.wire import storage
from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.security_block import RSA_SHA256, HashAlgorithm, Signature, SignerIdentity
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
    UnknownKind,
    UnknownKindsInfo,
    stored_data_signature_input,
)
from tests.wire import strategies_storage as s
from tests.wire.fuzzing import fuzz_decoder, mutate

SINGLE_KIND = 0xF0000001  # a private-use Kind (section 14.6)
ARRAY_KIND = 0x10  # CERTIFICATE_BY_USER, an array (section 8)
DICTIONARY_KIND = 0x2
MODELS: Mapping[int, DataModel] = {
    SINGLE_KIND: DataModel.SINGLE,
    ARRAY_KIND: DataModel.ARRAY,
    DICTIONARY_KIND: DataModel.DICTIONARY,
}
HASH = bytes(range(32))
SIGNATURE = Signature(RSA_SHA256, SignerIdentity.cert_hash(HASH), bytes.fromhex("deadbeef"))
SIGNATURE_HEX = (
    "04"
    "01"  # algorithm: sha256, rsa
    "01"
    "0022"  # SignerIdentity: cert_hash, 34 bytes
    "04"
    "20"
    + HASH.hex()  # hash_alg sha256, certificate_hash<0..2^8-1>
    + "0004"
    "deadbeef"  # signature_value<0..2^16-1>
)

#: Section 7.4.1.1, worked by hand: store "abc" as the single value of a
#: Kind at Resource-ID 0x1234 (the RFC's figure stores "abc" for Kind X).
STORE_REQ_SINGLE = bytes.fromhex(
    "02"
    "1234"  # resource: ResourceId<0..2^8-1>
    "00"  # replica_number: 0, an original store
    "00000055"  # kind_data<0..2^32-1>: 85 bytes
    "f0000001"  # StoreKindData.kind
    "0000000000000063"  # generation_counter: 99
    "00000045"  # values<0..2^32-1>: 69 bytes
    "00000041"  # StoredData.length: 65 bytes follow
    "0000018bcfe56800"  # storage_time: 1700000000000 ms
    "00015180"  # lifetime: 86400 s
    "01"  # DataValue.exists: True
    "00000003"
    "616263"  # DataValue.value<0..2^32-1>: "abc"
    + SIGNATURE_HEX  # StoredData.signature (section 7.1)
)
STORE_REQ_SINGLE_VALUE = StoreReq(
    b"\x12\x34",
    0,
    (
        StoreKindData(
            SINGLE_KIND,
            99,
            (StoredData(1_700_000_000_000, 86400, DataValue(True, b"abc"), SIGNATURE),),
        ),
    ),
)

#: Section 7.4.2.1, worked by hand: fetch a whole array (0 to "the final
#: element", 0xffffffff).
FETCH_REQ_ARRAY = bytes.fromhex(
    "02"
    "1234"  # resource
    "0018"  # specifiers<0..2^16-1>: 24 bytes
    "00000010"  # StoredDataSpecifier.kind: CERTIFICATE_BY_USER (array)
    "0000000000000005"  # generation: 5
    "000a"  # length: 10 bytes follow
    "0008"  # indices<0..2^16-1>: 8 bytes
    "00000000"  # ArrayRange.first: 0
    "ffffffff"  # ArrayRange.last: the final element
)
FETCH_REQ_ARRAY_VALUE = FetchReq(
    b"\x12\x34", (StoredDataSpecifier.array(ARRAY_KIND, [ArrayRange(0, ArrayRange.LAST)], 5),)
)

#: Section 7.4.3.2, worked by hand: metadata of array entry 0 holding "abc".
#: StoredMetaData.value_length is read as the length of the rest, like
#: StoredData.length (Wireshark 4.0's dissector reads it the same way).
STAT_ANS = bytes.fromhex(
    "0000004b"  # kind_responses<0..2^32-1>: 75 bytes
    "00000010"  # StatKindResponse.kind
    "0000000000000005"  # generation: 5
    "0000003b"  # values<0..2^32-1>: 59 bytes
    "00000037"  # StoredMetaData.value_length: 55 bytes follow
    "0000018bcfe56800"  # storage_time
    "00015180"  # lifetime
    "00000000"  # ArrayEntryMeta.index: 0
    "01"  # MetaData.exists: True
    "00000003"  # MetaData.value_length: 3
    "04"  # hash_algorithm: sha256
    "20"  # hash_value<0..255>: 32 bytes, SHA-256 of 00000003 616263
    "d04b72a650ce0f8ce4963330a53ee2832733d2baeffff3c1d8e256cca096d120"
)

#: Section 7.4.1.2: the error_info of Error_Unknown_Kind.
UNKNOWN_KINDS = bytes.fromhex(
    "08"  # unknown_kinds<0..2^8-1>: 8 bytes
    "00000063"  # Kind-ID 99
    "f0000002"  # Kind-ID 0xf0000002
)


def test_store_req_with_a_single_value_encodes_byte_exact_section_7_4_1_1() -> None:
    assert STORE_REQ_SINGLE_VALUE.encode() == STORE_REQ_SINGLE
    assert StoreReq.decode(STORE_REQ_SINGLE, MODELS) == STORE_REQ_SINGLE_VALUE


def test_fetch_req_with_an_array_range_encodes_byte_exact_section_7_4_2_1() -> None:
    assert FETCH_REQ_ARRAY_VALUE.encode() == FETCH_REQ_ARRAY
    assert FetchReq.decode(FETCH_REQ_ARRAY, MODELS) == FETCH_REQ_ARRAY_VALUE


def test_stat_ans_encodes_byte_exact_section_7_4_3_2() -> None:
    value_field = DataValue(True, b"abc").encode()[1:]  # the value with its length
    meta = MetaData(True, 3, HashAlgorithm.SHA256, hashlib.sha256(value_field).digest())
    answer = StatAns(
        (
            StatKindResponse(
                ARRAY_KIND, 5, (StoredMetaData(1_700_000_000_000, 86400, ArrayEntryMeta(0, meta)),)
            ),
        )
    )
    assert answer.encode() == STAT_ANS
    assert StatAns.decode(STAT_ANS, MODELS) == answer


def test_unknown_kinds_error_info_encodes_byte_exact_section_7_4_1_2() -> None:
    info = UnknownKindsInfo((99, 0xF0000002))
    assert info.encode() == UNKNOWN_KINDS
    assert UnknownKindsInfo.decode(UNKNOWN_KINDS) == info
    with pytest.raises(EncodeError):
        UnknownKindsInfo(tuple(range(64))).encode()


def test_find_bodies_encode_byte_exact_section_7_4_4() -> None:
    request = FindReq(b"\x12\x34", (ARRAY_KIND, SINGLE_KIND))
    assert request.encode() == bytes.fromhex("02 12340800000010f0000001")
    answer = FindAns((FindKindData(ARRAY_KIND, b"\x12\x30"),))
    assert answer.encode() == bytes.fromhex("00070000001002 1230")
    assert FindAns.decode(answer.encode()) == answer


# -- the data model comes from the Kind (section 7.2) -------------------------


def test_the_same_bytes_decode_by_the_kinds_model_section_7_2() -> None:
    """A StoredData cannot be read without its Kind's model."""
    entry = StoredData(5, 60, ArrayEntry(7, DataValue(True, b"x")), SIGNATURE)
    assert StoredData.decode(entry.encode(), DataModel.ARRAY) == entry
    with pytest.raises(DecodeError):
        StoredData.decode(entry.encode(), DataModel.SINGLE)
    assert entry.model == DataModel.ARRAY


def test_unknown_kinds_are_all_reported_section_7_4_1_2() -> None:
    """Error_Unknown_Kind lists *all* unrecognized Kinds, so the decoder
    reads on after the first."""
    request = StoreReq(
        b"r",
        0,
        (
            StoreKindData(99, 0, (StoredData(1, 2, DataValue(True, b"v"), SIGNATURE),)),
            StoreKindData(SINGLE_KIND, 0, ()),
            StoreKindData(0xF0000002, 0, ()),
        ),
    )
    with pytest.raises(UnknownKind) as info:
        StoreReq.decode(request.encode(), MODELS)
    assert info.value.kinds == (99, 0xF0000002)
    assert info.value.kind == 99
    assert info.value.path == "StoreReq.kind_data"
    assert isinstance(info.value, DecodeError)
    assert UnknownKindsInfo(info.value.kinds).encode() == UNKNOWN_KINDS


@pytest.mark.parametrize(
    "body",
    [
        FetchReq(b"r", (StoredDataSpecifier.single(99), StoredDataSpecifier.single(SINGLE_KIND))),
        StatReq(b"r", (StoredDataSpecifier.array(99, [ArrayRange(0, 1)]),)),
        FetchAns((FetchKindResponse(99, 1, ()),)),
        StatAns((StatKindResponse(99, 1, ()),)),
    ],
    ids=["FetchReq", "StatReq", "FetchAns", "StatAns"],
)
def test_every_kind_dependent_body_reports_unknown_kinds(
    body: FetchReq | StatReq | FetchAns | StatAns,
) -> None:
    with pytest.raises(UnknownKind) as info:
        type(body).decode(body.encode(), MODELS)
    assert info.value.kinds == (99,)


def test_single_kind_structures_report_their_unknown_kind() -> None:
    with pytest.raises(UnknownKind) as info:
        StoreKindData.decode(StoreKindData(42, 0, ()).encode(), MODELS)
    assert (info.value.kinds, info.value.path) == ((42,), "StoreKindData.kind")
    with pytest.raises(UnknownKind) as info:
        StoredDataSpecifier.read(Reader(StoredDataSpecifier.single(42).encode(), path="X"), MODELS)
    assert (info.value.kinds, info.value.path) == ((42,), "X.kind")


def test_a_kind_twice_in_a_store_is_rejected_both_ways_section_7_4_1_1() -> None:
    twice = StoreReq(b"r", 0, (StoreKindData(SINGLE_KIND, 0, ()),) * 2)
    with pytest.raises(EncodeError):
        twice.encode()
    data = (
        STORE_REQ_SINGLE[:4]
        + bytes.fromhex("00000020")
        + bytes.fromhex("f0000001000000000000000000000000") * 2
    )
    with pytest.raises(DecodeError) as info:
        StoreReq.decode(data, MODELS)
    assert info.value.path == "StoreReq.kind_data[1].kind"


def test_a_kind_twice_in_a_find_is_rejected_both_ways_section_7_4_4_1() -> None:
    with pytest.raises(EncodeError):
        FindReq(b"r", (1, 1)).encode()
    with pytest.raises(DecodeError) as info:
        FindReq.decode(bytes.fromhex("00080000000100000001"))
    assert info.value.path == "FindReq.kinds"


# -- what a stored value's signature covers (section 7.1) ---------------------


def test_stored_data_signature_input_section_7_1() -> None:
    identity = SignerIdentity.cert_hash(b"\xaa", HashAlgorithm.SHA256)
    value = DataValue(True, b"abc")
    expected = bytes.fromhex(
        "1234"  # resource_id (its bytes, no length)
        "f0000001"  # kind
        "0000018bcfe56800"  # storage_time
        "01"
        "00000003"
        "616263"  # StoredDataValue
        "01"
        "0003"
        "04"
        "01"
        "aa"  # SignerIdentity
    )
    got = stored_data_signature_input(b"\x12\x34", SINGLE_KIND, 1_700_000_000_000, value, identity)
    assert got == expected
    stored = StoredData(1_700_000_000_000, 5, value, Signature(RSA_SHA256, identity, b""))
    assert stored.signature_input(b"\x12\x34", SINGLE_KIND) == expected


def test_array_index_is_zero_in_the_signature_input_section_7_4_2_2() -> None:
    identity = SignerIdentity.none()
    appended = ArrayEntry(ArrayEntry.APPEND, DataValue(True, b"x"))
    placed = ArrayEntry(17, DataValue(True, b"x"))
    inputs = {
        stored_data_signature_input(b"r", ARRAY_KIND, 1, value, identity)
        for value in (appended, placed, ArrayEntry(0, DataValue(True, b"x")))
    }
    assert len(inputs) == 1
    assert b"\x00\x00\x00\x00\x01\x00\x00\x00\x01x" in inputs.pop()


# -- specifiers (section 7.4.2.1) ---------------------------------------------


def test_specifier_forms_per_model_section_7_4_2_1() -> None:
    assert StoredDataSpecifier.single(1).encode() == bytes.fromhex("00000001" + "00" * 8 + "0000")
    wildcard = StoredDataSpecifier.dictionary(2)
    assert wildcard.encode() == bytes.fromhex("00000002" + "00" * 8 + "00020000")
    keys = StoredDataSpecifier.dictionary(2, [b"a", b""], generation=1)
    assert keys.encode() == bytes.fromhex("000000020000000000000001000700050001610000")
    models = {1: DataModel.SINGLE, 2: DataModel.DICTIONARY}
    for spec in (StoredDataSpecifier.single(1), wildcard, keys):
        assert StoredDataSpecifier.decode(spec.encode(), models) == spec


def test_specifier_extension_bytes_are_kept_section_7_4_2_1() -> None:
    """``length`` allows extensibility: bytes after the model specifier
    survive a decode and re-encode."""
    data = bytes.fromhex("00000010" + "00" * 8 + "000c00080000000100000002abcd")
    spec = StoredDataSpecifier.decode(data, MODELS)
    assert spec.indices == (ArrayRange(1, 2),)
    assert spec.extension == b"\xab\xcd"
    assert spec.encode() == data


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ("00000010" + "00" * 8 + "000700050000000100", "StoredDataSpecifier.indices"),
        ("00000010" + "00" * 8 + "000100", "StoredDataSpecifier.indices"),
        ("00000010" + "00" * 8 + "00020008", "StoredDataSpecifier.indices"),
        ("00000002" + "00" * 8 + "00050003000561", "StoredDataSpecifier.keys[0]"),
        ("00000010" + "00" * 8 + "0009", "StoredDataSpecifier.length"),
        ("00000010" + "00" * 4, "StoredDataSpecifier.generation"),
    ],
)
def test_malformed_specifier_is_rejected_with_its_path(data: str, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        StoredDataSpecifier.decode(bytes.fromhex(data), MODELS)
    assert info.value.path == path


@pytest.mark.parametrize(
    "spec",
    [
        StoredDataSpecifier(1, DataModel.SINGLE, indices=(ArrayRange(0, 1),)),
        StoredDataSpecifier(1, DataModel.ARRAY, keys=(b"k",)),
        StoredDataSpecifier.array(1, [ArrayRange(-1, 0)]),
        StoredDataSpecifier.single(1 << 32),
        StoredDataSpecifier(1, DataModel.SINGLE, extension=bytes(0x10000)),
    ],
)
def test_specifier_that_does_not_fit_raises_encode_error(spec: StoredDataSpecifier) -> None:
    with pytest.raises(EncodeError):
        spec.encode()


# -- structure errors name their field ----------------------------------------


@pytest.mark.parametrize(
    ("cut", "path"),
    [
        (0, "StoreReq.resource"),
        (2, "StoreReq.resource"),
        (3, "StoreReq.replica_number"),
        (6, "StoreReq.kind_data"),
        (10, "StoreReq.kind_data"),
    ],
)
def test_truncated_store_req_names_the_field(cut: int, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        StoreReq.decode(STORE_REQ_SINGLE[:cut], MODELS)
    assert info.value.path == path


@pytest.mark.parametrize(
    ("offset", "byte", "path"),
    [
        (40, 0x02, "StoreReq.kind_data[0].values[0].value.exists"),  # Boolean 2
        (41, 0x09, "StoreReq.kind_data[0].values[0].value.value"),  # value too long
        (27, 0x05, "StoreReq.kind_data[0].values[0].storage_time"),  # length 5: too short
        (24, 0x50, "StoreReq.kind_data[0].values[0].length"),  # beyond the vector
        (54, 0x21, "StoreReq.kind_data[0].values[0].signature.identity.identity"),  # 33
        (88, 0x05, "StoreReq.kind_data[0].values[0].signature.value"),  # 5 bytes, 4 left
    ],
)
def test_malformed_stored_data_names_the_field(offset: int, byte: int, path: str) -> None:
    data = bytearray(STORE_REQ_SINGLE)
    data[offset] = byte
    with pytest.raises(DecodeError) as info:
        StoreReq.decode(bytes(data), MODELS)
    assert info.value.path == path


def test_bytes_after_the_signature_inside_stored_data_are_rejected() -> None:
    value = StoredData(1, 2, DataValue(False), Signature.empty()).encode()
    grown = (int.from_bytes(value[:4], "big") + 1).to_bytes(4, "big") + value[4:] + b"\x00"
    with pytest.raises(DecodeError) as info:
        StoredData.decode(grown, DataModel.SINGLE)
    assert info.value.path == "StoredData"
    assert "trailing" in info.value.reason


def test_store_ans_replicas_use_the_overlays_node_id_length_section_7_4_1_2() -> None:
    answer = StoreAns((StoreKindResponse(ARRAY_KIND, 7, (bytes(20), bytes(range(20)))),))
    data = answer.encode()
    assert data == bytes.fromhex(
        "0036"  # kind_responses: 54 bytes
        "00000010"
        "0000000000000007"  # kind, generation_counter
        "0028" + "00" * 20 + bytes(range(20)).hex()  # replicas: two 20-byte Node-IDs
    )
    assert StoreAns.decode(data, node_id_length=20) == answer
    with pytest.raises(DecodeError) as info:
        StoreAns.decode(data)  # 40 bytes are not 16-byte Node-IDs
    assert info.value.path == "StoreAns.kind_responses[0].replicas"
    with pytest.raises(ValueError):
        StoreAns.decode(data, node_id_length=8)
    with pytest.raises(EncodeError):
        StoreKindResponse(1, 1, (bytes(16), bytes(20))).encode()


@pytest.mark.parametrize(
    "value",
    [
        ArrayEntry(-1, DataValue(True)),
        ArrayEntryMeta(1 << 32, MetaData(True, 0, 0, b"")),
        MetaData(True, 0, 256, b""),
        MetaData(True, 0, 4, bytes(256)),
        DictionaryEntry(bytes(0x10000), DataValue(True)),
        StoredData(-1, 0, DataValue(True), Signature.empty()),
        StoredData(0, 1 << 32, ArrayEntry(0, DataValue(True)), Signature.empty()),
        StoredData(0, 0, DictionaryEntry(bytes(0x10000), DataValue(True)), Signature.empty()),
        StoredMetaData(1 << 64, 0, MetaData(True, 0, 0, b"")),
        StoreKindData(1 << 32, 0, ()),
        StoreReq(bytes(256), 0, ()),
        StoreReq(b"", 256, ()),
        FetchKindResponse(0, -1, ()),
        FetchReq(b"", (StoredDataSpecifier.dictionary(1, [bytes(0xFFFF)]),) * 2),
        FindKindData(-1, b""),
        FindReq(b"", (1 << 32,)),
        StoreAns((StoreKindResponse(0, 0, (bytes(16),) * 5000),)),
    ],
    ids=lambda value: type(value).__name__,
)
def test_value_that_does_not_fit_raises_encode_error(value: Any) -> None:
    with pytest.raises(EncodeError):
        value.encode()


def test_decoders_accept_bytearray_and_memoryview() -> None:
    for buffer in (bytearray(STORE_REQ_SINGLE), memoryview(STORE_REQ_SINGLE)):
        decoded = StoreReq.decode(buffer, MODELS)  # type: ignore[arg-type]
        assert decoded == STORE_REQ_SINGLE_VALUE
        assert type(decoded.kind_data[0].values[0].value.value) is bytes


def test_find_ans_names_the_failing_result() -> None:
    data = FindAns((FindKindData(1, b"a"), FindKindData(2, b"bc"))).encode()
    broken = data[:-3] + b"\x05" + data[-2:]  # closest: 5 bytes announced, 2 left
    with pytest.raises(DecodeError) as info:
        FindAns.decode(broken)
    assert info.value.path == "FindAns.results[1].closest"


# -- round trips --------------------------------------------------------------


@given(st.sampled_from(DataModel), st.data())
def test_stored_data_round_trips_per_model(model: DataModel, data: st.DataObject) -> None:
    value = data.draw(s.stored_data(model))
    encoded = value.encode()
    assert StoredData.decode(encoded, model) == value
    assert value.model == model


@given(st.sampled_from(DataModel), st.data())
def test_stored_metadata_round_trips_per_model(model: DataModel, data: st.DataObject) -> None:
    value = data.draw(s.stored_metadata(model))
    assert StoredMetaData.decode(value.encode(), model) == value


@given(s.store_reqs())
def test_store_req_round_trips(pair: tuple[StoreReq, Mapping[int, DataModel]]) -> None:
    value, models = pair
    encoded = value.encode()
    decoded = StoreReq.decode(encoded, models)
    assert decoded == value
    assert decoded.encode() == encoded


@given(s.store_kind_datas())
def test_store_kind_data_round_trips(pair: tuple[StoreKindData, Mapping[int, DataModel]]) -> None:
    value, models = pair
    assert StoreKindData.decode(value.encode(), models) == value


@given(s.fetch_reqs())
def test_fetch_req_round_trips(pair: tuple[FetchReq, Mapping[int, DataModel]]) -> None:
    value, models = pair
    assert FetchReq.decode(value.encode(), models) == value


@given(s.stat_reqs())
def test_stat_req_round_trips(pair: tuple[StatReq, Mapping[int, DataModel]]) -> None:
    value, models = pair
    assert StatReq.decode(value.encode(), models) == value


@given(s.fetch_anss())
def test_fetch_ans_round_trips(pair: tuple[FetchAns, Mapping[int, DataModel]]) -> None:
    value, models = pair
    assert FetchAns.decode(value.encode(), models) == value
    for response in value.kind_responses:
        assert FetchKindResponse.decode(response.encode(), models) == response


@given(s.stat_anss())
def test_stat_ans_round_trips(pair: tuple[StatAns, Mapping[int, DataModel]]) -> None:
    value, models = pair
    assert StatAns.decode(value.encode(), models) == value
    for response in value.kind_responses:
        assert StatKindResponse.decode(response.encode(), models) == response


@given(s.store_anss())
def test_store_ans_round_trips(pair: tuple[StoreAns, int]) -> None:
    value, node_id_length = pair
    assert StoreAns.decode(value.encode(), node_id_length) == value


@given(
    st.one_of(
        s.data_values,
        s.array_entries,
        s.dictionary_entries,
        s.metadata,
        s.array_entry_metas,
        s.dictionary_entry_metas,
        s.array_ranges,
        s.unknown_kinds_infos,
        s.find_reqs,
        s.find_kind_datas,
        s.find_anss,
    )
)
def test_model_independent_structures_round_trip(
    value: DataValue | ArrayEntry | DictionaryEntry | MetaData | FindReq,
) -> None:
    assert type(value).decode(value.encode()) == value


# -- the fast readers agree with the reference reader -------------------------


@pytest.mark.parametrize("model", list(DataModel))
def test_fast_stored_data_readers_agree_with_the_reference(model: DataModel) -> None:
    """The per-model fast paths return what the reference reader returns,
    and fail where it fails, on valid and mutated encodings."""
    fast = storage._STORED_DATA_READERS[model]
    reference_value = storage._VALUE_READERS[model]
    values: dict[DataModel, StoredDataValue] = {
        DataModel.SINGLE: DataValue(True, b"abc"),
        DataModel.ARRAY: ArrayEntry(3, DataValue(False, b"")),
        DataModel.DICTIONARY: DictionaryEntry(b"key", DataValue(True, b"v")),
    }
    value = values[model]
    seeds = [
        StoredData(1, 2, value, SIGNATURE).encode(),
        StoredData(3, 4, value, Signature.empty()).encode(),
    ]
    rng = random.Random(7)
    for _ in range(3000):
        data = mutate(rng, rng.choice(seeds))
        outcomes: list[object] = []
        for read in (fast, lambda d, p, e: storage._read_stored_data(d, p, e, reference_value)):
            try:
                outcomes.append(read(data, 0, len(data)))
            except DecodeError as exc:
                outcomes.append((exc.path, exc.reason))
        assert outcomes[0] == outcomes[1], data.hex()


# -- fuzzing ------------------------------------------------------------------

_VALUE = DataValue(True, b"abc")
_ARRAY_DATA = StoredData(1, 2, ArrayEntry(3, _VALUE), SIGNATURE)
_DICT_DATA = StoredData(1, 2, DictionaryEntry(b"k", _VALUE), Signature.empty())
_SINGLE_DATA = StoredData(1, 2, _VALUE, SIGNATURE)
_META = MetaData(True, 3, HashAlgorithm.SHA256, bytes(32))
_SPECS = (
    StoredDataSpecifier.array(ARRAY_KIND, [ArrayRange(0, 5), ArrayRange(9, 0xFFFFFFFF)]),
    StoredDataSpecifier.dictionary(DICTIONARY_KIND, [b"a", b"bc"]),
    StoredDataSpecifier.single(SINGLE_KIND),
)
_STORE_REQ = StoreReq(
    b"\x12\x34",
    1,
    (
        StoreKindData(ARRAY_KIND, 3, (_ARRAY_DATA, _ARRAY_DATA)),
        StoreKindData(DICTIONARY_KIND, 0, (_DICT_DATA,)),
    ),
)
_FETCH_ANS = FetchAns(
    (
        FetchKindResponse(ARRAY_KIND, 3, (_ARRAY_DATA,)),
        FetchKindResponse(SINGLE_KIND, 1, (_SINGLE_DATA,)),
    )
)
_STAT_ANS = StatAns(
    (
        StatKindResponse(ARRAY_KIND, 3, (StoredMetaData(1, 2, ArrayEntryMeta(4, _META)),)),
        StatKindResponse(
            DICTIONARY_KIND, 3, (StoredMetaData(1, 2, DictionaryEntryMeta(b"k", _META)),)
        ),
    )
)

FUZZ_CASES: list[tuple[str, Callable[[bytes], object], list[bytes]]] = [
    ("DataValue", DataValue.decode, [_VALUE.encode(), DataValue(False).encode()]),
    ("ArrayEntry", ArrayEntry.decode, [ArrayEntry(1, _VALUE).encode()]),
    ("DictionaryEntry", DictionaryEntry.decode, [DictionaryEntry(b"k", _VALUE).encode()]),
    (
        "StoredData/single",
        lambda d: StoredData.decode(d, DataModel.SINGLE),
        [_SINGLE_DATA.encode()],
    ),
    ("StoredData/array", lambda d: StoredData.decode(d, DataModel.ARRAY), [_ARRAY_DATA.encode()]),
    (
        "StoredData/dictionary",
        lambda d: StoredData.decode(d, DataModel.DICTIONARY),
        [_DICT_DATA.encode()],
    ),
    (
        "StoreKindData",
        lambda d: StoreKindData.decode(d, MODELS),
        [_STORE_REQ.kind_data[0].encode()],
    ),
    ("StoreReq", lambda d: StoreReq.decode(d, MODELS), [_STORE_REQ.encode(), STORE_REQ_SINGLE]),
    (
        "StoreKindResponse",
        StoreKindResponse.decode,
        [StoreKindResponse(1, 2, (bytes(16),)).encode()],
    ),
    (
        "StoreAns",
        StoreAns.decode,
        [StoreAns((StoreKindResponse(1, 2, (bytes(16),) * 2),)).encode()],
    ),
    ("UnknownKindsInfo", UnknownKindsInfo.decode, [UNKNOWN_KINDS]),
    ("ArrayRange", ArrayRange.decode, [ArrayRange(0, 0xFFFFFFFF).encode()]),
    (
        "StoredDataSpecifier",
        lambda d: StoredDataSpecifier.decode(d, MODELS),
        [spec.encode() for spec in _SPECS],
    ),
    ("FetchReq", lambda d: FetchReq.decode(d, MODELS), [FetchReq(b"r", _SPECS).encode()]),
    ("StatReq", lambda d: StatReq.decode(d, MODELS), [StatReq(b"", _SPECS).encode()]),
    (
        "FetchKindResponse",
        lambda d: FetchKindResponse.decode(d, MODELS),
        [_FETCH_ANS.kind_responses[0].encode()],
    ),
    ("FetchAns", lambda d: FetchAns.decode(d, MODELS), [_FETCH_ANS.encode()]),
    ("MetaData", MetaData.decode, [_META.encode()]),
    ("ArrayEntryMeta", ArrayEntryMeta.decode, [ArrayEntryMeta(1, _META).encode()]),
    (
        "DictionaryEntryMeta",
        DictionaryEntryMeta.decode,
        [DictionaryEntryMeta(b"k", _META).encode()],
    ),
    (
        "StoredMetaData",
        lambda d: StoredMetaData.decode(d, DataModel.ARRAY),
        [StoredMetaData(1, 2, ArrayEntryMeta(1, _META)).encode()],
    ),
    (
        "StatKindResponse",
        lambda d: StatKindResponse.decode(d, MODELS),
        [_STAT_ANS.kind_responses[1].encode()],
    ),
    ("StatAns", lambda d: StatAns.decode(d, MODELS), [_STAT_ANS.encode(), STAT_ANS]),
    ("FindReq", FindReq.decode, [FindReq(b"r", (1, 2, 3)).encode()]),
    ("FindKindData", FindKindData.decode, [FindKindData(1, b"abc").encode()]),
    ("FindAns", FindAns.decode, [FindAns((FindKindData(1, b"a"), FindKindData(2, b""))).encode()]),
]


@pytest.mark.parametrize(
    ("decode", "seeds"), [case[1:] for case in FUZZ_CASES], ids=[case[0] for case in FUZZ_CASES]
)
def test_decoders_survive_fuzzing(decode: Callable[[bytes], object], seeds: list[bytes]) -> None:
    for seed in seeds:
        decode(seed)  # the seeds are valid
    assert fuzz_decoder(decode, seeds) > 0
