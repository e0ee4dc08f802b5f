"""Overlay-link TLS over real loopback sockets (RFC 6940 sections 11.3,
13.6.3): every bad certificate is rejected by the side that must reject it.

With TLS 1.3 a client whose certificate the server rejects has already seen
its handshake finish, so rejections of client certificates are asserted on
the server: its verify callback recorded the reason and its protocol never
saw ``handshakeCompleted``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import SSL
from twisted.internet import endpoints as _endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.security.certificates import PeerIdentity
from reload.security.tls import (
    clientConnectionCreator,
    rejectionOf,
    serverConnectionCreator,
    verifiedPeerOf,
)
from reload.security.trust import CertificateRejected, TrustPolicy, VerifiedPeer
from tests.security.certs import (
    BAD_KINDS,
    Pki,
    clockAt,
    identityOf,
    makeCa,
    makeLeaf,
    randomNodeId,
    selfSignedIdentity,
)

TIMEOUT = 10
endpoints: Any = _endpoints  # Twisted's endpoint constructors are untyped
_F = TypeVar("_F", bound=Callable[..., Any])


def inReactor(test: _F) -> _F:
    """pytest_twisted.ensureDeferred, typed."""
    return cast(_F, pytest_twisted.ensureDeferred(test))


@implementer(IHandshakeListener)
class LinkEnd(Protocol):
    """Records what happens to one end of a link."""

    def __init__(self) -> None:
        self.handshakeDone = False
        self.version = ""
        self.peer: VerifiedPeer | None = None
        self.received = b""
        self.lostReason: Failure | None = None
        self.lost: Deferred[None] = Deferred()
        self.handshake: Deferred[None] = Deferred()

    def handshakeCompleted(self) -> None:
        self.handshakeDone = True
        self.version = cast(Any, self.transport).getHandle().get_protocol_version_name()
        self.peer = verifiedPeerOf(self.transport)
        cast(Any, self.transport).write(b"hello")
        self.handshake.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.handshake.called:
            self.handshake.errback(reason)
        self.lostReason = reason
        self.lost.callback(None)


@dataclass
class Link:
    server: LinkEnd
    client: LinkEnd


@dataclass
class Harness:
    reactor: Any
    listening: list[Any] = field(default_factory=list)

    async def connect(
        self,
        serverIdentity: PeerIdentity,
        serverTrust: TrustPolicy,
        clientIdentity: PeerIdentity,
        clientTrust: TrustPolicy,
        expectedNodeId: bytes | None,
        maxVersion: int | None = None,
    ) -> Link:
        """Connect a client to a fresh server over 127.0.0.1 and wait until
        both ends have finished the handshake or lost the connection
        (``maxVersion``: cap both ends' TLS version)."""
        clock = clockAt()
        serverCreator = serverConnectionCreator(serverIdentity, serverTrust, clock)
        clientCreator = clientConnectionCreator(clientIdentity, clientTrust, expectedNodeId, clock)
        if maxVersion is not None:
            for creator in (serverCreator, clientCreator):
                cast(Any, creator)._context.set_max_proto_version(maxVersion)
        servers: list[LinkEnd] = []
        serverConnected: Deferred[LinkEnd] = Deferred()

        def buildServer() -> LinkEnd:
            end = LinkEnd()
            servers.append(end)
            serverConnected.callback(end)
            return end

        factory = TLSMemoryBIOFactory(
            serverCreator,
            False,
            Factory.forProtocol(buildServer),
        )
        serverEndpoint = endpoints.TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        port = await serverEndpoint.listen(factory)
        self.listening.append(port)
        endpoint = endpoints.wrapClientTLS(
            clientCreator,
            endpoints.TCP4ClientEndpoint(self.reactor, "127.0.0.1", port.getHost().port),
        )
        client: LinkEnd = await endpoint.connect(Factory.forProtocol(LinkEnd))
        server = await serverConnected.addTimeout(TIMEOUT, self.reactor)
        for end in (client, server):
            # A rejected handshake fails this Deferred; the assertions look
            # at what each end recorded.
            with contextlib.suppress(Exception):
                await end.handshake.addTimeout(TIMEOUT, self.reactor)
        if client.handshakeDone and server.handshakeDone:
            await _until(self.reactor, lambda: client.received and server.received)
            cast(Any, client.transport).loseConnection()
        for end in (client, server):
            await end.lost.addTimeout(TIMEOUT, self.reactor)
        return Link(server, client)


async def _until(reactor: Any, condition: Callable[[], object]) -> None:
    for _ in range(TIMEOUT * 100):
        if condition():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not reached")


@pytest.fixture
def harness() -> Iterator[Harness]:
    from twisted.internet import reactor

    h = Harness(reactor)
    yield h
    for port in h.listening:
        pytest_twisted.blockon(port.stopListening())


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _assertAccepted(link: Link, server: PeerIdentity, client: PeerIdentity) -> None:
    assert link.server.handshakeDone and link.client.handshakeDone
    assert link.server.peer is not None and link.client.peer is not None
    assert link.client.peer.nodeIds == server.nodeIds
    assert link.server.peer.nodeIds == client.nodeIds
    assert link.client.received == b"hello" and link.server.received == b"hello"
    assert rejectionOf(link.client.transport) is None
    assert rejectionOf(link.server.transport) is None


def _assertServerRejected(link: Link, words: str) -> None:
    """The server refused the client's certificate: the reason is recorded
    on the server and its protocol never saw the handshake complete."""
    rejection = rejectionOf(link.server.transport)
    assert rejection is not None, "the server did not reject the client certificate"
    assert words in rejection.reason
    assert not link.server.handshakeDone
    assert link.server.received == b""
    assert link.client.received == b""
    with pytest.raises(CertificateRejected):
        verifiedPeerOf(link.server.transport)


def _assertClientRejected(link: Link, words: str) -> None:
    """The client refused the server's certificate."""
    rejection = rejectionOf(link.client.transport)
    assert rejection is not None, "the client did not reject the server certificate"
    assert words in rejection.reason
    assert not link.client.handshakeDone
    assert not link.server.handshakeDone
    assert link.server.received == b"" and link.client.received == b""


# -- good cases ---------------------------------------------------------------


@inReactor
async def test_caIssuedBothSidesAccepted(harness: Harness, pki: Pki) -> None:
    """Section 13.3: both certificates chain to the overlay's root; the
    client reaches the Node-ID it expected; each side learns the other's
    Node-IDs."""
    server, client = pki.identity(), pki.identity(rsaKey=True)
    link = await harness.connect(server, pki.policy(), client, pki.policy(), server.nodeId)
    _assertAccepted(link, server, client)
    assert link.client.version == "TLSv1.3"


@inReactor
async def test_selfSignedBothSidesAcceptedWherePermitted(harness: Harness, pki: Pki) -> None:
    """Section 11.3.1: with self-signed-permitted, self-signed certificates
    whose Node-IDs match their keys are accepted in both directions."""
    server, client = selfSignedIdentity(), selfSignedIdentity()
    policy = pki.policy(selfSignedPermitted=True)
    link = await harness.connect(server, policy, client, policy, server.nodeId)
    _assertAccepted(link, server, client)
    assert link.client.peer is not None and link.client.peer.selfSigned


@inReactor
async def test_clientWithoutExpectedNodeIdAcceptsAnyTrustedServer(
    harness: Harness, pki: Pki
) -> None:
    """A bootstrap connection (section 11.4) does not know the Node-ID yet."""
    server, client = pki.identity(), pki.identity()
    link = await harness.connect(server, pki.policy(), client, pki.policy(), None)
    _assertAccepted(link, server, client)


# -- bad cases ----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
@inReactor
async def test_serverRejectsBadClientCertificate(harness: Harness, pki: Pki, kind: str) -> None:
    factory, words = BAD_KINDS[kind]
    server, client = pki.identity(), factory(pki)
    link = await harness.connect(server, pki.policy(), client, pki.policy(), server.nodeId)
    _assertServerRejected(link, words)


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
@inReactor
async def test_clientRejectsBadServerCertificate(harness: Harness, pki: Pki, kind: str) -> None:
    factory, words = BAD_KINDS[kind]
    server, client = factory(pki), pki.identity()
    link = await harness.connect(server, pki.policy(), client, pki.policy(), None)
    _assertClientRejected(link, words)


@inReactor
async def test_clientRejectsServerWithAnotherNodeId(harness: Harness, pki: Pki) -> None:
    """Section 6.3.4 / 13.6.3: a client connecting to Node-ID X must reach
    X; a trusted server with another Node-ID is refused by the client."""
    server, client = pki.identity(), pki.identity()
    link = await harness.connect(server, pki.policy(), client, pki.policy(), randomNodeId())
    _assertClientRejected(link, "expected Node-ID")


@inReactor
async def test_selfSignedServerWithForgedNodeIdRejected(harness: Harness, pki: Pki) -> None:
    """Section 11.3.1: "nodes MUST check that the Node-ID and public keys
    match" -- over TLS too."""
    key, cert = makeLeaf(None, nodeIds=[randomNodeId()])
    server = identityOf(key, cert)
    policy = pki.policy(selfSignedPermitted=True)
    link = await harness.connect(server, policy, pki.identity(), policy, None)
    _assertClientRejected(link, "do not match the public key")


@inReactor
async def test_serverRejectsClientCertificateLackingClientAuth(harness: Harness, pki: Pki) -> None:
    """An extendedKeyUsage that allows serverAuth only is not a TLS client
    certificate."""
    client = pki.identity(eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    server = pki.identity()
    link = await harness.connect(server, pki.policy(), client, pki.policy(), server.nodeId)
    _assertServerRejected(link, "clientAuth")


@inReactor
async def test_intermediateCaChainsAcceptedBothWays(harness: Harness, pki: Pki) -> None:
    """Identities whose certificates come from an intermediate CA send it
    along; both the client and the server side build the path to the root
    from what the peer sent."""
    intermediate = makeCa("Intermediate CA", pki.root)
    identities = []
    for _ in range(2):
        key, cert = makeLeaf(intermediate)
        identities.append(identityOf(key, cert, chain=[intermediate.certificate]))
    server, client = identities
    link = await harness.connect(server, pki.policy(), client, pki.policy(), server.nodeId)
    _assertAccepted(link, server, client)


@inReactor
async def test_serverRejectsClientWhoseIntermediateIsNotACa(harness: Harness, pki: Pki) -> None:
    """basicConstraints on the issuers (RFC 5280 section 6.1.4) are checked
    on the server side too, where OpenSSL gives the chain only through the
    verify callback."""
    notCa = makeCa("Not a CA", pki.root, ca=False)
    key, cert = makeLeaf(notCa)
    client = identityOf(key, cert, chain=[notCa.certificate])
    server = pki.identity()
    link = await harness.connect(server, pki.policy(), client, pki.policy(), server.nodeId)
    _assertServerRejected(link, "is not a CA")


# -- TLS 1.2 ------------------------------------------------------------------


@inReactor
async def test_tls12LinksAcceptAndReject(harness: Harness, pki: Pki) -> None:
    """The same verify callback decides under TLS 1.2 (the minimum), where
    the client does learn that the server refused its certificate."""
    server, client = pki.identity(), pki.identity()
    link = await harness.connect(
        server, pki.policy(), client, pki.policy(), server.nodeId, SSL.TLS1_2_VERSION
    )
    _assertAccepted(link, server, client)
    assert link.client.version == link.server.version == "TLSv1.2"
    factory, words = BAD_KINDS["expired"]
    link = await harness.connect(
        server, pki.policy(), factory(pki), pki.policy(), server.nodeId, SSL.TLS1_2_VERSION
    )
    _assertServerRejected(link, words)
    assert not link.client.handshakeDone
    link = await harness.connect(
        factory(pki), pki.policy(), client, pki.policy(), None, SSL.TLS1_2_VERSION
    )
    _assertClientRejected(link, words)
