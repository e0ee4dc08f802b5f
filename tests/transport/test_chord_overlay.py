"""CHORD-RELOAD (RFC 6940 section 10) on the real transport: eight nodes on
memory links join one by one through Attach, Join and Update messages that
are signed, routed with via lists and answered symmetrically; then every
lookup, by Ping to a Resource-ID (section 6.5.3) and by iterative RouteQuery
(sections 6.4.2.4, 10.8), ends at the node responsible (section 10.1)."""

from __future__ import annotations

from random import Random
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from reload.transport.attach import NoIceAttachHandler, hostCandidate
from reload.transport.node_api import TransportNode
from reload.transport.security import TrustingSecurity
from reload.transport.transport import Response
from reload.wire.header import Destination
from reload.wire.message import MessageCode
from reload.wire.methods import PingAns
from topologies.chordreload.codec import ChordRouteQueryAns
from topologies.chordreload.ring import idToInt
from topologies.chordreload.topology import ChordTopology

from .memlinks import MemoryNetwork


class Overlay:
    def __init__(self, seed: int) -> None:
        self.rnd = Random(seed)
        self.net = MemoryNetwork()
        self.nodes: dict[bytes, TransportNode] = {}

    def add(self, nodeId: bytes) -> TransportNode:
        """A CHORD-RELOAD node, not joined yet."""
        node = self.node(nodeId)
        node.useTopology(ChordTopology(node, rng=Random(self.rnd.random())))
        self.nodes[nodeId] = node
        return node

    def node(self, nodeId: bytes) -> TransportNode:
        """A node on the memory network, without a topology."""
        net = self.net

        def candidates() -> list[Any]:
            return [hostCandidate(*net.addressOf[nodeId])]

        node = TransportNode(
            nodeId,
            TrustingSecurity(nodeId),
            net.clock,
            attachHandler=NoIceAttachHandler(net.connector(nodeId), candidates),
            rng=Random(self.rnd.random()),
        )
        net.add(nodeId, node.transport)
        return node

    def chord(self, node: TransportNode) -> ChordTopology:
        topology = node.topology
        assert isinstance(topology, ChordTopology)
        return topology

    def joined(self) -> list[TransportNode]:
        return sorted(
            (n for n in self.nodes.values() if self.chord(n).inRing),
            key=lambda n: idToInt(n.nodeId),
        )

    def responsible(self, resourceId: bytes) -> bytes:
        target = idToInt(resourceId)
        ring = self.joined()
        for node in ring:
            if idToInt(node.nodeId) >= target:
                return node.nodeId
        return ring[0].nodeId

    def run(self, d: Deferred[Any]) -> Any:
        box: list[Any] = []
        d.addBoth(box.append)
        self.net.settle()
        assert len(box) == 1, "did not finish"
        return box[0]


@pytest.fixture(scope="module", params=[1, 2])
def overlay(request: pytest.FixtureRequest) -> Overlay:
    overlay = Overlay(request.param)
    first = overlay.add(overlay.rnd.randbytes(16))
    assert overlay.run(overlay.chord(first).join(None)) is None
    for _ in range(7):
        bootstrap = overlay.rnd.choice(overlay.joined())
        node = overlay.add(overlay.rnd.randbytes(16))
        # Section 10.5 step 1: connect to the bootstrap node first.
        overlay.net.link(node.nodeId, bootstrap.nodeId)
        assert overlay.run(overlay.chord(node).join(bootstrap.nodeId)) is None
        assert overlay.chord(node).phase == "joined"
    return overlay


def test_eight_nodes_join_through_the_transport_into_a_correct_ring(overlay: Overlay) -> None:
    ring = overlay.joined()
    assert len(ring) == 8
    for i, node in enumerate(ring):
        table = overlay.chord(node).ring
        assert table.successors == [ring[(i + j) % 8].nodeId for j in (1, 2, 3)]
        assert table.predecessors == [ring[(i - j) % 8].nodeId for j in (1, 2, 3)]
    # Everything went over the wire: Attaches, Joins and Updates, signed,
    # verified and answered; nothing was malformed or refused for a bad
    # signature.
    totals: dict[str, int] = {}
    for node in ring:
        for key, value in node.transport.counters.items():
            totals[key] = totals.get(key, 0) + value
    assert totals["forwarded"] > 0 and totals["answered"] > 0
    assert totals.get("malformed", 0) == totals.get("badSignature", 0) == 0
    assert totals.get("internalErrors", 0) == 0


def test_every_ping_to_a_resource_reaches_the_responsible_node(overlay: Overlay) -> None:
    rnd = Random(7)
    ring = overlay.joined()
    for _ in range(40):
        resourceId = rnd.randbytes(16)
        start = rnd.choice(ring)
        response = overlay.run(start.ping(resourceId, resource=True))
        assert isinstance(response, Response), response
        assert response.code == MessageCode.PING_ANS
        PingAns.decode(response.body)
        assert response.nodeId == overlay.responsible(resourceId)


def test_iterative_route_queries_end_at_the_responsible_node(overlay: Overlay) -> None:
    """Section 6.4.2.4: "The sender selects one of the peers ... and sends
    it a RouteQuery ... Eventually, the sender gets a response from a peer
    that is closest to the identifier"; CHORD-RELOAD answers with the next
    peer, or the responder itself when it would keep the message (10.8)."""
    rnd = Random(8)
    ring = overlay.joined()
    for _ in range(20):
        resourceId = rnd.randbytes(16)
        start = rnd.choice(ring)
        peer = start.nodeId
        for _hop in range(8):
            response = overlay.run(start.routeQuery(peer, Destination.resource(resourceId)))
            assert isinstance(response, Response), response
            assert response.nodeId == peer
            nextPeer = ChordRouteQueryAns.decode(response.body).next_peer
            if nextPeer == peer:
                break
            peer = nextPeer
        assert peer == overlay.responsible(resourceId)


def test_requests_to_every_node_id_are_answered_by_that_node(overlay: Overlay) -> None:
    rnd = Random(9)
    ring = overlay.joined()
    for target in ring:
        start = rnd.choice(ring)
        response = overlay.run(start.ping(target.nodeId))
        assert isinstance(response, Response) and response.nodeId == target.nodeId
