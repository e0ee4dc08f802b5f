"""ChordTopology's procedures, one message at a time (RFC 6940 sections
6.4.2, 10.5-10.9), against a node that records what the topology asks of it."""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from reload.interfaces import ITopology, ITopologyPlugin
from reload.plugins import loadTopology
from reload.wire.errors import DecodeError
from reload.wire.message import ErrorCode
from reload.wire.methods import LeaveAns, LeaveReq, UpdateAns, UpdateReq
from topologies.chord import ChordPlugin, chord
from topologies.chordreload.codec import (
    ChordLeaveData,
    ChordLeaveType,
    ChordRouteQueryAns,
    ChordUpdate,
)
from topologies.chordreload.ring import IdRange, addToId, intToId
from topologies.chordreload.settings import ChordSettings
from topologies.chordreload.topology import ChordError, ChordTopology, ChordUpdateType

ME = intToId(1 << 100)


def nid(v: int) -> bytes:
    return intToId(v)


class RecordingNode:
    """A node whose requests and attaches wait until the test answers them."""

    overlayName = "chord.test"
    reactor = None

    def __init__(self, nodeId: bytes = ME, configuration: object = None) -> None:
        self.nodeId = nodeId
        self.clock = Clock()
        self.configuration = configuration
        self.requests: list[tuple[bytes, int, bytes, Deferred[Any]]] = []
        self.attaches: list[tuple[bytes, bytes | None, bool, Deferred[bytes]]] = []

    def request(self, destination: bytes, messageCode: int, body: bytes) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.requests.append((destination, messageCode, body, d))
        return d

    def attach(
        self, destination: bytes, *, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.attaches.append((destination, via, sendUpdate, d))
        return d

    def updates(self) -> list[tuple[bytes, ChordUpdate]]:
        return [
            (dest, ChordUpdate.decode(UpdateReq.decode(body).overlay_specific_data))
            for dest, code, body, _ in self.requests
            if code == UpdateReq.CODE
        ]

    def answerAll(self) -> None:
        for _, code, _, d in self.requests:
            if not d.called:
                d.callback((code + 1, b""))


def makeTopology(
    node: RecordingNode | None = None, **kw: Any
) -> tuple[ChordTopology, RecordingNode]:
    node = node or RecordingNode()
    kw.setdefault("rng", Random(1))
    return ChordTopology(node, attach=node.attach, **kw), node


def joinedWith(*peers: int, **kw: Any) -> tuple[ChordTopology, RecordingNode]:
    """A topology in a ring with ``peers`` connected and known."""
    topology, node = makeTopology(**kw)
    topology.join(None)
    for v in peers:
        topology.linkUp(nid(v))
        topology.handleUpdate(nid(v), ChordUpdate(1, ChordUpdateType.PEER_READY).encode())
    node.clock.advance(0)
    node.answerAll()
    node.requests.clear()
    return topology, node


def update(
    kind: ChordUpdateType,
    preds: tuple[int, ...] = (),
    succs: tuple[int, ...] = (),
    fingers: tuple[int, ...] = (),
) -> bytes:
    return ChordUpdate(
        7, kind, tuple(map(nid, preds)), tuple(map(nid, succs)), tuple(map(nid, fingers))
    ).encode()


# -- the plugin (ITopologyPlugin, ITopology) ----------------------------------------


def test_plugin_object_provides_ITopologyPlugin() -> None:
    assert verifyObject(ITopologyPlugin, chord)
    assert chord.name == "CHORD-RELOAD"
    assert chord.nodeIdLength == 16
    assert isinstance(chord, ChordPlugin)


def test_plugin_is_found_and_verified_by_name() -> None:
    assert loadTopology("CHORD-RELOAD") is chord


def test_topology_provides_ITopology() -> None:
    topology = chord.makeTopology(RecordingNode())  # type: ignore[arg-type]
    assert isinstance(topology, ChordTopology)
    assert verifyObject(ITopology, topology)


def test_hash_resource_is_the_section_10_2_hash() -> None:
    topology, _ = makeTopology()
    assert topology.hashResource(b"abc") == bytes.fromhex("a9993e364706816aba3e25717850c26c")


# -- configuration (sections 10.7.4, 11.1) ------------------------------------------


@dataclass
class Config:
    chordUpdateInterval: int | None = None
    chordPingInterval: int | None = None
    chordReactive: bool | None = None


def test_timers_and_recovery_come_from_the_configuration() -> None:
    topology, _ = makeTopology(RecordingNode(configuration=Config(400, 30, False)))
    assert topology.settings == ChordSettings(updateInterval=400, pingInterval=30, reactive=False)


def test_rfc_defaults_when_the_configuration_is_silent() -> None:
    """Section 10.7.4.1 (about ten minutes), 10.7.4.2 (3600 s) and 11.1
    (chord-reactive defaults to true)."""
    topology, _ = makeTopology(RecordingNode(configuration=Config()))
    assert topology.settings == ChordSettings(600.0, 3600.0, True)
    with pytest.raises(ValueError, match="updateInterval"):
        ChordSettings(updateInterval=0)


# -- a ring of one, links -----------------------------------------------------------


def test_join_without_admitting_peer_starts_a_ring_of_one() -> None:
    topology, node = makeTopology()
    assert not topology.isResponsible(nid(5))
    done: list[object] = []
    topology.join(None).addBoth(done.append)
    assert done == [None]
    assert topology.phase == "joined"
    assert topology.isResponsible(nid(5)) and topology.isResponsible(ME)
    assert topology.nextHop(nid(5)) is None
    assert topology.replicaSet(nid(5)) == []
    assert topology.neighbours() == {"predecessors": [], "successors": [], "fingers": []}
    assert node.clock.getDelayedCalls(), "stabilisation timers are armed"


def test_leave_cancels_every_timer() -> None:
    topology, node = joinedWith(5, 1 << 120)
    done: list[object] = []
    topology.leave().addBoth(done.append)
    node.answerAll()
    assert done == [None]
    assert topology.phase == "left"
    assert node.clock.getDelayedCalls() == []
    assert not topology.isResponsible(ME)


def test_joining_twice_is_refused() -> None:
    topology, _ = makeTopology()
    topology.join(None)
    failures: list[Any] = []
    topology.join(None).addErrback(failures.append)
    assert failures and failures[0].check(ChordError)


def test_a_connection_alone_does_not_enter_the_routing_table() -> None:
    """Section 10.5 step 3: a joining node's Attach populates only the
    Connection Table; messages for it still go to it directly."""
    topology, _ = joinedWith(1 << 120)
    stranger = nid((1 << 100) - 10)
    topology.linkUp(stranger)
    assert stranger not in topology.ring
    assert topology.isResponsible(stranger)
    assert topology.nextHop(stranger) == stranger


def test_peer_ready_makes_a_connected_sender_a_peer() -> None:
    """Section 10.7: peer_ready says the sender can be routed through."""
    topology, _ = joinedWith(1 << 120)
    seen: list[tuple[IdRange, ...]] = []
    topology.onResponsibilityChange(seen.append)
    peer = nid((1 << 100) - 10)
    topology.linkUp(peer)
    assert topology.handleUpdate(peer, update(ChordUpdateType.PEER_READY)) == UpdateAns().encode()
    assert topology.ring.predecessors[0] == peer
    assert not topology.isResponsible(nid(5))
    assert IdRange(nid(1 << 120), peer) in seen[-1]


def test_update_from_a_sender_not_yet_connected_waits_for_the_link() -> None:
    topology, _ = joinedWith(1 << 120)
    peer = nid(1 << 101)
    topology.handleUpdate(peer, update(ChordUpdateType.PEER_READY))
    assert peer not in topology.ring
    topology.linkUp(peer)
    assert topology.ring.successors[0] == peer


def test_link_down_removes_the_peer_and_fires_the_callback() -> None:
    """Section 10.7.1."""
    topology, _ = joinedWith(1 << 90, 1 << 120)
    seen: list[tuple[IdRange, ...]] = []
    topology.onResponsibilityChange(seen.append)
    topology.linkDown(nid(1 << 90))  # the predecessor
    assert nid(1 << 90) not in topology.ring
    assert IdRange(nid(1 << 120), nid(1 << 90)) in seen[-1]
    assert topology.isResponsible(nid(1 << 90))


# -- Update (sections 10.6, 10.7.3) ----------------------------------------------------


def test_neighbors_update_attaches_to_closer_peers_through_the_sender() -> None:
    sender = nid(1 << 120)
    topology, node = joinedWith(1 << 90, 1 << 110, 1 << 120, 1 << 125, 1 << 126, 1 << 127)
    assert topology.ring.successors == [nid(1 << 110), sender, nid(1 << 125)]
    closer, farther = nid(1 << 105), nid(3 << 124)  # farther: between successors and predecessors
    topology.handleUpdate(sender, update(ChordUpdateType.NEIGHBORS, (1 << 105,), (3 << 124,)))
    assert [(a[0], a[1]) for a in node.attaches] == [(closer, sender)]
    assert farther not in topology.ring

    node.attaches[0][3].callback(closer)
    assert topology.ring.successors[0] == closer
    node.clock.advance(0)
    sent = dict(node.updates())
    assert sent[closer].type is ChordUpdateType.NEIGHBORS
    assert sent[closer].successors[0] == closer
    assert sent[sender].type is ChordUpdateType.NEIGHBORS


def test_listed_peer_already_connected_enters_without_an_attach() -> None:
    topology, node = joinedWith(1 << 120)
    joining = nid((1 << 100) + 5)
    topology.linkUp(joining)
    topology.handleUpdate(nid(1 << 120), update(ChordUpdateType.NEIGHBORS, (1 << 100,), ()))
    topology.handleUpdate(nid(1 << 120), update(ChordUpdateType.NEIGHBORS, ((1 << 100) + 5,)))
    assert node.attaches == []
    assert joining in topology.ring


def test_full_update_fingers_are_finger_candidates() -> None:
    """Section 10.7.4.2 alternative 2: a finger seen in an Update is
    remembered, and Attached at a chord-ping-interval tick."""
    me = nid(0)
    topology, node = makeTopology(
        RecordingNode(me), settings=ChordSettings(pingInterval=10, updateInterval=1000)
    )
    topology.join(None)
    succs = [(1 << 125) + 1, (1 << 125) + 2, (1 << 125) + 3]
    for v in [*succs, (1 << 128) - 5, (1 << 128) - 6, (1 << 128) - 7]:
        topology.linkUp(nid(v))
        topology.handleUpdate(nid(v), update(ChordUpdateType.PEER_READY))
    assert topology.ring.invalidFingers() == [2]
    finger = nid((1 << 126) + 7)
    topology.handleUpdate(nid(succs[0]), update(ChordUpdateType.FULL, (), (), ((1 << 126) + 7,)))
    assert node.attaches == []
    for _ in range(20):
        node.clock.advance(10)
        if node.attaches:
            break
    assert node.attaches[0][0] == finger


def test_garbage_update_is_a_decode_error() -> None:
    topology, _ = joinedWith(1 << 120)
    with pytest.raises(DecodeError):
        topology.handleUpdate(nid(1 << 120), b"\x00\x00\x00\x01\x09")
    with pytest.raises(DecodeError):
        topology.handleUpdate(nid(1 << 120), update(ChordUpdateType.NEIGHBORS)[:-1])


def test_update_types_carry_what_section_10_7_says() -> None:
    topology, _ = joinedWith(1 << 90, 1 << 120)
    ready = topology.makeUpdate(ChordUpdateType.PEER_READY)
    assert (ready.predecessors, ready.successors, ready.fingers) == ((), (), ())
    neighbours = topology.makeUpdate(ChordUpdateType.NEIGHBORS)
    assert neighbours.predecessors[0] == nid(1 << 90)
    assert neighbours.successors[0] == nid(1 << 120)
    assert neighbours.fingers == ()
    full = topology.makeUpdate(ChordUpdateType.FULL)
    assert set(full.fingers) <= {nid(1 << 90), nid(1 << 120)} and full.fingers


def test_failed_update_drops_the_peer() -> None:
    """Section 10.7.1: "the failure of some request"."""
    topology, node = joinedWith(1 << 90, 1 << 120)
    topology.sendUpdate(nid(1 << 120))
    node.requests[-1][3].errback(TimeoutError())
    assert nid(1 << 120) not in topology.ring


# -- Join (sections 6.4.2.1, 10.5) ---------------------------------------------------------


def test_join_admits_the_peer_and_updates_it_as_predecessor() -> None:
    topology, node = joinedWith(1 << 90, 1 << 120)
    seen: list[tuple[IdRange, ...]] = []
    topology.onResponsibilityChange(seen.append)
    joining = nid((1 << 100) - 3)
    topology.linkUp(joining)
    assert topology.handleJoin(joining, b"") == b""
    # Step 6: storage hears that (old predecessor, JN] moved to JN.
    assert IdRange(nid(1 << 90), joining) in seen[-1]
    assert topology.ring.predecessors[0] == joining
    assert node.requests == [], "the Updates wait until the JoinAns is sent"
    node.clock.advance(0)
    sent = dict(node.updates())
    # Step 7: JN labelled as predecessor; step 8: every neighbour told.
    assert sent[joining].type is ChordUpdateType.NEIGHBORS
    assert sent[joining].predecessors[0] == joining
    assert set(sent) == {joining, nid(1 << 90), nid(1 << 120)}


def test_join_is_refused_by_a_peer_not_responsible() -> None:
    topology, _ = joinedWith(1 << 90, 1 << 120)
    elsewhere = nid((1 << 110) + 1)
    topology.linkUp(elsewhere)
    with pytest.raises(ChordError, match="not responsible") as info:
        topology.handleJoin(elsewhere, b"")
    assert info.value.errorCode == ErrorCode.FORBIDDEN


def test_join_is_refused_without_a_direct_connection() -> None:
    """Section 6.4.2.1: only between adjacent nodes."""
    topology, _ = joinedWith(1 << 90, 1 << 120)
    with pytest.raises(ChordError, match="direct connection"):
        topology.handleJoin(nid((1 << 100) - 3), b"")


def test_join_is_refused_by_a_node_not_in_the_ring() -> None:
    topology, _ = makeTopology()
    topology.linkUp(nid(5))
    with pytest.raises(ChordError, match="idle"):
        topology.handleJoin(nid(5), b"")


# -- a failed peer restarted with the same Node-ID (sections 10.5, 10.7.1) ---------

RESTARTED = (1 << 100) - 3  # ME's first predecessor


def test_a_join_from_a_node_still_listed_replaces_its_stale_incarnation() -> None:
    """Section 10.5: a peer in the ring never Joins again, so a JoinReq
    from a Node-ID still in the Routing Table is a restarted peer whose
    failure went unnoticed (its old link looked open).  The stale entry
    goes (section 10.7.1) and the Join is admitted -- not refused with
    "join through" the joining node itself."""
    topology, node = joinedWith(1 << 90, RESTARTED, 1 << 120)
    restarted = nid(RESTARTED)
    assert topology.ring.predecessors[0] == restarted
    seen: list[tuple[IdRange, ...]] = []
    topology.onResponsibilityChange(seen.append)
    assert topology.handleJoin(restarted, b"") == b""
    assert topology.ring.predecessors[0] == restarted
    # Storage heard the range go back to this node and move to the new
    # incarnation again, so it Stores the data there (step 6).
    assert IdRange(nid(1 << 90), restarted) in seen[-1]
    node.clock.advance(0)
    assert dict(node.updates())[restarted].predecessors[0] == restarted


def test_a_join_from_a_stale_entry_elsewhere_names_another_peer() -> None:
    """Dropping the stale entry first, the refusal names the peer to join
    through, never the joining node itself."""
    topology, _ = joinedWith(1 << 90, 1 << 110, 1 << 120)
    stale = nid(1 << 110)
    with pytest.raises(ChordError, match="not responsible") as info:
        topology.handleJoin(stale, b"")
    assert stale.hex() not in str(info.value).split("join through")[1]
    assert stale not in topology.ring


def test_hearsay_does_not_bring_back_a_failed_peer() -> None:
    """Section 10.7.1: after a neighbour failed, another peer's Update that
    still lists it (stale) does not make its new incarnation -- connected
    again to join -- a peer: this node keeps answering for its range
    instead of routing there (and back: a routing loop)."""
    topology, node = joinedWith(1 << 90, RESTARTED, 1 << 120)
    restarted = nid(RESTARTED)
    topology.linkDown(restarted)
    topology.linkUp(restarted)  # the new incarnation connects to join
    topology.handleUpdate(nid(1 << 90), update(ChordUpdateType.NEIGHBORS, (), (RESTARTED,)))
    assert restarted not in topology.ring
    assert node.attaches == []
    assert topology.isResponsible(nid(RESTARTED - 1))
    assert topology.nextHop(nid(RESTARTED - 1)) is None


def test_an_attach_to_a_failed_peers_node_id_does_not_make_it_a_peer() -> None:
    """An Attach routed to the Node-ID a stale Update named may reach the
    restarted node, which answers it while joining: that is no sign it is a
    peer (section 10.5 step 3)."""
    topology, node = joinedWith(1 << 90, 1 << 120)
    restarted = nid(RESTARTED)
    topology.handleUpdate(nid(1 << 90), update(ChordUpdateType.NEIGHBORS, (), (RESTARTED,)))
    assert [a[0] for a in node.attaches] == [restarted]
    node.attaches[0][3].callback(restarted)
    assert restarted in topology.ring
    topology.linkDown(restarted)  # it crashes...
    topology.handleUpdate(nid(1 << 90), update(ChordUpdateType.NEIGHBORS, (), (RESTARTED,)))
    assert len(node.attaches) == 1, "no Attach on stale hearsay"
    topology._attachPeer(restarted, via=None)  # one started before the crash
    node.attaches[1][3].callback(restarted)  # ...and its new incarnation answers
    assert restarted not in topology.ring
    assert topology.isResponsible(nid(RESTARTED - 1))


def test_a_failed_peer_is_a_peer_again_once_it_says_so() -> None:
    """Its own Update (section 10.7: peer_ready, "can be routed through")
    ends the suspicion at once."""
    topology, _ = joinedWith(1 << 90, RESTARTED, 1 << 120)
    restarted = nid(RESTARTED)
    topology.linkDown(restarted)
    topology.linkUp(restarted)
    topology.handleUpdate(restarted, update(ChordUpdateType.PEER_READY))
    assert topology.ring.predecessors[0] == restarted


def test_hearsay_about_a_failed_peer_counts_again_after_the_hold_down() -> None:
    """The suspicion lasts the successor replacement hold-down time
    (section 10.7.1), the time stale Updates take to die out."""
    topology, node = joinedWith(1 << 90, RESTARTED, 1 << 120)
    restarted = nid(RESTARTED)
    topology.linkDown(restarted)
    node.clock.advance(topology.settings.successorHoldDown + 1)
    topology.handleUpdate(nid(1 << 90), update(ChordUpdateType.NEIGHBORS, (), (RESTARTED,)))
    assert [a[0] for a in node.attaches] == [restarted]


def test_a_neighbour_that_restarted_unnoticed_gets_this_nodes_neighbours() -> None:
    """Section 10.7: the uptime in an Update going back says the sender
    restarted; this node, which missed the failure and so sees no change,
    answers with its neighbours (section 10.7.3) to fill the new
    incarnation's tables."""
    topology, node = joinedWith(1 << 90, RESTARTED, 1 << 120)
    restarted = nid(RESTARTED)
    node.clock.advance(100)
    topology.handleUpdate(restarted, ChordUpdate(100, ChordUpdateType.PEER_READY).encode())
    node.clock.advance(0)
    assert node.updates() == [], "the same incarnation, 100 s up"
    node.clock.advance(60)
    topology.handleUpdate(restarted, ChordUpdate(3, ChordUpdateType.NEIGHBORS).encode())
    node.clock.advance(0)
    [(dest, sent)] = node.updates()
    assert dest == restarted and sent.type is ChordUpdateType.NEIGHBORS
    assert sent.predecessors[0] == restarted


def test_join_sequence_of_the_joining_node() -> None:
    """Section 10.5: Attach to n+1 through the bootstrap with send_update,
    find the successors, then JoinReq to the admitting peer; Updates to the
    neighbours once in."""
    topology, node = makeTopology()
    bootstrap, ap, s1, s2 = nid(1 << 127), nid(1 << 101), nid(1 << 102), nid(1 << 103)
    topology.linkUp(bootstrap)
    done: list[object] = []
    topology.join(bootstrap).addBoth(done.append)
    assert topology.phase == "joining"
    assert node.attaches[0][:3] == (addToId(ME, 1), bootstrap, True)
    node.attaches[0][3].callback(ap)
    assert node.attaches[1][:2] == (addToId(ap, 1), None)
    node.attaches[1][3].callback(s1)
    node.attaches[2][3].callback(s2)
    destination, code, body, d = node.requests[-1]
    assert (destination, code) == (ap, 0x0F)
    assert body[:16] == ME
    assert not topology.isResponsible(ME), "not responsible before the JoinAns"
    d.callback((0x10, b"\x00\x00"))
    assert done == [None]
    assert topology.phase == "joined"
    assert topology.ring.successors == [ap, s1, s2]
    node.clock.advance(0)
    assert {dest for dest, _ in node.updates()} >= {ap, s1, s2}


def test_join_without_an_attach_capability_fails_clearly() -> None:
    node = RecordingNode()
    topology = ChordTopology(node)  # RecordingNode has attach, so hide it:
    topology._attach = None
    failures: list[Any] = []
    topology.join(nid(5)).addErrback(failures.append)
    assert failures[0].check(ChordError)
    assert "attach" in str(failures[0].value)


# -- Leave (section 10.9) ----------------------------------------------------------------


def test_leave_tells_successors_the_predecessors_and_vice_versa() -> None:
    topology, node = joinedWith(1 << 90, 1 << 95, 1 << 99, 1 << 101, 1 << 102, 1 << 103)
    topology.leave()
    sent = {}
    for dest, code, body, _ in node.requests:
        assert code == LeaveReq.CODE
        leave = LeaveReq.decode(body)
        assert leave.leaving_peer_id == ME
        sent[dest] = ChordLeaveData.decode(leave.overlay_specific_data)
    preds = (nid(1 << 99), nid(1 << 95), nid(1 << 90))
    succs = (nid(1 << 101), nid(1 << 102), nid(1 << 103))
    for s in succs:
        assert sent[s] == ChordLeaveData(ChordLeaveType.FROM_PRED, preds)
    for p in preds:
        assert sent[p] == ChordLeaveData(ChordLeaveType.FROM_SUCC, succs)
    assert topology.phase == "leaving"
    for *_, d in node.requests:
        d.callback((LeaveAns.CODE, b""))
    assert topology.phase == "left"


def test_a_leaving_successor_is_replaced_from_its_successor_list() -> None:
    """Section 10.9: handled as a failure (10.7.1); the list it sends
    offers the replacement."""
    topology, node = joinedWith(1 << 90, 1 << 101, 1 << 102, 1 << 103)
    data = ChordLeaveData.from_succ((nid(1 << 102), nid(1 << 103), nid(1 << 104))).encode()
    topology.handleLeave(nid(1 << 101), data)
    assert nid(1 << 101) not in topology.ring
    assert [a[:2] for a in node.attaches] == [(nid(1 << 104), None)]
    node.attaches[0][3].callback(nid(1 << 104))
    assert topology.ring.successors == [nid(1 << 102), nid(1 << 103), nid(1 << 104)]
    # A third party's stale Update does not bring the departed peer back.
    topology.handleUpdate(nid(1 << 102), update(ChordUpdateType.NEIGHBORS, (1 << 101,)))
    assert nid(1 << 101) not in topology.ring


def test_garbage_leave_is_a_decode_error() -> None:
    topology, _ = joinedWith(1 << 90)
    with pytest.raises(DecodeError):
        topology.handleLeave(nid(1 << 90), b"\x07")


# -- RouteQuery (section 10.8) -------------------------------------------------------------


def test_route_query_answers_the_next_hop() -> None:
    topology, node = joinedWith(1 << 90, 1 << 120, 1 << 125)
    answer = ChordRouteQueryAns.decode(topology.handleRouteQuery(nid(1 << 123), False, b""))
    assert answer.next_peer == nid(1 << 120)
    mine = ChordRouteQueryAns.decode(topology.handleRouteQuery(nid(1 << 95), False, b""))
    assert mine.next_peer == ME
    node.clock.advance(0)
    assert node.requests == []


def test_route_query_with_send_update_sends_a_full_update() -> None:
    topology, node = joinedWith(1 << 90, 1 << 120)
    requester = nid(77)
    topology.handleRouteQuery(nid(1 << 123), True, b"", requester=requester)
    node.clock.advance(0)
    [(dest, sent)] = node.updates()
    assert dest == requester and sent.type is ChordUpdateType.FULL


# -- stabilisation (section 10.7.4) and failures (10.7.1, 10.7.2) ------------------------


def test_neighbours_get_an_update_about_every_update_interval() -> None:
    """Section 10.7.4.1, randomly offset."""
    _, node = joinedWith(1 << 90, 1 << 120, 1 << 126, settings=ChordSettings(updateInterval=100))
    node.clock.advance(49)
    assert node.updates() == []
    node.clock.advance(102)
    sent = node.updates()
    assert {dest for dest, _ in sent} == {nid(1 << 90), nid(1 << 120), nid(1 << 126)}
    assert all(u.type is ChordUpdateType.NEIGHBORS for _, u in sent)
    node.answerAll()
    node.requests.clear()
    node.clock.advance(150)
    assert len(node.updates()) == 3, "the timer re-arms"


def test_ping_interval_checks_non_neighbours_with_peer_ready() -> None:
    """Section 10.7: peer_ready is "a connectivity check to non-neighbor
    peers"."""
    peers = [1 << 90, 1 << 91, 1 << 92, 1 << 101, 1 << 102, 1 << 103, 1 << 127]
    _, node = joinedWith(*peers, settings=ChordSettings(pingInterval=100, updateInterval=10_000))
    node.clock.advance(151)
    ready = [dest for dest, u in node.updates() if u.type is ChordUpdateType.PEER_READY]
    assert ready == [nid(1 << 127)]


def test_losing_a_successor_delays_new_replicas_for_the_hold_down() -> None:
    """Section 10.7.1: 30 seconds before creating new replicas."""
    topology, node = joinedWith(1 << 90, 1 << 101, 1 << 102, 1 << 103)
    seen: list[tuple[IdRange, ...]] = []
    topology.onResponsibilityChange(seen.append)
    topology.linkDown(nid(1 << 101))
    assert seen == []
    node.clock.advance(29)
    assert seen == []
    node.clock.advance(2)
    assert seen == [(IdRange(nid(1 << 90), ME),)]


def test_reactive_recovery_updates_neighbours_at_once_after_a_failure() -> None:
    topology, node = joinedWith(1 << 90, 1 << 101, 1 << 102, 1 << 103)
    topology.linkDown(nid(1 << 102))
    node.clock.advance(0)
    assert {dest for dest, _ in node.updates()} == {nid(1 << 90), nid(1 << 101), nid(1 << 103)}


def test_periodic_recovery_waits_for_the_timer() -> None:
    """chord-reactive false (section 10): a successor loss that leaves the
    range unchanged waits for the next stabilisation round."""
    topology, node = joinedWith(
        1 << 90, 1 << 101, 1 << 102, 1 << 103, settings=ChordSettings(reactive=False)
    )
    topology.linkDown(nid(1 << 102))
    node.clock.advance(0)
    assert node.updates() == []
    topology.linkDown(nid(1 << 90))  # the range changed: Update at once
    node.clock.advance(0)
    assert node.updates()


def test_losing_a_finger_starts_a_search_in_its_range() -> None:
    """Section 10.7.2, reactive recovery."""
    topology, node = joinedWith(1 << 90, 1 << 101, 1 << 102, 1 << 103, (1 << 127) + 5)
    finger = nid((1 << 127) + 5)
    slot = topology.ring.fingerSlot(finger)
    assert topology.ring.finger(slot) == finger
    topology.linkDown(finger)
    node.clock.advance(0)
    [(target, via, _, _)] = node.attaches
    assert via is None
    assert topology.ring.fingerSlot(target) == slot
