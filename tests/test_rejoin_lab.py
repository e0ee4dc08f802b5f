"""A peer killed with SIGKILL and restarted 1-10 s later on its data
directory (the same Node-ID, a new incarnation) is joined within 10 s,
every time (issue 17; RFC 6940 sections 10.5 and 10.7.1), and the ring is
right again.  Five rounds here to stay under a minute;
``benchmarks/churn.py --restarts 20`` runs twenty."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

from reload.lab import Lab

from .conftest import sourceEnv
from .replication_support import writeOverlay

PEERS = 5
ROUNDS = 5
JOINED_WITHIN = 10.0


def test_a_peer_restarted_after_kill_9_rejoins_within_10_s(tmp_path: Path) -> None:
    writeOverlay(tmp_path, "rejoin-lab.reload.local")
    lab = Lab(tmp_path, basePort=None, adminBasePort=None, environment=sourceEnv())
    rng = random.Random(17)
    took: list[float] = []
    try:
        lab.start(PEERS)
        lab.waitConverged(60)
        for _ in range(ROUNDS):
            victim = rng.choice(lab.peers[1:])
            nodeId = lab.status(victim)["nodeId"]
            lab.stopPeer(victim, signal.SIGKILL)
            time.sleep(rng.uniform(1, 10))
            peer = lab.restartPeer(victim, lab.peers[0])
            started = time.monotonic()
            while time.monotonic() - started < 3 * JOINED_WITHIN:
                status = lab.status(peer, 1)
                if status.get("state") == "joined":
                    break
                time.sleep(0.1)
            took.append(time.monotonic() - started)
            assert status.get("nodeId") == nodeId
            assert took[-1] <= JOINED_WITHIN, (took, Path(peer.dataDir, "twistd.log"))
            lab.waitConverged(20)
    finally:
        lab.stop()
    print(f"restart to joined: {', '.join(f'{t:.1f}' for t in took)} s")
