"""The SIP message layer of the SIP usage's front end (RFC 3261 sections
7, 18.3 and 20; RFC 5626 section 3.5.1 keepalives), without sockets."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usages.sipusage.message import (
    MAX_MESSAGE,
    SipMessage,
    SipParseError,
    StreamFramer,
    Uri,
    parseDatagram,
    splitValues,
)

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK2\r\n"
    b"f: <sip:alice@example.com>;tag=1\r\n"
    b"t: <sip:bob@example.com>\r\n"
    b"i: abc\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Subject: a long\r\n  folded line\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"body"
)


def test_compact_names_comma_lists_and_folding_7_3() -> None:
    message = parseDatagram(INVITE)
    assert (message.method, message.uri) == ("INVITE", "sip:bob@example.com")
    assert message.get("Call-ID") == "abc"
    assert message.values("Via") == [
        "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1",
        "SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK2",
    ]
    assert message.get("Subject") == "a long folded line"
    assert message.body == b"body"
    assert message.cseq == (1, "INVITE")


def test_serialising_sets_content_length_and_prepend_adds_the_first_value() -> None:
    message = parseDatagram(INVITE)
    message.prepend("Via", "SIP/2.0/TLS p;branch=z9hG4bK0")
    message.body = b"longer body"
    again = parseDatagram(message.serialise())
    assert again.values("Via")[0] == "SIP/2.0/TLS p;branch=z9hG4bK0"
    assert len(again.values("Via")) == 3
    assert again.body == b"longer body"
    assert again.get("Content-Length") == "11"


def test_splitting_respects_quotes_and_angle_brackets() -> None:
    assert splitValues('"Doe, J" <sip:j@x;a=1,2>, <sip:k@y>') == [
        '"Doe, J" <sip:j@x;a=1,2>',
        "<sip:k@y>",
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello\r\n\r\n", "not a SIP request"),
        (b"INVITE sip:x SIP/2.0\r\nno colon here\r\n\r\n", "not a header field"),
        (b"INVITE sip:x SIP/2.0\r\nl: 10\r\n\r\nshort", "Content-Length 10"),
        (b"INVITE sip:x SIP/2.0\r\nl: -1\r\n\r\n", "malformed"),
        (b"INVITE sip:x SIP/2.0\r\nVia: a", "no blank line"),
        (b"INVITE sip:x SIP/2.0\r\n" + b"X: y\r\n" * 200 + b"\r\n", "more than"),
        (b"INVITE sip:x SIP/2.0\r\n\xff: y\r\n\r\n", "UTF-8"),
        (b"x" * (MAX_MESSAGE + 1), "larger than"),
    ],
)
def test_malformed_input_is_a_parse_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason):
        parseDatagram(data)


def test_a_stream_is_framed_by_content_length_with_keepalives_between() -> None:
    framer = StreamFramer()
    data = b"\r\n\r\n" + INVITE + b"\r\n\r\n" + INVITE
    got: list[SipMessage] = []
    for i in range(len(data)):  # one byte at a time
        got += framer.feed(data[i : i + 1])
    assert [m.body for m in got] == [b"body", b"body"]
    assert framer.pings == 2


def test_a_stream_message_without_content_length_is_refused_18_3() -> None:
    with pytest.raises(SipParseError, match="Content-Length"):
        StreamFramer().feed(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1\r\n\r\n")


@given(st.binary(max_size=300))
def test_any_bytes_either_parse_or_raise_a_parse_error(data: bytes) -> None:
    # Anything else (an IndexError, a UnicodeError...) fails the test.
    for feed in (parseDatagram, StreamFramer().feed):
        with contextlib.suppress(SipParseError):
            feed(data)


def test_uris() -> None:
    uri = Uri.parse("<sip:bob@[::1]:5070;transport=tcp;lr?subject=x>")
    assert (uri.user, uri.host, uri.port, uri.params) == (
        "bob",
        "::1",
        5070,
        {"transport": "tcp", "lr": ""},
    )
    assert str(uri) == "sip:bob@[::1]:5070;transport=tcp;lr?subject=x"
    with pytest.raises(SipParseError):
        Uri.parse("tel:+123")
    with pytest.raises(SipParseError):
        Uri.parse("sip:bob@host:99999")
