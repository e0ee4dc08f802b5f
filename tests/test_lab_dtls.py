"""Real peers that prefer DTLS-UDP-SR-NO-ICE (RFC 6940 section 6.6.6):
the links they make through Attach are DTLS, the ring converges over them
and Pings reach the responsible peer."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator

import pytest

from reload.lab import Lab, ringErrors

from .conftest import commandPath, sourceEnv

PEERS = 5


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(
        tmp_path_factory.mktemp("lab-dtls"),
        basePort=None,
        adminBasePort=None,
        extraArgs=["--link-protocol", "dtls"],
        environment=sourceEnv(),
    )
    lab.start(PEERS)
    try:
        yield lab
    finally:
        lab.stop()


def test_peers_link_over_dtls_and_converge(lab: Lab) -> None:
    lab.waitConverged(90)
    statuses = lab.statuses()
    assert ringErrors(statuses) == []
    # Every peer made or accepted DTLS links through Attach; TLS is left
    # for the bootstrap connections (section 11.4).
    assert all(s["linkTypes"]["dtls"] >= 1 for s in statuses)
    assert sum(s["linkTypes"]["dtls"] for s in statuses) >= PEERS


def test_ping_over_dtls_reaches_the_responsible_peer(lab: Lab) -> None:
    lab.waitConverged(90)
    ring = sorted(s["nodeId"] for s in lab.statuses())
    name = "carol@example.org"
    resourceId = hashlib.sha1(name.encode()).hexdigest()[:32]
    responsible = next((n for n in ring if n >= resourceId), ring[0])
    for peer in lab.peers:
        result = subprocess.run(
            [commandPath("reloadctl"), "ping", "--admin", peer.admin, "--name", name, "--json"],
            capture_output=True, text=True, env=sourceEnv(), timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        [answer] = json.loads(result.stdout)
        assert answer["responder"] == responsible
