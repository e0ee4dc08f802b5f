# mypy: disable-error-code="untyped-decorator"
"""AppAttach (RFC 6940 section 6.5.2) between two real nodes: a
TransportNode each, linked by a real TLS overlay link on 127.0.0.1, with
self-signed overlay certificates (section 11.3.1); the application
connection is a second, real TLS connection."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from reload.appattach import AppAttachService, AppAttachSettings
from reload.config.defaults import defaultConfiguration
from reload.errors import AppAttachFailed, AppAttachRefused, ReloadError
from reload.link.listener import LinkListener
from reload.peer import OverlayPeer
from reload.plugins import loadTopology
from reload.security.certificates import PeerIdentity, makeSelfSignedIdentity
from reload.security.signing import CertificateCache
from reload.security.tls import verifiedPeerOf
from reload.security.trust import TrustPolicy
from reload.settings import BootstrapAddress, PeerSettings
from reload.transport.attach import hostCandidate
from reload.transport.node_api import TransportNode
from reload.transport.security import SigningSecurity
from reload.transport.transport import TransportSettings
from reload.wire.attach import AppAttachAns, AppAttachReq
from reload.wire.header import Destination
from reload.wire.message import ErrorCode
from tests.link.conftest import until
from tests.transport.chain import StaticTopology

OVERLAY = "appattach.example.org"
SIP = 5060


class Recording(Protocol):
    """An application protocol that keeps what it receives."""

    def __init__(self) -> None:
        self.received = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True


class RecordingFactory(Factory):
    """Counts the protocols it builds: an application that never got a
    connection has ``built == []``."""

    def __init__(self) -> None:
        self.built: list[Recording] = []

    def buildProtocol(self, addr: IAddress | None) -> Recording:
        protocol = Recording()
        protocol.factory = self
        self.built.append(protocol)
        return protocol


@dataclass
class Node:
    identity: PeerIdentity
    node: TransportNode
    listener: LinkListener
    applications: AppAttachService

    @property
    def nodeId(self) -> bytes:
        return self.identity.nodeId


@dataclass
class Overlay:
    """Real nodes on 127.0.0.1; each routes a Node-ID to the link bound to it."""

    trust: TrustPolicy
    nodes: list[Node] = field(default_factory=list)

    async def make(
        self, appIdentity: PeerIdentity | None = None, settings: AppAttachSettings | None = None
    ) -> Node:
        """A node; ``appIdentity`` replaces its certificate on application
        connections only (an impostor's, for the refusal tests)."""
        from twisted.internet import reactor

        identity = makeSelfSignedIdentity(OVERLAY, None)
        certificates = CertificateCache(self.trust)
        now = datetime.datetime.now(datetime.UTC)
        certificates.add(self.trust.verify([identity.certificate], now))
        node = TransportNode(
            identity.nodeId,
            SigningSecurity(identity, certificates, reactor),
            reactor,
            settings=TransportSettings(overlayName=OVERLAY),
            reactor=reactor,
        )
        node.useTopology(
            StaticTopology(identity.nodeId, lambda d: d if node.transport.isConnected(d) else None)
        )
        listener = LinkListener(reactor, identity, self.trust, node.transport)
        listener.startService()
        await listener.listen("tcp:0:interface=127.0.0.1")
        applications = AppAttachService(
            node.transport,
            appIdentity or identity,
            self.trust,
            reactor,
            "127.0.0.1",
            interface="127.0.0.1",
            settings=settings,
        )
        applications.register(node.dispatcher)
        made = Node(identity, node, listener, applications)
        self.nodes.append(made)
        return made

    async def link(self, a: Node, b: Node) -> None:
        assert b.listener.port is not None
        address = b.listener.port.getHost()
        assert isinstance(address, IPv4Address)
        await a.listener.connect("127.0.0.1", address.port, b.nodeId)
        await until(lambda: a.node.transport.isConnected(b.nodeId))
        await until(lambda: b.node.transport.isConnected(a.nodeId))

    async def stop(self) -> None:
        for made in self.nodes:
            await made.applications.stop()
            made.node.stop()
            await made.listener.stopService()


@pytest.fixture
def overlay() -> Iterator[Overlay]:
    made = Overlay(TrustPolicy(OVERLAY, (), selfSignedPermitted=True))
    yield made
    pytest_twisted.blockon(Deferred.fromCoroutine(made.stop()))


def noState(service: AppAttachService) -> bool:
    return not service.pending and not service.answering


@pytest_twisted.ensureDeferred
async def test_appAttachDeliversBytesBothWaysOverTLS_6_5_2(overlay: Overlay) -> None:
    """Section 6.5.2: an AppAttach for SIP (5060, RFC 7904 section 5.1)
    gives a connection between the two factories' protocols, carrying
    bytes both ways; each side sees the other's verified Node-ID."""
    caller, callee = await overlay.make(), await overlay.make()
    await overlay.link(caller, callee)
    server = RecordingFactory()
    callee.applications.listenApplication(SIP, server)
    client = RecordingFactory()
    protocol = await caller.applications.appAttach(callee.nodeId, SIP, client)
    assert client.built == [protocol]
    assert isinstance(protocol, Recording)
    assert verifiedPeerOf(protocol.transport).nodeId == callee.nodeId
    assert protocol.transport is not None
    protocol.transport.write(b"INVITE sip:callee SIP/2.0\r\n\r\n")
    await until(lambda: server.built and server.built[0].received)
    answering = server.built[0]
    assert answering.received == b"INVITE sip:callee SIP/2.0\r\n\r\n"
    assert verifiedPeerOf(answering.transport).nodeId == caller.nodeId
    assert answering.transport is not None
    answering.transport.write(b"SIP/2.0 200 OK\r\n\r\n")
    await until(lambda: protocol.received == b"SIP/2.0 200 OK\r\n\r\n")
    # Done on both sides: no port, expectation or attempt is left.
    assert noState(caller.applications) and noState(callee.applications)
    protocol.transport.loseConnection()
    await until(lambda: answering.lost and protocol.lost)


@pytest_twisted.ensureDeferred
async def test_unknownApplicationIsErrorNotFoundAndLeavesNoState_6_5_2_2(
    overlay: Overlay,
) -> None:
    """Section 6.5.2.2: "If the Application ID is not supported, the peer
    MUST reply with an Error_Not_Found error"; neither side keeps any state
    and no application factory is called."""
    caller, callee = await overlay.make(), await overlay.make()
    await overlay.link(caller, callee)
    server = RecordingFactory()
    callee.applications.listenApplication(SIP, server)
    client = RecordingFactory()
    with pytest.raises(ReloadError) as caught:
        await caller.applications.appAttach(callee.nodeId, 5061, client)
    assert caught.value.code == ErrorCode.NOT_FOUND
    assert caught.value.nodeId == callee.nodeId
    assert noState(caller.applications) and noState(callee.applications)
    assert client.built == [] and server.built == []


@pytest_twisted.ensureDeferred
async def test_callerRefusesAnAnsweringCertificateForAnotherNodeId_RFC7904_5_1(
    overlay: Overlay,
) -> None:
    """RFC 7904 section 5.1 and RFC 6940 section 6.5.1.11: the answering
    node's certificate must hold the Node-ID the caller asked for.  Here
    the callee connects with another (overlay-trusted) node's certificate:
    the caller closes the connection, its AppAttach fails with
    AppAttachRefused, and its application never sees a connection."""
    impostor = makeSelfSignedIdentity(OVERLAY, None)
    caller, callee = await overlay.make(), await overlay.make(appIdentity=impostor)
    await overlay.link(caller, callee)
    callee.applications.listenApplication(SIP, RecordingFactory())
    client = RecordingFactory()
    with pytest.raises(AppAttachRefused, match=callee.nodeId.hex()):
        await caller.applications.appAttach(callee.nodeId, SIP, client)
    assert client.built == [] and caller.applications.refused == 1
    assert noState(caller.applications)


@pytest_twisted.ensureDeferred
async def test_answererRefusesACallerCertificateNotOfTheRequester_6_5_1_11(
    overlay: Overlay,
) -> None:
    """Section 6.5.1.11 (AppAttach is "nearly identical to Attach",
    6.5.2): the certificate on the connection must be the requester's.
    Here the caller's application port presents another node's
    certificate: the answering node (the TLS client) refuses it in the
    handshake and its application factory is never called; the caller
    gets no connection either."""
    impostor = makeSelfSignedIdentity(OVERLAY, None)
    short = AppAttachSettings(timeout=2.0)
    caller = await overlay.make(appIdentity=impostor, settings=short)
    callee = await overlay.make()
    await overlay.link(caller, callee)
    server = RecordingFactory()
    callee.applications.listenApplication(SIP, server)
    client = RecordingFactory()
    with pytest.raises(AppAttachFailed):
        await caller.applications.appAttach(callee.nodeId, SIP, client)
    # The answering side gave up (refused, not retried) and kept nothing.
    await until(lambda: noState(callee.applications))
    assert callee.applications.refused == 1
    assert server.built == [] and client.built == []
    assert noState(caller.applications)


@pytest_twisted.ensureDeferred
async def test_overlayPeersAppAttachThroughTheNodeApi_6_5_2(
    tmp_path: Path,
) -> None:
    """The peer assembly: two in-process OverlayPeers (CHORD-RELOAD,
    self-signed) on 127.0.0.1, the second joined through the first; the
    first AppAttaches to the second for SIP through the INode a usage is
    given (``peer.api``) and the bytes go both ways.  Stopping the peers closes the connection."""
    from twisted.internet import reactor

    configuration = defaultConfiguration(OVERLAY)
    topology = loadTopology(configuration.topologyPlugin)

    def settings(name: str, bootstrap: tuple[BootstrapAddress, ...]) -> PeerSettings:
        (tmp_path / name).mkdir()
        return PeerSettings(
            configuration=configuration,
            dataDir=FilePath(str(tmp_path / name)),
            listen="tcp:0:interface=127.0.0.1",
            topology=topology,
            bootstrap=bootstrap,
        )

    first = OverlayPeer(settings("first", ()), reactor)
    first.startService()
    peers = [first]
    try:
        await until(lambda: first.state == "joined")
        assert first.address is not None
        second = OverlayPeer(settings("second", (BootstrapAddress(*first.address),)), reactor)
        second.startService()
        peers.append(second)
        await until(lambda: second.state == "joined")
        assert first.api is not None and second.api is not None
        assert second.identity is not None
        server = RecordingFactory()
        second.api.listenApplication(SIP, server)
        protocol = await first.api.appAttach(second.identity.nodeId, SIP, RecordingFactory())
        assert isinstance(protocol, Recording) and protocol.transport is not None
        protocol.transport.write(b"OPTIONS")
        await until(lambda: server.built and server.built[0].received == b"OPTIONS")
        answering = server.built[0]
        assert answering.transport is not None
        answering.transport.write(b"200 OK")
        await until(lambda: protocol.received == b"200 OK")
    finally:
        for peer in reversed(peers):
            await peer.stopService()
    await until(lambda: protocol.lost and answering.lost)


@pytest_twisted.ensureDeferred
async def test_callerBoundsItsPendingAppAttachesAndCancelLeavesNoPort(overlay: Overlay) -> None:
    """A caller has at most ``maxPending`` AppAttaches in progress (each
    holds a listening port); cancelling one closes its port."""
    caller = await overlay.make(settings=AppAttachSettings(maxPending=1))
    callee = await overlay.make()
    await overlay.link(caller, callee)
    callee.applications.listenApplication(SIP, RecordingFactory())
    first = caller.applications.appAttach(callee.nodeId, SIP, RecordingFactory())
    (pending,) = caller.applications.pending
    port = pending.port
    assert port is not None
    with pytest.raises(AppAttachFailed, match="in progress"):
        await caller.applications.appAttach(callee.nodeId, SIP, RecordingFactory())
    first.cancel()
    with pytest.raises(CancelledError):
        await first
    assert noState(caller.applications) and pending.port is None


@pytest_twisted.ensureDeferred
async def test_answererBoundsItsConnectingStateWithErrorInProgress_6_5_1_2(
    overlay: Overlay,
) -> None:
    """A hostile requester cannot grow the answering node's state: with
    ``maxAnswering`` attempts connecting, the next AppAttachReq gets
    Error_In_Progress (section 6.5.1.2: "If the peer is overloaded ... it
    MAY generate an error"), and an attempt whose candidate never
    completes TLS ends after ``handshakeTimeout`` without the application
    ever seeing it."""
    from twisted.internet import reactor

    caller = await overlay.make()
    callee = await overlay.make(settings=AppAttachSettings(maxAnswering=1, handshakeTimeout=0.5))
    await overlay.link(caller, callee)
    server = RecordingFactory()
    callee.applications.listenApplication(SIP, server)
    # A "candidate" that accepts TCP and never speaks TLS.
    quiet = RecordingFactory()
    silent = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(quiet)
    try:
        address = silent.getHost()
        assert isinstance(address, IPv4Address)
        silentPort = address.port
        request = AppAttachReq(
            b"u", b"p", SIP, b"passive", (hostCandidate("127.0.0.1", silentPort),)
        ).encode()
        route = [Destination.node(callee.nodeId)]
        answer = await caller.node.transport.request(route, AppAttachReq.CODE, request)
        assert answer.code == AppAttachAns.CODE
        await until(lambda: callee.applications.answering)
        with pytest.raises(ReloadError) as caught:
            await caller.node.transport.request(route, AppAttachReq.CODE, request)
        assert caught.value.code == ErrorCode.IN_PROGRESS
        await until(lambda: not callee.applications.answering)
        assert server.built == [] and len(quiet.built) == 1
    finally:
        stopped = silent.stopListening()
        if stopped is not None:
            await stopped
