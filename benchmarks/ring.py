"""CHORD-RELOAD in the simulator (issue 6): hop counts, scale, failures, churn.

Run by hand, not by the test suite (it takes a quarter of an hour):

    python3 benchmarks/ring.py [--json ring.json] [--only hops,scale,...] [--seed 1]

Each part runs in a fresh interpreter (``--part NAME``), one after the
other, so the wall-clock figures are not disturbed and memory is measured
from a clean start.  Everything runs the real transport and CHORD-RELOAD
code over simulated links (:mod:`reload.sim`); only the ``signatures`` and
``tls`` parts turn the costly switches on.

Parts and targets:

* ``hops``: 1,000 peers join one by one, one chord-ping-interval (3,600
  simulated seconds) of stabilisation, 10,000 Pings to random Resource-IDs.
  Hops are forwarding hops, the peers that forwarded the request (the
  length of the via list it arrives with): mean <= 4.4, p99 <= 7.  Every
  lookup must reach the responsible peer.  Memory per simulated node with
  ``tracemalloc`` (Python allocations after a full collection, divided by
  the number of peers): <= 200 kB.
* ``scale``: 10,000 peers join one by one, 300 simulated seconds of
  stabilisation, 100,000 lookups, all correct, within 600 s of wall-clock
  time.
* ``failure``: 1,000 peers, then 20% fail at once: >= 97% of 10,000
  lookups succeed before repair (the failed peers' links are gone, every
  maintenance message is held), 100% after 1,800 simulated seconds.
* ``churn``: 1,000 peers, 1,200 simulated seconds of joins, leaves and
  failures (0.5, 0.25 and 0.25 per second) with 10 lookups per second, then
  1,800 seconds to stabilise: 100% of 10,000 lookups correct.
* ``signatures`` and ``tls``: what the switches cost (no target).

``--topology all`` (or one topology name) instead runs the comparison of
issue 22 (:mod:`reload.sim.compare`) on every installed topology plugin,
each in a fresh interpreter, and prints them side by side:

    python3 benchmarks/ring.py --topology all --peers 1000 --lookups 1000 --age 24 \
        --json compare.json

``--age`` hours of quiet overlay come before the "aged" hops and idle
maintenance and before the churn (:func:`reload.sim.compare.compareTopology`).

Targets: ONE-HOP-RELOAD mean overlay links crossed <= 1.1 and maintenance
<= 1 message per peer per second at 10%/min churn; CHORD-SELF-TUNING less
idle maintenance than CHORD-RELOAD, lookup success >= 99% after churn.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reload.plugins import installedTopologies
from reload.sim.compare import compareTopology
from reload.sim.report import table, toJson
from reload.sim.scenarios import (
    SimSettings,
    Simulation,
    churnScenario,
    joinScenario,
    massFailureScenario,
)

PARTS = ("hops", "scale", "failure", "churn", "signatures", "tls")
KIB = 1024


def _progress(name: str) -> Callable[[str], None]:
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{name} {time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr)

    return say


def _rssMiB() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB


def partHops(seed: int) -> dict[str, Any]:
    say = _progress("hops")
    peers, lookups = 1000, 10000
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    # The collector left as it is: tuning it would keep garbage frozen.
    sim = Simulation(SimSettings(seed=seed, tuneGc=False))
    join = sim.joinPeers(peers)
    sim.settle()
    gc.collect()
    afterJoin = tracemalloc.get_traced_memory()[0] - base
    say(f"{peers} joined; stabilising for 3600 simulated seconds")
    sim.stabilise(3600.0)
    ring = sim.ringCheck()
    stats = sim.lookups(lookups)
    sim.settle()
    gc.collect()
    afterLookups, peak = tracemalloc.get_traced_memory()
    afterLookups -= base
    tracemalloc.stop()
    say("done")
    return {
        "peers": peers,
        "join": join.summary(),
        "ring": ring,
        "lookups": stats.summary(),
        "state": sim.state(),
        "memory": {
            "bytesPerNodeAfterJoin": round(afterJoin / peers),
            "bytesPerNodeAfterLookups": round(afterLookups / peers),
            "peakBytesPerNode": round((peak - base) / peers),
        },
        "wallSeconds": round(time.perf_counter() - started, 1),
        "note": "wall time under tracemalloc",
    }


def partScale(seed: int) -> dict[str, Any]:
    say = _progress("scale")
    peers, lookups = 10000, 100000
    started = time.perf_counter()
    cpu = time.process_time()
    rss = _rssMiB()
    sim, result = joinScenario(
        SimSettings(seed=seed), peers=peers, lookups=lookups, stabilise=300.0, progress=say
    )
    wall = time.perf_counter() - started
    result["wallSeconds"] = round(wall, 1)
    # The machine may be shared: the CPU time of this process alone.
    result["cpuSeconds"] = round(time.process_time() - cpu, 1)
    result["maxRssMiB"] = round(_rssMiB(), 1)
    result["rssBytesPerNode"] = round((_rssMiB() - rss) * KIB * KIB / peers)
    del sim
    return result


def partFailure(seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    _, result = massFailureScenario(
        SimSettings(seed=seed),
        peers=1000,
        fraction=0.2,
        lookups=10000,
        settle=1800.0,
        progress=_progress("failure"),
    )
    result["wallSeconds"] = round(time.perf_counter() - started, 1)
    return result


def partChurn(seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    _, result = churnScenario(
        SimSettings(seed=seed),
        peers=1000,
        duration=1200.0,
        joinRate=0.5,
        leaveRate=0.25,
        failRate=0.25,
        lookupRate=10.0,
        lookups=10000,
        settle=1800.0,
        progress=_progress("churn"),
    )
    result["wallSeconds"] = round(time.perf_counter() - started, 1)
    return result


def _switchCost(
    peers: int, lookups: int, seed: int, *, signatures: bool = False, tls: bool = False
) -> dict[str, Any]:
    out = {}
    for name, settings in (
        ("off", SimSettings(seed=seed)),
        ("on", SimSettings(seed=seed, signatures=signatures, tls=tls)),
    ):
        started = time.perf_counter()
        sim, result = joinScenario(settings, peers=peers, lookups=lookups)
        wall = time.perf_counter() - started
        out[name] = {
            "wallSeconds": round(wall, 2),
            "linkMessages": sim.network.messages,
            "messagesPerSecond": round(sim.network.messages / wall),
            "lookups": result["lookups"],
            "ring": result["ring"],
        }
    return out


def partSignatures(seed: int) -> dict[str, Any]:
    return {"peers": 200, **_switchCost(200, 2000, seed, signatures=True)}


def partTls(seed: int) -> dict[str, Any]:
    return {"peers": 50, **_switchCost(50, 500, seed, tls=True)}


RUNNERS: dict[str, Callable[[int], dict[str, Any]]] = {
    "hops": partHops,
    "scale": partScale,
    "failure": partFailure,
    "churn": partChurn,
    "signatures": partSignatures,
    "tls": partTls,
}


def runPart(name: str, seed: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``name`` in a fresh interpreter; its result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "part.json"
        command = [sys.executable, __file__, "--part", name, "--out", str(out), "--seed", str(seed)]
        command += extra
        subprocess.run(command, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.2f}%"


def _check(ok: bool) -> str:
    return "yes" if ok else "NO"


def rows(results: dict[str, Any]) -> list[list[object]]:
    """The table: what was measured, its value, the target, whether met."""
    out: list[list[object]] = []
    hops = results.get("hops")
    if hops:
        h = hops["lookups"]["hops"]
        memory = hops["memory"]["bytesPerNodeAfterLookups"] / KIB
        out += [
            ["1,000 peers: mean forwarding hops", h["mean"], "<= 4.4", _check(h["mean"] <= 4.4)],
            ["1,000 peers: p99 forwarding hops", h["p99"], "<= 7", _check(h["p99"] <= 7)],
            [
                "1,000 peers: mean links crossed (hops + 1)",
                hops["lookups"]["meanLinks"],
                "(info)",
                "",
            ],
            [
                "1,000 peers: lookups at the responsible peer",
                _pct(hops["lookups"]["successRate"]),
                "100%",
                _check(hops["lookups"]["successRate"] == 1.0),
            ],
            [
                "memory per simulated node (tracemalloc)",
                f"{memory:.1f} kB",
                "<= 200 kB",
                _check(memory <= 200),
            ],
        ]
    scale = results.get("scale")
    if scale:
        wall = scale["wallSeconds"]
        rate = scale["lookups"]["successRate"]
        out += [
            [
                "10,000 peers join + 100,000 lookups, wall clock (CPU)",
                f"{wall:.0f} s ({scale['cpuSeconds']:.0f} s)",
                "<= 600 s",
                _check(wall <= 600),
            ],
            [
                "10,000 peers: lookups correct after stabilisation",
                _pct(rate),
                "100%",
                _check(rate == 1.0),
            ],
            [
                "10,000 peers: mean / p99 forwarding hops",
                f"{scale['lookups']['hops']['mean']} / {scale['lookups']['hops']['p99']}",
                "(info)",
                "",
            ],
            [
                "10,000 peers: RSS per node (ru_maxrss)",
                f"{scale['rssBytesPerNode'] / KIB:.0f} kB",
                "(info)",
                "",
            ],
        ]
    failure = results.get("failure")
    if failure:
        before = failure["lookupsBeforeRepair"]["successRate"]
        after = failure["lookupsAfterRepair"]["successRate"]
        out += [
            [
                "20% fail at once: success before repair",
                _pct(before),
                ">= 97%",
                _check(before is not None and before >= 0.97),
            ],
            [
                "20% fail at once: success after repair",
                _pct(after),
                "100%",
                _check(after == 1.0),
            ],
        ]
    churn = results.get("churn")
    if churn:
        during = churn["churn"]["lookupsDuring"]["successRate"]
        after = churn["lookupsAfter"]["successRate"]
        out += [
            ["churn: success during churn", _pct(during), "(info)", ""],
            ["churn: success after stabilisation", _pct(after), "100%", _check(after == 1.0)],
        ]
    for name in ("signatures", "tls"):
        part = results.get(name)
        if part:
            off, on = part["off"], part["on"]
            out.append(
                [
                    f"{name} on, {part['peers']} peers: wall clock (off)",
                    f"{on['wallSeconds']} s ({off['wallSeconds']} s)",
                    "(info)",
                    "",
                ]
            )
    return out


def compareRows(results: list[dict[str, Any]]) -> list[list[object]]:
    """One row per topology: the issue 22 comparison."""
    out: list[list[object]] = []
    for r in results:
        h = r["lookups"]
        aged = r.get("aged") or {}
        agedLookups = aged.get("lookups")
        out.append(
            [
                r["topology"],
                r["peers"],
                f"{h['hops']['mean']} / {h['hops']['p99']}",
                h["meanLinks"],
                agedLookups["meanLinks"] if agedLookups else "-",
                _pct(h["successRate"]),
                r["idleMessagesPerPeerSecond"],
                aged.get("idleMessagesPerPeerSecond", "-"),
                r["churnMessagesPerPeerSecond"],
                r["lookupsAfterChurn"]["meanLinks"],
                _pct(r["lookupsAfterChurn"]["successRate"]),
                _pct(r["lookupsUnderFailure"]["successRate"]),
                f"{r['bytesPerNode'] / KIB:.0f} kB",
                r["wallSeconds"],
            ]
        )
    return out


COMPARE_HEADER = [
    "topology",
    "peers",
    "hops mean / p99",
    "links crossed",
    "aged",
    "lookups ok",
    "idle msg/peer/s",
    "aged",
    "churn msg/peer/s",
    "links after churn",
    "ok after churn",
    "ok, 20% failed",
    "memory/node",
    "wall s",
]


def plotCompare(results: list[dict[str, Any]], path: Path) -> bool:
    """A bar chart of the comparison, when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [r["topology"] for r in results]
    panels = [
        ("mean links crossed", [r["lookups"]["meanLinks"] for r in results]),
        ("idle msg/peer/s", [r["idleMessagesPerPeerSecond"] for r in results]),
        (
            "idle msg/peer/s, aged",
            [(r.get("aged") or {}).get("idleMessagesPerPeerSecond", 0) for r in results],
        ),
        ("churn msg/peer/s", [r["churnMessagesPerPeerSecond"] for r in results]),
        ("memory/node (kB)", [r["bytesPerNode"] / KIB for r in results]),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5))
    for axis, (title, values) in zip(axes, panels, strict=True):
        axis.bar(range(len(names)), values)
        axis.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--topology", help="'all' or a topology name: compare topologies (issue 22)"
    )
    parser.add_argument("--peers", type=int, default=1000, help="peers for --topology")
    parser.add_argument("--lookups", type=int, default=10000, help="lookups for --topology")
    parser.add_argument("--plot", type=Path, help="with --topology: write a PNG chart here")
    parser.add_argument(
        "--age",
        type=float,
        default=6.0,
        help="with --topology: hours the overlay runs idle before the aged measurements",
    )
    parser.add_argument("--part", choices=(*PARTS, "compare"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.part == "compare":
        assert args.out is not None
        result = compareTopology(
            args.topology,
            peers=args.peers,
            lookups=args.lookups,
            seed=args.seed,
            age=3600.0 * args.age,
            progress=_progress("compare"),
        )
        args.out.write_text(toJson(result))
        return 0
    if args.topology:
        names = sorted(installedTopologies()) if args.topology == "all" else [args.topology]
        extra = ("--peers", str(args.peers), "--lookups", str(args.lookups), "--age", str(args.age))
        compared = [runPart("compare", args.seed, ("--topology", n, *extra)) for n in names]
        print(table(compareRows(compared), COMPARE_HEADER))
        if args.plot is not None and plotCompare(compared, args.plot):
            print(f"plot: {args.plot}")
        if args.json:
            args.json.write_text(toJson({"benchmark": "ring-compare", "results": compared}))
        return 0
    if args.part:
        result = RUNNERS[args.part](args.seed)
        assert args.out is not None
        args.out.write_text(toJson(result))
        return 0

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    results: dict[str, Any] = {}
    for name in names:
        results[name] = runPart(name, args.seed)
    table_rows = rows(results)
    print(table(table_rows, ["measure", "value", "target", "met"]))
    if args.json:
        document = {
            "benchmark": "ring",
            "seed": args.seed,
            "machine": {
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
            },
            "table": [
                dict(zip(("measure", "value", "target", "met"), map(str, r), strict=True))
                for r in table_rows
            ],
            "results": results,
        }
        args.json.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
