"""STUN on the DTLS port: the STUN server every peer is, server-reflexive
address queries, the ICE sessions' I/O and their keepalives (RFC 6940
sections 6.5.1, 6.5.1.4, 6.5.1.10.3).

:class:`StunPort` takes the STUN datagrams a
:class:`~reload.link.dtls.DTLSEndpoint` demultiplexes (RFC 7983) and sends
from the same socket, so that every address learned or checked here is
the one the DTLS links use.

* A Binding request without USERNAME is a plain STUN server request
  (section 6.5.1: "any peer is a STUN server for others"): answered with
  XOR-MAPPED-ADDRESS and nothing else.
* A Binding request with USERNAME goes to the ICE session whose local
  username fragment comes first in it; one that names no session, or whose
  MESSAGE-INTEGRITY is wrong, is ignored (:class:`reload.link.ice.IceAgent`).
* Every source address gets at most ``rate`` STUN datagrams a second
  (burst ``2 * rate``); the rest are dropped and counted, so a check flood
  from one address costs little and the port goes on serving the others.
* Indications (keepalives) are accepted and dropped.
* Everything from the TURN server of :attr:`StunPort.turn` (a
  :class:`~reload.link.turnclient.TurnClient` allocated from this port,
  RFC 6940 section 6.5.1.5) goes to that client unlimited; what peers send
  through the relay comes back to :meth:`StunPort.relayedReceived`: STUN
  to the ICE sessions (answered through the relay), DTLS to the endpoint,
  which then sends to that peer through the relay too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from reload.link.ice import Candidate, IceAgent
from reload.link.turnclient import TurnClient
from reload.wire.errors import DecodeError
from reload.wire.stun import (
    BINDING,
    INDICATION,
    REQUEST,
    SUCCESS,
    Attr,
    StunMessage,
    decodeXorAddress,
    encodeXorAddress,
    looksLikeStun,
    newTransactionId,
)

__all__ = ["IceFailed", "StunPort"]

Address = tuple[str, int]
#: RFC 8445 section 11: keepalives at least every 15 s.
KEEPALIVE_INTERVAL = 15.0
#: A finished session still answers late checks for this long.
LINGER = 5.0
#: Source addresses whose rate is tracked at once.
MAX_TRACKED = 4096


class IceFailed(Exception):
    """An ICE session ended without a selected pair."""


class _Endpoint(Protocol):
    stunReceived: Callable[[bytes, Address], None] | None

    def sendDatagram(self, datagram: bytes, address: Address) -> None: ...

    def relayedReceived(
        self, datagram: bytes, address: Address, route: Callable[[bytes, Address], None]
    ) -> None: ...

    @property
    def links(self) -> dict[Address, Any]: ...

    @property
    def relayRoutes(self) -> dict[Address, Callable[[bytes, Address], None]]: ...


class StunPort:
    """The STUN side of one DTLS endpoint (see the module docstring)."""

    log = Logger()

    def __init__(self, endpoint: _Endpoint, clock: Any, rate: float = 100.0) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.rate = rate
        endpoint.stunReceived = self.datagramReceived
        self._sessions: dict[bytes, tuple[IceAgent, Deferred[Candidate]]] = {}
        self._timers: dict[bytes, Any] = {}
        self._queries: dict[bytes, tuple[Deferred[Address], Address]] = {}
        self._budget: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._keepalives: dict[Address, LoopingCall] = {}
        #: Our TURN allocation, once there is one.
        self.turn: TurnClient | None = None
        #: Counters for the status and tests.
        self.answered = 0
        self.dropped = 0
        self.limited = 0

    # -- receiving -------------------------------------------------------------------

    def _allowed(self, host: str) -> bool:
        now = self.clock.seconds()
        tokens, last = self._budget.pop(host, (2 * self.rate, now))
        tokens = min(2 * self.rate, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._budget[host] = (tokens, now)
            return False
        self._budget[host] = (tokens - 1, now)
        while len(self._budget) > MAX_TRACKED:
            self._budget.popitem(last=False)
        return True

    def relayedReceived(self, data: bytes, source: Address) -> None:
        """What ``source`` sent to our relayed address (a TURN Data indication)."""
        if self.turn is None:
            return
        if looksLikeStun(data):
            self.datagramReceived(data, source, relayed=True)
        else:
            self.endpoint.relayedReceived(data, source, self.turn.sendTo)

    def routeThroughRelay(self, address: Address, relayed: bool) -> None:
        """Whether the endpoint reaches ``address`` through our TURN relay
        (an ICE pair with our relayed candidate was selected) or directly."""
        if relayed and self.turn is not None:
            self.endpoint.relayRoutes[address] = self.turn.sendTo
        else:
            self.endpoint.relayRoutes.pop(address, None)

    def _send(self, datagram: bytes, address: Address, relayed: bool) -> None:
        if not relayed:
            self.endpoint.sendDatagram(datagram, address)
        elif self.turn is not None:
            self.turn.sendTo(datagram, address)

    def datagramReceived(self, data: bytes, source: Address, relayed: bool = False) -> None:
        if not relayed and self.turn is not None and source == self.turn.server:
            self.turn.datagramReceived(data)
            return
        if not self._allowed(source[0]):
            self.limited += 1
            return
        try:
            message = StunMessage.decode(data)
        except DecodeError:
            self.dropped += 1
            return
        if message.method != BINDING or message.cls == INDICATION:
            return
        if message.cls == REQUEST:
            username = message.get(Attr.USERNAME)
            if username is None:
                self._serve(message, source, relayed)
                return
            session = self._sessions.get(username.split(b":", 1)[0])
            now = self.clock.seconds()
            if session is None or not session[0].receive(data, source, now, relayed):
                self.dropped += 1
                return
            self._pump(session[0])
            return
        query = self._queries.get(message.transactionId)
        if query is not None:
            self._answer(message, source, *query)
            return
        for agent, _ in self._sessions.values():
            if agent.owns(message.transactionId):
                agent.receive(data, source, self.clock.seconds(), relayed)
                self._pump(agent)
                return
        self.dropped += 1

    def _serve(self, message: StunMessage, source: Address, relayed: bool) -> None:
        """Section 6.5.1: a plain Binding request, answered as a STUN server."""
        response = StunMessage(
            BINDING,
            SUCCESS,
            message.transactionId,
            ((Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(*source, message.transactionId)),),
        )
        self.answered += 1
        self._send(response.encode(), source, relayed)

    # -- server-reflexive addresses ----------------------------------------------------

    def query(self, server: Address, tries: int = 4, rto: float = 0.25) -> Deferred[Address]:
        """Ask the STUN server (a peer's link port) at ``server`` how it
        sees this port: our server-reflexive address (section 6.5.1.4)."""
        transactionId = newTransactionId()
        done: Deferred[Address] = Deferred()
        self._queries[transactionId] = (done, server)
        request = StunMessage(BINDING, REQUEST, transactionId).encode()

        def send(left: int, wait: float) -> None:
            if done.called:
                return
            if left == 0:
                self._queries.pop(transactionId, None)
                done.errback(IceFailed(f"the STUN server {server[0]}:{server[1]} did not answer"))
                return
            self.endpoint.sendDatagram(request, server)
            self.clock.callLater(wait, send, left - 1, wait * 2)

        send(tries, rto)
        return done

    def _answer(
        self, message: StunMessage, source: Address, done: Deferred[Address], server: Address
    ) -> None:
        if source != server or message.cls != SUCCESS:
            return
        mapped = message.get(Attr.XOR_MAPPED_ADDRESS)
        if mapped is None:
            return
        try:
            address = decodeXorAddress(mapped, message.transactionId)
        except DecodeError:
            return
        del self._queries[message.transactionId]
        done.callback(address)

    # -- ICE sessions ----------------------------------------------------------------

    def run(self, agent: IceAgent) -> Deferred[Candidate]:
        """Run ``agent``'s checks; fires with the selected remote candidate
        or fails with :class:`IceFailed`."""
        if agent.localUfrag in self._sessions:
            return fail(IceFailed("a session with this username fragment runs already"))
        done: Deferred[Candidate] = Deferred()
        self._sessions[agent.localUfrag] = (agent, done)
        self._pump(agent)
        return done

    def _pump(self, agent: IceAgent) -> None:
        now = self.clock.seconds()
        wake = agent.poll(now)
        for datagram, address in agent.outbox:
            self.endpoint.sendDatagram(datagram, address)
        agent.outbox.clear()
        for datagram, address in agent.relayOutbox:
            self._send(datagram, address, relayed=True)
        agent.relayOutbox.clear()
        timer = self._timers.pop(agent.localUfrag, None)
        if timer is not None and timer.active():
            timer.cancel()
        entry = self._sessions.get(agent.localUfrag)
        if entry is None:
            return
        done = entry[1]
        if wake is not None:
            self._timers[agent.localUfrag] = self.clock.callLater(
                max(0.0, wake - now), self._pump, agent
            )
            return
        if not done.called:
            if agent.selected is not None:
                done.callback(agent.selected)
            else:
                done.errback(IceFailed(agent.failure or "ICE failed"))
            # Late checks from the other side still get their answers.
            self._timers[agent.localUfrag] = self.clock.callLater(LINGER, self._end, agent)

    def _end(self, agent: IceAgent) -> None:
        self._timers.pop(agent.localUfrag, None)
        self._sessions.pop(agent.localUfrag, None)

    # -- keepalives -------------------------------------------------------------------

    def keepAlive(self, address: Address, interval: float = KEEPALIVE_INTERVAL) -> None:
        """Section 6.5.1.10.3: STUN Binding indications to ``address`` every
        ``interval`` seconds while a DTLS link to it exists, so that the
        NAT bindings on the way stay open."""
        if address in self._keepalives:
            return
        indication = StunMessage(BINDING, INDICATION, newTransactionId())

        def beat() -> None:
            if address not in self.endpoint.links:
                loop = self._keepalives.pop(address, None)
                if loop is not None and loop.running:
                    loop.stop()
                return
            self.endpoint.sendDatagram(indication.encode(), address)

        loop = LoopingCall(beat)
        loop.clock = self.clock
        self._keepalives[address] = loop
        loop.start(interval, now=False)

    @property
    def keepalives(self) -> list[Address]:
        return sorted(self._keepalives)

    def stop(self) -> None:
        if self.turn is not None:
            self.turn.stop()
        for loop in self._keepalives.values():
            if loop.running:
                loop.stop()
        self._keepalives.clear()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        for _, done in self._sessions.values():
            if not done.called:
                done.errback(IceFailed("the STUN port stopped"))
        self._sessions.clear()
