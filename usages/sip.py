"""SIP: the SIP Usage for RELOAD (RFC 7904) as a usage plugin.

P2PSIP without a registrar or proxy anywhere: a registration is a Store of
a SipRegistration under the user's AoR (Kind SIP-REGISTRATION, 0x1), and a
caller resolves the AoR by Fetching it and AppAttaches to the peer the
registration names to carry SIP (sections 3 to 5).

The parts (package ``usages.sipusage``):

- ``record``: AoRs (section 2), the SipRegistration record (section 3.2)
  and GRUUs (section 6, with the bytes ``gr`` carries);
- ``kind``: the Kind (section 7, USER-NODE-MATCH) and the storing peer's
  domain check (sections 3.3 and 3.4, ``sip:domain-restriction``);
- ``resolver``: resolution (section 4.2) with a depth limit and loop
  detection, and :class:`~usages.sipusage.resolver.SipClient`, the Python
  API ``register``, ``forward``, ``unregister``, ``resolve``;
- ``options``: ``--usage-option SIP:KEY=VALUE``;
- ``message``: the SIP message layer (a sans-I/O parser, serialiser and
  stream framer; why not a library is said there);
- ``connections``: phones' flows and the AppAttach connections that carry
  SIP between peers (section 5.1: application 5060, reused, kept alive);
- ``proxy``: the front end unmodified phones use, a registrar and proxy on
  ``SIP:listen`` (UDP and TCP) whose location service is the overlay.

Operators use it through ``reloadctl sip register|unregister|forward|resolve``
(the ``register``, ``unregister``, ``forward``, ``resolve`` and ``status``
operations of :class:`SipService`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IListeningPort
from twisted.internet.ssl import KeyPair, PrivateCertificate
from twisted.logger import Logger
from zope.interface import implementer

from reload.api.data import Destination
from reload.interfaces import (
    IAccessPolicy,
    IKind,
    INode,
    IUsage,
    IUsageOperations,
    IUsageStatus,
)
from usages.sipusage.connections import (
    OverlayConnections,
    SipDatagramProtocol,
    StreamFactory,
    StreamFlow,
)
from usages.sipusage.digest import DigestAuthenticator
from usages.sipusage.kind import SIP_REGISTRATION, SIP_REGISTRATION_KIND_ID
from usages.sipusage.options import OPTIONS, SipOptions, parseOptions
from usages.sipusage.proxy import SipProxy
from usages.sipusage.record import SipRegistration, encodeGruu, normaliseAor
from usages.sipusage.resolver import NotOwnAor, Resolution, SipClient

__all__ = [
    "SIP_REGISTRATION",
    "SIP_REGISTRATION_KIND_ID",
    "Sip",
    "SipClient",
    "SipRegistration",
    "SipService",
    "sip",
]

Operation = Callable[[Mapping[str, str]], Deferred[dict[str, Any]]]


def _recordDict(record: SipRegistration) -> dict[str, Any]:
    if record.type == 1:
        return {"type": "uri", "uri": record.uri}
    return {
        "type": "route",
        "destinations": [d.value.hex() for d in record.destinations],
        "contactPrefs": record.contactPrefs,
    }


def _nodeIds(text: str) -> list[Destination]:
    """``node=HEX[,HEX...]``: a destination list of Node-IDs."""
    out = []
    for part in text.split(","):
        try:
            out.append(Destination.node(bytes.fromhex(part.strip())))
        except ValueError:
            raise ValueError(f"node: {part!r} is not a Node-ID in hex") from None
    return out


@implementer(IUsageOperations, IUsageStatus)
class SipService(MultiService):
    """``--usage SIP`` beside a node: the Python API (:attr:`client`) and
    the operators' operations."""

    log = Logger()

    def __init__(self, node: INode, options: SipOptions) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.node = node
        self.options = options
        self.client = SipClient(node)
        self.proxy: SipProxy | None = None
        self.ports: list[IListeningPort] = []

    def startService(self) -> None:
        """Start the front end on ``SIP:listen`` (UDP and TCP on one port)
        and answer AppAttaches for SIP (application 5060)."""
        super().startService()  # type: ignore[no-untyped-call]
        if self.options.listen is None:
            return
        host, port = self.options.listen
        reactor: Any = self.node.reactor
        connections = OverlayConnections(self.node, self._receive, self._bad)
        tcp = reactor.listenTCP(port, StreamFactory(self._phoneStream), interface=host)
        self.ports.append(tcp)
        port = tcp.getHost().port
        udp = SipDatagramProtocol(self._receive, self._bad)
        self.ports.append(reactor.listenUDP(port, udp, interface=host))
        self.proxy = SipProxy(
            self.client,
            connections,
            self.node.clock,
            host,
            port,
            self.options.maxDepth,
            self.options.maxExpires,
        )
        self.proxy.udp = udp
        if self.options.passwords is not None:
            self.proxy.authenticator = DigestAuthenticator(self.options.passwords)
        self.proxy.connectPhone = self._connectPhone
        if self.options.tlsListen is not None:
            tlsPort = reactor.listenSSL(
                self.options.tlsListen[1],
                StreamFactory(lambda: self._phoneStream("TLS")),
                self._tlsCertificate(host).options(),
                interface=host,
            )
            self.ports.append(tlsPort)
            self.proxy.tlsPort = tlsPort.getHost().port
        connections.listen()
        self.log.info(
            "SIP: front end on {host}:{port} (UDP, TCP){tls}",
            host=host,
            port=port,
            tls=f", TLS on {self.proxy.tlsPort}" if self.proxy.tlsPort is not None else "",
        )

    def _receive(self, message: Any, flow: Any) -> None:
        if self.proxy is not None:
            self.proxy.receive(message, flow)

    def _bad(self, reason: str, data: bytes, flow: Any) -> None:
        if self.proxy is not None:
            self.proxy.badInput(reason, data, flow)

    def _tlsCertificate(self, host: str) -> PrivateCertificate:
        """The TLS listener's certificate: ``SIP:tls-certificate``, else a
        self-signed one for ``host`` made now (phones that check it need
        the file)."""
        certificate: PrivateCertificate
        if self.options.tlsCertificate is not None:
            with open(self.options.tlsCertificate, "rb") as pem:
                certificate = PrivateCertificate.loadPEM(pem.read())
        else:
            key = KeyPair.generate(size=2048)
            certificate = key.selfSignedCert(int(time.time()), CN=host)
        return certificate

    def _phoneStream(self, proto: str = "TCP") -> StreamFlow:
        flow = StreamFlow(self._receive, self._bad, proto, None, self._phoneClosed)
        flow.onMade = self._phoneMade
        return flow

    def _connectPhone(self, host: str, port: int) -> Deferred[Any]:
        """A TCP connection to a phone's Contact (RFC 3261 section 18.1.1)."""
        endpoint = TCP4ClientEndpoint(self.node.reactor, host, port, timeout=5)
        connected: Deferred[Any] = connectProtocol(endpoint, self._phoneStream())
        return connected

    def _phoneMade(self, flow: StreamFlow) -> None:
        if self.proxy is not None:
            self.proxy.phoneStreamMade(flow)

    def _phoneClosed(self, flow: StreamFlow) -> None:
        if self.proxy is not None:
            self.proxy.phoneStreamClosed(flow)

    def stopService(self) -> Deferred[None]:
        """Withdraw the phones' registrations, then close the sockets."""
        proxy, self.proxy = self.proxy, None
        withdrawn: Deferred[Any] = proxy.withdraw() if proxy is not None else succeed(None)

        def close(_: object) -> Deferred[Any]:
            if proxy is not None:
                proxy.connections.closeAll()
            ports, self.ports = self.ports, []
            for port in ports:
                port.stopListening()
            return maybeDeferred(MultiService.stopService, self)

        return withdrawn.addBoth(close)

    # -- the Python API -----------------------------------------------------------

    def register(self, aor: str | None = None, **kwargs: Any) -> Deferred[SipRegistration]:
        """:meth:`SipClient.register`, lifetime from ``SIP:lifetime``."""
        kwargs.setdefault("lifetime", self.options.lifetime)
        return self.client.register(aor, **kwargs)

    def forward(self, target: str, aor: str | None = None) -> Deferred[SipRegistration]:
        """:meth:`SipClient.forward`, lifetime from ``SIP:lifetime``."""
        return self.client.forward(target, aor, lifetime=self.options.lifetime)

    def resolve(self, aor: str) -> Deferred[Resolution]:
        """:meth:`SipClient.resolve` with ``SIP:max-depth``."""
        return self.client.resolve(aor, self.options.maxDepth)

    def gruu(self) -> str:
        """This node's GRUU (section 6): its AoR and its own Node-ID."""
        return encodeGruu(self.client.aor, (Destination.node(self.node.nodeId),))

    # -- operators ---------------------------------------------------------------------

    def operations(self) -> Mapping[str, Operation]:
        return {
            "register": self._register,
            "unregister": self._unregister,
            "forward": self._forward,
            "resolve": self._resolve,
            "status": lambda arguments: succeed(self.status()),
        }

    def _register(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        aor = arguments.get("aor") or None
        destinations = _nodeIds(arguments["node"]) if arguments.get("node") else None
        lifetime = self.options.lifetime
        if "lifetime" in arguments:
            try:
                lifetime = int(arguments["lifetime"])
            except ValueError:
                raise ValueError(f"lifetime: {arguments['lifetime']!r} is not a number") from None
            if not 1 <= lifetime <= 0xFFFFFFFF:
                raise ValueError(f"lifetime: {lifetime} is out of range")
        d = self.client.register(
            aor,
            destinations,
            arguments.get("contact-prefs", ""),
            lifetime,
        )
        return d.addCallback(
            lambda record: {
                "aor": self.client.aor,
                "lifetime": lifetime,
                "gruu": self.gruu(),
                **_recordDict(record),
            }
        )

    def _unregister(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        d = self.client.unregister(arguments.get("aor") or None)
        return d.addCallback(lambda _: {"aor": self.client.aor, "removed": True})

    def _forward(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        target = arguments.get("target")
        if not target:
            raise ValueError("target: the AoR to forward to is missing")
        d = self.forward(target, arguments.get("aor") or None)
        return d.addCallback(
            lambda record: {
                "aor": self.client.aor,
                "lifetime": self.options.lifetime,
                **_recordDict(record),
            }
        )

    def _resolve(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        aor = arguments.get("aor")
        if not aor:
            raise ValueError("aor: the AoR to resolve is missing")
        normaliseAor(aor)

        def found(resolution: Resolution) -> dict[str, Any]:
            if not resolution.targets:
                why = (
                    "a forwarding loop" if resolution.loop
                    else f"more than {self.options.maxDepth} forwardings" if resolution.tooDeep
                    else "no registration"
                )  # fmt: skip
                raise LookupError(
                    f"{resolution.aor}: {why} (fetched {', '.join(resolution.fetched)})"
                )
            return resolution.asDict()

        return self.resolve(aor).addCallback(found)

    def status(self) -> dict[str, Any]:
        try:
            aor: str = self.client.aor
        except NotOwnAor:
            aor = "(none: the certificate has no user name)"
        front: dict[str, Any] = (
            self.proxy.status() if self.proxy is not None else {"none": "listen=none"}
        )
        return {"aor": aor, "front end": front}


@implementer(IUsage)
class Sip:
    """The plugin object ``getPlugins(IUsage, usages)`` finds."""

    name = "SIP"
    description = "SIP usage (RFC 7904): register AoRs, resolve them, carry SIP over AppAttach."
    options = OPTIONS

    def kinds(self) -> list[IKind]:
        return [SIP_REGISTRATION]

    def accessPolicies(self) -> list[IAccessPolicy]:
        # USER-NODE-MATCH (RFC 6940 section 7.3.3) is a base policy.
        return []

    def checkOptions(self, options: Mapping[str, str]) -> None:
        parseOptions(options)

    def makeService(self, node: INode, options: dict[str, str]) -> IService:
        return SipService(node, parseOptions(options))


sip = Sip()
