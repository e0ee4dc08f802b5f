"""Ten real ``twistd reload`` processes over TLS on loopback (issue 6):
they join and form a correct ring; the ring repairs itself after a peer
fails (SIGKILL) and after one leaves (SIGTERM); a new peer joins it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.lab import Lab, ringErrors

from .conftest import sourceEnv

PEERS = 10


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(
        tmp_path_factory.mktemp("lab"), basePort=None, adminBasePort=None, environment=sourceEnv()
    )
    lab.start(PEERS)
    try:
        yield lab
    finally:
        lab.stop()


def _logsOf(lab: Lab) -> str:
    return "\n".join(
        f"--- peer {p.index}\n" + (Path(p.dataDir) / "twistd.log").read_text()[-3000:]
        for p in lab.peers
    )


def test_ten_peers_converge_to_a_correct_ring(lab: Lab) -> None:
    try:
        lab.waitConverged(90)
    except TimeoutError:
        pytest.fail(_logsOf(lab))
    statuses = lab.statuses()
    assert len(statuses) == PEERS
    assert len({s["nodeId"] for s in statuses}) == PEERS
    assert ringErrors(statuses) == []
    for status in statuses:
        assert status["links"], "every peer has links"


def test_ring_repairs_after_a_peer_fails(lab: Lab) -> None:
    lab.waitConverged(90)
    victim = lab.peers[3]
    failedId = lab.status(victim)["nodeId"]
    lab.stopPeer(victim, signal.SIGKILL)
    lab.waitConverged(90)
    for status in lab.statuses():
        assert failedId not in status["neighbours"]["successors"]
        assert failedId not in status["neighbours"]["predecessors"]


def test_ring_repairs_after_a_peer_leaves(lab: Lab) -> None:
    lab.waitConverged(90)
    leaver = lab.peers[5]
    leftId = lab.status(leaver)["nodeId"]
    lab.stopPeer(leaver, signal.SIGTERM)
    log = (Path(leaver.dataDir) / "twistd.log").read_text()
    assert "left the overlay" in log
    lab.waitConverged(90)
    assert all(s["nodeId"] != leftId for s in lab.statuses())


def test_a_new_peer_joins_the_running_ring(lab: Lab) -> None:
    lab.waitConverged(90)
    before = len(lab.statuses())
    newcomer = lab.startPeer(bootstrap=lab.peers[-1])
    lab.waitConverged(90)
    statuses = lab.statuses()
    assert len(statuses) == before + 1
    assert lab.status(newcomer)["state"] == "joined"
