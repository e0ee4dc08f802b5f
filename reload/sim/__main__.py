"""``python -m reload.sim``: run a simulation scenario and show its results.

::

    python -m reload.sim join --peers 1000 --lookups 10000 --seed 1 --json out.json
    python -m reload.sim churn --peers 500 --duration 1200 --join-rate 0.2 \\
        --leave-rate 0.1 --fail-rate 0.1 --lookup-rate 5 --lookups 5000 --settle 1800
    python -m reload.sim failure --peers 1000 --fraction 0.2 --lookups 10000 --settle 1800
    python -m reload.sim usage REDIR --peers 1000 --providers 1,10,100,1000

``usage NAME ARGUMENTS...`` runs the scenarios of an installed usage plugin
that has some (:class:`reload.interfaces.IUsageSimulation`);
``usage NAME --help`` lists its arguments.

It prints the hop-count histograms and success rates; ``--json FILE``
writes the full result.  The JSON depends on the arguments only (same seed,
same JSON) unless ``--timing`` adds the wall-clock time and memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reload.interfaces import IUsageSimulation
from reload.plugins import PluginError, loadUsages
from reload.sim.network import DEFAULT_LATENCY
from reload.sim.report import render, writeJson
from reload.sim.scenarios import (
    SimSettings,
    churnScenario,
    joinScenario,
    massFailureScenario,
)

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m reload.sim",
        description="Deterministic in-process RELOAD overlay simulator (any installed topology).",
    )
    sub = top.add_subparsers(dest="scenario", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--peers", type=int, default=1000, help="peers to join (default 1000)")
        p.add_argument("--lookups", type=int, default=10000, help="lookups per measurement")
        p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        p.add_argument("--batch", type=int, default=1, help="joins in flight at once")
        p.add_argument(
            "--stabilise",
            type=float,
            default=0.0,
            help="simulated seconds of stabilisation after the joins",
        )
        p.add_argument("--latency", type=float, default=DEFAULT_LATENCY, help="link latency (s)")
        p.add_argument("--jitter", type=float, default=0.0, help="per-link latency spread")
        p.add_argument(
            "--detection", type=float, default=0.0, help="seconds until a failure is seen"
        )
        p.add_argument("--signatures", action="store_true", help="real certificates and signatures")
        p.add_argument("--tls", action="store_true", help="real TLS links (slow)")
        p.add_argument("--update-interval", type=float, default=600.0)
        p.add_argument("--ping-interval", type=float, default=3600.0)
        p.add_argument(
            "--no-reactive", action="store_true", help="chord-reactive false (periodic recovery)"
        )
        p.add_argument(
            "--topology",
            default="CHORD-RELOAD",
            help="the installed topology plugin the peers run (default CHORD-RELOAD)",
        )
        p.add_argument("--json", type=Path, help="write the result to this file")
        p.add_argument("--timing", action="store_true", help="add wall-clock time to the JSON")
        p.add_argument("--quiet", action="store_true", help="no progress lines")

    join = sub.add_parser("join", help="N peers join, then lookups")
    common(join)
    join.add_argument("--concurrency", type=int, default=1000, help="lookups in flight")
    join.add_argument("--method", choices=("ping", "routequery"), default="ping")

    churn = sub.add_parser("churn", help="joins, leaves and failures, then lookups")
    common(churn)
    churn.add_argument("--duration", type=float, default=1200.0, help="simulated seconds")
    churn.add_argument("--join-rate", type=float, default=0.2, help="joins per second")
    churn.add_argument("--leave-rate", type=float, default=0.1, help="leaves per second")
    churn.add_argument("--fail-rate", type=float, default=0.1, help="failures per second")
    churn.add_argument("--lookup-rate", type=float, default=5.0, help="lookups per second")
    churn.add_argument("--settle", type=float, default=1800.0, help="seconds before lookups")

    failure = sub.add_parser("failure", help="a fraction of the peers fail at once")
    common(failure)
    failure.add_argument("--fraction", type=float, default=0.2, help="share that fails")
    failure.add_argument("--settle", type=float, default=1800.0, help="seconds of repair")

    usage = sub.add_parser(
        "usage",
        help="a usage plugin's own scenarios (usage NAME --help)",
        add_help=False,
    )
    usage.add_argument("name", metavar="NAME", help="the usage, e.g. REDIR")
    usage.add_argument("arguments", nargs=argparse.REMAINDER, help="the usage's arguments")
    return top


def runUsage(name: str, arguments: Sequence[str]) -> int:
    """``usage NAME ARGUMENTS...``: the installed usage's simulation."""
    try:
        [plugin] = loadUsages([name])
    except PluginError as exc:
        print(f"python -m reload.sim usage: {exc}", file=sys.stderr)
        return 2
    if not IUsageSimulation.providedBy(plugin):
        print(f"python -m reload.sim usage: the usage {name} has no simulation", file=sys.stderr)
        return 2
    status: int = IUsageSimulation(plugin).simulate(list(arguments))
    return status


def settingsOf(args: argparse.Namespace) -> SimSettings:
    return SimSettings(
        seed=args.seed,
        latency=args.latency,
        jitter=args.jitter,
        detection=args.detection,
        signatures=args.signatures,
        tls=args.tls,
        updateInterval=args.update_interval,
        pingInterval=args.ping_interval,
        reactive=not args.no_reactive,
        topology=args.topology,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the scenario ``args`` name; its result."""
    settings = settingsOf(args)
    started = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr)

    common: dict[str, Any] = {
        "peers": args.peers,
        "batch": args.batch,
        "stabilise": args.stabilise,
        "progress": progress,
    }
    if args.scenario == "join":
        _, result = joinScenario(
            settings,
            lookups=args.lookups,
            concurrency=args.concurrency,
            method=args.method,
            **common,
        )
    elif args.scenario == "churn":
        _, result = churnScenario(
            settings,
            duration=args.duration,
            joinRate=args.join_rate,
            leaveRate=args.leave_rate,
            failRate=args.fail_rate,
            lookupRate=args.lookup_rate,
            lookups=args.lookups,
            settle=args.settle,
            **common,
        )
    else:
        _, result = massFailureScenario(
            settings,
            fraction=args.fraction,
            lookups=args.lookups,
            settle=args.settle,
            **common,
        )
    if args.timing:
        result["timing"] = {
            "wallSeconds": round(time.perf_counter() - started, 3),
            "maxRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.scenario == "usage":
        return runUsage(args.name, args.arguments)
    result = run(args)
    print(render(result))
    if args.json is not None:
        writeJson(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
