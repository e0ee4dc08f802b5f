"""Store, Fetch, Stat and Find through a dispatcher, from encoded bodies
to encoded answers (RFC 6940 section 7.4)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from reload.storage.handlers import StorageHandlers
from reload.storage.model import metadataOf
from reload.storagestack import registerStorage
from reload.transport.dispatcher import Dispatcher, Reply, Request
from reload.transport.security import UNSIGNED, TrustedSigner
from reload.wire.header import Destination, ForwardingHeader
from reload.wire.message import ErrorCode, ErrorResponse, Message, MessageCode, MessageContents
from reload.wire.storage import (
    FetchAns,
    FetchReq,
    FindAns,
    FindReq,
    StatAns,
    StatReq,
    StoreAns,
    StoredDataSpecifier,
    StoreKindData,
    StoreReq,
    UnknownKindsInfo,
)
from tests.storage.support import (
    NOW,
    SINGLE_USER,
    Setup,
    h,
    makeIdentity,
    requester,
    sign,
    single,
    storeReq,
)

ALICE_NAME = "alice@storage.example.org"
ALICE = makeIdentity(ALICE_NAME)


def dispatch(
    dispatcher: Dispatcher, code: int, body: bytes, signer: Any, maxResponseLength: int = 0
) -> Reply:
    header = ForwardingHeader(
        1, 2, (Destination.resource(h(ALICE_NAME)),), max_response_length=maxResponseLength
    )
    message = Message(header, MessageContents(code, body), UNSIGNED)
    d: Deferred[Reply] = dispatcher.dispatch(Request(message, signer, None))
    box: list[Any] = []
    d.addBoth(box.append)
    (reply,) = box
    assert isinstance(reply, Reply), reply
    return reply


def error(reply: Reply) -> ErrorResponse:
    assert reply.code == MessageCode.ERROR
    return ErrorResponse.decode(reply.body)


def wired() -> tuple[Setup, Dispatcher]:
    setup = Setup(identities=(ALICE,))
    clock = Clock()
    clock.advance(NOW)
    dispatcher = Dispatcher()
    registerStorage(dispatcher, StorageHandlers(setup.service, clock))
    return setup, dispatcher


def test_the_four_methods_are_registered() -> None:
    _, dispatcher = wired()
    assert dispatcher.codes >= {StoreReq.CODE, FetchReq.CODE, StatReq.CODE, FindReq.CODE}


def test_store_fetch_stat_find_over_the_dispatcher() -> None:
    setup, dispatcher = wired()
    rid = h(ALICE_NAME)
    signer = requester(setup.cache, ALICE)
    request = storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"hi"))])
    reply = dispatch(dispatcher, StoreReq.CODE, request.encode(), signer)
    assert reply.code == StoreAns.CODE
    assert StoreAns.decode(reply.body).kind_responses[0].generation_counter == 1

    models = setup.kinds.models
    specifiers = (StoredDataSpecifier.single(SINGLE_USER),)
    reply = dispatch(dispatcher, FetchReq.CODE, FetchReq(rid, specifiers).encode(), signer)
    assert reply.code == FetchAns.CODE
    (response,) = FetchAns.decode(reply.body, models).kind_responses
    assert response.values[0].value == single(b"hi")

    reply = dispatch(dispatcher, StatReq.CODE, StatReq(rid, specifiers).encode(), signer)
    assert reply.code == StatAns.CODE
    (stat,) = StatAns.decode(reply.body, models).kind_responses
    assert stat.values[0].metadata == metadataOf(response.values[0]).metadata

    reply = dispatch(dispatcher, FindReq.CODE, FindReq(rid, (SINGLE_USER,)).encode(), signer)
    assert reply.code == FindAns.CODE
    assert FindAns.decode(reply.body).results[0].closest == rid


def test_unknown_kinds_in_a_body_are_error_unknown_kind_not_invalid_message() -> None:
    setup, dispatcher = wired()
    rid = h(ALICE_NAME)
    signer = requester(setup.cache, ALICE)
    request = StoreReq(
        rid,
        0,
        (
            StoreKindData(0xF00000A1, 0, ()),
            StoreKindData(SINGLE_USER, 0, (sign(ALICE, rid, SINGLE_USER, single(b"a")),)),
            StoreKindData(0xF00000A2, 0, ()),
        ),
    )
    answer = error(dispatch(dispatcher, StoreReq.CODE, request.encode(), signer))
    assert answer.error_code == ErrorCode.UNKNOWN_KIND
    assert UnknownKindsInfo.decode(answer.error_info).kinds == (0xF00000A1, 0xF00000A2)
    fetch = FetchReq(rid, (StoredDataSpecifier.single(0xF00000A3),))
    answer = error(dispatch(dispatcher, FetchReq.CODE, fetch.encode(), signer))
    assert answer.error_code == ErrorCode.UNKNOWN_KIND
    assert len(setup.store) == 0


def test_max_response_length_of_the_request_header() -> None:
    setup, dispatcher = wired()
    rid = h(ALICE_NAME)
    signer = requester(setup.cache, ALICE)
    request = storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"x" * 60))])
    dispatch(dispatcher, StoreReq.CODE, request.encode(), signer)
    fetch = FetchReq(rid, (StoredDataSpecifier.single(SINGLE_USER),)).encode()
    answer = error(dispatch(dispatcher, FetchReq.CODE, fetch, signer, maxResponseLength=100))
    assert answer.error_code == ErrorCode.RESPONSE_TOO_LARGE
    assert dispatch(dispatcher, FetchReq.CODE, fetch, signer, 4000).code == FetchAns.CODE


def test_a_signer_without_a_user_name_cannot_satisfy_user_match() -> None:
    """A transport signer known only by its Node-ID (the simulator's
    TrustingSecurity) has no user name: USER-MATCH fails closed."""
    _, dispatcher = wired()
    rid = h(ALICE_NAME)
    request = storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"a"))])
    reply = dispatch(dispatcher, StoreReq.CODE, request.encode(), TrustedSigner(ALICE.nodeId))
    assert error(reply).error_code == ErrorCode.FORBIDDEN


def test_a_malformed_body_is_invalid_message() -> None:
    setup, dispatcher = wired()
    reply = dispatch(dispatcher, StoreReq.CODE, b"\x10\x00", requester(setup.cache, ALICE))
    assert error(reply).error_code == ErrorCode.INVALID_MESSAGE
