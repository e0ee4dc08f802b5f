"""Fixtures for the link tests: self-signed peers on real loopback sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from twisted.internet.address import IPv4Address
from twisted.internet.task import deferLater
from zope.interface import implementer

from reload.link.interfaces import ILink, ILinkHandler
from reload.link.listener import LinkListener
from reload.link.tls import LinkSettings
from reload.security.certificates import PeerIdentity, makeSelfSignedIdentity
from reload.security.trust import TrustPolicy

OVERLAY = "links.example.org"
#: Longest a test waits for something to happen on loopback.
WAIT = 10.0


@implementer(ILinkHandler)
class Recorder:
    """An ILinkHandler that writes down what it is told."""

    def __init__(self) -> None:
        self.up: list[ILink] = []
        self.messages: list[tuple[ILink, bytes]] = []
        self.closed: list[tuple[ILink, str]] = []

    def linkUp(self, link: ILink) -> None:
        self.up.append(link)

    def messageReceived(self, link: ILink, message: bytes) -> None:
        self.messages.append((link, message))

    def linkClosed(self, link: ILink, reason: str) -> None:
        self.closed.append((link, reason))

    def messagesOn(self, link: ILink) -> list[bytes]:
        return [m for (on, m) in self.messages if on is link]

    def reasonFor(self, link: ILink) -> str | None:
        for on, reason in self.closed:
            if on is link:
                return reason
        return None


async def until(condition: Callable[[], object], timeout: float = WAIT) -> None:
    """Wait on the real reactor until ``condition()`` is true."""
    from twisted.internet import reactor

    step = 0.005
    for _ in range(int(timeout / step)):
        if condition():
            return
        await deferLater(reactor, step, lambda: None)
    raise AssertionError(f"condition not reached in {timeout} s")


async def sleep(seconds: float) -> None:
    from twisted.internet import reactor

    await deferLater(reactor, seconds, lambda: None)


@dataclass
class Peer:
    identity: PeerIdentity
    handler: Recorder
    listener: LinkListener

    @property
    def nodeId(self) -> bytes:
        return self.identity.nodeId

    @property
    def port(self) -> int:
        assert self.listener.port is not None
        address = self.listener.port.getHost()
        assert isinstance(address, IPv4Address)
        return address.port


@dataclass
class Peers:
    """Makes peers on 127.0.0.1 and stops them after the test."""

    trust: TrustPolicy
    made: list[Peer] = field(default_factory=list)

    async def make(self, settings: LinkSettings | None = None, **kw: Any) -> Peer:
        from twisted.internet import reactor

        identity = makeSelfSignedIdentity(OVERLAY, None)
        handler = Recorder()
        listener = LinkListener(reactor, identity, self.trust, handler, settings=settings, **kw)
        listener.startService()
        await listener.listen("tcp:0:interface=127.0.0.1")
        peer = Peer(identity, handler, listener)
        self.made.append(peer)
        return peer


@pytest.fixture(scope="session")
def tlsTrust() -> TrustPolicy:
    """Self-signed certificates permitted (section 11.3.1)."""
    return TrustPolicy(OVERLAY, (), selfSignedPermitted=True)


@pytest.fixture
def tlsPeers(tlsTrust: TrustPolicy) -> Iterator[Peers]:
    """Link listeners on 127.0.0.1, stopped after the test."""
    made = Peers(tlsTrust)
    yield made
    for peer in made.made:
        pytest_twisted.blockon(peer.listener.stopService())
