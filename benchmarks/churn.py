"""Real processes under churn (issue 17): rejoin after a crash, values kept.

Run by hand, not by the test suite:

    python3 benchmarks/churn.py [--restarts 20] [--peers 30] [--minutes 5] [--json churn.json]

Two phases, each in its own :class:`reload.lab.Lab` of ``twistd reload``
processes on 127.0.0.1:

* restarts: a lab of ``--restart-peers`` peers; ``--restarts`` times a
  random peer (not the bootstrap one) is killed with SIGKILL and, after a
  random 1-10 s, started again on its data directory (the same Node-ID, a
  new incarnation).  Measured: seconds from the restart to its admin
  status saying ``joined`` (target: every one within 10 s; RFC 6940
  sections 10.5, 10.7.1), and to the whole ring being right again (the
  time to repair after a kill).
* churn: ``--peers`` peers; every ``60 / (peers * 10%)`` seconds one peer
  leaves (SIGTERM) or fails (SIGKILL), alternately, and a new one joins --
  10% leaving or failing and 10% joining per minute -- for ``--minutes``.
  Meanwhile a client on the first peer stores resources of mixed sizes
  through the admin API: SINGLE values at many Resource-IDs (a
  NODE-MULTIPLE Kind) and one ARRAY (NODE-MATCH) it appends to, up to
  ``--array`` (2,000) entries, and fetches acknowledged values and array
  ranges back.  Once the churn stops and the ring converged, every
  acknowledged value is fetched.  Targets: 0 acknowledged values lost,
  at least 99% of fetches during the churn succeed.  Also measured: the
  time the ring takes to converge after each kill.

Every peer is stopped on the way out, whatever happens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reload.config import KindConfig, defaultConfiguration, writeConfiguration
from reload.lab import Lab, LabPeer
from tests.replication_support import AdminCallFailed, call, spreadResource

REPO = Path(__file__).resolve().parent.parent
#: SINGLE values, NODE-MULTIPLE (section 7.3.4): H(Node-ID || i), i < 256.
SINGLES = 0xF0000010
MAX_MULTIPLE = 255
#: ARRAY values, NODE-MATCH (the Resource-ID is H(Node-ID)).
ARRAY = 0xF0000012
#: Array entries appended per client round.
APPEND = 20
#: Array entries fetched per FetchReq: about 200 bytes each with its
#: signature, so ten stay under max-message-size (5,000 bytes, section
#: 6.3.2); 25 did not ("Error_Response_Too_Large").
RANGE = 10


def writeConfig(directory: Path, arrayMax: int) -> None:
    """The lab's overlay: the default's Kinds, SINGLES and a max-count
    ``arrayMax`` ARRAY Kind."""
    base = defaultConfiguration(f"churn-{random.getrandbits(32):08x}.reload.local")
    singles = KindConfig(
        kindId=SINGLES, maxCount=1, maxSize=512, maxNodeMultiple=MAX_MULTIPLE,
        dataModel="SINGLE", accessControl="NODE-MULTIPLE",
    )  # fmt: skip
    array = KindConfig(
        kindId=ARRAY, maxCount=arrayMax, maxSize=64, dataModel="ARRAY", accessControl="NODE-MATCH"
    )
    config = dataclasses.replace(base, kinds=(*base.kinds, singles, array))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "overlay.xml").write_bytes(writeConfiguration(config))


def newLab(directory: Path) -> Lab:
    """A lab on free ports whose peers run this checkout's code."""
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    return Lab(directory, basePort=None, adminBasePort=None, environment=environment)


# -- phase 1: kill -9 and restart on the same data directory ---------------------


def restarts(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    writeConfig(directory, args.array)
    lab = newLab(directory)
    rng = random.Random(args.seed)
    joined: list[float] = []
    repaired: list[float | None] = []
    try:
        lab.start(args.restart_peers)
        lab.waitConverged(120)
        for n in range(args.restarts):
            victim = rng.choice(lab.peers[1:])
            lab.stopPeer(victim, signal.SIGKILL)
            time.sleep(rng.uniform(1, 10))
            peer = lab.restartPeer(victim, lab.peers[0])
            started = time.monotonic()
            while lab.status(peer, 1).get("state") != "joined":
                if time.monotonic() - started > args.join_timeout:
                    break
                time.sleep(0.1)
            joined.append(time.monotonic() - started)
            try:
                lab.waitConverged(60)
                repaired.append(time.monotonic() - started)
            except TimeoutError:
                repaired.append(None)
            print(
                f"restart {n + 1}: joined after {joined[-1]:.1f} s, ring right after "
                f"{repaired[-1] if repaired[-1] is None else round(repaired[-1], 1)} s",
                file=sys.stderr,
            )
    finally:
        lab.stop()
    done = [r for r in repaired if r is not None]
    return {
        "restarts": len(joined),
        "restart_to_joined_s": [round(t, 2) for t in joined],
        "restart_to_joined_max_s": round(max(joined), 2) if joined else None,
        "restart_to_joined_median_s": round(statistics.median(joined), 2) if joined else None,
        "restart_to_ring_right_max_s": round(max(done), 2) if done else None,
        "restarts_not_repaired": sum(1 for r in repaired if r is None),
    }


# -- phase 2: churn with mixed sizes -----------------------------------------------


class Client:
    """Stores single values and appends to one array, fetching earlier
    acknowledged ones, in a loop through one peer's admin API."""

    def __init__(self, lab: Lab, peer: LabPeer, arrayMax: int, seed: int) -> None:
        self.peer = peer
        self.nodeId: str = lab.status(peer)["nodeId"]
        self.arrayMax = arrayMax
        self.random = random.Random(seed)
        self.singles: dict[int, str] = {}
        self.array: dict[int, str] = {}
        self.stores = self.storeFailures = 0
        self.fetches = 0
        self.fetchFailures: list[str] = []
        self.stop = threading.Event()
        self.crashed: str | None = None

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:
            self.crashed = repr(exc)

    def _store(self, **query: Any) -> bool:
        self.stores += 1
        try:
            call(self.peer, "store", timeout=30, **query)
            return True
        except AdminCallFailed:
            self.storeFailures += 1
            return False

    def _loop(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            i = (n - 1) % MAX_MULTIPLE + 1
            value = f"single {n} {self.random.getrandbits(32):08x}"
            resource = spreadResource(self.nodeId, i)
            if self._store(kind=hex(SINGLES), resource=resource, value=value):
                self.singles[i] = value
            else:
                self.singles.pop(i, None)  # maybe stored: unknown now
            for _ in range(APPEND):
                index = len(self.array)
                if index >= self.arrayMax:
                    break
                entry = f"entry {index} {self.random.getrandbits(32):08x}"
                if self._store(kind=hex(ARRAY), node=self.nodeId, index=index, value=entry):
                    self.array[index] = entry
                else:
                    break  # retried next round at the same index
            self._fetchSome()
            time.sleep(0.2)

    def _fetchSome(self) -> None:
        if self.singles:
            j = self.random.choice(list(self.singles))
            self.fetches += 1
            got = self.fetchSingle(j)
            if got != self.singles[j]:
                self.fetchFailures.append(f"single {j}: {got!r}")
        if self.array:
            first = self.random.randrange(len(self.array))
            self.fetches += 1
            wrong = self.checkRange(first)
            if wrong:
                self.fetchFailures.append(f"array {first}: {wrong}")

    def fetchSingle(self, i: int) -> str | None:
        try:
            result = call(
                self.peer, "fetch", timeout=30, kind=hex(SINGLES),
                resource=spreadResource(self.nodeId, i),
            )  # fmt: skip
        except AdminCallFailed as exc:
            return f"error {exc}"
        for kind in result["kinds"]:
            for value in kind["values"]:
                if value.get("exists", True) and "value" in value:
                    return str(value["value"])
        return None

    def checkRange(self, first: int) -> str | None:
        """None when array entries first..first+RANGE-1 (those acknowledged)
        are fetched as stored, else what is wrong."""
        last = first + RANGE - 1
        try:
            result = call(
                self.peer, "fetch", timeout=30, kind=hex(ARRAY), node=self.nodeId,
                index=f"{first}-{last}",
            )  # fmt: skip
        except AdminCallFailed as exc:
            return f"error {exc}"
        got = {
            int(v["index"]): v.get("value")
            for kind in result["kinds"]
            for v in kind["values"]
            if v.get("exists", True) and "index" in v
        }
        wanted = [k for k in range(first, last + 1) if k in self.array]
        missing = [k for k in wanted if got.get(k) != self.array[k]]
        return f"{len(missing)} entries wrong, first {missing[0]}" if missing else None


def churn(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    writeConfig(directory, args.array)
    lab = newLab(directory)
    chooser = random.Random(args.seed)
    every = 60.0 / max(1.0, args.peers * 0.10)
    events: list[str] = []
    repairs: list[float | None] = []
    try:
        lab.start(args.peers)
        lab.waitConverged(240)
        client = Client(lab, lab.peers[0], args.array, args.seed)
        thread = threading.Thread(target=client.run, daemon=True)
        thread.start()
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(max(0.0, started + (n + 1) * every - time.monotonic()))
            n += 1
            victim = chooser.choice(lab.peers[1:])
            how = signal.SIGKILL if n % 2 else signal.SIGTERM
            lab.stopPeer(victim, how)
            killed = time.monotonic()
            newcomer = lab.startPeer(bootstrap=lab.peers[0])
            events.append(f"{victim.index} {how.name}, {newcomer.index} joins")
            if how is signal.SIGKILL:
                try:
                    lab.waitConverged(max(1.0, every - 2))
                    repairs.append(time.monotonic() - killed)
                except TimeoutError:
                    repairs.append(None)
            print(f"event {n}: {events[-1]}", file=sys.stderr)
        client.stop.set()
        thread.join(120)
        converged = lab.waitConverged(240)
        lostSingles = [i for i, v in client.singles.items() if client.fetchSingle(i) != v]
        lostArray = 0
        for first in range(0, len(client.array), RANGE):
            wrong = client.checkRange(first)
            if wrong:
                lostArray += int(wrong.split()[0]) if wrong[0].isdigit() else RANGE
    finally:
        lab.stop()
    done = [r for r in repairs if r is not None]
    fetches = client.fetches
    return {
        "peers": args.peers,
        "minutes": args.minutes,
        "events": len(events),
        "client_crashed": client.crashed,
        "stores": client.stores,
        "store_failures": client.storeFailures,
        "singles_acknowledged": len(client.singles),
        "array_entries_acknowledged": len(client.array),
        "fetches": fetches,
        "fetch_failures": len(client.fetchFailures),
        "fetch_success": round(1 - len(client.fetchFailures) / fetches, 4) if fetches else None,
        "fetch_failure_samples": client.fetchFailures[:5],
        "lost_singles": len(lostSingles),
        "lost_array_entries": lostArray,
        "converged_after_churn_s": round(converged, 2),
        "kill_to_ring_right_s": [None if r is None else round(r, 2) for r in repairs],
        "kill_to_ring_right_max_s": round(max(done), 2) if done else None,
    }


def table(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    rows: list[tuple[str, str, str, bool | None]] = []
    r = result.get("restart")
    if r:
        worst = r["restart_to_joined_max_s"]
        rows += [
            ("restarts (kill -9, restart after 1-10 s)", str(r["restarts"]), "", None),
            ("restart to joined, median (s)", f"{r['restart_to_joined_median_s']}", "", None),
            ("restart to joined, max (s)", f"{worst}", "<= 10",
             worst is not None and worst <= 10),
            ("restart to ring right, max (s)", f"{r['restart_to_ring_right_max_s']}", "", None),
        ]  # fmt: skip
    c = result.get("churn")
    if c:
        lost = c["lost_singles"] + c["lost_array_entries"]
        rows += [
            ("churn: peers, minutes, events", f"{c['peers']}, {c['minutes']}, {c['events']}", "",
             None),
            ("acknowledged singles / array entries",
             f"{c['singles_acknowledged']} / {c['array_entries_acknowledged']}", "", None),
            ("stores (failed)", f"{c['stores']} ({c['store_failures']})", "", None),
            ("acknowledged values lost", str(lost), "0", lost == 0),
            ("fetches during churn (failed)", f"{c['fetches']} ({c['fetch_failures']})", "",
             None),
            ("fetch success", f"{c['fetch_success']}", ">= 0.99",
             c["fetch_success"] is not None and c["fetch_success"] >= 0.99),
            ("kill to ring right, max (s)", f"{c['kill_to_ring_right_max_s']}", "", None),
        ]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=20, help="kill/restart rounds (0: skip)")
    parser.add_argument("--restart-peers", type=int, default=5, help="peers of the restart lab")
    parser.add_argument("--join-timeout", type=float, default=60.0, help="give a restart up")
    parser.add_argument("--peers", type=int, default=30, help="peers of the churn lab (0: skip)")
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes of churn")
    parser.add_argument("--array", type=int, default=2000, help="array entries at most")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="keep the lab directories")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, f: sys.exit(128 + s))
    directory = Path(tempfile.mkdtemp(prefix="reload-churn-bench-"))
    print(f"lab directory: {directory}", file=sys.stderr)
    result: dict[str, Any] = {}
    try:
        if args.restarts > 0:
            result["restart"] = restarts(args, directory / "restart")
        if args.peers > 0:
            result["churn"] = churn(args, directory / "churn")
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    rows = table(result)
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':{width}} {'value':>18} {'target':>8}  met")
    for name, value, target, met in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name:{width}} {value:>18} {target:>8}  {mark}")
    if args.json:
        document = {"python": platform.python_version(), "machine": platform.machine(), **result}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
