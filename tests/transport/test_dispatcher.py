"""Local delivery: every request gets a reply, whatever its handler does
(RFC 6940 sections 6.3.3 and 6.3.3.1)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed

from reload.errors import ReloadError
from reload.transport.dispatcher import Dispatcher, Reply, Request
from reload.transport.security import UNSIGNED, TrustedSigner
from reload.wire.header import Destination, ForwardingHeader
from reload.wire.message import (
    ErrorCode,
    ErrorResponse,
    Message,
    MessageCode,
    MessageContents,
    MessageExtension,
)
from reload.wire.methods import PingAns, PingReq
from topologies.chordreload.node import ChordError

SOURCE = b"\x01" * 16


def request(code: int, body: bytes, extensions: tuple[MessageExtension, ...] = ()) -> Request:
    header = ForwardingHeader(1, 2, (Destination.node(b"\x02" * 16),))
    message = Message(header, MessageContents(code, body, extensions), UNSIGNED)
    return Request(message, TrustedSigner(SOURCE), SOURCE)


def reply(d: Deferred[Reply]) -> Reply:
    box: list[Any] = []
    d.addBoth(box.append)
    (result,) = box
    assert isinstance(result, Reply), result
    return result


def errorCode(r: Reply) -> int:
    assert r.code == MessageCode.ERROR
    return ErrorResponse.decode(r.body).error_code


def test_a_body_structure_is_encoded_under_its_own_code() -> None:
    dispatcher = Dispatcher()
    dispatcher.register(PingReq.CODE, lambda r: PingAns(1, 2))
    r = reply(dispatcher.dispatch(request(PingReq.CODE, PingReq().encode())))
    assert (r.code, PingAns.decode(r.body)) == (PingAns.CODE, PingAns(1, 2))


def test_the_handler_gets_the_decoded_body() -> None:
    dispatcher = Dispatcher()
    bodies: list[object] = []

    def handler(r: Request) -> PingAns:
        bodies.append(r.body)
        return PingAns(1, 2)

    dispatcher.register(PingReq.CODE, handler)
    reply(dispatcher.dispatch(request(PingReq.CODE, PingReq(b"pad").encode())))
    assert bodies == [PingReq(b"pad")]


def test_deferred_replies_and_errors() -> None:
    dispatcher = Dispatcher()
    dispatcher.register(PingReq.CODE, lambda r: succeed(PingAns(3, 4)))
    assert reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\0"))).code == PingAns.CODE
    dispatcher.register(PingReq.CODE, lambda r: fail(ReloadError(ErrorCode.NOT_FOUND, "gone")))
    r = reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\0")))
    assert ErrorResponse.decode(r.body) == ErrorResponse(ErrorCode.NOT_FOUND, b"gone")


def test_an_exception_with_an_error_code_is_that_error() -> None:
    """The topology's ChordError carries the code to answer with."""
    dispatcher = Dispatcher()

    def refuse(r: Request) -> Reply:
        raise ChordError("not responsible", ErrorCode.FORBIDDEN)

    dispatcher.register(PingReq.CODE, refuse)
    assert errorCode(reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\0")))) == (
        ErrorCode.FORBIDDEN
    )


def test_a_handler_bug_is_still_answered() -> None:
    dispatcher = Dispatcher()

    def broken(r: Request) -> Reply:
        raise ZeroDivisionError

    dispatcher.register(PingReq.CODE, broken)
    r = reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\0")))
    assert errorCode(r) == ErrorCode.INVALID_MESSAGE


def test_a_body_that_does_not_decode_is_invalid() -> None:
    dispatcher = Dispatcher()
    dispatcher.register(PingReq.CODE, lambda r: PingAns(1, 2))
    r = reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\5ab")))
    assert errorCode(r) == ErrorCode.INVALID_MESSAGE
    assert b"PingReq" in ErrorResponse.decode(r.body).error_info


def test_unknown_methods_and_critical_extensions() -> None:
    dispatcher = Dispatcher()
    assert errorCode(reply(dispatcher.dispatch(request(0x7FF1, b"")))) == (
        ErrorCode.INVALID_MESSAGE
    )
    dispatcher.register(PingReq.CODE, lambda r: PingAns(1, 2))
    critical = (MessageExtension(0x99, True),)
    r = reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\0", critical)))
    assert errorCode(r) == ErrorCode.UNKNOWN_EXTENSION
    understood = Dispatcher(understoodExtensions=frozenset({0x99}))
    understood.register(PingReq.CODE, lambda r: PingAns(1, 2))
    assert reply(understood.dispatch(request(PingReq.CODE, b"\0\0", critical))).code == (
        PingAns.CODE
    )


def test_only_request_codes_can_be_registered() -> None:
    with pytest.raises(ValueError):
        Dispatcher().register(PingAns.CODE, lambda r: PingAns(1, 2))


def test_answer_gives_a_synchronous_reply_without_a_deferred() -> None:
    """``Dispatcher.answer``, which the transport uses: a handler that
    answers at once gives the Reply itself, one that answers later a
    Deferred of it, and one that raises the Error Reply at once."""
    dispatcher = Dispatcher()
    later: Deferred[PingAns] = Deferred()
    handlers = iter([lambda r: PingAns(1, 2), lambda r: later, lambda r: 1 // 0])
    dispatcher.register(PingReq.CODE, lambda r: next(handlers)(r))
    now = dispatcher.answer(request(PingReq.CODE, PingReq().encode()))
    assert isinstance(now, Reply) and PingAns.decode(now.body) == PingAns(1, 2)
    pending = dispatcher.answer(request(PingReq.CODE, PingReq().encode()))
    assert isinstance(pending, Deferred)
    later.callback(PingAns(3, 4))
    assert PingAns.decode(reply(pending).body) == PingAns(3, 4)
    failed = dispatcher.answer(request(PingReq.CODE, PingReq().encode()))
    assert isinstance(failed, Reply) and errorCode(failed) == ErrorCode.INVALID_MESSAGE


class _Extensions:
    """A topology's extension half (ITopologyExtensions) for type 0x3."""

    extensionTypes = frozenset({0x3})

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.seen: list[tuple[bytes, int, list[MessageExtension]]] = []

    def requestExtensions(
        self, sender: bytes, messageCode: int, extensions: Any
    ) -> tuple[MessageExtension, ...]:
        self.seen.append((sender, messageCode, list(extensions)))
        if self.fails:
            raise RuntimeError("broken topology")
        return (MessageExtension(0x3, False, b"mine"),)

    def answerExtensions(self, sender: bytes, messageCode: int, extensions: Any) -> None:
        raise AssertionError("not for requests")


def test_a_topology_reads_request_extensions_and_extends_the_answer() -> None:
    """RFC 6940 section 6.3.3: extensions of the topology's types reach it
    (others do not), its own go into the successful answer; a critical one
    of its types is understood."""
    dispatcher = Dispatcher()
    dispatcher.register(PingReq.CODE, lambda r: PingAns(1, 2))
    handler = _Extensions()
    dispatcher.useExtensions(handler)
    theirs = MessageExtension(0x3, True, b"theirs")
    other = MessageExtension(0x77, False, b"other")
    r = reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\0", (other, theirs))))
    assert r.code == PingAns.CODE
    assert r.extensions == (MessageExtension(0x3, False, b"mine"),)
    assert handler.seen == [(SOURCE, PingReq.CODE, [theirs])]
    # Without extensions of its types, or for an Error answer: not asked.
    assert reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\0", (other,)))).extensions == ()
    failing = reply(dispatcher.dispatch(request(PingReq.CODE, b"\xff", (theirs,))))
    assert errorCode(failing) == ErrorCode.INVALID_MESSAGE and failing.extensions == ()
    assert len(handler.seen) == 1


def test_a_failing_extension_handler_still_gets_the_answer_out() -> None:
    dispatcher = Dispatcher()
    dispatcher.register(PingReq.CODE, lambda r: PingAns(1, 2))
    handler = _Extensions(fails=True)
    dispatcher.useExtensions(handler)
    ext = MessageExtension(0x3, False, b"x")
    r = reply(dispatcher.dispatch(request(PingReq.CODE, b"\0\0", (ext,))))
    assert r.code == PingAns.CODE and r.extensions == ()
    assert len(handler.seen) == 1
