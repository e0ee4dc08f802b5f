"""TURN over TLS: overlay members authenticated by their TLS client
certificate need no password (``authorizePeerCertificate``), and
everything else falls back to the long-term credentials (fail closed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_twisted
from twisted.internet import reactor, ssl

from tests.turn_support import (
    HOST,
    freePortRange,
    makeCertificate,
    tcpClient,
    twistedCertificate,
)
from usages.turnserver.service import TurnServerConfig, TurnServerService
from usages.turnserver.stun import Attr, MessageClass, Method, requestedTransportValue

CA = makeCertificate("test overlay root", ca=True)
SERVER = twistedCertificate(*makeCertificate("localhost", CA))
MEMBER = twistedCertificate(*makeCertificate("node-1", CA))
STRANGER = twistedCertificate(*makeCertificate("node-2", makeCertificate("other root", ca=True)))
ROOT = ssl.Certificate.loadPEM(twistedCertificate(*CA).dumpPEM())
ALLOCATE = [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())]


def byCommonName(certificate: Any) -> str | None:
    from cryptography.x509.oid import NameOID

    names = certificate.to_cryptography().subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = names[0].value if names else None
    return name if isinstance(name, str) and name.startswith("node-") else None


def failing(certificate: Any) -> str | None:
    raise RuntimeError("the authorizer broke")


async def tlsServer(authorize: Callable[[Any], str | None]) -> TurnServerService:
    context = ssl.CertificateOptions(
        privateKey=SERVER.privateKey.original,
        certificate=SERVER.original,
        verify=True,
        caCerts=[ROOT.original],
        requireCertificate=False,
    )
    service = TurnServerService(
        TurnServerConfig(
            host=HOST,
            udpPort=None,
            tcpPort=None,
            tlsPort=0,
            tlsContextFactory=context,
            authorizePeerCertificate=authorize,
            users={"alice": "secret"},
            allowLoopbackPeers=True,
            relayPorts=freePortRange(32),
        ),
        reactor,
    )
    service.startService()
    return service


def clientOptions(certificate: Any = None) -> Any:
    return ssl.optionsForClientTLS("localhost", trustRoot=ROOT, clientCertificate=certificate)


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[TurnServerService]:
    service = await tlsServer(byCommonName)
    yield service
    await service.stopService()


@pytest_twisted.ensureDeferred
async def test_memberCertificateAllocatesWithoutPassword(server: TurnServerService) -> None:
    client = await tcpClient(server.addresses["tls"][1], tls=clientOptions(MEMBER))
    answer = await client.request(Method.ALLOCATE, ALLOCATE)
    assert answer.messageClass == MessageClass.SUCCESS, answer.errorCode()
    assert not answer.has(Attr.MESSAGE_INTEGRITY)  # nothing to key it with
    assert server.status()["allocations"] == 1
    client.transport.loseConnection()  # type: ignore[attr-defined]
    await client.closed


@pytest_twisted.ensureDeferred
async def test_noCertificateMeansPassword(server: TurnServerService) -> None:
    client = await tcpClient(server.addresses["tls"][1], "alice", "secret", tls=clientOptions())
    first = await client.request(Method.ALLOCATE, ALLOCATE)
    assert first.errorCode() is not None and first.errorCode()[0] == 401  # type: ignore[index]
    client.nonce = first.text(Attr.NONCE)
    answer = await client.request(Method.ALLOCATE, ALLOCATE)
    assert answer.messageClass == MessageClass.SUCCESS
    client.transport.loseConnection()  # type: ignore[attr-defined]
    await client.closed


@pytest_twisted.ensureDeferred
async def test_untrustedCertificateIsRejected(server: TurnServerService) -> None:
    """A certificate from another root: the handshake fails (the server's
    context verifies), nothing is allocated."""
    try:
        client = await tcpClient(server.addresses["tls"][1], tls=clientOptions(STRANGER))
        client.sendRaw(b"")
        answer = await client.request(Method.ALLOCATE, ALLOCATE, timeout=2)
        allocated = answer.messageClass == MessageClass.SUCCESS
    except Exception:
        allocated = False
    assert not allocated
    assert server.status()["allocations"] == 0


@pytest_twisted.ensureDeferred
async def test_failingAuthorizerFailsClosed() -> None:
    service = await tlsServer(failing)
    try:
        client = await tcpClient(service.addresses["tls"][1], tls=clientOptions(MEMBER))
        answer = await client.request(Method.ALLOCATE, ALLOCATE)
        assert answer.errorCode() is not None and answer.errorCode()[0] == 401  # type: ignore[index]
        assert service.status()["allocations"] == 0
        client.transport.loseConnection()  # type: ignore[attr-defined]
        await client.closed
    finally:
        await service.stopService()


def test_tlsNeedsExactlyOneWayToMakeConnections() -> None:
    import pytest

    context = ssl.CertificateOptions(privateKey=SERVER.privateKey.original,
                                     certificate=SERVER.original)  # fmt: skip
    with pytest.raises(ValueError, match="one of tlsContextFactory and tlsConnectionCreator"):
        TurnServerConfig(tlsPort=0).validate()
    with pytest.raises(ValueError, match="one of tlsContextFactory and tlsConnectionCreator"):
        TurnServerConfig(
            tlsPort=0, tlsContextFactory=context, tlsConnectionCreator=object()
        ).validate()
    with pytest.raises(ValueError, match="not both"):
        TurnServerConfig(
            authorizePeerCertificate=byCommonName, authorizePeerConnection=byCommonName
        ).validate()
    TurnServerConfig(tlsPort=0, tlsConnectionCreator=object()).validate()
