"""TURN over TLS for overlay members (RFC 6940 section 9, RFC 8656 section
3.1): two real peers; the first runs ``--usage TURN`` with
``TURN:tls-port``.  A client presenting the second peer's overlay
certificate allocates with no password, as ``node:<its Node-ID>``; a
certificate of another overlay, or none, is refused in the handshake
(section 13.6.3, checked as overlay links check theirs)."""

from __future__ import annotations

import secrets
import ssl as stdlibSsl
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography.hazmat.primitives import serialization
from twisted.internet import reactor as _reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.filepath import FilePath

from reload.config import defaultConfiguration
from reload.peer import OverlayPeer
from reload.plugins import loadTopology, loadUsages
from reload.security.certificates import PeerIdentity, makeSelfSignedIdentity
from reload.security.tls import clientConnectionCreator
from reload.security.trust import TrustPolicy
from reload.settings import BootstrapAddress, PeerSettings
from usages.turnserver.stun import Attr, MessageClass, Method, requestedTransportValue

from .conftest import freePort
from .turn_support import HOST, freePortRange, tcpClient

reactor: Any = _reactor
ALLOCATE = [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())]


def _settings(tmp: Path, name: str, configuration: Any, **more: Any) -> PeerSettings:
    return PeerSettings(
        configuration=configuration,
        dataDir=FilePath(str(tmp / name)),
        listen=f"tcp:{freePort()}:interface={HOST}",
        topology=loadTopology("CHORD-RELOAD"),
        userName=f"{name}@example.org",
        advertise=HOST,
        **more,
    )


async def _joined(peer: OverlayPeer, seconds: float = 30) -> None:
    for _ in range(int(seconds * 10)):
        if peer.state == "joined":
            return
        if peer.state == "failed":
            raise AssertionError(f"peer failed: {peer.error}")
        await deferLater(reactor, 0.1, lambda: None)
    raise AssertionError(f"peer still {peer.state} after {seconds} s")


class Overlay:
    def __init__(self, server: OverlayPeer, member: OverlayPeer, trust: TrustPolicy) -> None:
        self.server = server
        self.member = member
        self.trust = trust

    @property
    def turn(self) -> Any:
        return self.server.usages.service("TURN").server

    @property
    def tlsPort(self) -> int:
        port: int = self.turn.addresses["tls"][1]
        return port


@pytest_twisted.async_yield_fixture
async def overlay(tmp_path: Path) -> AsyncIterator[Overlay]:
    configuration = defaultConfiguration(f"turn-tls-{secrets.token_hex(3)}.reload.local")
    low, high = freePortRange(16)
    options = {
        "advertise": "never",
        "host": HOST,
        "udp-port": "0",
        "tcp-port": "off",
        "tls-port": "0",
        "allow-loopback": "yes",
        "relay-ports": f"{low}-{high}",
        "max-allocations-per-user": "2",
    }
    server = OverlayPeer(
        _settings(
            tmp_path,
            "server",
            configuration,
            usages=tuple(loadUsages(["TURN"])),
            usageOptions={"TURN": options},
        ),
        reactor,
    )
    server.startService()
    await _joined(server)
    assert server.address is not None
    bootstrap = (BootstrapAddress(*server.address),)
    member = OverlayPeer(_settings(tmp_path, "member", configuration, bootstrap=bootstrap), reactor)
    member.startService()
    await _joined(member)
    for _ in range(100):  # the usage starts once the peer has joined
        if server.usages.service("TURN") is not None and "tls" in getattr(
            server.usages.service("TURN").server, "addresses", {}
        ):
            break
        await deferLater(reactor, 0.1, lambda: None)
    try:
        yield Overlay(server, member, TrustPolicy.fromConfiguration(configuration))
    finally:
        for peer in (member, server):
            await peer.stopService()


def _creator(overlay: Overlay, identity: PeerIdentity) -> Any:
    """A member's TLS client side: its certificate, and the server's
    checked as an overlay link checks it (the server's Node-ID)."""
    assert overlay.server.identity is not None
    return clientConnectionCreator(identity, overlay.trust, overlay.server.identity.nodeId, reactor)


@pytest_twisted.ensureDeferred
async def test_memberAllocatesWithItsOverlayCertificate(overlay: Overlay) -> None:
    member = overlay.member.identity
    assert member is not None
    client = await tcpClient(overlay.tlsPort, tls=_creator(overlay, member))
    answer = await client.request(Method.ALLOCATE, ALLOCATE)
    assert answer.messageClass == MessageClass.SUCCESS, answer.errorCode()
    assert answer.has(Attr.XOR_RELAYED_ADDRESS)
    status = overlay.turn.status()
    assert status["allocations"] == 1
    server = overlay.turn.server
    [allocation] = server.allocations.values()
    assert allocation.username == "node:" + member.nodeId.hex()
    client.transport.loseConnection()  # type: ignore[attr-defined]
    await client.closed


@pytest_twisted.ensureDeferred
async def test_memberQuotaAppliesAsForUsers(overlay: Overlay) -> None:
    """max-allocations-per-user=2: the third connection of the same member
    gets 486 (RFC 8656 section 7.2)."""
    member = overlay.member.identity
    assert member is not None
    clients = [await tcpClient(overlay.tlsPort, tls=_creator(overlay, member)) for _ in range(3)]
    answers = [await client.request(Method.ALLOCATE, ALLOCATE) for client in clients]
    assert [a.messageClass for a in answers[:2]] == [MessageClass.SUCCESS] * 2
    assert answers[2].errorCode() is not None and answers[2].errorCode()[0] == 486  # type: ignore[index]
    for client in clients:
        client.transport.loseConnection()  # type: ignore[attr-defined]
        await client.closed


async def _refused(overlay: Overlay, context: stdlibSsl.SSLContext) -> str:
    """Connect and send an Allocate with the stdlib's TLS (a client nobody
    here wrote); what happened, as text.  'allocated' would be a failure."""
    from usages.turnserver.stun import StreamFramer, encodeMessage, newTransactionId

    def attempt() -> str:
        import socket

        with socket.create_connection((HOST, overlay.tlsPort), timeout=5) as raw:
            try:
                with context.wrap_socket(raw) as tls:
                    tls.sendall(encodeMessage(Method.ALLOCATE, MessageClass.REQUEST,
                                              newTransactionId(), ALLOCATE))  # fmt: skip
                    data = tls.recv(4096)
                    if not data:
                        return "closed"
                    [message] = StreamFramer().feed(data)
                    return "allocated" if message.messageClass == MessageClass.SUCCESS else "error"
            except (stdlibSsl.SSLError, ConnectionError, OSError) as exc:
                return f"refused: {exc}"

    result: str = await deferToThread(attempt)
    return result


def _stdlibContext(tmp: Path, identity: PeerIdentity | None) -> stdlibSsl.SSLContext:
    context = stdlibSsl.SSLContext(stdlibSsl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = stdlibSsl.CERT_NONE  # the refusal under test is the server's
    if identity is not None:
        cert = tmp / f"cert-{threading.get_ident()}.pem"
        key = tmp / f"key-{threading.get_ident()}.pem"
        cert.write_bytes(identity.certificate.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(
            identity.privateKey.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(str(cert), str(key))
    return context


@pytest.mark.parametrize("who", ["outsider", "no certificate"])
@pytest_twisted.ensureDeferred
async def test_nonMembersAreRefusedInTheHandshake(
    overlay: Overlay, tmp_path: Path, who: str
) -> None:
    identity = (
        makeSelfSignedIdentity("another-overlay.reload.local", "eve@example.org")
        if who == "outsider"
        else None
    )
    outcome = await _refused(overlay, _stdlibContext(tmp_path, identity))
    assert outcome == "closed" or outcome.startswith("refused"), outcome
    assert overlay.turn.status()["allocations"] == 0
    # The listener still serves members afterwards.
    member = overlay.member.identity
    assert member is not None
    client = await tcpClient(overlay.tlsPort, tls=_creator(overlay, member))
    answer = await client.request(Method.ALLOCATE, ALLOCATE)
    assert answer.messageClass == MessageClass.SUCCESS
    client.transport.loseConnection()  # type: ignore[attr-defined]
    await client.closed


@pytest_twisted.ensureDeferred
async def test_anUnverifiedConnectionHasNoNodeIds(overlay: Overlay) -> None:
    """Fail closed: a transport nobody verified (plain TCP, say) has no
    identity."""
    assert overlay.server.api is not None
    assert overlay.server.api.verifiedNodeIds(object()) == ()
