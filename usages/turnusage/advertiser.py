"""Advertising a TURN server in the overlay (RFC 6940 section 9).

"For each value, called d, between 1 and turn-density, the peer forms a
Resource Name by concatenating its Node-ID and the value d.  This Resource
Name is hashed to form a Resource-ID.  The address of the peer is stored at
that Resource-ID using type TURN-SERVICE and the TurnServer object."

The Resource Name is ``Node-ID || d`` with d as one unsigned byte
(:func:`reload.api.names.nodeMultipleResourceName`, the encoding the
NODE-MULTIPLE access check of every storing peer uses, section 7.3.4).
The values live ``lifetime`` seconds and are stored again every
``refresh`` seconds (90% of the lifetime unless told), so they never lapse
while the server runs; a Store that fails is retried sooner.  On stop (the
usage stops before its node leaves) every value still alive is
overwritten with exists=False (section 7.4.1.1) so that nobody is sent to
a server that is gone.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.api.names import nodeMultipleResourceName
from reload.interfaces import INode

from .kind import MAX_NODE_MULTIPLE, TURN_SERVICE_KIND_ID, TurnServer

__all__ = ["DEFAULT_LIFETIME", "REFRESH_FRACTION", "TurnAdvertiser"]

#: Seconds an advertisement lives (the RFC leaves it open): short enough
#: that a crashed server's values lapse within minutes.
DEFAULT_LIFETIME = 600
#: Stored again when this share of the lifetime has passed.
REFRESH_FRACTION = 0.9
#: Seconds before a failed Store is tried again (at most the refresh).
RETRY = 15.0


class TurnAdvertiser:
    """Stores ``address`` at H(Node-ID || d) for d = 1..``density`` through
    ``node`` and keeps it there until :meth:`stop`."""

    log = Logger()

    def __init__(
        self,
        node: INode,
        address: tuple[str, int],
        density: int,
        lifetime: int = DEFAULT_LIFETIME,
        refresh: float | None = None,
    ) -> None:
        if not 0 <= density <= MAX_NODE_MULTIPLE:
            raise ValueError(
                f"turn-density {density} is more than TURN-SERVICE's max-node-multiple"
                f" {MAX_NODE_MULTIPLE} (RFC 6940 section 9)"
            )
        self.node = node
        self.address = address
        self.density = density
        self.lifetime = lifetime
        self.refresh = lifetime * REFRESH_FRACTION if refresh is None else refresh
        #: d -> when its value expires (node clock).
        self.stored: dict[int, float] = {}
        self.stores = 0
        self.failures = 0
        self.lastError: str | None = None
        self.lastStored: float | None = None
        self.active = False
        self._timer: IDelayedCall | None = None
        self._pending: Deferred[Any] | None = None

    def resourceIds(self) -> list[tuple[int, bytes]]:
        """``(d, H(Node-ID || d))`` for d = 1..density."""
        nodeId = self.node.nodeId
        return [
            (d, self.node.resourceId(nodeMultipleResourceName(nodeId, d)))
            for d in range(1, self.density + 1)
        ]

    def start(self) -> Deferred[None]:
        """Store every value now and keep them refreshed; Deferred fired
        when this first round is answered (a failure is logged and tried
        again, never raised)."""
        self.active = True
        return self._storeAll()

    def _storeAll(self) -> Deferred[None]:
        self._timer = None
        if not self.active:
            return succeed(None)
        host, port = self.address
        pending = []
        for d, resourceId in self.resourceIds():
            value = TurnServer(d, host, port).encode()
            stored = self.node.store(resourceId, TURN_SERVICE_KIND_ID, value, self.lifetime)
            stored.addCallbacks(self._stored, self._notStored, callbackArgs=(d,), errbackArgs=(d,))
            pending.append(stored)
        done = DeferredList(pending, consumeErrors=True)
        self._pending = done

        def schedule(results: list[tuple[bool, Any]]) -> None:
            self._pending = None
            if not self.active:
                return
            failed = any(not ok or result is False for ok, result in results)
            delay = min(RETRY, self.refresh) if failed else self.refresh
            self._timer = self.node.clock.callLater(delay, self._storeAll)

        return done.addCallback(schedule)

    def _stored(self, result: object, d: int) -> bool:
        now = self.node.clock.seconds()
        self.stored[d] = now + self.lifetime
        self.stores += 1
        self.lastStored = now
        return True

    def _notStored(self, failure: Failure, d: int) -> bool:
        self.failures += 1
        self.lastError = failure.getErrorMessage() or type(failure.value).__name__
        self.log.warn("TURN: advertising at d={d} failed: {error}", d=d, error=self.lastError)
        return False

    def stop(self) -> Deferred[None]:
        """Stop refreshing and withdraw every value still alive (exists =
        False); Deferred fired when the withdrawals are answered (a failed
        one is logged: the value lapses anyway)."""
        self.active = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        before: Deferred[Any] = succeed(None)
        if self._pending is not None:
            before = Deferred()
            self._pending.addBoth(lambda _: before.callback(None))
        return before.addCallback(lambda _: self._withdraw())

    def _withdraw(self) -> Deferred[None]:
        now = self.node.clock.seconds()
        pending = []
        for d, resourceId in self.resourceIds():
            if self.stored.get(d, 0) <= now:
                continue
            withdrawn = self.node.store(resourceId, TURN_SERVICE_KIND_ID, None, self.lifetime)
            pending.append(withdrawn.addErrback(self._notWithdrawn, d))
        self.stored = {}
        return DeferredList(pending, consumeErrors=True).addCallback(lambda _: None)

    def _notWithdrawn(self, failure: Failure, d: int) -> None:
        self.log.warn(
            "TURN: withdrawing the advertisement at d={d} failed: {error}",
            d=d,
            error=failure.getErrorMessage(),
        )

    def status(self) -> dict[str, Any]:
        """What the status page shows of the advertising."""
        now = self.node.clock.seconds()
        live = sorted(d for d, expires in self.stored.items() if expires > now)
        return {
            "address": f"{_hostPort(*self.address)}",
            "density": self.density,
            "stored": live,
            "stores": self.stores,
            "failures": self.failures,
            "lastError": self.lastError,
            "lastStoredAgo": None if self.lastStored is None else round(now - self.lastStored, 1),
            "lifetime": self.lifetime,
        }


def _hostPort(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
