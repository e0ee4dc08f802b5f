"""The plugin authors' in-memory overlay (``reload.testing.MemoryOverlay``):
how long it takes to build one of N nodes running a usage, and to fetch a
value from every node.  Issue 16 asks for "fast enough for 100 nodes in a
unit test".

Run by hand, not by the test suite:

    python3 benchmarks/harness.py [--sizes 10,50,100] [--json harness.json]

Every node is the real transport, storage, CHORD-RELOAD topology and the
worked example usage GREETER (examples/greeter), with certificates from
the simulation's CA and every message and value signed and verified.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# This checkout's reload, whatever is installed.
sys.path.insert(0, str(REPO))

from reload.testing import MemoryOverlay  # noqa: E402


def _greeter() -> Any:
    path = REPO / "examples" / "greeter" / "usages" / "greeter.py"
    spec = importlib.util.spec_from_file_location("greeter_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(size: int, seed: int) -> dict[str, Any]:
    greeter = _greeter()
    started = time.perf_counter()
    cpu = time.process_time()
    with MemoryOverlay(
        size, usages=[greeter.greeter], options={"GREETER": {"greeting": "hi"}}, seed=seed
    ) as overlay:
        built = time.perf_counter() - started
        writer = overlay.nodes[size // 2]
        resource = writer.api.resourceId(writer.nodeId)
        fetchStart = time.perf_counter()
        for node in overlay.nodes:
            [kind] = overlay.wait(node.api.fetch(resource, [greeter.GREETING_KIND_ID]))
            if kind.values[0].value != b"hi":
                raise AssertionError(f"node {node.nodeId.hex()} fetched {kind.values}")
        fetched = time.perf_counter() - fetchStart
        simulated = overlay.now
    return {
        "nodes": size,
        "buildSeconds": round(built, 3),
        "fetchAllSeconds": round(fetched, 3),
        "cpuSeconds": round(time.process_time() - cpu, 3),
        "simulatedSeconds": round(simulated - 1_800_000_000.0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,100", help="overlay sizes (default 10,50,100)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    rows = [measure(int(size), args.seed) for size in args.sizes.split(",")]
    header = f"{'nodes':>6} {'build s':>9} {'fetch all s':>12} {'cpu s':>8} {'simulated s':>12}"
    print(header)
    for row in rows:
        print(
            f"{row['nodes']:>6} {row['buildSeconds']:>9.2f} {row['fetchAllSeconds']:>12.2f}"
            f" {row['cpuSeconds']:>8.2f} {row['simulatedSeconds']:>12.1f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"harness": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
