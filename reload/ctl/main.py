"""``reloadctl``: talk to peers and inspect the installation.

Each subcommand is one small function taking the parsed arguments and
returning the process exit status; output is human-readable by default and
JSON with ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from reload import __version__
from reload.admin.token import TokenFileError, authorizationHeader, readToken
from reload.ctl.lab import addLabCommands
from reload.ctl.options import OneLineParser, adminAddress, intRange, seconds
from reload.ctl.text import fetchText, statText, statusText, table
from reload.ctl.usages import addUsageCommands
from reload.plugins import PluginError, installedTopologies, installedUsages
from reload.wire import CODEC


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


class AdminError(Exception):
    """The admin API could not be reached or refused the request."""


#: The environment variable ``--token-file`` defaults to.
TOKEN_FILE_VARIABLE = "RELOAD_ADMIN_TOKEN_FILE"


def _baseUrl(args: argparse.Namespace) -> str:
    base: str = args.admin.rstrip("/")
    return base if "://" in base else "http://" + base


def _request(args: argparse.Namespace, url: str, data: bytes | None, token: str | None) -> Any:
    """One request; its JSON, or :class:`urllib.error.HTTPError`."""
    headers = authorizationHeader(token) if token else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=args.timeout) as response:
        return json.load(response)


def _token(args: argparse.Namespace) -> str | None:
    """The admin token: ``--token-file`` (or $RELOAD_ADMIN_TOKEN_FILE), else
    the file the peer names in its status -- which it tells loopback
    clients only, and which only its own user (or root) can read."""
    cached: str | None = getattr(args, "_adminToken", None)
    if cached is not None:
        return cached
    path = getattr(args, "token_file", None) or os.environ.get(TOKEN_FILE_VARIABLE)
    if not path:
        try:
            status = _request(args, _baseUrl(args) + "/status", None, None)
        except (urllib.error.URLError, OSError, ValueError):
            return None  # not on loopback, or unreachable: the request says why
        path = status.get("adminTokenFile") if isinstance(status, dict) else None
        if not path:
            return None
    try:
        token = readToken(path)
    except TokenFileError as exc:
        raise AdminError(f"{exc}; run as the peer's user or give --token-file") from None
    args._adminToken = token
    return token


def _admin(args: argparse.Namespace, path: str, query: dict[str, str] | None = None) -> Any:
    """GET (no ``query``) or POST ``path`` on the peer's admin API; its JSON.
    A POST carries the admin token; a GET carries it when refused without."""
    url = _baseUrl(args) + path
    data = None
    if query is not None:
        url += "?" + urllib.parse.urlencode(query)
        data = b""
    explicit = getattr(args, "token_file", None) or os.environ.get(TOKEN_FILE_VARIABLE)
    token = _token(args) if data is not None or explicit else None
    try:
        try:
            return _request(args, url, data, token)
        except urllib.error.HTTPError as exc:
            if exc.code != 401 or token is not None:
                raise
            token = _token(args)
            if token is None:
                raise
            return _request(args, url, data, token)
    except urllib.error.HTTPError as exc:
        try:
            reason = json.load(exc).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        raise AdminError(f"{url}: {reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise AdminError(f"cannot read {url}: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    """A plain reason for a failed request (no exception reprs)."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, str):
        reason = exc.reason
        return getattr(reason, "strerror", None) or str(reason)
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return getattr(exc, "strerror", None) or str(exc)


def cmdStatus(args: argparse.Namespace) -> int:
    """Show a peer's status from its admin API (``twistd reload --admin``)."""
    deadline = time.monotonic() + (args.wait or 0)
    while True:
        try:
            status = _admin(args, "/status")
        except AdminError:
            if time.monotonic() >= deadline:
                raise
            status = {}
        if not args.wait or status.get("state") == "joined":
            break
        if time.monotonic() >= deadline:
            print(f"reloadctl: not joined after {args.wait:g} s", file=sys.stderr)
            _emit(args, status, statusText(status))
            return 1
        time.sleep(0.25)
    _emit(args, status, statusText(status))
    return 0


def linkPairTypes(status: dict[str, Any]) -> dict[str, str]:
    """Each link of a peer's status with its ICE pair type, "no-ice" for
    the links made without ICE."""
    pairTypes = (status.get("nat") or {}).get("pairTypes", {})
    return {nodeId: pairTypes.get(nodeId, "no-ice") for nodeId in status.get("links", [])}


def cmdRing(args: argparse.Namespace) -> int:
    """Show a peer's place in the ring: its Node-ID, neighbours and fingers."""
    status = _admin(args, "/status")
    neighbours = status.get("neighbours", {})
    lines = [f"node         {status.get('nodeId', '?')}  ({status.get('state')})"]
    # A peer's three Chord roles always; a client's ("peer", "direct") and
    # any other topology's roles as they come.
    chord = ("predecessors", "successors", "fingers")
    roles = (
        [*chord, *(r for r in neighbours if r not in chord)]
        if status.get("role") != "client"
        else list(neighbours)
    )
    for role in roles:
        ids = neighbours.get(role, [])
        lines.append(f"{role:12} {ids[0] if ids else '-'}")
        lines += [f"{'':12} {nodeId}" for nodeId in ids[1:]]
    links = status.get("links", [])
    lines.append(f"links        {len(links)}")
    # Each link's ICE pair type (RFC 6940 section 6.5.1: host, srflx,
    # relay), or no-ice for the links made without ICE.
    linkTypes = linkPairTypes(status)
    lines += [f"{'':12} {nodeId}  {linkTypes[nodeId]}" for nodeId in links]
    _emit(
        args,
        {"nodeId": status.get("nodeId"), **neighbours, "linkTypes": linkTypes},
        "\n".join(lines),
    )
    return 0


def cmdPing(args: argparse.Namespace) -> int:
    """Ping a Node-ID, Resource-ID or name through the overlay (6.5.3)."""
    results = []
    for _ in range(args.count):
        if args.name is not None:
            query = {"name": args.name}
        else:
            query = {"destination": args.destination, "resource": "1" if args.resource else "0"}
        result = _admin(args, "/ping", query)
        results.append(result)
        if not args.json:
            print(
                f"answer from {result['responder']}: {result['hops']} hop(s), "
                f"{result['rttMs']:.1f} ms"
            )
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def cmdRouteQuery(args: argparse.Namespace) -> int:
    """Ask a peer where it would route a destination (6.4.2.4)."""
    result = _admin(args, "/route-query", {"peer": args.peer, "destination": args.destination})
    nextHop = result.get("nextPeer", result["answer"])
    human = f"{result['peer']} routes {result['destination']} to {nextHop}"
    _emit(args, result, human)
    return 0


def _storageQuery(args: argparse.Namespace) -> dict[str, str]:
    query = {}
    for option in ("kind", "name", "resource", "node", "value", "index", "key", "lifetime"):
        value = getattr(args, option, None)
        if value is not None:
            query[option] = str(value)
    return query


def cmdStorage(args: argparse.Namespace) -> int:
    """Store, fetch, stat or find (section 7.4) through a peer."""
    result = _admin(args, f"/{args.command}", _storageQuery(args))
    if args.command == "store":
        replicas = len(result["replicas"])
        human = (
            f"Stored under Kind {result['kind']:#x} at {result['resource']} (generation "
            f"{result['generation']}); {replicas} replica{'s' if replicas != 1 else ''} placed."
        )
    elif args.command == "find":
        human = "\n".join(
            f"Kind {r['kind']:#x}: closest Resource-ID {r['closest']}"
            if r["closest"]
            else f"Kind {r['kind']:#x}: none stored near {result['resource']}"
            for r in result["results"]
        )
    elif args.command == "stat":
        human = statText(result)
    else:
        human = fetchText(result)
    _emit(args, result, human)
    return 0


def cmdHeld(args: argparse.Namespace) -> int:
    """What one peer itself holds at a Resource-ID (no overlay traffic)."""
    result = _admin(args, "/held", _storageQuery(args))
    role = "is responsible for" if result["responsible"] else "is not responsible for"
    lines = [f"This peer {role} {result['resource']}."]
    if result["kinds"]:
        rows = [(f"{k['kind']:#x}", k["generation"], k["values"]) for k in result["kinds"]]
        lines.append(table(rows, ["Kind", "generation", "values"]))
    else:
        lines.append("It holds nothing there.")
    _emit(args, result, "\n".join(lines))
    return 0


def _addStorage(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    if name != "held":
        parser.add_argument("--kind", required=True, help="Kind-ID (decimal or 0x-hex)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--name", help="the resource name whose hash is the Resource-ID")
    where.add_argument("--resource", help="the Resource-ID (hex)")
    where.add_argument("--node", help="a Node-ID (hex) whose hash is the Resource-ID")
    if name == "store":
        parser.add_argument("--value", required=True, help="the value (text)")
        parser.add_argument(
            "--lifetime", type=intRange(1, 0xFFFFFFFF), help="seconds (default a day)"
        )
    if name not in ("find", "held"):
        parser.add_argument("--index", help="array index (store) or FIRST-LAST (fetch)")
        parser.add_argument("--key", help="dictionary key")
    _addAdmin(parser)
    parser.set_defaults(func=cmdHeld if name == "held" else cmdStorage)
    return parser


def _addAdmin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin",
        type=adminAddress,
        default="127.0.0.1:8084",
        help="HOST:PORT or URL of the peer's admin API",
    )
    parser.add_argument("--timeout", type=seconds(86400), default=30.0, help="seconds to wait")
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="the peer's admin token (default: $RELOAD_ADMIN_TOKEN_FILE, else the "
        "admin-token file of the peer's data directory, found through a loopback peer)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def buildParser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="reloadctl", description="Command-line client of a RELOAD (RFC 6940) peer."
    )
    parser.add_argument(
        "--version", action="version", version=f"reloadctl {__version__} ({CODEC} codec)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    plugins = sub.add_parser("plugins", help="list installed topology and usage plugins")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=cmdPlugins)

    status = sub.add_parser("status", help="show a peer's status from its admin API")
    status.add_argument(
        "--wait",
        type=seconds(86400),
        metavar="SECONDS",
        help="wait up to SECONDS for the peer to answer and to have joined (exit 1 if not)",
    )
    _addAdmin(status)
    status.set_defaults(func=cmdStatus)

    ring = sub.add_parser("ring", help="show a peer's neighbours and fingers")
    _addAdmin(ring)
    ring.set_defaults(func=cmdRing)

    ping = sub.add_parser("ping", help="ping a Node-ID, Resource-ID or name through a peer")
    ping.add_argument("destination", nargs="?", help="Node-ID or Resource-ID (hex)")
    ping.add_argument("--resource", action="store_true", help="the destination is a Resource-ID")
    ping.add_argument("--name", help="ping the Resource-ID of this name instead")
    ping.add_argument(
        "--count", type=intRange(1, 10000), default=1, help="how many pings (1 to 10000)"
    )
    _addAdmin(ping)
    ping.set_defaults(func=cmdPing)

    query = sub.add_parser("route-query", help="ask a peer where it routes a destination")
    query.add_argument("peer", help="Node-ID (hex) of the peer to ask")
    query.add_argument("destination", help="Resource-ID (hex) to ask about")
    _addAdmin(query)
    query.set_defaults(func=cmdRouteQuery)

    _addStorage(sub, "store", "store a value through a peer (signed by it)")
    _addStorage(sub, "fetch", "fetch values through a peer (verified by it)")
    _addStorage(sub, "stat", "show the metadata of stored values")
    _addStorage(sub, "find", "find the closest Resource-ID holding a Kind")
    _addStorage(sub, "held", "show what one peer itself holds at a Resource-ID")

    addLabCommands(sub)
    addUsageCommands(sub, _addAdmin, _admin, _emit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = buildParser()
    args = parser.parse_args(argv)
    if args.command == "ping" and (args.destination is None) == (args.name is None):
        parser.error("ping needs a destination or --name, not both")
    if args.command == "service" and (args.operation == "list") != (args.namespace is None):
        parser.error(f"service {args.operation}: " + (
            "takes no namespace" if args.operation == "list" else "needs a NAMESPACE"
        ))  # fmt: skip
    try:
        status: int = args.func(args)
    except AdminError as exc:
        print(f"reloadctl: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
