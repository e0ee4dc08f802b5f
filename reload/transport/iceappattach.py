"""AppAttach over ICE (RFC 6940 section 6.5.2): one UDP port per AppAttach,
its candidates, the checks, then DTLS and an application byte stream.

"AppAttach is nearly identical to Attach" (section 6.5.2): the requester
is the offerer and controlling, the answerer controlled (section
6.5.1.9); the candidates carry ICE parameters (sections 6.5.1.1-6.5.1.5),
and once a pair is selected "the node that sent the Attach request MUST
be the TLS server" (section 6.5.1.13), so the answerer opens DTLS as the
client.  What differs from Attach: the connection is the application's,
not an overlay link, so it gets a port of its own
(:class:`IceAppSession`), opened for that one AppAttach and closed with
the application's connection:

* host candidate: the new port on the node's advertised address;
* server-reflexive (section 6.5.1.4): a STUN Binding request from that
  port to a peer's link port (the bootstrap peers, as for the node's own
  DTLS port);
* relayed (section 6.5.1.5): an allocation from that port on a TURN
  server (``relayServers()``: the ``--turn-server`` option, or over TLS the
  overlay member's server the node's own relay is on, found by the TURN
  usage), when the node has one.

The DTLS endpoint of the port carries application chunks
(``DTLSSettings.applicationData``), and the application's protocol gets an
:class:`~reload.link.appstream.ApplicationStream` as its transport.

Authentication is the one of the No-ICE path (section 6.5.1.11: "The
certificate exchanged during the TLS or DTLS handshake MUST match the node
which sent the AttachReqAns, and if it does not, the connection MUST be
closed"): both ends present their overlay certificates through the one
fail-closed verify callback; the DTLS client (answerer) is told the
Node-ID it expects, the server (requester) checks the verified Node-IDs
of the link against the node it AppAttached to and closes any other
link.  The application's protocol is built only after that, so it never
sees an unauthenticated connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from reload.errors import AppAttachFailed, AppAttachRefused
from reload.link.appstream import ApplicationStream
from reload.link.dtls import DTLSEndpoint, DTLSLink, DTLSSettings, UDPReactor
from reload.link.interfaces import ILink, ILinkHandler
from reload.link.stunport import StunPort
from reload.link.turnclient import TurnClient
from reload.link.turntls import allocateOverTls
from reload.security.certificates import PeerIdentity
from reload.security.trust import TrustPolicy
from reload.transport.iceattach import IcePort, iceCandidates
from reload.wire.attach import IceCandidate

__all__ = ["IceAppAttach", "IceAppSession", "RelayServer", "hasIceCandidates"]

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RelayServer:
    """A TURN server to allocate relayed candidates on: over UDP with
    long-term credentials (RFC 8656 section 9.2), or, with ``nodeId``, an
    overlay member's server over TLS whose certificate must hold that
    Node-ID (RFC 6940 section 9, :mod:`reload.link.turntls`)."""

    address: Address
    username: str
    password: str
    nodeId: bytes | None = None


def hasIceCandidates(candidates: Sequence[IceCandidate]) -> bool:
    """Whether an (App)Attach carries candidates for ICE (DTLS-UDP-SR)."""
    return bool(iceCandidates(tuple(candidates)))


@implementer(ILinkHandler)
class IceAppSession:
    """One AppAttach's port: made and gathered by :meth:`IceAppAttach.open`.
    ``peer`` is the Node-ID at the other end."""

    log = Logger()

    def __init__(
        self,
        peer: bytes,
        reactor: UDPReactor,
        identity: PeerIdentity,
        trust: TrustPolicy,
        settings: DTLSSettings,
        host: str,
        interface: str,
        timeout: float,
    ) -> None:
        self.peer = peer
        self.reactor = reactor
        self.identity = identity
        self.trust = trust
        self.endpoint = endpoint = DTLSEndpoint(reactor, identity, trust, self, settings)
        try:
            endpoint.port = reactor.listenUDP(0, endpoint, interface=interface)
        except Exception as exc:
            raise AppAttachFailed(f"cannot open a UDP port for ICE: {exc}") from exc
        self.host: Address = (host, endpoint.port.getHost().port)
        self.stun = StunPort(endpoint, endpoint.clock)
        self.ice = IcePort(self.stun, lambda: self.host, endpoint.connect, timeout=timeout)
        self.stream: ApplicationStream | None = None
        #: Fires with the link the other node opened (the DTLS server side).
        self._incoming: Deferred[DTLSLink] = Deferred()
        self.stopped = False
        #: Links closed because their certificate was not the peer's.
        self.refused = 0

    # -- gathering -----------------------------------------------------------------

    async def gather(self, stunServers: Sequence[Address], relays: Sequence[RelayServer]) -> None:
        """Section 6.5.1.4-6.5.1.5: our server-reflexive address from the
        first STUN server that answers, and a relayed one from the first
        TURN server that allocates (none: host and srflx only)."""
        await self.ice.discover(list(stunServers))
        for relay in relays:
            try:
                if relay.nodeId is not None:
                    self.stun.turn = await allocateOverTls(
                        self.reactor,
                        relay.address,
                        relay.nodeId,
                        self.identity,
                        self.trust,
                        self.stun.relayedReceived,
                    )
                    return
                turn = TurnClient(
                    relay.address,
                    relay.username,
                    relay.password,
                    self.endpoint.sendDatagram,
                    self.stun.relayedReceived,
                    self.endpoint.clock,
                )
                self.stun.turn = turn
                await turn.allocate()
                return
            except Exception as exc:
                if self.stun.turn is not None:
                    self.stun.turn.stop()
                self.stun.turn = None
                self.log.info(
                    "AppAttach: no relayed candidate from {server}: {error}",
                    server=f"{relay.address[0]}:{relay.address[1]}",
                    error=exc,
                )

    def candidates(self) -> list[IceCandidate]:
        return self.ice.candidates()

    # -- connecting ----------------------------------------------------------------

    async def connect(self, controlling: bool, mine: Any, theirs: Any) -> ApplicationStream:
        """Run the checks (``mine``/``theirs``: the AppAttachReq and Ans with
        the ICE parameters), then DTLS over the selected pair: the
        controlling side (the requester) is the DTLS server.  Returns the
        stream once the peer's certificate was verified to be ``peer``'s;
        the caller attaches the application's protocol to it."""
        agent = self.ice.agent(controlling, mine, theirs)
        try:
            result = await self.ice.runChecks(agent, self.peer, dtlsClient=not controlling)
        except AppAttachFailed:
            raise
        except Exception as exc:
            raise AppAttachFailed(f"ICE with {self.peer.hex()}: {exc}") from exc
        if controlling:
            link = await self._incoming
        else:
            assert isinstance(result, DTLSLink)
            link = result
        kind = self.ice.pairTypes.get(self.peer, "host")
        assert link.peer is not None
        stream = ApplicationStream(link, self.host, link.peer, kind, lambda _: self.stop())
        self.stream = stream
        return stream

    # -- ILinkHandler ----------------------------------------------------------------

    def linkUp(self, link: ILink) -> None:
        peer = getattr(link, "peer", None)
        if peer is None or self.peer not in peer.nodeIds or self.stream is not None:
            # Section 6.5.1.11: not the node this AppAttach is with.
            self.refused += 1
            link.close()
            if not self._incoming.called and self.stream is None:
                self._incoming.errback(
                    AppAttachRefused(
                        f"a DTLS connection for the AppAttach with {self.peer.hex()} presented "
                        "a certificate of another node; closed"
                    )
                )
            return
        if not self._incoming.called:
            assert isinstance(link, DTLSLink)
            self._incoming.callback(link)

    def messageReceived(self, link: ILink, message: bytes) -> None:
        if self.stream is not None and link is self.stream.link:
            self.stream.chunkReceived(message)

    def linkClosed(self, link: ILink, reason: str) -> None:
        if self.stream is not None and link is self.stream.link:
            self.stream.linkClosed(reason)

    # -- the end ------------------------------------------------------------------

    def stop(self) -> None:
        """Close the port: keepalives, the TURN allocation (refreshed to
        lifetime 0), the DTLS link and the socket."""
        if self.stopped:
            return
        self.stopped = True
        if not self._incoming.called:
            self._incoming.errback(AppAttachFailed("the AppAttach's port was closed"))
            self._incoming.addErrback(lambda _: None)
        self.stun.stop()
        self.endpoint.stop()


class IceAppAttach:
    """Makes an :class:`IceAppSession` per AppAttach.  ``host`` is the
    node's advertised address and ``interface`` the one it listens on;
    ``stunServers()`` and ``relayServers()`` say where to gather
    server-reflexive and relayed candidates; ``behindNat()`` is what the
    node learned of its own DTLS port (None: not known)."""

    def __init__(
        self,
        reactor: UDPReactor,
        identity: PeerIdentity,
        trust: TrustPolicy,
        host: str,
        *,
        interface: str = "",
        stunServers: Callable[[], Sequence[Address]] = lambda: (),
        relayServers: Callable[[], Sequence[RelayServer]] = lambda: (),
        behindNat: Callable[[], bool | None] = lambda: None,
        timeout: float = 10.0,
        settings: DTLSSettings | None = None,
    ) -> None:
        self.reactor = reactor
        self.identity = identity
        self.trust = trust
        self.host = host
        self.interface = interface
        self.stunServers = stunServers
        self.relayServers = relayServers
        self.behindNat = behindNat
        self.timeout = timeout
        base = settings if settings is not None else DTLSSettings()
        # One application connection per port; no window beyond simple
        # reliability's, and the application's chunks as they are.
        self.settings = DTLSSettings(
            mtu=base.mtu,
            handshakeTimeout=base.handshakeTimeout,
            idleTimeout=None,
            maxHandshakes=4,
            applicationData=True,
        )

    async def open(self, peer: bytes) -> IceAppSession:
        """A new port for an AppAttach with ``peer``, its candidates gathered."""
        session = IceAppSession(
            peer,
            self.reactor,
            self.identity,
            self.trust,
            self.settings,
            self.host,
            self.interface,
            self.timeout,
        )
        try:
            await session.gather(self.stunServers(), self.relayServers())
        except BaseException:
            session.stop()
            raise
        return session
