"""Where SIP messages go: phones' flows and the AppAttach connections
between peers (RFC 7904 section 5).

A :class:`Flow` is one way back to one SIP neighbour: a phone's UDP
address (:class:`UdpFlow`), a phone's TCP connection
(:class:`StreamFlow`), or an AppAttach connection to another peer (a
:class:`StreamFlow` with ``nodeId`` set).  Flows have a short ``token``
that Record-Route carries (``flow=``) so an in-dialog request finds the
phone's flow again.

:class:`OverlayConnections` keeps the AppAttach connections (section 5.1):
"a previous SIP connection MAY be reused", so one per peer, opened with
application 5060 on first use, shared by both directions (a connection the
other peer opened is adopted too), kept alive with RFC 5626 CRLF pings
every :data:`KEEPALIVE` seconds (RFC 6940 section 6.5.2: "often every 25
seconds"), and forgotten when it closes.  An overlay link never carries
SIP: these are the only connections SIP is sent on between peers.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.errors import AppAttachFailed
from reload.interfaces import INode
from usages.sipusage.message import SipMessage, SipParseError, StreamFramer, parseDatagram

__all__ = [
    "KEEPALIVE",
    "SIP_APPLICATION",
    "Flow",
    "OverlayConnections",
    "StreamFlow",
    "UdpFlow",
]

#: RFC 6940 section 6.5.2 / RFC 7904 section 5.1: Application-ID of SIP.
SIP_APPLICATION = 5060
#: Seconds between keepalive pings on an idle AppAttach connection.
KEEPALIVE = 25.0
#: Seconds an AppAttach may take before the call gets 480.
CONNECT_TIMEOUT = 8.0

#: ``(message, flow)``: a parsed message from a flow.
Receiver = Callable[[SipMessage, "Flow"], None]
#: ``(reason, raw bytes, flow)``: bytes that did not parse.
BadInput = Callable[[str, bytes, "Flow"], None]


class Flow:
    """One way back to one SIP neighbour."""

    #: The Via transport of the flow: UDP, TCP or TLS.
    proto = "UDP"
    nodeId: bytes | None = None

    def __init__(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        self.token = ""

    @property
    def alive(self) -> bool:
        return True

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close a stream after an error (nothing for UDP)."""


class UdpFlow(Flow):
    """A phone's UDP address, answered from the front end's socket."""

    def __init__(self, port: Any, remote: tuple[str, int]) -> None:
        super().__init__(remote)
        self.port = port
        self.token = f"u{remote[0]}-{remote[1]}"

    def send(self, data: bytes) -> None:
        self.port.transport.write(data, self.remote)


class SipDatagramProtocol(DatagramProtocol):
    """The front end's UDP socket: each datagram one message (section 18.3)."""

    def __init__(self, receive: Receiver, bad: BadInput) -> None:
        self.receive = receive
        self.bad = bad

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        flow = UdpFlow(self, (addr[0], addr[1]))
        if not data.strip(b"\r\n"):
            return  # an RFC 5626 keepalive
        try:
            message = parseDatagram(data)
        except SipParseError as exc:
            self.bad(str(exc), data, flow)
            return
        self.receive(message, flow)


class StreamFlow(Flow, Protocol):
    """A stream (a phone's TCP connection, an AppAttach TLS connection)
    framed by :class:`StreamFramer`."""

    log = Logger()

    def __init__(
        self,
        receive: Receiver,
        bad: BadInput,
        proto: str,
        clock: IReactorTime | None = None,
        onClosed: Callable[[StreamFlow], None] | None = None,
    ) -> None:
        Flow.__init__(self, ("", 0))
        self.receiveMessage = receive
        self.bad = bad
        self.proto = proto
        self.framer = StreamFramer()
        self.clock = clock
        self.onClosed = onClosed
        self.connected = False
        # Unguessable: an in-dialog request names the flow it goes to by
        # this token (Record-Route's flow=), so a phone cannot aim at
        # another phone's connection by counting.
        self.token = f"t{secrets.token_hex(8)}"
        self._keepalive: IDelayedCall | None = None
        self.onMade: Callable[[StreamFlow], None] | None = None

    @property
    def alive(self) -> bool:
        return bool(self.connected)

    def connectionMade(self) -> None:
        self.connected = True
        assert self.transport is not None
        # One SIP message is one write; Nagle's algorithm would hold a 200
        # behind an unacknowledged 180 for the peer's delayed ACK (40 ms).
        noDelay = getattr(self.transport, "setTcpNoDelay", None)
        if callable(noDelay):
            with contextlib.suppress(OSError):
                noDelay(True)
        peer = self.transport.getPeer()
        self.remote = (str(getattr(peer, "host", "")), int(getattr(peer, "port", 0)))
        if self.onMade is not None:
            self.onMade(self)
        self._schedule()

    def _schedule(self) -> None:
        if self.clock is not None and self.nodeId is not None:
            self._keepalive = self.clock.callLater(KEEPALIVE, self._ping)

    def _ping(self) -> None:
        self._keepalive = None
        if self.connected and self.transport is not None:
            self.transport.write(b"\r\n\r\n")
            self._schedule()

    def dataReceived(self, data: bytes) -> None:
        before = self.framer.pings
        try:
            messages = self.framer.feed(data)
        except SipParseError as exc:
            self.bad(str(exc), data, self)
            self.close()
            return
        for _ in range(self.framer.pings - before):
            if self.transport is not None:
                self.transport.write(b"\r\n")  # the pong (RFC 5626 section 3.5.1)
        for message in messages:
            self.receiveMessage(message, self)

    def send(self, data: bytes) -> None:
        if self.connected and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.connected and self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.cancel()
        self._keepalive = None
        if self.onClosed is not None:
            self.onClosed(self)


class StreamFactory(Factory):
    """Builds a :class:`StreamFlow` per connection with ``make``."""

    def __init__(self, make: Callable[[], StreamFlow]) -> None:
        self.make = make

    def buildProtocol(self, addr: Any) -> StreamFlow:
        return self.make()


class OverlayConnections:
    """The AppAttach connections to other peers, one per peer (section 5.1)."""

    log = Logger()

    def __init__(
        self,
        node: INode,
        receive: Receiver,
        bad: BadInput,
        connectTimeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.node = node
        self.receive = receive
        self.bad = bad
        self.connectTimeout = connectTimeout
        self.flows: dict[bytes, StreamFlow] = {}
        self._pending: dict[bytes, list[Deferred[StreamFlow]]] = {}
        self.opened = 0
        self.reused = 0
        self.failed = 0

    def _make(self, nodeId: bytes | None) -> StreamFlow:
        flow = StreamFlow(self.receive, self.bad, "TLS", self.node.clock, self._closed)
        flow.nodeId = nodeId
        flow.onMade = self._made
        return flow

    def _made(self, flow: StreamFlow) -> None:
        if flow.nodeId is None:
            # A connection another peer opened: its verified Node-ID.
            verified = self.node.verifiedNodeIds(flow.transport)
            if not verified:
                flow.close()
                return
            flow.nodeId = verified[0]
            flow._schedule()
        self.flows.setdefault(flow.nodeId, flow)

    def _closed(self, flow: StreamFlow) -> None:
        if flow.nodeId is not None and self.flows.get(flow.nodeId) is flow:
            del self.flows[flow.nodeId]

    def listen(self) -> None:
        """Answer AppAttaches for SIP (application 5060)."""
        self.node.listenApplication(SIP_APPLICATION, StreamFactory(lambda: self._make(None)))

    def existing(self, nodeId: bytes) -> StreamFlow | None:
        flow = self.flows.get(nodeId)
        return flow if flow is not None and flow.alive else None

    def connect(self, nodeId: bytes) -> Deferred[StreamFlow]:
        """The connection to ``nodeId``: the one open, else a new AppAttach
        (its answering certificate must be ``nodeId``'s, section 5.1)."""
        flow = self.existing(nodeId)
        if flow is not None:
            self.reused += 1
            return succeed(flow)
        waiting: Deferred[StreamFlow] = Deferred()
        if nodeId in self._pending:
            self._pending[nodeId].append(waiting)
            return waiting
        self._pending[nodeId] = [waiting]
        try:
            attached = self.node.appAttach(
                nodeId, SIP_APPLICATION, StreamFactory(lambda: self._make(nodeId))
            )
        except Exception as exc:  # a node without sockets
            del self._pending[nodeId]
            self.failed += 1
            return fail(AppAttachFailed(str(exc)))
        attached.addTimeout(self.connectTimeout, self.node.clock)

        def done(result: Any) -> None:
            waiters = self._pending.pop(nodeId, [])
            if isinstance(result, StreamFlow):
                self.opened += 1
                self.flows[nodeId] = result
                for d in waiters:
                    d.callback(result)
            else:
                self.failed += 1
                for d in waiters:
                    d.errback(result if isinstance(result, Failure) else Failure(result))

        attached.addBoth(done)
        return waiting

    def closeAll(self) -> None:
        for flow in list(self.flows.values()):
            flow.close()
