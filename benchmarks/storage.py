"""Storage throughput (issues 7, 24): RELOAD against kademlia, opendht and the floor.

Run by hand, not by the test suite (four to five minutes with the defaults
on two cores):

    python3 -m pip install kademlia opendht     # the two columns to compare with
    python3 benchmarks/storage.py [--peers 50] [--ops 5000] [--concurrency 32]
        [--drivers 2] [--only reload|kademlia|opendht|floor] [--tmpfs] [--profile DIR]
        [--json storage.json] [--plot storage.png [--before earlier.json]]

A package that is not installed is skipped, with the pip command to install
it; its column says "not installed".

Method.  One system after the other (each stopped before the next starts,
so that none takes CPU from another): ``--peers`` nodes on 127.0.0.1, each
in its own process, and ``--drivers`` load-driver processes, the clients,
with ``--concurrency`` operations outstanding in all (shared out among the
drivers).  The drivers store ``--ops`` distinct keys, then fetch every one
of them once, in a shuffled order.  Before that, unmeasured, they fetch
every key once while nothing is stored, so that every system starts warm:
the DHTs' routing tables and searches are filled, and the RELOAD peers have
checked each client's certificate once, as they would for long-running
clients (otherwise nearly every Store would be the first message its
storing peer sees from that client identity, and would pay an X.509 check
on top; see "Which Kind"; the replica peers still check it the first time
a replica Store carries it).  Every fetch is checked against the value
stored: a wrong or missing value is a mismatch, and any mismatch or error
makes the run fail (exit status 1): a benchmark with wrong answers is not a
result.  Values are 48 random bytes.

Figures, per phase: operations per second over the wall time from the first
driver's start to the last driver's end; the 50th and 99th percentiles of
the latency of each operation (from the call to the verified answer;
nearest rank, all drivers' operations together).  RSS per peer: the
``VmRSS`` of each node process after both phases, the mean over the
processes (the max, and the RSS before the load, are printed below the
table).  Also printed: the CPU time per operation the node processes
(user and system) and the drivers spent, from ``/proc``: on a machine with
fewer cores than processes, CPU bounds every figure, and rate x CPU per op
says how close to that bound a system ran.

* reload: ``twistd reload`` peers started by :class:`reload.lab.Lab` (a
  fresh self-signed overlay with the default configuration and the
  benchmark's Kind, a block of free ports below the ephemeral range (see
  :func:`portBlock`), a temporary directory; each peer keeps its data in
  SQLite in its data directory, with ``--storage-sync`` (default
  ``normal``, the peers' default: a Store is in the write-ahead log when
  answered; ``full``: fsynced)),
  measured once the ring has converged (the condition of
  :meth:`~reload.lab.Lab.waitConverged`; a peer that fails to start ends
  the run at once, with its reason) and ``--settle`` seconds later.  TLS
  links, every message signed and verified, every value signed by its
  writer, its signature and access policy checked by the storing peer and
  again by the fetching client.  The drivers
  (``_storage_reload.py``) speak RELOAD themselves, not the HTTP admin
  API: each of their identities is a RELOAD client (RFC 6940 section
  4.2), a :class:`~reload.transport.TransportNode` with a TLS link to an
  admitting peer (round-robin over the peers) and a listener for the links
  peers open to it after an Attach; it stores and fetches with
  :class:`~reload.storageclient.StorageClient`.  ``--tmpfs`` puts the
  peers' data directories on /dev/shm, where fsync costs nothing.

  Routing (``--routing``).  ``direct`` (the default) is what ``twistd
  reload --client`` does in a CHORD-RELOAD overlay
  (:class:`topologies.chordreload.direct.DirectClientTopology`): a request for a
  Resource-ID whose responsible peer the client has not met yet goes to
  the admitting peer, which routes it through the ring (CHORD-RELOAD,
  recursive); the peer that answers is then Attached with send_update, and
  once its Update named its range, requests for that range go straight to
  it (section 6.5.1: "a direct connection to the responsible peer for use
  with frequent or large resource updates").  The warm-up phase (a Fetch
  of every key before anything is stored) is when the clients meet the
  peers.  ``overlay`` sends every request through the admitting peer and
  the ring, so every operation pays the forwarding hops.  The DHT clients
  below do the same as ``direct``: they look up iteratively and then talk
  to the storing nodes themselves.

  Which Kind.  None of the default overlay's Kinds lets one writer store at
  many random Resource-IDs: CERTIFICATE_BY_NODE (NODE-MATCH) and
  CERTIFICATE_BY_USER (USER-MATCH) allow one Resource-ID per identity, and
  TURN-SERVICE (NODE-MULTIPLE, max-node-multiple 20) 20.  The benchmark
  adds a Kind of its own to the lab's overlay configuration,
  ``BENCH_KIND`` (private-use Kind-ID 0xf0000020, SINGLE, NODE-MULTIPLE,
  max-node-multiple 250, the largest one-byte i), and each client identity
  stores at its Resource-IDs H(Node-ID || i), i = 1..250 (section 7.3.4;
  ``--ops`` is rounded up to a multiple of 250): SHA-1 outputs, spread
  uniformly over the ring like random keys; every store passes the real
  NODE-MULTIPLE check on the storing peer and every fetch on the client;
  and each key is a resource of its own, as in a DHT.  Many keys under one
  Resource-ID (a DICTIONARY) would all land on one peer, and a Kind with a
  made-up "anyone may write" policy would measure an overlay no RFC
  defines.  The Resource Names Node-ID || i are also the keys the DHTs
  store (with ``--only`` and no reload, random names of the same shape).

  Replication.  The store phase includes whatever replication the peers
  do: CHORD-RELOAD's responsible peer copies each Store to its two
  successors (section 10.4).  To show that it happened, the benchmark
  counts the rows of the stored Kind in every peer's SQLite file after the
  store phase: "copies per key" 3.00 is the original and two replicas,
  1.00 would be no replication, whatever the replica lists of the
  StoreAns (also printed) say.

* kademlia (the ``kademlia`` package: asyncio, rpcudp): one
  ``kademlia.network.Server`` per process, like the reload peers, so that
  memory per process compares; k = 20 and alpha = 3 (its defaults); all
  bootstrapped to the first.  Each driver is one more node doing ``set``
  (an iterative lookup, then a store on the k closest nodes) and ``get``
  (an iterative value lookup, which ends at the first node holding the
  value).  rpcudp gives up on a request after 5 s: the datagrams the
  kernel dropped for full receive buffers (printed) show up as 5 s
  latencies.  The drivers' nodes keep nothing (see
  ``_storage_kademlia.py``): ``get`` would otherwise answer from the
  driver's own store without asking the network.
* opendht (the ``opendht`` package: OpenDHT's C++ with Python bindings):
  one ``DhtRunner`` per process, bootstrapped to the first, request rate
  limits off (they are per source address, and on loopback every node has
  the same one).  Each driver is one more runner doing ``put`` (stored on
  the 8 closest nodes) and ``get``.  OpenDHT keeps a search per key, which
  later puts and gets of that key reuse.

* floor (issue 24): ``floor.py``'s skeleton (``_floornode.py``), the
  work a replicated Store and a Fetch cannot do without on reload's
  stack (TLS links, an ECDSA P-256 signature on every message and value
  and its verifications, a SQLite commit per stored copy, two replicas
  before the answer) and none of RELOAD's logic, with this run's
  ``--peers``, ``--ops`` and ``--concurrency`` (one driver process).  It
  runs in the same invocation as the others so that reload's ratio to it
  is measured side by side, on the same machine in the same minutes.

Neither DHT authenticates nodes, encrypts links or signs values here; the
RELOAD figures include all three, and hops through the overlay (RELOAD
routes recursively, peer to peer; the DHT clients look up iteratively and
then talk to the storing nodes directly).

Targets (issue 7), for reload: fetch at least 2,000/s with p99 at most
10 ms, store (with replication) at least 1,000/s, and ahead of both DHTs;
and (issue 24) store/s and fetch/s at least 0.8x the floor's; the line
under the table says which were met.  The table also gives the CPU time
per operation of every system's node processes and of its drivers.  The ratio columns are
reload's figure divided by the other system's (for rates above 1 is better
for reload, for latencies and memory below 1).  ``--profile DIR`` runs
cProfile (CPU time) in the first reload driver and in every peer (merged
per phase) and py-spy (wall clock) on the first peer; its figures are not
comparable with an unprofiled run.

Every process is stopped on the way out, whatever happens: the lab's peers
with :meth:`~reload.lab.Lab.stop`, the other children by closing their
stdin, then SIGTERM, then SIGKILL (and they die with this process).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import platform
import pstats
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    BENCH_KIND,
    KEYS_PER_IDENTITY,
    PROFILE_START,
    PROFILE_STOP,
    Child,
    closeAll,
    combine,
    cpuTotals,
    memory,
    profiledEnvironment,
    udpReceiveDrops,
    workload,
)

from reload.config import KindConfig, defaultConfiguration, writeConfiguration  # noqa: E402
from reload.lab import CONFIG_FILE, Lab, ringErrors  # noqa: E402

SYSTEMS = ("reload", "kademlia", "opendht", "floor")
#: The systems reload's figures are divided by, one ratio column each.
OTHERS = ("kademlia", "opendht", "floor")
PACKAGES = {"kademlia": "kademlia", "opendht": "opendht"}
#: reload's store and fetch rates against the floor's, measured in the same run.
TARGET_FLOOR_RATIO = 0.8
TARGET_FETCH_RATE = 2000.0
TARGET_FETCH_P99_MS = 10.0
TARGET_STORE_RATE = 1000.0


def _split(total: int, parts: int) -> list[int]:
    """``total`` shared out as evenly as possible among ``parts``."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _phase(drivers: Sequence[Child], command: str, timeout: float) -> dict[str, Any]:
    """Start a phase in every driver at once and combine their figures."""
    for driver in drivers:
        driver.tell(command)
    parts = [driver.read(timeout) for driver in drivers]
    result = combine(parts)
    if command == "store":
        replicas: dict[str, int] = {}
        for part in parts:
            for count, n in part.get("replicas", {}).items():
                replicas[count] = replicas.get(count, 0) + n
        if replicas:
            result["replicas_listed_in_store_answers"] = replicas
    return result


class Profiling:
    """``--profile``: cProfile in the first driver and in every peer
    (through :data:`_common.PEER_PROFILER`; the peers' statistics
    are merged into one file per phase), and py-spy (when installed) on the
    first peer, sampling it whenever it is not idle: the wall-clock view,
    where blocking I/O shows."""

    def __init__(
        self, directory: Path | None, driver: Child, peerPids: Sequence[int | None]
    ) -> None:
        self.directory = directory
        self.driver = driver
        self.peerPids = [p for p in peerPids if p is not None]
        self.spy: subprocess.Popen[bytes] | None = None
        self.files: list[str] = []

    def _signal(self, signum: int) -> None:
        for pid in self.peerPids:
            with contextlib.suppress(OSError):
                os.kill(pid, signum)

    def start(self, name: str) -> None:
        if self.directory is None:
            return
        self.driver.tell("profile-start")
        self.driver.read(30)
        self._signal(PROFILE_START)
        spy = shutil.which("py-spy")
        if spy and self.peerPids:
            output = self.directory / f"peer-1-{name}-py-spy.txt"
            self.files.append(str(output))
            self.spy = subprocess.Popen(
                [spy, "record", "--pid", str(self.peerPids[0]), "--format", "raw",
                 "--rate", "250", "--nonblocking", "--output", str(output)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip

    def stop(self, name: str) -> None:
        if self.directory is None:
            return
        (self.directory / "phase").write_text(name)
        self._signal(PROFILE_STOP)
        output = self.directory / f"driver-{name}.prof"
        self.driver.tell(f"profile-stop {output}")
        self.driver.read(60)
        self.files.append(str(output))
        self.close()
        pattern = f"peer-{name}-*.prof"
        deadline = time.monotonic() + 30
        while len(list(self.directory.glob(pattern))) < len(self.peerPids):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        found = sorted(str(p) for p in self.directory.glob(pattern))
        if found:
            merged = self.directory / f"peers-{name}.prof"
            pstats.Stats(*found).dump_stats(str(merged))
            self.files.append(str(merged))
            for path in found:
                os.unlink(path)

    def close(self) -> None:
        if self.spy is not None:
            with contextlib.suppress(OSError):
                self.spy.send_signal(signal.SIGINT)
            try:
                self.spy.wait(30)
            except subprocess.TimeoutExpired:
                self.spy.kill()
                self.spy.wait()
            self.spy = None


def _copies(lab: Lab) -> int:
    """Rows of the stored Kind in every peer's SQLite file."""
    total = 0
    for peer in lab.peers:
        path = Path(peer.dataDir) / "storage.sqlite"
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                row = db.execute("SELECT count(*) FROM entries WHERE kind=?", (BENCH_KIND,))
                total += int(row.fetchone()[0])
        except sqlite3.Error:
            continue
    return total


def _counters(lab: Lab) -> dict[str, int]:
    total: dict[str, int] = {}
    for status in lab.statuses():
        for key, value in status.get("counters", {}).items():
            total[key] = total.get(key, 0) + int(value)
    return total


def measurePhases(
    result: dict[str, Any],
    drivers: Sequence[Child],
    nodePids: Sequence[int | None],
    timeout: float,
    profiling: Profiling | None = None,
    afterWarmup: Callable[[], None] | None = None,
    afterStore: Callable[[], None] | None = None,
) -> None:
    """The warm-up, the store phase, then the fetch phase, in every driver;
    the nodes' memory before and after, and per measured phase the CPU the
    nodes and the drivers spent per operation."""
    result["memory_before"] = memory(nodePids)
    result["warmup"] = _phase(drivers, "warmup", timeout)
    if afterWarmup is not None:
        afterWarmup()
    drops0 = udpReceiveDrops()
    for name in ("store", "fetch"):
        user0, system0 = cpuTotals(nodePids)
        if profiling is not None:
            profiling.start(name)
        figures = _phase(drivers, name, timeout)
        user1, system1 = cpuTotals(nodePids)
        if profiling is not None:
            profiling.stop(name)
        if figures["ops"]:
            figures["cpu_ms_per_op"] = {
                "nodes_user": (user1 - user0) * 1000 / figures["ops"],
                "nodes_system": (system1 - system0) * 1000 / figures["ops"],
                "drivers": figures["driver_cpu_seconds"] * 1000 / figures["ops"],
            }
            cpu = figures["cpu_ms_per_op"]
            cpu["nodes_total"] = cpu["nodes_user"] + cpu["nodes_system"]
        result[name] = figures
        if name == "store" and afterStore is not None:
            afterStore()
    drops1 = udpReceiveDrops()
    if drops0 is not None and drops1 is not None:
        result["udp_receive_buffer_drops"] = drops1 - drops0
    result["memory"] = memory(nodePids)
    result["nodes"] = len(nodePids)


def portBlock(count: int, rng: random.Random) -> int:
    """The first of ``2 * count`` consecutive TCP ports on 127.0.0.1, all
    free now and below the kernel's ephemeral range.

    :class:`~reload.lab.Lab`'s own free ports (``basePort=None``) are
    found by binding port 0 and closing the socket before ``twistd`` binds
    the port: they come from the ephemeral range, where the peers' outbound
    connections take ports too, and at 50 peers about every other lab
    start failed with "Address already in use".  Below that range only
    another listener can take them."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(50):
        base = rng.randrange(10000, max(10001, low - 2 * count))
        try:
            for port in range(base, base + 2 * count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {2 * count} free consecutive ports below {low}")


def _lastWords(peer: Any) -> str:
    """What a peer that exited said last (its critical line, else the last
    line of its log or stderr)."""
    lines: list[str] = []
    for name in ("twistd.log", "stderr.log"):
        with contextlib.suppress(OSError):
            lines += Path(peer.dataDir, name).read_text(errors="replace").splitlines()
    critical = [line for line in lines if "Cannot start" in line or "Error" in line]
    return (critical or lines or ["no log"])[-1][-300:]


def writeBenchOverlay(directory: Path) -> None:
    """The lab's overlay: the default configuration plus ``BENCH_KIND``
    (SINGLE, NODE-MULTIPLE, max-node-multiple ``KEYS_PER_IDENTITY``), where
    :meth:`Lab.create` finds it."""
    base = defaultConfiguration(f"storage-bench-{random.getrandbits(32):08x}.reload.local")
    kind = KindConfig(
        kindId=BENCH_KIND, name=None, maxCount=1, maxSize=1024,
        maxNodeMultiple=KEYS_PER_IDENTITY, dataModel="SINGLE", accessControl="NODE-MULTIPLE",
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    configuration = dataclasses.replace(base, kinds=(*base.kinds, kind))
    (directory / CONFIG_FILE).write_bytes(writeConfiguration(configuration))


def startLab(lab: Lab, peers: int, timeout: float) -> None:
    """:meth:`Lab.start` and :meth:`Lab.waitConverged`, but a peer that
    failed (it says why in its status) ends the wait at once."""
    lab.start(peers)
    deadline = time.monotonic() + timeout
    while True:
        statuses = lab.statuses()
        failed = [s for s in statuses if s.get("state") == "failed"]
        if failed:
            reason = failed[0].get("error", "no reason given")
            raise RuntimeError(f"{len(failed)} peer(s) failed to start: {reason}")
        dead = [p for p in lab.peers if not lab.alive(p)]
        if dead:
            raise RuntimeError(
                f"{len(dead)} peer process(es) exited; peer {dead[0].index}: {_lastWords(dead[0])}"
            )
        errors = ringErrors(statuses)
        if not errors:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not converged after {timeout:.0f} s: {errors[:3]}")
        time.sleep(0.5)


def measureReload(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    base = portBlock(args.peers, random.Random())
    lab = Lab(
        directory,
        basePort=base,
        adminBasePort=base + args.peers,
        # The lab's peers and clients all share 127.0.0.1: the per-source
        # link limits, meant for one address per node, would abort the
        # links of the ring and of the clients' Attaches.
        extraArgs=[
            "--storage-sync",
            args.storage_sync,
            "--max-handshakes-per-source",
            str(2 * args.peers + 8),
            "--max-unproven-links-per-source",
            str(2 * args.peers + 8),
        ],
        environment=None if args.profile is None else profiledEnvironment(args.profile.resolve()),
    )
    drivers: list[Child] = []
    profiling: Profiling | None = None
    try:
        began = time.monotonic()
        writeBenchOverlay(directory)
        startLab(lab, args.peers, args.converge_timeout)
        result["converged_seconds"] = round(time.monotonic() - began, 1)
        time.sleep(args.settle)
        peers = []
        for status in lab.statuses():
            host, _, port = status["address"].rpartition(":")
            peers.append({"host": host, "port": int(port), "nodeId": status["nodeId"]})
        peersFile = directory / "peers.json"
        peersFile.write_text(json.dumps(peers))
        identities = _split(math.ceil(args.ops / KEYS_PER_IDENTITY), args.drivers)
        concurrency = _split(args.concurrency, args.drivers)
        offset = 0
        for k in range(args.drivers):
            drivers.append(
                Child(
                    [str(HERE / "_storage_reload.py"), "--config", str(lab.configPath),
                     "--peers", str(peersFile), "--identities", str(identities[k]),
                     "--concurrency", str(concurrency[k]), "--offset", str(offset),
                     "--seed", str(args.seed + k), "--phase-timeout", str(args.phase_timeout),
                     "--routing", args.routing],
                    f"reload driver {k + 1}",
                )
            )  # fmt: skip
            offset += identities[k]
        names: list[str] = []
        for driver in drivers:
            ready = driver.read(300)
            names.extend(ready["names"])
        result["keys"] = len(names)
        result["names"] = names
        result["client_identities"] = sum(identities)
        result["routing"] = args.routing
        result["storage_sync"] = args.storage_sync
        print(
            f"reload: {len(names)} keys, {sum(identities)} client identities,"
            f" routing {args.routing}",
            file=sys.stderr,
        )
        profiling = Profiling(
            None if args.profile is None else args.profile.resolve(),
            drivers[0],
            [p.pid for p in lab.peers],
        )
        before: dict[str, int] = {}

        def afterWarmup() -> None:
            before.update(_counters(lab))

        def afterStore() -> None:
            result["copies_per_key"] = _copies(lab) / len(names) if names else None

        measurePhases(
            result,
            drivers,
            [p.pid for p in lab.peers],
            args.phase_timeout + 60,
            profiling,
            afterWarmup,
            afterStore,
        )
        after = _counters(lab)
        operations = result["store"]["ops"] + result["fetch"]["ops"]
        if operations:
            forwarded = after.get("forwarded", 0) - before.get("forwarded", 0)
            result["forwarded_per_op"] = forwarded / operations
        if profiling.files:
            result["profiles"] = profiling.files
    finally:
        if profiling is not None:
            profiling.close()
        closeAll(drivers)
        lab.stop()
    return result


def measureDht(
    system: str, args: argparse.Namespace, pairs: list[tuple[bytes, bytes]], directory: Path
) -> dict[str, Any]:
    """One of the DHT packages: ``--peers`` node processes, then the drivers."""
    script = str(HERE / f"_storage_{system}.py")
    result: dict[str, Any] = {"keys": len(pairs)}
    nodes: list[Child] = []
    drivers: list[Child] = []
    log = open(directory / f"{system}.log", "ab")  # noqa: SIM115 - closed below
    try:
        first = Child([script, "node"], f"{system} node 1", stderr=log)
        nodes.append(first)
        port = first.read(120)["port"]
        bootstrap = f"127.0.0.1:{port}"
        for i in range(1, args.peers):
            nodes.append(
                Child([script, "node", "--bootstrap", bootstrap], f"{system} node {i + 1}", log)
            )
        for node in nodes[1:]:
            node.read(120)
        time.sleep(args.settle)
        slices = _split(len(pairs), args.drivers)
        concurrency = _split(args.concurrency, args.drivers)
        start = 0
        for k in range(args.drivers):
            part = pairs[start : start + slices[k]]
            start += slices[k]
            path = directory / f"{system}-workload-{k + 1}.json"
            path.write_text(json.dumps([[key.hex(), value.hex()] for key, value in part]))
            drivers.append(
                Child(
                    [script, "client", "--bootstrap", bootstrap, "--workload", str(path),
                     "--concurrency", str(concurrency[k]), "--seed", str(args.seed + k),
                     "--phase-timeout", str(args.phase_timeout)],
                    f"{system} driver {k + 1}",
                    log,
                )
            )  # fmt: skip
        for driver in drivers:
            driver.read(120)
        measurePhases(result, drivers, [n.pid for n in nodes], args.phase_timeout + 60)
    finally:
        closeAll(drivers + nodes)
        log.close()
    return result


def measureFloor(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    """``floor.py``'s skeleton with this run's settings (``--peers`` nodes,
    ``--ops`` keys, ``--concurrency`` outstanding, one driver process), its
    figures in the shape of the other columns."""
    import floor

    settings = argparse.Namespace(
        nodes=args.peers, ops=args.ops, warmup=500, concurrency=args.concurrency,
        seed=args.seed, acks=False, phase_timeout=args.phase_timeout,
    )  # fmt: skip
    sub = directory / "floor"
    sub.mkdir()
    figures = floor.measure(settings, sub)
    result: dict[str, Any] = {
        "keys": args.ops,
        "nodes": figures["nodes"],
        "memory_before": figures["memory_before"],
        "memory": figures["memory"],
    }
    for phase in ("store", "fetch"):
        phaseFigures = dict(figures[phase])
        cpu = phaseFigures.pop("cpu_ms_per_op")
        phaseFigures["cpu_ms_per_op"] = {
            "nodes_user": cpu["nodes"]["user"],
            "nodes_system": cpu["nodes"]["system"],
            "nodes_total": cpu["nodes"]["user"] + cpu["nodes"]["system"],
            "drivers": cpu["driver"]["user"] + cpu["driver"]["system"],
        }
        # floor.py counts wrong answers as errors; here they are mismatches.
        phaseFigures["mismatches"] = phaseFigures.pop("errors")
        result[phase] = phaseFigures
    return result


# -- the table ------------------------------------------------------------------------------


def _get(result: dict[str, Any] | None, *path: str) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return float(value) if isinstance(value, int | float) else None


ROWS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("store/s", ("store", "per_second"), "{:.0f}"),
    ("store p50 ms", ("store", "p50_ms"), "{:.1f}"),
    ("store p99 ms", ("store", "p99_ms"), "{:.1f}"),
    ("fetch/s", ("fetch", "per_second"), "{:.0f}"),
    ("fetch p50 ms", ("fetch", "p50_ms"), "{:.1f}"),
    ("fetch p99 ms", ("fetch", "p99_ms"), "{:.1f}"),
    ("store CPU ms/op nodes", ("store", "cpu_ms_per_op", "nodes_total"), "{:.2f}"),
    ("store CPU ms/op drivers", ("store", "cpu_ms_per_op", "drivers"), "{:.2f}"),
    ("fetch CPU ms/op nodes", ("fetch", "cpu_ms_per_op", "nodes_total"), "{:.2f}"),
    ("fetch CPU ms/op drivers", ("fetch", "cpu_ms_per_op", "drivers"), "{:.2f}"),
    ("RSS per peer MB", ("memory", "rss_mb_mean"), "{:.1f}"),
)


def table(results: dict[str, Any]) -> list[list[str]]:
    """Rows of strings, the header first."""
    header = ["", *SYSTEMS, *(f"reload/{other}" for other in OTHERS)]
    rows = [header]
    for label, path, form in ROWS:
        row = [label]
        for system in SYSTEMS:
            outcome = results.get(system)
            value = _get(outcome, *path)
            if isinstance(outcome, str):
                row.append(outcome)
            else:
                row.append("-" if value is None else form.format(value))
        mine = _get(results.get("reload"), *path)
        for other in OTHERS:
            theirs = _get(results.get(other), *path)
            row.append("-" if mine is None or not theirs else f"{mine / theirs:.2f}")
        rows.append(row)
    return rows


def printTable(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
        )


def targets(results: dict[str, Any]) -> tuple[list[tuple[str, bool | None]], str]:
    """Each target and whether reload met it, and the line to print."""
    mine = results.get("reload")
    fetchRate = _get(mine, "fetch", "per_second")
    fetchP99 = _get(mine, "fetch", "p99_ms")
    storeRate = _get(mine, "store", "per_second")
    checks: list[tuple[str, bool | None]] = [
        (f"fetch >= {TARGET_FETCH_RATE:.0f}/s",
         None if fetchRate is None else fetchRate >= TARGET_FETCH_RATE),
        (f"fetch p99 <= {TARGET_FETCH_P99_MS:.0f} ms",
         None if fetchP99 is None else fetchP99 <= TARGET_FETCH_P99_MS),
        (f"store >= {TARGET_STORE_RATE:.0f}/s",
         None if storeRate is None else storeRate >= TARGET_STORE_RATE),
    ]  # fmt: skip
    for other in ("kademlia", "opendht"):
        for phase in ("store", "fetch"):
            theirs = _get(results.get(other), phase, "per_second")
            ours = _get(mine, phase, "per_second")
            checks.append(
                (
                    f"{phase}/s ahead of {other}",
                    None if theirs is None or ours is None else ours > theirs,
                )
            )
    for phase in ("store", "fetch"):
        floorRate = _get(results.get("floor"), phase, "per_second")
        ours = _get(mine, phase, "per_second")
        checks.append(
            (
                f"{phase}/s >= {TARGET_FLOOR_RATIO}x floor",
                None
                if floorRate is None or ours is None
                else ours >= TARGET_FLOOR_RATIO * floorRate,
            )
        )
    words = {True: "met", False: "NOT met", None: "not measured"}
    line = "targets for reload: " + "; ".join(f"{name}: {words[met]}" for name, met in checks)
    return checks, line


# -- main -----------------------------------------------------------------------------------


def _installed(system: str) -> bool:
    return system not in PACKAGES or importlib.util.find_spec(PACKAGES[system]) is not None


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    wanted = [s for s in SYSTEMS if args.only in (None, s)]
    names: list[bytes] = []
    for system in SYSTEMS:
        if system not in wanted:
            results[system] = "not run"
            continue
        if not _installed(system):
            print(
                f"{system}: not installed; python3 -m pip install {PACKAGES[system]}",
                file=sys.stderr,
            )
            results[system] = "not installed"
            continue
        print(f"{system}: {args.peers} nodes ...", file=sys.stderr)
        began = time.monotonic()
        try:
            if system == "reload":
                sub = directory / "reload-lab"
                results[system] = measureReload(args, sub)
                names = [bytes.fromhex(n) for n in results[system].pop("names")]
            elif system == "floor":
                results[system] = measureFloor(args, directory)
            else:
                if not names:
                    # The shape of the RELOAD keys: a Node-ID and an iteration byte.
                    rng = random.Random(args.seed)
                    count = math.ceil(args.ops / KEYS_PER_IDENTITY)
                    names = [
                        rng.randbytes(16) + bytes((i,))
                        for _ in range(count)
                        for i in range(1, KEYS_PER_IDENTITY + 1)
                    ]
                pairs = workload(names, args.seed)
                results[system] = measureDht(system, args, pairs, directory)
        except Exception as exc:
            # Everything of this system is stopped; the others still run.
            print(f"{system}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            results[system] = "failed"
            results[f"{system}_failure"] = f"{type(exc).__name__}: {exc}"
            continue
        results[system]["wall_seconds"] = round(time.monotonic() - began, 1)
        outcome = results[system]
        print(
            f"{system}: store {outcome['store']['per_second']:.0f}/s,"
            f" fetch {outcome['fetch']['per_second']:.0f}/s",
            file=sys.stderr,
        )
    return results


def problems(results: dict[str, Any]) -> list[str]:
    """Errors and wrong answers: any of them and the run is not a result."""
    out = []
    for system in SYSTEMS:
        outcome = results.get(system)
        if outcome == "failed":
            out.append(f"{system}: failed: {results.get(f'{system}_failure')}")
        if not isinstance(outcome, dict):
            continue
        for phase in ("store", "fetch"):
            figures = outcome.get(phase, {})
            if figures.get("errors") or figures.get("mismatches"):
                out.append(
                    f"{system} {phase}: {figures.get('errors', 0)} errors,"
                    f" {figures.get('mismatches', 0)} wrong answers"
                    f" {figures.get('error_examples', [])}"
                )
            if figures.get("ops", 0) < outcome.get("keys", 0):
                out.append(f"{system} {phase}: {figures.get('ops', 0)} of {outcome['keys']} done")
    return out


def plotThroughput(results: dict[str, Any], before: dict[str, Any] | None, path: Path) -> bool:
    """Store/s and fetch/s per system as grouped bars, with the reload
    column of an earlier run's ``--json`` (``before``) beside this run's,
    so a change's effect is seen against the other systems of the same
    run.  False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    columns: list[tuple[str, dict[str, Any]]] = []
    if before is not None and isinstance(before.get("reload"), dict):
        columns.append(("reload\nbefore", before["reload"]))
    for system in SYSTEMS:
        outcome = results.get(system)
        if isinstance(outcome, dict):
            label = "reload\nafter" if system == "reload" and before is not None else system
            columns.append((label, outcome))
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, phase in zip(axes, ("store", "fetch"), strict=True):
        values = [outcome[phase]["per_second"] for _, outcome in columns]
        axis.bar(range(len(columns)), values)
        axis.set_xticks(range(len(columns)), [name for name, _ in columns], fontsize=8)
        axis.set_title(f"{phase} operations per second", fontsize=9)
        for x, value in enumerate(values):
            axis.annotate(f"{value:.0f}", (x, value), ha="center", va="bottom", fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--peers", type=int, default=50, help="nodes per system")
    parser.add_argument(
        "--ops", type=int, default=5000, help="keys stored, then fetched (reload: x20)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="operations outstanding")
    parser.add_argument("--drivers", type=int, default=2, help="load-driver processes")
    parser.add_argument("--only", choices=SYSTEMS, help="measure one system")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--routing",
        choices=("direct", "overlay"),
        default="direct",
        help="reload clients: direct links to responsible peers (what twistd reload --client"
        " does), or every request through the admitting peer and the ring",
    )
    parser.add_argument("--converge-timeout", type=float, default=240.0)
    parser.add_argument("--phase-timeout", type=float, default=300.0)
    parser.add_argument(
        "--profile",
        type=Path,
        help="cProfile the first reload driver and every peer (merged), py-spy the first peer,"
        " into this directory; the figures of such a run are not comparable",
    )
    parser.add_argument(
        "--tmpfs",
        action="store_true",
        help="put the reload peers' data directories (SQLite) on /dev/shm, where fsync costs"
        " nothing: with --storage-sync full, what flushing every Store costs, by difference",
    )
    parser.add_argument(
        "--storage-sync",
        choices=("normal", "full"),
        default="normal",
        help="the reload peers' --storage-sync",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--plot", type=Path, help="write a PNG of store/s and fetch/s per system here"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="with --plot: an earlier run's --json file, whose reload column is drawn beside"
        " this run's",
    )
    args = parser.parse_args(argv)
    if args.peers < 2 or args.ops < 1 or args.concurrency < 1 or args.drivers < 1:
        parser.error("--peers must be at least 2, --ops, --concurrency, --drivers at least 1")
    if args.concurrency < args.drivers:
        parser.error("--concurrency must be at least --drivers")
    before = None
    if args.before is not None:
        try:
            before = json.loads(args.before.read_text())["results"]
        except (OSError, ValueError, KeyError) as e:
            parser.error(f"--before {args.before}: not a --json file of this script: {e}")

    # SIGTERM and SIGHUP unwind through the finally blocks that stop everything.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, f: sys.exit(128 + s))
    directory = Path(
        tempfile.mkdtemp(prefix="reload-storage-bench-", dir="/dev/shm" if args.tmpfs else None)
    )
    print(f"working directory: {directory}", file=sys.stderr)
    loadBefore = os.getloadavg()
    try:
        results = run(args, directory)
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    loadAfter = os.getloadavg()

    rows = table(results)
    printTable(rows)
    checks, line = targets(results)
    print(line)

    def number(value: Any, form: str = "{:.1f}") -> str:
        return form.format(value) if isinstance(value, int | float) else "-"

    notes = []
    mine = results.get("reload")
    if isinstance(mine, dict):
        listed = mine["store"].get("replicas_listed_in_store_answers", {})
        notes.append(
            f"reload: {mine['keys']} keys from {mine['client_identities']} client identities;"
            f" copies per key on disk after the store phase:"
            f" {number(mine.get('copies_per_key'), '{:.2f}')}"
            f" (replicas named in the StoreAns: {listed});"
            f" forwarded messages per op: {mine.get('forwarded_per_op', 0):.2f}"
        )
    for system in SYSTEMS:
        outcome = results.get(system)
        if isinstance(outcome, dict):
            cpu = {
                phase: "nodes {} ms user + {} ms system, drivers {} ms".format(
                    number(figures.get("nodes_user"), "{:.2f}"),
                    number(figures.get("nodes_system"), "{:.2f}"),
                    number(figures.get("drivers"), "{:.2f}"),
                )
                for phase in ("store", "fetch")
                for figures in [outcome[phase].get("cpu_ms_per_op", {})]
            }
            notes.append(
                f"{system}: {outcome['nodes']} node processes; RSS per peer"
                f" {number(outcome['memory_before']['rss_mb_mean'])} MB before the load,"
                f" {number(outcome['memory']['rss_mb_mean'])} after (max"
                f" {number(outcome['memory']['rss_mb_max'])}); CPU per store: {cpu['store']};"
                f" per fetch: {cpu['fetch']}"
                + (
                    "; UDP datagrams dropped (receive buffer full):"
                    f" {outcome['udp_receive_buffer_drops']}"
                    if system != "reload" and "udp_receive_buffer_drops" in outcome
                    else ""
                )
            )
    notes.append(
        f"{args.ops} ops requested, concurrency {args.concurrency} over {args.drivers} drivers;"
        f" load average {loadBefore[0]:.2f} before, {loadAfter[0]:.2f} after,"
        f" on {os.cpu_count()} CPUs"
        + ("; reload's data directories on /dev/shm" if args.tmpfs else "")
    )
    wrong = problems(results)
    for note in notes + wrong:
        print(note)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "cpus": os.cpu_count(),
                    "load_average_before": loadBefore[0],
                    "load_average_after": loadAfter[0],
                    "settings": {
                        "peers": args.peers,
                        "ops": args.ops,
                        "concurrency": args.concurrency,
                        "drivers": args.drivers,
                        "settle": args.settle,
                        "tmpfs": args.tmpfs,
                        "profiled": args.profile is not None,
                    },
                    "results": results,
                    "targets": [{"target": name, "met": met} for name, met in checks],
                    "problems": wrong,
                },
                indent=2,
            )
            + "\n"
        )
    if args.plot is not None:
        if plotThroughput(results, before, args.plot):
            print(f"plot: {args.plot}")
        else:
            print("plot: matplotlib is not installed (python3 -m pip install matplotlib)")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
