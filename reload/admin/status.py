"""``GET /status``: what the peer is and how it is doing, as JSON.

Operators and ``reloadctl status`` read it; it is served only on the
``--admin`` endpoint, which an operator binds to loopback or a management
network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Request


class StatusResource(Resource):
    """Serves ``status()`` as ``application/json``."""

    isLeaf = True

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self._status = status

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(self._status(), indent=2, sort_keys=True).encode() + b"\n"


def adminRoot(
    status: Callable[[], dict[str, Any]],
    children: Mapping[bytes, Resource] | None = None,
    page: Resource | None = None,
) -> Resource:
    """The admin site's root: ``/status``, the ``children`` given (the
    overlay operations, the metrics), ``/api`` listing them, and at ``/``
    the status ``page`` (the list when there is none)."""
    root = Resource()
    root.putChild(b"status", StatusResource(status))
    for name, child in (children or {}).items():
        root.putChild(name, child)
    root.putChild(b"api", _Index())
    root.putChild(b"", page if page is not None else _Index())
    return root


class _Index(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (
            b"RELOAD peer admin API\n"
            b"  GET  /                                status page (HTML)\n"
            b"  GET  /status                          peer status (JSON)\n"
            b"  GET  /metrics                         Prometheus metrics (text format)\n"
            b"  POST /ping?destination=HEX[&resource=1] | ?name=TEXT\n"
            b"  POST /route-query?peer=HEX&destination=HEX\n"
            b"  POST /store?kind=ID&(name=TEXT|resource=HEX|node=HEX)&value=TEXT[&index=N|&key=K]\n"
            b"  POST /fetch|/stat?kind=ID&(name=|resource=|node=)[&index=A-B|&key=K]\n"
            b"  POST /find?kind=ID&(name=|resource=|node=)\n"
            b"  POST /held?(name=|resource=|node=)    what this peer itself holds there\n"
            b"  POST /usage/NAME/OPERATION?KEY=VALUE...   a usage's operations\n"
        )
