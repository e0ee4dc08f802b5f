"""Usage operations on the admin API (:class:`reload.interfaces.IUsageOperations`):
``POST /usage/NAME/OPERATION?KEY=VALUE...`` runs an operation the usage
NAME's service offers (``reloadctl usage``, ``reloadctl service``) and
answers its result as JSON.

Status codes: 200 with the result; 400 for bad arguments (the operation's
:class:`ValueError`); 404 for an unknown usage or operation, or nothing
found (its :class:`LookupError`); 502 for an Error answer from the overlay
(:class:`~reload.errors.ReloadError`, RFC 6940 section 6.3.3.1); 503 before
the peer has joined; 504 when no answer came.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from reload.errors import ReloadError

__all__ = ["UsageOperationsResource"]

#: ``operations(usageName)``: the usage's operations, KeyError when none.
FindOperations = Callable[[str], Mapping[str, Any]]


def _json(request: Request, status: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body, sort_keys=True).encode() + b"\n"


class UsageOperationsResource(Resource):
    """``/usage/NAME/OPERATION``; ``joined()`` says whether the peer has
    joined (a usage's service runs only then)."""

    isLeaf = True

    def __init__(self, joined: Callable[[], bool], operations: FindOperations) -> None:
        super().__init__()
        self._joined = joined
        self._operations = operations

    def render_POST(self, request: Request) -> bytes | int:
        parts = [p.decode("utf-8", "replace") for p in request.postpath or [] if p]
        if len(parts) != 2:
            return _json(request, 404, {"error": "use POST /usage/NAME/OPERATION?KEY=VALUE"})
        usage, name = parts
        if not self._joined():
            return _json(request, 503, {"error": "the peer has not joined yet"})
        try:
            operation = self._operations(usage)[name]
        except KeyError as exc:
            return _json(request, 404, {"error": str(exc.args[0] if exc.args else exc)})
        arguments = {
            key.decode("utf-8", "replace"): values[0].decode("utf-8", "replace")
            for key, values in (request.args or {}).items()
            if values
        }
        d = maybeDeferred(operation, arguments)
        d.addCallbacks(
            lambda result: self._finish(request, 200, dict(result)),
            lambda failure: self._failed(request, failure),
        )
        return NOT_DONE_YET

    def _failed(self, request: Request, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, ReloadError):
            self._finish(request, 502, {"error": str(error), "code": error.code})
        elif isinstance(error, ValueError):
            self._finish(request, 400, {"error": str(error)})
        elif isinstance(error, LookupError):
            self._finish(request, 404, {"error": str(error)})
        else:
            self._finish(request, 504, {"error": failure.getErrorMessage() or repr(error)})

    def _finish(self, request: Request, status: int, body: dict[str, Any]) -> None:
        if request._disconnected:
            return
        request.write(_json(request, status, body))
        request.finish()
