"""Is a STUN/TURN server alive?  One Binding transaction over UDP.

Discovery (RFC 6940 section 9) hands out a TURN server only after it has
answered; :func:`bindingCheck` asks it the cheapest question there is, a
STUN Binding request (RFC 8489 section 3), and reports the reflexive
address it sees, or None.  It never errbacks for network reasons (no
route, ICMP refusals, silence, garbage): a caller deciding whether to keep
a server in its cache wants a yes or a no, not an exception.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from usages.turnserver.stun import (
    Attr,
    MessageClass,
    Method,
    StunDecodeError,
    decodeMessage,
    encodeMessage,
    newTransactionId,
)

log = Logger()

#: RFC 8489 section 6.2.1: the first retransmission timeout (we halve the
#: RFC's 500 ms default so a two-second check retransmits three times).
INITIAL_RTO = 0.25


class _BindingProtocol(DatagramProtocol):
    """Sends one Binding request, retransmits it, and fires ``result``
    once: with the XOR-MAPPED-ADDRESS of a matching success response, or
    None on an error response or at the deadline."""

    def __init__(self, reactor: Any, server: tuple[str, int], timeout: float) -> None:
        self.reactor = reactor
        self.server = server
        self.timeout = timeout
        self.transactionId = newTransactionId()
        self.request = encodeMessage(
            Method.BINDING,
            MessageClass.REQUEST,
            self.transactionId,
            fingerprint=True,
        )
        self.result: Deferred[tuple[str, int] | None] = Deferred()
        self._rto = INITIAL_RTO
        self._calls: list[Any] = []

    def startProtocol(self) -> None:
        self._calls.append(self.reactor.callLater(self.timeout, self._finish, None))
        self._send()

    def _send(self) -> None:
        try:
            assert self.transport is not None
            self.transport.write(self.request, self.server)
        except Exception as e:  # an unreachable address: keep waiting
            log.debug("STUN probe send to {server} failed: {e}", server=self.server, e=e)
        self._calls.append(self.reactor.callLater(self._rto, self._send))
        self._rto *= 2

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if (addr[0], addr[1]) != self.server:
            return
        try:
            message = decodeMessage(datagram)
            if message.transactionId != self.transactionId or message.method != Method.BINDING:
                return
            if message.messageClass == MessageClass.ERROR:
                self._finish(None)
                return
            if message.messageClass != MessageClass.SUCCESS:
                return
            self._finish(message.xorAddress(Attr.XOR_MAPPED_ADDRESS))
        except StunDecodeError:
            self._finish(None)

    def connectionRefused(self) -> None:
        """An ICMP port unreachable: nobody listens there."""
        self._finish(None)

    def _finish(self, answer: tuple[str, int] | None) -> None:
        if self.result.called:
            return
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls.clear()
        if self.transport is not None:
            self.transport.stopListening()
        self.result.callback(answer)


def bindingCheck(
    host: str, port: int, timeout: float = 2.0, reactor: Any = None
) -> Deferred[tuple[str, int] | None]:
    """Send a STUN Binding request to ``host:port`` over UDP; fire with the
    XOR-MAPPED-ADDRESS of a valid success response (same transaction id,
    from that address), None on timeout, refusal or a bad answer."""
    if reactor is None:
        from twisted.internet import reactor as defaultReactor

        reactor = defaultReactor
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return _resolveThenCheck(host, port, timeout, reactor)
    protocol = _BindingProtocol(reactor, (str(ip), port), timeout)
    try:
        reactor.listenUDP(0, protocol, interface="::" if ip.version == 6 else "")
    except Exception as e:
        log.debug("STUN probe could not open a socket: {e}", e=e)
        return succeed(None)
    return protocol.result


def _resolveThenCheck(
    host: str, port: int, timeout: float, reactor: Any
) -> Deferred[tuple[str, int] | None]:
    """A host name: resolve it first (within the same timeout)."""
    started = reactor.seconds()

    def resolved(address: str) -> Deferred[tuple[str, int] | None]:
        left = timeout - (reactor.seconds() - started)
        if left <= 0:
            return succeed(None)
        return bindingCheck(address, port, left, reactor)

    def failed(_: Any) -> None:
        return None

    d: Any = reactor.resolve(host, (1, timeout))
    d.addCallbacks(resolved, failed)
    answer: Deferred[tuple[str, int] | None] = d
    return answer
