"""TURN: the TURN Server Usage of RFC 6940 section 9 as a usage plugin.

A peer started with ``--usage TURN`` runs a TURN server (RFC 8656, the
built-in ``usages.turnserver``) or, with ``TURN:external=HOST:PORT``,
stands for one that already runs (coturn), and:

- advertises it (section 9): when it is a candidate -- its address is
  public (``usages.turnusage.addresses``) and ICE did not find it behind a
  NAT (``INode.behindNat``), or ``TURN:advertise=always``
  for a lab on loopback -- it stores a TurnServer at H(Node-ID || d) for d
  = 1..turn-density, refreshes the values before they expire and
  withdraws them (exists=False) when it stops, before its node leaves
  (``usages.turnusage.advertiser``);
- finds TURN servers for its node and for operators (``reloadctl turn
  find``, the ``find`` operation): Find at random Resource-IDs, Fetch where
  found, check each server answers a STUN Binding before handing it out,
  cache, rotate and forget dead ones (``usages.turnusage.discovery``);
- with ``TURN:discovery=redir`` (and ``--usage REDIR``), registers in and
  searches the ReDiR namespace ``turn-server`` (RFC 7374 section 10.4)
  instead of probing random Resource-IDs.

**The bytes of d.**  The Resource Name is the Node-ID followed by d as one
unsigned byte (``Node-ID || uint8 d``), the width of TurnServer's own
``uint8 iteration`` field; it is the encoding the NODE-MULTIPLE access
check of every storing peer iterates over (section 7.3.4,
:func:`reload.api.names.nodeMultipleResourceName`).  turn-density comes
from the overlay configuration (:func:`reload.api.config.turnDensity`, 1
when absent); a provider found through ReDiR is Fetched at d = 1, so in
that mode d = 1 is stored even when turn-density is 0.

**Who may allocate.**  Long-term credential users from ``TURN:users=FILE``
(standard clients), and, with ``TURN:tls-port=PORT`` (default off), overlay
members over TURN-over-TLS (RFC 8656 section 3.1): that listener presents
this node's overlay certificate and requires the client's, verified exactly
as on overlay links (RFC 6940 section 13.6.3, through
:meth:`~reload.interfaces.INode.tlsServerConnectionCreator`); a client with
no certificate or one the overlay does not accept is refused in the
handshake.  A verified member allocates without a password as the user
``node:<Node-ID hex>`` (the first Node-ID of its certificate,
:meth:`~reload.interfaces.INode.verifiedNodeIds`), and the per-user quota
(``max-allocations-per-user``) applies to each member as to each user.
Configured user names cannot contain ``:``, so they never collide with a
member's.

Status (:class:`~reload.interfaces.IUsageStatus`): the server's own
status (allocations, bytes relayed, refusals), the advertising and the
discovery state, under ``TURN`` in ``reloadctl status``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from zope.interface import implementer

from reload.api.config import turnDensity
from reload.interfaces import (
    IAccessPolicy,
    IKind,
    INode,
    IRelaySource,
    IUsage,
    IUsageOperations,
    IUsageStatus,
    MemberTurnServer,
)
from usages.redir import RedirClient
from usages.turnserver.probe import bindingCheck
from usages.turnserver.service import TurnServerConfig, TurnServerService, loadUsers
from usages.turnusage.addresses import whyNotPublic
from usages.turnusage.advertiser import TurnAdvertiser
from usages.turnusage.discovery import (
    REDIR_NAMESPACE,
    Check,
    FoundTurnServer,
    TurnDiscovery,
)
from usages.turnusage.kind import TURN_SERVICE, TURN_SERVICE_KIND_ID, TurnServer
from usages.turnusage.options import OPTIONS, TurnOptions, parseOptions

__all__ = [
    "TURN_SERVICE",
    "TURN_SERVICE_KIND_ID",
    "FoundTurnServer",
    "Turn",
    "TurnServer",
    "TurnService",
    "turn",
]

#: Most servers one ``find`` operation hands out.
MAX_COUNT = 20
#: Servers offered to the node's ICE side at once (:class:`IRelaySource`).
RELAY_CANDIDATES = 3


@implementer(IUsageOperations, IUsageStatus, IRelaySource)
class TurnService(MultiService):
    """``--usage TURN`` beside a node: the built-in server (a child
    service) or an external one's address, its advertisement, and
    discovery.  :meth:`findTurnServers` is the Python API."""

    log = Logger()

    def __init__(
        self,
        node: INode,
        options: TurnOptions,
        discovery: TurnDiscovery,
        server: IService | None = None,
        redir: RedirClient | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.node = node
        self.options = options
        self.discovery = discovery
        self.server = server
        self.redir = redir
        self.advertiser: TurnAdvertiser | None = None
        #: Why this peer does not advertise (None while it does).
        self.notAdvertising: str | None = "not started"
        self.redirError: str | None = None
        if server is not None:
            server.setServiceParent(self)

    def serverAddress(self) -> tuple[str, int]:
        """The address advertised: external's, or the advertised host and
        the built-in server's UDP port."""
        if self.options.external is not None:
            return self.options.external
        assert self.server is not None
        host = self.options.advertisedHost
        addresses: dict[str, tuple[str, int]] = getattr(self.server, "addresses", {})
        if host is None or "udp" not in addresses:
            raise RuntimeError("the built-in TURN server has no UDP address")
        return (host, addresses["udp"][1])

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        # Section 6.5.1.5: the servers found here give the node's ICE side
        # its relayed candidates when it has no --turn-server.
        self.node.addRelaySource(self)
        options = self.options
        if not options.serve:
            self.notAdvertising = "serve=no"
            return
        if options.advertise == "never":
            self.notAdvertising = "advertise=never"
            return
        address = self.serverAddress()
        why = whyNotPublic(address[0])
        if why is None and self.node.behindNat:
            # Section 9: a peer behind a NAT (ICE found its server-reflexive
            # address differs from its own) does not offer TURN.
            why = "this peer is behind a NAT (its STUN-reflexive address differs)"
        if options.advertise == "auto" and why is not None:
            self.notAdvertising = f"advertise=auto and {why}"
            self.log.info("TURN: not advertised: {why}", why=self.notAdvertising)
            return
        density = turnDensity(self.node.configuration)
        if self.redir is not None:
            density = max(density, 1)
        self.notAdvertising = None if density else "turn-density is 0"
        self.advertiser = TurnAdvertiser(self.node, address, density, options.lifetime)
        self.advertiser.start()
        if self.redir is not None:
            self.redir.register(REDIR_NAMESPACE).addErrback(self._notRegistered)

    def _notRegistered(self, failure: Any) -> None:
        self.redirError = failure.getErrorMessage() or type(failure.value).__name__
        self.log.warn("TURN: registering in ReDiR failed: {error}", error=self.redirError)

    def stopService(self) -> Deferred[None]:
        self.node.removeRelaySource(self)
        withdrawing: list[Deferred[Any]] = []
        if self.advertiser is not None:
            withdrawing.append(self.advertiser.stop())
        if self.redir is not None:
            withdrawing.append(self.redir.close())
        done = DeferredList(withdrawing, consumeErrors=True)
        # The server stops after its advertisement is withdrawn.
        stopped: Deferred[None] = done.addCallback(lambda _: MultiService.stopService(self))
        return stopped

    # -- the Python API ---------------------------------------------------------------

    def findTurnServers(self, count: int = 1) -> Deferred[list[FoundTurnServer]]:
        """Up to ``count`` TURN servers found through the overlay, each
        answering a STUN Binding just now (see
        :class:`~usages.turnusage.discovery.TurnDiscovery`)."""
        return self.discovery.findTurnServers(count)

    def relayServers(self) -> Deferred[Sequence[MemberTurnServer]]:
        """IRelaySource: live servers found in the overlay, with the
        Node-ID that advertised each, which the node requires in the
        server's TLS certificate (reached at the same port number over
        TCP: ``TURN:tls-port=same``)."""

        def members(found: list[FoundTurnServer]) -> Sequence[MemberTurnServer]:
            return [MemberTurnServer(s.host, s.port, s.nodeId) for s in found]

        return self.findTurnServers(RELAY_CANDIDATES).addCallback(members)

    # -- operators (IUsageOperations, IUsageStatus) -------------------------------

    def operations(self) -> Mapping[str, Callable[[Mapping[str, str]], Deferred[dict[str, Any]]]]:
        """``find`` (``count=N``, default 1) and ``status``."""
        return {"find": self._findOperation, "status": self._statusOperation}

    def _findOperation(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        raw = arguments.get("count", "1")
        try:
            count = int(raw)
        except ValueError:
            raise ValueError(f"count: {raw!r} is not a whole number") from None
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(f"count: {count} is not between 1 and {MAX_COUNT}")

        def found(servers: list[FoundTurnServer]) -> dict[str, Any]:
            stats = self.discovery.lastSearch
            result = {
                "method": self.discovery.method,
                "servers": [server.asDict() for server in servers],
                **(stats.asDict() if stats is not None else {}),
            }
            if not servers:
                raise LookupError(
                    f"no live TURN server found ({result.get('finds', 0)} Find(s),"
                    f" {result.get('lookups', 0)} ReDiR lookup(s),"
                    f" {result.get('dead', 0)} not answering)"
                )
            return result

        return self.findTurnServers(count).addCallback(found)

    def _statusOperation(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        return succeed(self.status())

    def status(self) -> dict[str, Any]:
        if not self.options.serve:
            server: dict[str, Any] = {"none": "serve=no"}
        elif self.options.external is not None:
            host, port = self.options.external
            server = {"external": f"{host}:{port}"}
        else:
            statusOf = getattr(self.server, "status", None)
            server = dict(statusOf()) if callable(statusOf) else {}
        advertising: dict[str, Any] = {"advertised": self.advertiser is not None}
        if self.notAdvertising is not None:
            advertising["why not"] = self.notAdvertising
        if self.advertiser is not None:
            advertising.update(self.advertiser.status())
        if self.redir is not None:
            advertising["redir"] = self.redirError or "registered in turn-server"
        return {
            "server": server,
            "advertising": advertising,
            "discovery": self.discovery.status(),
        }


def _bindingChecker(node: INode, timeout: float) -> Check:
    """The liveness check of discovery: a STUN Binding over UDP."""

    def check(host: str, port: int) -> Deferred[tuple[str, int] | None]:
        return bindingCheck(host, port, timeout, reactor=node.reactor)

    return check


#: The user name prefix of overlay members allocating over TLS.
MEMBER_PREFIX = "node:"


def _memberUser(node: INode) -> Callable[[Any], str | None]:
    """The TLS authorizer: a connection whose overlay certificate was
    verified allocates as ``node:<first Node-ID hex>``; any other, none."""

    def user(transport: Any) -> str | None:
        nodeIds = node.verifiedNodeIds(transport)
        return MEMBER_PREFIX + nodeIds[0].hex() if nodeIds else None

    return user


def _builtInServer(node: INode, options: TurnOptions) -> TurnServerService:
    """The built-in TURN server (``usages.turnserver``) the options describe."""
    users = loadUsers(options.users) if options.users is not None else {}
    settings: dict[str, Any] = {
        "host": options.host,
        "udpPort": options.udpPort,
        "tcpPort": options.tcpPort,
        "realm": options.realm or str(node.overlayName),
        "users": users,
        "relayHost": options.relayHost or options.advertisedHost,
        "relayPorts": options.relayPorts,
        "allowLoopbackPeers": options.allowLoopback,
        "deniedPeers": options.deny,
    }
    for key, value in (
        ("maxAllocations", options.maxAllocations),
        ("maxAllocationsPerUser", options.maxAllocationsPerUser),
        ("maxRelayBytesPerSecond", options.maxRelayRate),
    ):
        if value is not None:
            settings[key] = value
    if options.tlsPort is not None:
        settings["tlsPort"] = options.tlsPort
        settings["tlsConnectionCreator"] = node.tlsServerConnectionCreator()
        settings["authorizePeerConnection"] = _memberUser(node)
    config = TurnServerConfig(**settings)
    try:
        config.validate()
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("TURN: ")) from None
    return TurnServerService(config, reactor=node.reactor)


@implementer(IUsage)
class Turn:
    """The plugin object ``getPlugins(IUsage, usages)`` finds."""

    name = "TURN"
    description = "TURN servers (RFC 6940 section 9): run or advertise one, find them."
    options = OPTIONS

    def kinds(self) -> list[IKind]:
        return [TURN_SERVICE]

    def accessPolicies(self) -> list[IAccessPolicy]:
        return []

    def checkOptions(self, options: Mapping[str, str]) -> None:
        parsed = parseOptions(options)
        if parsed.users is not None:
            try:
                loadUsers(parsed.users)
            except ValueError as exc:
                raise ValueError(f"users: {exc}") from None

    def makeService(self, node: INode, options: dict[str, str]) -> IService:
        parsed = parseOptions(options)
        redir = RedirClient(node) if parsed.discovery == "redir" else None
        discovery = TurnDiscovery(
            node,
            _bindingChecker(node, parsed.checkTimeout),
            cacheSize=parsed.cache,
            redir=redir,
        )
        builtIn = parsed.serve and parsed.external is None
        server = _builtInServer(node, parsed) if builtIn else None
        return TurnService(node, parsed, discovery, server, redir)


turn = Turn()
