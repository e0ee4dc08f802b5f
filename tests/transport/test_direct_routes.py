"""A CHORD-RELOAD client's direct links (:mod:`topologies.chordreload.direct`, RFC 6940
section 6.5.1) on the real transport and topology over memory links: the
client learns the responsible peers from the answers, Attaches to them with
send_update, and then sends requests for their ranges straight to them;
stale ranges still reach the right peer; lost links and the limit hold."""

from __future__ import annotations

from random import Random
from typing import Any

from twisted.internet.defer import CancelledError, fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher

from reload.transport.dispatcher import Reply, Request
from reload.transport.node_api import TransportNode
from reload.transport.transport import Response
from reload.wire.header import Destination
from reload.wire.message import MessageCode
from reload.wire.storage import FetchAns
from topologies.chordreload.codec import ChordUpdate, ChordUpdateType
from topologies.chordreload.direct import RETRY_AFTER, DirectClientTopology

from .test_chord_overlay import Overlay


def _answerFetches(node: TransportNode) -> None:
    """Stands in for storage: every Fetch gets an empty FetchAns, signed
    by the peer that received it (the routing is what is tested)."""

    def fetch(request: Request) -> Reply:
        return Reply(FetchAns.CODE, FetchAns(()).encode())

    node.dispatcher.register(MessageCode.FETCH_REQ, fetch, decoder=lambda body: body)


def _overlay(seed: int, peers: int = 8) -> Overlay:
    overlay = Overlay(seed)
    first = overlay.add(overlay.rnd.randbytes(16))
    overlay.run(overlay.chord(first).join(None))
    for _ in range(peers - 1):
        bootstrap = overlay.rnd.choice(overlay.joined())
        node = overlay.add(overlay.rnd.randbytes(16))
        overlay.net.link(node.nodeId, bootstrap.nodeId)
        overlay.run(overlay.chord(node).join(bootstrap.nodeId))
    for node in overlay.nodes.values():
        _answerFetches(node)
    return overlay


def _client(overlay: Overlay, maxLinks: int = 32) -> tuple[TransportNode, DirectClientTopology]:
    net = overlay.net
    node = overlay.node(overlay.rnd.randbytes(16))
    topology = DirectClientTopology(node, net.clock, maxLinks=maxLinks)
    node.useTopology(topology)
    bootstrap = overlay.joined()[0].nodeId
    net.link(node.nodeId, bootstrap)
    overlay.run(topology.join(bootstrap))
    return node, topology


def _fetch(overlay: Overlay, client: TransportNode, resourceId: bytes) -> bytes:
    """Fetch ``resourceId``; return the Node-ID that signed the answer."""
    response = overlay.run(
        client.transport.request([Destination.resource(resourceId)], MessageCode.FETCH_REQ, b"")
    )
    assert isinstance(response, Response), response
    assert response.code == FetchAns.CODE
    return response.nodeId


def _forwarded(overlay: Overlay) -> int:
    return sum(n.transport.counters["forwarded"] for n in overlay.joined())


def _direct(topology: DirectClientTopology) -> set[bytes]:
    return set(topology.neighbours()["direct"])


def test_the_client_links_to_the_peers_that_answered_and_then_skips_the_hops() -> None:
    overlay = _overlay(11)
    client, topology = _client(overlay)
    rnd = Random(3)
    resources = [rnd.randbytes(16) for _ in range(48)]
    responsible = {overlay.responsible(r) for r in resources}

    for resourceId in resources:
        assert _fetch(overlay, client, resourceId) == overlay.responsible(resourceId)
    overlay.net.settle()
    # Each answering peer was attached with send_update and sent its Update.
    assert _direct(topology) == responsible
    assert topology.counters["attaches"] == len(responsible)

    before, direct = _forwarded(overlay), topology.counters["direct"]
    for resourceId in resources:
        # Answered by the responsible peer, over the direct link: no peer
        # forwards anything, neither the request nor the answer.
        assert _fetch(overlay, client, resourceId) == overlay.responsible(resourceId)
    assert _forwarded(overlay) == before
    assert topology.counters["direct"] - direct == len(resources)


def test_without_a_known_range_everything_goes_through_the_clients_peer() -> None:
    overlay = _overlay(12, peers=4)
    _, topology = _client(overlay)
    assert _direct(topology) == set()
    assert topology.nextHop(overlay.rnd.randbytes(16)) == topology.peer
    assert topology.counters["direct"] == 0


def test_a_stale_range_still_reaches_the_new_peer_which_is_learnt() -> None:
    overlay = _overlay(13, peers=4)
    client, topology = _client(overlay)
    ring = [n.nodeId for n in overlay.joined()]
    for peer in ring:
        _fetch(overlay, client, peer)  # each peer answers for its own Node-ID
    overlay.net.settle()
    assert _direct(topology) == set(ring)

    # A peer joins just before ring[2]: part of ring[2]'s range is now its.
    newcomerId = (int.from_bytes(ring[2], "big") - 1000).to_bytes(16, "big")
    newcomer = overlay.add(newcomerId)
    _answerFetches(newcomer)
    overlay.net.link(newcomerId, ring[0])
    overlay.run(overlay.chord(newcomer).join(ring[0]))
    overlay.net.settle()
    inNewRange = (int.from_bytes(newcomerId, "big") - 10).to_bytes(16, "big")
    assert overlay.responsible(inNewRange) == newcomerId
    # The client still believes ring[2] is responsible; ring[2] routes it on.
    assert topology.nextHop(inNewRange) == ring[2]
    assert _fetch(overlay, client, inNewRange) == newcomerId
    overlay.net.settle()
    assert newcomerId in _direct(topology)
    # Now the newcomer's range ends ring[2]'s: both go direct and right.
    assert topology.nextHop(inNewRange) == newcomerId
    assert topology.nextHop(ring[2]) == ring[2]


def test_a_lost_link_is_forgotten_and_the_limit_holds() -> None:
    overlay = _overlay(14, peers=6)
    client, topology = _client(overlay, maxLinks=2)
    ring = [n.nodeId for n in overlay.joined()]
    for peer in ring:
        assert _fetch(overlay, client, peer) == peer
    overlay.net.settle()
    direct = _direct(topology)
    assert len(direct) == 2
    lost = sorted(direct)[0]
    overlay.net.unlink(client.nodeId, lost)
    overlay.net.settle()
    assert lost not in _direct(topology)
    # Its range is served through the client's peer again, and correctly.
    assert topology.nextHop(lost) != lost or lost == topology.peer
    assert _fetch(overlay, client, lost) == lost


def test_an_update_that_does_not_decode_is_answered_and_ignored() -> None:
    overlay = _overlay(15, peers=2)
    _, topology = _client(overlay)
    sender = overlay.joined()[1].nodeId
    assert topology.handleUpdate(sender, b"\x00\x01garbage") == b""
    lone = ChordUpdate(5, ChordUpdateType.PEER_READY).encode()
    assert topology.handleUpdate(sender, lone) == b""
    assert _direct(topology) == set()


def test_an_update_from_a_peer_without_a_link_names_no_range() -> None:
    """An Update routed to the client from a peer it has no link to would
    make it route to a node it cannot send to: ignored."""
    overlay = _overlay(16, peers=3)
    client, topology = _client(overlay)
    stranger = next(
        n.nodeId for n in overlay.joined() if not client.transport.isConnected(n.nodeId)
    )
    neighbours = ChordUpdate(5, ChordUpdateType.NEIGHBORS, (stranger,), (stranger,)).encode()
    assert topology.handleUpdate(stranger, neighbours) == b""
    assert _direct(topology) == set()
    assert topology.nextHop(stranger) == topology.peer


class _RefusingNode:
    """A node whose every Attach fails (the part of INode the client uses)."""

    nodeId = b"\x01" * 16

    def __init__(self) -> None:
        self.attaches: list[bytes] = []

    def attach(self, destination: bytes, via: bytes | None = None, sendUpdate: bool = False) -> Any:
        self.attaches.append(destination)
        return fail(ConnectionRefusedError("no"))


def test_a_failed_attach_is_retried_only_after_a_wait() -> None:
    clock = Clock()
    node = _RefusingNode()
    topology = DirectClientTopology(node, clock)  # type: ignore[arg-type]
    peer = b"\x80" * 16
    topology.answeredFor(b"\x7f" * 16, peer)
    assert node.attaches == [peer] and topology.counters["attachFailures"] == 1
    topology.answeredFor(b"\x7f" * 16, peer)
    clock.advance(RETRY_AFTER - 1)
    topology.answeredFor(b"\x7f" * 16, peer)
    assert node.attaches == [peer]
    clock.advance(2)
    topology.answeredFor(b"\x7f" * 16, peer)
    assert node.attaches == [peer, peer]
    # Its own Node-ID is never attached.
    topology.answeredFor(b"\x00" * 16, node.nodeId)
    assert node.attaches == [peer, peer]


def test_each_lost_peer_is_replaced_and_a_stopping_node_logs_no_warning() -> None:
    """Section 4.2.1: a client that loses its peer attaches again through
    another link, every time it loses one -- also when an attempt fails at
    once, as every request does once the transport is stopping, which is
    shutdown, not a fault worth a warning."""
    overlay = _overlay(17)
    client, topology = _client(overlay)
    rnd = Random(5)
    for _ in range(24):
        _fetch(overlay, client, rnd.randbytes(16))
    overlay.net.settle()
    assert len(_direct(topology)) >= 3

    attempts: list[bytes] = []

    def stopped(nodeId: bytes, via: bytes | None = None, **_: Any) -> Any:
        attempts.append(nodeId)
        return fail(CancelledError("the transport is stopped"))

    client.attach = stopped  # type: ignore[method-assign]
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        lost = []
        for _ in range(2):
            peer = topology.peer
            assert peer is not None
            lost.append(peer)
            topology.linkDown(peer)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert len(attempts) == 2
    assert topology.peer is not None and topology.peer not in lost
    assert [e for e in events if e.get("log_level") == LogLevel.warn] == []
    assert any("cancelled" in str(e.get("log_format")) for e in events)
