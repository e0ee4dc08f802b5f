"""Ten real ``twistd reload`` processes over TLS on loopback (issue 6):
they join and form a correct ring; the ring repairs itself after a peer
fails (SIGKILL) and after one leaves (SIGTERM); a new peer joins it."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reload.lab import Lab, ringErrors

from .conftest import commandPath, sourceEnv

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


def test_start_paces_the_peers_and_returns_when_all_have_joined(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "paced", basePort=None, adminBasePort=None, environment=sourceEnv())
    notJoinedAtLaunch: list[int] = []
    startPeer = lab.startPeer

    def countingStartPeer(bootstrap: Any = None) -> Any:
        notJoinedAtLaunch.append(
            sum(1 for p in lab.peers if lab.status(p).get("state") != "joined")
        )
        return startPeer(bootstrap)

    lab.startPeer = countingStartPeer  # type: ignore[method-assign]
    try:
        lab.start(4, concurrency=1)
        states = [lab.status(p).get("state") for p in lab.peers]
    finally:
        lab.stop()
    assert notJoinedAtLaunch == [0, 0, 0, 0]
    assert states == ["joined"] * 4
    assert lab.lastStarted is not None


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


def _reloadctl(*args: str) -> Any:
    result = subprocess.run(
        [commandPath("reloadctl"), *args, "--json"],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _responsible(statuses: list[dict[str, Any]], resourceId: str) -> str:
    ring = sorted(s["nodeId"] for s in statuses)
    return next((n for n in ring if n >= resourceId), ring[0])


def test_reloadctl_ping_reaches_the_responsible_peer(lab: Lab) -> None:
    """Section 6.5.3 / 10.1: a Ping to a Resource-ID is answered by the peer
    responsible for it, whichever peer sends it."""
    statuses = lab.statuses()
    for peer in lab.peers[:3]:
        for name in ("alice@example.org", "bob@example.org", "turn-server-7"):
            resourceId = hashlib.sha1(name.encode()).hexdigest()[:32]
            [answer] = _reloadctl("ping", "--admin", peer.admin, "--name", name)
            assert answer["destination"] == resourceId
            assert answer["responder"] == _responsible(statuses, resourceId)
            assert 1 <= answer["hops"] <= PEERS


def test_reloadctl_ring_and_route_query(lab: Lab) -> None:
    first = lab.peers[0]
    ring = _reloadctl("ring", "--admin", first.admin)
    status = lab.status(first)
    assert ring["nodeId"] == status["nodeId"]
    assert ring["successors"] == status["neighbours"]["successors"]
    successor = ring["successors"][0]
    destination = "00" * 16
    answer = _reloadctl("route-query", "--admin", first.admin, successor, destination)
    assert answer["peer"] == successor
    assert answer["nextPeer"] in {s["nodeId"] for s in lab.statuses()}


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


def test_reloadctl_lab_starts_and_stops_a_lab(tmp_path: Path) -> None:
    """The user's way: `reloadctl lab --peers 3 --detach`, then `lab stop`."""
    directory = tmp_path / "lab"
    ports = ["--base-port", "0", "--admin-base-port", "0"]
    started = subprocess.run(
        [commandPath("reloadctl"), "lab", "--peers", "3", "--dir", str(directory), "--detach",
         *ports],
        capture_output=True, text=True, env=sourceEnv(), timeout=180,
    )  # fmt: skip
    lab = Lab.load(directory)
    try:
        assert started.returncode == 0, started.stderr
        assert "Ring converged" in started.stderr
        assert len(lab.peers) == 3
        assert ringErrors(lab.statuses()) == []
    finally:
        stopped = subprocess.run(
            [commandPath("reloadctl"), "lab", "stop", "--dir", str(directory)],
            capture_output=True, text=True, env=sourceEnv(), timeout=60,
        )  # fmt: skip
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped 3 peers" in stopped.stdout
    assert not any(lab.alive(p) for p in lab.peers)


def _status(ring: list[str], i: int, successors: list[str], predecessors: list[str]) -> Any:
    return {
        "state": "joined",
        "nodeId": ring[i],
        "neighbours": {"successors": successors, "predecessors": predecessors},
    }


def test_ring_errors_look_past_the_first_neighbour() -> None:
    """A peer that missed a member lists the wrong second successor (its
    replica set, section 10.4, differs from the others'): not converged."""
    ring = [f"{n:02x}" * 16 for n in (0x10, 0x20, 0x30, 0x40)]

    def right(i: int) -> Any:
        return _status(ring, i, [ring[(i + 1) % 4], ring[(i + 2) % 4]],
                       [ring[i - 1], ring[i - 2]])  # fmt: skip

    assert ringErrors([right(i) for i in range(4)]) == []
    wrong = _status(ring, 0, [ring[1], ring[3]], [ring[3], ring[2]])
    [error] = ringErrors([wrong] + [right(i) for i in range(1, 4)])
    assert "successor 2" in error and ring[3][:8] in error
    # A topology that lists one neighbour each way is judged on that one.
    short = [_status(ring, i, [ring[(i + 1) % 4]], [ring[i - 1]]) for i in range(4)]
    assert ringErrors(short) == []
