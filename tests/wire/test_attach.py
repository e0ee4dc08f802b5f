"""Attach, AppAttach and ICE candidates (RFC 6940 sections 6.3.1.1, 6.5.1,
6.5.2, 14.10)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given

from reload.wire import COMPILED
from reload.wire.attach import (
    NO_ICE_LINK_TYPES,
    AddressType,
    AppAttachAns,
    AppAttachReq,
    AttachAns,
    AttachReq,
    CandType,
    IceCandidate,
    IceExtension,
    IpAddressPort,
    OverlayLinkType,
)
from reload.wire.errors import DecodeError, EncodeError
from tests.wire import strategies_methods as s
from tests.wire.fuzzing import fuzz_decoder

# -- worked examples, built by hand from the RFC text ------------------------

#: Section 6.3.1.1 gives this exact example: 192.0.2.1 port 6084.
RFC_IPV4_EXAMPLE = bytes.fromhex(
    "01"  # type    = IPv4
    "06"  # length  = 6
    "c0000201"  # address = 192.0.2.1
    "17c4"  # port    = 6084
)

#: An Attach request offering one IPv4 host candidate over TLS/TCP with
#: framing header, No-ICE (section 6.6.5), and asking for an Update.
ATTACH_REQ_NO_ICE = bytes.fromhex(
    "04 61626364"  # ufrag = "abcd"
    "02 7077"  # password = "pw"
    "07 70617373697665"  # role = "passive" (offerer, section 6.5.1.1)
    "0012"  # candidates: 18 bytes
    "01 06 c0000201 17c4"  # addr_port: IPv4, 6 bytes, 192.0.2.1, port 6084
    "04"  # overlay_link = TLS-TCP-FH-NO-ICE (section 14.10)
    "01 31"  # foundation = "1"
    "7effffff"  # priority = 126<<24 | 65535<<8 | 255 (host, RFC 5245 4.1.2.1)
    "01"  # type = host: no rel_addr_port
    "0000"  # extensions: none
    "01"  # send_update = True
)

#: A server-reflexive IPv6 candidate over DTLS/UDP with SR (ICE), with its
#: related address and one ICE extension RELOAD does not define.
IPV6_SRFLX_CANDIDATE = bytes.fromhex(
    "02 12"  # addr_port: IPv6, 18 bytes
    "20010db8 00000000 00000000 00000001 17c4"  # 2001:db8::1, port 6084
    "01"  # overlay_link = DTLS-UDP-SR
    "01 32"  # foundation = "2"
    "64ffffff"  # priority = 100<<24 | 65535<<8 | 255 (srflx)
    "02"  # type = srflx: rel_addr_port follows
    "02 12"  # rel_addr_port: IPv6, 18 bytes
    "20010db8 00000000 00000000 00000002 c350"  # 2001:db8::2, port 50000
    "000b"  # extensions: 11 bytes
    "0005 782d657874"  # name = "x-ext"
    "0002 0102"  # value = 01 02
)

#: An AppAttach request for SIP (Application-ID 5060, section 14.5).
APP_ATTACH_REQ_SIP = bytes.fromhex(
    "01 75"  # ufrag = "u"
    "01 70"  # password = "p"
    "13c4"  # application = 5060
    "07 70617373697665"  # role = "passive"
    "0012"  # candidates: 18 bytes
    "01 06 c0000201 13c4"  # addr_port: IPv4 192.0.2.1, port 5060
    "04"  # overlay_link = TLS-TCP-FH-NO-ICE
    "01 31"  # foundation = "1"
    "7effffff"  # priority
    "01"  # type = host
    "0000"  # extensions: none
)

HOST_V4 = IceCandidate(
    addr_port=IpAddressPort.of("192.0.2.1", 6084),
    overlay_link=OverlayLinkType.TLS_TCP_FH_NO_ICE,
    foundation=b"1",
    priority=0x7EFFFFFF,
    type=CandType.HOST,
)

SRFLX_V6 = IceCandidate(
    addr_port=IpAddressPort.of("2001:db8::1", 6084),
    overlay_link=OverlayLinkType.DTLS_UDP_SR,
    foundation=b"2",
    priority=0x64FFFFFF,
    type=CandType.SRFLX,
    rel_addr_port=IpAddressPort.of(IPv6Address("2001:db8::2"), 50000),
    extensions=(IceExtension(b"x-ext", b"\x01\x02"),),
)


def test_ip_address_port_matches_the_rfc_example_section_6_3_1_1() -> None:
    value = IpAddressPort.of("192.0.2.1", 6084)
    assert value.encode() == RFC_IPV4_EXAMPLE
    decoded = IpAddressPort.decode(RFC_IPV4_EXAMPLE)
    assert decoded == value
    assert decoded.type == AddressType.IPV4_ADDRESS
    assert decoded.ip == IPv4Address("192.0.2.1")


def test_attach_req_with_ipv4_host_candidate_no_ice_is_byte_exact_section_6_5_1_1() -> None:
    req = AttachReq(b"abcd", b"pw", b"passive", (HOST_V4,), send_update=True)
    assert req.encode() == ATTACH_REQ_NO_ICE
    assert AttachReq.decode(ATTACH_REQ_NO_ICE) == req
    assert HOST_V4.overlay_link in NO_ICE_LINK_TYPES


def test_ipv6_srflx_candidate_with_rel_addr_is_byte_exact_section_6_5_1_1() -> None:
    assert SRFLX_V6.encode() == IPV6_SRFLX_CANDIDATE
    decoded = IceCandidate.decode(IPV6_SRFLX_CANDIDATE)
    assert decoded == SRFLX_V6
    assert decoded.rel_addr_port is not None
    assert decoded.rel_addr_port.ip == IPv6Address("2001:db8::2")
    assert decoded.overlay_link not in NO_ICE_LINK_TYPES


def test_attach_ans_carries_the_same_layout_with_its_own_code_section_6_5_1_2() -> None:
    ans = AttachAns(b"efgh", b"secret", b"active", (SRFLX_V6,), send_update=False)
    data = ans.encode()
    assert data == (
        b"\x04efgh\x06secret\x06active"
        + len(IPV6_SRFLX_CANDIDATE).to_bytes(2, "big")
        + IPV6_SRFLX_CANDIDATE
        + b"\x00"
    )
    assert AttachAns.decode(data) == ans
    # Same fields, other message: a request is not equal to an answer.
    as_request: object = AttachReq.decode(data)
    assert as_request != ans


def test_app_attach_req_for_sip_is_byte_exact_section_6_5_2_1() -> None:
    cand = IceCandidate(
        IpAddressPort.of("192.0.2.1", 5060),
        OverlayLinkType.TLS_TCP_FH_NO_ICE,
        b"1",
        0x7EFFFFFF,
        CandType.HOST,
    )
    req = AppAttachReq(b"u", b"p", 5060, b"passive", (cand,))
    assert req.encode() == APP_ATTACH_REQ_SIP
    assert AppAttachReq.decode(APP_ATTACH_REQ_SIP) == req
    assert AppAttachAns.decode(APP_ATTACH_REQ_SIP) == AppAttachAns(
        b"u", b"p", 5060, b"passive", (cand,)
    )


def test_message_codes_match_the_registry_section_14_8() -> None:
    assert (AttachReq.CODE, AttachAns.CODE) == (0x03, 0x04)
    assert (AppAttachReq.CODE, AppAttachAns.CODE) == (0x1D, 0x1E)


def test_overlay_link_types_match_the_registry_section_14_10() -> None:
    assert {t.name: t.value for t in OverlayLinkType} == {
        "DTLS_UDP_SR": 1,
        "DTLS_UDP_SR_NO_ICE": 3,
        "TLS_TCP_FH_NO_ICE": 4,
        "EXP_LINK": 5,
    }
    assert {3, 4} == NO_ICE_LINK_TYPES


# -- extensibility -----------------------------------------------------------


def test_unknown_address_type_round_trips_raw_section_6_3_1_1() -> None:
    data = bytes.fromhex("07 03 aabbcc")  # type 7, length 3, raw address
    value = IpAddressPort.decode(data)
    assert value == IpAddressPort(7, b"\xaa\xbb\xcc")
    assert value.ip is None
    assert value.encode() == data


def test_unregistered_overlay_link_type_is_kept_section_14_10() -> None:
    data = bytearray(HOST_V4.encode())
    data[8] = 2  # overlay_link follows the 8-byte addr_port; 2 is unassigned
    decoded = IceCandidate.decode(bytes(data))
    assert decoded.overlay_link == 2
    assert decoded.encode() == bytes(data)


def test_peer_reflexive_candidate_carries_a_related_address() -> None:
    cand = IceCandidate(
        IpAddressPort.of("192.0.2.7", 1),
        OverlayLinkType.DTLS_UDP_SR,
        b"1",
        1,
        CandType.PRFLX,
        rel_addr_port=IpAddressPort.of("10.0.0.1", 2),
    )
    data = cand.encode()
    assert data[15] == 3  # the type byte, after addr_port, link, foundation, priority
    assert IceCandidate.decode(data) == cand


# -- invalid input -----------------------------------------------------------


def _with(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    out[offset] = value
    return bytes(out)


# Offsets inside ATTACH_REQ_NO_ICE: ufrag 0-4, password 5-7, role 8-15, list length
# 16-17, so the candidate starts at 18.
_CAND = 18


@pytest.mark.parametrize("cand_type", [0, 5, 255])
def test_unknown_candidate_type_is_a_parse_error_section_6_3_1_1(cand_type: int) -> None:
    data = _with(ATTACH_REQ_NO_ICE, _CAND + 15, cand_type)
    with pytest.raises(DecodeError) as info:
        AttachReq.decode(data)
    assert info.value.path == "AttachReq.candidates[0].type"


def test_invalid_overlay_link_type_zero_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        AttachReq.decode(_with(ATTACH_REQ_NO_ICE, _CAND + 8, 0))
    assert info.value.path == "AttachReq.candidates[0].overlay_link"


def test_ipv4_address_with_wrong_length_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        AttachReq.decode(_with(ATTACH_REQ_NO_ICE, _CAND + 1, 5))
    assert info.value.path == "AttachReq.candidates[0].addr_port.length"


def test_invalid_address_type_zero_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        IpAddressPort.decode(_with(RFC_IPV4_EXAMPLE, 0, 0))
    assert info.value.path == "IpAddressPort.type"


def test_ipv6_address_with_ipv4_length_is_rejected() -> None:
    with pytest.raises(DecodeError, match="18 bytes"):
        IpAddressPort.decode(_with(RFC_IPV4_EXAMPLE, 0, 2))


def test_send_update_must_be_a_boolean_section_6_3_1_1() -> None:
    with pytest.raises(DecodeError) as info:
        AttachReq.decode(ATTACH_REQ_NO_ICE[:-1] + b"\x02")
    assert info.value.path == "AttachReq.send_update"


def test_candidate_list_length_beyond_the_message_is_rejected() -> None:
    data = ATTACH_REQ_NO_ICE[: _CAND - 2] + b"\xff\xff" + ATTACH_REQ_NO_ICE[_CAND:]
    with pytest.raises(DecodeError) as info:
        AttachReq.decode(data)
    assert info.value.path == "AttachReq.candidates"


def test_candidate_overrunning_its_list_is_rejected() -> None:
    data = ATTACH_REQ_NO_ICE[: _CAND - 2] + b"\x00\x10" + ATTACH_REQ_NO_ICE[_CAND:]
    with pytest.raises(DecodeError):
        AttachReq.decode(data)


def test_extension_overrunning_its_list_is_rejected() -> None:
    # Extensions announce 11 bytes; claim the name is 6 long instead of 5.
    data = _with(IPV6_SRFLX_CANDIDATE, len(IPV6_SRFLX_CANDIDATE) - 10, 6)
    with pytest.raises(DecodeError) as info:
        IceCandidate.decode(data)
    assert info.value.path.startswith("IceCandidate.extensions[0]")


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        AttachReq.decode(ATTACH_REQ_NO_ICE + b"\x00")


@pytest.mark.parametrize(
    "bad",
    [
        lambda: IpAddressPort(AddressType.IPV4_ADDRESS, b"\x00" * 5, 1),
        lambda: IpAddressPort(AddressType.IPV6_ADDRESS, b"\x00" * 16, 70000),
        lambda: IpAddressPort(0, b""),
        lambda: IpAddressPort(9, b"", 80),
        lambda: IpAddressPort(9, b"x" * 256),
        lambda: replace(HOST_V4, priority=1 << 32),
        lambda: replace(HOST_V4, overlay_link=0),
        lambda: replace(HOST_V4, overlay_link=256),
        lambda: replace(HOST_V4, foundation=b"f" * 256),
        lambda: replace(HOST_V4, rel_addr_port=HOST_V4.addr_port),
        lambda: replace(HOST_V4, type=CandType.RELAY),
        lambda: AttachReq(b"u" * 256, b"", b""),
        lambda: AppAttachReq(b"", b"", 0x10000, b""),
        lambda: IceExtension(b"n" * 0x10000, b""),
    ],
)
def test_values_that_do_not_fit_raise_encode_error(bad: object) -> None:
    with pytest.raises(EncodeError):
        bad().encode()  # type: ignore[operator]


def test_a_candidate_type_that_is_not_a_cand_type_is_refused() -> None:
    """Pure Python refuses it when encoding; compiled, the field's
    annotation refuses it when the candidate is built."""
    with pytest.raises(TypeError if COMPILED else EncodeError):
        replace(HOST_V4, type=9).encode()  # type: ignore[arg-type]


# -- round trips -------------------------------------------------------------


@given(s.ip_address_ports)
def test_ip_address_port_round_trips(value: IpAddressPort) -> None:
    assert IpAddressPort.decode(value.encode()) == value


@given(s.ice_candidates())
def test_ice_candidate_round_trips(value: IceCandidate) -> None:
    assert IceCandidate.decode(value.encode()) == value


@given(s.attach_reqs)
def test_attach_req_round_trips(value: AttachReq) -> None:
    assert AttachReq.decode(value.encode()) == value


@given(s.attach_anss)
def test_attach_ans_round_trips(value: AttachAns) -> None:
    assert AttachAns.decode(value.encode()) == value


@given(s.app_attach_reqs)
def test_app_attach_req_round_trips(value: AppAttachReq) -> None:
    assert AppAttachReq.decode(value.encode()) == value


@given(s.app_attach_anss)
def test_app_attach_ans_round_trips(value: AppAttachAns) -> None:
    assert AppAttachAns.decode(value.encode()) == value


# -- fuzzing -----------------------------------------------------------------

_ATTACH_SEEDS = [
    ATTACH_REQ_NO_ICE,
    AttachReq(b"abcd", b"pw", b"passive", (HOST_V4, SRFLX_V6, HOST_V4)).encode(),
    AttachReq(b"", b"", b"", ()).encode(),
]
_CANDIDATE_SEEDS = [HOST_V4.encode(), IPV6_SRFLX_CANDIDATE]


@pytest.mark.parametrize(
    ("decode", "seeds"),
    [
        (AttachReq.decode, _ATTACH_SEEDS),
        (AttachAns.decode, _ATTACH_SEEDS),
        (AppAttachReq.decode, [APP_ATTACH_REQ_SIP]),
        (AppAttachAns.decode, [APP_ATTACH_REQ_SIP]),
        (IceCandidate.decode, _CANDIDATE_SEEDS),
        (IpAddressPort.decode, [RFC_IPV4_EXAMPLE, SRFLX_V6.addr_port.encode(), b"\x07\x01\x00"]),
        (IceExtension.decode, [b"\x00\x05x-ext\x00\x02\x01\x02"]),
    ],
    ids=[
        "AttachReq",
        "AttachAns",
        "AppAttachReq",
        "AppAttachAns",
        "IceCandidate",
        "IpAddressPort",
        "IceExtension",
    ],
)
def test_decoder_survives_fuzzing(decode: object, seeds: list[bytes]) -> None:
    decoded = fuzz_decoder(decode, seeds)  # type: ignore[arg-type]
    assert decoded > 0
