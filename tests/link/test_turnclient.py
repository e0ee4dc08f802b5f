"""The TURN client of relayed ICE candidates (reload.link.turnclient)
against coturn's ``turnserver`` on loopback: allocation with long-term
credentials, permissions, data both ways through the relay; wrong
credentials fail with a clear error; forged responses are ignored."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.threads import deferToThread
from twisted.python import usage

from reload.link.turnclient import TurnClient, TurnError
from reload.tap import Options
from reload.wire.stun import ALLOCATE, SUCCESS, Attr, StunMessage, encodeXorAddress
from tests.conftest import requireTool
from tests.turn_support import HOST, coturn, freeTurnPort

USER, PASSWORD = "peer", "secret"


@pytest.fixture
def coturnPort(tmp_path: Path) -> Iterator[int]:
    requireTool("turnserver", "coturn")
    port = freeTurnPort()
    with coturn(tmp_path / "coturn", port, users={USER: PASSWORD}):
        yield port


class _Port(DatagramProtocol):
    """A UDP port whose datagrams from the TURN server go to the client."""

    def __init__(self) -> None:
        self.client: TurnClient | None = None
        self.delivered: list[tuple[bytes, tuple[str, int]]] = []
        self.arrived: Deferred[None] = Deferred()

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.write(data, address)  # type: ignore[attr-defined]

    def deliver(self, data: bytes, peer: tuple[str, int]) -> None:
        self.delivered.append((data, peer))
        if not self.arrived.called:
            self.arrived.callback(None)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self.client is not None and addr == self.client.server:
            self.client.datagramReceived(datagram)


def _client(port: int, password: str = PASSWORD) -> tuple[_Port, TurnClient, Any]:
    protocol = _Port()
    listening = reactor.listenUDP(0, protocol, interface=HOST)  # type: ignore[attr-defined]
    client = TurnClient((HOST, port), USER, password, protocol.send, protocol.deliver, reactor)
    protocol.client = client
    return protocol, client, listening


@pytest_twisted.ensureDeferred
async def test_relayCarriesDataBothWays(coturnPort: int) -> None:
    protocol, client, listening = _client(coturnPort)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    peer.settimeout(3)
    try:
        relayed = await client.allocate()
        assert relayed[0] == HOST and relayed[1] != coturnPort
        assert client.mapped == (HOST, listening.getHost().port)
        assert await client.permit([HOST, "::1", "not an address"]) == [HOST]
        # Through the relay to the peer...
        client.sendTo(b"to the peer", peer.getsockname())
        data, source = await _recv(peer)
        assert (data, source) == (b"to the peer", relayed)
        # ...and back, as a Data indication naming the peer.
        peer.sendto(b"from the peer", relayed)
        await protocol.arrived
        assert protocol.delivered == [(b"from the peer", peer.getsockname())]
        assert (client.relayedOut, client.relayedIn) == (1, 1)
    finally:
        client.stop()
        peer.close()
        await listening.stopListening()


async def _recv(sock: socket.socket) -> tuple[bytes, Any]:
    result: tuple[bytes, Any] = await deferToThread(sock.recvfrom, 2048)
    return result


@pytest_twisted.ensureDeferred
async def test_wrongPasswordFailsClearly(coturnPort: int) -> None:
    _, client, listening = _client(coturnPort, password="wrong")
    try:
        with pytest.raises(TurnError, match=r"refused .* error 401"):
            await client.allocate()
        assert client.relayed is None
    finally:
        client.stop()
        await listening.stopListening()


@pytest_twisted.ensureDeferred
async def test_forgedSuccessIsIgnored(coturnPort: int) -> None:
    """A success response without the right MESSAGE-INTEGRITY (anyone who
    saw the transaction ID could send one) does not end the request: the
    real answer does."""
    protocol, client, listening = _client(coturnPort)
    realSend = protocol.send

    def sendAndForge(data: bytes, address: tuple[str, int]) -> None:
        realSend(data, address)
        request = StunMessage.decode(data)
        if request.method == ALLOCATE and request.has(Attr.USERNAME):
            forged = StunMessage(
                ALLOCATE,
                SUCCESS,
                request.transactionId,
                (
                    (
                        Attr.XOR_RELAYED_ADDRESS,
                        encodeXorAddress("192.0.2.66", 9, request.transactionId),
                    ),
                ),
            )
            client.datagramReceived(forged.encode(b"not the key"))
            client.datagramReceived(forged.encode())

    client.send = sendAndForge
    try:
        relayed = await client.allocate()
        assert relayed[0] == HOST
    finally:
        client.stop()
        await listening.stopListening()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--turn-server", "turn.example:3478", "--turn-user", "u", "--turn-password", "p"],
         "expected IPv4ADDRESS:PORT"),
        (["--turn-server", "192.0.2.1:0", "--turn-user", "u", "--turn-password", "p"],
         "port out of"),
        (["--turn-server", "192.0.2.1:3478"], "give --turn-user and --turn-password"),
        (["--turn-user", "u"], "give --turn-server"),
    ],
)  # fmt: skip
def test_turnOptionsAreChecked(tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(usage.UsageError, match=message):
        Options().parseOptions(["--data-dir", str(tmp_path / "data"), *argv])
