"""The STUN Binding liveness check (usages/turnserver/probe.py) against
coturn's ``turnserver`` on loopback, and against silence and garbage."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted

from tests.conftest import requireTool
from tests.turn_support import HOST, coturn, freeTurnPort
from usages.turnserver.probe import bindingCheck


@pytest.fixture
def coturnPort(tmp_path: Path) -> Iterator[int]:
    requireTool("turnserver", "coturn")
    port = freeTurnPort()
    with coturn(tmp_path / "coturn", port):
        yield port


@pytest_twisted.ensureDeferred
async def test_coturnAnswersWithOurAddress(coturnPort: int) -> None:
    """coturn answers the Binding request; the XOR-MAPPED-ADDRESS is our
    own loopback address and some port."""
    answer = await bindingCheck(HOST, coturnPort, timeout=2.0)
    assert answer is not None
    host, port = answer
    assert host == HOST
    assert 0 < port < 65536


@pytest_twisted.ensureDeferred
async def test_silenceIsNone() -> None:
    """A UDP socket that never answers: None after the timeout, no error."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        port = silent.getsockname()[1]
        assert await bindingCheck(HOST, port, timeout=0.6) is None


@pytest_twisted.ensureDeferred
async def test_closedPortIsNone() -> None:
    """Nobody listens (ICMP port unreachable on loopback): None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    assert await bindingCheck(HOST, port, timeout=0.6) is None


def _answerWith(reply: bytes | None) -> tuple[socket.socket, threading.Thread]:
    """A UDP server that answers each datagram with ``reply`` (or, when
    None, echoes the request back: a request is no success response)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((HOST, 0))
    server.settimeout(3)

    def serve() -> None:
        try:
            data, addr = server.recvfrom(2048)
            server.sendto(data if reply is None else reply, addr)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


@pytest.mark.parametrize("reply", [b"garbage, not STUN", None])
@pytest_twisted.ensureDeferred
async def test_badAnswerIsNone(reply: bytes | None) -> None:
    server, thread = _answerWith(reply)
    try:
        answer = await bindingCheck(HOST, server.getsockname()[1], timeout=1.0)
        assert answer is None
    finally:
        server.close()
        thread.join(3)


@pytest_twisted.ensureDeferred
async def test_hostNameIsResolved(coturnPort: int) -> None:
    answer = await bindingCheck("localhost", coturnPort, timeout=2.0)
    assert answer is not None and answer[0] == HOST
