"""The ``opendht`` package (PyPI; OpenDHT, C++, over UDP) for
``benchmarks/storage.py``: a DHT node, or a load driver.

Not run by hand.  ``node`` runs one :class:`opendht.DhtRunner` on
127.0.0.1, bootstrapped to ``--bootstrap`` when given, and says
``{"ready": true, "port": P}``.  ``client`` is a driver: a DhtRunner of its
own, bootstrapped to the first node, that ``put``s and ``get``s the keys of
``--workload`` (a JSON list of [key hex, value hex]; the DHT key is the
SHA-1 of the key, as ``InfoHash.get`` does for strings) with
``--concurrency`` operations outstanding, on the commands ``warmup`` (a
``get`` of every key, whatever it finds), ``store`` and ``fetch``
(protocol in ``_common``).

Every runner is configured with ``setRateLimit(-1, -1)``: OpenDHT limits
requests per source IP address by default, and on loopback every node and
the driver share one address (OpenDHT's own benchmarks and tests turn the
limits off the same way).  A put completes when the value is stored on the
nodes closest to the key (OpenDHT stores on 8); a get completes when the
closest nodes have answered.  The driver's runner keeps what it puts, as
every OpenDHT node does; a get is complete only when the network answered.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Phase, dhtChildArguments, say

#: Called once an operation completes: True for the right answer, False for
#: a wrong one, None for an error.
Completion = Callable[[bool | None], None]
#: An operation, started with its completion callback.
Op = Callable[[Completion], None]


def runner(bootstrap: str | None) -> Any:
    opendht = importlib.import_module("opendht")

    dht = opendht.DhtRunner()
    config = opendht.DhtConfig()
    config.setRateLimit(-1, -1)
    dht.run(port=0, ipv4="127.0.0.1", config=config)
    if bootstrap:
        host, _, port = bootstrap.rpartition(":")
        dht.bootstrap(host, port)
    return dht


def infoHash(key: bytes) -> Any:
    opendht = importlib.import_module("opendht")

    return opendht.InfoHash(hashlib.sha1(key).hexdigest().encode())


def runOps(ops: list[Op], concurrency: int, timeout: float) -> Phase:
    """Start ``ops`` with at most ``concurrency`` outstanding.  An op is
    started with a completion callback, called (from OpenDHT's thread)
    with True for a right answer, False for a wrong one; an op that raises
    or calls back with None is an error."""
    phase = Phase()
    slots = threading.Semaphore(max(1, concurrency))
    lock = threading.Lock()
    allDone = threading.Event()
    state = {"outstanding": len(ops)}
    cpu0 = time.process_time()

    def start(op: Op) -> None:
        t0 = time.monotonic()

        def completed(ok: bool | None) -> None:
            elapsed = time.monotonic() - t0
            with lock:
                if ok is None:
                    phase.errors.append("the operation did not complete")
                else:
                    phase.latencies.append(elapsed)
                    if not ok:
                        phase.mismatches += 1
                state["outstanding"] -= 1
                if state["outstanding"] == 0:
                    allDone.set()
            slots.release()

        try:
            op(completed)
        except Exception as exc:
            with lock:
                phase.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                state["outstanding"] -= 1
                if state["outstanding"] == 0:
                    allDone.set()
            slots.release()

    phase.began = time.monotonic()
    deadline = phase.began + timeout
    if not ops:
        allDone.set()
    for op in ops:
        if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break
        start(op)
    allDone.wait(max(0.0, deadline - time.monotonic()))
    with lock:
        if not allDone.is_set():
            phase.errors.append(f"the phase timed out with {state['outstanding']} operations left")
        phase.ended = time.monotonic()
    phase.cpu = time.process_time() - cpu0
    return phase


def client(args: argparse.Namespace) -> None:
    opendht = importlib.import_module("opendht")

    pairs = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in json.loads(args.workload_json)]
    dht = runner(args.bootstrap)
    # Let the runner learn the network before it is measured.
    time.sleep(args.settle)
    say({"ready": True, "pid": os.getpid()})

    # The DHT keys are made before the phases, as the other systems' are.
    hashes = {key: infoHash(key) for key, _ in pairs}

    def store(key: bytes, value: bytes) -> Op:
        where = hashes[key]

        def op(completed: Completion) -> None:
            def done(ok: bool, nodes: Any) -> None:
                completed(True if ok else None)

            dht.put(where, opendht.Value(value), done)

        return op

    def fetch(key: bytes, value: bytes) -> Op:
        where = hashes[key]

        def op(completed: Completion) -> None:
            found: list[bytes] = []

            def got(v: Any) -> bool:
                found.append(v.data)
                return True

            def done(ok: bool, nodes: Any) -> None:
                completed((value in found) if ok else None)

            dht.get(where, got, done)

        return op

    def warm(key: bytes) -> Op:
        where = hashes[key]

        def op(completed: Completion) -> None:
            dht.get(where, lambda v: True, lambda ok, nodes: completed(True))

        return op

    rng = random.Random(args.seed)
    for line in sys.stdin:
        line = line.strip()
        if line == "store":
            phase = runOps([store(k, v) for k, v in pairs], args.concurrency, args.phase_timeout)
            say({"phase": "store", **phase.toJson()})
        elif line == "warmup":
            phase = runOps([warm(k) for k, _ in pairs], args.concurrency, args.phase_timeout)
            say({"phase": "warmup", **phase.toJson()})
        elif line == "fetch":
            ops = [fetch(k, v) for k, v in pairs]
            rng.shuffle(ops)
            phase = runOps(ops, args.concurrency, args.phase_timeout)
            say({"phase": "fetch", **phase.toJson()})
        else:
            say({"unknown": line})
    dht.join()


def node(args: argparse.Namespace) -> None:
    dht = runner(args.bootstrap)
    say({"ready": True, "port": dht.getBound().getPort(), "pid": os.getpid()})
    for _ in sys.stdin:
        say({"alive": True})
    dht.join()


def main(argv: list[str] | None = None) -> int:
    args = dhtChildArguments(
        "OpenDHT node or driver of storage.py",
        argv,
        lambda parser: parser.add_argument(
            "--settle", type=float, default=1.0, help="client: seconds before ready"
        ),
    )
    # The lifetime bound: a timer that ends the process whatever it does.
    timer = threading.Timer(args.lifetime, lambda: os._exit(2))
    timer.daemon = True
    timer.start()
    try:
        node(args) if args.mode == "node" else client(args)
    except Exception as exc:
        say({"fatal": f"{type(exc).__name__}: {exc}"})
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
