"""Whole overlays of ChordTopology instances on the in-memory network of
:mod:`tests.chord.fakenet`: joins (RFC 6940 section 10.5), leaves (10.9),
failures (10.7.1) and stabilisation (10.7.4) converge to a correct ring."""

from __future__ import annotations

import math
from random import Random

import pytest

from topologies.chordreload.ring import IdRange
from topologies.chordreload.settings import ChordSettings

from .fakenet import FakeNetwork, FakeNode, responsibleFor


def assertCorrectRing(net: FakeNetwork, lookups: int = 200, seed: int = 0) -> None:
    """Every joined node has the true three successors and predecessors,
    and a lookup from anywhere ends at the responsible node."""
    ring = net.joined()
    count = len(ring)
    k = min(3, count - 1)
    for i, node in enumerate(ring):
        table = node.topology.ring
        assert table.successors == [ring[(i + j) % count].nodeId for j in range(1, k + 1)], node
        assert table.predecessors == [ring[(i - j) % count].nodeId for j in range(1, k + 1)], node
    rnd = Random(seed)
    bound = 2 * math.ceil(math.log2(count)) + 2 if count > 1 else 0
    for _ in range(lookups):
        resourceId = rnd.randbytes(16)
        owner = responsibleFor(ring, resourceId)
        end, hops = net.lookup(rnd.choice(ring), resourceId)
        assert end is owner
        assert hops <= bound
        assert [n for n in ring if n.topology.isResponsible(resourceId)] == [owner]


def buildOverlay(
    count: int, seed: int, settings: ChordSettings | None = None
) -> tuple[FakeNetwork, Random]:
    rnd = Random(seed)
    net = FakeNetwork(seed)
    net.startRing(rnd.randbytes(16), settings)
    for _ in range(count - 1):
        bootstrap = rnd.choice(net.joined())
        node, outcome = net.joinNode(rnd.randbytes(16), bootstrap, settings)
        assert outcome == [None], outcome
        assert node.topology.phase == "joined"
    return net, rnd


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_twenty_nodes_joining_one_by_one_form_a_correct_ring(seed: int) -> None:
    net, _ = buildOverlay(20, seed)
    assertCorrectRing(net, seed=seed)
    for node in net.joined():
        neighbours = node.topology.neighbours()
        assert len(neighbours["successors"]) == len(neighbours["predecessors"]) == 3
        assert neighbours["fingers"], "fingers were set up at join (section 10.5)"


def test_admitting_peer_hands_over_the_joining_nodes_range() -> None:
    """Section 10.5 step 6: the admitting peer's storage is told which
    range moved to the joining node."""
    net, rnd = buildOverlay(8, 11)
    moved: dict[bytes, list[tuple[IdRange, ...]]] = {}
    for node in net.joined():
        moved[node.nodeId] = []
        node.topology.onResponsibilityChange(moved[node.nodeId].append)
    newcomer = rnd.randbytes(16)
    admitting = responsibleFor(net.joined(), newcomer)
    oldPredecessor = admitting.topology.ring.predecessors[0]
    net.joinNode(newcomer, rnd.choice(net.joined()))
    assert any(IdRange(oldPredecessor, newcomer) in ranges for ranges in moved[admitting.nodeId])
    assert not admitting.topology.isResponsible(newcomer)
    assert net.nodes[newcomer].topology.isResponsible(newcomer)


def test_concurrent_joins_converge() -> None:
    net, rnd = buildOverlay(5, 4)
    outcomes: list[list[object]] = []
    for _ in range(12):
        node = net.add(rnd.randbytes(16))
        bootstrap = rnd.choice(net.joined())
        net.link(node, bootstrap)
        outcome: list[object] = []
        node.topology.join(bootstrap.nodeId).addBoth(outcome.append)
        outcomes.append(outcome)
    net.settle()
    assert outcomes == [[None]] * 12
    assertCorrectRing(net)


def test_leaves_and_failures_keep_the_ring_correct() -> None:
    net, rnd = buildOverlay(20, 5)
    for node in rnd.sample(net.joined(), 5):
        outcome: list[object] = []
        node.topology.leave().addBoth(outcome.append)
        net.settle()
        assert outcome == [None]
        net.disconnect(node)
        net.settle()
        assertCorrectRing(net, lookups=50)
    for node in rnd.sample(net.joined(), 3):
        net.disconnect(node)  # crash: no Leave
        net.settle()
    assertCorrectRing(net)
    # Two adjacent peers at once: their neighbours still find each other.
    ring = net.joined()
    net.disconnect(ring[2])
    net.disconnect(ring[3])
    net.settle()
    assertCorrectRing(net)
    assert len(net.joined()) == 10


@pytest.mark.parametrize("noticed", [True, False], ids=["link-lost", "half-open"])
def test_a_crashed_peer_restarted_with_its_node_id_rejoins_at_once(noticed: bool) -> None:
    """A peer killed and restarted on its data directory keeps its Node-ID
    (sections 10.5, 10.7.1).  Whether its neighbours saw its links go down
    or still list the dead incarnation, the new one is admitted by its
    successor within a second, and the ring is right again."""
    net, rnd = buildOverlay(12, 21)
    for round in range(4):
        ring = net.joined()
        victim = ring[rnd.randrange(len(ring))]
        successor = ring[(ring.index(victim) + 1) % len(ring)]
        if noticed:
            net.disconnect(victim)
        else:
            net.crashUnnoticed(victim)
        net.clock.advance(rnd.uniform(1, 10))
        started = net.clock.seconds()
        node, outcome = net.joinNode(victim.nodeId, successor)
        assert outcome == [None], (round, outcome)
        assert node.topology.phase == "joined"
        net.settle()
        assert net.clock.seconds() - started < 35  # settle's horizon included
        # Half-open, a far peer may still hold the dead incarnation as a
        # finger until its connectivity check (section 10.7.4.2): lookups
        # are checked where the links were seen to go down.
        assertCorrectRing(net, lookups=50 if noticed else 0, seed=round)


def test_three_consecutive_failures_are_survived() -> None:
    """Section 10.1: several successors let the ring survive consecutive
    failures."""
    net, _ = buildOverlay(16, 6)
    ring = net.joined()
    for node in ring[5:8]:
        net.disconnect(node)
    net.settle()
    assertCorrectRing(net)


def test_periodic_recovery_overlay_converges() -> None:
    """chord-reactive false: neighbours learn of a failure at the next
    chord-update-interval round (section 10.7.4.1)."""
    settings = ChordSettings(reactive=False, updateInterval=60)
    net, rnd = buildOverlay(15, 7, settings)
    assertCorrectRing(net)
    for node in rnd.sample(net.joined(), 3):
        net.disconnect(node)
    net.settle()
    for _ in range(6):
        net.clock.advance(60)
        net.settle(horizon=5)
    assertCorrectRing(net)


def test_hours_of_stabilisation_keep_the_ring_and_find_fingers() -> None:
    net, _ = buildOverlay(20, 8, ChordSettings(updateInterval=600, pingInterval=3600))
    before = sum(len(n.topology.ring.fingers()) for n in net.joined())
    for _ in range(24):
        net.clock.advance(3600)
        net.settle(horizon=5)
    assertCorrectRing(net)
    after = sum(len(n.topology.ring.fingers()) for n in net.joined())
    assert after >= before


def test_everyone_leaving_cancels_every_timer() -> None:
    net, _ = buildOverlay(6, 9)
    for node in net.joined():
        outcome: list[object] = []
        node.topology.leave().addBoth(outcome.append)
        net.settle()
        assert outcome == [None]
        net.disconnect(node)
        net.settle()
    assert net.clock.getDelayedCalls() == []


def test_last_node_alone_is_responsible_for_everything() -> None:
    net, rnd = buildOverlay(3, 10)
    a, b, c = net.joined()
    net.disconnect(b)
    net.disconnect(c)
    net.settle()
    assert a.topology.isResponsible(rnd.randbytes(16))
    assert a.topology.neighbours()["successors"] == []


def test_join_through_a_dead_bootstrap_fails() -> None:
    net, rnd = buildOverlay(3, 12)
    bootstrap: FakeNode = net.joined()[0]
    node = net.add(rnd.randbytes(16))
    net.link(node, bootstrap)
    net.disconnect(bootstrap)
    outcome: list[object] = []
    node.topology.join(bootstrap.nodeId).addBoth(outcome.append)
    net.settle()
    assert len(outcome) == 1 and outcome[0] is not None
    assert node.topology.phase == "idle"
