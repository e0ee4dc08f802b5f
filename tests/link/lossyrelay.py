"""A UDP relay on 127.0.0.1 that loses and reorders datagrams, for link tests.

Clients send to :attr:`LossyRelay.address`; the relay forwards to the
target from one upstream socket per client (like a NAT, so the target sees
one distinct address per client) and sends the target's answers back.
Every datagram, in either direction, is dropped with probability ``loss``;
a surviving one is held back for up to ``maxDelay`` seconds with
probability ``reorder``, so that later datagrams overtake it.  One
``random.Random(seed)`` makes every decision, in the order datagrams
arrive: the same traffic meets the same fate.

Change :attr:`loss` at any time (1.0 is a black hole).  To lose chosen
datagrams, put their numbers (1 for the first datagram in that direction)
in :attr:`dropFromClient` or :attr:`dropFromTarget`.  :attr:`largest` is the
size of the largest datagram seen, to check an MTU.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.protocol import DatagramProtocol

Address = tuple[str, int]


class _Front(DatagramProtocol):
    def __init__(self, relay: LossyRelay) -> None:
        self.relay = relay

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.relay._fromClient(datagram, (addr[0], addr[1]))


class _Upstream(DatagramProtocol):
    def __init__(self, relay: LossyRelay, client: Address) -> None:
        self.relay = relay
        self.client = client

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.relay._fromTarget(datagram, self.client)


class LossyRelay:
    """See the module docstring.  ``reactor`` provides IReactorUDP and
    IReactorTime."""

    def __init__(
        self,
        reactor: Any,
        target: Address,
        *,
        loss: float = 0.0,
        reorder: float = 0.0,
        maxDelay: float = 0.02,
        seed: int = 0,
    ) -> None:
        self._reactor = reactor
        self.target = target
        self.loss = loss
        self.reorder = reorder
        self.maxDelay = maxDelay
        self._random = random.Random(seed)
        self._front = _Front(self)
        self._frontPort = reactor.listenUDP(0, self._front, interface="127.0.0.1")
        self._upstreams: dict[Address, tuple[_Upstream, Any]] = {}
        self._pending: set[Any] = set()
        self.dropFromClient: set[int] = set()
        self.dropFromTarget: set[int] = set()
        #: Datagrams received from clients and from the target.
        self.fromClient = 0
        self.fromTarget = 0
        #: Statistics over both directions.
        self.forwarded = 0
        self.dropped = 0
        self.delayed = 0
        self.largest = 0

    @property
    def address(self) -> Address:
        """Where clients send to reach the target."""
        host = self._frontPort.getHost()
        return (host.host, host.port)

    def _fromClient(self, datagram: bytes, client: Address) -> None:
        entry = self._upstreams.get(client)
        if entry is None:
            upstream = _Upstream(self, client)
            port = self._reactor.listenUDP(0, upstream, interface="127.0.0.1")
            entry = self._upstreams[client] = (upstream, port)
        self.fromClient += 1
        self._pass(datagram, entry[0], self.target, self.fromClient in self.dropFromClient)

    def _fromTarget(self, datagram: bytes, client: Address) -> None:
        self.fromTarget += 1
        self._pass(datagram, self._front, client, self.fromTarget in self.dropFromTarget)

    def _pass(self, datagram: bytes, via: DatagramProtocol, to: Address, drop: bool) -> None:
        self.largest = max(self.largest, len(datagram))
        rng = self._random
        if rng.random() < self.loss or drop:
            self.dropped += 1
            return
        if rng.random() < self.reorder:
            self.delayed += 1
            delay = rng.uniform(0.0, self.maxDelay)
            call = self._reactor.callLater(delay, self._deliver, datagram, via, to)
            self._pending.add(call)
            return
        self._deliver(datagram, via, to)

    def _deliver(self, datagram: bytes, via: DatagramProtocol, to: Address, *_: Any) -> None:
        self._pending = {call for call in self._pending if call.active()}
        if via.transport is None:
            return
        self.forwarded += 1
        try:
            via.transport.write(datagram, to)
        except OSError:
            self.dropped += 1

    def stop(self) -> Deferred[Any]:
        """Close every socket of the relay and forget held datagrams."""
        for call in self._pending:
            if call.active():
                call.cancel()
        self._pending.clear()
        ports = [self._frontPort] + [port for _, port in self._upstreams.values()]
        self._upstreams.clear()
        results = [port.stopListening() for port in ports]
        return gatherResults([r if isinstance(r, Deferred) else succeed(None) for r in results])
