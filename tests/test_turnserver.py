"""The built-in TURN server (usages/turnserver/service.py) on loopback,
driven by clients nobody here wrote (coturn's turnutils_uclient with
turnutils_peer as the far end, aioice) and by our own test client for the
refusals (wrong MESSAGE-INTEGRITY, stale nonce, quotas, denied peers)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from tests.conftest import REPO, requireTool
from tests.turn_support import (
    HOST,
    TurnTestClient,
    freePortRange,
    freeTurnPort,
    udpClient,
)
from usages.turnserver.service import TurnServerConfig, TurnServerService
from usages.turnserver.stun import (
    Attr,
    Message,
    MessageClass,
    Method,
    evenPortValue,
    integrityAlgorithm,
    requestedTransportValue,
    uint32Value,
    verifyIntegrity,
    xorAddressValue,
)

USERS = {"alice": "secret", "bob": "hunter2"}


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


async def startServer(**overrides: Any) -> TurnServerService:
    settings: dict[str, Any] = dict(
        host=HOST,
        udpPort=0,
        tcpPort=0,
        users=USERS,
        allowLoopbackPeers=True,
        relayPorts=freePortRange(120),
        maxAllocationsPerUser=4,
        maxAllocations=12,
    )
    settings.update(overrides)
    service = TurnServerService(TurnServerConfig(**settings), reactor)
    service.startService()
    return service


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[TurnServerService]:
    service = await startServer()
    yield service
    await service.stopService()


@pytest.fixture
def turnPeer() -> Iterator[int]:
    """coturn's turnutils_peer, the far end: it echoes what it receives."""
    requireTool("turnutils_peer", "coturn")
    port = freeTurnPort()
    process = subprocess.Popen(
        ["turnutils_peer", "-L", HOST, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield port
    process.terminate()
    process.wait(5)


async def uclient(
    server: TurnServerService, peerPort: int, *flags: str, password: str = "secret"
) -> tuple[int, str]:
    """Run turnutils_uclient against the server; (exit code, output)."""
    path = requireTool("turnutils_uclient", "coturn")
    port = server.addresses["udp"][1]
    args = [
        *flags, "-u", "alice", "-w", password, "-p", str(port),
        "-e", HOST, "-r", str(peerPort), "-n", "30", "-m", "2", "-z", "5", "-l", "120", HOST,
    ]  # fmt: skip
    out, err, code = await getProcessOutputAndValue(path, args, reactor=reactor)
    return code, (out + err).decode("utf-8", "replace")


def lossFigures(output: str) -> tuple[int, int, int]:
    """(sent, received, lost) from uclient's summary lines."""
    sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n", output)
    lost = re.search(r"Total lost packets (\d+)", output)
    assert sent and lost, output[-2000:]
    return int(sent[-1][0]), int(sent[-1][1]), int(lost.group(1))


@pytest.mark.parametrize(
    "flags",
    [(), ("-s",), ("-t",), ("-t", "-s")],
    ids=["udp-channels", "udp-send-indications", "tcp-channels", "tcp-send-indications"],
)
@pytest_twisted.ensureDeferred
async def test_uclientRelaysWithoutLoss(
    server: TurnServerService, turnPeer: int, flags: tuple[str, ...]
) -> None:
    """coturn's client: two clients with RTP/RTCP allocation pairs (EVEN-PORT
    and RESERVATION-TOKEN), 30 packets each way per session, echoed by
    turnutils_peer: exit 0 and nothing lost."""
    code, output = await uclient(server, turnPeer, *flags)
    assert code == 0, output[-2000:]
    sent, received, lost = lossFigures(output)
    assert sent == received == 60
    assert lost == 0
    status = server.status()
    assert status["packetsRelayed"] >= 2 * sent
    assert status["refusals"].get("badCredentials", 0) == 0


@pytest_twisted.ensureDeferred
async def test_uclientWrongPasswordIsRefused(server: TurnServerService, turnPeer: int) -> None:
    code, output = await uclient(server, turnPeer, password="not-the-password")
    assert code != 0
    assert "Cannot complete Allocation" in output
    status = server.status()
    assert status["allocations"] == 0
    assert status["refusals"]["badCredentials"] >= 1
    assert status["packetsRelayed"] == 0


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest_twisted.ensureDeferred
async def test_aioiceAllocatesAndRelays(server: TurnServerService, transport: str) -> None:
    port = server.addresses[transport][1]
    out, err, code = await getProcessOutputAndValue(
        sys.executable,
        [
            str(REPO / "tests" / "turn_aioice_client.py"),
            HOST,
            str(port),
            "bob",
            "hunter2",
            transport,
        ],
        reactor=reactor,
    )
    assert code == 0, err.decode()[-2000:]
    result = json.loads(out)
    assert result["peerGot"] == "ping" and result["clientGot"] == "pong"
    assert result["peerSawFrom"] == result["relayed"]  # it came from the relay
    assert result["clientSawFrom"] == result["peer"]
    low, high = server.config.relayPorts
    assert low <= result["relayed"][1] <= high
    assert server.status()["packetsRelayed"] >= 2


@pytest_twisted.ensureDeferred
async def test_bindingCheckFindsTheServerAlive(server: TurnServerService) -> None:
    """The discovery probe (usages/turnserver/probe.py) on the built-in
    server: Binding needs no credentials (RFC 8489 section 7.3)."""
    from usages.turnserver.probe import bindingCheck

    answer = await bindingCheck(HOST, server.addresses["udp"][1], timeout=2.0, reactor=reactor)
    assert answer is not None and answer[0] == HOST
    assert server.status()["refusals"] == {}


# -- refusals, with our own client ---------------------------------------------


def allocateAttributes() -> list[tuple[int, bytes]]:
    return [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())]


def errorOf(response: Message) -> int | None:
    if response.messageClass != MessageClass.ERROR:
        return None
    code = response.errorCode()
    return None if code is None else code[0]


@pytest_twisted.ensureDeferred
async def test_challengeThenAllocateWithEitherIntegrity(server: TurnServerService) -> None:
    """RFC 8656 section 5: an unauthenticated Allocate gets 401 with REALM
    and NONCE; the retry succeeds, and the answer carries the integrity
    attribute the request used, verifiable with the user's key."""
    for integrity in ("sha1", "sha256"):
        client = await udpClient(server.addresses["udp"][1], "alice", "secret")
        first = await client.request(Method.ALLOCATE, allocateAttributes())
        assert errorOf(first) == 401
        assert first.text(Attr.REALM) == "reload" and first.text(Attr.NONCE)
        client.nonce = first.text(Attr.NONCE)
        answer = await client.request(Method.ALLOCATE, allocateAttributes(), integrity=integrity)
        assert answer.messageClass == MessageClass.SUCCESS, answer.errorCode()
        assert integrityAlgorithm(answer) == integrity
        assert verifyIntegrity(answer, client.key)
        assert answer.has(Attr.FINGERPRINT)
        assert answer.xorAddress(Attr.XOR_RELAYED_ADDRESS) is not None
        assert answer.uint32(Attr.LIFETIME) == 600
        await client.closed()


@pytest_twisted.ensureDeferred
async def test_wrongMessageIntegrityIsRefused(server: TurnServerService) -> None:
    client = await udpClient(server.addresses["udp"][1], "alice", "secret")
    await client.authenticatedRequest(Method.BINDING)
    first = await client.request(Method.ALLOCATE, allocateAttributes())
    client.nonce = first.text(Attr.NONCE)
    for integrity in ("sha1", "sha256"):
        answer = await client.request(
            Method.ALLOCATE, allocateAttributes(), tamper=True, integrity=integrity
        )
        assert errorOf(answer) == 401
    assert server.status()["allocations"] == 0
    assert server.status()["refusals"]["badCredentials"] == 2
    await client.closed()


@pytest_twisted.ensureDeferred
async def test_staleNonceGets438ThenWorks() -> None:
    service = await startServer(nonceLifetime=1.0)
    try:
        client = await udpClient(service.addresses["udp"][1], "alice", "secret")
        answer = await client.authenticatedRequest(Method.ALLOCATE, allocateAttributes())
        assert answer.messageClass == MessageClass.SUCCESS
        await sleep(2.1)
        stale = await client.request(Method.REFRESH, [(Attr.LIFETIME, uint32Value(600))])
        assert errorOf(stale) == 438
        assert stale.text(Attr.NONCE) not in (None, client.nonce)
        client.nonce = stale.text(Attr.NONCE)
        again = await client.request(Method.REFRESH, [(Attr.LIFETIME, uint32Value(600))])
        assert again.messageClass == MessageClass.SUCCESS
        assert service.status()["refusals"]["staleNonce"] == 1
        await client.closed()
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_allocationFloodStoppedByQuotas(server: TurnServerService) -> None:
    """486 past the per-user quota (4), 508 past the total (12); the
    refused ones hold no relay port."""
    port = server.addresses["udp"][1]
    codes: dict[str, list[int | None]] = {"alice": [], "bob": []}
    clients: list[TurnTestClient] = []
    for user, password in (("alice", "secret"), ("bob", "hunter2")):
        for _ in range(6):
            client = await udpClient(port, user, password)
            clients.append(client)
            answer = await client.authenticatedRequest(Method.ALLOCATE, allocateAttributes())
            codes[user].append(errorOf(answer))
    assert codes["alice"] == [None] * 4 + [486] * 2
    assert codes["bob"] == [None] * 4 + [486] * 2
    assert server.status()["allocations"] == 8
    # More users: the total bound answers 508.
    service = await startServer(users={f"u{i}": "pw" for i in range(8)}, maxAllocations=5)
    try:
        results = []
        for i in range(8):
            client = await udpClient(service.addresses["udp"][1], f"u{i}", "pw")
            clients.append(client)
            answer = await client.authenticatedRequest(Method.ALLOCATE, allocateAttributes())
            results.append(errorOf(answer))
        assert results == [None] * 5 + [508] * 3
        assert service.status()["refusals"]["capacity"] == 3
    finally:
        await service.stopService()
    for client in clients:
        await client.closed()


@pytest_twisted.ensureDeferred
async def test_allocateRules(server: TurnServerService) -> None:
    """442 for TCP relaying; 437 for a second Allocate on the same 5-tuple;
    a retransmitted Allocate gets the same answer; Refresh with lifetime 0
    deletes (RFC 8656 sections 7.2, 8.2)."""
    client = await udpClient(server.addresses["udp"][1], "alice", "secret")
    tcpRelay = await client.authenticatedRequest(
        Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, requestedTransportValue(6))]
    )
    assert errorOf(tcpRelay) == 442
    tid = b"A" * 12
    first = await client.request(Method.ALLOCATE, allocateAttributes(), transactionId=tid)
    assert first.messageClass == MessageClass.SUCCESS
    again = await client.request(Method.ALLOCATE, allocateAttributes(), transactionId=tid)
    assert again.raw == first.raw
    other = await client.request(Method.ALLOCATE, allocateAttributes())
    assert errorOf(other) == 437
    gone = await client.request(Method.REFRESH, [(Attr.LIFETIME, uint32Value(0))])
    assert gone.messageClass == MessageClass.SUCCESS and gone.uint32(Attr.LIFETIME) == 0
    assert server.status()["allocations"] == 0
    refresh = await client.request(Method.REFRESH, [])
    assert errorOf(refresh) == 437
    await client.closed()


@pytest_twisted.ensureDeferred
async def test_evenPortAndReservationToken(server: TurnServerService) -> None:
    """RFC 8656 section 7.2: EVEN-PORT with R gives an even port and a token
    for the next one, which a second client's Allocate receives."""
    port = server.addresses["udp"][1]
    first = await udpClient(port, "alice", "secret")
    answer = await first.authenticatedRequest(
        Method.ALLOCATE, [*allocateAttributes(), (Attr.EVEN_PORT, evenPortValue(True))]
    )
    relayed = answer.xorAddress(Attr.XOR_RELAYED_ADDRESS)
    token = answer.reservationToken()
    assert relayed is not None and relayed[1] % 2 == 0 and token is not None
    second = await udpClient(port, "alice", "secret")
    paired = await second.authenticatedRequest(
        Method.ALLOCATE, [*allocateAttributes(), (Attr.RESERVATION_TOKEN, token)]
    )
    assert paired.xorAddress(Attr.XOR_RELAYED_ADDRESS) == (relayed[0], relayed[1] + 1)
    reused = await (await udpClient(port, "alice", "secret")).authenticatedRequest(
        Method.ALLOCATE, [*allocateAttributes(), (Attr.RESERVATION_TOKEN, token)]
    )
    assert errorOf(reused) == 508
    await first.closed()
    await second.closed()


@pytest_twisted.ensureDeferred
async def test_deniedPeersGet403() -> None:
    """Loopback peers and the server's own ports are refused unless the
    lab switch is on; so are operator CIDRs."""
    service = await startServer(
        allowLoopbackPeers=False, relayHost=HOST, deniedPeers=("198.51.100.0/24",)
    )
    try:
        client = await udpClient(service.addresses["udp"][1], "alice", "secret")
        answer = await client.authenticatedRequest(Method.ALLOCATE, allocateAttributes())
        assert answer.messageClass == MessageClass.SUCCESS
        ownPort = service.addresses["udp"][1]
        for peer in [(HOST, 5000), ("198.51.100.7", 5000), (HOST, ownPort)]:
            refused = await _createPermission(client, peer)
            assert errorOf(refused) == 403, peer
        allowed = await _createPermission(client, ("203.0.113.1", 5000))
        assert allowed.messageClass == MessageClass.SUCCESS
        assert service.status()["refusals"]["deniedPeer"] == 3
        await client.closed()
    finally:
        await service.stopService()


async def _createPermission(client: TurnTestClient, peer: tuple[str, int]) -> Message:
    from usages.turnserver.stun import newTransactionId

    tid = newTransactionId()
    return await client.request(
        Method.CREATE_PERMISSION,
        [(Attr.XOR_PEER_ADDRESS, xorAddressValue(*peer, tid))],
        transactionId=tid,
    )
