"""The TURN-SERVICE Kind (RFC 6940 section 9) and its TurnServer value:
the codec against the RFC's own IpAddressPort example (section 6.3.1.1),
bad input refused with a reason, round trips (Hypothesis), the address
rule of advertising, and the usage's options refused with one line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reload.api.names import nodeMultipleResourceName
from reload.interfaces import DataModel, IKind, IUsage
from reload.plugins import installedUsages
from usages.turn import turn
from usages.turnusage.addresses import isPublicAddress, whyNotPublic
from usages.turnusage.kind import TURN_SERVICE, TurnServer
from usages.turnusage.options import parseOptions


def test_the_kind_is_section_9s() -> None:
    assert IKind.providedBy(TURN_SERVICE) and IUsage.providedBy(turn)
    assert (TURN_SERVICE.name, TURN_SERVICE.kindId) == ("TURN-SERVICE", 0x2)
    assert TURN_SERVICE.dataModel is DataModel.SINGLE
    assert TURN_SERVICE.accessPolicy == "NODE-MULTIPLE"
    assert turn.kinds() == [TURN_SERVICE] and turn.name == "TURN"
    assert installedUsages()["TURN"] is turn


def test_the_rfc_example_address_encodes_as_section_6_3_1_1_shows() -> None:
    # Section 6.3.1.1: 192.0.2.1 port 6084 is 01 06 c0000201 17c4.
    value = TurnServer(3, "192.0.2.1", 6084).encode()
    assert value == bytes.fromhex("030106c000020117c4")
    assert TurnServer.decode(value) == TurnServer(3, "192.0.2.1", 6084)
    assert TURN_SERVICE.decode(value).address == ("192.0.2.1", 6084)


def test_ipv6_round_trips() -> None:
    value = TurnServer(20, "2001:db8::7", 3478).encode()
    assert value[:3] == bytes((20, 2, 18)) and len(value) == 21
    assert TurnServer.decode(value) == TurnServer(20, "2001:db8::7", 3478)


def test_an_unknown_address_type_is_kept_and_has_no_address() -> None:
    # "This structure can be extended" (section 6.3.1.1).
    value = bytes((1, 7, 3)) + b"abc"
    TURN_SERVICE.validate(value)
    decoded = TurnServer.decode(value)
    assert decoded.extension == (7, b"abc") and decoded.address is None
    assert decoded.encode() == value


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "0 bytes, at least 3"),
        (bytes.fromhex("0101"), "2 bytes, at least 3"),
        (bytes.fromhex("000106c000020117c4"), "iteration: 0"),
        (bytes.fromhex("010006"), "length says 6 bytes, 0 follow"),
        (bytes.fromhex("010000"), "invalidAddressType(0)"),
        (bytes.fromhex("010106c0000201"), "length says 6 bytes, 4 follow"),
        (bytes.fromhex("010106c000020117c400"), "length says 6 bytes, 7 follow"),
        (bytes.fromhex("010104c0000201"), "ipv4_address has length 6, not 4"),
        (bytes.fromhex("010206c000020117c4"), "ipv6_address has length 18, not 6"),
    ],
)
def test_bad_values_are_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        TURN_SERVICE.validate(data)


@given(st.binary(max_size=40))
def test_any_bytes_decode_or_raise_value_error(data: bytes) -> None:
    try:
        decoded = TurnServer.decode(data)
    except ValueError:
        return
    assert decoded.encode() == data


@given(
    st.integers(1, 255),
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(0, 65535),
)
def test_values_round_trip(iteration: int, address: object, port: int) -> None:
    server = TurnServer(iteration, str(address), port)
    assert TurnServer.decode(TURN_SERVICE.encode(server)) == server


def test_encode_refuses_what_the_wire_cannot_carry() -> None:
    for bad, reason in [
        (TurnServer(0, "192.0.2.1", 1), "iteration 0"),
        (TurnServer(256, "192.0.2.1", 1), "iteration 256"),
        (TurnServer(1, "turn.example", 1), "not an IPv4 or IPv6"),
        (TurnServer(1, "192.0.2.1", 70000), "port 70000"),
    ]:
        with pytest.raises(ValueError, match=reason):
            bad.encode()
    with pytest.raises(TypeError):
        TURN_SERVICE.encode(b"\x01")


def test_d_is_one_byte_after_the_node_id() -> None:
    assert nodeMultipleResourceName(b"\xaa" * 16, 7) == b"\xaa" * 16 + b"\x07"
    with pytest.raises(ValueError):
        nodeMultipleResourceName(b"\xaa" * 16, 256)


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "RFC 6598"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.3.4", "link-local"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("::ffff:192.168.0.1", "private"),
        ("turn.example", "not an IP address"),
    ],
)
def test_only_public_addresses_are_candidates(host: str, why: str) -> None:
    reason = whyNotPublic(host)
    assert reason is not None and why in reason
    assert not isPublicAddress(host)


def test_public_addresses_are_candidates() -> None:
    for host in ("1.2.3.4", "2a00:1450:4001::1", "::ffff:1.2.3.4"):
        assert isPublicAddress(host), host


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"advertise": "sometimes"}, "advertise: 'sometimes' is not one of auto, always, never"),
        ({"external": "coturn"}, "external: 'coturn' is not HOST:PORT"),
        ({"external": "turn.example:3478"}, "external: 'turn.example' is not an IP address"),
        ({"external": "192.0.2.1:0"}, "external: 0 is not between 1 and 65535"),
        ({"external": "192.0.2.1:3478", "users": "u"}, "users: configures the built-in server"),
        ({"host": "127.0.0.1", "udp-port": "x"}, "udp-port: 'x' is not a port"),
        ({"host": "127.0.0.1", "relay-ports": "5000"}, "relay-ports: '5000' is not LO-HI"),
        ({"host": "127.0.0.1", "relay-ports": "6000-5000"}, "relay-ports: 6000 is above 5000"),
        ({"host": "127.0.0.1", "allow-loopback": "maybe"}, "allow-loopback: 'maybe'"),
        ({"host": "127.0.0.1", "discovery": "dht"}, "discovery: 'dht' is not one of find, redir"),
        ({"host": "127.0.0.1", "lifetime": "5"}, "lifetime: 5 is not between 10"),
        ({"host": "127.0.0.1", "check-timeout": "soon"}, "check-timeout: 'soon' is not seconds"),
        ({}, "address: the built-in server listens on 0.0.0.0"),
        ({"serve": "no", "external": "192.0.2.1:3478"}, "external: configures a server, but"),
        ({"host": "127.0.0.1", "deny": "10.0.0.0/8,nowhere"}, "deny: 'nowhere' is not"),
        (
            {"host": "127.0.0.1", "users": "/nonexistent/turn-users"},
            "users: /nonexistent/turn-users: cannot read",
        ),
        ({"serve": "maybe"}, "serve: 'maybe' is not one of yes, no"),
        ({"host": "127.0.0.1", "tls-port": "on"}, "tls-port: 'on' is not a port, same or off"),
        ({"host": "127.0.0.1", "tls-port": "70000"}, "tls-port: 70000 is not between 0"),
        ({"host": "127.0.0.1", "udp-port": "0", "tls-port": "same"}, "tls-port: same needs"),
        (
            {"host": "127.0.0.1", "tcp-port": "3478", "tls-port": "same"},
            "tcp-port: 3478 is the TCP port of tls-port=same",
        ),
        ({"external": "192.0.2.1:3478", "tls-port": "5349"}, "tls-port: configures the built-in"),
    ],
)
def test_bad_options_are_refused_with_one_line(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        turn.checkOptions(options)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_good_options_parse() -> None:
    parsed = parseOptions({"external": "[2001:db8::1]:3478", "advertise": "always"})
    assert parsed.external == ("2001:db8::1", 3478) and parsed.advertise == "always"
    parsed = parseOptions({"host": "0.0.0.0", "address": "192.0.2.9", "tcp-port": "off"})
    assert parsed.advertisedHost == "192.0.2.9" and parsed.tcpPort is None
    assert parsed.tlsPort is None
    assert parseOptions({"host": "127.0.0.1", "tls-port": "5349"}).tlsPort == 5349
    assert parseOptions({"host": "127.0.0.1", "tls-port": "off"}).tlsPort is None
    # RFC 6940 section 9 carries one address: TLS at the UDP port's number,
    # and the default plain TCP listener gives that port up.
    same = parseOptions({"host": "127.0.0.1", "udp-port": "3479", "tls-port": "same"})
    assert (same.tlsPort, same.tcpPort) == (3479, 3478)
    same = parseOptions({"host": "127.0.0.1", "tls-port": "same"})
    assert (same.udpPort, same.tlsPort, same.tcpPort) == (3478, 3478, None)
    assert parseOptions({"advertise": "never"}).advertisedHost is None
    assert not parseOptions({"serve": "no"}).serve
    assert parseOptions({"host": "127.0.0.1", "deny": "10.1.0.0/16, 192.0.2.1"}).deny == (
        "10.1.0.0/16",
        "192.0.2.1/32",
    )
