"""The simulator's scenarios on the real transport and CHORD-RELOAD code:
reproducibility, routing correctness at 1,000 peers (RFC 6940 section 10.1:
every lookup ends at the responsible peer), churn and mass failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

from reload.security.signing import VerifiedSigner
from reload.sim.network import SimLink
from reload.sim.report import toJson
from reload.sim.scenarios import (
    SimSettings,
    Simulation,
    churnScenario,
    joinScenario,
    massFailureScenario,
)
from reload.transport.node_api import TransportNode
from reload.transport.security import SigningSecurity, TrustingSecurity
from topologies.chord import chord
from topologies.chordreload.topology import ChordTopology

from ..conftest import REPO, sourceEnv


def everyLookupCorrect(stats: dict[str, Any]) -> None:
    assert stats["failures"] == {}
    assert stats["correct"] == stats["issued"] > 0, stats


def test_a_simulated_peer_is_the_real_transport_node_and_chord_topology() -> None:
    sim = Simulation(SimSettings(seed=3))
    sim.joinPeers(5)
    node = sim.members.order[-1]
    assert isinstance(node.node, TransportNode)
    assert isinstance(node.node.transport.security, TrustingSecurity)
    # The class the CHORD-RELOAD plugin makes, reading its timers from the
    # node's configuration as the plugin's topology does.
    assert type(node.topology) is type(chord.makeTopology(cast(Any, node.node))) is ChordTopology
    assert node.topology.settings.updateInterval == sim.settings.updateInterval
    assert all(isinstance(link, SimLink) for link in node.host.links.values())


def test_the_same_seed_gives_the_same_json() -> None:
    def run(seed: int) -> str:
        _, result = joinScenario(SimSettings(seed=seed), peers=60, lookups=400, batch=3)
        return toJson(result)

    first = run(5)
    assert run(5) == first
    assert run(6) != first
    result = json.loads(first)
    assert result["join"]["joined"] == 60
    everyLookupCorrect(result["lookups"])


def test_the_command_line_writes_the_same_json_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Reproducible across processes too: nothing depends on the order of
    sets of bytes (PYTHONHASHSEED)."""
    outputs = []
    for hashSeed in ("1", "2"):
        out = tmp_path / f"run{hashSeed}.json"
        env = sourceEnv()
        env["PYTHONHASHSEED"] = hashSeed
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "reload.sim",
                "join",
                "--peers",
                "40",
                "--lookups",
                "300",
                "--seed",
                "7",
                "--quiet",
                "--json",
                str(out),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        assert "forwarding hops" in done.stdout and "100.00%" in done.stdout
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["lookups"]["correct"] == 300


def test_every_lookup_at_1000_peers_reaches_the_responsible_peer() -> None:
    """1,000 peers join one at a time through Attach, Join and Update
    (section 10.5), then Pings to 5,000 random Resource-IDs (section 6.5.3)
    from random peers are all answered by the peer responsible for them on
    the global ring (section 10.1), and every peer has its true successor
    and predecessor."""
    _, result = joinScenario(SimSettings(seed=11), peers=1000, lookups=5000)
    assert result["join"]["joined"] == 1000 and result["join"]["failed"] == 0
    assert result["ring"]["rate"] == 1.0
    everyLookupCorrect(result["lookups"])
    hops = result["lookups"]["hops"]
    # Section 10.3's routing over finger tables: O(log N) hops.
    assert hops["max"] <= 12 and hops["mean"] < 5
    assert result["counters"]["schedulerErrors"] == 0
    assert result["counters"].get("badSignature", 0) == 0


def test_iterative_route_query_lookups_end_at_the_responsible_peer() -> None:
    _, result = joinScenario(SimSettings(seed=2), peers=80, lookups=300, method="routequery")
    everyLookupCorrect(result["lookups"])
    assert result["lookups"]["method"] == "routequery"


def test_lookups_are_correct_after_churn() -> None:
    """Peers join, leave (section 10.9) and fail (section 10.7.1) at random
    while lookups run; once the overlay has stabilised every lookup reaches
    the responsible peer."""
    _, result = churnScenario(
        SimSettings(seed=4),
        peers=150,
        duration=600,
        joinRate=0.1,
        leaveRate=0.05,
        failRate=0.05,
        lookupRate=5,
        lookups=2000,
        settle=1200,
    )
    churn = result["churn"]
    assert churn["joins"] > 30 and churn["leaves"] > 10 and churn["fails"] > 10
    assert churn["lookupsDuring"]["issued"] > 2000
    assert result["ring"]["rate"] == 1.0
    everyLookupCorrect(result["lookupsAfter"])


def test_a_fifth_of_the_peers_failing_at_once() -> None:
    """Before repair (the failed peers' links are gone, the maintenance
    traffic held) at least 97% of lookups succeed; after repair all do."""
    _, result = massFailureScenario(
        SimSettings(seed=2), peers=300, fraction=0.2, lookups=2000, settle=1800
    )
    assert result["failed"] == 60
    assert result["heldMessages"] > 0
    everyLookupCorrect(result["lookupsIntact"])
    assert result["lookupsBeforeRepair"]["successRate"] >= 0.97
    assert result["ringAfter"]["rate"] == 1.0
    everyLookupCorrect(result["lookupsAfterRepair"])


def test_a_peer_that_lost_all_its_successors_finds_the_next_ones() -> None:
    """Section 10.7.1: after 20% fail at once some peers have lost all
    three successors; Chord's notify step (section 10.7.3) repairs them."""
    _, result = massFailureScenario(
        SimSettings(seed=1), peers=300, fraction=0.2, lookups=3000, settle=1800
    )
    assert result["ringAfter"]["rate"] == 1.0
    everyLookupCorrect(result["lookupsAfterRepair"])


def test_signatures_switch_signs_and_verifies_every_message_with_certificates() -> None:
    sim, result = joinScenario(SimSettings(seed=8, signatures=True), peers=25, lookups=200)
    everyLookupCorrect(result["lookups"])
    node = sim.members.order[0]
    security = node.node.transport.security
    assert isinstance(security, SigningSecurity)
    assert node.identity is not None and node.identity.nodeId == node.nodeId
    response = sim.sched.runUntilFired(node.node.ping(sim.members.order[1].nodeId))
    assert isinstance(response.signer, VerifiedSigner)
    assert result["counters"].get("badSignature", 0) == 0


def test_tls_switch_runs_real_tls_links() -> None:
    from reload.link.tls import TLSLink

    sim, result = joinScenario(SimSettings(seed=9, tls=True), peers=12, lookups=100)
    assert sim.network.tlsFactory is not None and sim.network.tlsFactory.handshakes > 0
    node = sim.members.order[0]
    links = [node.transport.linkFor(peer) for peer in node.transport.connected]
    assert links and all(isinstance(link, TLSLink) for link in links)
    assert result["lookups"]["answered"] == 100
    assert result["lookups"]["successRate"] >= 0.95
