"""CHORD-SELF-TUNING (RFC 7363): the estimates of section 6, and the
mixed-version rules (self-tuning peers in a CHORD-RELOAD overlay).
Storage, replication and handover run in
tests/storage/test_topologies.py, parametrised over every topology."""

from __future__ import annotations

import math
from random import Random
from typing import Any

import pytest
from twisted.python.failure import Failure

from reload.config import parseConfiguration
from reload.errors import ReloadError
from reload.transport.node_api import TransportNode
from reload.wire.message import ErrorCode, MessageExtension
from reload.wire.methods import ProbeAns, ProbeInformationType, ProbeReq
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
from topologies.chordselftuning.sharing import (
    SELF_TUNING_DATA,
    SelfTuningData,
    thirdQuartile,
)
from topologies.chordselftuning.topology import SelfTuningTopology

from ..test_config import document
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


def _mixed(
    count: int, seed: int, every: int = 3, configuration: object = None
) -> tuple[Overlay, list[bytes], set[bytes]]:
    """CHORD-RELOAD peers with every ``every``-th one self-tuning (all of
    them with ``every=1``)."""
    overlay = Overlay(seed)
    ids = [overlay.rnd.randbytes(16) for _ in range(count)]
    tuned = set(ids[every // 2 :: every])
    for i, nodeId in enumerate(ids):
        node = overlay.node(nodeId)
        node.configuration = configuration
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


# -- section 6.5: estimate sharing --------------------------------------------------------


def test_self_tuning_data_layout_and_rates_per_day() -> None:
    """Section 6.5: three uint32; rates per 24 hours, rounded up (0.123
    peers/s is 10628); the extension is self_tuning_data (0x3, section
    9.1) and not critical."""
    data = SelfTuningData.fromEstimates(1234.4, 0.123, 0.0)
    assert data == SelfTuningData(1234, 10628, 0)
    assert data.encode() == bytes.fromhex("000004d20000298400000000")
    assert SelfTuningData.decode(data.encode()) == data
    extension = data.extension()
    assert (extension.type, extension.critical) == (SELF_TUNING_DATA, False)
    assert data.joinsPerSecond == pytest.approx(10628 / 86400)
    for bad in (b"", b"\x00" * 11, b"\x00" * 13, bytes(12)):
        with pytest.raises(ValueError):
            SelfTuningData.decode(bad)


def test_third_quartile() -> None:
    assert thirdQuartile([5.0]) == 5.0
    assert thirdQuartile([1.0, 2.0, 3.0, 4.0]) == 3.0
    assert thirdQuartile([9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0]) == 7.0


def _period(overlay: Overlay, seconds: float = 900.0) -> None:
    overlay.net.clock.advance(seconds)
    overlay.net.settle()


def test_peers_share_estimates_in_probes_to_their_fingers() -> None:
    """Section 6.5: every period each peer Probes number-of-peers-to-probe
    (default 4) random fingers with self_tuning_data; the answers carry it
    back, and requests received count too."""
    overlay, ids, tuned = _mixed(10, 7, every=1)
    assert tuned == set(ids)
    topologies = [overlay.nodes[i].topology for i in ids]
    assert all(isinstance(t, SelfTuningTopology) for t in topologies)
    for _ in range(4):
        _period(overlay)
    for topology in topologies:
        assert isinstance(topology, SelfTuningTopology)
        assert topology.peersToProbe == 4
        assert topology.sharing["probesSent"] > 0
        assert topology.sharing["probesUnanswered"] == 0
        # Answers to its own Probes at least; each carries one estimate.
        assert topology.sharing["estimatesReceived"] >= topology.sharing["probesSent"]
    _lookupsCorrect(overlay, ids)


def test_a_probe_with_the_extension_is_answered_with_the_estimate() -> None:
    """Both the Probe request and its answer carry self_tuning_data (section
    6.5); the receiver keeps the sender's estimate for its next period."""
    overlay, ids, _ = _mixed(6, 8, every=1)
    sender, target = overlay.nodes[ids[0]], overlay.nodes[ids[3]]
    theirs = target.topology
    assert isinstance(theirs, SelfTuningTopology)
    before = len(theirs.received)
    estimate = SelfTuningData(600, 86400, 8640)
    response = overlay.run(
        sender.transport.request(
            [sender._target(target.nodeId, False)],
            ProbeReq.CODE,
            ProbeReq((ProbeInformationType.UPTIME,)).encode(),
            extensions=[estimate.extension()],
        )
    )
    [answer] = response.message.contents.extensions
    assert answer.type == SELF_TUNING_DATA and not answer.critical
    assert SelfTuningData.decode(answer.contents).networkSize >= 1
    assert ProbeAns.decode(response.body).probe_info[0].type == ProbeInformationType.UPTIME
    assert theirs.received[before:] == [estimate]


def test_the_third_quartile_of_the_shared_estimates_is_used() -> None:
    """Section 6.5: at the end of the period the estimates are the 75th
    percentile of the peer's own and the received ones."""
    overlay, ids, _ = _mixed(6, 9, every=1)
    topology = overlay.nodes[ids[2]].topology
    assert isinstance(topology, SelfTuningTopology)
    own = topology.estimate().networkSize
    topology.received = [SelfTuningData(n, 0, 0) for n in (1000, 2000, 3000, 4000)]
    merged = topology.estimate()
    assert merged.networkSize == thirdQuartile([own, 1000, 2000, 3000, 4000]) == 3000
    assert merged.neighbours == math.ceil(math.log2(3000))
    assert topology.received == [], "a new period starts with no received estimates"
    # What it shares is its own estimate, not the merged one: peers passing
    # merged figures on would go on agreeing on them whatever they see.
    assert topology._share().networkSize == round(own) != 3000


def test_number_of_peers_to_probe_from_the_configuration() -> None:
    """Section 7: self-tuning:number-of-peers-to-probe sets how many fingers
    are Probed each period."""
    config = parseConfiguration(
        document("<st:number-of-peers-to-probe>1</st:number-of-peers-to-probe>")
    )
    overlay, ids, _ = _mixed(10, 10, every=1, configuration=config)
    topology = overlay.nodes[ids[4]].topology
    assert isinstance(topology, SelfTuningTopology)
    assert topology.peersToProbe == 1
    sent: list[bytes] = []
    original = overlay.nodes[ids[4]].request

    def recording(destination: bytes, code: int, body: bytes, *a: object, **k: object) -> object:
        if code == ProbeReq.CODE:
            sent.append(destination)
        return original(destination, code, body, *a, **k)  # type: ignore[arg-type]

    overlay.nodes[ids[4]].request = recording  # type: ignore[method-assign,assignment]
    topology._stabiliseNeighbours()
    assert len(sent) == 1 and sent[0] in topology.ring.fingers()
    topology.peersToProbe = 0
    topology._stabiliseNeighbours()
    assert len(sent) == 1


def test_a_chord_reload_peer_ignores_the_extension() -> None:
    """Mixed versions: the extension is not critical, so a CHORD-RELOAD
    peer answers the Probe (without estimates) and the self-tuning peer
    goes on with its own; marked critical, only the self-tuning peer, which
    understands it, accepts it (RFC 6940 section 6.3.3)."""
    overlay, ids, tuned = _mixed(9, 11)
    chord = next(overlay.nodes[i] for i in ids if i not in tuned)
    tunedNode = overlay.nodes[min(tuned)]
    data = SelfTuningData(9, 0, 0)
    body = ProbeReq((ProbeInformationType.UPTIME,)).encode()

    def probe(source: TransportNode, target: TransportNode, critical: bool) -> Any:
        extension = MessageExtension(SELF_TUNING_DATA, critical, data.encode())
        return overlay.run(
            source.transport.request(
                [source._target(target.nodeId, False)], ProbeReq.CODE, body, extensions=[extension]
            )
        )

    plain = probe(tunedNode, chord, critical=False)
    assert plain.message.contents.extensions == ()
    assert ProbeAns.decode(plain.body).probe_info
    refused = probe(tunedNode, chord, critical=True)
    assert isinstance(refused, Failure) and isinstance(refused.value, ReloadError)
    assert refused.value.code == ErrorCode.UNKNOWN_EXTENSION
    accepted = probe(chord, tunedNode, critical=True)
    assert [e.type for e in accepted.message.contents.extensions] == [SELF_TUNING_DATA]
    # The mixed overlay still routes after periods of sharing.
    for _ in range(3):
        _period(overlay)
    _lookupsCorrect(overlay, ids)
