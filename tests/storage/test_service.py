"""The storage service: Store, Fetch, Stat and Find with real certificates
and real signatures (RFC 6940 section 7.4)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from reload.errors import ReloadError
from reload.security.signing import verifyData
from reload.storage.policies import nodeMultipleResourceName
from reload.storage.service import NOT_FOUND_RESOURCE
from reload.wire.message import ErrorCode
from reload.wire.security_block import HashAlgorithm, Signature
from reload.wire.storage import (
    ArrayEntry,
    ArrayEntryMeta,
    ArrayRange,
    DataValue,
    DictionaryEntryMeta,
    FetchReq,
    FindReq,
    MetaData,
    StatReq,
    StoreAns,
    StoredData,
    StoredDataSpecifier,
    StoreKindData,
    StoreKindResponse,
    StoreReq,
)
from tests.storage.support import (
    ARRAY_NODE,
    ARRAY_USER,
    CERTIFICATE_BY_NODE,
    CERTIFICATE_BY_USER,
    DICT_NODE,
    DICT_REDIR,
    DICT_USER_NODE,
    HOUR,
    NOW,
    NOW_MS,
    SINGLE_MULTIPLE,
    SINGLE_USER,
    WHEN,
    Setup,
    entry,
    fetchArray,
    fetchDictionary,
    fetchSingle,
    h,
    item,
    makeIdentity,
    requester,
    sign,
    single,
    storeReq,
)
from topologies.chordreload.ring import IdRange, addToId

ALICE_NAME = "alice@storage.example.org"
BOB_NAME = "bob@storage.example.org"
ALICE = makeIdentity(ALICE_NAME)
ALICE_PHONE = makeIdentity(ALICE_NAME)  # a second device of the same user
BOB = makeIdentity(BOB_NAME)
NAMELESS = makeIdentity(None)
LAST = ArrayRange.LAST


def rejected(code: int, call: Callable[[], Any]) -> ReloadError:
    with pytest.raises(ReloadError) as caught:
        call()
    assert caught.value.code == code, (caught.value.name, caught.value.text)
    return caught.value


def cell(data: StoredData) -> tuple[int | bytes | None, bool, bytes]:
    """A value as (index or key or None, exists, bytes)."""
    value = data.value
    if isinstance(value, DataValue):
        return None, value.exists, value.value
    slot = value.index if isinstance(value, ArrayEntry) else value.key
    return slot, value.value.exists, value.value.value


def refused(code: int, setup: Setup, who: Any, request: StoreReq) -> ReloadError:
    return rejected(code, lambda: store(setup, who, request))


@pytest.fixture
def setup() -> Setup:
    return Setup(identities=(ALICE, ALICE_PHONE, BOB, NAMELESS))


def store(setup: Setup, who: Any, request: StoreReq, now: float = NOW) -> StoreAns:
    return setup.service.handleStore(request, requester(setup.cache, who), now)


def values(setup: Setup, request: FetchReq, now: float = NOW) -> list[StoredData]:
    (response,) = setup.service.handleFetch(request, now).kind_responses
    return list(response.values)


def generation(setup: Setup, request: FetchReq, now: float = NOW) -> int:
    (response,) = setup.service.handleFetch(request, now).kind_responses
    return response.generation


# -- the three data models (7.2, 7.4.1.1, 7.4.2) ------------------------------------------


def test_single_value_store_and_fetch(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    value = sign(ALICE, rid, SINGLE_USER, single(b"hello"))
    answer = store(setup, ALICE, storeReq(rid, SINGLE_USER, [value]))
    assert answer == StoreAns((StoreKindResponse(SINGLE_USER, 1),))
    (got,) = values(setup, fetchSingle(rid, SINGLE_USER), NOW + 600)
    assert got.value == DataValue(True, b"hello")
    assert got.lifetime == HOUR - 600  # what is left (section 7.4.1.1)
    # What a fetcher receives still verifies (section 7.4.2.2).
    assert verifyData(rid, SINGLE_USER, got, setup.cache, WHEN).nodeId == ALICE.nodeId
    # A new value overwrites the old one.
    newer = sign(ALICE, rid, SINGLE_USER, single(b"again"), NOW_MS + 1)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [newer]))
    (got,) = values(setup, fetchSingle(rid, SINGLE_USER))
    assert got.value == DataValue(True, b"again")


def test_nothing_stored_reads_as_a_synthetic_nonexistent_value_7_4_2_2(setup: Setup) -> None:
    (got,) = values(setup, fetchSingle(h(ALICE_NAME), SINGLE_USER))
    assert got.value == DataValue(False, b"")
    assert got.signature == Signature.empty()
    assert generation(setup, fetchSingle(h(ALICE_NAME), SINGLE_USER)) == 0


def test_array_store_and_fetch_with_ranges_and_gaps_7_2_2(setup: Setup) -> None:
    rid = h(ALICE.nodeId)
    stored = [sign(ALICE, rid, ARRAY_NODE, entry(i, b"v%d" % i)) for i in (0, 2, 3)]
    store(setup, ALICE, storeReq(rid, ARRAY_NODE, stored))

    def read(*ranges: tuple[int, int]) -> list[tuple[int, bool, bytes]]:
        out = []
        for data in values(setup, fetchArray(rid, ARRAY_NODE, *ranges)):
            assert isinstance(data.value, ArrayEntry)
            out.append((data.value.index, data.value.value.exists, data.value.value.value))
        return out

    gap = (1, False, b"")
    assert read((0, LAST)) == [(0, True, b"v0"), gap, (2, True, b"v2"), (3, True, b"v3")]
    assert read((1, 1)) == [gap]
    # Ranges in request order; a range past the end stops at the end.
    assert read((3, 100), (0, 0)) == [(3, True, b"v3"), (0, True, b"v0")]
    assert read((7, LAST)) == []
    rejected(ErrorCode.INVALID_MESSAGE, lambda: read((0, 2), (2, 3)))  # overlap
    rejected(ErrorCode.INVALID_MESSAGE, lambda: read((3, 1)))  # first > last


def test_array_append_at_0xffffffff_7_4_1_1(setup: Setup) -> None:
    rid = h(ALICE.nodeId)
    first = [sign(ALICE, rid, ARRAY_NODE, entry(i, b"x")) for i in (0, 1)]
    store(setup, ALICE, storeReq(rid, ARRAY_NODE, first))
    appended = [
        sign(ALICE, rid, ARRAY_NODE, entry(ArrayEntry.APPEND, b"a%d" % i), NOW_MS + 1)
        for i in (1, 2)
    ]
    store(setup, ALICE, storeReq(rid, ARRAY_NODE, appended))
    got = values(setup, fetchArray(rid, ARRAY_NODE, (2, LAST)))
    assert [cell(d) for d in got] == [(2, True, b"a1"), (3, True, b"a2")]
    # The signature covers index 0 (7.4.2.2), so the appended values verify.
    for data in got:
        verifyData(rid, ARRAY_NODE, data, setup.cache, WHEN)


def test_dictionary_keys_and_fetch_all_keys_7_2_3(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    laptop = sign(ALICE, rid, DICT_USER_NODE, item(ALICE.nodeId, b"laptop"))
    phone = sign(ALICE_PHONE, rid, DICT_USER_NODE, item(ALICE_PHONE.nodeId, b"phone"))
    store(setup, ALICE, storeReq(rid, DICT_USER_NODE, [laptop]))
    store(setup, ALICE_PHONE, storeReq(rid, DICT_USER_NODE, [phone]))
    everything = values(setup, fetchDictionary(rid, DICT_USER_NODE))
    assert {cell(d) for d in everything} == {
        (ALICE.nodeId, True, b"laptop"),
        (ALICE_PHONE.nodeId, True, b"phone"),
    }
    missing = b"\x00" * 16
    some = values(setup, fetchDictionary(rid, DICT_USER_NODE, [ALICE_PHONE.nodeId, missing]))
    assert [cell(d) for d in some] == [(ALICE_PHONE.nodeId, True, b"phone"), (missing, False, b"")]
    assert generation(setup, fetchDictionary(rid, DICT_USER_NODE)) == 2


def test_a_fetch_with_the_current_generation_returns_no_values_7_4_2_1(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"a"))]))
    assert values(setup, fetchSingle(rid, SINGLE_USER, generation=1)) == []
    assert len(values(setup, fetchSingle(rid, SINGLE_USER, generation=7))) == 1


# -- removing values (7.4.1.3) ---------------------------------------------------------


def test_exists_false_removes_a_value_and_keeps_its_signature(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"a"))]))
    gone = sign(ALICE, rid, SINGLE_USER, single(None), NOW_MS + 1, lifetime=2 * HOUR)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [gone]))
    (got,) = values(setup, fetchSingle(rid, SINGLE_USER))
    assert got.value == DataValue(False, b"")
    verifyData(rid, SINGLE_USER, got, setup.cache, WHEN)  # a stored, signed nonexistent value
    # The tombstone guards against replay of the old value.
    rejected(
        ErrorCode.DATA_TOO_OLD,
        lambda: store(
            setup, ALICE, storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"a"))])
        ),
    )
    # And it expires like any value.
    (later,) = values(setup, fetchSingle(rid, SINGLE_USER), NOW + 2 * HOUR)
    assert later.signature == Signature.empty()


def test_removing_a_dictionary_entry(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    for who, t in ((ALICE, NOW_MS), (ALICE_PHONE, NOW_MS)):
        value = sign(who, rid, DICT_USER_NODE, item(who.nodeId, b"on"), t)
        store(setup, who, storeReq(rid, DICT_USER_NODE, [value]))
    off = sign(ALICE, rid, DICT_USER_NODE, item(ALICE.nodeId, None), NOW_MS + 5)
    store(setup, ALICE, storeReq(rid, DICT_USER_NODE, [off]))
    got = [cell(d) for d in values(setup, fetchDictionary(rid, DICT_USER_NODE))]
    assert sorted(got) == sorted([(ALICE.nodeId, False, b""), (ALICE_PHONE.nodeId, True, b"on")])


# -- generation counters (7.4.1.1, 7.4.1.2) -----------------------------------------------


def test_generation_counters_increase_per_store(setup: Setup) -> None:
    rid = h(ALICE.nodeId)
    counters = []
    for t, indices in ((0, (0,)), (1, (1, 2)), (2, ())):
        batch = [sign(ALICE, rid, ARRAY_NODE, entry(i, b"x"), NOW_MS + t) for i in indices]
        (response,) = store(setup, ALICE, storeReq(rid, ARRAY_NODE, batch)).kind_responses
        counters.append(response.generation_counter)
    # +1 per StoreKindData that changed data; an empty one changes nothing.
    assert counters == [1, 2, 2]
    # The expected counter, when given, must be the current one.
    nxt = sign(ALICE, rid, ARRAY_NODE, entry(0, b"y"), NOW_MS + 9)
    (response,) = store(setup, ALICE, storeReq(rid, ARRAY_NODE, [nxt], generation=2)).kind_responses
    assert response.generation_counter == 3


def test_generation_counter_too_low_fails_the_whole_request(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    for t in range(3):
        value = sign(ALICE, rid, SINGLE_USER, single(b"%d" % t), NOW_MS + t)
        store(setup, ALICE, storeReq(rid, SINGLE_USER, [value]))
    request = StoreReq(
        rid,
        0,
        (
            StoreKindData(
                ARRAY_USER, 0, (sign(ALICE, rid, ARRAY_USER, entry(0, b"new"), NOW_MS + 10),)
            ),
            StoreKindData(
                SINGLE_USER, 2, (sign(ALICE, rid, SINGLE_USER, single(b"stale"), NOW_MS + 10),)
            ),
        ),
    )
    error = refused(ErrorCode.GENERATION_COUNTER_TOO_LOW, setup, ALICE, request)
    # error_info: a StoreAns with the current counter of every Kind, no replicas.
    assert StoreAns.decode(error.info) == StoreAns(
        (StoreKindResponse(ARRAY_USER, 0), StoreKindResponse(SINGLE_USER, 3))
    )
    # Nothing of the request was stored.
    assert setup.store.get(rid, ARRAY_USER) is None
    (got,) = values(setup, fetchSingle(rid, SINGLE_USER))
    assert cell(got) == (None, True, b"2")
    # A counter ahead of the stored one is no better.
    ahead = storeReq(
        rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"x"), NOW_MS + 11)], generation=9
    )
    refused(ErrorCode.GENERATION_COUNTER_TOO_LOW, setup, ALICE, ahead)


def test_a_replica_store_sets_the_counter_and_does_not_check_it() -> None:
    setup = Setup(identities=(ALICE, BOB), acceptReplica=lambda rid, sender: sender == BOB.nodeId)
    rid = h(ALICE_NAME)
    value = sign(ALICE, rid, SINGLE_USER, single(b"copy"))
    (response,) = store(
        setup, BOB, storeReq(rid, SINGLE_USER, [value], generation=41, replica=1)
    ).kind_responses
    assert response == StoreKindResponse(SINGLE_USER, 41, ())
    # "Replica Stores MUST NOT use a generation counter of 0."
    zero = storeReq(
        rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"z"), NOW_MS + 1)], replica=1
    )
    refused(ErrorCode.INVALID_MESSAGE, setup, BOB, zero)
    # From a peer this one does not replicate for: refused.
    refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, SINGLE_USER, [value], 42, replica=1))


# -- storage time (7, 13.5.3) -------------------------------------------------------------


def test_an_older_or_equal_storage_time_is_data_too_old(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"a"))]))
    for t in (NOW_MS, NOW_MS - 1):
        old = sign(ALICE, rid, SINGLE_USER, single(b"b"), t)
        refused(ErrorCode.DATA_TOO_OLD, setup, ALICE, storeReq(rid, SINGLE_USER, [old]))
    # Once the value has expired, there is nothing to roll back.
    old = sign(ALICE, rid, SINGLE_USER, single(b"b"), NOW_MS - 1)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [old]), NOW + HOUR)


def test_a_failing_kind_rolls_back_the_others_7_4_1_1(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"a"))]))
    request = StoreReq(
        rid,
        0,
        (
            StoreKindData(ARRAY_USER, 0, (sign(ALICE, rid, ARRAY_USER, entry(0, b"new")),)),
            StoreKindData(SINGLE_USER, 0, (sign(ALICE, rid, SINGLE_USER, single(b"old")),)),
        ),
    )
    refused(ErrorCode.DATA_TOO_OLD, setup, ALICE, request)
    assert setup.store.get(rid, ARRAY_USER) is None


# -- limits (7.4.1.2, 13.5.2) ------------------------------------------------------------


def test_max_size_is_data_too_large(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    big = sign(ALICE, rid, SINGLE_USER, single(b"x" * 65))
    refused(ErrorCode.DATA_TOO_LARGE, setup, ALICE, storeReq(rid, SINGLE_USER, [big]))
    fits = sign(ALICE, rid, SINGLE_USER, single(b"x" * 64))
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [fits]))


def test_max_count_is_data_too_large(setup: Setup) -> None:
    rid = h(ALICE.nodeId)
    five = [sign(ALICE, rid, ARRAY_NODE, entry(i, b"x")) for i in range(5)]
    store(setup, ALICE, storeReq(rid, ARRAY_NODE, five))
    sixth = sign(ALICE, rid, ARRAY_NODE, entry(ArrayEntry.APPEND, b"x"), NOW_MS + 1)
    refused(ErrorCode.DATA_TOO_LARGE, setup, ALICE, storeReq(rid, ARRAY_NODE, [sixth]))
    # An array's count is its length: index 9 alone makes 10 values.
    other = h(BOB.nodeId)
    far = sign(BOB, other, ARRAY_NODE, entry(9, b"x"))
    refused(ErrorCode.DATA_TOO_LARGE, setup, BOB, storeReq(other, ARRAY_NODE, [far]))
    # Replacing a value at max-count is fine.
    again = sign(ALICE, rid, ARRAY_NODE, entry(4, b"y"), NOW_MS + 2)
    store(setup, ALICE, storeReq(rid, ARRAY_NODE, [again]))
    # Dictionaries count their entries.
    drid = h(BOB.nodeId)
    keys = [sign(BOB, drid, DICT_NODE, item(b"k%d" % i, b"v")) for i in range(5)]
    refused(ErrorCode.DATA_TOO_LARGE, setup, BOB, storeReq(drid, DICT_NODE, keys))
    store(setup, BOB, storeReq(drid, DICT_NODE, keys[:4]))


# -- unknown Kinds (7.4.1.2) ------------------------------------------------------------


def test_unknown_kinds_are_all_listed(setup: Setup) -> None:
    from reload.wire.storage import UnknownKindsInfo

    rid = h(ALICE_NAME)
    request = StoreReq(
        rid,
        0,
        (
            StoreKindData(0xF00000AA, 0, ()),
            StoreKindData(SINGLE_USER, 0, (sign(ALICE, rid, SINGLE_USER, single(b"a")),)),
            StoreKindData(0xF00000BB, 0, ()),
        ),
    )
    error = refused(ErrorCode.UNKNOWN_KIND, setup, ALICE, request)
    assert UnknownKindsInfo.decode(error.info).kinds == (0xF00000AA, 0xF00000BB)
    assert len(setup.store) == 0
    fetch = FetchReq(
        rid,
        (StoredDataSpecifier.single(SINGLE_USER), StoredDataSpecifier.single(0xF00000CC)),
    )
    error = rejected(ErrorCode.UNKNOWN_KIND, lambda: setup.service.handleFetch(fetch, NOW))
    assert UnknownKindsInfo.decode(error.info).kinds == (0xF00000CC,)


# -- access control: an allowed and a denied writer per policy (7.3) ----------------------


def test_user_match_writers(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"a"))]))
    for intruder in (BOB, NAMELESS):
        value = sign(intruder, rid, SINGLE_USER, single(b"b"), NOW_MS + 1)
        refused(ErrorCode.FORBIDDEN, setup, intruder, storeReq(rid, SINGLE_USER, [value]))


def test_node_match_writers(setup: Setup) -> None:
    rid = h(BOB.nodeId)
    store(setup, BOB, storeReq(rid, ARRAY_NODE, [sign(BOB, rid, ARRAY_NODE, entry(0, b"b"))]))
    value = sign(ALICE, rid, ARRAY_NODE, entry(1, b"a"))
    refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, ARRAY_NODE, [value]))


def test_user_node_match_writers(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    own = sign(ALICE, rid, DICT_USER_NODE, item(ALICE.nodeId, b"mine"))
    store(setup, ALICE, storeReq(rid, DICT_USER_NODE, [own]))
    # Alice's laptop cannot write her phone's key ...
    other = sign(ALICE, rid, DICT_USER_NODE, item(ALICE_PHONE.nodeId, b"x"))
    refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, DICT_USER_NODE, [other]))
    # ... and Bob cannot write at Alice's name, even under his own key.
    bobs = sign(BOB, rid, DICT_USER_NODE, item(BOB.nodeId, b"x"))
    refused(ErrorCode.FORBIDDEN, setup, BOB, storeReq(rid, DICT_USER_NODE, [bobs]))


def test_node_multiple_writers(setup: Setup) -> None:
    for i in (1, 3):
        rid = h(nodeMultipleResourceName(BOB.nodeId, i))
        store(
            setup,
            BOB,
            storeReq(rid, SINGLE_MULTIPLE, [sign(BOB, rid, SINGLE_MULTIPLE, single(b"t"))]),
        )
    beyond = h(nodeMultipleResourceName(BOB.nodeId, 4))
    value = sign(BOB, beyond, SINGLE_MULTIPLE, single(b"t"))
    refused(ErrorCode.FORBIDDEN, setup, BOB, storeReq(beyond, SINGLE_MULTIPLE, [value]))
    bobs = h(nodeMultipleResourceName(BOB.nodeId, 2))
    value = sign(ALICE, bobs, SINGLE_MULTIPLE, single(b"t"))
    refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(bobs, SINGLE_MULTIPLE, [value]))


def test_the_storereq_signer_must_conform_too_7_3(setup: Setup) -> None:
    """Alice's signed value, sent by Bob as an original store: refused."""
    rid = h(ALICE_NAME)
    value = sign(ALICE, rid, SINGLE_USER, single(b"a"))
    refused(ErrorCode.FORBIDDEN, setup, BOB, storeReq(rid, SINGLE_USER, [value]))
    assert len(setup.store) == 0


def test_the_policy_is_asked_once_when_one_writer_signs_value_and_storereq_7_3(
    setup: Setup,
) -> None:
    """Section 7.3 asks that both signers conform; when they are the same
    Node-ID and user name the AccessRequest is the same, so the policy is
    asked once per value.  Another device of the same user is a second
    writer and is asked about on its own."""
    asked: list[tuple[bytes, str]] = []
    registry = setup.service.policies
    permits = registry.permits

    def counting(name: str, request: Any, node: Any) -> bool:
        asked.append((request.signerNodeIds[0], request.signerUserName))
        return permits(name, request, node)

    registry.permits = counting  # type: ignore[method-assign]
    rid = h(ALICE_NAME)
    first = sign(ALICE, rid, ARRAY_USER, entry(0, b"a"))
    second = sign(ALICE, rid, ARRAY_USER, entry(1, b"b"))
    store(setup, ALICE, storeReq(rid, ARRAY_USER, [first, second]))
    assert asked == [(ALICE.nodeId, ALICE_NAME)] * 2
    asked.clear()
    third = sign(ALICE, rid, ARRAY_USER, entry(2, b"c"))
    store(setup, ALICE_PHONE, storeReq(rid, ARRAY_USER, [third]))
    assert asked == [(ALICE.nodeId, ALICE_NAME), (ALICE_PHONE.nodeId, ALICE_NAME)]


def test_a_kind_whose_policy_is_not_installed_cannot_be_written(setup: Setup) -> None:
    rid = h(ALICE.nodeId)
    value = sign(ALICE, rid, DICT_REDIR, item(ALICE.nodeId, b"x"))
    error = refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, DICT_REDIR, [value]))
    assert "NODE-ID-MATCH" in error.text


def test_the_certificate_store_usage_8(setup: Setup) -> None:
    byNode, byUser = h(ALICE.nodeId), h(ALICE_NAME)
    certificate = ALICE.certificateDer
    for rid, kind in ((byNode, CERTIFICATE_BY_NODE), (byUser, CERTIFICATE_BY_USER)):
        value = sign(ALICE, rid, kind, entry(ArrayEntry.APPEND, certificate))
        store(setup, ALICE, storeReq(rid, kind, [value]))
        (got,) = values(setup, fetchArray(rid, kind, (0, LAST)))
        assert cell(got) == (0, True, certificate)
    # Bob may store his own certificate, not at Alice's places.
    for rid, kind in ((byNode, CERTIFICATE_BY_NODE), (byUser, CERTIFICATE_BY_USER)):
        value = sign(BOB, rid, kind, entry(ArrayEntry.APPEND, BOB.certificateDer))
        refused(ErrorCode.FORBIDDEN, setup, BOB, storeReq(rid, kind, [value]))
    junk = sign(ALICE, byNode, CERTIFICATE_BY_NODE, entry(1, b"not a certificate"), NOW_MS + 1)
    refused(ErrorCode.INVALID_MESSAGE, setup, ALICE, storeReq(byNode, CERTIFICATE_BY_NODE, [junk]))


# -- signatures (7.1, 7.4.1.1) -----------------------------------------------------------


def test_a_tampered_value_is_rejected_and_nothing_is_written(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    good = sign(ALICE, rid, ARRAY_USER, entry(0, b"fine"))
    value = sign(ALICE, rid, SINGLE_USER, single(b"genuine"))
    tampered = dataclasses.replace(value, value=single(b"forged!"))
    request = StoreReq(
        rid,
        0,
        (StoreKindData(ARRAY_USER, 0, (good,)), StoreKindData(SINGLE_USER, 0, (tampered,))),
    )
    error = refused(ErrorCode.FORBIDDEN, setup, ALICE, request)
    assert "does not verify" in error.text
    assert len(setup.store) == 0
    (got,) = values(setup, fetchSingle(rid, SINGLE_USER))
    assert cell(got) == (None, False, b"")


def test_a_signature_for_another_resource_or_kind_does_not_verify(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    elsewhere = sign(ALICE, h("elsewhere"), SINGLE_USER, single(b"a"))
    refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, SINGLE_USER, [elsewhere]))
    otherKind = sign(ALICE, rid, 0xF0000099, single(b"a"))
    refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, SINGLE_USER, [otherKind]))


def test_unsigned_and_unknown_signers_are_forbidden(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    anonymous = StoredData(NOW_MS, HOUR, single(b"a"), Signature.empty())
    refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, SINGLE_USER, [anonymous]))
    stranger = makeIdentity(ALICE_NAME)  # never seen: not in the cache
    value = sign(stranger, rid, SINGLE_USER, single(b"a"))
    error = refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, SINGLE_USER, [value]))
    assert "unknown signer" in error.text


# -- expiry (7, 7.4.1.3) -------------------------------------------------------------------


def test_values_expire_after_their_lifetime(setup: Setup) -> None:
    rid = h(ALICE.nodeId)
    short = sign(ALICE, rid, ARRAY_NODE, entry(0, b"short"), lifetime=60)
    long = sign(ALICE, rid, ARRAY_NODE, entry(1, b"long"), lifetime=HOUR)
    store(setup, ALICE, storeReq(rid, ARRAY_NODE, [short, long]))
    before = values(setup, fetchArray(rid, ARRAY_NODE, (0, LAST)), NOW + 59)
    assert [cell(d) for d in before] == [(0, True, b"short"), (1, True, b"long")]
    after = values(setup, fetchArray(rid, ARRAY_NODE, (0, LAST)), NOW + 60)
    assert [cell(d) for d in after] == [(0, False, b""), (1, True, b"long")]
    assert after[0].signature == Signature.empty()  # synthesized, not stored
    assert setup.service.purgeExpired(NOW + 60) == 1
    assert setup.service.purgeExpired(NOW + HOUR) == 1
    assert len(setup.store) == 0


def test_values_do_not_outlive_the_signing_certificate_7_1(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    forever = sign(ALICE, rid, SINGLE_USER, single(b"a"), lifetime=365 * 24 * HOUR)
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [forever]))
    validUntil = ALICE.certificate.not_valid_after_utc.timestamp()
    (got,) = values(setup, fetchSingle(rid, SINGLE_USER))
    assert got.lifetime <= validUntil - NOW + 1
    (later,) = values(setup, fetchSingle(rid, SINGLE_USER), validUntil + 1)
    assert cell(later) == (None, False, b"")


# -- quota (13.5) ------------------------------------------------------------------------


def test_a_flood_from_one_signer_is_stopped_while_others_store() -> None:
    setup = Setup(identities=(ALICE, BOB), quota=4000)
    mallory, rid = BOB, h(BOB_NAME)
    stored = 0
    with pytest.raises(ReloadError) as caught:
        for i in range(100):
            value = sign(mallory, rid, ARRAY_USER, entry(i, b"x" * 500))
            store(setup, mallory, storeReq(rid, ARRAY_USER, [value]))
            stored += 1
    assert caught.value.code == ErrorCode.FORBIDDEN
    assert "quota" in caught.value.text
    assert 0 < stored < 10
    assert setup.store.usage(mallory.nodeId) <= 4000
    # Alice is not affected.
    arid = h(ALICE_NAME)
    store(
        setup,
        ALICE,
        storeReq(arid, ARRAY_USER, [sign(ALICE, arid, ARRAY_USER, entry(0, b"y" * 500))]),
    )
    # Mallory may still free space: replacing a value by a smaller one passes.
    smaller = sign(mallory, rid, ARRAY_USER, entry(0, b""), NOW_MS + 1)
    store(setup, mallory, storeReq(rid, ARRAY_USER, [smaller]))


# -- max_response_length (6.3.3.1) --------------------------------------------------------


def test_an_answer_over_max_response_length_is_response_too_large(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    value = sign(ALICE, rid, ARRAY_USER, entry(0, b"z" * 900))
    store(setup, ALICE, storeReq(rid, ARRAY_USER, [value]))
    request = fetchArray(rid, ARRAY_USER, (0, LAST))
    rejected(ErrorCode.RESPONSE_TOO_LARGE, lambda: setup.service.handleFetch(request, NOW, 500))
    assert setup.service.handleFetch(request, NOW, 5000).kind_responses
    stat = StatReq(rid, request.specifiers)
    rejected(ErrorCode.RESPONSE_TOO_LARGE, lambda: setup.service.handleStat(stat, NOW, 40))
    assert setup.service.handleStat(stat, NOW, 500).kind_responses


# -- Stat (7.4.3) ----------------------------------------------------------------------------


def test_stat_gives_lengths_and_digests(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    value = sign(ALICE, rid, DICT_USER_NODE, item(ALICE.nodeId, b"abc"))
    store(setup, ALICE, storeReq(rid, DICT_USER_NODE, [value]))
    request = StatReq(rid, (StoredDataSpecifier.dictionary(DICT_USER_NODE),))
    (response,) = setup.service.handleStat(request, NOW + 1).kind_responses
    (meta,) = response.values
    digest = hashlib.sha256(b"\x00\x00\x00\x03abc").digest()
    assert response.generation == 1
    assert meta.storage_time == NOW_MS and meta.lifetime == HOUR - 1
    assert meta.metadata == DictionaryEntryMeta(
        ALICE.nodeId, MetaData(True, 3, HashAlgorithm.SHA256, digest)
    )
    node = h(ALICE.nodeId)
    store(setup, ALICE, storeReq(node, ARRAY_NODE, [sign(ALICE, node, ARRAY_NODE, entry(1, b""))]))
    arrays = StatReq(node, (StoredDataSpecifier.array(ARRAY_NODE, [ArrayRange(0, LAST)]),))
    (response,) = setup.service.handleStat(arrays, NOW).kind_responses
    empty = hashlib.sha256(b"\x00\x00\x00\x00").digest()
    assert [m.metadata for m in response.values] == [
        ArrayEntryMeta(0, MetaData(False, 0, HashAlgorithm.SHA256, empty)),
        ArrayEntryMeta(1, MetaData(True, 0, HashAlgorithm.SHA256, empty)),
    ]


# -- responsibility (7.4.1.1, 7.4.4.2) ---------------------------------------------------


def test_a_peer_that_is_not_responsible_answers_not_found() -> None:
    setup = Setup(identities=(ALICE,), responsible=lambda rid: False)
    rid = h(ALICE_NAME)
    value = sign(ALICE, rid, SINGLE_USER, single(b"a"))
    service = setup.service
    refused(ErrorCode.NOT_FOUND, setup, ALICE, storeReq(rid, SINGLE_USER, [value]))
    rejected(ErrorCode.NOT_FOUND, lambda: service.handleFetch(fetchSingle(rid, SINGLE_USER), NOW))
    stat = StatReq(rid, (StoredDataSpecifier.single(SINGLE_USER),))
    rejected(ErrorCode.NOT_FOUND, lambda: service.handleStat(stat, NOW))
    rejected(ErrorCode.NOT_FOUND, lambda: service.handleFind(FindReq(rid, (SINGLE_USER,)), NOW))
    # Without a replica check, replica stores are refused (fail closed).
    refused(ErrorCode.FORBIDDEN, setup, ALICE, storeReq(rid, SINGLE_USER, [value], 1, replica=1))


# -- Find (7.4.4) ------------------------------------------------------------------------------


def test_find_gives_the_closest_resource_at_or_after() -> None:
    node = ALICE
    mine = [h(nodeMultipleResourceName(node.nodeId, i)) for i in (1, 2, 3)]
    setup = Setup(identities=(node,))
    for rid in mine:
        value = sign(node, rid, SINGLE_MULTIPLE, single(b"t"))
        store(setup, node, storeReq(rid, SINGLE_MULTIPLE, [value]))
    # The peer stops being responsible for one of them (it keeps the data,
    # say as a replica): Find does not report it.
    outside = mine[2]
    setup.service.isResponsible = lambda rid: rid != outside
    ordered = sorted(r for r in mine if r != outside)
    low, high = ordered

    def find(target: bytes, *kinds: int) -> dict[int, bytes]:
        answer = setup.service.handleFind(FindReq(target, kinds), NOW)
        return {r.kind: r.closest for r in answer.results}

    before = (int.from_bytes(low, "big") - 1).to_bytes(16, "big")
    assert find(before, SINGLE_MULTIPLE) == {SINGLE_MULTIPLE: low}
    assert find(low, SINGLE_MULTIPLE) == {SINGLE_MULTIPLE: low}
    after = (int.from_bytes(low, "big") + 1).to_bytes(16, "big")
    assert find(after, SINGLE_MULTIPLE) == {SINGLE_MULTIPLE: high}
    beyond = (int.from_bytes(high, "big") + 1).to_bytes(16, "big")
    assert find(beyond, SINGLE_MULTIPLE) == {SINGLE_MULTIPLE: low}  # around the ring
    # No value of a Kind, or an unknown Kind: "0".
    assert find(before, SINGLE_USER, 0xF00000EE) == {
        SINGLE_USER: NOT_FOUND_RESOURCE,
        0xF00000EE: NOT_FOUND_RESOURCE,
    }
    # A removed value is not something to find.
    gone = sign(node, low, SINGLE_MULTIPLE, single(None), NOW_MS + 1)
    store(setup, node, storeReq(low, SINGLE_MULTIPLE, [gone]))
    assert find(before, SINGLE_MULTIPLE) == {SINGLE_MULTIPLE: high}
    rejected(ErrorCode.INVALID_MESSAGE, lambda: find(before, SINGLE_USER, SINGLE_USER))


# -- replication and handover hooks (10.4, 10.5, 10.7.3) ----------------------------------


def test_replicas_copy_data_and_counters() -> None:
    replicaIds = [b"\x0a" * 16, b"\x0b" * 16]
    primary = Setup(identities=(ALICE,), replicaSet=lambda rid: replicaIds)
    notified: list[tuple[bytes, Mapping[int, tuple[object, ...]]]] = []
    primary.service.addStoreListener(lambda rid, kinds: notified.append((rid, kinds)))
    rid = h(ALICE_NAME)
    request = StoreReq(
        rid,
        0,
        (
            StoreKindData(SINGLE_USER, 0, (sign(ALICE, rid, SINGLE_USER, single(b"a")),)),
            StoreKindData(
                DICT_USER_NODE, 0, (sign(ALICE, rid, DICT_USER_NODE, item(ALICE.nodeId, b"d")),)
            ),
        ),
    )
    answer = store(primary, ALICE, request)
    assert [r.replicas for r in answer.kind_responses] == [tuple(replicaIds)] * 2
    # The listener learns which values the Store wrote (section 10.4).
    assert notified == [(rid, {SINGLE_USER: (None,), DICT_USER_NODE: (ALICE.nodeId,)})]

    copy = primary.service.replicaStore(rid, 1, NOW + 100)
    assert copy is not None
    assert copy.request.replica_number == 1
    assert copy.certificates == (ALICE.certificateDer,)
    assert {kd.kind: kd.generation_counter for kd in copy.request.kind_data} == {
        SINGLE_USER: 1,
        DICT_USER_NODE: 1,
    }
    assert all(v.lifetime == HOUR - 100 for kd in copy.request.kind_data for v in kd.values)

    replica = Setup(identities=(ALICE,), acceptReplica=lambda rid, sender: True)
    sender = requester(replica.cache, ALICE)
    answer = replica.service.handleStore(copy.request, sender, NOW + 100)
    assert all(r.replicas == () for r in answer.kind_responses)
    # The same data again (a re-replication) is accepted and changes nothing.
    replica.service.handleStore(copy.request, sender, NOW + 200)
    for kind in (SINGLE_USER,):
        assert values(replica, fetchSingle(rid, kind), NOW + 100) == values(
            primary, fetchSingle(rid, kind), NOW + 100
        )
    copied = replica.store.get(rid, DICT_USER_NODE)
    assert copied is not None and copied.generation == 1

    # Handover: what lies in a range, then forgotten.
    everything = IdRange(rid, rid)  # start == end: the whole ring
    assert primary.service.resourcesIn(everything) == [rid]
    assert primary.service.resourcesIn(IdRange(rid, addToId(rid, 1))) == []
    primary.service.dropResources([rid])
    assert primary.service.resources() == []
    assert primary.service.replicaStore(rid, 1, NOW) is None


def test_apply_replica_takes_newer_data_fetched_after_an_error() -> None:
    setup = Setup(identities=(ALICE,))
    rid = h(ALICE_NAME)
    newer = sign(ALICE, rid, SINGLE_USER, single(b"newer"), NOW_MS + 5)
    setup.service.applyReplica(storeReq(rid, SINGLE_USER, [newer], generation=7), NOW)
    assert generation(setup, fetchSingle(rid, SINGLE_USER)) == 7


def test_local_data_for_policies(setup: Setup) -> None:
    rid = h(ALICE_NAME)
    value = sign(ALICE, rid, SINGLE_USER, single(b"a"))
    store(setup, ALICE, storeReq(rid, SINGLE_USER, [value]))
    (got,) = setup.service.localData(rid, SINGLE_USER, NOW)
    assert got.value == single(b"a")
    assert setup.service.localData(rid, ARRAY_NODE, NOW) == ()
    assert setup.service.numResources == 1
