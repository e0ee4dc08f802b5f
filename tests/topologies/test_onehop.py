"""ONE-HOP-RELOAD (topologies/onehopreload): the membership merge rules,
its codec, one-hop routing, and convergence of a peer that missed a
membership event.  Storage, replication and handover run in
tests/storage/test_topologies.py, parametrised over every topology."""

from __future__ import annotations

from random import Random
from typing import Any, cast

import pytest
from twisted.internet.defer import fail, succeed
from twisted.python.failure import Failure

from reload.api.topology import DecodeError, EncodeError, ErrorCode
from reload.errors import ReloadError, ReloadTimeout
from reload.interfaces import INode
from reload.transport.node_api import TransportNode
from topologies.onehop import oneHop
from topologies.onehopreload.codec import (
    OneHopUpdate,
    OneHopUpdateType,
    decodeEntries,
    encodeEntries,
)
from topologies.onehopreload.membership import SEGMENTS, Entry, Membership
from topologies.onehopreload.settings import OneHopSettings

from ..transport.test_chord_overlay import Overlay

ME = b"\x80" * 16
A = b"\x10" * 16
B = b"\x40" * 16
C = b"\xc0" * 16


# -- membership ----------------------------------------------------------------------


def test_a_higher_version_wins_and_dead_wins_at_one_version() -> None:
    m = Membership(ME, 5)
    assert m.apply(Entry(A, 3, True), 0.0)
    assert A in m
    assert not m.apply(Entry(A, 2, False), 0.0), "an older report changes nothing"
    assert m.apply(Entry(A, 3, False), 0.0), "a failure report about this incarnation"
    assert A not in m
    assert not m.apply(Entry(A, 3, True), 0.0), "the failed incarnation does not come back"
    assert m.apply(Entry(A, 4, True), 0.0), "a new incarnation does"
    assert A in m


def test_every_order_of_the_same_reports_gives_the_same_table() -> None:
    reports = [Entry(A, 1, True), Entry(A, 1, False), Entry(B, 2, True), Entry(A, 2, True)]
    tables = set()
    for seed in range(20):
        shuffled = reports[:]
        Random(seed).shuffle(shuffled)
        m = Membership(ME, 1)
        for r in shuffled:
            m.apply(r, 0.0)
        tables.add(tuple(m.entries()))
    assert len(tables) == 1
    [table] = tables
    assert Entry(A, 2, True) in table


def test_tombstones_expire_after_their_time() -> None:
    m = Membership(ME, 1, tombstoneTtl=100.0)
    m.apply(Entry(A, 1, False), 10.0)
    m.expire(100.0)
    assert m.entry(A) is not None
    m.expire(110.0)
    assert m.entry(A) is None


def test_a_report_of_this_node_failed_is_refuted_with_a_higher_version() -> None:
    m = Membership(ME, 7)
    assert m.refute(Entry(ME, 6, False)) is None, "about an older incarnation"
    fresh = m.refute(Entry(ME, 7, False))
    assert fresh == Entry(ME, 8, True)
    assert m.me == fresh


def test_responsibility_and_replicas_follow_the_ring() -> None:
    """RFC 6940 sections 10.1 and 10.4 over the whole membership."""
    m = Membership(ME, 1)
    for peer in (A, B, C):
        m.apply(Entry(peer, 1, True), 0.0)
    assert m.responsible(b"\x20" * 16) == B
    assert m.responsible(b"\xd0" * 16) == A, "wraps around"
    assert m.replicas(b"\x20" * 16, 2) == [ME, C]
    assert m.successors(2) == [C, A] and m.predecessors(2) == [B, A]
    # Clockwise from ME: C, A, B.
    assert m.closestPreceding(B, {A, C}) == A
    assert m.closestPreceding(B, {C}) == C
    assert m.closestPreceding(C, {A, B}) is None, "nothing usable between ME and C"
    assert m.closestFollowing(C, {A, B}) == A, "then the first usable one after it"
    assert m.closestFollowing(C, {B, C}) == B
    assert m.closestFollowing(C, set()) is None


def test_digests_differ_exactly_in_the_segments_that_differ() -> None:
    x, y = Membership(ME, 1), Membership(ME, 1)
    for m in (x, y):
        m.apply(Entry(A, 1, True), 0.0)
    assert Membership.differing(x.digests(), y.digests()) == set()
    y.apply(Entry(C, 1, True), 0.0)
    assert Membership.differing(x.digests(), y.digests()) == {C[0] * SEGMENTS // 256}


# -- codec ----------------------------------------------------------------------------------


def test_updates_round_trip() -> None:
    events = OneHopUpdate(OneHopUpdateType.EVENTS, (Entry(A, 1, True), Entry(B, 9, False)))
    assert OneHopUpdate.decode(events.encode()) == events
    digest = OneHopUpdate(OneHopUpdateType.DIGEST, digests=(b"12345678", b"abcdefgh"))
    assert OneHopUpdate.decode(digest.encode()) == digest
    entries = (Entry(C, 0xFFFFFFFF, True),)
    assert decodeEntries(encodeEntries(entries)) == entries


@pytest.mark.parametrize(
    "data",
    [b"", b"\x03", b"\x01\x00\x05abcde", b"\x02\x05abcde", b"\x01\x00\x15" + b"x" * 20],
)
def test_malformed_updates_are_refused(data: bytes) -> None:
    with pytest.raises(DecodeError):
        OneHopUpdate.decode(data)


def test_entries_of_mixed_lengths_are_not_encoded() -> None:
    with pytest.raises(EncodeError):
        encodeEntries([Entry(A, 1, True), Entry(b"\x01" * 20, 1, True)])


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="fanout"):
        OneHopSettings(fanout=0)


# -- an overlay on memory links ---------------------------------------------------------


class OneHopOverlay(Overlay):
    def addPeer(self, nodeId: bytes, bootstrap: bytes | None) -> TransportNode:
        node = self.node(nodeId)
        topology = oneHop.makeTopology(cast(INode, node), rng=Random(self.rnd.random()))
        node.useTopology(topology)
        self.nodes[nodeId] = node
        if bootstrap is not None:
            self.net.link(nodeId, bootstrap)
        assert self.run(topology.join(bootstrap)) is None
        self.net.settle(horizon=60.0)
        return node

    def topology(self, nodeId: bytes) -> Any:
        return self.nodes[nodeId].topology


def _build(count: int, seed: int = 3) -> tuple[OneHopOverlay, list[bytes]]:
    overlay = OneHopOverlay(seed)
    ids = [overlay.rnd.randbytes(16) for _ in range(count)]
    overlay.addPeer(ids[0], None)
    for nodeId in ids[1:]:
        overlay.addPeer(nodeId, overlay.rnd.choice(ids[: ids.index(nodeId)]))
    overlay.net.settle(horizon=60.0)
    return overlay, ids


def test_every_peer_knows_every_peer_and_a_request_takes_one_hop() -> None:
    overlay, ids = _build(8)
    for nodeId in ids:
        topology = overlay.topology(nodeId)
        assert topology.phase == "joined"
        assert sorted(topology.members.ring) == sorted(ids)
    rnd = Random(1)
    for _ in range(40):
        origin = overlay.nodes[rnd.choice(ids)]
        resourceId = rnd.randbytes(16)
        response = overlay.run(origin.ping(resourceId, resource=True))
        expected = min((n for n in ids if n >= resourceId), default=min(ids))
        assert response.nodeId == expected
        assert response.message.header.via_list == (), "no peer forwarded it"


def test_a_peer_that_missed_a_join_converges_by_digest_exchange() -> None:
    overlay, ids = _build(6)
    deaf = overlay.topology(ids[1])
    # The deaf peer drops every membership event and neighbour exchange
    # while a new peer joins.
    original = deaf.handleUpdate

    def dropEvents(sender: bytes, data: bytes) -> bytes:
        if OneHopUpdate.decode(data).type is not OneHopUpdateType.DIGEST:
            return b""
        return original(sender, data)  # type: ignore[no-any-return]

    deaf.handleUpdate = dropEvents
    exchange = deaf.exchangeDigests
    deaf.exchangeDigests = lambda peer: succeed(0)  # nor compares digests itself
    neighbourly = deaf.exchangeNeighbours
    deaf.exchangeNeighbours = lambda peer: succeed(False)  # nor neighbourhoods
    newcomer = next(
        n
        for n in (overlay.rnd.randbytes(16) for _ in range(100))
        if deaf.members.responsible(n) != ids[1]  # not admitted by the deaf peer
    )
    overlay.addPeer(newcomer, ids[0])
    assert newcomer not in deaf.members, "the deaf peer missed the join"
    assert all(newcomer in overlay.topology(n).members for n in ids if n != ids[1])
    deaf.handleUpdate = original
    deaf.exchangeDigests = exchange
    deaf.exchangeNeighbours = neighbourly
    # Within two digest intervals someone compares digests with it.
    overlay.net.clock.advance(2 * deaf.settings.digestInterval * 1.25)
    overlay.net.settle(horizon=60.0)
    assert newcomer in deaf.members
    assert deaf.members.ring == overlay.topology(ids[0]).members.ring


def test_a_peer_that_missed_a_failure_learns_it_from_the_tombstones() -> None:
    overlay, ids = _build(6)
    deaf = overlay.topology(ids[2])
    victim = ids[4]
    # The deaf peer does not notice its link to the victim go (half-open),
    # hears none of the gossip about the failure, and its own timers (its
    # link filler would find the victim unreachable) do not run.
    deaf.linkDown = deaf._connected.discard
    original = deaf.handleUpdate
    deaf.handleUpdate = lambda sender, data: b"" if data[:1] == b"\x01" else original(sender, data)
    deaf._stopTimers()
    for a, b in list(overlay.net.links):
        if victim in (a, b):
            overlay.net.unlink(a, b)
    overlay.nodes[victim].stop()
    overlay.net.settle(horizon=60.0)
    assert victim in deaf.members
    deaf.handleUpdate = original
    # A digest exchange by any other peer with the deaf one brings the tombstone.
    other = overlay.topology(ids[0])
    overlay.run(other.exchangeDigests(ids[2]))
    assert victim not in deaf.members
    assert deaf.members.ring == other.members.ring


def test_a_joining_peer_links_its_neighbours_at_once_and_others_within_the_budget() -> None:
    """A join's Attaches are bounded (issue 22: maintenance per peer does
    not grow with the overlay): the newcomer links its ring neighbours at
    once, every other member at most linksPerTick per linkInterval (or on
    demand); the others link to it at their own budget; in time it is
    linked to every member."""
    overlay, ids = _build(12)
    newcomer = overlay.rnd.randbytes(16)
    overlay.addPeer(newcomer, ids[0])
    topology = overlay.topology(newcomer)
    settings = topology.settings
    preds, succs = topology._neighbourhood()
    neighbours = {*preds, *succs}
    assert neighbours <= topology._connected
    # The newcomer's own Attaches within the first seconds: its neighbours
    # (the admitting peer among them) and at most one tick's budget more.
    assert topology.sent["attaches"] <= len(neighbours) + settings.linksPerTick
    for _ in range(12):
        overlay.net.clock.advance(settings.linkInterval * 1.25)
        overlay.net.settle(horizon=30.0)
    assert set(ids) <= topology._connected


def test_a_joining_peer_announces_itself_to_its_neighbours_until_they_answer() -> None:
    """The join announcement is confirmed, not fire-and-forget: a ring
    neighbour that refuses the first neighbour exchanges (and hears no
    gossip) still learns of the newcomer from a retry within seconds."""
    overlay, ids = _build(6)
    newcomer = next(n for n in (overlay.rnd.randbytes(16) for _ in range(100)) if n not in ids)
    # Its successor admits it; its predecessor must hear it from it.
    probe = overlay.topology(ids[0]).members
    ring = sorted([*probe.ring, newcomer])
    predecessor = ring[ring.index(newcomer) - 1]
    target = overlay.topology(predecessor)
    original = target.handleUpdate
    refused: list[bytes] = []

    def flaky(sender: bytes, data: bytes) -> bytes:
        kind = OneHopUpdate.decode(data).type
        if kind is OneHopUpdateType.EVENTS:
            return b""  # no gossip reaches it
        if kind is OneHopUpdateType.NEIGHBOURS and sender == newcomer and len(refused) < 2:
            refused.append(sender)
            raise ReloadError(ErrorCode.IN_PROGRESS, "not now")
        return original(sender, data)  # type: ignore[no-any-return]

    target.handleUpdate = flaky
    overlay.addPeer(newcomer, ids[0])
    overlay.net.clock.advance(10.0)
    overlay.net.settle(horizon=30.0)
    assert len(refused) == 2, "both first exchanges were refused"
    assert newcomer in target.members, "the third try got through"
    assert predecessor in overlay.topology(newcomer)._introduced


def test_crossed_attaches_do_not_report_a_peer_failed() -> None:
    """Section 6.5.1.2: Error_In_Progress from the peer itself means its
    own Attach is connecting -- it is alive, whatever the link does."""
    overlay, ids = _build(4)
    topology = overlay.topology(ids[0])
    other = next(n for n in ids[1:])
    topology._connected.discard(other)
    crossed = ReloadError(ErrorCode.IN_PROGRESS, "crossed", other)
    for _ in range(topology.settings.suspectAttempts + 1):
        topology._attachFailed(other, Failure(crossed))
    assert other in topology.members
    assert other not in topology._suspicion


def test_an_unreachable_peer_is_reported_only_after_repeated_attaches_and_refutes() -> None:
    """A live peer whose Attaches time out is reported failed only after
    suspectAttempts tries; the report goes to it, and its refutation (a
    higher version) reaches every peer."""
    overlay, ids = _build(9)  # a peer beyond its 3 neighbours either side
    reporter = overlay.topology(ids[0])
    victim = next(n for n in ids[1:] if not reporter.isNeighbour(n))
    reporter._connected.discard(victim)
    before = overlay.topology(victim).members.me.version
    attach = reporter.node.attach
    tries: list[bytes] = []

    def unreachable(destination: bytes, via: bytes | None = None, sendUpdate: bool = False) -> Any:
        if destination == victim:
            tries.append(destination)
            return fail(ReloadTimeout(1, 5, 15.0, "Attach"))
        return attach(destination, via, sendUpdate)

    reporter.node.attach = unreachable
    reporter._attachTo(victim)
    assert victim in reporter.members, "one failed Attach is only a suspicion"
    # (Not settle: the reporter's link filler keeps trying the victim.)
    overlay.net.clock.pump([0.5] * 120)
    assert len(tries) >= reporter.settings.suspectAttempts
    # It was told, refuted once (it is alive, if not reachable from the
    # reporter: no report again), and every peer has it alive.
    version = overlay.topology(victim).members.me.version
    assert version == before + 1
    for nodeId in ids:
        if nodeId != victim:
            entry = overlay.topology(nodeId).members.entry(victim)
            assert entry is not None and entry.alive and entry.version == version, nodeId.hex()
