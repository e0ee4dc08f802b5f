"""The SipRegistration record (RFC 7904 section 3.2), AoRs (section 2),
GRUUs (section 6) and the domain restriction (section 3.4), without an
overlay."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reload.api.config import NamePatterns
from reload.api.data import Destination
from usages.sipusage.kind import domainAdmissible
from usages.sipusage.record import (
    ROUTE,
    URI,
    BadAor,
    SipRegistration,
    decodeGruu,
    encodeGruu,
    normaliseAor,
    splitGruu,
)

NODE = bytes(range(16))


def test_a_route_record_has_the_layout_of_section_3_2() -> None:
    record = SipRegistration.route((Destination.node(NODE),), "(sip.schemes=SIP)")
    data = record.encode()
    prefs = b"(sip.schemes=SIP)"
    destination = b"\x01\x10" + NODE  # type node(1), length 16, the Node-ID
    body = struct.pack("!H", len(prefs)) + prefs + struct.pack("!H", 18) + destination
    assert data == struct.pack("!BH", ROUTE, len(body)) + body
    assert SipRegistration.decode(data) == record


def test_a_forwarding_record_carries_the_target_aor() -> None:
    record = SipRegistration.forward("sip:Bob@Example.COM")
    data = record.encode()
    assert data == b"\x01\x00\x11\x00\x0fBob@example.com"
    assert SipRegistration.decode(data).uri == "Bob@example.com"
    assert record.type == URI


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "at least 3"),
        (b"\x02\x00\x05\x00\x00\x00\x01", "length says 5"),
        (b"\x00\x00\x00", "type 0"),
        (b"\x02\x00\x04\x00\x00\x00\x00", "at least 3"),
        (b"\x02\x00\x07\x00\x00\x00\x03\x01\x10\x00", "destination_list"),
        (b"\x01\x00\x05\x00\x03abc", "not an AoR"),
        (b"\x01\x00\x06\x00\x03abcX", "after uri"),
    ],
)
def test_malformed_records_are_refused_with_the_field_named(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        SipRegistration.decode(data)


def test_an_unknown_type_is_kept_as_its_bytes() -> None:
    record = SipRegistration.decode(b"\x07\x00\x02hi")
    assert record.extension == b"hi"
    assert record.encode() == b"\x07\x00\x02hi"


@given(
    st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=4),
    st.text(max_size=40),
)
def test_route_records_round_trip(nodes: list[bytes], prefs: str) -> None:
    record = SipRegistration.route(tuple(Destination.node(n) for n in nodes), prefs)
    assert SipRegistration.decode(record.encode()) == record


@pytest.mark.parametrize(
    ("text", "aor"),
    [
        ("alice@example.com", "alice@example.com"),
        ("sip:alice@EXAMPLE.com", "alice@example.com"),
        ("<sips:alice@example.com;transport=tcp>", "alice@example.com"),
        ("sip:al%69ce@example.com", "alice@example.com"),
    ],
)
def test_aors_have_no_scheme_and_are_percent_decoded(text: str, aor: str) -> None:
    assert normaliseAor(text) == aor


@pytest.mark.parametrize("text", ["alice", "@example.com", "alice@", "alice@host:5060", "a b@c"])
def test_text_that_is_not_an_aor_is_refused(text: str) -> None:
    with pytest.raises(BadAor):
        normaliseAor(text)


def test_a_gruu_carries_the_destination_list_in_base64_with_tilde_padding() -> None:
    # 5 + 18 bytes of Destinations: base64 needs one padding character.
    destinations = (Destination.opaque(b"ab"), Destination.node(NODE))
    gruu = encodeGruu("alice@example.com", destinations)
    aor, _, value = gruu.partition(";gr=")
    assert aor == "alice@example.com"
    assert "=" not in value and value.endswith("~")
    assert decodeGruu(value) == destinations
    assert splitGruu("sip:" + gruu) == ("alice@example.com", destinations)
    # Liberal on decode: '=' padding and none at all.
    assert decodeGruu(value.replace("~", "=")) == decodeGruu(value.rstrip("~")) == destinations
    assert splitGruu("sip:alice@example.com;gr") == ("alice@example.com", None)
    with pytest.raises(ValueError, match="base64"):
        decodeGruu("!!!")


def test_domain_restriction_of_section_3_4() -> None:
    assert domainAdmissible("anything.org", None, "overlay.example")
    off = NamePatterns(False, ())
    assert domainAdmissible("overlay.example", off, "overlay.example")
    assert not domainAdmissible("other.example", off, "overlay.example")
    on = NamePatterns(True, (r"dht\.example\.com", r".*\.my\.example"))
    assert domainAdmissible("dht.example.com", on, "x")
    assert domainAdmissible("a.b.my.example", on, "x")
    assert not domainAdmissible("dhtxexample.com", on, "x")
    assert not domainAdmissible("my.example", on, "x")
