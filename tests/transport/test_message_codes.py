"""``messageCodes``: the message code (and an Error's error code) read from
the bytes of any message a peer handles, for the metrics (RFC 6940 section
6.3.2 for where MessageContents begins, 6.3.3 for the codes)."""

from __future__ import annotations

from reload.transport.security import UNSIGNED
from reload.transport.trace import messageCodes
from reload.wire.header import Destination, ForwardingHeader, ForwardingOption
from reload.wire.message import ErrorCode, ErrorResponse, Message, MessageCode, MessageContents


def _encoded(code: int, body: bytes, via: int = 0, options: bool = False) -> bytes:
    header = ForwardingHeader(
        overlay=7,
        transaction_id=0x1234,
        destination_list=(Destination.node(bytes(range(16))),),
        via_list=tuple(Destination.node(bytes([i]) * 16) for i in range(via)),
        options=(ForwardingOption(0x42, 0, b"opt"),) if options else (),
    )
    return Message(header, MessageContents(code, body), UNSIGNED).encode()


def test_a_request_gives_its_code_and_no_error_code() -> None:
    data = _encoded(MessageCode.FETCH_REQ, b"body")
    assert messageCodes(data) == (MessageCode.FETCH_REQ, None)


def test_the_via_list_and_options_are_skipped_by_their_lengths() -> None:
    data = _encoded(MessageCode.STORE_ANS, b"\x00" * 20, via=3, options=True)
    assert messageCodes(data) == (MessageCode.STORE_ANS, None)


def test_an_error_gives_its_error_code() -> None:
    body = ErrorResponse.with_text(ErrorCode.FORBIDDEN, "no").encode()
    data = _encoded(MessageCode.ERROR, body, via=1)
    assert messageCodes(data) == (MessageCode.ERROR, ErrorCode.FORBIDDEN)


def test_what_is_not_a_whole_reload_message_gives_none() -> None:
    data = _encoded(MessageCode.FETCH_REQ, b"body")
    assert messageCodes(data[:-1]) is None  # shorter than its length field says
    assert messageCodes(data[:20]) is None
    assert messageCodes(b"") is None
    assert messageCodes(b"\x00" + data[1:]) is None  # not the relo_token


def test_an_error_too_short_for_an_error_code_gives_none_for_it() -> None:
    data = _encoded(MessageCode.ERROR, b"\x02")
    assert messageCodes(data) == (MessageCode.ERROR, None)
