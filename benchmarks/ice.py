"""ICE Attach setup time in the NAT lab (RFC 6940 section 6.5.1), per
selected pair type: host, srflx and relay.

Run by hand, as root (network namespaces):
``python3 benchmarks/ice.py [--peers N] [--json FILE]``.  It builds the
NAT lab (:func:`reload.natlab.startNatOverlay`: a public bootstrap peer, a
public TURN peer, N peers alternately behind the friendly and the hostile
NAT), waits for the ring, then reads every peer's ``nat.setupTimes``: the
seconds from the start of an Attach's ICE checks (TURN permissions
included) to the selected pair, plus the DTLS handshake on the side that
opens the link.  It prints p50/p99 per pair type and writes JSON.

Not measured: NO-ICE links (they keep no setup time), and messages per
second over a relayed link against a direct one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reload.natlab import NatLab, NatPeerLab, natLabAvailable, startNatOverlay


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=6, help="NATed peers (default 6)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = parser.parse_args()
    why = natLabAvailable()
    if why is not None:
        print(f"benchmarks/ice.py: {why}", file=sys.stderr)
        return 1
    environment = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    environment["PYTHONPATH"] = root + os.pathsep + environment.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as directory:
        net = NatLab().build()
        lab = NatPeerLab(Path(directory), net, extraArgs=["--user", "bench@example.org"],
                         environment=environment)  # fmt: skip
        try:
            startNatOverlay(lab, args.peers)
            lab.waitConverged(120)
            time.sleep(3)
            times: dict[str, list[float]] = {}
            for status in lab.statuses():
                for kind, values in (status.get("nat") or {}).get("setupTimes", {}).items():
                    times.setdefault(kind, []).extend(values)
        finally:
            lab.stop()
            net.teardown()
    rows = {
        kind: {
            "count": len(values),
            "p50_ms": round(1000 * percentile(values, 0.5), 1),
            "p99_ms": round(1000 * percentile(values, 0.99), 1),
        }
        for kind, values in sorted(times.items())
    }
    print(f"{'pair type':10} {'links':>6} {'p50 ms':>9} {'p99 ms':>9}")
    for kind, row in rows.items():
        print(f"{kind:10} {row['count']:6} {row['p50_ms']:9.1f} {row['p99_ms']:9.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"peers": args.peers, "setup": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
