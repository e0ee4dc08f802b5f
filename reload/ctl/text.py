"""What ``reloadctl`` prints for a person: aligned tables and plain
sentences made from the admin API's JSON -- never a Python repr, never a
dict (``--json`` gives those to scripts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reload.admin.units import duration, size

__all__ = ["duration", "fetchText", "flattened", "plain", "size", "statText", "statusText", "table"]


def plain(value: Any) -> str:
    """A JSON value as text: lists joined by commas, mappings as
    ``key value`` pairs, None as ``-``, booleans as yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None) -> str:
    """Rows in aligned columns (the last one left ragged)."""
    cells = [[plain(c) for c in row] for row in ([headers] if headers else []) + list(rows)]
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(cells[0]))]
    lines = []
    for row in cells:
        padded = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + row[-1:]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _counted(mapping: Mapping[str, Any], order: Sequence[str]) -> str:
    keys = [k for k in order if k in mapping] + sorted(k for k in mapping if k not in order)
    return ", ".join(f"{k} {mapping[k]}" for k in keys) or "none"


def statusText(status: Mapping[str, Any]) -> str:
    """``reloadctl status``: one line per aspect of the peer."""
    rows: list[tuple[str, str]] = []
    state = str(status.get("state", "?"))
    if status.get("error"):
        state += f" ({status['error']})"
    rows.append(("Node-ID", status.get("nodeId") or "-"))
    rows.append(("state", f"{state}, as a {status.get('role', 'peer')}"))
    rows.append(
        (
            "overlay",
            f"{status.get('overlay', '?')} ({status.get('topology', '?')}, "
            f"configuration sequence {status.get('configurationSequence', '?')})",
        )
    )
    if status.get("userName"):
        rows.append(("user", status["userName"]))
    version = status.get("version", "?")
    if status.get("codec"):
        version = f"{version} ({status['codec']} codec)"
    rows.append(("version", version))
    rows.append(("uptime", duration(status.get("uptime"))))
    rows.append(("address", f"{status.get('address', '-')} (listening on {status.get('listen')})"))
    if status.get("bootstrap"):
        rows.append(("bootstrap", plain(status["bootstrap"])))
    links = status.get("links", [])
    kinds = status.get("linkTypes", {})
    rows.append(
        ("links", f"{len(links)}" + (f" ({_counted(kinds, ['tls', 'dtls'])})" if kinds else ""))
    )
    neighbours = status.get("neighbours", {})
    if neighbours:
        rows.append(
            ("neighbours", ", ".join(f"{len(ids)} {role}" for role, ids in neighbours.items()))
        )
    storage = status.get("storage")
    if storage:
        rows.append(
            (
                "storage",
                f"{storage.get('resources', 0)} Resource-IDs held; quota per signer "
                f"{size(storage.get('quota'))}",
            )
        )
        replication = (
            f"{storage.get('replicaStoresSent', 0)} replica Stores placed, "
            f"{storage.get('replicaStoresFailed', 0)} failed, "
            f"{storage.get('replicaPlacementsPending', 0)} waiting"
        )
        failure = storage.get("lastReplicaFailure")
        if failure:
            replication += f"; last failure: {plain(failure.get('reason', failure))}"
        rows.append(("replication", replication))
    usages = status.get("usages", [])
    rows.append(("usages", usagesText(usages)))
    counters = status.get("counters", {})
    if counters:
        rows.append(
            (
                "messages",
                _counted(counters, ["sent", "received", "forwarded", "requests", "answered"]),
            )
        )
    warnings = status.get("recentWarnings", [])
    if warnings:
        rows.append(("warnings", f"{len(warnings)} recent; last: {warnings[-1].get('text', '')}"))
    rows.append(("data directory", status.get("dataDir", "-")))
    text = table(rows)
    for usage in usages:
        own = usage.get("status")
        if isinstance(own, Mapping) and own:
            text += f"\n{usage.get('name')}:\n" + "\n".join(flattened(own, "  "))
    return text


def flattened(data: Mapping[str, Any], indent: str, prefix: str = "") -> list[str]:
    """``key.sub  value`` lines of a usage's own status (IUsageStatus),
    nested mappings flattened, sorted."""
    lines = []
    for key, value in sorted(data.items()):
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            lines += flattened(value, indent, f"{name}.")
        else:
            lines.append(f"{indent}{name}  {plain(value)}")
    return lines


def usagesText(usages: Sequence[Mapping[str, Any]]) -> str:
    """``NAME state`` per usage (with the error of a failed one), or none."""
    parts = []
    for usage in usages:
        part = f"{usage.get('name')} {usage.get('state')}"
        if usage.get("error"):
            part += f" ({usage['error']})"
        parts.append(part)
    return "; ".join(parts) or "none"


def _where(value: Mapping[str, Any]) -> str:
    if "index" in value:
        return f"[{value['index']}]"
    if "key" in value:
        return f"key {value['key']}"
    return "value"


def _shown(value: Mapping[str, Any]) -> str:
    text = value.get("value")
    if text is None:
        shown = f"0x{value.get('valueHex', '')}"
    else:
        shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(text))
    return shown if len(shown) <= 60 else shown[:57] + "..."


def fetchText(result: Mapping[str, Any]) -> str:
    """``reloadctl fetch``: each value found, or that there is none."""
    lines = []
    for kind in result.get("kinds", []):
        present = [v for v in kind.get("values", []) if v.get("exists", True) and v.get("lifetime")]
        header = f"Kind {kind['kind']:#x} at {result['resource']} (generation {kind['generation']})"
        if not present:
            lines.append(f"{header}: no value stored")
            continue
        lines.append(f"{header}:")
        lines.append(
            table(
                [(_where(v), _shown(v), duration(v.get("lifetime"))) for v in present],
                ["where", "value", "lifetime"],
            )
        )
    return "\n".join(lines) or f"nothing stored at {result.get('resource')}"


def statText(result: Mapping[str, Any]) -> str:
    """``reloadctl stat``: size and digest of each value."""
    lines = []
    for kind in result.get("kinds", []):
        present = [v for v in kind.get("values", []) if v.get("exists") and v.get("lifetime")]
        header = f"Kind {kind['kind']:#x} at {result['resource']} (generation {kind['generation']})"
        if not present:
            lines.append(f"{header}: no value stored")
            continue
        lines.append(f"{header}:")
        lines.append(
            table(
                [
                    (
                        _where(v),
                        size(v["size"]),
                        f"{v['hashAlgorithm']} {v['hash'][:16]}",
                        duration(v["lifetime"]),
                    )
                    for v in present
                ],
                ["where", "size", "digest", "lifetime"],
            )
        )
    return "\n".join(lines) or f"nothing stored at {result.get('resource')}"
