"""``GET /metrics`` of real peers (issue 23): Prometheus' text format,
parsed with ``prometheus_client.parser``, scraped before and after traffic
made with ``reloadctl``; the counters move as that traffic says."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reload.config import KindConfig
from reload.lab import Lab, LabPeer

from .conftest import commandPath, sourceEnv
from .replication_support import eventually

NOTES = 0xF0000001
USER = "alice@example.org"
PEERS = 3


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    notes = KindConfig(
        kindId=NOTES, name=None, maxCount=8, maxSize=64, maxNodeMultiple=None,
        dataModel="ARRAY", accessControl="USER-MATCH",
    )  # fmt: skip
    lab = Lab(
        tmp_path_factory.mktemp("metrics"),
        basePort=None,
        adminBasePort=None,
        extraArgs=["--user", USER],
        environment=sourceEnv(),
        kinds=[notes],
    )
    lab.start(PEERS)
    try:
        lab.waitConverged(90)
        yield lab
    finally:
        lab.stop()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(peer: LabPeer) -> tuple[Samples, dict[str, str], str]:
    """Every sample of the peer's /metrics, the type of each family, and
    the content type it was served with."""
    with urllib.request.urlopen(peer.adminRequest("/metrics"), timeout=10) as response:
        text = response.read().decode()
        contentType = response.headers["content-type"]
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types, contentType


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the samples of ``name`` that have ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def reloadctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [commandPath("reloadctl"), *args, "--json"],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip


def test_the_metrics_are_prometheus_text_with_documented_types(lab: Lab) -> None:
    samples, types, contentType = scrape(lab.peers[0])
    assert contentType.startswith("text/plain; version=")
    assert types["reload_messages"] == "counter"
    assert types["reload_request_duration_seconds"] == "histogram"
    assert types["reload_stored_values"] == "gauge"
    assert types["reload_handshakes_refused"] == "counter"
    assert value(samples, "reload_peer_joined") == 1
    assert value(samples, "process_resident_memory_bytes") > 0
    assert total(samples, "reload_links", protocol="tls") >= 1
    assert value(samples, "reload_neighbours", role="successors") >= 1
    [info] = [labels for (name, labels) in samples if name == "reload_peer_info"]
    assert dict(info)["node_id"] == lab.status(lab.peers[0])["nodeId"]


def notResponsibleFor(lab: Lab, name: str) -> LabPeer:
    """A peer that is not responsible for ``name``: what it asks for goes
    over a link (a responsible peer answers itself without a message)."""
    for peer in lab.peers:
        held = reloadctl("held", "--admin", peer.admin, "--name", name)
        assert held.returncode == 0, held.stderr
        if '"responsible": false' in held.stdout:
            return peer
    raise AssertionError(f"every peer is responsible for {name}")


def test_counters_move_with_the_traffic(lab: Lab) -> None:
    writer = notResponsibleFor(lab, USER)
    intruder = notResponsibleFor(lab, "bob@example.org")
    before = {p.index: scrape(p)[0] for p in lab.peers}

    stored = reloadctl(
        "store", "--admin", writer.admin, "--kind", hex(NOTES), "--name", USER, "--value", "hi"
    )
    assert stored.returncode == 0, stored.stderr
    refused = reloadctl(
        "store", "--admin", intruder.admin, "--kind", hex(NOTES), "--name", "bob@example.org",
        "--value", "not mine",
    )  # fmt: skip
    assert refused.returncode == 1

    def moved(peer: LabPeer, name: str, **labels: str) -> float:
        return value(scrape(peer)[0], name, **labels) - value(before[peer.index], name, **labels)

    assert moved(writer, "reload_messages_total", method="store_req", direction="sent") >= 1
    assert moved(writer, "reload_messages_total", method="store_ans", direction="received") >= 1
    assert moved(writer, "reload_message_bytes_total", direction="sent") > 0
    latency = "reload_request_duration_seconds_count"
    assert moved(writer, latency, method="store", outcome="ok") == 1
    assert moved(intruder, latency, method="store", outcome="error") == 1
    assert moved(intruder, "reload_errors_total", code="forbidden", direction="received") == 1

    # The value and its two replicas (RFC 6940 section 10.4) on the three peers.
    def storedEverywhere() -> bool:
        counts = [total(scrape(p)[0], "reload_stored_values", kind=hex(NOTES)) for p in lab.peers]
        return sum(counts) == PEERS

    assert eventually(storedEverywhere, 30)
    after = {p.index: scrape(p)[0] for p in lab.peers}
    assert sum(total(s, "reload_stored_bytes", kind=hex(NOTES)) for s in after.values()) > 0

    def grown(name: str, **labels: str) -> float:
        return sum(
            value(after[i], name, **labels) - value(before[i], name, **labels) for i in after
        )

    assert grown("reload_replica_stores_total") >= 2
    # The original Store (unless its holder was asked directly) and the two
    # replica Stores were answered over links.
    assert grown("reload_messages_total", method="store_ans", direction="sent") >= 2
