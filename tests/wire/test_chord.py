"""CHORD-RELOAD structures (RFC 6940 sections 10.7, 10.8, 10.9)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reload.wire.errors import DecodeError, EncodeError
from reload.wire.methods import LeaveReq, RouteQueryAns, UpdateReq
from tests.wire import strategies_methods as s
from tests.wire.fuzzing import fuzz_decoder
from topologies.chordreload.codec import (
    ChordLeaveData,
    ChordLeaveType,
    ChordRouteQueryAns,
    ChordUpdate,
    ChordUpdateType,
)

P1, P2 = b"\x11" * 16, b"\x12" * 16  # predecessors
S1, S2 = b"\x21" * 16, b"\x22" * 16  # successors
F1, F2 = b"\x31" * 16, b"\x32" * 16  # fingers
ME = b"\x01" * 16

# -- worked examples, built by hand from section 10 ------------------------

#: Section 10.7: "This peer is ready to receive messages".
UPDATE_PEER_READY = bytes.fromhex(
    "00000e10"  # uptime = 3600 s
    "01"  # type = peer_ready: nothing follows
)

#: Section 10.7: sent to the members of the Neighbor Table.
UPDATE_NEIGHBORS = bytes.fromhex(
    "00000e10"  # uptime = 3600 s
    "02"  # type = neighbors
    "0020"  # predecessors: 32 bytes
    "11111111111111111111111111111111"  # P1
    "12121212121212121212121212121212"  # P2
    "0010"  # successors: 16 bytes
    "21212121212121212121212121212121"  # S1
)

#: Section 10.7: sent to a peer that asked with RouteQueryReq.send_update.
UPDATE_FULL = bytes.fromhex(
    "0001e240"  # uptime = 123456 s
    "03"  # type = full
    "0010"  # predecessors: 16 bytes
    "11111111111111111111111111111111"  # P1
    "0020"  # successors: 32 bytes
    "21212121212121212121212121212121"  # S1
    "22222222222222222222222222222222"  # S2
    "0020"  # fingers: 32 bytes, in ascending order
    "31313131313131313131313131313131"  # F1
    "32323232323232323232323232323232"  # F2
)

#: Section 10.7: a lone peer has empty neighbor sets.
UPDATE_NEIGHBORS_EMPTY = bytes.fromhex(
    "00000000"  # uptime = 0
    "02"  # type = neighbors
    "0000"  # predecessors: none
    "0000"  # successors: none
)

#: Section 10.9: a leaving peer tells its predecessor its successors.
LEAVE_FROM_SUCC = bytes.fromhex(
    "01"  # type = from_succ
    "0020"  # successors: 32 bytes
    "21212121212121212121212121212121"  # S1
    "22222222222222222222222222222222"  # S2
)

#: Section 10.9: and tells its successor its predecessors.
LEAVE_FROM_PRED = bytes.fromhex(
    "02"  # type = from_pred
    "0010"  # predecessors: 16 bytes
    "11111111111111111111111111111111"  # P1
)

#: Section 10.8: just the next hop's Node-ID, no length.
ROUTE_QUERY_ANS = bytes.fromhex("21212121212121212121212121212121")  # next_peer = S1


@pytest.mark.parametrize(
    ("update", "data"),
    [
        (ChordUpdate(3600, ChordUpdateType.PEER_READY), UPDATE_PEER_READY),
        (ChordUpdate(3600, ChordUpdateType.NEIGHBORS, (P1, P2), (S1,)), UPDATE_NEIGHBORS),
        (ChordUpdate(123456, ChordUpdateType.FULL, (P1,), (S1, S2), (F1, F2)), UPDATE_FULL),
        (ChordUpdate(0, ChordUpdateType.NEIGHBORS), UPDATE_NEIGHBORS_EMPTY),
    ],
    ids=["peer_ready", "neighbors", "full", "neighbors-empty"],
)
def test_chord_update_of_each_type_is_byte_exact_section_10_7(
    update: ChordUpdate, data: bytes
) -> None:
    assert update.encode() == data
    decoded = ChordUpdate.decode(data)
    assert decoded == update
    assert decoded.type is update.type


def test_chord_update_is_the_whole_update_req_body_section_10_7() -> None:
    update = ChordUpdate(3600, ChordUpdateType.NEIGHBORS, (P1, P2), (S1,))
    req = UpdateReq(update.encode())
    assert req.encode() == UPDATE_NEIGHBORS
    assert ChordUpdate.decode(UpdateReq.decode(UPDATE_NEIGHBORS).overlay_specific_data) == update


def test_chord_update_with_20_byte_node_ids_section_6_3_1_1() -> None:
    p, s_ = b"\xaa" * 20, b"\xbb" * 20
    update = ChordUpdate(7, ChordUpdateType.NEIGHBORS, (p,), (s_,))
    data = update.encode()
    assert data == bytes.fromhex(
        "00000007"  # uptime = 7 s
        "02"  # type = neighbors
        "0014"  # predecessors: 20 bytes
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"  # one 20-byte Node-ID
        "0014"  # successors: 20 bytes
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"  # one 20-byte Node-ID
    )
    assert ChordUpdate.decode(data, node_id_length=20) == update
    with pytest.raises(DecodeError) as info:
        ChordUpdate.decode(data)  # 20 bytes are not whole 16-byte Node-IDs
    assert info.value.path == "ChordUpdate.predecessors"


@pytest.mark.parametrize(
    ("leave", "data"),
    [
        (ChordLeaveData.from_succ((S1, S2)), LEAVE_FROM_SUCC),
        (ChordLeaveData.from_pred((P1,)), LEAVE_FROM_PRED),
    ],
    ids=["from_succ", "from_pred"],
)
def test_chord_leave_data_is_byte_exact_section_10_9(leave: ChordLeaveData, data: bytes) -> None:
    assert leave.encode() == data
    assert ChordLeaveData.decode(data) == leave


def test_chord_leave_data_names_its_list_by_type_section_10_9() -> None:
    succ = ChordLeaveData.decode(LEAVE_FROM_SUCC)
    assert succ.type is ChordLeaveType.FROM_SUCC
    assert (succ.successors, succ.predecessors) == ((S1, S2), ())
    pred = ChordLeaveData.decode(LEAVE_FROM_PRED)
    assert (pred.successors, pred.predecessors) == ((), (P1,))


def test_chord_leave_data_travels_in_leave_req_section_10_9() -> None:
    req = LeaveReq(ME, ChordLeaveData.from_pred((P1,)).encode())
    data = req.encode()
    assert data == ME + len(LEAVE_FROM_PRED).to_bytes(2, "big") + LEAVE_FROM_PRED
    decoded = LeaveReq.decode(data)
    assert ChordLeaveData.decode(decoded.overlay_specific_data).predecessors == (P1,)


def test_chord_leave_data_with_20_byte_node_ids() -> None:
    leave = ChordLeaveData.from_succ((b"\xcc" * 20, b"\xdd" * 20))
    data = leave.encode()
    assert data == bytes.fromhex(
        "01"  # type = from_succ
        "0028"  # successors: 40 bytes
        "cccccccccccccccccccccccccccccccccccccccc"  # first 20-byte Node-ID
        "dddddddddddddddddddddddddddddddddddddddd"  # second
    )
    assert ChordLeaveData.decode(data, node_id_length=20) == leave
    with pytest.raises(DecodeError):
        ChordLeaveData.decode(data)


def test_chord_route_query_ans_is_the_next_peer_section_10_8() -> None:
    ans = ChordRouteQueryAns(S1)
    assert ans.encode() == ROUTE_QUERY_ANS
    assert RouteQueryAns(ans.encode()).encode() == ROUTE_QUERY_ANS  # the whole body
    body = RouteQueryAns.decode(ROUTE_QUERY_ANS).overlay_specific_data
    assert ChordRouteQueryAns.decode(body) == ans
    long_id = bytes(range(20))
    assert ChordRouteQueryAns.decode(long_id, node_id_length=20) == ChordRouteQueryAns(long_id)
    with pytest.raises(DecodeError, match="trailing"):
        ChordRouteQueryAns.decode(long_id)


# -- invalid input -----------------------------------------------------------


def _expect(decode: Callable[[bytes], object], data: bytes, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.path == path, str(info.value)


@pytest.mark.parametrize("update_type", [0, 4, 255])
def test_unknown_chord_update_type_is_a_parse_error_section_6_3_1_1(update_type: int) -> None:
    data = UPDATE_PEER_READY[:4] + bytes((update_type,))
    _expect(ChordUpdate.decode, data, "ChordUpdate.type")


@pytest.mark.parametrize("leave_type", [0, 3, 255])
def test_unknown_chord_leave_type_is_a_parse_error_section_6_3_1_1(leave_type: int) -> None:
    _expect(
        ChordLeaveData.decode, bytes((leave_type,)) + LEAVE_FROM_SUCC[1:], "ChordLeaveData.type"
    )


def test_node_id_list_must_hold_whole_node_ids() -> None:
    data = UPDATE_NEIGHBORS_EMPTY[:-2] + b"\x00\x11" + b"\x00" * 17
    _expect(ChordUpdate.decode, data, "ChordUpdate.successors")


def test_node_id_list_beyond_the_body_is_rejected() -> None:
    _expect(ChordUpdate.decode, UPDATE_FULL[:-1], "ChordUpdate.fingers")
    _expect(ChordLeaveData.decode, LEAVE_FROM_PRED[:-1], "ChordLeaveData.predecessors")


def test_missing_lists_are_rejected() -> None:
    _expect(ChordUpdate.decode, UPDATE_NEIGHBORS_EMPTY[:7], "ChordUpdate.successors")
    _expect(ChordUpdate.decode, UPDATE_NEIGHBORS_EMPTY[:6], "ChordUpdate.predecessors")


def test_peer_ready_carries_nothing_else_section_10_7() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        ChordUpdate.decode(UPDATE_PEER_READY + b"\x00\x00")


def test_neighbors_update_has_no_finger_list_section_10_7() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        ChordUpdate.decode(UPDATE_NEIGHBORS_EMPTY + b"\x00\x00")


@pytest.mark.parametrize(
    "bad",
    [
        lambda: ChordUpdate(0, ChordUpdateType.PEER_READY, (P1,)),
        lambda: ChordUpdate(0, ChordUpdateType.PEER_READY, fingers=(F1,)),
        lambda: ChordUpdate(0, ChordUpdateType.NEIGHBORS, fingers=(F1,)),
        lambda: ChordUpdate(1 << 32, ChordUpdateType.PEER_READY),
        lambda: ChordUpdate(-1, ChordUpdateType.PEER_READY),
        lambda: ChordUpdate(0, 4),  # type: ignore[arg-type]
        lambda: ChordUpdate(0, ChordUpdateType.NEIGHBORS, (P1[:15],)),
        lambda: ChordUpdate(0, ChordUpdateType.FULL, (P1,), (S1,), (b"\x00" * 20,)),
        lambda: ChordUpdate(0, ChordUpdateType.NEIGHBORS, (P1,) * 4096),
        lambda: ChordLeaveData(0, (P1,)),  # type: ignore[arg-type]
        lambda: ChordLeaveData.from_succ((S1, b"\x00" * 17)),
        lambda: ChordRouteQueryAns(b"\x00" * 21),
    ],
)
def test_values_that_do_not_fit_raise_encode_error(bad: Callable[[], object]) -> None:
    with pytest.raises(EncodeError):
        bad().encode()  # type: ignore[attr-defined]


# -- round trips -------------------------------------------------------------


@given(s.node_id_lengths.flatmap(lambda n: st.tuples(st.just(n), s.chord_updates(n))))
def test_chord_update_round_trips_for_every_node_id_length(case: tuple[int, ChordUpdate]) -> None:
    length, update = case
    assert ChordUpdate.decode(update.encode(), node_id_length=length) == update


@given(s.chord_updates())
def test_chord_update_round_trips_with_the_default_length(update: ChordUpdate) -> None:
    assert ChordUpdate.decode(update.encode()) == update


@given(s.node_id_lengths.flatmap(lambda n: st.tuples(st.just(n), s.chord_leave_datas(n))))
def test_chord_leave_data_round_trips(case: tuple[int, ChordLeaveData]) -> None:
    length, leave = case
    assert ChordLeaveData.decode(leave.encode(), node_id_length=length) == leave


@given(s.node_id_lengths.flatmap(lambda n: st.tuples(st.just(n), s.chord_route_query_anss(n))))
def test_chord_route_query_ans_round_trips(case: tuple[int, ChordRouteQueryAns]) -> None:
    length, ans = case
    assert ChordRouteQueryAns.decode(ans.encode(), node_id_length=length) == ans


# -- fuzzing -----------------------------------------------------------------

_UPDATE20 = ChordUpdate(9, ChordUpdateType.FULL, (b"\xaa" * 20,), (), (b"\xbb" * 20,) * 2)
_FUZZ: list[tuple[str, Callable[[bytes], object], list[bytes]]] = [
    (
        "ChordUpdate",
        ChordUpdate.decode,
        [UPDATE_PEER_READY, UPDATE_NEIGHBORS, UPDATE_FULL, UPDATE_NEIGHBORS_EMPTY],
    ),
    ("ChordUpdate20", lambda d: ChordUpdate.decode(d, node_id_length=20), [_UPDATE20.encode()]),
    ("ChordLeaveData", ChordLeaveData.decode, [LEAVE_FROM_SUCC, LEAVE_FROM_PRED]),
    (
        "ChordLeaveData20",
        lambda d: ChordLeaveData.decode(d, node_id_length=20),
        [ChordLeaveData.from_pred((b"\xcc" * 20,)).encode()],
    ),
    ("ChordRouteQueryAns", ChordRouteQueryAns.decode, [ROUTE_QUERY_ANS]),
    (
        "ChordRouteQueryAns20",
        lambda d: ChordRouteQueryAns.decode(d, node_id_length=20),
        [bytes(range(20))],
    ),
]


@pytest.mark.parametrize(("decode", "seeds"), [f[1:] for f in _FUZZ], ids=[f[0] for f in _FUZZ])
def test_decoder_survives_fuzzing(decode: Callable[[bytes], object], seeds: list[bytes]) -> None:
    assert fuzz_decoder(decode, seeds) > 0
