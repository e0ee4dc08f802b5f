"""Replication between real peers over TLS (issue 7; RFC 6940 sections
10.4, 10.7.3): an acknowledged value is on three peers; with two of them
killed (SIGKILL: no Leave, no handover) it is still fetched, and the
survivors bring it back to three holders."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.config import parseConfiguration
from reload.lab import Lab, LabPeer
from topologies.chordreload.ring import hashResource

from .conftest import sourceEnv
from .replication_support import (
    BIG_ARRAY,
    AdminCallFailed,
    call,
    eventually,
    fetchSpread,
    holders,
    spreadResource,
    storeSpread,
    writeOverlay,
)
from .topology_plugins import TOPOLOGIES


@pytest.fixture(params=TOPOLOGIES)
def lab(tmp_path: Path, request: pytest.FixtureRequest, fullMeshSite: Path) -> Iterator[Lab]:
    """Seven peers; the same test runs on every topology, FULL-MESH
    installed with pip from its own distribution (examples/fullmesh) as a
    third party's, with no change in the core."""
    writeOverlay(tmp_path, "replication-lab.reload.local", topology=request.param)
    lab = Lab(
        tmp_path, basePort=None, adminBasePort=None, environment=sourceEnv([str(fullMeshSite)])
    )
    try:
        lab.start(7)
        lab.waitConverged(120)
        yield lab
    finally:
        lab.stop()


def test_a_value_survives_two_of_its_three_holders_killed(lab: Lab) -> None:
    client = lab.peers[0]
    # The topology the overlay configuration names is the one running.
    configured = parseConfiguration(lab.configPath.read_bytes()).topologyPlugin
    assert lab.status(client)["topology"] == configured
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


#: Values of the big ARRAY: far more than one max-message-size (5,000 bytes)
#: holds, about 120 bytes each with its signature.
BIG_COUNT = 300


def _arrayHeld(lab: Lab, resource: str) -> list[int]:
    """How many values each live peer holding the resource has of it."""
    counts = []
    for peer in holders(lab, resource):
        held = call(peer, "held", timeout=5, resource=resource)
        counts += [k["values"] for k in held["kinds"] if k["kind"] == BIG_ARRAY]
    return counts


def _fetchArray(peer: LabPeer, nodeIdHex: str) -> dict[int, str]:
    """Every value of the array, fetched by ranges of 25 (one FetchAns of
    all would exceed max-message-size, section 6.3.2)."""
    found: dict[int, str] = {}
    for first in range(0, BIG_COUNT, 25):
        result = call(
            peer, "fetch", timeout=10, kind=hex(BIG_ARRAY), node=nodeIdHex,
            index=f"{first}-{first + 24}",
        )  # fmt: skip
        for kind in result["kinds"]:
            for value in kind["values"]:
                if value.get("exists", True) and "value" in value:
                    found[value["index"]] = value["value"]
    return found


def test_a_large_array_survives_two_joins_and_two_of_its_holders_killed(tmp_path: Path) -> None:
    """Issue 17: an ARRAY resource of several hundred values, far above
    max-message-size, is replicated in Stores that fit (section 6.6), moves
    to two joining peers (10.5 step 6) and survives the responsible peer
    and one replica killed (SIGKILL); three peers hold all of it again."""
    writeOverlay(tmp_path, "large-array-lab.reload.local")
    lab = Lab(tmp_path, basePort=None, adminBasePort=None, environment=sourceEnv())
    try:
        lab.start(4)
        lab.waitConverged(60)
        writer = lab.peers[0]
        writerId = lab.status(writer)["nodeId"]
        resource = hashResource(bytes.fromhex(writerId), 16).hex()
        for i in range(BIG_COUNT):
            call(writer, "store", kind=hex(BIG_ARRAY), node=writerId, value=f"v{i}", index=i)
        expected = {i: f"v{i}" for i in range(BIG_COUNT)}
        assert _arrayHeld(lab, resource) == [BIG_COUNT] * 3

        lab.startPeer()
        lab.startPeer()
        lab.waitConverged(60)
        assert eventually(lambda: _arrayHeld(lab, resource) == [BIG_COUNT] * 3, 30)
        assert _fetchArray(lab.peers[-1], writerId) == expected

        held = holders(lab, resource)
        [responsible] = [p for p in held if _responsibleFor(p, resource)]
        replica = next(p for p in held if p is not responsible)
        for victim in (responsible, replica):
            lab.stopPeer(victim, signal.SIGKILL)
        survivor = next(p for p in lab.peers if lab.alive(p))

        def fetched() -> dict[int, str] | None:
            try:
                return _fetchArray(survivor, writerId)
            except AdminCallFailed:
                return None

        assert eventually(lambda: fetched() == expected, 60, interval=1)
        repaired = eventually(lambda: _arrayHeld(lab, resource) == [BIG_COUNT] * 3, 90, 2)
        assert repaired, _arrayHeld(lab, resource)
        for peer in lab.peers:
            if lab.alive(peer):
                storage = lab.status(peer)["storage"]
                assert storage["replicaPlacementsPending"] == 0, storage
    finally:
        lab.stop()


def _responsibleFor(peer: LabPeer, resource: str) -> bool:
    return bool(call(peer, "held", timeout=5, resource=resource)["responsible"])


def test_a_store_flood_is_stopped_by_the_quota_while_others_are_served(tmp_path: Path) -> None:
    """Section 13.5: a per-signer storage quota on each peer.  One peer
    floods the overlay with values; once each responsible peer holds its
    quota of them its Stores are refused, while another peer's Stores and
    Fetches, interleaved with the flood, all succeed."""
    writeOverlay(tmp_path, "quota-lab.reload.local")
    lab = Lab(
        tmp_path,
        basePort=None,
        adminBasePort=None,
        extraArgs=["--storage-quota", "8k"],
        environment=sourceEnv(),
    )
    try:
        lab.start(4)
        lab.waitConverged(90)
        flooder, other = lab.peers[0], lab.peers[1]
        flooderId, otherId = lab.status(flooder)["nodeId"], lab.status(other)["nodeId"]
        outcomes: list[str] = []

        def flood() -> None:
            for i in range(1, 121):
                try:
                    storeSpread(flooder, flooderId, i, "x" * 500)
                    outcomes.append("stored")
                except AdminCallFailed as exc:
                    outcomes.append(exc.error)

        thread = threading.Thread(target=flood)
        thread.start()
        served = []
        i = 0
        while (thread.is_alive() or i < 5) and i < 20:
            i += 1
            storeSpread(other, otherId, i, f"small {i}")
            served.append(fetchSpread(flooder, otherId, i) == f"small {i}")
        thread.join()
    finally:
        lab.stop()
    refused = [o for o in outcomes if o != "stored"]
    print(
        "flood:", outcomes.count("stored"), "stored,", len(refused), "refused; served", len(served)
    )
    assert outcomes.count("stored") >= 4, outcomes
    assert refused and all("quota" in o for o in refused), refused
    # 500-byte values on 4 peers with 8 KiB each: at most 64 fit (fewer, as
    # replicas count towards what a peer holds of a signer).
    assert outcomes.count("stored") <= 64
    assert len(served) >= 5 and all(served), served
