"""A real peer killed with SIGKILL comes back with its data and generation
counters (issue 7: SQLite in the data directory, section 7.4.1.1's
counters): values stored before the kill are fetched after the restart
with the counters they had, and the next Store continues from them."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .replication_support import PeerProcess, call, spreadResource, writeOverlay

NOTES = 0xF0000010  # the SPREAD Kind: SINGLE, NODE-MULTIPLE


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[PeerProcess]:
    writeOverlay(tmp_path, "restart.reload.local")
    peer = PeerProcess(tmp_path)
    try:
        yield peer
    finally:
        if peer.process is not None and peer.process.poll() is None:
            peer.kill()


def test_a_peer_killed_with_sigkill_restarts_with_its_data(peer: PeerProcess) -> None:
    peer.start()
    nodeId = str(peer.status()["nodeId"])
    stored = {}
    for i in range(1, 6):
        resource = spreadResource(nodeId, i)
        for round in range(i):  # value i is stored i times: generation i
            answer = call(
                peer.lab, "store", kind=hex(NOTES), resource=resource, value=f"{i}.{round}"
            )
        stored[resource] = (answer["generation"], f"{i}.{i - 1}")
    assert [g for g, _ in stored.values()] == [1, 2, 3, 4, 5]
    peer.kill(signal.SIGKILL)

    peer.start()
    assert peer.status()["nodeId"] == nodeId
    for resource, (generation, value) in stored.items():
        fetched = call(peer.lab, "fetch", kind=hex(NOTES), resource=resource)
        [kind] = fetched["kinds"]
        assert kind["generation"] == generation
        assert [v["value"] for v in kind["values"]] == [value]
    resource = next(iter(stored))
    again = call(peer.lab, "store", kind=hex(NOTES), resource=resource, value="after")
    assert again["generation"] == stored[resource][0] + 1
