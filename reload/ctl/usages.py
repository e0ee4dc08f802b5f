"""``reloadctl usage`` and ``reloadctl service``: the operations usages
offer operators (:class:`reload.interfaces.IUsageOperations`), through a
peer's admin API (``POST /usage/NAME/OPERATION``).

``reloadctl service register|unregister|lookup|list`` are the REDIR usage's
(ReDiR service discovery, RFC 7374): the peer must run ``--usage REDIR``.
``reloadctl turn find|status`` are the TURN usage's (RFC 6940 section 9):
the peer must run ``--usage TURN``.
``reloadctl sip register|unregister|forward|resolve`` are the SIP usage's
(RFC 7904): the peer must run ``--usage SIP``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from reload.ctl.text import flattened, plain

__all__ = ["addUsageCommands"]

#: The usage ``reloadctl service`` talks to (RFC 7374's REDIR Kind).
SERVICE_USAGE = "REDIR"
#: The usage ``reloadctl turn`` talks to.
TURN_USAGE = "TURN"
#: The usage ``reloadctl sip`` talks to.
SIP_USAGE = "SIP"

Admin = Callable[[argparse.Namespace, str, dict[str, str]], Any]
Emit = Callable[[argparse.Namespace, Any, str], None]


def _pair(text: str) -> tuple[str, str]:
    """One ``KEY=VALUE`` argument of an operation."""
    key, equals, value = text.partition("=")
    if not (key and equals):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value


def _serviceText(operation: str, result: dict[str, Any]) -> str:
    """What ``reloadctl service`` prints for a person."""
    if operation == "lookup":
        via = "the level cache" if result.get("fromCache") else f"level {result['level']}"
        return (
            f"{result['namespace']}: provider {result['provider']} for key {result['key']}"
            f" ({result['fetches']} Fetch(es), found at {via})"
        )
    if operation == "register":
        nodes = ", ".join(f"({level},{node})" for level, node in result["stored"])
        return (
            f"registered in {result['namespace']}: stored in tree node(s) {nodes}; "
            f"{result['fetches']} Fetch(es)"
        )
    if operation == "unregister":
        return f"unregistered from {result['namespace']}"
    lines = [f"{ns}  (last stored at level {(r or {}).get('endLevel', '-')})"
             for ns, r in result["registrations"].items()]  # fmt: skip
    return "\n".join(lines) or "this peer provides nothing"


def _turnText(operation: str, result: dict[str, Any]) -> str:
    """What ``reloadctl turn`` prints for a person."""
    if operation == "status":
        return "\n".join(flattened(result, ""))
    lines = []
    for server in result["servers"]:
        lines.append(
            f"{server['host']}:{server['port']}  advertised by {server['nodeId']}"
            f" (d={server['iteration']}), answered a STUN Binding, saw us at {server['mapped']}"
        )
    how = (
        f"{result['lookups']} ReDiR lookup(s)" if result["method"] == "redir"
        else f"{result['finds']} Find(s)"
    )  # fmt: skip
    lines.append(
        f"{len(result['servers'])} live TURN server(s): {result['fromCache']} from the cache,"
        f" {how}, {result['fetches']} Fetch(es), {result['checks']} check(s),"
        f" {result['dead']} not answering"
    )
    return "\n".join(lines)


def _sipText(operation: str, result: dict[str, Any]) -> str:
    """What ``reloadctl sip`` prints for a person."""
    if operation == "resolve":
        lines = [f"{result['aor']}" + (" (a GRUU: nothing fetched)" if result["gruu"] else "")]
        for target in result["targets"]:
            via = "" if target["aor"] == result["aor"] else f" (through {target['aor']})"
            prefs = f" {target['contactPrefs']}" if target["contactPrefs"] else ""
            lines.append(f"  -> peer {target['nodeId']}{via}{prefs}")
        if result["fetched"]:
            lines.append(f"fetched {', '.join(result['fetched'])}")
        return "\n".join(lines)
    if operation == "unregister":
        return f"{result['aor']}: this peer's registration removed"
    if result.get("type") == "uri":
        return f"{result['aor']} forwarded to {result['uri']} for {result['lifetime']} s"
    return (
        f"{result['aor']} registered: calls go to {', '.join(result['destinations'])}"
        f" for {result['lifetime']} s\nGRUU {result['gruu']}"
    )


def addUsageCommands(sub: Any, addAdmin: Callable[[Any], None], admin: Admin, emit: Emit) -> None:
    """``usage`` and ``service`` on the ``reloadctl`` subparsers ``sub``."""

    def cmdUsage(args: argparse.Namespace) -> int:
        result = admin(args, f"/usage/{args.usage}/{args.operation}", dict(args.arguments))
        emit(args, result, "\n".join(f"{k}: {plain(v)}" for k, v in sorted(result.items())))
        return 0

    usage = sub.add_parser("usage", help="run an operation a usage offers (see its docs)")
    usage.add_argument("usage", help="usage name, e.g. REDIR")
    usage.add_argument("operation", help="operation name, e.g. lookup")
    usage.add_argument(
        "arguments", nargs="*", type=_pair, metavar="KEY=VALUE", help="its arguments"
    )
    addAdmin(usage)
    usage.set_defaults(func=cmdUsage)

    def cmdService(args: argparse.Namespace) -> int:
        query = {} if args.namespace is None else {"namespace": args.namespace}
        if args.key is not None:
            query["key"] = args.key
        result = admin(args, f"/usage/{SERVICE_USAGE}/{args.operation}", query)
        emit(args, result, _serviceText(args.operation, result))
        return 0

    service = sub.add_parser(
        "service", help="ReDiR service discovery (RFC 7374) through a peer running --usage REDIR"
    )
    service.add_argument("operation", choices=("register", "unregister", "lookup", "list"))
    service.add_argument("namespace", nargs="?", help="the service's namespace, e.g. voice-mail")
    service.add_argument("--key", help="lookup: the key (hex Node-ID; default the peer's own)")
    addAdmin(service)
    service.set_defaults(func=cmdService)

    def cmdTurn(args: argparse.Namespace) -> int:
        query = {"count": str(args.count)} if args.operation == "find" else {}
        result = admin(args, f"/usage/{TURN_USAGE}/{args.operation}", query)
        emit(args, result, _turnText(args.operation, result))
        return 0

    turn = sub.add_parser(
        "turn", help="find TURN servers through a peer running --usage TURN (RFC 6940 section 9)"
    )
    turn.add_argument("operation", choices=("find", "status"))
    turn.add_argument(
        "--count", type=int, default=1, help="find: how many live servers (1 to 20, default 1)"
    )
    addAdmin(turn)
    turn.set_defaults(func=cmdTurn)

    def cmdSip(args: argparse.Namespace) -> int:
        query: dict[str, str] = {}
        if args.operation in ("resolve", "forward") and args.aor is None:
            raise SystemExit(f"reloadctl sip {args.operation}: give the AoR")
        if args.operation == "resolve":
            query["aor"] = args.aor
        elif args.operation == "forward":
            query["target"] = args.aor
        elif args.aor is not None:
            query["aor"] = args.aor
        if args.lifetime is not None:
            query["lifetime"] = str(args.lifetime)
        if args.node:
            query["node"] = ",".join(args.node)
        result = admin(args, f"/usage/{SIP_USAGE}/{args.operation}", query)
        emit(args, result, _sipText(args.operation, result))
        return 0

    sipCommand = sub.add_parser(
        "sip", help="SIP registrations (RFC 7904) through a peer running --usage SIP"
    )
    sipCommand.add_argument("operation", choices=("register", "unregister", "forward", "resolve"))
    sipCommand.add_argument(
        "aor",
        nargs="?",
        help="resolve: the AoR (or GRUU) to resolve; forward: the AoR calls go to;"
        " register/unregister: this peer's own AoR (the default)",
    )
    sipCommand.add_argument("--lifetime", type=int, help="register: seconds the registration lives")
    sipCommand.add_argument(
        "--node",
        action="append",
        help="register: a Node-ID (hex) of the destination list (default this peer)",
    )
    addAdmin(sipCommand)
    sipCommand.set_defaults(func=cmdSip)
