"""Replication between real peers over TLS (issue 7; RFC 6940 sections
10.4, 10.7.3): an acknowledged value is on three peers; with two of them
killed (SIGKILL: no Leave, no handover) it is still fetched, and the
survivors bring it back to three holders."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.lab import Lab, LabPeer

from .conftest import sourceEnv
from .replication_support import (
    call,
    eventually,
    fetchSpread,
    holders,
    spreadResource,
    storeSpread,
    writeOverlay,
)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    writeOverlay(tmp_path, "replication-lab.reload.local")
    lab = Lab(tmp_path, basePort=None, adminBasePort=None, environment=sourceEnv())
    try:
        lab.start(7)
        lab.waitConverged(120)
        yield lab
    finally:
        lab.stop()


def test_a_value_survives_two_of_its_three_holders_killed(lab: Lab) -> None:
    client = lab.peers[0]
    clientId = lab.status(client)["nodeId"]
    # A value none of whose holders is the client (which must stay up).
    for i in range(1, 50):
        stored = storeSpread(client, clientId, i, f"value {i}")
        resource = spreadResource(clientId, i)
        if len(stored["replicas"]) != 2:
            continue
        held = holders(lab, resource)
        if client not in held:
            break
    else:
        pytest.fail("every value had the client among its holders")
    # Acknowledged means held by the responsible peer and both replicas.
    assert len(held) == 3, [p.index for p in held]
    [responsible] = [p for p in held if _responsibleFor(p, resource)]
    replicas = [p for p in held if p is not responsible]
    for victim in (responsible, replicas[0]):
        lab.stopPeer(victim, signal.SIGKILL)

    def fetched() -> str | None:
        try:
            return fetchSpread(client, clientId, i, timeout=10)
        except Exception:
            return None

    assert eventually(fetched, 60) == f"value {i}"
    repaired = eventually(lambda: len(holders(lab, resource)) >= 3, 90, interval=2)
    assert repaired, [p.index for p in holders(lab, resource)]
    assert fetched() == f"value {i}"


def _responsibleFor(peer: LabPeer, resource: str) -> bool:
    return bool(call(peer, "held", timeout=5, resource=resource)["responsible"])
