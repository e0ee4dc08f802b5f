"""Accepting and opening TLS-TCP-FH-NO-ICE links (RFC 6940 section 6.6.5).

:class:`LinkListener` is the Twisted service that owns a node's TLS links:

* server side: it listens on a Twisted server endpoint string (``tcp:6084``,
  ``tcp:0:interface=127.0.0.1``, ...) and wraps every accepted connection in
  TLS with :func:`reload.security.tls.serverConnectionCreator`;
* client side: :meth:`LinkListener.connect` opens a TCP connection, runs TLS
  with :func:`reload.security.tls.clientConnectionCreator` for the expected
  Node-ID, and fires with the link once the peer was verified.

Every verified link goes through the :class:`~reload.link.table
.ConnectionTable` (one link per Node-ID, the link limit, compressed-id
slots) before the handler hears ``linkUp``; the handler hears
``linkClosed`` only for links it heard ``linkUp`` for.  The handler may
also provide :class:`reload.link.tls.ILinkStallHandler` for section 6.6.5's
early failure signal.

Abuse limits (all in :class:`~reload.link.tls.LinkSettings`):

* at most ``maxHandshakesPerSource`` connections from one IP address may be
  in their handshake at once, and at most ``maxHandshakes`` in all: a
  connection beyond either limit aborts the inbound connection (from that
  address, or from any) that has been in its handshake longest (a real
  handshake takes milliseconds, so the oldest is a silent one; a
  newcomer is never the one turned away).  Each has ``handshakeTimeout``
  to finish;
* at most ``maxUnprovenLinksPerSource`` verified inbound links from one
  address that have not carried a message yet: a further one closes the
  oldest of them;
* when the connection table is full, a new link evicts an inbound link:
  first the oldest that never carried a message, else the one idle longest.
  Links this node opened are never evicted (they are its own choice of
  neighbours), so newcomers are still admitted while the table holds a
  crowd of identities that never joined;
* log lines about refusals and about the lifecycle of links are
  rate-limited per reason and source address (:mod:`reload.link.logs`).

Per-source limits count only what has not proven itself yet (handshakes,
links without a message), so many peers on one address (a lab on
127.0.0.1, a NAT) are not limited by them once their links carry traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from reload.link.interfaces import ILinkHandler
from reload.link.logs import RefusalLog
from reload.link.table import ConnectionTable, TableFull
from reload.link.tls import (
    HandshakeFailed,
    ILinkStallHandler,
    LinkSettings,
    LinkTLSFactory,
    TLSLink,
    TLSLinkFactory,
)
from reload.security.certificates import PeerIdentity
from reload.security.tls import clientConnectionCreator, serverConnectionCreator
from reload.security.trust import TrustPolicy

__all__ = ["LinkListener"]


@dataclass(eq=False)
class _Attempt:
    """One outbound connection in progress, and who waits for it: ``key``
    names it in the pending table, ``nodeId`` is the Node-ID expected (None
    for a bootstrap peer)."""

    key: bytes
    nodeId: bytes | None
    waiters: list[Deferred[TLSLink]] = field(default_factory=list)
    connecting: Deferred[Any] | None = None


class _InboundTLSFactory(LinkTLSFactory):
    """Refuses connections beyond ``maxHandshakes`` before any TLS work."""

    def __init__(self, listener: LinkListener, wrapped: TLSLinkFactory) -> None:
        super().__init__(
            serverConnectionCreator(listener.identity, listener.trust, listener.clock),
            False,
            wrapped,
            clock=listener.reactor,
        )
        self.listener = listener

    def buildProtocol(self, addr: IAddress | None) -> TLSMemoryBIOProtocol | None:  # type: ignore[override]
        if not self.listener._acceptInbound(addr):
            return None
        return super().buildProtocol(addr)


class _OutboundLinkFactory(TLSLinkFactory):
    def __init__(self, listener: LinkListener, attempt: _Attempt) -> None:
        super().__init__(
            listener, listener.handler, listener.settings, listener.clock, True, attempt.nodeId
        )
        self.listener = listener
        self.attempt = attempt

    def buildProtocol(self, addr: IAddress | None) -> TLSLink:
        link = super().buildProtocol(addr)
        self.listener._track(link, self.attempt)
        return link


class _InboundLinkFactory(TLSLinkFactory):
    def __init__(self, listener: LinkListener) -> None:
        super().__init__(listener, listener.handler, listener.settings, listener.clock, False)
        self.listener = listener

    def buildProtocol(self, addr: IAddress | None) -> TLSLink:
        link = super().buildProtocol(addr)
        self.listener._track(link, None)
        self.listener._inboundHost[link] = _host(addr)
        return link


def _host(addr: IAddress | None) -> str:
    return str(getattr(addr, "host", "?"))


class LinkListener(Service):
    """A node's TLS-TCP-FH-NO-ICE links, inbound and outbound.

    ``reactor`` provides IReactorTCP and IReactorTime (and name resolution
    for :meth:`connect` to a host name); ``clock`` (default: the reactor)
    runs every link timer and is the time certificates are checked
    against, so it must tell the real time outside tests.  ``endpoint`` is
    the server endpoint string :meth:`startService` listens on (None:
    outbound links only, or call :meth:`listen` yourself; a failure to
    listen is logged).  ``table`` defaults to a :class:`ConnectionTable`
    for ``identity``'s Node-ID.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        identity: PeerIdentity,
        trust: TrustPolicy,
        handler: ILinkHandler,
        endpoint: str | None = None,
        settings: LinkSettings | None = None,
        table: ConnectionTable[TLSLink] | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.identity = identity
        self.trust = trust
        self.handler = handler
        self.endpoint = endpoint
        self.settings = settings if settings is not None else LinkSettings()
        self.table: ConnectionTable[TLSLink] = (
            table if table is not None else ConnectionTable(identity.nodeId)
        )
        #: The port :meth:`listen` opened (an IListeningPort).
        self.port: IListeningPort | None = None
        self._live: set[TLSLink] = set()
        self._handshaking: set[TLSLink] = set()
        self._announced: set[TLSLink] = set()
        self._attemptOf: dict[TLSLink, _Attempt] = {}
        self._pending: dict[bytes, _Attempt] = {}
        #: IP address of each inbound connection still in its handshake.
        self._inboundHost: dict[TLSLink, str] = {}
        self._stopping = False
        #: Refusals (bad input, limits), rate-limited per reason and source.
        self.refusals = RefusalLog(self.log, self.clock)
        #: Lines about links coming and going, which anyone who can connect
        #: can cause: rate-limited too.
        self.events = RefusalLog(self.log, self.clock, perSource=5, perReason=10)
        self.table.victim = self._victim
        #: Counts of what the limits refused or evicted, for status and tests.
        self.limited: dict[str, int] = {}

    # -- server side ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        if self.endpoint is not None:
            self.listen(self.endpoint).addErrback(self._listenFailed)

    def _listenFailed(self, failure: Failure) -> None:
        self.log.failure("Cannot listen on {endpoint}", failure, endpoint=self.endpoint)

    def listen(self, description: str) -> Deferred[IListeningPort]:
        """Accept links on the server endpoint ``description``; fires with
        the IIListeningPort (also kept as :attr:`port`)."""
        factory = _InboundTLSFactory(self, _InboundLinkFactory(self))
        endpoint = serverFromString(self.reactor, description)
        d: Deferred[Any] = endpoint.listen(factory)

        def listening(port: IListeningPort) -> IListeningPort:
            self.port = port
            self.log.info("Accepting TLS links on {address}", address=port.getHost())
            return port

        return d.addCallback(listening)

    def _count(self, what: str) -> None:
        self.limited[what] = self.limited.get(what, 0) + 1

    def _acceptInbound(self, addr: IAddress | None) -> bool:
        if self._stopping:
            return False
        settings = self.settings
        host = _host(addr)
        fromHost = [link for link, h in self._inboundHost.items() if h == host]
        if len(fromHost) >= settings.maxHandshakesPerSource:
            oldest = min(fromHost, key=lambda link: link.connectedAt)
            self._count("handshakesPerSource")
            self.refusals.warn(
                "handshakes per source",
                host,
                "Aborting the oldest handshake from {source} ({age:.1f} s): {count} from it in "
                "progress (limit {limit})",
                age=self.clock.seconds() - oldest.connectedAt,
                count=len(fromHost),
                limit=settings.maxHandshakesPerSource,
            )
            oldest.abort("too many handshakes from its address")
        if len(self._handshaking) >= settings.maxHandshakes:
            inbound = [link for link in self._handshaking if link in self._inboundHost]
            if not inbound:
                self._count("handshakes")
                self.refusals.warn(
                    "handshakes",
                    host,
                    "Refusing a connection from {source}: {count} handshakes in progress",
                    count=len(self._handshaking),
                )
                return False
            oldest = min(inbound, key=lambda link: link.connectedAt)
            self._count("handshakeEvicted")
            self.refusals.warn(
                "handshake evicted",
                self._inboundHost[oldest],
                "Aborting the handshake of {source} after {age:.1f} s: all {limit} handshake "
                "slots are taken and a new connection came",
                age=self.clock.seconds() - oldest.connectedAt,
                limit=settings.maxHandshakes,
            )
            oldest.abort("its handshake slot was given to a newer connection")
        return True

    def _victim(self, newcomer: object) -> TLSLink | None:
        """The link the full table drops for ``newcomer``: an inbound link
        that never carried a message (the oldest), else the inbound link
        idle longest; never one this node opened."""
        inbound = [link for link in self.table if not link.outbound and link is not newcomer]
        if not inbound:
            return None
        unproven = [link for link in inbound if link.messagesReceived == 0]
        if unproven:
            victim = min(unproven, key=lambda link: link.upSince)
        else:
            victim = min(inbound, key=lambda link: link.lastActivity)
        self._count("linkEvicted")
        self.refusals.info(
            "link evicted",
            victim.sourceHost,
            "The connection table is full ({size} links): closing {link} ({messages} "
            "messages received) to admit a new link",
            size=len(self.table),
            link=victim,
            messages=victim.messagesReceived,
        )
        return victim

    def refused(self, reason: str, link: TLSLink, format: str, **kwargs: object) -> None:
        """LinkOwner: a link is closed for bad input; rate-limited."""
        self._count(reason)
        self.refusals.warn(
            reason, link.sourceHost, format, link=link, address=link.peerAddress, **kwargs
        )

    # -- client side ------------------------------------------------------------

    def connect(self, host: str, port: int, expectedNodeId: bytes) -> Deferred[TLSLink]:
        """A link to the node ``expectedNodeId`` at ``host``:``port``.

        Fires with the link once its peer was verified to hold
        ``expectedNodeId`` (and the handler heard ``linkUp``), or with the
        link already in the table for that Node-ID, which is also what a
        second connect() while the first is under way gets.  Fails with
        :class:`~reload.link.tls.HandshakeFailed`, :class:`~reload.link
        .table.TableFull` or the TCP connection error.
        """
        existing = self.table.linkFor(expectedNodeId)
        if existing is not None:
            return succeed(existing)
        return self._connect(expectedNodeId, host, port, expectedNodeId)

    def connectBootstrap(self, host: str, port: int) -> Deferred[TLSLink]:
        """A link to whatever overlay member answers at ``host``:``port``
        (a bootstrap peer, section 11.4), whose Node-ID is learnt from its
        certificate; the certificate must still be one the overlay trusts."""
        return self._connect(f"bootstrap {host}:{port}".encode(), host, port, None)

    def _connect(
        self, key: bytes, host: str, port: int, expectedNodeId: bytes | None
    ) -> Deferred[TLSLink]:
        if self._stopping:
            return fail(HandshakeFailed("the link listener is stopping"))
        attempt = self._pending.get(key)
        if attempt is None:
            if self.table.full:
                return fail(TableFull(f"{len(self.table)} links, the limit"))
            attempt = _Attempt(key, expectedNodeId)
            self._pending[key] = attempt
            creator = clientConnectionCreator(self.identity, self.trust, expectedNodeId, self.clock)
            factory = LinkTLSFactory(
                creator, True, _OutboundLinkFactory(self, attempt), clock=self.reactor
            )
            endpoint = HostnameEndpoint(
                self.reactor, host, port, timeout=self.settings.connectTimeout
            )
            attempt.connecting = endpoint.connect(factory)
            attempt.connecting.addErrback(self._connectFailed, attempt)
        d: Deferred[TLSLink] = Deferred()
        attempt.waiters.append(d)
        return d

    def _connectFailed(self, failure: Failure, attempt: _Attempt) -> None:
        self.log.info(
            "Cannot connect to {nodeId}: {error}",
            nodeId=attempt.key.decode() if attempt.nodeId is None else attempt.nodeId.hex(),
            error=failure.getErrorMessage(),
        )
        self._resolve(attempt, failure)

    def _resolve(self, attempt: _Attempt, result: TLSLink | Failure | Exception) -> None:
        if self._pending.get(attempt.key) is attempt:
            del self._pending[attempt.key]
        waiters, attempt.waiters = attempt.waiters, []
        for d in waiters:
            if isinstance(result, Failure | Exception):
                d.errback(result)
            else:
                d.callback(result)

    # -- LinkOwner (called by the links) ------------------------------------------

    def _track(self, link: TLSLink, attempt: _Attempt | None) -> None:
        self._live.add(link)
        self._handshaking.add(link)
        if attempt is not None:
            self._attemptOf[link] = attempt
        link.whenLost().addCallback(lambda _: self._live.discard(link))

    def linkVerified(self, link: TLSLink) -> None:
        self._handshaking.discard(link)
        self._inboundHost.pop(link, None)
        attempt = self._attemptOf.pop(link, None)
        nodeId = link.nodeId
        assert nodeId is not None
        self.events.info(
            "link verified",
            link.sourceHost,
            "Link {direction} {nodeId} ({address}) verified",
            direction="to" if link.outbound else "from",
            nodeId=nodeId.hex(),
            address=link.peerAddress,
        )
        if not link.outbound:
            self._limitUnproven(link)
        # Announce a replacement before closing the link it replaces: the
        # transport then keeps the peer (and the topology its Routing Table
        # entry) instead of seeing it lost and found again.
        toClose: list[TLSLink] = []
        if self.table.add(nodeId, link, link.outbound, closeLater=toClose):
            self._announced.add(link)
            try:
                self.handler.linkUp(link)
            except Exception:
                self.log.failure("linkUp handler failed for {link}", link=link)
        for old in toClose:
            old.close()
        if attempt is not None:
            kept = self.table.linkFor(nodeId)
            if kept is not None:
                self._resolve(attempt, kept)
            else:
                self._resolve(attempt, TableFull(f"no room for a link to {nodeId.hex()}"))

    def _limitUnproven(self, link: TLSLink) -> None:
        """``maxUnprovenLinksPerSource``: when ``link``'s address has that
        many inbound links that carried no message yet, the oldest of them
        is closed to admit ``link``."""
        host = link.sourceHost
        unproven = [
            other
            for other in self.table
            if not other.outbound and other.messagesReceived == 0 and other.sourceHost == host
        ]
        if len(unproven) < self.settings.maxUnprovenLinksPerSource:
            return
        oldest = min(unproven, key=lambda other: other.upSince)
        self._count("unprovenLinksPerSource")
        self.refusals.warn(
            "unproven links per source",
            host,
            "Closing {link} from {source}: {count} links from it carried no message yet "
            "(limit {limit})",
            link=oldest,
            count=len(unproven),
            limit=self.settings.maxUnprovenLinksPerSource,
        )
        oldest.abort("too many links from its address that carried no message")

    def handshakeFailed(self, link: TLSLink, reason: str) -> None:
        self._handshaking.discard(link)
        self._inboundHost.pop(link, None)
        attempt = self._attemptOf.pop(link, None)
        self.events.info(
            "handshake failed",
            link.sourceHost,
            "Handshake {direction} {address} failed: {failure}",
            direction="to" if link.outbound else "from",
            address=link.peerAddress,
            failure=reason,
        )
        if attempt is not None:
            self._resolve(attempt, HandshakeFailed(reason))

    def linkClosed(self, link: TLSLink, reason: str) -> None:
        self.table.remove(link)
        if link in self._announced:
            self._announced.discard(link)
            self.events.info(
                "link closed",
                link.sourceHost,
                "Link {link} closed: {closeReason}",
                link=link,
                closeReason=reason,
            )
            try:
                self.handler.linkClosed(link, reason)
            except Exception:
                self.log.failure("linkClosed handler failed for {link}", link=link)

    def linkStalled(self, link: TLSLink) -> None:
        if link in self._announced and ILinkStallHandler.providedBy(self.handler):
            ILinkStallHandler(self.handler).linkStalled(link)

    def linkResumed(self, link: TLSLink) -> None:
        if link in self._announced and ILinkStallHandler.providedBy(self.handler):
            ILinkStallHandler(self.handler).linkResumed(link)

    # -- shutdown ---------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """Stop listening, close every link, and fire once all are gone."""
        super().stopService()
        self._stopping = True
        self.refusals.stop()
        self.events.stop()
        waits: list[Deferred[Any]] = []
        if self.port is not None:
            stopped = self.port.stopListening()
            if stopped is not None:
                waits.append(stopped)
            self.port = None
        for attempt in list(self._pending.values()):
            if attempt.connecting is not None and not attempt.connecting.called:
                attempt.connecting.cancel()
        for link in list(self._live):
            waits.append(link.whenLost())
            link.close()
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)
