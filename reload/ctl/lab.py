"""``reloadctl lab``: a local overlay of real peers, for trying things out.

``reloadctl lab --peers N`` starts N ``twistd reload`` processes on
127.0.0.1 in a directory (a fresh self-signed overlay), shows progress
until the ring has converged, prints how to reach each peer and keeps them
running until Ctrl-C; ``--detach`` leaves them running instead, to be
stopped later with ``reloadctl lab stop``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from reload.lab import Lab


def _progress(message: str) -> None:
    print(f"\r  {message}    ", end="", file=sys.stderr, flush=True)


def cmdLab(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if (directory / "lab.json").exists() and Lab.load(directory).peers:
        print(
            f"reloadctl: a lab is running in {directory}; `reloadctl lab stop` first",
            file=sys.stderr,
        )
        return 1
    lab = Lab(
        directory,
        basePort=args.base_port or None,
        adminBasePort=args.admin_base_port or None,
    )
    print(f"Starting {args.peers} peers in {directory} ...", file=sys.stderr)
    try:
        lab.start(args.peers, _progress)
        took = lab.waitConverged(args.timeout, _progress)
    except (TimeoutError, RuntimeError) as exc:
        print(f"\nreloadctl: {exc}", file=sys.stderr)
        lab.stop()
        return 1
    print(f"\nRing converged {took:.1f} s after the last peer started.\n", file=sys.stderr)
    _table(lab)
    if args.detach:
        print(f"\nPeers keep running; stop them with: reloadctl lab stop --dir {directory}")
        return 0
    print("\nPress Ctrl-C to stop the lab.", file=sys.stderr)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    try:
        while not stopping and any(lab.alive(p) for p in lab.peers):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("\nStopping the lab ...", file=sys.stderr)
    lab.stop()
    return 0


def _table(lab: Lab) -> None:
    print(f"{'peer':>4}  {'Node-ID':32}  {'links on':15}  admin API")
    for peer in lab.peers:
        status: dict[str, Any] = lab.status(peer)
        print(f"{peer.index:>4}  {status.get('nodeId', '?'):32}  {peer.address:15}  {peer.admin}")
    first = lab.peers[0]
    print(f"\nTry: reloadctl ring --admin {first.admin}")
    print(f"     reloadctl ping --admin {first.admin} --name alice@example.org")


def cmdLabStop(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not (directory / "lab.json").exists():
        print(f"reloadctl: no lab in {directory}", file=sys.stderr)
        return 1
    lab = Lab.load(directory)
    count = len(lab.peers)
    lab.stop()
    print(f"Stopped {count} peers in {directory}.")
    return 0


def addLabCommands(sub: Any) -> None:
    lab = sub.add_parser("lab", help="run a local overlay of N real peers on 127.0.0.1")
    lab.add_argument("--peers", type=int, default=5, help="how many peers (default 5)")
    lab.add_argument("--dir", default="reload-lab", help="lab directory (default reload-lab)")
    lab.add_argument(
        "--base-port", type=int, default=16084, help="first link port (0: any free ports)"
    )
    lab.add_argument(
        "--admin-base-port", type=int, default=18084, help="first admin API port (0: any free)"
    )
    lab.add_argument("--timeout", type=float, default=120, help="seconds to wait for the ring")
    lab.add_argument("--detach", action="store_true", help="leave the peers running and return")
    lab.set_defaults(func=cmdLab)
    labSub = lab.add_subparsers(dest="labCommand", metavar="stop")
    stop = labSub.add_parser("stop", help="stop the peers of a lab")
    stop.add_argument("--dir", default="reload-lab", help="lab directory (default reload-lab)")
    stop.set_defaults(func=cmdLabStop)
