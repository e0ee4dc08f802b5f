"""The built-in TURN server as a Twisted service: UDP, TCP and TLS
listeners, UDP relay sockets, and the once-a-second expiry sweep around the
sans-I/O core (:class:`usages.turnserver.server.TurnServer`).

Use::

    config = TurnServerConfig(host="203.0.113.5", users=loadUsers("users"))
    service = TurnServerService(config)
    service.setServiceParent(parent)   # or startService()
    service.addresses                  # {"udp": (...), "tcp": (...)}
    service.status()                   # allocations, refusals by reason, ...

**Who may allocate** (RFC 6940 gives no scheme; fail closed): long-term
credential users from ``users`` (the ``TURN:users=FILE`` file, read with
:func:`loadUsers`), and, over TLS, clients whose certificate
``authorizePeerCertificate(cert)`` maps to a user name.  That callable gets
the pyOpenSSL ``X509`` the client presented (the caller's
``tlsContextFactory`` must ask for and verify client certificates, e.g.
against the overlay's root) and returns the user name to account the
allocations to (the overlay member's Node-ID, say), or None.  None, an
exception, or no certificate at all means the password rules apply: the
client gets the 401 challenge like any other.  With no users and no
certificate authorizer nobody can allocate.

Instead of a context factory, ``tlsConnectionCreator`` takes a Twisted
``IOpenSSLServerConnectionCreator`` (the TLS listener is then a
``TLSMemoryBIOFactory`` over TCP, so the creator sees every connection it
makes -- what the overlay's own verify callback needs, see
``INode.tlsServerConnectionCreator``), and ``authorizePeerConnection(
transport)`` may replace ``authorizePeerCertificate``: it gets the TLS
transport of the connection and returns the user name or None, under the
same fail-closed rules.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.protocols.tls import TLSMemoryBIOFactory

from usages.turnserver.credentials import UserKeys, UsersFileError, loadUsers
from usages.turnserver.policy import PeerPolicy
from usages.turnserver.server import Address, Limits, RelaySocket, TurnServer
from usages.turnserver.stun import FAMILY_IPV4, FAMILY_IPV6, StreamFramer, StunDecodeError

__all__ = [
    "TurnServerConfig",
    "TurnServerService",
    "UsersFileError",
    "loadUsers",
]

log = Logger()

#: A TCP or TLS connection that sends nothing for this long is closed.
STREAM_IDLE_TIMEOUT = 300


@dataclass(frozen=True)
class TurnServerConfig:
    """What the operator chooses.  Ports: an int, 0 for any free port
    (UDP and TCP then share one number when they can), None for no
    listener of that transport."""

    host: str = "0.0.0.0"
    udpPort: int | None = 3478
    tcpPort: int | None = 3478
    tlsPort: int | None = None
    tlsContextFactory: Any = None
    authorizePeerCertificate: Callable[[Any], str | None] | None = None
    tlsConnectionCreator: Any = None
    authorizePeerConnection: Callable[[Any], str | None] | None = None
    realm: str = "reload"
    users: Mapping[str, str] = field(default_factory=dict)
    relayHost: str | None = None
    relayPorts: tuple[int, int] = (49152, 65535)
    maxAllocations: int = 1000
    maxAllocationsPerUser: int = 10
    maxRelayBytesPerSecond: int | None = None
    allowLoopbackPeers: bool = False
    deniedPeers: tuple[str, ...] = ()
    #: RFC 8656 section 5: how long a nonce stays fresh (then 438).
    nonceLifetime: float = 600.0

    def validate(self) -> None:
        """Raise ValueError naming the setting that cannot work."""
        oneWay = (self.tlsContextFactory is None) != (self.tlsConnectionCreator is None)
        if self.tlsPort is not None and not oneWay:
            raise ValueError(
                "TURN: tlsPort needs one of tlsContextFactory and tlsConnectionCreator"
            )
        if self.authorizePeerCertificate is not None and self.authorizePeerConnection is not None:
            raise ValueError(
                "TURN: give authorizePeerCertificate or authorizePeerConnection, not both"
            )
        low, high = self.relayPorts
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"TURN: bad relay port range {low}-{high}")
        if self.maxAllocations < 1 or self.maxAllocationsPerUser < 1:
            raise ValueError("TURN: allocation limits must be at least 1")
        for cidr in self.deniedPeers:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"TURN: deniedPeers: not a CIDR: {cidr!r}") from None
        for name in self.users:
            if ":" in name or not name:
                raise ValueError(f"TURN: bad user name {name!r}")

    def relayAddress(self) -> str:
        """The address relayed sockets bind to and clients are told."""
        if self.relayHost is not None:
            return self.relayHost
        if self.host not in ("0.0.0.0", "::", ""):
            return self.host
        if self.allowLoopbackPeers:
            return "127.0.0.1" if self.host != "::" else "::1"
        return _defaultRouteAddress(self.host == "::")


def _defaultRouteAddress(ipv6: bool) -> str:
    """The local address of the interface with the default route (a UDP
    connect sends nothing); loopback when there is no route."""
    family = socket.AF_INET6 if ipv6 else socket.AF_INET
    target = ("2001:db8::1", 9) if ipv6 else ("192.0.2.1", 9)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect(target)
            return str(s.getsockname()[0])
        except OSError:
            return "::1" if ipv6 else "127.0.0.1"


# -- I/O edges ------------------------------------------------------------------


class _UdpListener(DatagramProtocol):
    """The UDP listener: one link for all UDP clients."""

    stream = False
    certificateUser: str | None = None

    def __init__(self, server: TurnServer) -> None:
        self.server = server

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.server.clientDatagram(self, (addr[0], addr[1]), datagram)

    def sendTo(self, data: bytes, client: Address) -> None:
        try:
            assert self.transport is not None
            self.transport.write(data, client)
        except OSError as e:
            log.debug("TURN: UDP send to {client} failed: {e}", client=client, e=e)


class _StreamConnection(Protocol, TimeoutMixin):
    """One TCP or TLS client connection: frames in, answers out.  Garbage
    closes this connection and nothing else."""

    stream = True

    def __init__(self, service: TurnServerService, kind: str) -> None:
        self.service = service
        self.kind = kind
        self.framer = StreamFramer()
        self.client: Address = ("", 0)
        self.certificateUser: str | None = None
        self._certificateChecked = kind != "tls"

    def connectionMade(self) -> None:
        peer: Any = self.transport.getPeer()  # type: ignore[union-attr]
        self.client = (peer.host, peer.port)
        self.setTimeout(STREAM_IDLE_TIMEOUT)

    def _checkCertificate(self) -> None:
        self._certificateChecked = True
        config = self.service.config
        subject: Any
        if config.authorizePeerConnection is not None:
            authorize = config.authorizePeerConnection
            subject = self.transport
        elif config.authorizePeerCertificate is not None:
            authorize = config.authorizePeerCertificate
            try:
                subject = self.transport.getPeerCertificate()  # type: ignore[union-attr]
            except Exception:
                subject = None
        else:
            return
        if subject is None:
            return
        try:
            user = authorize(subject)
        except Exception:
            log.failure("TURN: authorizePeerCertificate failed; treated as not authorized")
            user = None
        self.certificateUser = user if isinstance(user, str) and user else None

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        if not self._certificateChecked:
            self._checkCertificate()
        server = self.service.server
        assert server is not None
        try:
            frames = self.framer.feed(data)
        except StunDecodeError as e:
            server.refusals["malformed"] += 1
            log.info("TURN: closing {kind} connection from {client}: {e}",
                     kind=self.kind, client=self.client, e=e)  # fmt: skip
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        for frame in frames:
            server.clientFrame(self, self.client, frame)

    def sendTo(self, data: bytes, client: Address) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def timeoutConnection(self) -> None:
        self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        if self.service.server is not None:
            self.service.server.linkLost(self)


class _StreamFactory(Factory):
    def __init__(self, service: TurnServerService, kind: str) -> None:
        self.service = service
        self.kind = kind

    def buildProtocol(self, addr: Any) -> _StreamConnection:
        return _StreamConnection(self.service, self.kind)


class _Relay(DatagramProtocol):
    """A relayed transport address: datagrams from peers go to the core."""

    def __init__(self, server: TurnServer, host: str, port: int) -> None:
        self.server = server
        self.address: Address = (host, port)
        self.port = port

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.server.peerDatagram(self.port, datagram, (addr[0], addr[1]))

    def sendTo(self, data: bytes, peer: Address) -> None:
        try:
            assert self.transport is not None
            self.transport.write(data, peer)
        except OSError as e:
            log.debug("TURN: relay send to {peer} failed: {e}", peer=peer, e=e)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.stopListening()


# -- the service ------------------------------------------------------------------


class TurnServerService(Service):
    """Listens, relays and expires; :meth:`status` for the admin API."""

    def __init__(self, config: TurnServerConfig, reactor: Any = None) -> None:
        config.validate()
        self.config = config
        if reactor is None:
            from twisted.internet import reactor as defaultReactor

            reactor = defaultReactor
        self.reactor = reactor
        self.server: TurnServer | None = None
        self.addresses: dict[str, tuple[str, int]] = {}
        self._ports: list[Any] = []
        self._sweep: LoopingCall | None = None

    def _openRelay(self, port: int, dontFragment: bool) -> RelaySocket | None:
        assert self.server is not None
        host = self.config.relayAddress()
        relay = _Relay(self.server, host, port)
        try:
            listening = self.reactor.listenUDP(port, relay, interface=host)
        except CannotListenError:
            return None
        if dontFragment and hasattr(socket, "IP_MTU_DISCOVER"):
            with contextlib.suppress(OSError, AttributeError):
                listening.socket.setsockopt(
                    socket.IPPROTO_IP,
                    socket.IP_MTU_DISCOVER,
                    socket.IP_PMTUDISC_DO,  # type: ignore[attr-defined]
                )
        return relay

    def startService(self) -> None:
        config = self.config
        relayHost = config.relayAddress()
        family = FAMILY_IPV6 if ":" in relayHost else FAMILY_IPV4
        policy = PeerPolicy(
            allowLoopbackPeers=config.allowLoopbackPeers, deniedPeers=config.deniedPeers
        )
        self.server = TurnServer(
            realm=config.realm,
            users=UserKeys(config.realm, config.users),
            policy=policy,
            openRelay=self._openRelay,
            relayFamily=family,
            limits=Limits(
                maxAllocations=config.maxAllocations,
                maxAllocationsPerUser=config.maxAllocationsPerUser,
                maxRelayBytesPerSecond=config.maxRelayBytesPerSecond,
                relayPorts=config.relayPorts,
                nonceLifetime=config.nonceLifetime,
            ),
            clock=self.reactor.seconds,
        )
        try:
            self._listen(policy)
        except Exception:
            self._closePorts()
            raise
        self._sweep = LoopingCall(self.server.expire)
        self._sweep.clock = self.reactor
        self._sweep.start(1.0, now=False)
        super().startService()
        log.info("TURN server listening on {addresses}, relaying from {relay}",
                 addresses=self.addresses, relay=relayHost)  # fmt: skip

    def _listen(self, policy: PeerPolicy) -> None:
        config = self.config
        assert self.server is not None
        host = config.host
        if config.udpPort is not None:
            port = self.reactor.listenUDP(config.udpPort, _UdpListener(self.server), interface=host)
            self._ports.append(port)
            self.addresses["udp"] = (host, port.getHost().port)
        if config.tcpPort is not None:
            tcpPort = config.tcpPort
            if tcpPort == 0 and config.udpPort == 0:
                tcpPort = self.addresses["udp"][1]
            factory = _StreamFactory(self, "tcp")
            try:
                port = self.reactor.listenTCP(tcpPort, factory, interface=host)
            except CannotListenError:
                if config.tcpPort != 0:
                    raise
                port = self.reactor.listenTCP(0, factory, interface=host)
            self._ports.append(port)
            self.addresses["tcp"] = (host, port.getHost().port)
        if config.tlsPort is not None:
            streams = _StreamFactory(self, "tls")
            if config.tlsConnectionCreator is not None:
                wrapped = TLSMemoryBIOFactory(config.tlsConnectionCreator, False, streams)
                port = self.reactor.listenTCP(config.tlsPort, wrapped, interface=host)
            else:
                port = self.reactor.listenSSL(
                    config.tlsPort, streams, config.tlsContextFactory, interface=host
                )
            self._ports.append(port)
            self.addresses["tls"] = (host, port.getHost().port)
        for address in self.addresses.values():
            policy.addOwnAddress(*address)

    def _closePorts(self) -> list[Any]:
        stopping = [port.stopListening() for port in self._ports]
        self._ports.clear()
        return stopping

    def stopService(self) -> Any:
        super().stopService()
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        from twisted.internet.defer import DeferredList

        stopping = self._closePorts()
        if self.server is not None:
            self.server.stop()
        return DeferredList([d for d in stopping if d is not None])

    def status(self) -> dict[str, Any]:
        """Allocations, permissions, channels, reservations, bytesRelayed,
        packetsRelayed, refusals (by reason), users, and the listening
        addresses and relay address."""
        answer: dict[str, Any] = {
            "running": bool(self.running),
            "addresses": {k: list(v) for k, v in self.addresses.items()},
            "relayHost": self.config.relayAddress(),
            "relayPorts": list(self.config.relayPorts),
        }
        if self.server is None:
            answer.update(
                allocations=0, permissions=0, channels=0, reservations=0,
                bytesRelayed=0, packetsRelayed=0, refusals={}, users=len(self.config.users),
            )  # fmt: skip
        else:
            answer.update(self.server.status())
        return answer
