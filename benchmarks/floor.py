"""The floor under issue 7's storage targets: what the required stack alone does.

Run by hand, not by the test suite (about a minute with the defaults):

    python3 benchmarks/floor.py [--nodes 50] [--ops 5000] [--concurrency 32]
        [--json floor.json]

``benchmarks/storage.py`` measures reload.  This measures a skeleton with
the same shape and none of RELOAD's logic (``_floornode.py`` says exactly
what it does): ``--nodes`` processes on 127.0.0.1 and one load-driver
process, TLS links between them (Twisted and pyOpenSSL), every message
signed and verified with ECDSA P-256, every value signed by its writer and
verified by each node that stores it and by the fetcher, each stored copy
committed to the node's SQLite file, a Store copied to the responsible
node's two successors before it is answered.  Per Store: 7 signatures, 9
verifications, 3 commits, 3 TLS round trips; per Fetch: 2 signatures, 3
verifications, one SELECT, one round trip.  The driver keeps
``--concurrency`` operations outstanding, stores ``--ops`` random keys,
then fetches each once in a shuffled order, checking every value.

Whatever rate this skeleton reaches is an upper bound for any RELOAD
implementation on this machine with this stack and this workload: RELOAD
does all of this work and more (forwarding headers, link-layer ACKs,
transactions, data models, access control).  Also printed: the CPU time per
operation of the nodes and of the driver (``/proc``), and the issue's
targets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import Child, closeAll, cpuTotals, memory  # noqa: E402

TARGETS = {"store": 1000.0, "fetch": 2000.0}
FETCH_P99_TARGET_MS = 10.0


def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    node = str(HERE / "_floornode.py")
    common = ["--count", str(args.nodes), "--directory", str(directory)]
    if args.acks:
        common.append("--acks")
    nodes = [
        Child([node, "--role", "node", "--index", str(i), *common], f"node {i}")
        for i in range(args.nodes)
    ]
    children = list(nodes)
    try:
        ports = [str(child.read(60)["port"]) for child in nodes]
        for child in nodes:
            child.tell("peers " + ",".join(ports))
        for child in nodes:
            child.read(60)
        driver = Child(
            [
                node,
                "--role",
                "driver",
                *common,
                "--ports",
                ",".join(ports),
                "--ops",
                str(args.ops),
                "--warmup",
                str(args.warmup),
                "--concurrency",
                str(args.concurrency),
                "--seed",
                str(args.seed),
            ],
            "driver",
        )
        children.append(driver)
        driver.read(60)
        driver.tell("warmup")
        driver.read(args.phase_timeout)
        results: dict[str, Any] = {}
        nodePids = [child.pid for child in nodes]
        results["memory_before"] = memory(nodePids)
        for phase in ("store", "fetch"):
            before = cpuTotals(nodePids), cpuTotals([driver.pid])
            driver.tell(phase)
            figures = driver.read(args.phase_timeout)
            after = cpuTotals(nodePids), cpuTotals([driver.pid])
            ops = max(1, figures["ops"])
            figures["per_second"] = figures["ops"] / figures["seconds"]
            figures["cpu_ms_per_op"] = {
                who: {
                    "user": (after[i][0] - before[i][0]) * 1000 / ops,
                    "system": (after[i][1] - before[i][1]) * 1000 / ops,
                }
                for i, who in enumerate(("nodes", "driver"))
            }
            results[phase] = figures
        results["memory"] = memory(nodePids)
        results["nodes"] = len(nodePids)
        return results
    finally:
        closeAll(children)


def printTable(results: dict[str, Any]) -> None:
    print(
        f"{'operation':<10}{'per second':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU ms/op nodes':>17}{'driver':>8}{'target':>8}  met"
    )
    for phase in ("store", "fetch"):
        f = results[phase]
        cpu = f["cpu_ms_per_op"]
        nodes = cpu["nodes"]["user"] + cpu["nodes"]["system"]
        driver = cpu["driver"]["user"] + cpu["driver"]["system"]
        target = TARGETS[phase]
        met = "yes" if f["per_second"] >= target else "NO"
        print(
            f"{phase:<10}{f['per_second']:>12,.0f}{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}"
            f"{nodes:>17.2f}{driver:>8.2f}{target:>8,.0f}  {met}"
        )
    p99 = results["fetch"]["p99_ms"]
    print(
        f"fetch p99 {p99:.1f} ms against the target of {FETCH_P99_TARGET_MS:.0f} ms:"
        f" {'met' if p99 <= FETCH_P99_TARGET_MS else 'NOT met'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured stores and fetches")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--acks",
        action="store_true",
        help="acknowledge every message on its link, as RFC 6940 section 6.6.2 asks",
    )
    parser.add_argument("--phase-timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.nodes < 3:
        parser.error("a Store needs the responsible node and two successors: --nodes 3 or more")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="reload-floor-") as directory:
        started = time.monotonic()
        results = measure(args, Path(directory))
    results["settings"] = {
        "nodes": args.nodes,
        "ops": args.ops,
        "concurrency": args.concurrency,
        "acks": args.acks,
        "cpus": os.cpu_count(),
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "seconds": time.monotonic() - started,
    }
    printTable(results)
    print(
        f"{args.nodes} node processes and 1 driver, {args.ops} keys, concurrency"
        f" {args.concurrency}, link ACKs {'on' if args.acks else 'off'};"
        f" load average {load:.2f} before,"
        f" {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs"
    )
    errors = results["store"]["errors"] + results["fetch"]["errors"]
    if errors:
        print(f"{errors} operations gave a wrong answer: not a result", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
