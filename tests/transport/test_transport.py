"""The transport as one layer, on memory links: forwarding with via lists
(RFC 6940 section 6.1.2), symmetric answers (6.2.2), TTL (6.3.2), loops
(13.6.5), max_response_length (6.3.2, 6.3.3.1), errors (6.3.3.1),
configuration sequence (6.3.2.1), retransmission (6.2.1), bad input, and
the methods answered by the base protocol: Ping (6.5.3), Probe (6.4.2.5),
RouteQuery, Join, Leave, Update (6.4.2)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from reload.config import defaultConfiguration
from reload.errors import ReloadError, ReloadTimeout
from reload.transport.dispatcher import Reply, Request
from reload.transport.routing import wildcard
from reload.transport.security import UNSIGNED, TrustingSecurity
from reload.transport.transport import Response, TransportSettings
from reload.wire.header import (
    Destination,
    ForwardingFlags,
    ForwardingHeader,
    ForwardingOption,
    HeaderView,
    overlay_hash,
)
from reload.wire.message import (
    ErrorCode,
    ErrorResponse,
    Message,
    MessageCode,
    MessageContents,
    MessageExtension,
)
from reload.wire.methods import (
    JoinAns,
    JoinReq,
    LeaveReq,
    PingAns,
    PingReq,
    ProbeInformationType,
    RouteQueryAns,
    UpdateReq,
)

from .chain import A, B, C, Chain, D
from .memlinks import MemoryLink, Recorder

EXP_A_REQ = MessageCode.EXP_A_REQ
EXP_A_ANS = MessageCode.EXP_A_ANS
OVERLAY = overlay_hash("reload.local")
T = b"\xee" * 16  # a peer driven by hand
RESOURCE = b"\x33" * 16  # owned by C in the chains below


def node(value: bytes) -> Destination:
    return Destination.node(value)


def outcome(d: Deferred[Any]) -> list[Any]:
    box: list[Any] = []
    d.addBoth(box.append)
    return box


def failureOf(box: list[Any]) -> BaseException:
    assert len(box) == 1, box
    assert isinstance(box[0], Failure), box
    error = box[0].value
    assert isinstance(error, BaseException)
    return error


def responseOf(box: list[Any]) -> Response:
    assert len(box) == 1, box
    assert isinstance(box[0], Response), box[0]
    return box[0]


def echo(record: list[Request]) -> Any:
    def handler(request: Request) -> Reply:
        record.append(request)
        return Reply(EXP_A_ANS, b"echo:" + request.rawBody)

    return handler


def craft(
    destinations: tuple[Destination, ...],
    body: bytes | Any,
    code: int | None = None,
    *,
    signer: bytes = T,
    via: tuple[Destination, ...] = (),
    ttl: int = 100,
    transactionId: int = 77,
    extensions: tuple[MessageExtension, ...] = (),
    options: tuple[ForwardingOption, ...] = (),
    sequence: int = 0,
    overlay: int = OVERLAY,
) -> bytes:
    """A message as the hand-driven peer ``T`` sends it."""
    if not isinstance(body, bytes):
        code = body.CODE
        body = body.encode()
    assert code is not None
    header = ForwardingHeader(
        overlay,
        transactionId,
        destinations,
        via,
        options=options,
        ttl=ttl,
        configuration_sequence=sequence,
    )
    message = Message(header, MessageContents(code, body, extensions), UNSIGNED)
    return TrustingSecurity(signer).sign(message).encode()


def answers(recorder: Recorder) -> list[Message]:
    return [Message.decode(data) for data in recorder.received]


def errorOf(message: Message) -> ErrorResponse:
    assert message.contents.message_code == MessageCode.ERROR
    return ErrorResponse.decode(message.contents.body)


def withRecorder(chain: Chain, peer: bytes = B) -> tuple[Recorder, MemoryLink]:
    recorder = Recorder(T)
    chain.net.add(T, recorder)
    return recorder, chain.net.link(T, peer)


# -- forwarding and symmetric answers --------------------------------------------


def test_a_request_through_an_intermediate_carries_the_previous_hop_in_its_via_list() -> None:
    """Section 6.1.2: each peer appends "the Node-ID of the node from which
    the request was received".  A sends with an empty via list; B appends A;
    C gets via list [A] over the link from B, so its way back is [B, A]."""
    chain = Chain(3)
    seen: list[Request] = []
    chain[2].dispatcher.register(EXP_A_REQ, echo(seen), decoder=bytes)
    box = outcome(chain[0].transport.request([node(C)], EXP_A_REQ, b"hello"))
    chain.settle()
    (request,) = seen
    assert request.viaList == (node(A),)
    assert request.previousHop == B
    assert request.source == A
    assert request.header.ttl == 99  # B decremented it (section 6.3.2)
    response = responseOf(box)
    assert (response.code, response.body, response.nodeId) == (EXP_A_ANS, b"echo:hello", C)
    # B forwarded both ways without delivering anything to itself.
    counters = chain[1].transport.counters
    assert (counters["forwarded"], counters["delivered"]) == (2, 0)


def test_the_answer_follows_the_reversed_via_list() -> None:
    """Sections 6.2.2 and 6.1.2: D receives from C with via list [A, B] and
    answers with destination list [C, B, A]; each hop removes itself."""
    chain = Chain(4)
    chain[3].dispatcher.register(EXP_A_REQ, echo([]), decoder=bytes)
    box = outcome(chain[0].transport.request([node(D)], EXP_A_REQ, b"x"))
    chain.settle()
    assert responseOf(box).nodeId == D
    toC = chain.net.links[(C, D)].sent[0]  # the request as D received it
    assert HeaderView(toC).via_list == (node(A), node(B))
    answer = chain.net.links[(D, C)].sent[0]
    assert HeaderView(answer).destinations == (node(C), node(B), node(A))
    assert HeaderView(answer).via_list == ()
    fromB = chain.net.links[(B, A)].sent[0]
    assert HeaderView(fromB).destinations == (node(A),)


def test_a_source_route_pops_each_listed_hop() -> None:
    """Section 6.1.1: a node that finds its own Node-ID first removes it
    and routes on the next entry."""
    chain = Chain(4)
    seen: list[Request] = []
    chain[3].dispatcher.register(EXP_A_REQ, echo(seen), decoder=bytes)
    box = outcome(chain[0].transport.request([node(B), node(C), node(D)], EXP_A_REQ, b"routed"))
    chain.settle()
    assert responseOf(box).nodeId == D
    assert seen[0].viaList == (node(A), node(B))
    assert HeaderView(chain.net.links[(B, C)].sent[0]).destinations == (node(C), node(D))


def test_ping_end_to_end() -> None:
    """Section 6.5.3: to a Node-ID, to the peer responsible for a
    Resource-ID, and to the wildcard Node-ID over one link."""
    chain = Chain(3, owners={RESOURCE: 2})
    toNode = outcome(chain[0].ping(C))
    toResource = outcome(chain[0].ping(RESOURCE, resource=True))
    toNeighbour = outcome(chain[0].pingNeighbour(B))
    chain.settle()
    for box, answerer in ((toNode, C), (toResource, C), (toNeighbour, B)):
        response = responseOf(box)
        assert response.code == PingAns.CODE and response.nodeId == answerer
        assert PingAns.decode(response.body).time == pytest.approx(20, abs=20)


def test_route_query_end_to_end() -> None:
    """Section 6.4.2.4: the receiving peer's topology says where it would
    route the destination; send_update is passed on with the requester."""
    chain = Chain(4, owners={RESOURCE: 3})
    box = outcome(chain[0].routeQuery(C, Destination.resource(RESOURCE), sendUpdate=True))
    chain.settle()
    response = responseOf(box)
    assert response.nodeId == C
    assert RouteQueryAns.decode(response.body).overlay_specific_data == D
    assert chain.topology(2).calls == [("routeQuery", RESOURCE, A)]


def test_probe_returns_the_known_values_in_order() -> None:
    """Section 6.4.2.5.2: recognised values, in the requested order, no
    others."""
    chain = Chain(2)
    chain.net.clock.advance(42)
    box = outcome(
        chain[0].probe(
            B,
            [ProbeInformationType.NUM_RESOURCES, ProbeInformationType.UPTIME, 9],
        )
    )
    chain.settle()
    (answer,) = box
    (info,) = answer.probe_info
    assert info.type == ProbeInformationType.UPTIME
    assert info.value == 42


# -- TTL, loops, sizes -------------------------------------------------------------


def test_ttl_exhaustion_is_reported_to_the_originator() -> None:
    """Section 6.3.2: A sends with TTL 1, B forwards with 0, C may not
    forward it and answers Error_TTL_Exceeded back along [B, A]."""
    chain = Chain(4)
    chain[3].dispatcher.register(EXP_A_REQ, echo([]), decoder=bytes)
    box = outcome(chain[0].transport.request([node(D)], EXP_A_REQ, b"x", ttl=1))
    enough = outcome(chain[0].transport.request([node(D)], EXP_A_REQ, b"x", ttl=2))
    chain.settle()
    error = failureOf(box)
    assert isinstance(error, ReloadError)
    assert (error.code, error.nodeId) == (ErrorCode.TTL_EXCEEDED, C)
    assert responseOf(enough).nodeId == D
    assert chain[3].transport.counters["delivered"] == 1


def test_a_ttl_above_initial_ttl_is_refused() -> None:
    chain = Chain(2, settings={B: TransportSettings(initialTtl=30)})
    recorder, link = withRecorder(chain)
    link.send(craft((node(B),), PingReq(), ttl=31))
    chain.settle()
    (answer,) = answers(recorder)
    assert errorOf(answer).error_code == ErrorCode.TTL_EXCEEDED


def test_a_routing_loop_is_detected() -> None:
    """A and B each think the other is responsible: the request comes back
    to A with A in its via list, and A refuses to send it round again."""
    chain = Chain(2)
    chain.topology(0).route = lambda destination: B
    chain.topology(1).route = lambda destination: A
    box = outcome(chain[0].transport.request([Destination.resource(RESOURCE)], EXP_A_REQ, b"x"))
    chain.settle()
    error = failureOf(box)
    assert isinstance(error, ReloadError)
    assert error.code == ErrorCode.INVALID_MESSAGE and "loop" in error.text
    assert chain[0].transport.transactions.retransmitted == 0


def test_the_error_for_a_loop_found_mid_path_reaches_the_requester() -> None:
    """A sends to B, B to C, C back to B: B finds the loop.  Its Error goes
    back along the reversed via list, through C and B again, and must not
    be taken for a loop itself (only requests are checked), or A waits for
    its timeout instead of hearing why."""
    chain = Chain(3)
    chain.topology(0).route = lambda destination: B
    chain.topology(1).route = lambda destination: C
    chain.topology(2).route = lambda destination: B
    box = outcome(chain[0].transport.request([Destination.resource(RESOURCE)], EXP_A_REQ, b"x"))
    chain.settle()
    error = failureOf(box)
    assert isinstance(error, ReloadError)
    assert error.code == ErrorCode.INVALID_MESSAGE and "loop" in error.text
    assert chain[0].transport.transactions.retransmitted == 0


def test_a_message_for_another_overlay_is_refused() -> None:
    """Section 6.1: wrong header fields: "the message MUST be discarded.
    The peer SHOULD generate an appropriate error"."""
    chain = Chain(2)
    recorder, link = withRecorder(chain)
    other = overlay_hash("other.example.org")
    link.send(craft((node(B),), PingReq(), overlay=other))
    chain.settle()
    (answer,) = answers(recorder)
    assert errorOf(answer).error_code == ErrorCode.INCOMPATIBLE_WITH_OVERLAY
    assert answer.header.overlay == other


def test_duplicate_destinations_are_refused() -> None:
    """Section 13.6.5."""
    chain = Chain(3)
    recorder, link = withRecorder(chain)
    link.send(craft((node(C), node(A), node(C)), PingReq()))
    chain.settle()
    (answer,) = answers(recorder)
    assert errorOf(answer).error_code == ErrorCode.INVALID_MESSAGE
    assert answer.header.destination_list == (node(T),)
    assert chain[2].transport.counters["received"] == 0


def test_max_response_length_is_honoured() -> None:
    """Section 6.3.2: responding peers "MUST check that any response would
    not exceed it"; section 6.3.3.1: Error_Response_Too_Large."""
    chain = Chain(3)
    small = outcome(
        chain[0].transport.request([node(C)], PingReq.CODE, b"\0\0", maxResponseLength=40)
    )
    roomy = outcome(
        chain[0].transport.request([node(C)], PingReq.CODE, b"\0\0", maxResponseLength=400)
    )
    chain.settle()
    error = failureOf(small)
    assert isinstance(error, ReloadError)
    assert (error.code, error.nodeId) == (ErrorCode.RESPONSE_TOO_LARGE, C)
    response = responseOf(roomy)
    assert len(response.message.encode()) <= 400


def test_an_oversized_request_is_answered_message_too_large() -> None:
    """Section 6.6 / 6.3.3.1 Error_Message_Too_Large."""
    chain = Chain(2, settings={B: TransportSettings(maxMessageSize=200)})
    recorder, link = withRecorder(chain)
    link.send(craft((node(B),), PingReq(b"p" * 300)))
    chain.settle()
    (answer,) = answers(recorder)
    assert errorOf(answer).error_code == ErrorCode.MESSAGE_TOO_LARGE


# -- errors for requests this node cannot serve -----------------------------------------


def test_an_unknown_method_is_answered_with_an_error() -> None:
    """Sections 6.3.3.1 and 6.4: no handler for the code (the experimental
    method, or Store before storage exists): Error_Invalid_Message."""
    chain = Chain(3)
    unknown = outcome(chain[0].transport.request([node(C)], EXP_A_REQ, b""))
    store = outcome(chain[0].transport.request([node(C)], MessageCode.STORE_REQ, b""))
    chain.settle()
    for box in (unknown, store):
        error = failureOf(box)
        assert isinstance(error, ReloadError)
        assert (error.code, error.nodeId) == (ErrorCode.INVALID_MESSAGE, C)
        assert "not supported" in error.text


def test_an_unknown_critical_extension_is_refused() -> None:
    """Section 6.3.3: critical: Error_Unknown_Extension; not critical: the
    message is processed."""
    chain = Chain(2)
    recorder, link = withRecorder(chain)
    link.send(craft((node(B),), PingReq(), extensions=(MessageExtension(7, True, b"?"),)))
    link.send(
        craft(
            (node(B),),
            PingReq(),
            transactionId=78,
            extensions=(MessageExtension(7, False, b"?"),),
        )
    )
    chain.settle()
    first, second = sorted(answers(recorder), key=lambda m: m.header.transaction_id)
    assert errorOf(first).error_code == ErrorCode.UNKNOWN_EXTENSION
    assert second.contents.message_code == PingAns.CODE


def test_response_copy_options_come_back_with_their_flags_cleared() -> None:
    """Section 6.3.2.3: RESPONSE_COPY options are copied to the answer with
    the three flags cleared."""
    chain = Chain(2)
    recorder, link = withRecorder(chain)
    options = (
        ForwardingOption(9, ForwardingFlags.RESPONSE_COPY, b"keep"),
        ForwardingOption(10, 0, b"drop"),
    )
    link.send(craft((node(B),), PingReq(), options=options))
    chain.settle()
    (answer,) = answers(recorder)
    assert answer.header.options == (ForwardingOption(9, 0, b"keep"),)


def test_configuration_sequence_mismatch() -> None:
    """Section 6.3.2.1: the destination refuses another sequence with
    Error_Config_Too_Old or Error_Config_Too_New and, for an old one, is
    told to send the requester a ConfigUpdate.  The intermediate B, with a
    third sequence, forwards without checking."""
    settings = {
        A: TransportSettings(configurationSequence=4),
        B: TransportSettings(configurationSequence=9),
        C: TransportSettings(configurationSequence=5),
        D: TransportSettings(configurationSequence=3),
    }
    chain = Chain(4, settings=settings)
    told: list[bytes] = []
    chain[2].transport.onConfigurationTooOld = told.append
    old = outcome(chain[0].ping(C))
    new = outcome(chain[0].ping(D))
    chain.settle()
    tooOld, tooNew = failureOf(old), failureOf(new)
    assert isinstance(tooOld, ReloadError) and isinstance(tooNew, ReloadError)
    assert (tooOld.code, tooOld.nodeId) == (ErrorCode.CONFIG_TOO_OLD, C)
    assert (tooNew.code, tooNew.nodeId) == (ErrorCode.CONFIG_TOO_NEW, D)
    assert told == [A]


# -- bad input -----------------------------------------------------------------------


def test_malformed_messages_are_answered_or_dropped_and_other_links_go_on() -> None:
    """DESIGN.md: a malformed message gets the RFC Error or is dropped; no
    exception reaches the link, and everyone else is served."""
    chain = Chain(3)
    recorder, link = withRecorder(chain)
    good = craft((node(B),), PingReq())
    headerEnd = HeaderView(good).body_offset
    # 1. Not RELOAD at all: dropped (nothing to answer).
    link.send(b"\x00garbage that is not a RELOAD message at all, not even close")
    # 2. A header that lies about the length: dropped.
    link.send(good[:-3])
    # 3. A request for B whose contents do not decode: Error_Invalid_Message.
    broken = bytearray(good)
    broken[headerEnd + 2 : headerEnd + 6] = b"\xff\xff\xff\xff"  # body length
    link.send(bytes(broken))
    # 4. The same for C: B forwards it without looking; C answers.
    forC = bytearray(craft((node(C),), PingReq(), transactionId=79))
    forC[headerEnd + 2 : headerEnd + 6] = b"\xff\xff\xff\xff"
    link.send(bytes(forC))
    chain.settle()
    errors = sorted(answers(recorder), key=lambda m: m.header.transaction_id)
    assert [m.header.transaction_id for m in errors] == [77, 79]
    assert all(errorOf(m).error_code == ErrorCode.INVALID_MESSAGE for m in errors)
    assert errors[1].header.via_list == (node(C),)
    assert chain[1].transport.counters["malformed"] == 3
    assert chain[1].transport.counters["internalErrors"] == 0
    # Everybody else is still served.
    box = outcome(chain[0].ping(C))
    chain.settle()
    assert responseOf(box).nodeId == C


def test_an_exception_while_routing_does_not_reach_the_link() -> None:
    chain = Chain(3)

    def broken(destination: bytes) -> bytes | None:
        raise RuntimeError("topology bug")

    chain.topology(1).route = broken
    _recorder, link = withRecorder(chain)
    link.send(craft((Destination.resource(RESOURCE),), PingReq()))
    chain.settle()  # would raise if messageReceived let it out
    assert chain[1].transport.counters["internalErrors"] == 1
    box = outcome(chain[1].ping(C))
    chain.settle()
    assert responseOf(box).nodeId == C


def test_a_request_whose_signer_is_not_its_source_is_dropped() -> None:
    """Section 6.3.4: "If the signature fails, the implementation SHOULD
    simply drop the message and MUST NOT process it"."""
    chain = Chain(2)
    recorder, link = withRecorder(chain)
    link.send(craft((node(B),), PingReq(), signer=A))
    chain.settle()
    assert recorder.received == []
    assert chain[1].transport.counters["badSignature"] == 1


def test_an_answer_from_the_wrong_node_is_dropped() -> None:
    """Section 6.3.4 rule 1: "The response to a message sent to a Node-ID
    MUST have been sent by that Node-ID"; the request is retransmitted and
    finally times out."""
    chain = Chain(2)
    _recorder, toA = withRecorder(chain, A)
    chain.net.links[(A, B)].loseIf = lambda data: True
    box = outcome(chain[0].ping(B))
    chain.net.clock.advance(0.001)
    request = Message.decode(chain.net.links[(A, B)].sent[0])
    forged = craft(
        (node(A),),
        PingAns(1, 2),
        transactionId=request.header.transaction_id,
        via=(node(T),),
    )
    toA.send(forged)
    chain.settle()
    assert isinstance(failureOf(box), ReloadTimeout)
    assert chain[0].transport.counters["invalidAnswers"] == 1


# -- retransmission ------------------------------------------------------------------------


def test_a_lost_request_is_retransmitted() -> None:
    """Section 6.2.1: no answer when the timer fires: the same transaction
    again."""
    chain = Chain(3)
    chain.net.links[(B, C)].lose = 1
    box = outcome(chain[0].ping(C))
    chain.settle()
    assert responseOf(box).nodeId == C
    assert chain[0].transport.transactions.retransmitted == 1
    assert chain.net.clock.seconds() == pytest.approx(3.04)


def test_a_retransmitted_request_gets_the_same_answer_without_running_twice() -> None:
    """Section 6.2.1: "Receiving nodes MUST generate semantically equivalent
    responses to retransmissions of the same request"."""
    chain = Chain(3)
    seen: list[Request] = []
    chain[2].dispatcher.register(EXP_A_REQ, echo(seen), decoder=bytes)
    chain.net.links[(C, B)].lose = 1  # the first answer is lost
    box = outcome(chain[0].transport.request([node(C)], EXP_A_REQ, b"once"))
    chain.settle()
    assert responseOf(box).body == b"echo:once"
    assert len(seen) == 1
    assert chain[2].transport.counters["duplicateRequests"] == 1


def test_duplicate_answers_are_dropped() -> None:
    chain = Chain(3)
    chain.net.links[(C, B)].duplicate = True
    box = outcome(chain[0].ping(C))
    chain.settle()
    assert responseOf(box).nodeId == C
    assert chain[0].transport.counters["unexpectedAnswers"] == 1


def test_no_answer_fails_the_request_after_15_seconds() -> None:
    """Section 6.2.1: five transmissions, 3 s apart; failure when the fifth
    timer fires, at the 15 s request lifetime."""
    chain = Chain(3)
    chain.net.links[(B, C)].loseIf = lambda data: True
    box = outcome(chain[0].ping(C))
    other = outcome(chain[0].ping(B))  # unaffected, answered at once
    chain.settle()
    error = failureOf(box)
    assert isinstance(error, ReloadTimeout)
    assert error.transmissions == 5 and error.elapsed == 15.0
    assert len(chain.net.links[(A, B)].sent) == 6
    assert len(chain.net.links[(B, C)].sent) == 5
    assert responseOf(other).nodeId == B


# -- the topology's methods --------------------------------------------------------------


def test_join_and_leave_must_come_directly_from_the_peer_named() -> None:
    """Sections 6.4.2.1 and 6.4.2.2: the Node-ID in the request must be the
    signer's (Error_Forbidden), and the request must arrive over the
    signer's own link."""
    chain = Chain(3)
    direct = outcome(chain[0].request(B, JoinReq.CODE, JoinReq(A).encode()))
    relayed = outcome(chain[0].request(C, JoinReq.CODE, JoinReq(A).encode()))
    impostor = outcome(chain[0].request(B, JoinReq.CODE, JoinReq(D).encode()))
    leave = outcome(chain[0].request(B, LeaveReq.CODE, LeaveReq(A, b"bye").encode()))
    chain.settle()
    code, body = direct[0]
    assert code == JoinAns.CODE and JoinAns.decode(body).overlay_specific_data == b"welcome"
    for box in (relayed, impostor):
        error = failureOf(box)
        assert isinstance(error, ReloadError) and error.code == ErrorCode.FORBIDDEN
    assert leave[0][0] == LeaveReq.CODE + 1
    assert chain.topology(1).calls == [("join", A, b""), ("leave", A, b"bye")]
    assert chain.topology(2).calls == []


def test_an_update_reaches_the_topology_with_its_verified_sender() -> None:
    chain = Chain(3)
    box = outcome(chain[0].request(C, UpdateReq.CODE, UpdateReq(b"state").encode()))
    chain.settle()
    assert box[0][0] == UpdateReq.CODE + 1
    assert chain.topology(2).calls == [("update", A, b"state")]


def test_the_wildcard_is_answered_by_the_first_hop() -> None:
    chain = Chain(2)
    recorder, link = withRecorder(chain)
    link.send(craft((node(wildcard(16)),), PingReq()))
    chain.settle()
    (answer,) = answers(recorder)
    assert answer.contents.message_code == PingAns.CODE
    assert answer.security_block.signature.identity.value == B


def test_links_going_up_and_down_reach_the_topology() -> None:
    chain = Chain(3)
    assert chain.topology(1).up == [A, C]
    chain.net.unlink(B, C)
    chain.settle()
    assert chain.topology(1).down == [C]
    assert chain.topology(2).down == [B]
    assert not chain[1].transport.isConnected(C)
    box = outcome(chain[0].ping(C))
    chain.settle()
    assert isinstance(failureOf(box), ReloadTimeout)


def test_settings_come_from_the_overlay_configuration() -> None:
    """Section 11.1: initial-ttl, max-message-size, overlay-reliability-timer
    (milliseconds) and the configuration sequence."""
    configuration = dataclasses.replace(
        defaultConfiguration("overlay.example.org"),
        sequence=7,
        initialTtl=30,
        maxMessageSize=4000,
        overlayReliabilityTimer=500,
    )
    settings = TransportSettings.fromConfiguration(configuration)
    assert settings.overlay == overlay_hash("overlay.example.org")
    assert (settings.configurationSequence, settings.initialTtl) == (7, 30)
    assert (settings.maxMessageSize, settings.reliabilityTimer) == (4000, 0.5)
    default = TransportSettings.fromConfiguration(defaultConfiguration())
    assert (default.initialTtl, default.maxMessageSize, default.reliabilityTimer) == (
        100,
        5000,
        3.0,
    )


def test_a_replacement_link_keeps_the_node_connected() -> None:
    """The link layer keeps one link per Node-ID; when it swaps one for a
    newer, the topology sees no change and messages flow on the new one."""
    chain = Chain(2)
    old = chain.net.links[(A, B)]
    chain.net.forget(old)
    chain.net.forget(chain.net.links[(B, A)])
    new = chain.net.link(A, B)
    old.close()
    chain.settle()
    assert chain.topology(0).up == [B] and chain.topology(0).down == []
    box = outcome(chain[0].ping(B))
    chain.settle()
    assert responseOf(box).nodeId == B
    assert new.sent
