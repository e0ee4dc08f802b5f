"""Routing decisions on the forwarding header alone (RFC 6940 sections 6.1,
6.2.2, 6.3.2, 6.3.2.3 and 13.6.5), without any I/O."""

from __future__ import annotations

import pytest

from reload.transport.routing import (
    Deliver,
    Drop,
    Forward,
    Reject,
    Router,
    readMessageCode,
    responseDestinations,
    wildcard,
)
from reload.transport.security import UNSIGNED
from reload.wire.header import (
    Destination,
    ForwardingFlags,
    ForwardingHeader,
    ForwardingOption,
    HeaderView,
    overlay_hash,
)
from reload.wire.message import ErrorCode, Message, MessageContents
from reload.wire.methods import PingReq

OVERLAY = overlay_hash("reload.local")
ME = b"\x55" * 16
LEFT = b"\x44" * 16
RIGHT = b"\x66" * 16
FAR = b"\x99" * 16
CLIENT = b"\x77" * 16
MINE = b"\x50" * 16  # a Resource-ID this node is responsible for
THEIRS = b"\x90" * 16  # one it is not


def node(value: bytes) -> Destination:
    return Destination.node(value)


def resource(value: bytes) -> Destination:
    return Destination.resource(value)


def view(
    *destinations: Destination,
    via: tuple[Destination, ...] = (),
    ttl: int = 100,
    overlay: int = OVERLAY,
    options: tuple[ForwardingOption, ...] = (),
) -> HeaderView:
    header = ForwardingHeader(overlay, 42, tuple(destinations), via, options=options, ttl=ttl)
    contents = MessageContents.of(PingReq())
    return HeaderView(Message(header, contents, UNSIGNED).encode())


def nextHop(destination: bytes) -> bytes | None:
    if destination in (ME, MINE):
        return None
    return RIGHT


@pytest.fixture
def router() -> Router:
    return Router(
        ME,
        OVERLAY,
        nextHop=nextHop,
        isConnected=lambda n: n in (LEFT, RIGHT, CLIENT),
        initialTtl=100,
    )


def test_a_message_for_this_node_is_delivered(router: Router) -> None:
    """Section 6.1.1: this node's Node-ID, the only entry."""
    assert router.route(view(node(ME)), LEFT) == Deliver(0)


def test_this_nodes_entry_is_removed_and_the_next_examined(router: Router) -> None:
    """Section 6.1.1: "the node removes the entry from the Destination List
    and repeats the routing process with the next entry"."""
    assert router.route(view(node(ME), node(FAR)), LEFT) == Forward(RIGHT, 1)
    assert router.route(view(node(ME), node(CLIENT)), LEFT) == Forward(CLIENT, 1)


def test_a_resource_this_node_is_responsible_for_is_delivered(router: Router) -> None:
    assert router.route(view(resource(MINE)), LEFT) == Deliver(0)
    assert router.route(view(node(ME), resource(MINE)), LEFT) == Deliver(1)


def test_a_resource_that_is_not_last_is_dropped(router: Router) -> None:
    """Section 6.1.1: "If there are other entries, the message MUST be
    silently dropped"."""
    assert isinstance(router.route(view(resource(MINE), node(FAR)), LEFT), Drop)


def test_other_ids_go_to_the_topologys_next_hop(router: Router) -> None:
    """Section 6.1.2."""
    assert router.route(view(resource(THEIRS)), LEFT) == Forward(RIGHT, 0)
    assert router.route(view(node(FAR)), LEFT) == Forward(RIGHT, 0)


def test_a_connected_node_is_reached_directly(router: Router) -> None:
    """Section 6.1.2: "If the first entry on the Destination List is in the
    peer's Connection Table, the peer MUST forward the message to that peer
    directly"."""
    assert router.route(view(node(CLIENT)), LEFT) == Forward(CLIENT, 0)


def test_a_node_id_in_this_nodes_range_but_not_connected_is_dropped() -> None:
    """Section 6.1.1: "the node MUST drop the message silently unless the
    Node-ID corresponds to a node which is directly connected"."""
    router = Router(ME, OVERLAY, nextHop=lambda d: None, isConnected=lambda n: False)
    assert isinstance(router.route(view(node(FAR)), LEFT), Drop)


def test_the_wildcard_is_consumed_locally(router: Router) -> None:
    """Section 6.1.1: "A message with a wildcard Node-ID as its first entry
    is never forwarded"."""
    assert router.route(view(node(wildcard(16)), node(FAR)), LEFT) == Deliver(0, True)


def test_ttl_zero_is_not_forwarded(router: Router) -> None:
    """Section 6.3.2: "If a received message has a TTL of 0 and the message
    is not destined for the receiving node ... an Error_TTL_Exceeded error
    should be generated"."""
    decision = router.route(view(node(FAR), ttl=0), LEFT)
    assert isinstance(decision, Reject)
    assert decision.errorCode == ErrorCode.TTL_EXCEEDED
    # ... but it is delivered when it is for this node.
    assert router.route(view(node(ME), ttl=0), LEFT) == Deliver(0)


def test_a_ttl_above_initial_ttl_is_refused(router: Router) -> None:
    """Section 6.3.2: "Implementations which receive messages with a TTL
    greater than the current value of initial-ttl ... MUST discard the
    message and send an Error_TTL_Exceeded error"."""
    decision = router.route(view(node(ME), ttl=101), LEFT)
    assert isinstance(decision, Reject) and decision.errorCode == ErrorCode.TTL_EXCEEDED


def test_another_overlay_is_refused(router: Router) -> None:
    """Section 6.1: wrong header fields: discarded, with an error."""
    decision = router.route(view(node(ME), overlay=OVERLAY ^ 1), LEFT)
    assert isinstance(decision, Reject)
    assert decision.errorCode == ErrorCode.INCOMPATIBLE_WITH_OVERLAY


def test_duplicate_destinations_are_refused(router: Router) -> None:
    """Section 13.6.5: "check the Destination List for duplicate entries and
    discard such records with an Error_Invalid_Message error"."""
    decision = router.route(view(node(FAR), node(ME), node(FAR)), LEFT)
    assert isinstance(decision, Reject) and decision.errorCode == ErrorCode.INVALID_MESSAGE


def test_a_message_that_passed_here_before_is_a_loop(router: Router) -> None:
    decision = router.route(view(node(FAR), via=(node(LEFT), node(ME))), RIGHT)
    assert isinstance(decision, Reject) and decision.errorCode == ErrorCode.INVALID_MESSAGE
    assert "loop" in decision.reason


def test_opaque_destinations_are_dropped(router: Router) -> None:
    """Section 6.1.3: only the peer that compressed a list can expand it;
    this node compresses none."""
    assert isinstance(router.route(view(Destination.compressed_id(0x8123)), LEFT), Drop)
    assert isinstance(router.route(view(Destination.opaque(b"xy")), LEFT), Drop)


def test_critical_forwarding_options(router: Router) -> None:
    """Section 6.3.2.3: an option this node does not understand, flagged
    FORWARD_CRITICAL (when forwarding) or DESTINATION_CRITICAL (when
    answering): Error_Unsupported_Forwarding_Option."""
    forward = (ForwardingOption(9, ForwardingFlags.FORWARD_CRITICAL),)
    destination = (ForwardingOption(9, ForwardingFlags.DESTINATION_CRITICAL),)
    decision = router.route(view(node(FAR), options=forward), LEFT)
    assert isinstance(decision, Reject)
    assert decision.errorCode == ErrorCode.UNSUPPORTED_FORWARDING_OPTION
    assert router.route(view(node(ME), options=forward), LEFT) == Deliver(0)
    assert router.route(view(node(FAR), options=destination), LEFT) == Forward(RIGHT, 0)
    decision = router.route(view(node(ME), options=destination), LEFT)
    assert isinstance(decision, Reject)
    assert decision.errorCode == ErrorCode.UNSUPPORTED_FORWARDING_OPTION


def test_forwarding_appends_the_previous_hop_and_decrements_the_ttl(router: Router) -> None:
    """Section 6.1.2: "D would forward to the next node E with Via List
    [A, B, C]" for a message from C with Via List [A, B]; section 6.3.2:
    the TTL is decremented "just before transmission"."""
    a, b = b"\x0a" * 16, b"\x0b" * 16
    received = view(node(ME), node(FAR), via=(node(a), node(b)), ttl=7)
    decision = router.route(received, LEFT)
    assert decision == Forward(RIGHT, 1)
    assert isinstance(decision, Forward)
    out = HeaderView(router.forwarded(received, decision, node(LEFT)))
    assert out.via_list == (node(a), node(b), node(LEFT))
    assert out.destinations == (node(FAR),)
    assert out.ttl == 6
    assert out.data[out.body_offset :] == received.data[received.body_offset :]


def test_originated_messages_keep_their_ttl(router: Router) -> None:
    originated = view(node(ME), node(FAR), ttl=100)
    decision = router.route(originated, None)
    assert isinstance(decision, Forward)
    out = HeaderView(router.forwarded(originated, decision, None))
    assert (out.ttl, out.via_list, out.destinations) == (100, (), (node(FAR),))


def test_the_answer_retraces_the_via_list() -> None:
    """Section 6.2.2 and the example of 6.1.2: E, receiving from D with Via
    List [A, B, C], answers along [D, C, B, A]."""
    a, b, c, d = (bytes([i]) * 16 for i in range(1, 5))
    route = responseDestinations((node(a), node(b), node(c)), d)
    assert route == (node(d), node(c), node(b), node(a))
    assert responseDestinations((), None) == ()


def test_the_message_code_is_read_from_the_raw_bytes() -> None:
    assert readMessageCode(view(node(ME))) == PingReq.CODE
