"""The client role with real processes over TLS (issue 6; RFC 6940 section
4.2): ``twistd reload --client`` attaches to the peer responsible for its
Node-ID without joining, stores and fetches through it, is reached by its
Node-ID from anywhere in the overlay, and never enters a Routing Table."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.lab import Lab, ringErrors
from topologies.chordreload.ring import hashResource

from .conftest import commandPath, sourceEnv, twistd
from .replication_support import (
    PeerProcess,
    call,
    eventually,
    fetchSpread,
    spreadResource,
    storeSpread,
    writeOverlay,
)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    writeOverlay(tmp_path, "client-lab.reload.local")
    lab = Lab(tmp_path, basePort=None, adminBasePort=None, environment=sourceEnv())
    try:
        lab.start(4)
        lab.waitConverged(90)
        yield lab
    finally:
        lab.stop()


def test_a_client_uses_the_overlay_without_joining_it(lab: Lab, tmp_path: Path) -> None:
    bootstrap = lab.peers[0]
    client = PeerProcess(tmp_path, "client", ["--client", "--bootstrap", bootstrap.address])
    try:
        client.start()
        status = client.status()
        assert status["role"] == "client"
        clientId = str(status["nodeId"])
        [attached] = status["neighbours"]["peer"]  # type: ignore[index]
        # Section 4.2.1: it attached to the peer responsible for its Node-ID
        # (the first peer at or after it), which routes the last hop to it.
        peerIds = sorted(str(lab.status(p)["nodeId"]) for p in lab.peers)
        assert attached == next((i for i in peerIds if i >= clientId), peerIds[0])
        routed = call(bootstrap, "route-query", peer=attached, destination=clientId)
        assert routed["nextPeer"] == clientId

        # It stores (signed with its own Node-ID) and fetches through its peer;
        # a peer fetches the same value.
        storeSpread(client.lab, clientId, 1, "from a client")
        assert fetchSpread(client.lab, clientId, 1) == "from a client"
        assert fetchSpread(lab.peers[-1], clientId, 1) == "from a client"

        # Reached by its Node-ID from a peer it has no link to.
        far = next(p for p in lab.peers if lab.status(p)["nodeId"] not in (attached, clientId))
        pinged = call(far, "ping", destination=clientId)
        assert pinged["responder"] == clientId

        # Direct links (section 6.5.1): the peers that answered its Stores
        # are attached, and then its Fetches for their ranges skip the hops.
        resources = {i: spreadResource(clientId, i) for i in range(2, 14)}
        for i in resources:
            storeSpread(client.lab, clientId, i, f"direct {i}")
        # Value 1, stored and fetched above, made its peer a direct link too,
        # and so did the client's own certificate, which it stores at the
        # hash of its Node-ID when it starts (section 11.3.1).
        certificate = hashResource(bytes.fromhex(clientId), 16).hex()
        stored = [spreadResource(clientId, 1), *resources.values(), certificate]
        answering = {next((p for p in peerIds if p >= r), peerIds[0]) for r in stored}
        assert eventually(
            lambda: set(client.status()["neighbours"]["direct"]) == answering,  # type: ignore[index]
            20,
        ), (client.status()["neighbours"], sorted(answering))
        ring = subprocess.run(
            [commandPath("reloadctl"), "ring", "--admin", client.lab.admin],
            capture_output=True, text=True, env=sourceEnv(), timeout=60,
        )  # fmt: skip
        assert ring.returncode == 0, ring.stderr
        shown = {line.split()[-1] for line in ring.stdout.splitlines() if line.strip()}
        assert answering <= shown and attached in shown, ring.stdout
        assert "direct" in ring.stdout and "predecessors" not in ring.stdout
        forwarded = sum(lab.status(p)["counters"].get("forwarded", 0) for p in lab.peers)
        for i in resources:
            assert fetchSpread(client.lab, clientId, i) == f"direct {i}"
        after = sum(lab.status(p)["counters"].get("forwarded", 0) for p in lab.peers)
        # Without them, about two forwards per Fetch (request and answer).
        assert after - forwarded <= 2, (forwarded, after)

        # No peer routes through it: not a neighbour, not a finger; the ring
        # is the peers' alone.
        for peer in lab.peers:
            neighbours = lab.status(peer)["neighbours"]
            assert all(clientId not in ids for ids in neighbours.values()), neighbours
        assert ringErrors(lab.statuses()) == []
    finally:
        client.kill()
    # Its departure leaves the ring as it was.
    assert eventually(lambda: ringErrors(lab.statuses()) == [], 10)


def test_direct_links_0_routes_everything_through_the_clients_peer(
    lab: Lab, tmp_path: Path
) -> None:
    bootstrap = lab.peers[0]
    client = PeerProcess(
        tmp_path, "plain", ["--client", "--direct-links", "0", "--bootstrap", bootstrap.address]
    )
    try:
        client.start()
        status = client.status()
        clientId = str(status["nodeId"])
        for i in range(2, 8):
            storeSpread(client.lab, clientId, i, f"plain {i}")
            assert fetchSpread(client.lab, clientId, i) == f"plain {i}"
        neighbours = client.status()["neighbours"]
        assert "direct" not in neighbours, neighbours  # type: ignore[operator]
        assert len(client.status()["links"]) <= 2  # type: ignore[arg-type]
    finally:
        client.kill()


def test_a_client_needs_a_bootstrap_peer(tmp_path: Path) -> None:
    result = twistd("reload", "--client", "--data-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert result.returncode != 0
    assert "--client" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
