"""The sans-I/O CHORD-RELOAD ring: arithmetic, Routing Table, routing
(RFC 6940 sections 10.1-10.4, 10.7)."""

from __future__ import annotations

import hashlib
import math
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topologies.chordreload.ring import (
    IdRange,
    ResponsibilityChange,
    RoutingTable,
    addToId,
    distance,
    hashResource,
    idToInt,
    inOpen,
    inOpenClosed,
    intToId,
)

ids = st.binary(min_size=16, max_size=16)
#: One-byte ids: a ring of 256 points, small enough to check by enumeration.
tiny = st.integers(0, 255).map(lambda v: bytes([v]))


def ring16(*values: int) -> list[bytes]:
    return [intToId(v) for v in values]


# -- arithmetic (section 10.1) -------------------------------------------------


@given(ids, ids)
def test_distances_both_ways_go_round_the_ring_once(a: bytes, b: bytes) -> None:
    total = distance(a, b) + distance(b, a)
    assert total == (0 if a == b else 1 << 128)


@given(ids, st.integers(-(1 << 130), 1 << 130))
def test_addToId_moves_clockwise_modulo_2_128(a: bytes, offset: int) -> None:
    assert distance(a, addToId(a, offset)) == offset % (1 << 128)


@given(tiny, tiny, tiny)
def test_open_closed_interval_matches_enumeration_with_wraparound(
    x: bytes, a: bytes, b: bytes
) -> None:
    walk = []
    v = a[0]
    while True:
        v = (v + 1) % 256
        walk.append(v)
        if v == b[0]:
            break
    assert inOpenClosed(x, a, b) == (x[0] in walk)
    assert inOpen(x, a, b) == (x[0] in walk[:-1] if a != b else x != a)


@given(ids, ids, ids)
def test_open_closed_halves_partition_the_ring(x: bytes, a: bytes, b: bytes) -> None:
    if a != b:
        assert inOpenClosed(x, a, b) != inOpenClosed(x, b, a)


def test_intervals_wrap_past_zero() -> None:
    top, low = intToId((1 << 128) - 16), intToId(16)
    assert inOpenClosed(intToId(0), top, low)
    assert inOpenClosed(low, top, low)
    assert not inOpenClosed(top, top, low)
    assert not inOpen(low, top, low)
    assert not inOpenClosed(intToId(17), top, low)
    assert intToId(0) in IdRange(top, low)


def test_a_range_from_a_point_to_itself_is_the_whole_ring() -> None:
    """The lone node's range, (self, self] (section 10.1)."""
    a = intToId(5)
    assert all(inOpenClosed(intToId(v), a, a) for v in (0, 4, 5, 6, (1 << 128) - 1))
    assert not inOpen(a, a, a)


def test_hash_is_sha1_truncated_to_128_bits() -> None:
    """Section 10.2."""
    assert hashResource(b"abc") == bytes.fromhex("a9993e364706816aba3e25717850c26c")
    assert (
        hashResource(b"sip:alice@example.com")
        == (hashlib.sha1(b"sip:alice@example.com").digest()[:16])
    )


def test_ids_of_another_length_are_refused() -> None:
    table = RoutingTable(intToId(1))
    with pytest.raises(ValueError, match="16 bytes"):
        table.addPeer(b"\x00" * 20)
    with pytest.raises(ValueError):
        distance(b"\x00" * 16, b"\x00" * 20)
    with pytest.raises(ValueError, match="itself"):
        table.addPeer(intToId(1))


# -- Neighbor Table, responsibility, replicas ----------------------------------


def test_neighbours_are_the_closest_three_each_way() -> None:
    me = intToId(100)
    table = RoutingTable(me)
    for v in (10, 20, 90, 95, 110, 120, 130, 200):
        table.addPeer(intToId(v))
    assert table.successors == ring16(110, 120, 130)
    assert table.predecessors == ring16(95, 90, 20)
    assert table.neighbourSet() == set(ring16(110, 120, 130, 95, 90, 20))


def test_neighbour_sets_wrap_around_zero() -> None:
    table = RoutingTable(intToId((1 << 128) - 5))
    for v in (3, 1, (1 << 128) - 50, 7, (1 << 128) - 9):
        table.addPeer(intToId(v))
    assert table.successors == ring16(1, 3, 7)
    assert table.predecessors == ring16((1 << 128) - 9, (1 << 128) - 50, 7)


def test_neighbour_count_is_configurable() -> None:
    table = RoutingTable(intToId(0), neighbours=5)
    for v in range(1, 20):
        table.addPeer(intToId(v * 1000))
    assert len(table.successors) == 5 and len(table.predecessors) == 5


def test_lone_node_is_responsible_for_everything() -> None:
    table = RoutingTable(intToId(42))
    assert table.isResponsible(intToId(0))
    assert table.isResponsible(intToId(42))
    assert table.isResponsible(intToId((1 << 128) - 1))
    assert table.nextHop(intToId(7)) is None
    assert table.replicaSet(intToId(7)) == []


def test_responsible_for_predecessor_exclusive_self_inclusive() -> None:
    """Section 10.1: k in (p, x]."""
    table = RoutingTable(intToId(100))
    table.addPeer(intToId(50))
    table.addPeer(intToId(200))
    assert table.isResponsible(intToId(100))
    assert table.isResponsible(intToId(51))
    assert not table.isResponsible(intToId(50))
    assert not table.isResponsible(intToId(101))
    assert table.responsibleRange() == IdRange(intToId(50), intToId(100))


def test_replica_set_is_the_next_two_successors() -> None:
    """Section 10.4."""
    table = RoutingTable(intToId(100))
    for v in (50, 200, 300, 400):
        table.addPeer(intToId(v))
    assert table.replicaSet(intToId(80)) == ring16(200, 300)
    # For a range another peer holds: the two after that peer.
    assert table.replicaSet(intToId(250)) == ring16(400, 50)
    two = RoutingTable(intToId(100))
    two.addPeer(intToId(200))
    assert two.replicaSet(intToId(100)) == ring16(200)


@settings(max_examples=60)
@given(st.integers(0, 255), st.sets(st.integers(0, 255), max_size=8), st.integers(1, 4))
def test_responsibility_and_replica_sets_follow_their_definitions(
    own: int, others: set[int], replicas: int
) -> None:
    """Sections 10.1 and 10.4 checked point by point on a ring of 256 ids:
    a node is responsible for (its first predecessor, itself]; the replica
    set of an id is the ``replicas`` nodes after the one responsible for it,
    clockwise, never counting that one twice."""
    table = RoutingTable(bytes([own]), replicas=replicas)
    for other in others - {own}:
        table.addPeer(bytes([other]))
    members = sorted({own, *others})
    for k in range(256):
        # The responsible node: the first member at or after k, clockwise.
        owner = next((m for m in members if m >= k), members[0])
        assert table.isResponsible(bytes([k])) == (owner == own)
        assert table.responsiblePeer(bytes([k])) == bytes([owner])
        start = members.index(owner)
        after = [members[(start + j) % len(members)] for j in range(1, len(members))]
        assert table.replicaSet(bytes([k])) == [bytes([m]) for m in after[:replicas]]


def test_holds_replica_for_the_two_predecessors_ranges() -> None:
    """Section 10.7.3: a node drops data once three predecessors separate
    it from the resource."""
    table = RoutingTable(intToId(100))
    for v in (10, 20, 30, 90):
        table.addPeer(intToId(v))
    assert table.holdsReplica(intToId(90))  # first predecessor's range (30, 90]
    assert table.holdsReplica(intToId(25))  # second predecessor's range (20, 30]
    assert not table.holdsReplica(intToId(15))  # third predecessor's range
    assert not table.holdsReplica(intToId(95))  # ours


# -- Finger Table (sections 10.5, 10.7.4.2, 10.7.4.3) ----------------------------


def test_finger_targets_are_n_plus_2_to_the_128_minus_i() -> None:
    n = intToId(12345)
    table = RoutingTable(n)
    assert table.fingerTarget(1) == addToId(n, 1 << 127)  # halfway round
    assert table.fingerTarget(2) == addToId(n, 1 << 126)  # a quarter
    assert table.fingerTarget(16) == addToId(n, 1 << 112)
    assert table.fingerRange(1) == (1 << 127, 1 << 128)


def test_finger_entry_is_valid_only_inside_its_range() -> None:
    n = intToId(0)
    table = RoutingTable(n)
    inside = intToId((1 << 126) + 77)  # in [n+2^126, n+2^127-1]: entry 2
    table.addPeer(inside)
    assert table.fingerSlot(inside) == 2
    assert table.finger(2) == inside
    assert table.finger(1) is None
    assert table.finger(3) is None
    edge = intToId((1 << 127) - 1)  # last id of entry 2's range
    assert RoutingTable(n).fingerSlot(edge) == 2


@given(st.lists(ids, min_size=1, max_size=40, unique=True), ids)
def test_random_finger_targets_stay_in_range(peers: list[bytes], me: bytes) -> None:
    table = RoutingTable(me)
    rng = Random(0)
    for i in range(1, 129):
        target = table.randomFingerTarget(i, rng)
        if target != me:
            assert table.fingerSlot(target) == i


def test_finger_table_size_is_16_and_grows_to_reach_the_last_successor() -> None:
    """Section 10.7.4.3."""
    table = RoutingTable(intToId(0))
    assert table.fingerTableSize == 16
    for v in (1 << 100, (1 << 100) + 1, (1 << 100) + 2):
        table.addPeer(intToId(v))
    # The last successor sits at distance ~2^100: entry 128-100 = 28.
    assert table.fingerTableSize == 28
    close = RoutingTable(intToId(0))
    for v in (1, 2, 3):
        close.addPeer(intToId(v))
    assert close.fingerTableSize == 127  # distance 3 is entry 127's range [2, 4)
    close.removePeer(intToId(3))
    close.removePeer(intToId(2))
    assert close.fingerTableSize == 128  # and 128 entries at most


def test_fingers_listed_ascending_without_repeats() -> None:
    table = RoutingTable(intToId(1 << 127))
    # Entries 2, 1 (wrapping past zero) and 8; 1 << 125 is in entry 1's
    # range too but farther from its start than 1, so it is no finger.
    for v in (3 << 126, 1, 1 << 125, (1 << 127) + (1 << 120)):
        table.addPeer(intToId(v))
    assert table.finger(1) == intToId(1)
    assert table.fingers() == ring16(1, (1 << 127) + (1 << 120), 3 << 126)


def test_invalid_fingers_skip_ranges_inside_the_successor_span() -> None:
    table = RoutingTable(intToId(0))
    for v in (1 << 120, 1 << 121, 1 << 122, 1 << 127):
        table.addPeer(intToId(v))
    invalid = table.invalidFingers()
    assert 1 not in invalid  # 2^127 fills entry 1
    assert 2 in invalid  # nobody in [2^126, 2^127)
    # Ranges entirely below 2^122 (the third successor) are known empty.
    assert all(table.fingerRange(i)[1] - 1 > 1 << 122 for i in invalid)


def test_finger_would_fill_only_an_invalid_entry() -> None:
    table = RoutingTable(intToId(0))
    table.addPeer(intToId(1 << 127))
    assert table.fingerWouldFill(intToId((1 << 127) + 5)) is None  # entry 1 is valid
    assert table.fingerWouldFill(intToId(1 << 126)) == 2


# -- routing (section 10.3) --------------------------------------------------------


def buildStaticRing(members: list[bytes]) -> dict[bytes, RoutingTable]:
    """Each node knows its true neighbours and, for each finger i, the peer
    an Attach to n+2^(128-i) reaches (section 10.5)."""
    ordered = sorted(members, key=idToInt)

    def responsible(x: bytes) -> bytes:
        for m in ordered:
            if idToInt(m) >= idToInt(x):
                return m
        return ordered[0]

    tables = {}
    count = len(ordered)
    for i, m in enumerate(ordered):
        table = RoutingTable(m)
        for j in range(1, min(3, count - 1) + 1):
            table.addPeer(ordered[(i + j) % count])
            table.addPeer(ordered[(i - j) % count])
        for f in range(1, table.fingerTableSize + 1):
            peer = responsible(table.fingerTarget(f))
            if peer != m:
                table.addPeer(peer)
        tables[m] = table
    return tables


def route(tables: dict[bytes, RoutingTable], start: bytes, destination: bytes) -> tuple[bytes, int]:
    current, hops = start, 0
    while True:
        hop = tables[current].nextHop(destination)
        if hop is None:
            return current, hops
        assert hop in tables[current].peers, "routes only to Routing Table entries"
        current, hops = hop, hops + 1
        assert hops <= len(tables), "routing loop"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(ids, min_size=1, max_size=120, unique=True),
    st.lists(ids, min_size=1, max_size=20),
    st.randoms(use_true_random=False),
)
def test_next_hop_reaches_the_responsible_node_in_log_n_hops(
    members: list[bytes], lookups: list[bytes], rnd: Random
) -> None:
    tables = buildStaticRing(members)
    ordered = sorted(members, key=idToInt)
    bound = 2 * math.ceil(math.log2(len(members))) + 2 if len(members) > 1 else 0
    for destination in lookups + members:
        owner = next((m for m in ordered if idToInt(m) >= idToInt(destination)), ordered[0])
        assert [m for m in members if tables[m].isResponsible(destination)] == [owner]
        start = rnd.choice(members)
        end, hops = route(tables, start, destination)
        assert end == owner
        assert hops <= bound


def test_average_hops_grow_logarithmically() -> None:
    rnd = Random(7)
    for n in (64, 512):
        members = [rnd.randbytes(16) for _ in range(n)]
        tables = buildStaticRing(members)
        hops = [route(tables, rnd.choice(members), rnd.randbytes(16))[1] for _ in range(300)]
        assert sum(hops) / len(hops) <= math.log2(n)


def test_destination_in_successor_interval_goes_to_the_successor() -> None:
    table = RoutingTable(intToId(100))
    for v in (50, 200, 1 << 100):
        table.addPeer(intToId(v))
    assert table.nextHop(intToId(150)) == intToId(200)
    assert table.nextHop(intToId(200)) == intToId(200)
    assert table.nextHop(intToId(75)) is None
    # Beyond the successor: the closest preceding entry.
    assert table.nextHop(intToId((1 << 100) + 9)) == intToId(1 << 100)
    assert table.nextHop(intToId(40)) == intToId(1 << 100)


def test_forward_hop_never_keeps_a_message() -> None:
    """A node not yet in the ring forwards even ids it would own."""
    table = RoutingTable(intToId(100))
    table.addPeer(intToId(200))
    assert table.nextHop(intToId(150)) == intToId(200)
    assert table.nextHop(intToId(300)) is None
    assert table.forwardHop(intToId(300)) == intToId(200)


# -- change notification -----------------------------------------------------------


def test_adding_and_removing_peers_fires_responsibility_changes() -> None:
    me = intToId(1000)
    table = RoutingTable(me)
    seen: list[ResponsibilityChange] = []
    table.onResponsibilityChange(seen.append)

    table.addPeer(intToId(500))
    # From the whole ring to (500, 1000]: (1000, 500] moved away, and the
    # replica set went from nothing to [500].
    assert seen[-1].moved == IdRange(me, intToId(500))
    assert seen[-1].replicas == IdRange(intToId(500), me)

    seen.clear()
    table.addPeer(intToId(800))  # a closer predecessor takes (500, 800]
    assert seen[-1].moved == IdRange(intToId(500), intToId(800))
    assert intToId(700) in seen[-1].moved
    assert seen[-1].ranges[0] == seen[-1].moved

    seen.clear()
    table.addPeer(intToId(2000))  # a new first successor: replicas only
    assert seen[-1].moved is None
    assert seen[-1].replicas == IdRange(intToId(800), me)
    assert seen[-1].ranges == (IdRange(intToId(800), me),)
    table.addPeer(intToId(3000))
    assert table.replicaSet(me) == [intToId(2000), intToId(3000)]

    seen.clear()
    # A third successor: same replicas, same range; but going round, 4000
    # is also the third predecessor now, so this node keeps replicas of
    # (4000, 1000] only: (3000, 4000] is no longer its to keep.
    table.addPeer(intToId(4000))
    assert [(c.moved, c.replicas, c.held) for c in seen] == [
        (None, None, IdRange(intToId(3000), intToId(4000)))
    ]
    seen.clear()
    table.addPeer(intToId(100))  # a closer third predecessor: (4000, 100] too
    assert [c.ranges for c in seen] == [(IdRange(intToId(4000), intToId(100)),)]
    assert not table.holdsReplica(intToId(50)) and table.holdsReplica(intToId(150))
    seen.clear()

    table.removePeer(intToId(800))  # the predecessor fails: (500, 800] is ours again
    assert seen[-1].moved == IdRange(intToId(500), intToId(800))
    assert seen[-1].replicas is None
    assert table.isResponsible(intToId(700))

    seen.clear()
    assert not table.removePeer(intToId(800))
    assert seen == []


def test_removing_the_last_peer_makes_the_node_responsible_for_everything() -> None:
    table = RoutingTable(intToId(100))
    seen: list[ResponsibilityChange] = []
    table.addPeer(intToId(50))
    table.onResponsibilityChange(seen.append)
    table.removePeer(intToId(50))
    assert seen[-1].moved == IdRange(intToId(100), intToId(50))
    assert table.isResponsible(intToId(3000))


@given(st.lists(tiny, min_size=1, max_size=30, unique=True), tiny)
def test_neighbour_tables_match_sorting_on_a_tiny_ring(peers: list[bytes], me: bytes) -> None:
    peers = [p for p in peers if p != me]
    table = RoutingTable(me)
    for p in peers:
        table.addPeer(p)
    clockwise = sorted(peers, key=lambda p: (p[0] - me[0]) % 256)
    assert table.successors == clockwise[:3]
    assert table.predecessors == list(reversed(clockwise))[:3]
    for p in peers:
        assert table.wouldImproveNeighbours(p) is False
    for x in range(256):
        xid = bytes([x])
        if xid == me or xid in peers:
            continue
        expected = len(peers) < 3 or (
            (x - me[0]) % 256 < (clockwise[2][0] - me[0]) % 256
            or (me[0] - x) % 256 < (me[0] - clockwise[-3][0]) % 256
        )
        assert table.wouldImproveNeighbours(xid) == expected
