"""ICE checks that failed without a relayed candidate of ours are
remembered (RFC 6940 section 6.5.1.5): once a relay from a TURN server
found in the overlay is there, the peer Attaches to those nodes again
(:meth:`reload.peer.OverlayPeer._attachAgain`).  Checks that failed with a
relay are not: another try would meet the same NATs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from reload.link.stunport import IceFailed, StunPort
from reload.link.turnclient import TurnClient
from reload.transport.iceattach import ICE, IcePort
from reload.wire.attach import AttachAns, AttachReq, CandType, IceCandidate, IpAddressPort

Address = tuple[str, int]
PEER = b"\x0b" * 16
#: TEST-NET-1 (RFC 5737): nothing answers there.
NOWHERE = ("192.0.2.1", 9)


class _Endpoint:
    """The DTLS endpoint as the STUN port sees it; sends go nowhere."""

    def __init__(self) -> None:
        self.stunReceived: Callable[[bytes, Address], None] | None = None
        self.sent: list[tuple[bytes, Address]] = []
        self.links: dict[Address, Any] = {}
        self.relayRoutes: dict[Address, Callable[[bytes, Address], None]] = {}

    def sendDatagram(self, datagram: bytes, address: Address) -> None:
        self.sent.append((datagram, address))

    def relayedReceived(
        self, datagram: bytes, address: Address, route: Callable[[bytes, Address], None]
    ) -> None:
        pass


def _port(clock: Clock) -> IcePort:
    stun = StunPort(_Endpoint(), clock)

    def connect(host: str, port: int, nodeId: bytes) -> Deferred[Any]:
        return fail(AssertionError("no pair can be selected here"))

    return IcePort(stun, lambda: ("10.0.0.2", 4000), connect, timeout=2.0)


def _failChecks(port: IcePort, clock: Clock) -> None:
    theirs = AttachAns(
        b"abcd",
        b"0123456789abcdef01234567",
        b"active",
        (IceCandidate(IpAddressPort.of(*NOWHERE), ICE, b"h", 100, CandType.HOST),),
    )
    mine = AttachReq(b"wxyz", b"76543210fedcba9876543210", b"passive", ())
    agent = port.agent(True, mine, theirs)
    running = Deferred.fromCoroutine(port.runChecks(agent, PEER, dtlsClient=False))
    failures: list[Any] = []
    running.addErrback(failures.append)
    for _ in range(200):
        clock.advance(0.5)
        if running.called:
            break
    assert len(failures) == 1 and failures[0].check(IceFailed), failures


def test_checksThatFailedWithoutARelayAreRememberedForLater() -> None:
    clock = Clock()
    port = _port(clock)
    assert port.relayed is None
    _failChecks(port, clock)
    assert port.failedWithoutRelay == {PEER}


def test_checksThatFailedWithARelayAreNot() -> None:
    clock = Clock()
    port = _port(clock)
    turn = TurnClient(("192.0.2.7", 3478), "", "", lambda d, a: None, lambda d, a: None, clock,
                      overTls=True)  # fmt: skip
    turn.relayed = ("192.0.2.7", 50000)
    port.stun.turn = turn
    _failChecks(port, clock)
    assert port.failedWithoutRelay == set()
    turn.stop()


def test_theSetIsBounded() -> None:
    """A peer that fails with many nodes keeps at most MAX_RETRY_LATER."""
    from reload.transport import iceattach

    clock = Clock()
    port = _port(clock)
    port.failedWithoutRelay = {bytes([100 + i]) * 16 for i in range(iceattach.MAX_RETRY_LATER)}
    _failChecks(port, clock)
    assert PEER not in port.failedWithoutRelay
    assert len(port.failedWithoutRelay) == iceattach.MAX_RETRY_LATER
