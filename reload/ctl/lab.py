"""``reloadctl lab``: a local overlay of real peers, for trying things out.

``reloadctl lab --peers N`` starts N ``twistd reload`` processes on
127.0.0.1 in a directory (a fresh self-signed overlay), shows progress
until the ring has converged, prints how to reach each peer and keeps them
running until Ctrl-C; ``--detach`` leaves them running instead, to be
stopped later with ``reloadctl lab stop``.  ``--capture FILE`` records the
lab's links for Wireshark (see :mod:`reload.capture`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from twisted.python.usage import UsageError as TwistedUsageError

from reload.capture import CaptureError, LabCapture, findTools
from reload.config import KindConfig
from reload.ctl.options import intRange, seconds
from reload.lab import MAX_LAB_PEERS, Lab
from reload.options import parseKind
from reload.plugins import PluginError, loadUsages
from reload.security.keylog import KEYLOG_VARIABLE
from reload.usageruntime import UsageError, usageKindConfigs


def _progress(message: str) -> None:
    """Progress on a terminal only (a log or a pipe gets the result)."""
    if sys.stderr.isatty():
        print(f"\r  {message}    ", end="", file=sys.stderr, flush=True)


def _say(args: argparse.Namespace, message: str) -> None:
    """A line for a person (standard error with --json, which keeps
    standard output for the JSON)."""
    print(message, file=sys.stderr if args.json else sys.stdout)


def _peersJson(lab: Lab) -> list[dict[str, Any]]:
    return [
        {
            "index": peer.index,
            "nodeId": lab.status(peer).get("nodeId"),
            "address": peer.address,
            "admin": peer.admin,
            "tokenFile": str(peer.tokenFile),
            "dataDir": peer.dataDir,
            "pid": peer.pid,
        }
        for peer in lab.peers
    ]


def cmdLab(args: argparse.Namespace) -> int:
    if args.nat:
        from reload.ctl.natlabcmd import cmdNatLab

        return cmdNatLab(args)
    directory = Path(args.dir)
    if (directory / "lab.json").exists() and Lab.load(directory).peers:
        print(
            f"reloadctl: a lab is running in {directory}; `reloadctl lab stop` first",
            file=sys.stderr,
        )
        return 1
    extraArgs = ["--link-protocol", args.link_protocol]
    if args.trace_messages:
        extraArgs.append("--trace-messages")
    for name in args.usage:
        extraArgs += ["--usage", name]
    for option in args.usage_option:
        extraArgs += ["--usage-option", option]
    if args.user is not None:
        extraArgs += ["--user", args.user]
    try:
        # The lab creates its overlay: it lists the Kinds of the usages its
        # peers run and those given with --kind (section 11.1).
        kinds = [*usageKindConfigs(loadUsages(args.usage)), *args.kind]
    except (PluginError, UsageError) as exc:
        print(f"reloadctl: {exc}", file=sys.stderr)
        return 1
    lab = Lab(
        directory,
        basePort=args.base_port or None,
        adminBasePort=args.admin_base_port or None,
        extraArgs=extraArgs,
        kinds=kinds,
    )
    capture: LabCapture | None = None
    LabCapture.discard(lab.directory)
    if args.capture is not None:
        try:
            capture = _startCapture(lab, args)
        except CaptureError as exc:
            print(f"reloadctl: {exc}", file=sys.stderr)
            return 1
    print(f"Starting {args.peers} peers in {directory} ...", file=sys.stderr)
    try:
        lab.start(args.peers, _progress)
        took = lab.waitConverged(args.timeout, _progress)
    except (TimeoutError, RuntimeError) as exc:
        print(f"\nreloadctl: {exc}", file=sys.stderr)
        _stop(lab, capture)
        return 1
    except KeyboardInterrupt:
        print("\nStopping the lab ...", file=sys.stderr)
        _stop(lab, capture)
        return 1
    print(f"\nRing converged {took:.1f} s after the last peer started.\n", file=sys.stderr)
    if args.json:
        print(json.dumps({"dir": str(directory), "peers": _peersJson(lab)}, indent=2), flush=True)
    else:
        _table(lab)
    if args.detach:
        if capture is not None:
            _say(
                args,
                f"\nCapturing the links into {capture.output}; `reloadctl lab stop` writes it.",
            )
        _say(args, f"\nPeers keep running; stop them with: reloadctl lab stop --dir {directory}")
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
    return _stop(lab, capture)


def _startCapture(lab: Lab, args: argparse.Namespace) -> LabCapture:
    """Capture the links of the peers about to start; they get the key log."""
    tools = findTools()
    capture = LabCapture(
        lab.directory, Path(args.capture).resolve(), lab.linkPorts(args.peers), tools
    )
    if os.environ.get(KEYLOG_VARIABLE):
        print(
            f"reloadctl: the peers log their secrets to {capture.keyLog}, "
            f"not to {KEYLOG_VARIABLE}={os.environ[KEYLOG_VARIABLE]}",
            file=sys.stderr,
        )
    capture.start()
    lab.environment = capture.environment(lab.environment or os.environ)
    return capture


def _stop(lab: Lab, capture: LabCapture | None) -> int:
    """Stop the peers, then the capture.  Captured peers stop one by one,
    so that every Leave is answered in the file; a second Ctrl-C must not
    leave the capture unfinished."""
    if capture is None:
        lab.stop()
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lab.stopOneByOne()
    return _finish(capture)


def _finish(capture: LabCapture) -> int:
    """Finish the capture; tell how to read it."""
    try:
        capture.finish()
    except CaptureError as exc:
        print(f"reloadctl: {exc}", file=sys.stderr)
        return 1
    print(f"\nCapture written to {capture.output} (with the TLS and DTLS secrets). Read it with:")
    print(f"\n  {capture.commandLine('tshark')}")
    print(f"\nor open it in Wireshark:\n\n  {capture.commandLine('wireshark')}")
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
    capture = LabCapture.load(directory)
    if capture is None:
        lab.stop()
    else:
        lab.stopOneByOne()
    if args.json:
        print(json.dumps({"dir": str(directory), "stopped": count}))
    else:
        print(f"Stopped {count} peers in {directory}.")
    return 0 if capture is None else _finish(capture)


def _kindSpec(text: str) -> KindConfig:
    """``--kind`` as an argparse type (one-line error)."""
    try:
        return parseKind("--kind", text)
    except TwistedUsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--kind ")) from None


def addLabCommands(sub: Any) -> None:
    lab = sub.add_parser("lab", help="run a local overlay of N real peers on 127.0.0.1")
    lab.add_argument(
        "--peers",
        type=intRange(1, MAX_LAB_PEERS),
        default=5,
        help=f"how many peers, 1 to {MAX_LAB_PEERS} (default 5)",
    )
    lab.add_argument("--dir", default="reload-lab", help="lab directory (default reload-lab)")
    lab.add_argument(
        "--base-port",
        type=intRange(0, 65535),
        default=16084,
        help="first link port (0: any free ports)",
    )
    lab.add_argument(
        "--admin-base-port",
        type=intRange(0, 65535),
        default=18084,
        help="first admin API port (0: any free)",
    )
    lab.add_argument(
        "--timeout", type=seconds(86400), default=120, help="seconds to wait for the ring"
    )
    lab.add_argument("--detach", action="store_true", help="leave the peers running and return")
    lab.add_argument(
        "--nat",
        action="store_true",
        help="root only: build the NAT lab (network namespaces, a friendly and a hostile NAT, "
        "a TURN peer) and run --peers peers behind the NATs, showing each link's ICE pair type",
    )
    lab.add_argument("--json", action="store_true", help="print the peers as JSON")
    lab.add_argument(
        "--link-protocol",
        choices=("tls", "dtls"),
        default="tls",
        help="link protocol the peers prefer for the links they make (default tls)",
    )
    lab.add_argument(
        "--trace-messages", action="store_true", help="peers log every message they handle"
    )
    lab.add_argument(
        "--usage",
        action="append",
        default=[],
        metavar="NAME",
        help="run this usage plugin on every peer (repeatable)",
    )
    lab.add_argument(
        "--usage-option",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE",
        help="an option for a usage, given to every peer (repeatable)",
    )
    lab.add_argument(
        "--user",
        metavar="NAME",
        help="the user name in every peer's certificate (what USER-MATCH Kinds check)",
    )
    lab.add_argument(
        "--kind",
        action="append",
        default=[],
        type=_kindSpec,
        metavar="ID[:MODEL[:POLICY]]",
        help="a Kind the lab's overlay lists (repeatable), e.g. 0xf0000001: an array "
        "under USER-MATCH, to store text with reloadctl store --name USER",
    )
    lab.add_argument(
        "--capture",
        metavar="FILE",
        help="capture the links into FILE (pcapng, secrets embedded) for Wireshark",
    )
    lab.set_defaults(func=cmdLab)
    labSub = lab.add_subparsers(dest="labCommand", metavar="stop")
    stop = labSub.add_parser("stop", help="stop the peers of a lab")
    stop.add_argument("--dir", default="reload-lab", help="lab directory (default reload-lab)")
    stop.add_argument("--json", action="store_true", help="print JSON")
    stop.set_defaults(func=cmdLabStop)
