"""The sans-I/O ICE agent (reload.link.ice) and the STUN port around it
(reload.link.stunport): checks between two agents, nomination by the
controlling side (RFC 6940 section 6.5.1.9), the STUN server answer
(section 6.5.1), wrong credentials ignored, a check flood rate-limited."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from reload.link.ice import Candidate, IceAgent, candidatePriority
from reload.link.stunport import StunPort
from reload.wire.stun import (
    BINDING,
    REQUEST,
    SUCCESS,
    Attr,
    StunMessage,
    decodeXorAddress,
    newTransactionId,
)

A = ("198.18.0.1", 16084)
B = ("198.18.0.11", 16086)
HOST = candidatePriority("host")


def agents() -> tuple[IceAgent, IceAgent]:
    a = IceAgent(True, b"ua", b"pa" * 8, b"ub", b"pb" * 8, HOST,
                 [Candidate("srflx", *B, candidatePriority("srflx"), "s")], now=0.0)  # fmt: skip
    b = IceAgent(False, b"ub", b"pb" * 8, b"ua", b"pa" * 8, HOST,
                 [Candidate("host", *A, HOST, "h")], now=0.0)  # fmt: skip
    return a, b


def run(a: IceAgent, b: IceAgent, cut: bool = False) -> None:
    now = 0.0
    while now < 12 and not (a.done and b.done):
        for agent, source, other in ((a, A, b), (b, B, a)):
            agent.poll(now)
            for data, destination in agent.outbox:
                if destination == (B if agent is a else A) and not cut:
                    other.receive(data, source, now)
            agent.outbox.clear()
        now += 0.01


def test_theControllingAgentNominatesAndBothSelect() -> None:
    a, b = agents()
    run(a, b)
    assert a.selected is not None and a.selected.address == B
    assert b.selected is not None and b.selected.address == A
    # Each learned its address as the other saw it.
    assert a.selectedMapped == A


def test_withNoPathBothFail() -> None:
    a, b = agents()
    run(a, b, cut=True)
    assert a.selected is None and a.failure
    assert b.selected is None and b.failure


def test_aCheckWithTheWrongPasswordIsIgnored() -> None:
    _, b = agents()
    forged = StunMessage(BINDING, REQUEST, newTransactionId(), ((Attr.USERNAME, b"ub:ua"),))
    assert not b.receive(forged.encode(b"not the password"), A, 0.0)
    assert b.outbox == []
    wrongUser = StunMessage(BINDING, REQUEST, newTransactionId(), ((Attr.USERNAME, b"ub:zz"),))
    assert not b.receive(wrongUser.encode(b"pb" * 8), A, 0.0)
    assert b.outbox == []


class Recorder:
    """Stands in for the DTLS endpoint's socket: what the port sends."""

    def __init__(self) -> None:
        self.stunReceived: Any = None
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.links: dict[tuple[str, int], Any] = {}

    def sendDatagram(self, datagram: bytes, address: tuple[str, int]) -> None:
        self.sent.append((datagram, address))


def test_anyPeerAnswersAPlainBindingRequest() -> None:
    endpoint = Recorder()
    StunPort(endpoint, Clock())
    tid = newTransactionId()
    endpoint.stunReceived(StunMessage(BINDING, REQUEST, tid).encode(), B)
    [(data, to)] = endpoint.sent
    assert to == B
    answer = StunMessage.decode(data)
    assert answer.cls == SUCCESS
    mapped = answer.get(Attr.XOR_MAPPED_ADDRESS)
    assert mapped is not None and decodeXorAddress(mapped, tid) == B


def test_aFloodFromOneAddressIsRateLimitedAndOthersAreServed() -> None:
    endpoint = Recorder()
    port = StunPort(endpoint, Clock(), rate=50)
    for _ in range(1000):
        endpoint.stunReceived(StunMessage(BINDING, REQUEST, newTransactionId()).encode(), B)
    assert len(endpoint.sent) == 100  # the burst, no more
    assert port.limited == 900
    endpoint.stunReceived(StunMessage(BINDING, REQUEST, newTransactionId()).encode(), A)
    assert endpoint.sent[-1][1] == A


def test_garbageIsDroppedAndCounted() -> None:
    endpoint = Recorder()
    port = StunPort(endpoint, Clock())
    data = StunMessage(BINDING, REQUEST, newTransactionId()).encode()
    endpoint.stunReceived(data[:-1] + bytes([data[-1] ^ 1]), B)
    assert endpoint.sent == [] and port.dropped == 1
