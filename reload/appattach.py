"""AppAttach: direct connections for applications (RFC 6940 section 6.5.2),
No-ICE, stream applications over TLS only.

A node sends an AppAttach "when it wishes to establish a direct connection
to another node for the purposes of sending application-layer messages"
(section 6.5.2), e.g. SIP (Application-ID 5060) in the SIP usage (RFC 7904
section 5.1).  :class:`AppAttachService` is both halves:

* :meth:`AppAttachService.listenApplication` says which applications this
  node answers for, with the Twisted protocol factory that gets each
  connection;
* :meth:`AppAttachService.appAttach` routes an AppAttachReq to a Node-ID and
  fires with the caller's protocol once the connection to that node is up
  and authenticated.

Who connects.  "AppAttach is nearly identical to Attach" (section 6.5.2), so
the roles are Attach's: the requester is the offerer and "passive", the
answerer "active" (section 6.5.1.1, RFC 4145: the active side opens the
connection); "when sending candidates for TLS/TCP with FH, No-ICE, a passive
candidate MUST be provided" (section 6.6.5); and "the node that sent the
Attach request MUST be the TLS server.  The other node MUST be the TLS
client.  The server MUST request TLS client authentication" (section
6.5.1.13).  So the caller listens and the answering node connects to the
caller's host candidate after sending its AppAttachAns.  The answer carries
no candidate: nobody connects to the active side.

Listening.  Each :meth:`~AppAttachService.appAttach` opens its own TLS port
(ephemeral, on ``interface``, advertised as ``host``) for the one node it
expects, and closes it as soon as that AppAttach is over.  One port per
AppAttach rather than one shared port: a connection on it can only be the
answer to that AppAttach, so a certificate with the wrong Node-ID fails that
AppAttach at once with a clear error (a shared port could only drop the
connection and let the caller time out), and a node with no AppAttach in
progress listens for none.  The number of AppAttaches in progress, the
connections a port takes while waiting and the time it waits are bounded
(:class:`AppAttachSettings`).

Authentication (section 6.5.1.11: "The certificate exchanged during the TLS
or DTLS handshake MUST match the node which sent the AttachReqAns, and if it
does not, the connection MUST be closed"; RFC 7904 section 5.1: "the
responding Peer MUST present a certificate with a Node-ID matching the
terminal entry in the destination list.  Otherwise, the connection MUST NOT
be used and MUST be closed").  Both sides present this node's overlay
certificate and verify the other's with the overlay's
:class:`~reload.security.trust.TrustPolicy` through the one verify callback
of :mod:`reload.security.tls`, told the Node-ID expected: the caller (TLS
server) expects the Node-ID it asked for, the answering node (TLS client)
the Node-ID that signed the AppAttachReq.  The application's factory builds
its protocol only after the handshake completed and that check passed
(:class:`_Gate` stands in front of it), so it never sees an unauthenticated
connection.  With TLS 1.3 the client completes its handshake before the
server has checked the client's certificate: when the caller refuses the
answering node's certificate, the answering side's application may see a
connection that closes at once; the caller's never does.

Unknown application: section 6.5.2.2, "If the Application ID is not
supported, the peer MUST reply with an Error_Not_Found error"; nothing is
kept.  Too many AppAttaches being answered at once: Error_In_Progress
(section 6.5.1.2 allows an overloaded peer an error; this is the code of
"an Attach to this peer is already in progress", section 6.3.3.1).

ICE (section 6.5.2: "the application ... can use ICE").  When the node
has an :class:`~reload.transport.iceappattach.IceAppAttach` (``ice``, set
by the peer when it runs DTLS), an AppAttach can go over ICE, with the
same choice as Attach (section 6.5.1.11, :mod:`reload.transport.iceattach`):
a requester behind a NAT offers ICE candidates only (on a UDP port of the
AppAttach's own), a public one offers the TLS host candidate and ICE
candidates; the answering node keeps to No-ICE when it can connect to the
TLS candidate and is not itself behind a NAT, and answers with ICE
candidates otherwise.  Over ICE, the requester is controlling and the DTLS
server, the answering node the DTLS client (section 6.5.1.13), and the
application's protocol gets an
:class:`~reload.link.appstream.ApplicationStream` (``transport.pairType``
says "host", "srflx" or "relay"; ``transport.peer`` is the verified
certificate) -- built, as on the TLS path, only once the other node's
certificate was checked for the Node-ID expected.

Datagram applications are not offered: the application gets a stream,
over TLS or over DTLS with simple reliability and ordering.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, cast

from OpenSSL import SSL
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IListeningPort,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.errors import AppAttachFailed, AppAttachRefused, ReloadError
from reload.link.appstream import ApplicationStream
from reload.security.certificates import PeerIdentity
from reload.security.tls import makeContext, prepareConnection, rejectionOf, verifiedPeerOf
from reload.security.trust import CertificateRejected, TrustPolicy, VerifiedPeer
from reload.transport.attach import ANSWERER_ROLE, OFFERER_ROLE, hostCandidate
from reload.transport.dispatcher import Dispatcher, Reply, Request
from reload.transport.iceappattach import IceAppAttach, IceAppSession, hasIceCandidates
from reload.transport.transport import Transport
from reload.wire.attach import AppAttachAns, AppAttachReq, IceCandidate, OverlayLinkType
from reload.wire.header import Destination
from reload.wire.message import ErrorCode

__all__ = ["AppAttachService", "AppAttachSettings"]


@dataclass(frozen=True, slots=True)
class AppAttachSettings:
    """Bounds on AppAttach state (seconds and counts)."""

    #: From sending the AppAttachReq to the authenticated connection.
    timeout: float = 30.0
    #: From TCP connection to a verified peer, each connection.
    handshakeTimeout: float = 10.0
    #: TCP connect to one candidate (answering side).
    connectTimeout: float = 10.0
    #: AppAttaches this node started and not finished.
    maxPending: int = 32
    #: AppAttaches this node answered and is still connecting for; more are
    #: answered with Error_In_Progress.
    maxAnswering: int = 32
    #: Candidates of one AppAttachReq tried, best first.
    maxCandidates: int = 4
    #: Connections one pending AppAttach's port has in its handshake at once.
    maxHandshakes: int = 4

    def __post_init__(self) -> None:
        for name in ("timeout", "handshakeTimeout", "connectTimeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")
        for name in ("maxPending", "maxAnswering", "maxCandidates", "maxHandshakes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)!r}")


def _token() -> bytes:
    """ICE ufrag and password (unused by No-ICE, but the fields are there):
    24 characters, above the 22 of RFC 8445 section 5.3's ice-pwd."""
    return os.urandom(12).hex().encode()


# -- TLS with the Node-ID expected, on either side --------------------------------


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLClientConnectionCreator)
class _Creator:
    """One side's TLS connections for one AppAttach: the caller is the TLS
    server (``isClient`` False, client certificate required), the
    answering node the client; either way the verify callback checks the
    other's certificate for ``expectedNodeId``."""

    def __init__(
        self, context: SSL.Context, clock: IReactorTime, expectedNodeId: bytes, *, isClient: bool
    ) -> None:
        self.context = context
        self.clock = clock
        self.expectedNodeId = expectedNodeId
        self.isClient = isClient

    def _connection(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self.context, None)
        if self.isClient:
            connection.set_connect_state()
        prepareConnection(
            connection,
            self.clock,
            isClient=self.isClient,
            expectedNodeId=self.expectedNodeId,
            transport=tlsProtocol,
        )
        return connection

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return self._connection(tlsProtocol)

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return self._connection(tlsProtocol)


@implementer(IHandshakeListener)
class _Gate(Protocol):
    """Stands between TLS and the application's protocol on one connection.

    The application's protocol is built (``build``) only once the handshake
    completed and the peer's certificate holds ``expectedNodeId``; until
    then bytes are refused and nothing reaches the application.
    :attr:`outcome` fires with the application's protocol, or fails with
    :class:`AppAttachRefused` (certificate refused) or
    :class:`AppAttachFailed` (connection lost or timed out first).
    """

    def __init__(
        self,
        expectedNodeId: bytes,
        build: Callable[[VerifiedPeer, IAddress], IProtocol | None],
        clock: IReactorTime,
        handshakeTimeout: float,
    ) -> None:
        self.expectedNodeId = expectedNodeId
        self.build = build
        self.clock = clock
        self.handshakeTimeout = handshakeTimeout
        self.application: IProtocol | None = None
        self.outcome: Deferred[IProtocol] = Deferred()
        #: Called with this gate when an application connection closes.
        self.onClosed: Callable[[_Gate], object] | None = None
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._timer = self.clock.callLater(self.handshakeTimeout, self._timedOut)

    def _timedOut(self) -> None:
        self._timer = None
        self._close(AppAttachFailed("the TLS handshake did not finish in time"))

    def handshakeCompleted(self) -> None:
        self._cancelTimer()
        if self.outcome.called:  # given up on (cancelled) meanwhile
            self._close(AppAttachFailed("the AppAttach was given up"))
            return
        try:
            peer = verifiedPeerOf(self.transport)
            if self.expectedNodeId not in peer.nodeIds:
                raise CertificateRejected(f"the certificate is not for {self.expectedNodeId.hex()}")
        except CertificateRejected as exc:
            self._close(AppAttachRefused(f"certificate refused: {exc.reason}"))
            return
        assert self.transport is not None
        application = self.build(peer, self.transport.getPeer())
        if application is None:
            self._close(AppAttachFailed("no application protocol for this connection"))
            return
        self.application = application
        application.makeConnection(self.transport)
        if IHandshakeListener.providedBy(application):
            application.handshakeCompleted()
        self.outcome.callback(application)

    def dataReceived(self, data: bytes) -> None:
        if self.application is not None:
            self.application.dataReceived(data)
        elif not self.outcome.called:
            self._close(AppAttachRefused("data before the peer was verified"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancelTimer()
        if self.application is not None:
            if self.onClosed is not None:
                self.onClosed(self)
            self.application.connectionLost(reason)
            return
        if not self.outcome.called:
            rejection = rejectionOf(self.transport)
            error: AppAttachFailed
            if rejection is not None:
                error = AppAttachRefused(f"certificate refused: {rejection.reason}")
            else:
                error = AppAttachFailed(
                    f"connection closed before the peer was verified: {reason.getErrorMessage()}"
                )
            self.outcome.errback(error)

    def _close(self, error: AppAttachFailed) -> None:
        if not self.outcome.called:
            self.outcome.errback(error)
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _cancelTimer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class _GateFactory(Factory):
    """Builds one :class:`_Gate` per connection (``admit`` may refuse it)
    and tells ``made`` about each."""

    def __init__(
        self,
        makeGate: Callable[[], _Gate],
        admit: Callable[[], bool] = lambda: True,
        made: Callable[[_Gate], object] = lambda gate: None,
    ) -> None:
        self.makeGate = makeGate
        self.admit = admit
        self.made = made

    def buildProtocol(self, addr: IAddress | None) -> _Gate | None:
        if not self.admit():
            return None
        gate = self.makeGate()
        gate.factory = self
        self.made(gate)
        return gate


# -- state of one AppAttach on each side -------------------------------------------


@dataclass(eq=False)
class _Pending:
    """An AppAttach this node sent: the port it waits on, the
    connections in their handshake there, and the caller's Deferred."""

    nodeId: bytes
    application: int
    factory: IProtocolFactory
    result: Deferred[IProtocol]
    port: IListeningPort | None = None
    timer: IDelayedCall | None = None
    request: Deferred[Any] | None = None
    handshaking: set[_Gate] = field(default_factory=set)
    done: bool = False
    #: The AppAttach's own ICE port, when candidates for ICE were offered.
    session: IceAppSession | None = None
    offer: AppAttachReq | None = None


@dataclass(eq=False)
class _Answering:
    """An AppAttach this node answered and is connecting for."""

    requester: bytes
    application: int
    connecting: Deferred[Any] | None = None
    gates: set[_Gate] = field(default_factory=set)
    session: IceAppSession | None = None


class AppAttachService:
    """AppAttach (section 6.5.2) for one node: see the module docstring.

    ``transport`` routes the AppAttachReq and answers; ``identity`` is the
    overlay certificate presented on application connections and
    ``trust`` the overlay's policy for the other side's; ``reactor``
    provides IReactorTCP and IReactorTime (``clock``, default the reactor,
    runs the timers and is the time certificates are checked at).  The
    caller's port listens on ``interface`` and is advertised as ``host``
    (the node's advertised address, its host candidate).  ``ice``, when
    set, makes the ICE ports (see the module docstring).
    """

    log = Logger()

    def __init__(
        self,
        transport: Transport,
        identity: PeerIdentity,
        trust: TrustPolicy,
        reactor: Any,
        host: str,
        interface: str = "",
        settings: AppAttachSettings | None = None,
        clock: IReactorTime | None = None,
        ice: IceAppAttach | None = None,
    ) -> None:
        self.transport = transport
        self.identity = identity
        self.trust = trust
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.host = host
        self.interface = interface
        self.settings = settings if settings is not None else AppAttachSettings()
        self._context = makeContext(identity, trust)
        self._applications: dict[int, IProtocolFactory] = {}
        #: AppAttaches this node sent and not finished.
        self.pending: set[_Pending] = set()
        #: AppAttaches this node answered and is still connecting for.
        self.answering: set[_Answering] = set()
        self._connections: set[_Gate] = set()
        #: Application streams over ICE (AppAttach over DTLS).
        self._streams: set[ApplicationStream] = set()
        self.ice = ice
        self._stopped = False
        #: Connections closed because of the certificate presented, on
        #: either side (for metrics and tests).
        self.refused = 0

    @property
    def nodeId(self) -> bytes:
        return self.transport.nodeId

    def register(self, dispatcher: Dispatcher) -> None:
        """Answer AppAttachReqs that reach this node."""
        dispatcher.register(AppAttachReq.CODE, self.handleAppAttach)

    # -- the application side -------------------------------------------------------

    def listenApplication(self, application: int, factory: IProtocolFactory) -> None:
        """Accept AppAttaches for ``application`` (a 16-bit Application-ID,
        section 14.5: 5060 for SIP, 5061 for SIPS): each authenticated
        connection gets a protocol from ``factory.buildProtocol(address)``
        (the protocol may return None to refuse).  The connecting node's
        verified certificate is ``reload.security.tls.verifiedPeerOf(
        protocol.transport)`` over TLS, and ``protocol.transport.peer``
        over ICE (an :class:`~reload.link.appstream.ApplicationStream`).
        Replaces an earlier factory."""
        if not 0 <= application <= 0xFFFF:
            raise ValueError(f"an Application-ID is 16 bits, not {application}")
        self._applications[application] = factory

    def stopListeningApplication(self, application: int) -> None:
        """Answer AppAttaches for ``application`` with Error_Not_Found again
        (connections already made stay up)."""
        self._applications.pop(application, None)

    def appAttach(
        self, nodeId: bytes, application: int, factory: IProtocolFactory
    ) -> Deferred[IProtocol]:
        """A direct connection to the node ``nodeId`` for ``application``.

        Routes an AppAttachReq to ``nodeId`` and waits for that node to
        connect to this one.  Fires with the protocol ``factory`` built for
        the connection (already connected: write with
        ``protocol.transport.write``, bytes arrive in its
        ``dataReceived``), once the certificate of the node that connected
        was verified to hold ``nodeId``.  Fails with :class:`ReloadError`
        when the overlay answered with an Error (Error_Not_Found: the node
        does not run ``application``, section 6.5.2.2),
        :class:`AppAttachRefused` when the connection presented a
        certificate that is not ``nodeId``'s (it was closed, RFC 7904
        section 5.1), or :class:`AppAttachFailed`.  Cancelling it gives up.
        """
        if self._stopped:
            return fail(AppAttachFailed("the AppAttach service is stopped"))
        if nodeId == self.nodeId:
            return fail(AppAttachFailed("cannot AppAttach to this node itself"))
        if not 0 <= application <= 0xFFFF:
            return fail(ValueError(f"an Application-ID is 16 bits, not {application}"))
        if len(self.pending) >= self.settings.maxPending:
            return fail(AppAttachFailed(f"{len(self.pending)} AppAttaches in progress already"))
        result: Deferred[IProtocol] = Deferred(lambda d: self._finish(pending, None))
        pending = _Pending(nodeId, application, factory, result)
        self.pending.add(pending)
        ice = self.ice
        tls: tuple[IceCandidate, ...] = ()
        if ice is None or not ice.behindNat():
            try:
                pending.port = self.reactor.listenTCP(
                    0, self._serverFactory(pending), interface=self.interface
                )
            except Exception as exc:
                self._finish(pending, AppAttachFailed(f"cannot listen for the connection: {exc}"))
                return result
            bound = cast(IPv4Address | IPv6Address, pending.port.getHost())
            # Section 6.6.5: the passive side provides the candidate.
            tls = (hostCandidate(self.host, bound.port),)
        pending.timer = self.clock.callLater(
            self.settings.timeout,
            lambda: self._finish(
                pending,
                AppAttachFailed(f"no connection from {nodeId.hex()} in {self.settings.timeout} s"),
            ),
        )
        if ice is None:
            self._send(pending, tls)
        else:
            gathering = Deferred.fromCoroutine(self._offerIce(pending, ice, tls))
            gathering.addErrback(lambda failure: self._finish(pending, failure))
        return result

    async def _offerIce(
        self, pending: _Pending, ice: IceAppAttach, tls: tuple[IceCandidate, ...]
    ) -> None:
        """Gather the candidates of the AppAttach's own ICE port, then send."""
        session = await ice.open(pending.nodeId)
        if pending.done:
            session.stop()
            return
        pending.session = session
        self._send(pending, (*tls, *session.candidates()))

    def _send(self, pending: _Pending, candidates: tuple[IceCandidate, ...]) -> None:
        offer = AppAttachReq(_token(), _token(), pending.application, OFFERER_ROLE, candidates)
        pending.offer = offer
        pending.request = self.transport.request(
            [Destination.node(pending.nodeId)], AppAttachReq.CODE, offer.encode()
        )
        pending.request.addCallbacks(
            lambda response: self._answered(pending, response),
            lambda failure: self._finish(pending, failure),
        )

    # -- the caller ----------------------------------------------------------------

    def _serverFactory(self, pending: _Pending) -> TLSMemoryBIOFactory:
        def build(peer: VerifiedPeer, address: IAddress) -> IProtocol | None:
            protocol: IProtocol | None = pending.factory.buildProtocol(address)
            return protocol

        def makeGate() -> _Gate:
            return _Gate(pending.nodeId, build, self.clock, self.settings.handshakeTimeout)

        def admit() -> bool:
            return not pending.done and len(pending.handshaking) < self.settings.maxHandshakes

        def made(gate: _Gate) -> None:
            pending.handshaking.add(gate)
            gate.outcome.addBoth(lambda result: self._gateDone(pending, gate, result))

        creator = _Creator(self._context, self.clock, pending.nodeId, isClient=False)
        return TLSMemoryBIOFactory(creator, False, _GateFactory(makeGate, admit, made))

    def _gateDone(self, pending: _Pending, gate: _Gate, result: IProtocol | Failure) -> None:
        pending.handshaking.discard(gate)
        if isinstance(result, Failure):
            if result.check(AppAttachRefused):
                # Section 6.5.1.11 / RFC 7904 section 5.1: closed, and the
                # AppAttach is over.
                self.refused += 1
                self.log.warn(
                    "AppAttach to {nodeId}: {error}",
                    nodeId=pending.nodeId.hex(),
                    error=result.getErrorMessage(),
                )
                self._finish(pending, result)
            # Else a connection that never got to a certificate: wait on.
            return
        if pending.done:
            # Another connection won (or the AppAttach ended meanwhile).
            self._dropConnection(gate)
            return
        self._track(gate)
        self._finish(pending, None, result)

    def _answered(self, pending: _Pending, response: Any) -> None:
        if pending.done:
            return
        error: AppAttachFailed | None = None
        if response.nodeId != pending.nodeId:
            error = AppAttachFailed(
                f"the AppAttach was answered by {response.nodeId.hex()}, not {pending.nodeId.hex()}"
            )
        elif response.code != AppAttachAns.CODE:
            error = AppAttachFailed(f"answered with message code {response.code:#06x}")
        else:
            try:
                answer = AppAttachAns.decode(response.body)
            except Exception as exc:
                error = AppAttachFailed(f"undecodable AppAttachAns: {exc}")
            else:
                if answer.application != pending.application:
                    error = AppAttachFailed(
                        f"answered for application {answer.application}, not {pending.application}"
                    )
        if error is not None:
            self._finish(pending, error)
            return
        session = pending.session
        if session is None:
            return  # the answering node is connecting to our TLS candidate
        if not hasIceCandidates(answer.candidates):
            # No-ICE chosen (section 6.5.1.11): the ICE port is not needed.
            pending.session = None
            session.stop()
            return
        if pending.port is not None:
            pending.port.stopListening()
            pending.port = None
        connecting = Deferred.fromCoroutine(self._connectIce(pending, session, answer))
        connecting.addErrback(lambda failure: self._finish(pending, failure))

    async def _connectIce(
        self, pending: _Pending, session: IceAppSession, answer: AppAttachAns
    ) -> None:
        """The requester's side of ICE: controlling, then the DTLS server."""
        assert pending.offer is not None
        try:
            stream = await session.connect(True, pending.offer, answer)
        except AppAttachRefused:
            self.refused += 1
            raise
        if pending.done:
            stream.loseConnection()
            return
        protocol = self._attachStream(stream, session, pending.factory)
        if protocol is None:
            self._finish(pending, AppAttachFailed("the application refused the connection"))
            return
        self._finish(pending, None, protocol)

    def _attachStream(
        self, stream: ApplicationStream, session: IceAppSession, factory: IProtocolFactory
    ) -> IProtocol | None:
        """Give the authenticated stream to a protocol of ``factory`` (None
        when the factory refuses it: the stream is closed)."""
        protocol: IProtocol | None = factory.buildProtocol(stream.getPeer())
        if protocol is None:
            stream.loseConnection()
            return None
        self._streams.add(stream)

        def closed(_: ApplicationStream) -> None:
            self._streams.discard(stream)
            session.stop()

        stream.onClosed = closed
        stream.attach(protocol)
        return protocol

    def _finish(
        self,
        pending: _Pending,
        error: Exception | Failure | None,
        protocol: IProtocol | None = None,
    ) -> None:
        """End ``pending``: stop listening, drop what is in its handshake,
        and fire the caller's Deferred (unless it was cancelled)."""
        if pending.done:
            return
        pending.done = True
        self.pending.discard(pending)
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        if pending.port is not None:
            pending.port.stopListening()
            pending.port = None
        if pending.session is not None and pending.session.stream is None:
            pending.session.stop()
        for gate in list(pending.handshaking):
            self._dropConnection(gate)
        pending.handshaking.clear()
        if pending.request is not None and not pending.request.called:
            pending.request.addErrback(lambda _: None)
        if pending.result.called:
            return
        if protocol is not None:
            pending.result.callback(protocol)
        elif error is not None:
            pending.result.errback(error)

    # -- the answering node ------------------------------------------------------------

    def handleAppAttach(self, request: Request) -> Reply | Deferred[Reply]:
        """Section 6.5.2.2 for an AppAttachReq addressed to this node."""
        body = request.body
        assert isinstance(body, AppAttachReq)
        requester = request.source
        factory = self._applications.get(body.application)
        if factory is None or self._stopped:
            raise ReloadError(
                ErrorCode.NOT_FOUND, f"application {body.application} is not supported here"
            )
        if requester == self.nodeId:
            raise ReloadError(ErrorCode.NOT_FOUND, "the AppAttach reached the node that sent it")
        candidates = self._usable(body.candidates)
        ice = self.ice
        useIce = (
            ice is not None
            and hasIceCandidates(body.candidates)
            and (not candidates or bool(ice.behindNat()))
        )
        if not candidates and not useIce:
            raise ReloadError(
                ErrorCode.INCOMPATIBLE_WITH_OVERLAY,
                "no passive TLS-TCP-FH-NO-ICE host candidate"
                + (" and no DTLS-UDP-SR candidate for ICE" if ice is not None else ""),
            )
        if len(self.answering) >= self.settings.maxAnswering:
            raise ReloadError(
                ErrorCode.IN_PROGRESS, f"{len(self.answering)} AppAttaches being answered already"
            )
        if useIce:
            assert ice is not None
            return Deferred.fromCoroutine(self._answerIce(ice, requester, body))
        answer = AppAttachAns(_token(), _token(), body.application, ANSWERER_ROLE, ())

        def afterSent() -> None:
            # State only once the answer is out (an answer that is not sent
            # leaves none); the bound holds here too.
            if self._stopped or len(self.answering) >= self.settings.maxAnswering:
                return
            attempt = _Answering(requester, body.application)
            self.answering.add(attempt)
            attempt.connecting = Deferred.fromCoroutine(self._connectAll(attempt, candidates))
            attempt.connecting.addErrback(self._answerFailed, attempt).addBoth(
                lambda _: self.answering.discard(attempt)
            )

        return Reply(AppAttachAns.CODE, answer.encode(), afterSent)

    async def _answerIce(self, ice: IceAppAttach, requester: bytes, body: AppAttachReq) -> Reply:
        """Section 6.5.2.2 with ICE: gather our port's candidates, answer
        with them, and once the answer is out run the checks (controlled)
        and open DTLS as the client (section 6.5.1.13)."""
        attempt = _Answering(requester, body.application)
        self.answering.add(attempt)
        try:
            session = await ice.open(requester)
        except Exception:
            self.answering.discard(attempt)
            raise
        attempt.session = session
        answer = AppAttachAns(
            _token(), _token(), body.application, ANSWERER_ROLE, tuple(session.candidates())
        )
        # An answer that is never sent leaves nothing behind for long.
        unsent = self.clock.callLater(self.settings.timeout, self._dropAttempt, attempt)

        def afterSent() -> None:
            if unsent.active():
                unsent.cancel()
            if self._stopped:
                self._dropAttempt(attempt)
                return
            attempt.connecting = Deferred.fromCoroutine(
                self._connectIceAnswer(attempt, session, answer, body)
            )
            attempt.connecting.addErrback(self._answerFailed, attempt).addBoth(
                lambda _: self.answering.discard(attempt)
            )

        return Reply(AppAttachAns.CODE, answer.encode(), afterSent)

    def _dropAttempt(self, attempt: _Answering) -> None:
        self.answering.discard(attempt)
        if attempt.session is not None and attempt.session.stream is None:
            attempt.session.stop()

    async def _connectIceAnswer(
        self,
        attempt: _Answering,
        session: IceAppSession,
        answer: AppAttachAns,
        request: AppAttachReq,
    ) -> None:
        try:
            stream = await session.connect(False, answer, request)
        except BaseException:
            session.stop()
            raise
        factory = self._applications.get(attempt.application)
        if factory is None or self._stopped:
            stream.loseConnection()
            raise AppAttachFailed("the application stopped listening")
        self._attachStream(stream, session, factory)

    def _usable(self, candidates: tuple[IceCandidate, ...]) -> list[IceCandidate]:
        usable = [
            c
            for c in candidates
            if c.overlay_link == OverlayLinkType.TLS_TCP_FH_NO_ICE and c.addr_port.ip is not None
        ]
        usable.sort(key=lambda c: -c.priority)
        return usable[: self.settings.maxCandidates]

    async def _connectAll(self, attempt: _Answering, candidates: list[IceCandidate]) -> None:
        errors: list[str] = []
        for candidate in candidates:
            if self._stopped:
                raise AppAttachFailed("the AppAttach service stopped")
            host = str(ip_address(candidate.addr_port.address))
            port = candidate.addr_port.port
            try:
                await self._connectOne(attempt, host, port)
                return
            except AppAttachRefused:
                # The requester's certificate is wrong: closed, no retry.
                self.refused += 1
                raise
            except Exception as exc:
                errors.append(f"{host}:{port}: {exc}")
        raise AppAttachFailed(f"no candidate answered: {'; '.join(errors)}")

    async def _connectOne(self, attempt: _Answering, host: str, port: int) -> None:
        gates: list[_Gate] = []

        def build(peer: VerifiedPeer, address: IAddress) -> IProtocol | None:
            factory = self._applications.get(attempt.application)
            if factory is None or self._stopped:
                return None
            protocol: IProtocol | None = factory.buildProtocol(address)
            return protocol

        def makeGate() -> _Gate:
            return _Gate(attempt.requester, build, self.clock, self.settings.handshakeTimeout)

        def made(gate: _Gate) -> None:
            gates.append(gate)
            attempt.gates.add(gate)

        creator = _Creator(self._context, self.clock, attempt.requester, isClient=True)
        tls = TLSMemoryBIOFactory(creator, True, _GateFactory(makeGate, made=made))
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.settings.connectTimeout)
        await endpoint.connect(tls)
        gate = gates[0]
        try:
            await gate.outcome
        finally:
            attempt.gates.discard(gate)
        self._track(gate)

    def _answerFailed(self, failure: Failure, attempt: _Answering) -> None:
        self.log.info(
            "AppAttach from {nodeId} (application {application}): {error}",
            nodeId=attempt.requester.hex(),
            application=attempt.application,
            error=failure.getErrorMessage(),
        )

    # -- connections ---------------------------------------------------------------------

    def _track(self, gate: _Gate) -> None:
        """Remember an application connection, to close it on :meth:`stop`."""
        self._connections.add(gate)
        gate.onClosed = self._connections.discard

    @staticmethod
    def _dropConnection(gate: _Gate) -> None:
        if gate.transport is not None:
            gate.transport.abortConnection()  # type: ignore[attr-defined]

    def stop(self) -> Deferred[None]:
        """Stop: pending AppAttaches fail, answered ones stop connecting,
        application connections close.  Fires when the ports are closed."""
        self._stopped = True
        waits: list[Deferred[Any]] = []
        for pending in list(self.pending):
            port = pending.port
            if port is not None:
                pending.port = None
                stopped = port.stopListening()
                if stopped is not None:
                    waits.append(stopped)
            self._finish(pending, AppAttachFailed("the AppAttach service stopped"))
        for attempt in list(self.answering):
            if attempt.session is not None:
                attempt.session.stop()
            for gate in list(attempt.gates):
                self._dropConnection(gate)
            if attempt.connecting is not None and not attempt.connecting.called:
                attempt.connecting.cancel()
        for gate in list(self._connections):
            if gate.transport is not None:
                gate.transport.loseConnection()
        for stream in list(self._streams):
            stream.loseConnection()
        if not waits:
            return succeed(None)
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)
