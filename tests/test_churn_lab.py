"""Churn with real peers over TLS (issue 7): 30 peers; for five minutes,
every 20 seconds one peer leaves (SIGTERM: Leave, section 10.7.2... and
its data already on its successors) or fails (SIGKILL: nothing sent) and a
new one joins -- 10% of the overlay leaving or failing and 10% joining per
minute -- while a client stores values and fetches earlier ones.  At least
99% of the fetches succeed and, once the churn stops, every value whose
Store was acknowledged is fetched back (sections 10.4, 10.7.3)."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path

from reload.lab import Lab

from .conftest import sourceEnv
from .replication_support import (
    MAX_MULTIPLE,
    AdminCallFailed,
    fetchSpread,
    storeSpread,
    writeOverlay,
)

PEERS = 30
CHURN_SECONDS = 300
EVENT_EVERY = 20


class Client:
    """Stores value i, then fetches a random acknowledged one, in a loop."""

    def __init__(self, lab: Lab, seed: int) -> None:
        self.lab = lab
        self.peer = lab.peers[0]
        self.nodeId: str = lab.status(self.peer)["nodeId"]
        self.random = random.Random(seed)
        self.acknowledged: dict[int, str] = {}
        self.storeFailures: list[str] = []
        self.stores = 0
        self.fetches = 0
        self.fetchFailures: list[str] = []
        self.stop = threading.Event()
        self.crashed: str | None = None

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.crashed = repr(exc)
            raise

    def _loop(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            # NODE-MULTIPLE allows MAX_MULTIPLE Resource-IDs per Node-ID: past
            # that, values are stored again (a newer storage_time replaces).
            i = (n - 1) % MAX_MULTIPLE + 1
            value = f"value {n} {self.random.getrandbits(32):08x}"
            self.stores += 1
            try:
                storeSpread(self.peer, self.nodeId, i, value)
                self.acknowledged[i] = value
            except AdminCallFailed as exc:
                self.storeFailures.append(f"store {i}: {exc}")
                # Not acknowledged, maybe stored: what i holds is unknown now.
                self.acknowledged.pop(i, None)
            if self.acknowledged:
                j = self.random.choice(list(self.acknowledged))
                self.fetches += 1
                try:
                    got = fetchSpread(self.peer, self.nodeId, j)
                except AdminCallFailed as exc:
                    self.fetchFailures.append(f"fetch {j}: {exc}")
                else:
                    if got != self.acknowledged[j]:
                        self.fetchFailures.append(f"fetch {j}: {got!r}")
            time.sleep(0.2)


def test_churn_loses_no_acknowledged_value(tmp_path: Path) -> None:
    writeOverlay(tmp_path, "churn-lab.reload.local")
    lab = Lab(tmp_path, basePort=None, adminBasePort=None, environment=sourceEnv())
    chooser = random.Random(30)
    events: list[str] = []
    try:
        lab.start(PEERS)
        lab.waitConverged(180)
        client = Client(lab, seed=1)
        thread = threading.Thread(target=client.run, daemon=True)
        thread.start()
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < CHURN_SECONDS:
            time.sleep(max(0.0, started + (n + 1) * EVENT_EVERY - time.monotonic()))
            n += 1
            victim = chooser.choice(lab.peers[1:])
            how = signal.SIGKILL if n % 2 else signal.SIGTERM
            lab.stopPeer(victim, how)
            # Through the client's peer, which never leaves: a newcomer given
            # only a bootstrap peer that then fails waits for it (as it should).
            newcomer = lab.startPeer(bootstrap=lab.peers[0])
            events.append(f"{victim.index} {how.name}, {newcomer.index} joins")
        client.stop.set()
        thread.join(60)
        assert client.crashed is None and not thread.is_alive(), client.crashed
        lab.waitConverged(180)
        lost = []
        for i, value in sorted(client.acknowledged.items()):
            try:
                got = fetchSpread(client.peer, client.nodeId, i)
            except AdminCallFailed as exc:
                got = str(exc)
            if got != value:
                lost.append(f"{i}: {got!r}")
    finally:
        lab.stop()
    print(
        f"churn: {len(events)} events, {client.stores} stores, {len(client.acknowledged)}"
        " values acknowledged,"
        f" {len(client.storeFailures)} stores failed, {client.fetches} fetches,"
        f" {len(client.fetchFailures)} failed"
    )
    assert len(events) >= CHURN_SECONDS // EVENT_EVERY - 1
    assert client.stores >= 150 and len(client.acknowledged) >= 100, client.storeFailures[:5]
    assert client.fetches >= 100
    assert len(client.fetchFailures) <= client.fetches // 100, client.fetchFailures
    assert lost == [], lost
