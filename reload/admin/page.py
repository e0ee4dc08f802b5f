"""``GET /``: the status page an operator opens in a browser.

One server-rendered HTML page (twisted.web, no JavaScript, no build step)
that reloads itself every few seconds: this peer (Node-ID, overlay,
uptime, version), its ring (predecessors, successors and fingers, with a
small SVG picture of where they sit on the circle of Node-IDs), its links
(peer, protocol, direction, age, messages), its storage (values and bytes
by Kind, replica Stores placed and failed), its usages and their state,
and the recent warnings of its log.  Every value a test or a person may
compare with ``reloadctl`` carries a ``data-field`` attribute.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from html import escape
from typing import Any

from twisted.logger import ILogObserver, LogLevel, formatEvent
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from reload.admin.units import duration, size

__all__ = ["RecentWarnings", "StatusPage", "renderPage"]

#: Seconds between the page's own reloads.
REFRESH = 5
#: Warnings the page keeps.
KEEP_WARNINGS = 20


@implementer(ILogObserver)
class RecentWarnings:
    """A log observer that keeps the last warnings and errors."""

    def __init__(self, keep: int = KEEP_WARNINGS) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=keep)

    def __call__(self, event: Mapping[str, Any]) -> None:
        level = event.get("log_level")
        if level is None or level < LogLevel.warn:
            return
        self.events.append(
            {
                "time": event.get("log_time"),
                "level": level.name,
                "text": formatEvent(dict(event)).splitlines()[0] if event else "",
            }
        )

    def recent(self) -> list[dict[str, Any]]:
        return list(self.events)


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:75em}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse}td,th{padding:.15em .8em .15em 0;text-align:left;
vertical-align:top}th{color:#555;font-weight:600}code{font-size:13px}
.state-joined{color:#070}.state-failed{color:#b00}.muted{color:#777}
.ring{float:right;margin:0 0 1em 1.5em}.warn{color:#a60}.error,.critical{color:#b00}
"""

_COLOURS = {"self": "#c00", "predecessors": "#06c", "successors": "#080", "fingers": "#999"}


def _angle(nodeId: str) -> float:
    """Where a Node-ID sits on the circle: its fraction of the ID space."""
    try:
        fraction: float = int(nodeId, 16) / 16 ** len(nodeId)
        return fraction * 2 * math.pi - math.pi / 2
    except ValueError:
        return -math.pi / 2


def ringPicture(nodeId: str, neighbours: Mapping[str, Sequence[str]]) -> str:
    """An SVG circle of Node-IDs: this peer, and a dot and a chord for each
    neighbour, coloured by role."""
    size_, centre, radius = 220, 110, 90

    def point(node: str) -> tuple[float, float]:
        a = _angle(node)
        return centre + radius * math.cos(a), centre + radius * math.sin(a)

    parts = [
        f'<svg class="ring" width="{size_}" height="{size_}" viewBox="0 0 {size_} {size_}" '
        'role="img" aria-label="the ring of Node-IDs">',
        f'<circle cx="{centre}" cy="{centre}" r="{radius}" fill="none" stroke="#ccc"/>',
    ]
    sx, sy = point(nodeId)
    drawn: set[str] = set()
    for role in ("successors", "predecessors", "fingers"):
        for other in neighbours.get(role, ()):
            if other in drawn or other == nodeId:
                continue
            drawn.add(other)
            x, y = point(other)
            colour = _COLOURS.get(role, "#999")
            parts.append(
                f'<line x1="{sx:.1f}" y1="{sy:.1f}" x2="{x:.1f}" y2="{y:.1f}" '
                f'stroke="{colour}" stroke-opacity=".4"/>'
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">'
                f"<title>{role}: {escape(other)}</title></circle>"
            )
    parts.append(
        f'<circle cx="{sx:.1f}" cy="{sy:.1f}" r="6" fill="{_COLOURS["self"]}">'
        f"<title>this peer: {escape(nodeId)}</title></circle></svg>"
    )
    return "".join(parts)


def _cell(value: Any, field: str | None = None) -> str:
    text = escape("-" if value is None or value == "" else str(value))
    return f'<td data-field="{field}">{text}</td>' if field else f"<td>{text}</td>"


def _table(headers: Sequence[str], rows: Iterable[str], empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{body}</table>"


def _storageLine(storage: Mapping[str, Any]) -> str:
    def field(name: str) -> str:
        return f'<span data-field="{name}">{escape(str(storage.get(name, 0)))}</span>'

    return (
        f"<p>{field('resources')} Resource-IDs held; quota per signer "
        f"{escape(size(storage.get('quota')))}; replica Stores {field('replicaStoresSent')} "
        f"placed, {field('replicaStoresFailed')} failed, "
        f"{field('replicaPlacementsPending')} waiting.</p>"
    )


def _usageRow(usage: Mapping[str, Any]) -> str:
    row = (
        f"<tr>{_cell(usage.get('name'), 'usage')}{_cell(usage.get('state'))}"
        f"{_cell(', '.join(usage.get('kinds', [])))}</tr>"
    )
    if usage.get("error"):
        row += f'<tr><td></td><td colspan=2 class="error">{escape(str(usage["error"]))}</td></tr>'
    return row


def _warningRow(warning: Mapping[str, Any], now: float) -> str:
    age = duration(now - warning["time"]) if warning.get("time") else None
    level = escape(str(warning["level"]))
    return f'<tr class="{level}">{_cell(age)}{_cell(level)}{_cell(warning["text"])}</tr>'


def renderPage(
    status: Mapping[str, Any],
    links: Sequence[Mapping[str, Any]],
    stored: Mapping[int, tuple[int, int]],
    warnings: Sequence[Mapping[str, Any]],
    now: float,
) -> bytes:
    """The page for ``status`` (what ``GET /status`` answers), ``links``
    (peer, protocol, direction, up since, messages), ``stored`` (Kind-ID ->
    values, bytes) and the recent ``warnings``."""
    nodeId = str(status.get("nodeId", ""))
    state = str(status.get("state", "?"))
    neighbours: Mapping[str, Sequence[str]] = status.get("neighbours", {})
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="refresh" content="{REFRESH}">',
        '<meta name="viewport" content="width=device-width">',
        f"<title>RELOAD peer {escape(nodeId[:8])} - {escape(state)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f'<h1>RELOAD peer <code data-field="nodeId">{escape(nodeId or "-")}</code></h1>',
        f'<p><span class="state-{escape(state)}" data-field="state">{escape(state)}</span>'
        f' as a <span data-field="role">{escape(str(status.get("role", "peer")))}</span> of '
        f'<b data-field="overlay">{escape(str(status.get("overlay", "?")))}</b> '
        f'(<span data-field="topology">{escape(str(status.get("topology", "?")))}</span>), '
        f'up <span data-field="uptime">{escape(duration(status.get("uptime")))}</span>, '
        f'version <span data-field="version">{escape(str(status.get("version", "?")))}</span>, '
        f'at <span data-field="address">{escape(str(status.get("address", "-")))}</span>.</p>',
    ]
    if status.get("error"):
        out.append(f'<p class="error">{escape(str(status["error"]))}</p>')

    out.append("<h2>Ring</h2>")
    if nodeId:
        out.append(ringPicture(nodeId, neighbours))
    rows = []
    for role, ids in neighbours.items():
        for position, other in enumerate(ids):
            rows.append(
                f'<tr data-role="{escape(role)}"><td>{escape(role) if position == 0 else ""}</td>'
                f'<td><code data-field="{escape(role)}">{escape(other)}</code></td></tr>'
            )
    out.append(_table(["role", "Node-ID"], rows, "no neighbours yet"))
    out.append('<p class="muted" style="clear:both"></p>')

    out.append(f'<h2>Links (<span data-field="linkCount">{len(links)}</span>)</h2>')
    out.append(
        _table(
            ["peer", "protocol", "direction", "age", "messages received"],
            (
                f"<tr><td><code data-field=link>{escape(str(link.get('peer', '?')))}</code></td>"
                + _cell(link.get("protocol"))
                + _cell(link.get("direction"))
                + _cell(duration(now - link["upSince"]) if link.get("upSince") else None)
                + _cell(link.get("messagesReceived"))
                + "</tr>"
                for link in links
            ),
            "no links",
        )
    )

    storage = status.get("storage") or {}
    out.append("<h2>Storage</h2>")
    out.append(_storageLine(storage))
    out.append(
        _table(
            ["Kind", "values", "bytes"],
            (
                f"<tr>{_cell(f'{kind:#x}', 'kind')}{_cell(count)}{_cell(size(nbytes))}</tr>"
                for kind, (count, nbytes) in sorted(stored.items())
            ),
            "nothing stored",
        )
    )

    out.append("<h2>Usages</h2>")
    out.append(
        _table(
            ["usage", "state", "Kinds"],
            (_usageRow(u) for u in status.get("usages", [])),
            "no usages",
        )
    )

    out.append("<h2>Recent warnings</h2>")
    out.append(
        _table(
            ["age", "level", "message"],
            (_warningRow(w, now) for w in reversed(warnings)),
            "none",
        )
    )
    out.append(
        '<p class="muted">Reloads every '
        f"{REFRESH} s. JSON: <a href=status>/status</a>; Prometheus: "
        "<a href=metrics>/metrics</a>; the API: <a href=api>/api</a>.</p></body></html>"
    )
    return "".join(out).encode()


class StatusPage(Resource):
    """Serves :func:`renderPage` for the peer the callables read."""

    isLeaf = True

    def __init__(
        self,
        status: Callable[[], Mapping[str, Any]],
        links: Callable[[], Sequence[Mapping[str, Any]]],
        stored: Callable[[], Mapping[int, tuple[int, int]]],
        warnings: RecentWarnings,
        clock: Callable[[], float],
    ) -> None:
        super().__init__()
        self._status = status
        self._links = links
        self._stored = stored
        self._warnings = warnings
        self._clock = clock

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        # The page embeds nothing from elsewhere and runs no script.
        request.setHeader(
            b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"
        )
        request.setHeader(b"x-frame-options", b"DENY")
        return renderPage(
            self._status(), self._links(), self._stored(), self._warnings.recent(), self._clock()
        )
