"""Attach over the overlay, No-ICE link types (RFC 6940 sections 6.5.1,
6.5.1.2, 6.5.1.11, 6.4.2.3)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from reload.errors import ReloadError
from reload.transport.attach import AttachFailed, NoIceAttachHandler, hostCandidate
from reload.transport.transport import Response
from reload.wire.attach import AttachAns, AttachReq, CandType, IceCandidate, IpAddressPort
from reload.wire.attach import OverlayLinkType as Link
from reload.wire.header import Destination, HeaderView
from reload.wire.message import ErrorCode

from .chain import A, B, C, Chain

RESOURCE = b"\x33" * 16


def outcome(d: Deferred[Any]) -> list[Any]:
    box: list[Any] = []
    d.addBoth(box.append)
    return box


def test_attach_through_the_overlay_opens_a_direct_link() -> None:
    """Section 6.5.1: the AttachReq travels A-B-C; C answers with its
    candidates and (as the "active" answerer) connects to A's; A's Deferred
    fires with C once the link is up and the topology heard of it."""
    chain = Chain(3)
    box = outcome(chain[0].attach(C))
    chain.settle()
    assert box == [C]
    assert (A, C) in chain.net.links
    assert C in chain.topology(0).up and A in chain.topology(2).up
    assert chain.topology(2).updatesSent == []


def test_send_update_makes_the_answerer_send_an_update_once_connected() -> None:
    """Section 6.4.2.3: "When a peer receives an Attach request with the
    send_update flag set to True ..., it MUST send an Update message back to
    the sender of the Attach request after completion of the corresponding
    ICE check and TLS connection"."""
    chain = Chain(3)
    box = outcome(chain[0].attach(C, sendUpdate=True))
    chain.settle()
    assert box == [C]
    assert chain.topology(2).updatesSent == [A]


def test_attach_to_a_resource_reaches_the_responsible_peer() -> None:
    chain = Chain(3, owners={RESOURCE: 2})
    box = outcome(chain[0].attach(RESOURCE))
    chain.settle()
    assert box == [C]


def test_attach_source_routed_through_a_neighbour() -> None:
    """Section 10.6: "a new neighbour is reached through the peer it was
    learned from": destination list [B, C]."""
    chain = Chain(3)
    box = outcome(chain[0].attach(C, via=B))
    chain.settle()
    assert box == [C]
    request = chain.net.links[(A, B)].sent[0]
    assert HeaderView(request).destinations == (
        Destination.node(B),
        Destination.resource(C),
    )


def test_attach_to_a_connected_peer_needs_no_new_link() -> None:
    chain = Chain(3)
    box = outcome(chain[0].attach(B))
    chain.settle()
    assert box == [B]
    assert len([k for k in chain.net.links if A in k]) == 2


def test_an_attach_that_comes_back_to_its_sender_fails() -> None:
    chain = Chain(3, owners={RESOURCE: 0})
    box = outcome(chain[0].attach(RESOURCE))
    chain.settle()
    assert isinstance(box[0], Failure) and box[0].check(AttachFailed)


def test_crossing_attaches_end_with_one_link() -> None:
    """Section 6.5.1.2: when two peers Attach to each other at once, the one
    with the larger Node-ID answers Error_In_Progress and completes its own;
    both callers end up with the same link."""
    chain = Chain(3)
    fromA = outcome(chain[0].attach(C))
    fromC = outcome(chain[2].attach(A))
    chain.settle()
    assert fromA == [C] and fromC == [A]
    assert chain[2].transport.counters["errorsSent"] == 1  # C's Error_In_Progress
    assert chain.topology(0).up.count(C) == 1
    assert chain.topology(2).up.count(A) == 1


def test_ice_only_candidates_are_refused() -> None:
    """Only No-ICE link types are made (section 6.5.1.11); an offer with
    ICE candidates only gets Error_Incompatible_with_Overlay."""
    chain = Chain(3)
    ice = IceCandidate(
        IpAddressPort.of("192.0.2.1", 6084), Link.DTLS_UDP_SR, b"1", 1, CandType.HOST
    )
    offer = AttachReq(b"u", b"p", b"passive", (ice,))
    box = outcome(chain[0].requestTo([Destination.node(C)], AttachReq.CODE, offer.encode()))
    chain.settle()
    assert isinstance(box[0], Failure)
    error = box[0].value
    assert isinstance(error, ReloadError)
    assert error.code == ErrorCode.INCOMPATIBLE_WITH_OVERLAY


def test_the_answer_carries_the_answerers_candidates() -> None:
    """Section 6.5.1.1: role "passive" for the offerer, "active" for the
    answerer; the answer lists the answerer's No-ICE candidates."""
    chain = Chain(2)
    handler = NoIceAttachHandler(chain.net.connector(A), [hostCandidate("127.0.0.1", 1)])
    offer = handler.offer(sendUpdate=False)
    assert offer.role == b"passive"
    box = outcome(chain[0].requestTo([Destination.node(B)], AttachReq.CODE, offer.encode()))
    chain.settle()
    response = box[0]
    assert isinstance(response, Response)
    answer = AttachAns.decode(response.body)
    assert answer.role == b"active"
    (candidate,) = answer.candidates
    assert candidate.overlay_link == Link.TLS_TCP_FH_NO_ICE
    assert (str(candidate.addr_port.ip), candidate.addr_port.port) == chain.net.addressOf[B]


def test_the_offerer_can_be_the_one_that_connects() -> None:
    chain = Chain(3)
    for node in chain.nodes:
        service = node.attachService
        assert service is not None
        assert isinstance(service.handler, NoIceAttachHandler)
        service.handler.initiator = "offerer"
    box = outcome(chain[0].attach(C))
    chain.settle()
    assert box == [C]


def test_a_candidate_with_the_wrong_node_fails_the_attach() -> None:
    """Section 6.5.1.11: "The certificate exchanged during the TLS or DTLS
    handshake MUST match the node which sent the AttachReqAns"."""
    chain = Chain(3)
    service = chain[2].attachService
    assert service is not None
    assert isinstance(service.handler, NoIceAttachHandler)
    service.handler._candidates = [hostCandidate(*chain.net.addressOf[B])]
    for node in chain.nodes:
        handler = node.attachService.handler if node.attachService else None
        assert isinstance(handler, NoIceAttachHandler)
        handler.initiator = "offerer"
    box = outcome(chain[0].attach(C))
    chain.settle()
    assert isinstance(box[0], Failure) and box[0].check(AttachFailed)
