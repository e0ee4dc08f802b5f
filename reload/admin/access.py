"""Who may use the admin API: the checks every request passes first.

The admin API is meant to be safe to leave on (issue 23):

- Anything that changes state (every method but GET and HEAD) needs the
  bearer token of :mod:`reload.admin.token` (RFC 6750 section 2.1).  A
  browser never sends it by itself, so a page elsewhere cannot make the
  peer store or ping for it.
- Read-only requests (the status page, ``/status``, ``/metrics``) are open
  to loopback clients; from any other address they need the token too.
- Host and Origin are checked against cross-site requests and DNS
  rebinding: the Host must be an IP address literal, ``localhost`` or a
  name the operator allowed (``--admin-host``); an Origin, when a browser
  sends one, must be this very site; ``Sec-Fetch-Site: cross-site`` is
  refused.

A refused request gets a JSON error (401 with ``WWW-Authenticate: Bearer``
for a missing or wrong token, 403 for a foreign Host or Origin, or a
read-only request from afar without the token) and never reaches a resource.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import urllib.parse
from collections.abc import Callable, Iterable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = ["AccessPolicy", "GuardedSite", "Refusal"]

#: Methods that only read.
READ_ONLY = frozenset({b"GET", b"HEAD"})


class Refusal(Resource):
    """The answer to a refused request: ``status`` and one JSON line."""

    isLeaf = True

    def __init__(self, status: int, error: str, challenge: str | None = None) -> None:
        super().__init__()
        self.status = status
        self.error = error
        self.challenge = challenge

    def render(self, request: Request) -> bytes:
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if self.challenge is not None:
            request.setHeader(b"www-authenticate", self.challenge.encode())
        return json.dumps({"error": self.error}).encode() + b"\n"


def _hostName(hostHeader: str) -> str:
    """The host of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``)."""
    if hostHeader.startswith("["):
        return hostHeader[1 : hostHeader.find("]")] if "]" in hostHeader else ""
    return hostHeader.rpartition(":")[0] if hostHeader.count(":") == 1 else hostHeader


def _isIpLiteral(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def isLoopbackClient(request: Request) -> bool:
    """Whether the request came over a loopback address."""
    peer = request.getClientAddress()
    if not isinstance(peer, IPv4Address | IPv6Address):
        return False  # a UNIX socket's peer has no address: not loopback by proof
    try:
        address = ipaddress.ip_address(peer.host.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


class AccessPolicy:
    """Decides whether one request may reach the admin resources.

    ``token()`` is the current token (None until the peer made it: then
    nothing that needs it is allowed); ``allowedHosts`` the names besides IP
    literals and ``localhost`` a Host header may carry."""

    def __init__(self, token: Callable[[], str | None], allowedHosts: Iterable[str] = ()) -> None:
        self._token = token
        self._hosts = {"localhost"} | {h.lower().rstrip(".") for h in allowedHosts}

    def refusal(self, request: Request) -> Refusal | None:
        """Why ``request`` is refused, or None when it may go on."""
        host = (request.getHeader(b"host") or b"").decode("latin-1").strip()
        name = _hostName(host).lower().rstrip(".")
        if not name or not (_isIpLiteral(name) or name in self._hosts):
            return Refusal(
                403,
                f"Host {host!r} is not allowed: use an IP address, localhost "
                "or a name given with --admin-host",
            )
        if (request.getHeader(b"sec-fetch-site") or b"").lower() == b"cross-site":
            return Refusal(403, "cross-site requests are refused")
        origin = request.getHeader(b"origin")
        if origin is not None and not self._sameOrigin(origin.decode("latin-1"), host):
            return Refusal(403, f"Origin {origin.decode('latin-1')!r} is not this site")
        if request.method in READ_ONLY and isLoopbackClient(request):
            return None
        return self._tokenRefusal(request)

    @staticmethod
    def _sameOrigin(origin: str, host: str) -> bool:
        """RFC 6454: an Origin is scheme://host[:port]; ours is http://Host."""
        parsed = urllib.parse.urlsplit(origin)
        return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()

    def _tokenRefusal(self, request: Request) -> Refusal | None:
        challenge = 'Bearer realm="reload-admin"'
        expected = self._token()
        given = (request.getHeader(b"authorization") or b"").decode("latin-1")
        scheme, _, credentials = given.strip().partition(" ")
        if expected is None:
            return Refusal(503, "the admin token is not ready yet")
        if not given:
            what = "changes state" if request.method not in READ_ONLY else "is not from loopback"
            return Refusal(
                401,
                f"this request {what}: it needs the admin token "
                "(the file admin-token in the peer's data directory)",
                challenge,
            )
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode(), expected.encode()
        ):
            return Refusal(401, "wrong admin token", challenge + ', error="invalid_token"')
        return None


class GuardedSite(Site):
    """A :class:`Site` whose every request passes :class:`AccessPolicy`
    before its resource is looked up."""

    def __init__(self, resource: Resource, policy: AccessPolicy) -> None:
        super().__init__(resource)
        self.policy = policy
        self.displayTracebacks = False

    def getResourceFor(self, request: Request) -> Resource:
        refusal = self.policy.refusal(request)
        if refusal is not None:
            return refusal
        resource: Resource = super().getResourceFor(request)
        return resource
