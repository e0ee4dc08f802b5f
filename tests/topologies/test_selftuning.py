"""CHORD-SELF-TUNING (RFC 7363): the estimates of section 6, and the
mixed-version rules (self-tuning peers in a CHORD-RELOAD overlay).
Storage, replication and handover run in
tests/storage/test_topologies.py, parametrised over every topology."""

from __future__ import annotations

import math
from random import Random

import pytest

from reload.transport.node_api import TransportNode
from topologies.chordreload.ring import idToInt
from topologies.chordreload.topology import ChordTopology
from topologies.chordselftuning.estimator import (
    FailureHistory,
    failureRate,
    joinRate,
    networkSize,
    routingTableSizes,
    stabilisationInterval,
)
from topologies.chordselftuning.topology import SelfTuningTopology

from ..transport.test_chord_overlay import Overlay

BITS = 128


def test_network_size_from_the_density_of_neighbours() -> None:
    """Section 6.1: N = 2^k / d on an evenly spaced ring of 1,000."""
    step = (1 << BITS) // 1000
    me = 500 * step
    preds = [me - i * step for i in range(1, 6)]
    succs = [me + i * step for i in range(1, 6)]
    assert networkSize(preds, succs, me, BITS) == pytest.approx(1000, rel=0.01)


def test_a_ring_whose_neighbour_lists_overlap_is_counted() -> None:
    assert networkSize([1, 2], [2, 1], 0, BITS) == 3


def test_routing_table_sizes_follow_log2_n() -> None:
    """Section 6.2: ceiling(log2 N), at least 3 and 16."""
    assert routingTableSizes(4) == (3, 16)
    assert routingTableSizes(1000) == (10, 16)
    assert routingTableSizes(10**6) == (20, 20)


def test_failure_rate_from_the_history() -> None:
    """Section 6.3: U = k / (M * Tk); a short history counts now."""
    history = FailureHistory(0.0)
    for t in (100.0, 200.0, 300.0):
        history.add(t, 4)
    assert failureRate(history, 4, 10, 400.0) == pytest.approx(4 / (10 * 300))
    assert failureRate(history, 5, 10, 400.0) == pytest.approx(5 / (10 * 400))
    history.add(400.0, 2)
    assert history.times == (300.0, 400.0), "only the last K are kept"


def test_join_rate_from_the_median_age() -> None:
    """Section 6.4: L = N / Ages[floor(rsize/2)]."""
    assert joinRate(1000, [10.0, 500.0, 100.0]) == pytest.approx(1000 / 100)
    assert joinRate(1000, []) == 0


def test_stabilisation_interval_is_the_smaller_bound_within_limits() -> None:
    """Section 6.6: Tstab = min(Tf / log2(N)^2, N / (L log2(N)^2))."""
    square = math.log2(1000) ** 2
    u, lam = 1e-5, 0.01
    expected = min(1 / (2 * u) / square, 1000 / (lam * square))
    assert stabilisationInterval(1000, u, lam, 15, 3600) == pytest.approx(expected)
    assert stabilisationInterval(1000, 1.0, 0, 15, 3600) == 15, "the lower limit"
    assert stabilisationInterval(1000, 0, 0, 15, 3600) == 3600, "no churn seen"


# -- mixed-version overlays -------------------------------------------------------------


def _mixed(count: int, seed: int) -> tuple[Overlay, list[bytes], set[bytes]]:
    """CHORD-RELOAD peers with every third one self-tuning."""
    overlay = Overlay(seed)
    ids = [overlay.rnd.randbytes(16) for _ in range(count)]
    tuned = set(ids[1::3])
    for i, nodeId in enumerate(ids):
        node = overlay.node(nodeId)
        rng = Random(overlay.rnd.random())
        topology = (
            SelfTuningTopology(node, rng=rng) if nodeId in tuned else ChordTopology(node, rng=rng)
        )
        node.useTopology(topology)
        overlay.nodes[nodeId] = node
        bootstrap = None if i == 0 else overlay.rnd.choice(ids[:i])
        if bootstrap is not None:
            overlay.net.link(nodeId, bootstrap)
        assert overlay.run(topology.join(bootstrap)) is None
    overlay.net.settle()
    return overlay, ids, tuned


def _lookupsCorrect(overlay: Overlay, ids: list[bytes], count: int = 40) -> None:
    rnd = Random(2)
    for _ in range(count):
        origin: TransportNode = overlay.nodes[rnd.choice(ids)]
        resourceId = rnd.randbytes(16)
        response = overlay.run(origin.ping(resourceId, resource=True))
        assert response.nodeId == overlay.responsible(resourceId)


def test_self_tuning_peers_run_in_a_chord_reload_overlay() -> None:
    """RFC 7363 section 5.1: Updates of either kind are understood by both,
    lists of any length; lookups from either kind reach the responsible peer,
    also after an hour of (self-tuned and fixed) stabilisation."""
    overlay, ids, tuned = _mixed(12, 4)
    _lookupsCorrect(overlay, ids)
    for _ in range(12):
        overlay.net.clock.advance(300)
        overlay.net.settle()
    _lookupsCorrect(overlay, ids)
    ring = sorted(ids, key=idToInt)
    for nodeId in tuned:
        topology = overlay.nodes[nodeId].topology
        assert isinstance(topology, SelfTuningTopology)
        assert topology.settings.reactive is False, "section 5: periodic recovery"
        assert topology.estimates.networkSize == pytest.approx(12, rel=0.5)
        i = ring.index(nodeId)
        assert topology.ring.successors[0] == ring[(i + 1) % 12]
        assert topology.ring.predecessors[0] == ring[(i - 1) % 12]


def test_a_self_tuning_peer_updates_only_its_first_neighbours() -> None:
    """Section 5.2: the periodic Update goes to the first predecessor and
    the first successor, and "MUST NOT" go to others."""
    overlay, _ids, tuned = _mixed(9, 6)
    topology = overlay.nodes[min(tuned)].topology
    assert isinstance(topology, SelfTuningTopology)
    sent: list[bytes] = []
    topology.sendUpdate = lambda peer, *a: sent.append(peer)  # type: ignore[method-assign,assignment]
    topology._stabiliseNeighbours()
    assert set(sent) == {topology.ring.predecessors[0], topology.ring.successors[0]}
    # Section 6.2, applied at the end of the period.
    estimates = topology.estimates
    assert estimates.networkSize == pytest.approx(9, rel=0.3)
    assert estimates.neighbours == max(3, math.ceil(math.log2(estimates.networkSize)))
    assert topology.ring.neighbourCount == estimates.neighbours
    assert estimates.fingers == 16
