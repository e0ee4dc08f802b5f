"""ReDiR (RFC 7374) in the plugin harness (issue 18), and lookups per
second against a lab of real peers.

Run by hand, not by the test suite:

    python3 benchmarks/redir.py [--peers 1000] [--providers 1,10,100,1000]
        [--keys 200] [--seed 1] [--max-message-size BYTES] [--max-count N]
        [--json redir.json] [--plot docs/redir-sim.png]
    python3 benchmarks/redir.py --from-json redir.json [--plot FILE]
    python3 benchmarks/redir.py --lab 20 [--lab-providers 5] [--json FILE]

The simulation is the REDIR usage's own (``usages/redirsim.py``, also
``python -m reload.sim usage REDIR``): its docstring says what is measured
and how.  This script adds the plot and the real-process lab
(``benchmarks/_redir_lab.py``).

``--plot FILE`` needs matplotlib, a benchmark-only dependency:
``python3 -m pip install matplotlib``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# This checkout's reload and usages, whatever is installed.
sys.path.insert(0, str(REPO))

from usages.redirsim import parser, run, table  # noqa: E402


def plot(result: dict[str, Any], path: str) -> None:
    """Three panels by provider count: lookups and registrations that
    succeeded, Fetches per lookup, and records per peer against the naive
    design."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    counts = [run["providers"] for run in runs]
    figure, (ok, fetches, records) = plt.subplots(1, 3, figsize=(13, 3.8), dpi=72)
    for key, style, label in (
        ("beforeRefresh", "o--", "lookups before refresh"),
        ("warm", "s-", "lookups after (warm)"),
    ):
        ok.plot(
            counts, [100 * r[key]["correct"] / r[key]["lookups"] for r in runs], style, label=label
        )
    ok.plot(
        counts,
        [100 - 100 * r["registration"]["failed"] / r["providers"] for r in runs],
        "^:",
        label="registrations stored",
    )
    ok.set_ylabel("% correct / succeeded")
    ok.set_title("Correctness")
    for mode, style in (("cold", "o--"), ("warm", "s-")):
        fetches.plot(counts, [r[mode]["fetchesMean"] for r in runs], style, label=f"{mode} mean")
        fetches.plot(
            counts, [r[mode]["fetchesP99"] for r in runs], style, alpha=0.4, label=f"{mode} p99"
        )
    fetches.plot(
        counts, [r["warm"]["requestsMean"] for r in runs], "^:", label="warm requests mean"
    )
    fetches.set_ylabel("per lookup")
    fetches.set_title("Tree-node Fetches per lookup")
    records.plot(counts, [r["records"]["maxPerPeer"] for r in runs], "o-", label="ReDiR max")
    records.plot(counts, [r["records"]["meanPerPeer"] for r in runs], "o--", label="ReDiR mean")
    records.plot(counts, [r["naive"]["maxPerPeer"] for r in runs], "s-", label="naive max")
    records.plot(counts, [r["naive"]["meanPerPeer"] for r in runs], "s--", label="naive mean")
    records.set_yscale("log")
    records.set_ylabel("records per peer")
    records.set_title("REDIR records held per peer")
    for axes in (ok, fetches, records):
        axes.set_xscale("log")
        axes.set_xlabel(f"providers ({result['peers']:,} peers)")
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> None:
    p = parser()
    p.prog = "benchmarks/redir.py"
    p.add_argument("--plot", metavar="FILE", help="also draw them (PNG, needs matplotlib)")
    p.add_argument(
        "--from-json", metavar="FILE", help="print and draw the results of an earlier --json run"
    )
    p.add_argument(
        "--lab",
        type=int,
        metavar="PEERS",
        help="instead: lookups per second through the admin API of a lab of PEERS real peers",
    )
    p.add_argument("--lab-providers", type=int, default=5, help="providers in the lab")
    p.add_argument("--lab-lookups", type=int, default=2000, help="lookups to time")
    p.add_argument("--lab-clients", type=int, default=8, help="concurrent HTTP clients")
    args = p.parse_args()
    if args.lab:
        from _redir_lab import measure

        lab = measure(
            args.lab, args.lab_providers, args.lab_lookups, args.lab_clients, seed=args.seed
        )
        print(" ".join(f"{key}={value}" for key, value in lab.items()))
        if args.json:
            Path(args.json).write_text(json.dumps({"redirLab": lab}, indent=2) + "\n")
        return
    if args.from_json:
        earlier: dict[str, Any] = json.loads(Path(args.from_json).read_text())["redir"]
        print(table(earlier))
        if args.plot:
            plot(earlier, args.plot)
        return
    result = run(args)
    if args.plot:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
