"""Storage, replication and handover with any topology (RFC 6940 sections
7.4.1, 10.4, 10.5 step 6 and 10.7.3): peers on memory links, each the real
transport, storage service, replicator and storage handlers wired by
:class:`reload.storagestack.StorageStack` as :class:`reload.peer.OverlayPeer`
wires them, and nothing but
:class:`~reload.interfaces.ITopology` between them and the topology.  Every
test runs against CHORD-RELOAD and against the tests' own FULL-MESH
(examples/fullmesh/topologies/fullmesh.py)."""

from __future__ import annotations

from random import Random
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from reload.interfaces import ITopology, ITopologyPlugin
from reload.security.certificates import PeerIdentity
from reload.storage.kinds import KindTable
from reload.storage.policies import PolicyRegistry
from reload.storage.sqlite import MemoryStore
from reload.storagestack import StorageStack
from reload.transport.node_api import TransportNode
from reload.transport.transport import Response
from reload.wire.header import Destination
from reload.wire.storage import StoreAns, StoreReq

from ..topology_plugins import TOPOLOGIES, topologyPlugin
from ..transport.test_chord_overlay import Overlay
from .support import ARRAY_NODE, KIND_CONFIGS, NOW, certificateCache, entry, makeIdentity, sign
from .support import storeReq as makeStoreReq

#: Seconds the test values live (30 days).
LIFETIME = 30 * 24 * 3600


class Peer:
    """One peer: node, topology, storage and replication."""

    def __init__(self, overlay: StorageOverlay, nodeId: bytes) -> None:
        self.nodeId = nodeId
        net = overlay.overlay.net
        self.node: TransportNode = overlay.overlay.node(nodeId)
        self.topology: Any = overlay.plugin.makeTopology(
            self.node, rng=Random(overlay.overlay.rnd.random())
        )
        self.node.useTopology(self.topology)
        registry = PolicyRegistry()
        stack = StorageStack(
            self.node,
            overlay.writer,
            overlay.cache,
            self.topology,
            KindTable.fromConfiguration(KIND_CONFIGS, registry),
            registry,
            MemoryStore(),
            clock=net.clock,
        )
        self.service = stack.service
        self.replicator = stack.replicator
        self.alive = True

    def holds(self, resourceId: bytes) -> bool:
        return resourceId in self.service.resources()


class StorageOverlay:
    def __init__(self, plugin: Any, seed: int = 5) -> None:
        self.plugin = plugin
        self.overlay = Overlay(seed)
        self.overlay.net.clock.advance(NOW)
        #: The writer: its certificate's Node-ID is a peer's (NODE-MATCH).
        self.writer: PeerIdentity = makeIdentity("writer@example.org")
        self.cache = certificateCache(self.writer)
        self.peers: dict[bytes, Peer] = {}

    def run(self, d: Deferred[Any]) -> Any:
        box: list[Any] = []
        d.addBoth(box.append)
        self.overlay.net.settle(horizon=60.0)
        assert len(box) == 1, "did not finish"
        return box[0]

    def live(self) -> list[Peer]:
        return sorted((p for p in self.peers.values() if p.alive), key=lambda p: p.nodeId)

    def add(self, nodeId: bytes) -> Peer:
        peer = Peer(self, nodeId)
        members = [p for p in self.live() if p.topology.inRing]
        self.peers[nodeId] = peer
        if not members:
            assert self.run(peer.topology.join(None)) is None
        else:
            bootstrap = self.overlay.rnd.choice(members)
            self.overlay.net.link(nodeId, bootstrap.nodeId)
            assert self.run(peer.topology.join(bootstrap.nodeId)) is None
        self.overlay.net.settle(horizon=60.0)
        assert peer.topology.inRing and peer.topology.phase == "joined"
        return peer

    def fail(self, peer: Peer) -> None:
        """A crash: every link of ``peer`` closes; it answers nothing more."""
        net = self.overlay.net
        peer.alive = False
        peer.replicator.stop()
        for a, b in list(net.links):
            if peer.nodeId in (a, b):
                net.unlink(a, b)
        net.addresses.pop(net.addressOf[peer.nodeId], None)
        peer.node.stop()
        net.settle(horizon=60.0)

    def expectedHolders(self, resourceId: bytes) -> set[bytes]:
        """Section 10.1 and 10.4 on the global ring: the first live peer at
        or after ``resourceId`` and the two after it."""
        ring = [p.nodeId for p in self.live()]
        start = next((i for i, n in enumerate(ring) if n >= resourceId), 0)
        return {ring[(start + i) % len(ring)] for i in range(min(3, len(ring)))}

    def holders(self, resourceId: bytes) -> set[bytes]:
        return {p.nodeId for p in self.live() if p.holds(resourceId)}

    def store(self, via: Peer, value: bytes) -> bytes:
        """The writer's NODE-MATCH value at H(its Node-ID), sent by the
        peer with that Node-ID through the overlay (section 7.4.1)."""
        resourceId = via.topology.hashResource(self.writer.nodeId)
        # A lifetime far beyond any settle: the harness runs timers while any
        # is due within its horizon, and a topology's periodic maintenance
        # (ONE-HOP-RELOAD's digest rounds, ~2 min apart per peer, jittered)
        # can keep a settle going for hours of simulated time; these tests
        # are about placement, not expiry.
        data = sign(
            self.writer, resourceId, ARRAY_NODE, entry(0, value), int(NOW * 1000), lifetime=LIFETIME
        )
        body = makeStoreReq(resourceId, ARRAY_NODE, [data]).encode()
        response = self.run(
            via.node.transport.request([Destination.resource(resourceId)], StoreReq.CODE, body)
        )
        assert isinstance(response, Response), response
        StoreAns.decode(response.body)
        return resourceId


@pytest.fixture(params=TOPOLOGIES)
def plugin(request: pytest.FixtureRequest) -> Any:
    return topologyPlugin(request.param)


def _build(plugin: Any, count: int) -> tuple[StorageOverlay, Peer]:
    overlay = StorageOverlay(plugin)
    rnd = Random(11)
    writer = overlay.add(overlay.writer.nodeId)
    for _ in range(count - 1):
        overlay.add(rnd.randbytes(16))
    return overlay, writer


def test_the_plugin_and_its_topologies_provide_the_whole_contract(plugin: Any) -> None:
    assert verifyObject(ITopologyPlugin, plugin)
    overlay = StorageOverlay(plugin)
    peer = overlay.add(b"\x42" * 16)
    assert verifyObject(ITopology, peer.topology)
    assert verifyObject(ITopology, plugin.makeClientTopology(peer.node, 0))
    assert len(peer.topology.hashResource(b"name")) == 16


def test_a_stored_value_is_held_by_the_responsible_peer_and_two_replicas(plugin: Any) -> None:
    """Section 10.4: the Store's answer comes once the replica set holds it."""
    overlay, writer = _build(plugin, 6)
    resourceId = overlay.store(writer, b"v1")
    assert overlay.holders(resourceId) == overlay.expectedHolders(resourceId)


def test_a_joining_peer_takes_over_what_it_is_now_responsible_for(plugin: Any) -> None:
    """Section 10.5 step 6 and 10.7.3: data follows responsibility, and the
    peer that fell out of the replica set drops its copy."""
    overlay, writer = _build(plugin, 6)
    resourceId = overlay.store(writer, b"v1")
    before = overlay.holders(resourceId)
    newcomer = overlay.add(resourceId)  # responsible for its own id
    overlay.overlay.net.settle(horizon=60.0)
    assert newcomer.holds(resourceId)
    assert overlay.holders(resourceId) == overlay.expectedHolders(resourceId)
    assert overlay.holders(resourceId) != before


def test_a_failed_holder_is_replaced_so_three_peers_hold_the_value_again(plugin: Any) -> None:
    """Section 10.7.1 and 10.7.3: a lost connection is a failed peer; the
    replica set is filled again."""
    overlay, writer = _build(plugin, 7)
    resourceId = overlay.store(writer, b"v1")
    holders = overlay.expectedHolders(resourceId) - {writer.nodeId}
    victim = overlay.peers[min(holders)]
    overlay.fail(victim)
    for peer in overlay.live():
        peer.replicator.sweep()
    overlay.overlay.net.settle(horizon=60.0)
    assert overlay.holders(resourceId) == overlay.expectedHolders(resourceId)
