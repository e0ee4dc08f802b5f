"""``reloadctl``: talk to peers and inspect the installation.

Each subcommand is one small function taking the parsed arguments and
returning the process exit status; output is human-readable by default and
JSON with ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from reload import __version__
from reload.plugins import PluginError, installedTopologies, installedUsages


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if args.json else human)


def cmdPlugins(args: argparse.Namespace) -> int:
    """List the topology and usage plugins this installation finds."""
    try:
        topologies = installedTopologies()
        usages = installedUsages()
    except PluginError as exc:
        print(f"reloadctl: {exc}", file=sys.stderr)
        return 1
    topologyNames = sorted(topologies)
    usageDescriptions = {
        name: str(getattr(u, "description", "")) for name, u in sorted(usages.items())
    }
    data = {"topologies": topologyNames, "usages": usageDescriptions}
    lines = ["topologies:"]
    lines += [f"  {name}" for name in topologyNames] or ["  (none)"]
    lines.append("usages:")
    lines += [f"  {name:12} {desc}" for name, desc in usageDescriptions.items()] or ["  (none)"]
    _emit(args, data, "\n".join(lines))
    return 0


def cmdStatus(args: argparse.Namespace) -> int:
    """Show a peer's status from its admin API (``twistd reload --admin``)."""
    url = args.admin.rstrip("/") + "/status"
    if "://" not in url:
        url = "http://" + url
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"reloadctl: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    width = max(map(len, status), default=0)
    human = "\n".join(f"{key:{width}}  {value}" for key, value in sorted(status.items()))
    _emit(args, status, human)
    return 0


def buildParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reloadctl", description="Command-line client of a RELOAD (RFC 6940) peer."
    )
    parser.add_argument("--version", action="version", version=f"reloadctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    plugins = sub.add_parser("plugins", help="list installed topology and usage plugins")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=cmdPlugins)

    status = sub.add_parser("status", help="show a peer's status from its admin API")
    status.add_argument(
        "--admin", default="127.0.0.1:8084", help="HOST:PORT or URL of the admin API"
    )
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmdStatus)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = buildParser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
