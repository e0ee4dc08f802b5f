"""makeContext and the verify callback on bare pyOpenSSL connections with
memory BIOs: the building blocks the DTLS link reuses (no sockets here;
test_tls.py runs real TLS over loopback)."""

from __future__ import annotations

import datetime

import pytest
from OpenSSL import SSL

from reload.security.certificates import PeerIdentity
from reload.security.tls import (
    makeContext,
    prepareConnection,
    rejectionOf,
    verificationOf,
    verifiedPeerOf,
)
from reload.security.trust import CertificateRejected, TrustPolicy
from tests.security.certs import NOW, Pki, clockAt


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _pump(client: SSL.Connection, server: SSL.Connection) -> list[SSL.Connection]:
    """Run the handshake through memory BIOs until neither side moves;
    return the connections whose handshake failed."""
    failed: list[SSL.Connection] = []
    for _ in range(20):
        for connection in (client, server):
            if connection in failed:
                continue
            try:
                connection.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error:
                failed.append(connection)
        moved = False
        for source, sink in ((client, server), (server, client)):
            try:
                data = source.bio_read(65536)
            except SSL.WantReadError:
                continue
            sink.bio_write(data)
            moved = True
        if not moved:
            break
    return failed


def _handshake(
    serverIdentity: PeerIdentity,
    clientIdentity: PeerIdentity,
    trust: TrustPolicy,
    *,
    when: datetime.datetime = NOW,
    prepareServer: bool = True,
    expectedNodeId: bytes | None = None,
) -> tuple[SSL.Connection, SSL.Connection, list[SSL.Connection]]:
    server = SSL.Connection(makeContext(serverIdentity, trust), None)
    server.set_accept_state()
    client = SSL.Connection(makeContext(clientIdentity, trust), None)
    client.set_connect_state()
    if prepareServer:
        prepareConnection(server, clockAt(when), isClient=False)
    prepareConnection(client, clockAt(when), isClient=True, expectedNodeId=expectedNodeId)
    return client, server, _pump(client, server)


def test_memoryBioHandshakeVerifiesBothSides(pki: Pki) -> None:
    server, client = pki.identity(), pki.identity()
    clientConnection, serverConnection, failed = _handshake(
        server, client, pki.policy(), expectedNodeId=server.nodeId
    )
    assert failed == []
    assert verifiedPeerOf(clientConnection).nodeIds == server.nodeIds
    assert verifiedPeerOf(serverConnection).nodeIds == client.nodeIds
    state = verificationOf(serverConnection)
    assert state is not None and not state.isClient and state.rejection is None


def test_theInjectedClockDecidesExpiry(pki: Pki) -> None:
    """The time comes from the clock given to prepareConnection, not the
    system clock: a year on, the certificates have expired."""
    server, client = pki.identity(), pki.identity()
    later = NOW + datetime.timedelta(days=365)
    clientConnection, _, failed = _handshake(server, client, pki.policy(), when=later)
    assert clientConnection in failed
    rejection = rejectionOf(clientConnection)
    assert rejection is not None and "has expired" in rejection.reason


def test_unpreparedConnectionIsRejected(pki: Pki) -> None:
    """Fail closed: a Connection nobody registered with prepareConnection
    accepts no peer."""
    server, client = pki.identity(), pki.identity()
    _, serverConnection, failed = _handshake(server, client, pki.policy(), prepareServer=False)
    assert serverConnection in failed
    with pytest.raises(CertificateRejected, match="not prepared"):
        verifiedPeerOf(serverConnection)


def test_verifiedPeerOfFailsClosed(pki: Pki) -> None:
    connection = SSL.Connection(makeContext(pki.identity(), pki.policy()), None)
    with pytest.raises(CertificateRejected, match="not prepared"):
        verifiedPeerOf(connection)
    prepareConnection(connection, clockAt(), isClient=True)
    with pytest.raises(CertificateRejected, match="not been verified"):
        verifiedPeerOf(connection)
    with pytest.raises(CertificateRejected, match="not prepared"):
        verifiedPeerOf(object())


@pytest.mark.parametrize("method", [SSL.DTLS_METHOD, SSL.TLS_METHOD])
def test_contextForEitherMethod(pki: Pki, method: int) -> None:
    context = makeContext(pki.identity(), pki.policy(), method)
    assert context.get_verify_mode() == SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    assert context.get_session_cache_mode() == SSL.SESS_CACHE_OFF
