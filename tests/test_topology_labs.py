"""Ten real peers (twistd processes over TLS on loopback) with each
alternative topology store and fetch (issue 22): the overlay
configuration's ``topology-plugin`` picks the algorithm, and storage works
through it unchanged (RFC 6940 sections 7.4.1, 7.4.2, 10.4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.lab import Lab

from .conftest import sourceEnv
from .replication_support import fetchSpread, holders, spreadResource, storeSpread, writeOverlay

ALTERNATIVES = ("ONE-HOP-RELOAD", "CHORD-SELF-TUNING")
PEERS = 10


@pytest.fixture(params=ALTERNATIVES)
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    writeOverlay(tmp_path, "topology-lab.reload.local", topology=request.param)
    lab = Lab(tmp_path, basePort=None, adminBasePort=None, environment=sourceEnv([]))
    try:
        lab.start(PEERS)
        lab.waitConverged(180)
        yield lab
    finally:
        lab.stop()


def test_ten_peers_store_and_fetch_with_the_configured_topology(lab: Lab) -> None:
    statuses = [lab.status(p) for p in lab.peers]
    configured = {s["topology"] for s in statuses}
    assert len(configured) == 1 and configured.pop() in ALTERNATIVES
    writer = lab.peers[0]
    writerId = statuses[0]["nodeId"]
    for i in range(1, 6):
        stored = storeSpread(writer, writerId, i, f"value {i}")
        assert len(stored["replicas"]) == 2, stored
    for i in range(1, 6):
        for reader in lab.peers[1::3]:
            assert fetchSpread(reader, writerId, i) == f"value {i}"
        assert len(holders(lab, spreadResource(writerId, i))) == 3
