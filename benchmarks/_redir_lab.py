"""ReDiR lookups per second against a lab of real peers (issue 18): the
``--lab`` part of ``benchmarks/redir.py``.

``peers`` twistd processes on 127.0.0.1 run ``--usage REDIR``; ``providers``
of them provide one namespace.  Then ``clients`` threads each ask one peer's
admin API (``POST /usage/REDIR/lookup``, what ``reloadctl service lookup``
sends) for random keys until ``lookups`` have been answered; every answer is
checked against the true closest successor of its key among the providers.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from reload.lab import Lab, LabPeer

NAMESPACE = "bench-service"
REPO = Path(__file__).resolve().parent.parent


def _successor(key: int, providers: list[int]) -> int:
    after = [p for p in providers if p > key]
    return min(after) if after else min(providers)


def _lookup(peer: LabPeer, key: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"namespace": NAMESPACE, "key": key})
    request = peer.adminRequest(f"/usage/REDIR/lookup?{query}", b"")
    with urllib.request.urlopen(request, timeout=30) as r:
        result: dict[str, Any] = json.load(r)
        return result


def measure(
    peers: int = 20, providers: int = 5, lookups: int = 2000, clients: int = 8, seed: int = 1
) -> dict[str, Any]:
    """Start the lab, wait for the providers' registrations, time the
    lookups; the lab is stopped before returning."""
    with tempfile.TemporaryDirectory(prefix="redir-lab-") as directory:
        # The peers run this checkout's reload, whatever is installed.
        environment = dict(os.environ, PYTHONPATH=str(REPO))
        lab = Lab(Path(directory), basePort=None, adminBasePort=None, environment=environment)
        lab.create()
        try:
            started = time.monotonic()
            step = max(1, peers // providers)
            chosen = {1 + i * step for i in range(providers)}
            providing = []
            for index in range(peers):
                lab.extraArgs = ["--usage", "REDIR"]
                if index in chosen:
                    lab.extraArgs += ["--usage-option", f"REDIR:provide={NAMESPACE}"]
                peer = lab.startPeer()
                if index in chosen:
                    providing.append(peer)
                lab.waitConverged(300)
            deadline = time.monotonic() + 120
            while not all(_registered(p) for p in providing):
                if time.monotonic() > deadline:
                    raise TimeoutError("the providers did not finish registering")
                time.sleep(1)
            ready = time.monotonic() - started
            provided = [int(lab.status(p)["nodeId"], 16) for p in providing]
            rng = random.Random(seed)
            keys = [f"{rng.getrandbits(128):032x}" for _ in range(lookups)]
            # Warm up: every peer's level cache (section 4.5) sees a lookup.
            for peer in lab.peers:
                _lookup(peer, keys[0])
            latencies: list[float] = []
            fetches: list[int] = []
            wrong = [0]
            lock = threading.Lock()
            queue = list(enumerate(keys))

            def client(number: int) -> None:
                peer = lab.peers[number % len(lab.peers)]
                while True:
                    with lock:
                        if not queue:
                            return
                        _, key = queue.pop()
                    begun = time.monotonic()
                    result = _lookup(peer, key)
                    took = time.monotonic() - begun
                    with lock:
                        latencies.append(took)
                        fetches.append(int(result["fetches"]))
                        if int(result["provider"], 16) != _successor(int(key, 16), provided):
                            wrong[0] += 1

            threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
            begun = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - begun
        finally:
            lab.stop()
    latencies.sort()
    return {
        "peers": peers,
        "providers": len(provided),
        "clients": clients,
        "lookups": len(latencies),
        "wrong": wrong[0],
        "lookupsPerSecond": round(len(latencies) / elapsed, 1),
        "p50Ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99Ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "meanFetches": round(sum(fetches) / len(fetches), 3),
        "labReadySeconds": round(ready, 1),
    }


def _registered(peer: LabPeer) -> bool:
    """Whether ``peer`` completed its registration."""
    request = peer.adminRequest("/usage/REDIR/list", b"")
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)["registrations"].get(NAMESPACE) is not None
