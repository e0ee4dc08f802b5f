"""Attach setup time in the NAT lab (RFC 6940 section 6.5.1), per link
kind: NO-ICE and the ICE pair types host, srflx and relay; and messages
per second over a relayed link against a direct one.

Run by hand, as root (network namespaces):
``python3 benchmarks/ice.py [--peers N] [--json FILE]``.  It builds the
NAT lab (:func:`reload.natlab.startNatOverlay`: a public bootstrap peer, a
public TURN peer, N peers alternately behind the friendly and the hostile
NAT) and ``--public`` more public peers, waits for the ring, then reads
every peer's ``nat.setupTimes``: the
seconds from the start of an Attach's ICE checks (TURN permissions
included) to the selected pair, plus the DTLS handshake on the side that
opens the link; and ``nat.setupTimes["no-ice"]``: from the first
connection attempt of a NO-ICE Attach to the link up, on the connecting
side (public peers between themselves: the ``--public`` ones).  It prints p50/p99 per kind.

Then messages per second: ``--pings`` Pings (section 6.5.3) from one peer
to a neighbour it has a link to, through the admin API (``POST /ping``),
one after the other (each waits for its answer: round trips per second)
and from ``--parallel`` threads at once, over a link whose pair is
relayed, one whose pair is direct (host or srflx) and a NO-ICE link
between the two public peers.  The admin API's HTTP is in every figure
alike, so compare the rows, not the absolute numbers.  Writes JSON with
``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reload.natlab import NatLab, NatPeerLab, natLabAvailable, startNatOverlay


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def findLinks(lab: NatPeerLab) -> dict[str, tuple[Any, str]]:
    """One (peer, neighbour Node-ID) per link kind: "relay", "direct"
    (an ICE host or srflx pair) and "no-ice" (public peers' link)."""
    found: dict[str, tuple[Any, str]] = {}
    for peer in lab.peers:
        status = lab.status(peer)
        nat = status.get("nat") or {}
        links = status.get("links") or {}
        pairs = nat.get("pairTypes") or {}
        for nodeId in links:
            kind = pairs.get(nodeId)
            if kind == "relay":
                found.setdefault("relay", (peer, nodeId))
            elif kind in ("host", "srflx"):
                found.setdefault("direct", (peer, nodeId))
            elif kind is None and nat.get("behindNat") is False:
                found.setdefault("no-ice", (peer, nodeId))
    return found


def pingRate(lab: NatPeerLab, peer: Any, nodeId: str, count: int, parallel: int) -> float:
    """Pings answered per second, ``parallel`` at a time."""

    def ping(_: int) -> None:
        lab.adminCall(peer, "POST", f"/ping?destination={nodeId}", b"", timeout=30)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(ping, range(count)))
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=6, help="NATed peers (default 6)")
    parser.add_argument(
        "--public", type=int, default=2, help="extra public peers, for NO-ICE Attaches (default 2)"
    )
    parser.add_argument("--pings", type=int, default=100, help="Pings per run (default 100)")
    parser.add_argument("--parallel", type=int, default=8, help="Pings at once (default 8)")
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
            sides = startNatOverlay(lab, args.peers)
            extra = [
                lab.startPeerOn("public", bootstrap=sides["public"][0]) for _ in range(args.public)
            ]
            lab.waitFor(lambda s: s.get("state") == "joined", extra, 90)
            lab.waitConverged(120)
            time.sleep(3)
            times: dict[str, list[float]] = {}
            for status in lab.statuses():
                for kind, values in (status.get("nat") or {}).get("setupTimes", {}).items():
                    times.setdefault(kind, []).extend(values)
            rates: dict[str, dict[str, float]] = {}
            for kind, (peer, nodeId) in sorted(findLinks(lab).items()):
                rates[kind] = {
                    "sequential": round(pingRate(lab, peer, nodeId, args.pings, 1), 1),
                    "parallel": round(pingRate(lab, peer, nodeId, args.pings, args.parallel), 1),
                }
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
        if values
    }
    print(f"{'pair type':10} {'links':>6} {'p50 ms':>9} {'p99 ms':>9}")
    for kind, row in rows.items():
        print(f"{kind:10} {row['count']:6} {row['p50_ms']:9.1f} {row['p99_ms']:9.1f}")
    print()
    print(f"{'link':10} {'pings/s one at a time':>22} {f'pings/s {args.parallel} at once':>20}")
    for kind, rate in rates.items():
        print(f"{kind:10} {rate['sequential']:22.1f} {rate['parallel']:20.1f}")
    if args.json:
        result = {"peers": args.peers, "pings": args.pings, "parallel": args.parallel,
                  "setup": rows, "pingsPerSecond": rates}  # fmt: skip
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
