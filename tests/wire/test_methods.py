"""Topology, Probe, Ping and ConfigUpdate bodies (RFC 6940 sections 6.4.2,
6.5.3, 6.5.4, 14.8, 14.13)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reload.wire.attach import AppAttachAns, AppAttachReq, AttachAns, AttachReq
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.header import Destination, DestinationType
from reload.wire.methods import (
    METHOD_BODIES,
    NODE_ID_BODIES,
    ConfigUpdateAns,
    ConfigUpdateReq,
    ConfigUpdateType,
    JoinAns,
    JoinReq,
    LeaveAns,
    LeaveReq,
    PingAns,
    PingReq,
    ProbeAns,
    ProbeInformation,
    ProbeInformationType,
    ProbeReq,
    RouteQueryAns,
    RouteQueryReq,
    UpdateAns,
    UpdateReq,
    check_node_id_length,
)
from tests.wire import strategies_methods as s
from tests.wire.fuzzing import fuzz_decoder

NODE16 = bytes(range(16))
NODE20 = bytes(range(0x20, 0x34))

# -- worked examples, built by hand from the RFC text ------------------------

#: Section 6.5.3.2: response_id, then the time in milliseconds since the
#: epoch like storage_time (2014-01-16T00:00:00Z).
PING_ANS = bytes.fromhex(
    "0123456789abcdef"  # response_id
    "000001439858e800"  # time = 1389830400000
)

#: Section 6.5.3.1: four bytes of padding.
PING_REQ = bytes.fromhex("0004 00000000")  # padding: 4 zero bytes

#: Section 6.4.2.5.1: ask for uptime, then num_resources.
PROBE_REQ = bytes.fromhex(
    "02"  # requested_info: 2 bytes
    "03"  # uptime
    "02"  # num_resources
)

#: Section 6.4.2.5.2: a quarter of the overlay and an hour of uptime.
PROBE_ANS = bytes.fromhex(
    "000c"  # probe_info: 12 bytes
    "01 04 0ee6b280"  # responsible_set, 4 bytes, 250,000,000 ppb
    "03 04 00000e10"  # uptime, 4 bytes, 3600 s
)

#: Section 6.5.4.1: a configuration document pushed whole.
CONFIG_UPDATE_CONFIG = bytes.fromhex(
    "01"  # type = config
    "0000000d"  # length of the rest: 13
    "00000a"  # config_data: 10 bytes
    "3c6f7665726c61792f3e"  # "<overlay/>"
)

#: Section 6.5.4.1: two kind-block productions.
CONFIG_UPDATE_KINDS = bytes.fromhex(
    "02"  # type = kind
    "00000012"  # length of the rest: 18
    "00000f"  # kinds: 15 bytes
    "0007 3c6b696e642f3e"  # KindDescription "<kind/>"
    "0004 3c6b2f3e"  # KindDescription "<k/>"
)

#: Section 6.4.2.1: the minimal JoinReq of CHORD-RELOAD (16-byte Node-ID).
JOIN_REQ_16 = bytes.fromhex(
    "000102030405060708090a0b0c0d0e0f"  # joining_peer_id
    "0000"  # overlay_specific_data: empty
)

#: A JoinReq in an overlay configured with 20-byte Node-IDs (section 11.1).
JOIN_REQ_20 = bytes.fromhex(
    "202122232425262728292a2b2c2d2e2f30313233"  # joining_peer_id
    "0002 6162"  # overlay_specific_data = "ab"
)

#: Section 6.4.2.4.1: where would you route Node-ID NODE16?  And update me.
ROUTE_QUERY_REQ_NODE = bytes.fromhex(
    "01"  # send_update = True
    "01 10"  # destination: node, 16 bytes
    "000102030405060708090a0b0c0d0e0f"  # the Node-ID
    "0000"  # overlay_specific_data: empty (CHORD-RELOAD, section 10.8)
)

#: The same for a Resource-ID, which carries its own length (section 6.3.2.2).
ROUTE_QUERY_REQ_RESOURCE = bytes.fromhex(
    "00"  # send_update = False
    "02 05"  # destination: resource, 5 bytes
    "04 aabbccdd"  # ResourceId: 4 bytes
    "0000"  # overlay_specific_data: empty
)


def test_ping_ans_is_byte_exact_section_6_5_3_2() -> None:
    ans = PingAns(response_id=0x0123456789ABCDEF, time=1389830400000)
    assert ans.encode() == PING_ANS
    assert PingAns.decode(PING_ANS) == ans


def test_ping_req_carries_padding_section_6_5_3_1() -> None:
    assert PingReq(b"\x00" * 4).encode() == PING_REQ
    assert PingReq.decode(PING_REQ) == PingReq(b"\x00" * 4)
    assert PingReq().encode() == b"\x00\x00"


def test_probe_req_lists_types_in_order_section_6_4_2_5_1() -> None:
    req = ProbeReq((ProbeInformationType.UPTIME, ProbeInformationType.NUM_RESOURCES))
    assert req.encode() == PROBE_REQ
    decoded = ProbeReq.decode(PROBE_REQ)
    assert decoded == req
    assert decoded.requested_info[0] == ProbeInformationType.UPTIME


def test_probe_ans_is_byte_exact_section_6_4_2_5_2() -> None:
    ans = ProbeAns(
        (
            ProbeInformation(ProbeInformationType.RESPONSIBLE_SET, 250_000_000),
            ProbeInformation(ProbeInformationType.UPTIME, 3600),
        )
    )
    assert ans.encode() == PROBE_ANS
    assert ProbeAns.decode(PROBE_ANS) == ans


def test_config_update_req_config_is_byte_exact_section_6_5_4_1() -> None:
    req = ConfigUpdateReq.for_config(b"<overlay/>")
    assert req.encode() == CONFIG_UPDATE_CONFIG
    decoded = ConfigUpdateReq.decode(CONFIG_UPDATE_CONFIG)
    assert decoded == req
    assert decoded.type == ConfigUpdateType.CONFIG


def test_config_update_req_kinds_is_byte_exact_section_6_5_4_1() -> None:
    req = ConfigUpdateReq.for_kinds((b"<kind/>", b"<k/>"))
    assert req.encode() == CONFIG_UPDATE_KINDS
    assert ConfigUpdateReq.decode(CONFIG_UPDATE_KINDS) == req


def test_empty_answers_are_empty_sections_6_4_2_2_and_6_5_4_2() -> None:
    for cls in (LeaveAns, ConfigUpdateAns):
        assert cls().encode() == b""
        assert cls.decode(b"") == cls()
        with pytest.raises(DecodeError, match="trailing"):
            cls.decode(b"\x00")


def test_join_req_with_16_byte_node_id_section_6_4_2_1() -> None:
    req = JoinReq(NODE16)
    assert req.encode() == JOIN_REQ_16
    assert JoinReq.decode(JOIN_REQ_16) == req


def test_join_req_with_20_byte_node_id_needs_the_configured_length_section_6_3_1_1() -> None:
    req = JoinReq(NODE20, b"ab")
    assert req.encode() == JOIN_REQ_20
    assert JoinReq.decode(JOIN_REQ_20, node_id_length=20) == req
    with pytest.raises(DecodeError):
        JoinReq.decode(JOIN_REQ_20)  # read as a 16-byte Node-ID it does not parse


def test_leave_req_reads_its_node_id_with_the_configured_length_section_6_4_2_2() -> None:
    for node_id in (NODE16, NODE20):
        req = LeaveReq(node_id, b"\x01\x00\x00")
        data = req.encode()
        assert data == node_id + b"\x00\x03\x01\x00\x00"
        assert LeaveReq.decode(data, node_id_length=len(node_id)) == req


def test_join_ans_carries_opaque_overlay_data_section_6_4_2_1() -> None:
    assert JoinAns(b"xy").encode() == b"\x00\x02xy"
    assert JoinAns.decode(b"\x00\x00") == JoinAns()


def test_route_query_req_to_a_node_is_byte_exact_section_6_4_2_4_1() -> None:
    req = RouteQueryReq(True, Destination.node(NODE16))
    assert req.encode() == ROUTE_QUERY_REQ_NODE
    assert RouteQueryReq.decode(ROUTE_QUERY_REQ_NODE) == req


def test_route_query_req_to_a_resource_is_byte_exact_section_6_4_2_4_1() -> None:
    req = RouteQueryReq(False, Destination.resource(bytes.fromhex("aabbccdd")))
    assert req.encode() == ROUTE_QUERY_REQ_RESOURCE
    decoded = RouteQueryReq.decode(ROUTE_QUERY_REQ_RESOURCE)
    assert decoded == req
    assert decoded.destination.type == DestinationType.RESOURCE


@pytest.mark.parametrize("cls", [UpdateReq, UpdateAns, RouteQueryAns])
def test_overlay_specific_bodies_are_kept_whole_sections_6_4_2_3_and_6_4_2_4_2(
    cls: type[UpdateReq] | type[UpdateAns] | type[RouteQueryAns],
) -> None:
    body = b"\x00\x00\x0e\x10\x01"  # e.g. a CHORD-RELOAD peer_ready Update
    assert cls(body).encode() == body  # no length prefix of its own
    assert cls.decode(body) == cls(body)
    assert cls.decode(b"") == cls()


def test_message_codes_match_the_registry_section_14_8() -> None:
    assert {code: cls.__name__ for code, cls in METHOD_BODIES.items()} == {
        0x01: "ProbeReq",
        0x02: "ProbeAns",
        0x03: "AttachReq",
        0x04: "AttachAns",
        0x0F: "JoinReq",
        0x10: "JoinAns",
        0x11: "LeaveReq",
        0x12: "LeaveAns",
        0x13: "UpdateReq",
        0x14: "UpdateAns",
        0x15: "RouteQueryReq",
        0x16: "RouteQueryAns",
        0x17: "PingReq",
        0x18: "PingAns",
        0x1D: "AppAttachReq",
        0x1E: "AppAttachAns",
        0x21: "ConfigUpdateReq",
        0x22: "ConfigUpdateAns",
    }
    assert METHOD_BODIES[0x03] is AttachReq and METHOD_BODIES[0x1E] is AppAttachAns
    assert {JoinReq, LeaveReq} == NODE_ID_BODIES


def test_probe_information_types_match_the_registry_section_14_13() -> None:
    assert {t.name: t.value for t in ProbeInformationType} == {
        "RESPONSIBLE_SET": 1,
        "NUM_RESOURCES": 2,
        "UPTIME": 3,
        "EXP_PROBE": 4,
    }


# -- extensibility -----------------------------------------------------------


def test_unknown_probe_information_type_round_trips_raw_section_6_4_2_5_2() -> None:
    data = bytes.fromhex("0004 09 02 abcd")  # 4 bytes: type 9, length 2, value
    ans = ProbeAns.decode(data)
    assert ans == ProbeAns((ProbeInformation(9, b"\xab\xcd"),))
    assert ans.encode() == data


def test_unknown_probe_request_type_is_kept_for_the_responder_to_skip() -> None:
    assert ProbeReq.decode(b"\x02\x03\x63") == ProbeReq((3, 99))


def test_unknown_config_update_type_round_trips_raw_section_6_5_4_1() -> None:
    data = bytes.fromhex("07 00000002 abcd")  # type 7, length 2, raw
    req = ConfigUpdateReq.decode(data)
    assert req == ConfigUpdateReq(7, raw=b"\xab\xcd")
    assert req.encode() == data


# -- invalid input -----------------------------------------------------------


def _expect(decode: Callable[[bytes], object], data: bytes, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.path == path, str(info.value)


def test_probe_type_zero_is_invalid() -> None:
    _expect(ProbeReq.decode, b"\x02\x03\x00", "ProbeReq.requested_info[1]")
    _expect(ProbeAns.decode, bytes.fromhex("0002 00 00"), "ProbeAns.probe_info[0].type")


def test_known_probe_value_must_be_four_bytes_section_6_4_2_5_2() -> None:
    data = bytes.fromhex("0005 03 03 000e10")  # uptime in 3 bytes
    _expect(ProbeAns.decode, data, "ProbeAns.probe_info[0].length")


def test_probe_value_overrunning_the_list_is_rejected() -> None:
    data = bytes.fromhex("0004 09 05 abcd")  # value announces 5, has 2
    _expect(ProbeAns.decode, data, "ProbeAns.probe_info[0].value")


def test_config_update_length_must_match_its_contents_section_6_5_4_1() -> None:
    longer = CONFIG_UPDATE_CONFIG[:4] + b"\x0e" + CONFIG_UPDATE_CONFIG[5:] + b"\x00"
    _expect(ConfigUpdateReq.decode, longer, "ConfigUpdateReq.length")
    beyond = CONFIG_UPDATE_CONFIG[:4] + b"\x0e" + CONFIG_UPDATE_CONFIG[5:]
    _expect(ConfigUpdateReq.decode, beyond, "ConfigUpdateReq.length")
    shorter = CONFIG_UPDATE_CONFIG[:4] + b"\x0c" + CONFIG_UPDATE_CONFIG[5:]
    _expect(ConfigUpdateReq.decode, shorter, "ConfigUpdateReq.config_data")
    kinds = CONFIG_UPDATE_KINDS[:4] + b"\x13" + CONFIG_UPDATE_KINDS[5:] + b"\x00"
    _expect(ConfigUpdateReq.decode, kinds, "ConfigUpdateReq.length")


def test_kind_description_overrunning_the_list_is_rejected() -> None:
    data = CONFIG_UPDATE_KINDS[:17] + b"\x05" + CONFIG_UPDATE_KINDS[18:]
    _expect(ConfigUpdateReq.decode, data, "ConfigUpdateReq.kinds[1]")


def test_config_update_type_zero_is_invalid() -> None:
    _expect(ConfigUpdateReq.decode, b"\x00\x00\x00\x00\x00", "ConfigUpdateReq.type")


def test_route_query_send_update_must_be_a_boolean() -> None:
    _expect(RouteQueryReq.decode, b"\x02" + ROUTE_QUERY_REQ_NODE[1:], "RouteQueryReq.send_update")


def test_truncated_ping_ans_names_the_missing_field() -> None:
    _expect(PingAns.decode, PING_ANS[:12], "PingAns.time")
    _expect(PingAns.decode, PING_ANS[:4], "PingAns.response_id")


def test_truncated_node_id_is_rejected() -> None:
    _expect(JoinReq.decode, NODE16[:15], "JoinReq.joining_peer_id")
    _expect(
        lambda d: LeaveReq.decode(d, node_id_length=20),
        NODE16 + b"\0\0",
        "LeaveReq.leaving_peer_id",
    )


@pytest.mark.parametrize("length", [0, 15, 21, 32])
def test_node_id_length_outside_16_to_20_is_a_caller_error_section_6_3_1_1(length: int) -> None:
    with pytest.raises(ValueError, match="NodeIdLength"):
        JoinReq.decode(JOIN_REQ_16, node_id_length=length)
    with pytest.raises(ValueError, match="NodeIdLength"):
        check_node_id_length(length)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: JoinReq(NODE16[:15]),
        lambda: JoinReq(NODE20 + b"\x00"),
        lambda: LeaveReq(NODE16, b"x" * 0x10000),
        lambda: ProbeReq((0,)),
        lambda: ProbeReq((256,)),
        lambda: ProbeInformation(0, b""),
        lambda: ProbeInformation(ProbeInformationType.UPTIME, 1 << 32),
        lambda: ProbeInformation(ProbeInformationType.UPTIME, b"\x00\x00\x00\x01"),
        lambda: ProbeInformation(9, 5),
        lambda: ProbeInformation(9, b"x" * 256),
        lambda: PingAns(-1, 0),
        lambda: PingAns(0, 1 << 64),
        lambda: PingReq(b"x" * 0x10000),
        lambda: ConfigUpdateReq(0),
        lambda: ConfigUpdateReq(256, raw=b""),
        lambda: ConfigUpdateReq(ConfigUpdateType.CONFIG, kinds=(b"k",)),
        lambda: ConfigUpdateReq(ConfigUpdateType.KIND, config_data=b"c"),
        lambda: ConfigUpdateReq(7, config_data=b"c"),
        lambda: ConfigUpdateReq.for_config(b"x" * (1 << 24)),
        lambda: ConfigUpdateReq.for_kinds((b"x" * 0x10000,)),
        lambda: RouteQueryReq(False, Destination(0, b"")),
    ],
)
def test_values_that_do_not_fit_raise_encode_error(bad: Callable[[], object]) -> None:
    with pytest.raises(EncodeError):
        bad().encode()  # type: ignore[attr-defined]


# -- round trips -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "strategy"),
    [
        (ProbeReq, s.probe_reqs),
        (ProbeAns, s.probe_anss),
        (PingReq, s.ping_reqs),
        (PingAns, s.ping_anss),
        (ConfigUpdateReq, s.config_update_reqs),
        (ConfigUpdateAns, s.config_update_anss),
        (JoinAns, s.join_anss),
        (LeaveAns, s.leave_anss),
        (UpdateReq, s.update_reqs),
        (UpdateAns, s.update_anss),
        (RouteQueryReq, s.route_query_reqs),
        (RouteQueryAns, s.route_query_anss),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_body_round_trips(cls: type[PingReq], strategy: st.SearchStrategy[PingReq]) -> None:
    @given(strategy)
    def check(value: PingReq) -> None:
        assert cls.decode(value.encode()) == value

    check()


@given(s.join_reqs())
def test_join_req_round_trips_for_every_node_id_length(value: JoinReq) -> None:
    length = len(value.joining_peer_id)
    assert JoinReq.decode(value.encode(), node_id_length=length) == value


@given(s.leave_reqs())
def test_leave_req_round_trips_for_every_node_id_length(value: LeaveReq) -> None:
    length = len(value.leaving_peer_id)
    assert LeaveReq.decode(value.encode(), node_id_length=length) == value


@given(s.join_reqs(length=16))
def test_join_req_decodes_with_the_default_length(value: JoinReq) -> None:
    assert JoinReq.decode(value.encode()) == value


# -- fuzzing -----------------------------------------------------------------

_FUZZ: list[tuple[str, Callable[[bytes], object], list[bytes]]] = [
    ("ProbeReq", ProbeReq.decode, [PROBE_REQ, b"\x00"]),
    ("ProbeAns", ProbeAns.decode, [PROBE_ANS, bytes.fromhex("0004 09 02 abcd")]),
    ("PingReq", PingReq.decode, [PING_REQ]),
    ("PingAns", PingAns.decode, [PING_ANS]),
    ("ConfigUpdateReq", ConfigUpdateReq.decode, [CONFIG_UPDATE_CONFIG, CONFIG_UPDATE_KINDS]),
    ("ConfigUpdateAns", ConfigUpdateAns.decode, [b""]),
    ("JoinReq16", JoinReq.decode, [JOIN_REQ_16, NODE16 + b"\x00\x02ab"]),
    ("JoinReq20", lambda d: JoinReq.decode(d, node_id_length=20), [JOIN_REQ_20]),
    ("JoinAns", JoinAns.decode, [b"\x00\x02ab"]),
    ("LeaveReq16", LeaveReq.decode, [NODE16 + b"\x00\x03\x01\x00\x00"]),
    ("LeaveReq20", lambda d: LeaveReq.decode(d, node_id_length=20), [NODE20 + b"\x00\x00"]),
    ("LeaveAns", LeaveAns.decode, [b""]),
    ("UpdateReq", UpdateReq.decode, [b"\x00\x00\x0e\x10\x01"]),
    ("UpdateAns", UpdateAns.decode, [b""]),
    ("RouteQueryReq", RouteQueryReq.decode, [ROUTE_QUERY_REQ_NODE, ROUTE_QUERY_REQ_RESOURCE]),
    ("RouteQueryAns", RouteQueryAns.decode, [NODE16]),
]


@pytest.mark.parametrize(("decode", "seeds"), [f[1:] for f in _FUZZ], ids=[f[0] for f in _FUZZ])
def test_decoder_survives_fuzzing(decode: Callable[[bytes], object], seeds: list[bytes]) -> None:
    assert fuzz_decoder(decode, seeds) > 0


def test_every_registered_body_is_fuzzed() -> None:
    fuzzed = {name.rstrip("0123456789") for name, _, _ in _FUZZ}
    attach = {AttachReq, AttachAns, AppAttachReq, AppAttachAns}  # in test_attach.py
    assert {cls.__name__ for cls in METHOD_BODIES.values() if cls not in attach} == fuzzed
