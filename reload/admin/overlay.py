"""Overlay operations on the admin API, for ``reloadctl ping`` and
``reloadctl route-query``: the peer sends the request into the overlay as
itself and reports the verified answer.

``POST /ping?destination=HEX`` pings a Node-ID (``&resource=1`` for a
Resource-ID, or ``?name=TEXT`` for the Resource-ID of a name);
``POST /route-query?peer=HEX&destination=HEX`` asks ``peer`` where it would
route ``destination`` (RFC 6940 sections 6.5.3 and 6.4.2.4).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from reload.errors import ReloadError
from reload.transport.node_api import TransportNode
from reload.wire.header import Destination


class BadRequest(ValueError):
    """A query argument that is missing or malformed."""


def queryArg(request: Request, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def hexQueryArg(request: Request, name: str) -> bytes:
    value = queryArg(request, name)
    if value is None:
        raise BadRequest(f"missing {name}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BadRequest(f"{name} is not hexadecimal") from None


Operation = Callable[[TransportNode, Request], Deferred[dict[str, Any]]]


class OverlayOperation(Resource):
    """Runs ``operation(node, request)`` on the peer's node once it has
    joined and answers its result as JSON: 400 for bad arguments, 502 for
    an Error answer from the overlay, 504 when no answer came."""

    isLeaf = True

    def __init__(self, node: Callable[[], TransportNode | None], operation: Operation) -> None:
        super().__init__()
        self._node = node
        self._operation = operation

    def render_POST(self, request: Request) -> bytes | int:
        node = self._node()
        if node is None:
            return self._answer(request, 503, {"error": "the peer has not joined yet"})
        try:
            d = self._operation(node, request)
        except BadRequest as exc:
            return self._answer(request, 400, {"error": str(exc)})
        d.addCallbacks(
            lambda result: self._finish(request, 200, result),
            lambda failure: self._failed(request, failure),
        )
        return NOT_DONE_YET

    def _failed(self, request: Request, failure: Failure) -> None:
        if failure.check(ReloadError):
            error = failure.value
            assert isinstance(error, ReloadError)
            self._finish(request, 502, {"error": str(error), "code": error.code})
        else:
            self._finish(request, 504, {"error": failure.getErrorMessage() or repr(failure.value)})

    def _answer(self, request: Request, status: int, body: dict[str, Any]) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body, sort_keys=True).encode() + b"\n"

    def _finish(self, request: Request, status: int, body: dict[str, Any]) -> None:
        if request._disconnected:
            return
        request.write(self._answer(request, status, body))
        request.finish()


def ping(clock: Any) -> Operation:
    """Section 6.5.3: Ping a Node-ID, a Resource-ID or a name's Resource-ID."""

    def operation(node: TransportNode, request: Request) -> Deferred[dict[str, Any]]:
        name = queryArg(request, "name")
        if name is not None:
            destination, resource = node.resourceId(name.encode()), True
        else:
            destination = hexQueryArg(request, "destination")
            resource = queryArg(request, "resource") in ("1", "true", "yes")
        started = clock.seconds()

        def answered(response: Any) -> dict[str, Any]:
            return {
                "destination": destination.hex(),
                "resource": resource,
                "responder": response.nodeId.hex(),
                # The answer's via list holds the peers it crossed (6.2.2).
                "hops": len(response.message.header.via_list) + 1,
                "rttMs": round((clock.seconds() - started) * 1000, 3),
            }

        return node.ping(destination, resource=resource).addCallback(answered)

    return operation


def routeQuery(topologyName: Callable[[], str]) -> Operation:
    """Section 6.4.2.4: ask ``peer`` where it routes ``destination``; the
    answer's data is decoded by this peer's topology
    (``ITopology.routeQueryAnswer``: for CHORD-RELOAD the next peer, section
    10.8), named ``topology`` in the result."""

    def operation(node: TransportNode, request: Request) -> Deferred[dict[str, Any]]:
        peer = hexQueryArg(request, "peer")
        destination = hexQueryArg(request, "destination")

        def answered(response: Any) -> dict[str, Any]:
            out: dict[str, Any] = {
                "peer": response.nodeId.hex(),
                "destination": destination.hex(),
                "answer": response.body.hex(),
            }
            if node.topology is not None:
                out.update(node.topology.routeQueryAnswer(response.body))
            out["topology"] = topologyName()
            return out

        return node.routeQuery(peer, Destination.resource(destination)).addCallback(answered)

    return operation
