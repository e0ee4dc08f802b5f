"""The far peer of ``benchmarks/links.py``: a real RELOAD peer in its own process.

Not run by hand: ``links.py`` starts it with ``sys.executable``.  It makes a
self-signed identity (ECDSA P-256 or RSA-2048, ``--key``), accepts TLS links
(TLS-TCP-FH-NO-ICE, a :class:`~reload.link.listener.LinkListener`) and DTLS
links (:func:`~reload.link.dtls.listenDTLS`) on 127.0.0.1, and answers
Pings through a :class:`~reload.transport.TransportNode` with
:class:`~reload.transport.SigningSecurity`: every message it sends is
signed, every one it receives verified.  For diagnostics it also accepts
TLS links on two more ports: one that echoes every message (the link layer
alone) and one with a node that signs nothing
(:class:`~reload.transport.TrustingSecurity`).

Protocol with the parent:

* stdout, one JSON line once listening: ``{"nodeId", "tcpPort", "echoPort",
  "plainPort", "udpPort", "pid"}``;
* stdin, one command per line: ``profile-start``, ``profile-stop PATH``
  (cProfile of this process, written to PATH), ``counters`` (the transport's
  counters as one JSON line on stdout), ``times`` (this process's CPU
  seconds, user and system, and the time spent in the signing node's
  ``sign`` and ``verify``, likewise);
* end of stdin (the parent closed it or died) stops the peer.  On Linux the
  peer also asks for SIGTERM when its parent dies, and ``--lifetime`` bounds
  its life whatever happens.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import dieWithParent, logWarningsToStderr
from zope.interface import implementer

from reload.link.interfaces import ILink, ILinkHandler
from reload.link.listener import LinkListener
from reload.security.certificates import PeerIdentity, makeSelfSignedIdentity
from reload.security.keys import generateEcdsaKey, generateRsaKey
from reload.security.signing import CertificateCache
from reload.security.trust import TrustPolicy
from reload.transport import (
    MessageSecurity,
    SigningSecurity,
    TransportNode,
    TransportSettings,
    TrustingSecurity,
)
from reload.transport.security import Signer
from reload.wire.message import Message

OVERLAY = "bench-links.example.org"


@implementer(ILinkHandler)
class NullHandler:
    """Links that are opened only to be closed again (handshake loops)."""

    def linkUp(self, link: ILink) -> None:
        pass

    def messageReceived(self, link: ILink, message: bytes) -> None:
        pass

    def linkClosed(self, link: ILink, reason: str) -> None:
        pass


@implementer(ILinkHandler)
class EchoHandler(NullHandler):
    """Sends every message back on its link: the link layer alone."""

    def messageReceived(self, link: ILink, message: bytes) -> None:
        link.send(message)


def newIdentity(keyType: str) -> PeerIdentity:
    """A self-signed identity (section 11.3.1) with a new key of ``keyType``."""
    key = generateEcdsaKey() if keyType == "ecdsa" else generateRsaKey()
    return makeSelfSignedIdentity(OVERLAY, None, key=key)


def trustPolicy() -> TrustPolicy:
    """The overlay's rules: self-signed certificates permitted."""
    return TrustPolicy(OVERLAY, (), selfSignedPermitted=True)


class TimedSecurity:
    """A :class:`~reload.transport.MessageSecurity` that delegates to another
    and adds up the time its ``sign`` and ``verify`` calls take (two clock
    reads per call), to show what signing costs inside the running peer."""

    def __init__(self, inner: MessageSecurity) -> None:
        self.inner = inner
        self.signCalls = self.verifyCalls = 0
        self.signSeconds = self.verifySeconds = 0.0

    def sign(self, message: Message) -> Message:
        t0 = time.perf_counter()
        try:
            return self.inner.sign(message)
        finally:
            self.signSeconds += time.perf_counter() - t0
            self.signCalls += 1

    def verify(self, message: Message, previousHop: bytes | None) -> Signer:
        t0 = time.perf_counter()
        try:
            return self.inner.verify(message, previousHop)
        finally:
            self.verifySeconds += time.perf_counter() - t0
            self.verifyCalls += 1

    def totals(self) -> dict[str, list[float]]:
        return {
            "sign": [self.signCalls, self.signSeconds],
            "verify": [self.verifyCalls, self.verifySeconds],
        }


def makeNode(
    reactor: Any, identity: PeerIdentity, trust: TrustPolicy, signing: bool = True
) -> TransportNode:
    """A node's message layer that signs and verifies every message (or,
    with ``signing=False``, uses no cryptography at all: a diagnostic).
    Its security is a :class:`TimedSecurity`."""
    security = TimedSecurity(
        SigningSecurity(identity, CertificateCache(trust), reactor)
        if signing
        else TrustingSecurity(identity.nodeId)
    )
    return TransportNode(
        identity.nodeId,
        security,
        reactor,
        settings=TransportSettings(overlayName=OVERLAY),
        reactor=reactor,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the far peer of benchmarks/links.py")
    parser.add_argument("--key", choices=("ecdsa", "rsa"), default="ecdsa")
    parser.add_argument("--parent", type=int, default=os.getppid(), help="parent's pid")
    parser.add_argument("--lifetime", type=float, default=900.0, help="exit after this")
    args = parser.parse_args(argv)
    dieWithParent(args.parent)

    from twisted.internet import reactor as installed
    from twisted.internet.defer import gatherResults

    from reload.link.dtls import listenDTLS

    logWarningsToStderr()

    reactor: Any = installed
    identity = newIdentity(args.key)
    trust = trustPolicy()
    node = makeNode(reactor, identity, trust)
    listener = LinkListener(reactor, identity, trust, node.transport)
    listener.startService()
    # Diagnostics: the same links without RELOAD above them, and without signatures.
    echo = LinkListener(reactor, identity, trust, EchoHandler())
    echo.startService()
    plainNode = makeNode(reactor, identity, trust, signing=False)
    plain = LinkListener(reactor, identity, trust, plainNode.transport)
    plain.startService()
    dtls = listenDTLS(reactor, 0, identity, trust, NullHandler(), interface="127.0.0.1")
    profiler: list[cProfile.Profile] = []

    def say(obj: object) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def command(line: str) -> None:
        word, _, rest = line.strip().partition(" ")
        if word == "profile-start" and not profiler:
            profiler.append(cProfile.Profile())
            profiler[0].enable()
        elif word == "profile-stop" and profiler:
            profile = profiler.pop()
            profile.disable()
            profile.dump_stats(rest)
            say({"profile": rest})
        elif word == "counters":
            say({"counters": dict(node.transport.counters)})
        elif word == "times":
            timed = node.transport.security
            assert isinstance(timed, TimedSecurity)
            say({"cpu": time.process_time(), "security": timed.totals()})

    def stop() -> None:
        if reactor.running:
            reactor.stop()

    def readCommands() -> None:
        for line in sys.stdin:
            reactor.callFromThread(command, line)
        reactor.callFromThread(stop)

    assert dtls.port is not None
    udpPort = dtls.port.getHost().port

    def listening(ports: list[Any]) -> None:
        tcp, echoPort, plainPort = (port.getHost().port for port in ports)
        say(
            {
                "nodeId": identity.nodeId.hex(),
                "tcpPort": tcp,
                "echoPort": echoPort,
                "plainPort": plainPort,
                "udpPort": udpPort,
                "pid": os.getpid(),
            }
        )
        threading.Thread(target=readCommands, daemon=True).start()

    def failed(reason: Any) -> None:
        sys.stderr.write(f"linkpeer: cannot listen: {reason.getErrorMessage()}\n")
        stop()

    gatherResults(
        [one.listen("tcp:0:interface=127.0.0.1") for one in (listener, echo, plain)],
        consumeErrors=True,
    ).addCallbacks(listening, failed)
    reactor.callLater(args.lifetime, stop)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
