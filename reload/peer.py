"""One peer's membership of the overlay: credentials, links, message
transport and topology, started and stopped as one Twisted service.

Start-up follows RFC 6940 sections 11.3 and 11.4: obtain credentials
(:mod:`reload.identity`), listen for links, connect to a bootstrap peer and
join through it (for CHORD-RELOAD, section 10.5); with no bootstrap peer the
node starts a new overlay.  Shutdown leaves gracefully (section 10.9 for
CHORD-RELOAD) before closing the links.
"""

from __future__ import annotations

import dataclasses
import datetime
import socket
from collections.abc import Callable, Sequence
from ipaddress import ip_address
from pathlib import Path
from typing import Any, cast

from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.appattach import AppAttachService
from reload.certificatepublisher import CertificatePublisher
from reload.config import OverlayConfiguration, writeConfiguration
from reload.config.sequence import ANY_SEQUENCE
from reload.configupdate import ConfigurationUpdater
from reload.enrollment.protocol import EnrollmentError
from reload.files import writeAtomically
from reload.identity import CredentialsError, peerIdentity
from reload.link.dtls import DTLSEndpoint, DTLSSettings, listenDTLS
from reload.link.listener import LinkListener
from reload.link.stunport import StunPort
from reload.link.table import ConnectionTable
from reload.link.turnclient import TurnClient
from reload.link.turntls import allocateOverTls
from reload.overlaynode import OverlayNode
from reload.security.certificates import PeerIdentity
from reload.security.keylog import keyLogFile
from reload.security.signing import CertificateCache
from reload.security.trust import TrustPolicy
from reload.settings import DEFAULT_CONFIGURATION_FILE, BootstrapAddress, PeerSettings
from reload.storage.kinds import CERTIFICATE_BY_NODE, CERTIFICATE_BY_USER
from reload.storage.sqlite import SQLiteStore
from reload.storageclient import DEFAULT_LIFETIME, StorageClient
from reload.storagestack import StorageStack
from reload.transport.attach import NoIceAttachHandler, hostCandidate
from reload.transport.iceappattach import IceAppAttach, RelayServer
from reload.transport.iceattach import IceAttachHandler
from reload.transport.node_api import TransportNode
from reload.transport.security import SigningSecurity
from reload.transport.trace import MessageObserver
from reload.transport.transport import TransportSettings
from reload.usageruntime import UsageError, UsageRunner, kindTable, usageKinds
from reload.wire.attach import IceCandidate, OverlayLinkType
from reload.wire.header import Destination
from reload.wire.methods import ConfigUpdateReq
from reload.wire.storage import ArrayEntry, DataValue

__all__ = ["OverlayPeer"]

#: Seconds between rounds of bootstrap attempts when none answered.
BOOTSTRAP_RETRY = 10.0
#: Seconds between two ConfigUpdates pushed to the same outdated peer.
CONFIG_PUSH_INTERVAL = 60.0
#: Seconds a graceful leave may take at shutdown before links are closed.
LEAVE_TIMEOUT = 5.0
#: Seconds between checks that a peer behind a NAT has a relay from a TURN
#: server found in the overlay (section 6.5.1.5), while it has none.
OVERLAY_RELAY_INTERVAL = 15.0
#: Seconds one source may take to offer servers (its overlay searches);
#: a search stuck on a broken route is given up until the next round.
RELAY_SEARCH_TIMEOUT = 10.0


class OverlayPeer(Service):
    """The overlay side of a peer; :attr:`state` says how far it got."""

    log = Logger()

    def __init__(self, settings: PeerSettings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        self.state = "stopped"
        self.error: str | None = None
        self.identity: PeerIdentity | None = None
        self.node: TransportNode | None = None
        self.listener: LinkListener | None = None
        #: Told of every message and request (set by the admin API's metrics).
        self.messageObserver: MessageObserver | None = None
        self.dtls: DTLSEndpoint | None = None
        #: STUN on the DTLS port and ICE for Attach (section 6.5.1.3).
        self.stun: StunPort | None = None
        self.ice: IceAttachHandler | None = None
        #: AppAttach (section 6.5.2): ``listenApplication`` and ``appAttach``.
        self.applications: AppAttachService | None = None
        self.store: SQLiteStore | None = None
        self.storage: StorageClient | None = None
        self.storageStack: StorageStack | None = None
        #: Keeps this peer's certificate stored in the overlay (section 11.3.1).
        self.certificates: CertificatePublisher | None = None
        #: The INode usages and topologies are given.
        self.api: OverlayNode | None = None
        self.usages = UsageRunner(settings.usages, settings.usageOptions)
        self.topology: Any = None
        self.address: tuple[str, int] | None = None
        self._starting: Deferred[None] | None = None
        self.configuration: OverlayConfiguration = settings.configuration
        self.trust: TrustPolicy | None = None
        #: Keeps a relay from a TURN server found in the overlay.
        self._overlayRelay: LoopingCall | None = None
        self._seekingRelay = False
        #: The overlay member whose TURN server our relay is on.
        self.relayNodeId: bytes | None = None
        self._configurationDocument = b""
        self._configurationSent: dict[bytes, float] = {}
        #: Called with the one-line reason when start-up fails (the twistd
        #: service sets it to end the process with a non-zero status);
        #: None: stop the reactor.
        self.onFatal: Callable[[str], None] | None = None

    # -- start -----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.state = "starting"
        self._starting = Deferred.fromCoroutine(self._start())
        self._starting.addErrback(self._startFailed)

    def _startFailed(self, failure: Failure) -> None:
        if failure.check(CancelledError) and not self.running:
            return  # stopped while starting: nothing failed
        self.state = "failed"
        if failure.check(CredentialsError, EnrollmentError, CannotListenError, UsageError):
            self.error = failure.getErrorMessage()
            self.log.critical("Cannot start the peer: {error}", error=self.error)
        else:
            self.error = f"{failure.value.__class__.__name__}: {failure.getErrorMessage()}"
            self.log.failure("Cannot start the peer", failure)
        # A peer that cannot be a member of the overlay has nothing to serve.
        if not self.running:
            return
        if self.onFatal is not None:
            self.onFatal(self.error)
        elif self.reactor.running:
            self.reactor.stop()

    async def _start(self) -> None:
        settings = self.settings
        keyLog = keyLogFile()
        if keyLog is not None:
            self.log.warn(
                "SSLKEYLOGFILE is set: the TLS and DTLS secrets of every link are written to "
                "{path}; anyone with that file can read this peer's traffic",
                path=keyLog,
            )
        configuration = settings.configuration
        self.identity = identity = await peerIdentity(
            self.reactor,
            configuration,
            Path(settings.dataDir.path),
            settings.userName,
            settings.password,
        )
        self.log.info(
            "Node-ID {nodeId} ({userName}) in overlay {overlay}",
            nodeId=identity.nodeId.hex(),
            userName=identity.userName or "no user name",
            overlay=configuration.instanceName,
        )
        self.trust = trust = TrustPolicy.fromConfiguration(configuration)
        certificates = CertificateCache(trust)
        # Our own signatures are verified too (a Store this peer is itself
        # responsible for is delivered locally, section 6.1.1).
        now = datetime.datetime.fromtimestamp(self.reactor.seconds(), datetime.UTC)
        certificates.add(trust.verify([identity.certificate, *identity.chain], now))
        security = SigningSecurity(identity, certificates, self.reactor)
        connectors: dict[int, Any] = {OverlayLinkType.TLS_TCP_FH_NO_ICE: self._connect}
        if self._dtls:
            connectors[OverlayLinkType.DTLS_UDP_SR_NO_ICE] = self._connectDTLS
        noIce = NoIceAttachHandler(
            self._connect, self._candidates, connectors=connectors, clock=self.reactor
        )
        node = TransportNode(
            identity.nodeId,
            security,
            self.reactor,
            configuration=configuration,
            attachHandler=noIce,
            reactor=self.reactor,
        )
        self.node = node
        node.transport.trace = settings.traceMessages
        node.transport.observer = self.messageObserver
        links = dataclasses.replace(
            settings.linkSettings, maxMessageSize=configuration.maxMessageSize
        )
        node.transport.maxMalformed = links.maxMalformed
        node.transport.malformedInterval = links.malformedInterval
        listener = LinkListener(
            self.reactor,
            identity,
            trust,
            node.transport,
            settings=links,
            table=ConnectionTable(identity.nodeId, maxLinks=settings.maxLinks),
        )
        self.listener = listener
        port = await listener.listen(settings.listen)
        bound = cast(IPv4Address | IPv6Address, port.getHost())
        self.address = (self._advertised(bound.host), bound.port)
        self.applications = AppAttachService(
            node.transport, identity, trust, self.reactor, self.address[0], interface=bound.host
        )
        self.applications.register(node.dispatcher)
        if self._dtls:
            # Section 6.6.6 links on the same port number, over UDP.
            self.dtls = listenDTLS(
                self.reactor,
                bound.port,
                identity,
                trust,
                node.transport,
                DTLSSettings(maxMessageSize=configuration.maxMessageSize),
                interface=bound.host,
            )
            # Section 6.5.1: the DTLS port is also a STUN server and where
            # ICE checks run; Attach uses ICE whenever a NAT is involved.
            self.stun = StunPort(self.dtls, self.reactor)
            self.ice = IceAttachHandler(
                noIce,
                self.stun,
                self._dtlsAddress,
                self._connectDTLS,
                isConnected=node.transport.isConnected,
            )
            assert node.attachService is not None
            node.attachService.handler = self.ice
            await self.ice.discover(self._stunServers())
            await self._allocateRelay(self.stun)
            # Section 6.5.2: AppAttach over ICE, on a port of its own each.
            self.applications.ice = IceAppAttach(
                self.reactor,
                identity,
                trust,
                self.address[0],
                interface=bound.host,
                stunServers=self._stunServers,
                relayServers=self._relayServers,
                behindNat=lambda: None if self.ice is None else self.ice.behindNat,
            )
        # TransportNode is the routing part of INode; storage joins it later.
        self.configuration = configuration
        self._configurationDocument = writeConfiguration(configuration)
        updater = ConfigurationUpdater(
            lambda: self.configuration, self._reconfigure, security.certificates, self.reactor
        )
        node.dispatcher.register(ConfigUpdateReq.CODE, updater)
        node.transport.onConfigurationTooOld = self._sendConfiguration
        usageKindsById = usageKinds(configuration, settings.usages)
        self.api = api = OverlayNode(
            node,
            kinds=usageKindsById,
            configuration=lambda: self.configuration,
            applications=self.applications,
        )
        # Section 9: usages (TURN) ask whether this peer is behind a NAT.
        api.natState = lambda: None if self.ice is None else self.ice.behindNat
        if settings.client:
            # Section 4.2: a client uses the overlay without joining it.
            self.topology = settings.topology.makeClientTopology(api, settings.directLinks)
        else:
            self.topology = settings.topology.makeTopology(api)
        node.useTopology(self.topology)
        self._startStorage(identity, security.certificates, usageKindsById)
        self.state = "joining"
        await self._join(identity.nodeId)
        self.state = "joined"
        self._storeCertificates(identity)
        # Section 5.2: the usages run once the node is part of the overlay.
        self.usages.start(api)
        if self.stun is not None and self.settings.turnServer is None:
            # Section 6.5.1.5: relays from TURN servers the usages find.
            self._overlayRelay = LoopingCall(self._keepOverlayRelay)
            self._overlayRelay.clock = self.reactor
            self._overlayRelay.start(OVERLAY_RELAY_INTERVAL, now=True)
        self.log.info(
            "Joined overlay {overlay} as {nodeId}, links on {host}:{port}",
            overlay=configuration.instanceName,
            nodeId=identity.nodeId.hex(),
            host=self.address[0],
            port=self.address[1],
        )

    def _startStorage(
        self,
        identity: PeerIdentity,
        certificates: CertificateCache,
        usageKindsById: dict[int, Any],
    ) -> None:
        """Section 7: this peer stores what it is responsible for, in SQLite
        in its data directory, and offers Store/Fetch/Stat/Find to others;
        the usages' Kinds check their values (``IKind.validate``) on every
        Store and Fetch."""
        assert self.node is not None and self.api is not None
        kinds, registry = kindTable(self.configuration, self.settings.usages, usageKindsById)
        self.store = SQLiteStore.inDirectory(
            self.settings.dataDir.path, synchronous=self.settings.storageSync
        )
        self.storageStack = stack = StorageStack(
            self.node,
            identity,
            certificates,
            self.topology,
            kinds,
            registry,
            self.store,
            clock=self.reactor,
            quota=self.settings.storageQuota,
            configuration=lambda: self.configuration,
        )
        self.storage = self.api.storage = stack.client
        stack.start()

    def _storeCertificates(self, identity: PeerIdentity) -> None:
        """Section 11.3.1: a peer stores its certificate in the overlay, at
        its Node-ID (CERTIFICATE_BY_NODE) and at its user name
        (CERTIFICATE_BY_USER), for those who need it to verify a signature
        (section 8) -- and keeps it there while it runs (retried after a
        failure, refreshed before it expires: CertificatePublisher)."""
        assert self.storage is not None and self.topology is not None
        storage, topology = self.storage, self.topology
        value = ArrayEntry(0, DataValue(True, identity.certificateDer))
        targets = [(CERTIFICATE_BY_NODE, identity.nodeId)]
        if identity.userName:
            targets.append((CERTIFICATE_BY_USER, identity.userName.encode()))
        targets = [(k, name) for k, name in targets if storage.service.kinds.get(k) is not None]

        def store(kindId: int, name: bytes, lifetime: int) -> Deferred[Any]:
            return storage.store(topology.hashResource(name), kindId, [value], lifetime=lifetime)

        self.certificates = CertificatePublisher(store, targets, self.reactor, DEFAULT_LIFETIME)
        self.certificates.start()

    def _reconfigure(self, configuration: OverlayConfiguration, document: bytes) -> None:
        """Section 6.5.4.2: make a verified, newer configuration the one in
        force, and keep it in the data directory for later starts."""
        assert self.node is not None
        self.configuration = configuration
        self._configurationDocument = document
        writeAtomically(Path(self.settings.dataDir.path, DEFAULT_CONFIGURATION_FILE), document)
        settings = TransportSettings.fromConfiguration(configuration)
        self.node.settings = self.node.transport.settings = settings
        self.log.info(
            "Configuration of {overlay} updated to sequence {sequence}",
            overlay=configuration.instanceName,
            sequence=configuration.sequence,
        )

    def _sendConfiguration(self, nodeId: bytes) -> None:
        """Section 6.3.2.1: a peer with an older configuration gets ours,
        at most once a minute."""
        now = self.reactor.seconds()
        if now - self._configurationSent.get(nodeId, -CONFIG_PUSH_INTERVAL) < CONFIG_PUSH_INTERVAL:
            return
        self._configurationSent[nodeId] = now
        assert self.node is not None
        self.node.transport.request(
            [Destination.node(nodeId)],
            ConfigUpdateReq.CODE,
            ConfigUpdateReq.for_config(self._configurationDocument).encode(),
            configurationSequence=ANY_SEQUENCE,
        ).addErrback(
            lambda f: self.log.info(
                "ConfigUpdate to {nodeId}: {error}", nodeId=nodeId.hex(), error=f.getErrorMessage()
            )
        )

    def _advertised(self, host: str) -> str:
        """The address other peers reach our listener on (section 6.5.1:
        our host candidate)."""
        if self.settings.advertise:
            return self.settings.advertise
        if host in ("0.0.0.0", "::"):
            name = socket.gethostbyname(socket.gethostname())
            self.log.warn(
                "Listening on all interfaces; advertising {address} to other peers "
                "(set --advertise to choose)",
                address=name,
            )
            return name
        return host

    @property
    def _dtls(self) -> bool:
        """Section 11.1: overlay-link-protocol "TLS" (also the default when
        there is none) means TLS and DTLS; "DTLS" alone means DTLS."""
        protocols = {p.upper() for p in self.settings.configuration.overlayLinkProtocols}
        return not protocols or bool(protocols & {"TLS", "DTLS"})

    def _candidates(self) -> Sequence[IceCandidate]:
        """Our host candidates (section 6.5.1.5): TLS, and DTLS on the same
        port number; the preferred link protocol gets the higher priority."""
        if self.address is None:
            return ()
        host, port = self.address
        tls = OverlayLinkType.TLS_TCP_FH_NO_ICE
        dtls = OverlayLinkType.DTLS_UDP_SR_NO_ICE
        order = [dtls, tls] if self.settings.linkProtocol == "dtls" else [tls, dtls]
        if not self._dtls:
            order.remove(dtls)
        return [
            hostCandidate(host, port, linkType, localPreference=65535 - rank)
            for rank, linkType in enumerate(order)
        ]

    async def _allocateRelay(self, stun: StunPort) -> None:
        """Section 6.5.1.5: a relayed candidate on the configured TURN
        server, allocated from the DTLS/STUN port; without one the peer
        goes on with host and server-reflexive candidates."""
        settings = self.settings
        if settings.turnServer is None or settings.turnUser is None:
            return
        turn = TurnClient(
            settings.turnServer,
            settings.turnUser,
            settings.turnPassword or "",
            stun.endpoint.sendDatagram,
            stun.relayedReceived,
            self.reactor,
        )
        stun.turn = turn
        try:
            relayed = await turn.allocate()
        except Exception as exc:
            self.log.warn(
                "No relayed candidate: TURN allocation on {server} failed: {error}",
                server=f"{settings.turnServer[0]}:{settings.turnServer[1]}",
                error=exc,
            )
            return
        self.log.info("Relayed candidate {host}:{port}", host=relayed[0], port=relayed[1])

    def _keepOverlayRelay(self) -> Deferred[None] | None:
        """Section 6.5.1.5 with section 9: a peer ICE found behind a NAT,
        with no ``--turn-server``, keeps a relay on a TURN server that an
        overlay member runs and a usage found (:class:`IRelaySource`); a
        relay lost (its TLS stream closed, a refresh refused) is replaced
        at the next round."""
        stun, api = self.stun, self.api
        if stun is None or api is None or self._seekingRelay:
            return None
        if self.ice is None or not self.ice.behindNat or not api.relaySources:
            return None
        if stun.turn is not None and stun.turn.relayed is not None:
            # Checks that ran without it (it may have come during them).
            self._attachAgain()
            return None
        self._seekingRelay = True
        seeking = Deferred.fromCoroutine(self._seekOverlayRelay(stun, list(api.relaySources)))

        def done(result: object) -> None:
            self._seekingRelay = False
            if isinstance(result, Failure):
                self.log.failure("Seeking a relay in the overlay", result)

        return seeking.addBoth(done)

    async def _seekOverlayRelay(self, stun: StunPort, sources: list[Any]) -> None:
        assert self.identity is not None and self.trust is not None
        if stun.turn is not None:
            stun.turn.stop()
            stun.turn = None
            self.relayNodeId = None
        for source in sources:
            try:
                offered = source.relayServers()
                offered.addTimeout(RELAY_SEARCH_TIMEOUT, self.reactor)
                servers = list(await offered)
            except Exception as exc:
                self.log.info("No TURN servers from {source}: {error}", source=source,
                              error=str(exc) or type(exc).__name__)  # fmt: skip
                continue
            if not servers:
                self.log.info("No TURN server found in the overlay yet ({source})", source=source)
            for server in servers:
                if server.nodeId == self.identity.nodeId:
                    continue  # our own server cannot relay for us from behind our NAT
                try:
                    turn = await allocateOverTls(
                        self.reactor,
                        (server.host, server.port),
                        server.nodeId,
                        self.identity,
                        self.trust,
                        stun.relayedReceived,
                    )
                except Exception as exc:
                    self.log.info(
                        "No relay on {host}:{port} of {nodeId}: {error}",
                        host=server.host,
                        port=server.port,
                        nodeId=server.nodeId.hex(),
                        error=exc,
                    )
                    continue
                if not self.running or self.stun is not stun:
                    turn.stop()
                    return
                stun.turn = turn
                self.relayNodeId = server.nodeId
                assert turn.relayed is not None
                self.log.info(
                    "Relayed candidate {host}:{port} on the TURN server of {nodeId}",
                    host=turn.relayed[0],
                    port=turn.relayed[1],
                    nodeId=server.nodeId.hex(),
                )
                self._attachAgain()
                return

    def _attachAgain(self) -> None:
        """Links whose checks ran without a relayed candidate of ours and
        failed (the relay comes only after the join) get another Attach now
        that there is one, with
        send_update so the other side's Update tells the topology of it
        (section 6.5.1: an Update once the link is up)."""
        if self.ice is None or self.node is None:
            return
        waiting, self.ice.failedWithoutRelay = self.ice.failedWithoutRelay, set()
        for nodeId in sorted(waiting):
            if self.node.transport.isConnected(nodeId):
                continue
            self.node.attach(nodeId, sendUpdate=True).addErrback(self._attachAgainFailed, nodeId)

    def _attachAgainFailed(self, failure: Failure, nodeId: bytes) -> None:
        self.log.info("Attach to {nodeId} with a relayed candidate: {error}",
                      nodeId=nodeId.hex(), error=failure.getErrorMessage())  # fmt: skip

    def _relayServers(self) -> list[RelayServer]:
        """TURN servers for relayed candidates of AppAttach (section
        6.5.1.5): the configured one, else the overlay member's server the
        DTLS port's relay is on (over TLS, its Node-ID checked)."""
        settings = self.settings
        if settings.turnServer is not None and settings.turnUser is not None:
            return [
                RelayServer(settings.turnServer, settings.turnUser, settings.turnPassword or "")
            ]
        turn = None if self.stun is None else self.stun.turn
        if turn is None or not turn.overTls or self.relayNodeId is None:
            return []
        return [RelayServer(turn.server, "", "", nodeId=self.relayNodeId)]

    def _dtlsAddress(self) -> tuple[str, int] | None:
        """The DTLS port's host candidate address (same port number as TLS)."""
        return self.address

    def _stunServers(self) -> list[tuple[str, int]]:
        """Section 6.5.1.4: the bootstrap peers are the first STUN servers
        (their link ports; IP addresses only)."""
        servers = []
        for peer in self._bootstrapPeers():
            try:
                servers.append((str(ip_address(peer.host)), peer.port))
            except ValueError:
                continue
        return servers

    def _connect(self, host: str, port: int, nodeId: bytes) -> Deferred[Any]:
        assert self.listener is not None
        return self.listener.connect(host, port, nodeId)

    def _connectDTLS(self, host: str, port: int, nodeId: bytes) -> Deferred[Any]:
        assert self.dtls is not None
        return self.dtls.connect(host, port, nodeId)

    def _bootstrapPeers(self) -> list[BootstrapAddress]:
        if self.settings.bootstrap:
            return list(self.settings.bootstrap)
        return [
            BootstrapAddress(b.address, b.port) for b in self.settings.configuration.bootstrapNodes
        ]

    async def _join(self, ownNodeId: bytes) -> None:
        """Section 11.4: contact a bootstrap peer and join through it.
        Without any, or when the only one answering is this peer itself,
        start a new overlay."""
        peers = self._bootstrapPeers()
        assert self.listener is not None
        while self.running:
            sawSelf = sawOther = False
            for peer in peers:
                try:
                    link = await self.listener.connectBootstrap(peer.host, peer.port)
                except Exception as exc:
                    self.log.warn(
                        "Bootstrap peer {peer} unreachable: {error}", peer=str(peer), error=exc
                    )
                    continue
                if link.nodeId == ownNodeId:
                    sawSelf = True
                    link.close()
                    continue
                sawOther = True
                assert link.nodeId is not None
                self.log.info(
                    "Joining through bootstrap peer {peer} ({nodeId})",
                    peer=str(peer),
                    nodeId=link.nodeId.hex(),
                )
                try:
                    await self.topology.join(link.nodeId)
                    return
                except Exception as exc:
                    self.log.warn("Join through {peer} failed: {error}", peer=str(peer), error=exc)
            if not peers or (sawSelf and not sawOther):
                await self.topology.join(None)
                return
            self.log.info("No bootstrap peer answered; trying again in {s} s", s=BOOTSTRAP_RETRY)
            await deferLater(self.reactor, BOOTSTRAP_RETRY, lambda: None)

    # -- stop -----------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._starting is not None and not self._starting.called:
            self._starting.cancel()
        joined = self.state == "joined"
        self.state = "stopped"
        if self._overlayRelay is not None and self._overlayRelay.running:
            self._overlayRelay.stop()

        def leave(_: object) -> Deferred[Any]:
            if not joined or self.topology is None:
                return succeed(None)
            leaving: Deferred[Any] = self.topology.leave()
            leaving.addTimeout(LEAVE_TIMEOUT, self.reactor)
            leaving.addErrback(lambda f: self.log.info("Leave: {e}", e=f.getErrorMessage()))
            return leaving

        def close(_: object) -> Deferred[Any]:
            if self.certificates is not None:
                self.certificates.stop()
            if self.storageStack is not None:
                self.storageStack.stop()
            if self.node is not None:
                self.node.stop()
            if self.store is not None:
                self.store.close()
            closing: list[Deferred[Any]] = []
            if self.applications is not None:
                closing.append(self.applications.stop())
            if self.stun is not None:
                self.stun.stop()
            if self.dtls is not None:
                closing.append(self.dtls.stop())
            if self.listener is not None:
                closing.append(self.listener.stopService())
            return DeferredList(closing, consumeErrors=True)

        # Section 5.2: the usages stop while the node is still in the
        # overlay, so they can withdraw what they registered.
        return self.usages.stop().addCallback(leave).addCallback(close).addCallback(lambda _: None)

    # -- status ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The overlay part of the admin API's status."""
        out: dict[str, Any] = {
            "state": self.state,
            "role": "client" if self.settings.client else "peer",
        }
        if self.error:
            out["error"] = self.error
        if self.identity is not None:
            out["nodeId"] = self.identity.nodeId.hex()
            out["userName"] = self.identity.userName
        if self.address is not None:
            out["address"] = f"{self.address[0]}:{self.address[1]}"
        if self.node is not None:
            out["links"] = sorted(nodeId.hex() for nodeId in self.node.transport.connected)
        if self.listener is not None:
            out["linkTypes"] = {
                "tls": len(self.listener.table.items()),
                "dtls": 0 if self.dtls is None else len(self.dtls.links),
            }
        if self.ice is not None:
            # Section 6.5.1: what ICE found out, and each ICE link's pair type.
            out["nat"] = {
                "behindNat": self.ice.behindNat,
                "reflexive": None
                if self.ice.reflexive is None
                else f"{self.ice.reflexive[0]}:{self.ice.reflexive[1]}",
                "relayed": None
                if self.ice.relayed is None
                else f"{self.ice.relayed[0]}:{self.ice.relayed[1]}",
                # Where the relay is: the TURN server and, for one found in
                # the overlay (section 9), the member running it.
                "relayServer": None
                if self.stun is None or self.stun.turn is None
                else f"{self.stun.turn.server[0]}:{self.stun.turn.server[1]}",
                "relayTransport": None
                if self.stun is None or self.stun.turn is None
                else ("tls" if self.stun.turn.overTls else "udp"),
                "relayNodeId": None if self.relayNodeId is None else self.relayNodeId.hex(),
                # Datagrams through our TURN relay, each way.
                "relayedIn": 0
                if self.stun is None or self.stun.turn is None
                else self.stun.turn.relayedIn,
                "relayedOut": 0
                if self.stun is None or self.stun.turn is None
                else self.stun.turn.relayedOut,
                "setupTimes": {
                    **{k: list(v) for k, v in self.ice.setupTimes.items()},
                    # NO-ICE links this peer connected (section 6.5.1.11).
                    "no-ice": list(self.ice.noIce.setupTimes),
                },
                "pairTypes": {
                    n.hex(): t
                    for n, t in sorted(self.ice.pairTypes.items())
                    if self.node is None or n in self.node.transport.connected
                },
            }
        if self.node is not None:
            # Messages this peer sent, received, forwarded... since it started.
            out["counters"] = dict(sorted(self.node.transport.counters.items()))
        if self.storage is not None:
            service = self.storage.service
            replicator = self.storageStack.replicator if self.storageStack else None
            out["storage"] = {
                "resources": service.numResources,
                "quota": service.quota,
                "replicaStoresSent": replicator.sent if replicator else 0,
                "replicaStoresFailed": replicator.failed if replicator else 0,
                # Copies (a Resource-ID to a peer) a failure stopped, waiting
                # to be resumed, and the last failure's reason (section 10.4).
                "replicaPlacementsPending": replicator.unplaced if replicator else 0,
                "lastReplicaFailure": _describeFailure(replicator.lastFailure)
                if replicator
                else None,
            }
        out["usages"] = self.usages.status()
        if self.topology is not None:
            out["neighbours"] = {
                role: [n.hex() for n in ids] for role, ids in self.topology.neighbours().items()
            }
        return out


def _describeFailure(failure: tuple[float, bytes, bytes, str] | None) -> dict[str, Any] | None:
    """The status page's view of :attr:`Replicator.lastFailure`."""
    if failure is None:
        return None
    when, resourceId, peer, why = failure
    return {"time": when, "resourceId": resourceId.hex(), "peer": peer.hex(), "reason": why}
