"""A real peer killed with SIGKILL comes back with its data and generation
counters (issue 7: SQLite in the data directory, section 7.4.1.1's
counters): values stored before the kill are fetched after the restart
with the counters they had, and the next Store continues from them."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.lab import LabPeer

from .conftest import commandPath, freePort, sourceEnv
from .replication_support import call, eventually, spreadResource, writeOverlay

NOTES = 0xF0000010  # the SPREAD Kind: SINGLE, NODE-MULTIPLE


class Peer:
    """One ``twistd reload`` process on a data directory kept across runs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.dataDir = directory / "peer"
        self.lab = LabPeer(1, freePort(), freePort(), str(self.dataDir))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dataDir.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [
                commandPath("twistd"), "-n", "--pidfile=",
                f"--logfile={self.dataDir / 'twistd.log'}", "reload",
                "--config", str(self.directory / "overlay.xml"),
                "--data-dir", str(self.dataDir),
                "--listen", f"tcp:{self.lab.port}:interface=127.0.0.1",
                "--admin", f"tcp:{self.lab.adminPort}:interface=127.0.0.1",
            ],
            env=sourceEnv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        joined = eventually(lambda: self.status().get("state") == "joined", 30)
        assert joined, (self.dataDir / "twistd.log").read_text()[-2000:]

    def status(self) -> dict[str, object]:
        try:
            with urllib.request.urlopen(f"{self.lab.admin}/status", timeout=2) as r:
                status: dict[str, object] = json.load(r)
                return status
        except OSError:
            return {}

    def kill(self, signum: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(signum)
        self.process.wait(30)


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    writeOverlay(tmp_path, "restart.reload.local")
    peer = Peer(tmp_path)
    try:
        yield peer
    finally:
        if peer.process is not None and peer.process.poll() is None:
            peer.kill()


def test_a_peer_killed_with_sigkill_restarts_with_its_data(peer: Peer) -> None:
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
