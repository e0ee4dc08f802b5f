"""Checking Twisted endpoint strings before the reactor runs.

``serverFromString`` only records its reactor argument when it builds an
endpoint, so building one against a placeholder checks the syntax, the
endpoint type and its arguments without importing (and so installing) the
global reactor while twistd is still parsing options.
"""

from __future__ import annotations

from twisted.internet.endpoints import serverFromString


class EndpointSyntaxError(ValueError):
    """An endpoint string Twisted cannot build a server endpoint from."""


class _NoReactor:
    """Stands in for the reactor; an endpoint that tries to use it at parse
    time fails the check rather than touching a real reactor."""


def _plainValueError(description: str, exc: ValueError) -> str:
    """Python's own wording (``invalid literal for int() with base 10``)
    told as what the user wrote wrong."""
    reason = (str(exc) or "not a valid endpoint").splitlines()[0]
    if reason.startswith("invalid literal for int()"):
        kind, _, rest = description.partition(":")
        port = rest.split(":")[0].removeprefix("port=")
        return f"the {kind} port {port!r} is not a number (e.g. {kind}:8084)"
    return reason


def checkServerEndpoint(description: str) -> None:
    """Raise :class:`EndpointSyntaxError` unless ``description`` is a valid
    server endpoint string (``tcp:6084``, ``ssl:...``, ``unix:...``)."""
    try:
        endpoint = serverFromString(_NoReactor(), description)
    except TypeError as exc:
        raise EndpointSyntaxError(f"wrong arguments for this endpoint type ({exc})") from None
    except ValueError as exc:
        raise EndpointSyntaxError(_plainValueError(description, exc)) from None
    except (KeyError, IndexError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        raise EndpointSyntaxError(reason.splitlines()[0]) from None
    port = getattr(endpoint, "_port", None)
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise EndpointSyntaxError(f"port {port} is not in 0-65535")
