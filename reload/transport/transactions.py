"""Requests waiting for their answers, and their end-to-end retransmission
(RFC 6940 section 6.2.1).

"When an originating node transmits a request, it MUST set a timer to the
current overlay-reliability-timer.  If a response has not been received when
the timer fires, the request MUST be retransmitted with the same transaction
identifier.  The request MAY be retransmitted up to 4 times, for a total of
5 messages.  After the timer for the fifth transmission fires, the message
MUST be considered to have failed."  With the default timer of 3 seconds
(section 11.1) a request is retransmitted at 3, 6, 9 and 12 s and fails at
15 s, the "maximum request lifetime" of the same section.

A :class:`TransactionTable` keeps one :class:`Transaction` per transaction
id.  It calls the transaction's ``transmit`` (which routes and sends the
already signed message again, so a changed route is picked up) and runs the
timer on the injected clock.  :meth:`TransactionTable.complete` finishes a
transaction with its answer; an answer for a transaction that is not pending
(a duplicate, or one after the timeout) is refused and the caller drops it.
The Deferred of a transaction fails with :class:`ReloadTimeout` at the end,
or with whatever :meth:`TransactionTable.fail` is given; cancelling it
forgets the transaction.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.errors import ReloadTimeout

__all__ = [
    "DEFAULT_RELIABILITY_TIMER",
    "DEFAULT_TRANSMISSIONS",
    "MAX_REQUEST_LIFETIME",
    "Transaction",
    "TransactionTable",
]

#: Section 11.1: overlay-reliability-timer defaults to 3000 ms.
DEFAULT_RELIABILITY_TIMER = 3.0
#: Section 6.2.1: "up to 4 times, for a total of 5 messages".
DEFAULT_TRANSMISSIONS = 5
#: Section 6.2.1: "the maximum request lifetime (15 seconds)".
MAX_REQUEST_LIFETIME = 15.0

T = TypeVar("T")


class DelayedCall(Protocol):
    def cancel(self) -> None: ...

    def active(self) -> bool: ...


class Clock(Protocol):
    """The part of IReactorTime used here."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> DelayedCall: ...


class Transaction(Generic[T]):
    """One pending request.

    ``context`` is whatever the caller needs to check an answer (the
    request's code, its destination); ``transmissions`` counts the
    messages sent so far.
    """

    __slots__ = (
        "context",
        "deferred",
        "interval",
        "retransmitting",
        "started",
        "timer",
        "transactionId",
        "transmissions",
        "transmit",
        "what",
    )

    def __init__(
        self,
        transactionId: int,
        transmit: Callable[[], object],
        interval: float,
        started: float,
        context: object,
        what: str,
    ) -> None:
        self.transactionId = transactionId
        self.transmit = transmit
        self.interval = interval
        self.started = started
        self.context = context
        self.what = what
        self.transmissions = 0
        self.retransmitting = True
        self.timer: DelayedCall | None = None
        self.deferred: Deferred[T] = Deferred()

    def __repr__(self) -> str:
        return f"<Transaction {self.transactionId:#018x} {self.what} sent {self.transmissions}x>"


class TransactionTable(Generic[T]):
    """Pending requests by transaction id, with their timers.

    ``interval`` is the overlay-reliability-timer in seconds and
    ``transmissions`` the number of messages sent before giving up (5);
    ``rng`` makes transaction ids (section 6.3.2: "they MUST be randomly
    generated"; a :class:`random.SystemRandom` by default).
    """

    log = Logger()

    def __init__(
        self,
        clock: Clock,
        interval: float = DEFAULT_RELIABILITY_TIMER,
        transmissions: int = DEFAULT_TRANSMISSIONS,
        rng: random.Random | None = None,
    ) -> None:
        if not interval > 0 or transmissions < 1:
            raise ValueError("the interval must be positive and at least one transmission made")
        self.clock = clock
        self.interval = interval
        self.transmissions = transmissions
        self.rng = rng if rng is not None else random.SystemRandom()
        self._pending: dict[int, Transaction[T]] = {}
        #: Counters for status pages and tests.
        self.retransmitted = 0
        self.timedOut = 0
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, transactionId: object) -> bool:
        return transactionId in self._pending

    def __iter__(self) -> Iterator[Transaction[T]]:
        return iter(list(self._pending.values()))

    def get(self, transactionId: int) -> Transaction[T] | None:
        return self._pending.get(transactionId)

    def newTransactionId(self) -> int:
        """A random 64-bit id that no pending transaction uses."""
        while True:
            transactionId = self.rng.getrandbits(64)
            if transactionId not in self._pending:
                return transactionId

    def start(
        self,
        transactionId: int,
        transmit: Callable[[], object],
        *,
        context: object = None,
        interval: float | None = None,
        what: str = "request",
    ) -> Transaction[T]:
        """Send the request now (``transmit()``) and again on every timer
        until it is answered; return the transaction (its ``deferred``
        fires with the answer)."""
        if transactionId in self._pending:
            raise ValueError(f"transaction {transactionId:#x} is already pending")
        transaction: Transaction[T] = Transaction(
            transactionId,
            transmit,
            self.interval if interval is None else interval,
            self.clock.seconds(),
            context,
            what,
        )
        transaction.deferred = Deferred(lambda _: self._cancelled(transaction))
        self._pending[transactionId] = transaction
        self._send(transaction)
        return transaction

    def _send(self, transaction: Transaction[T]) -> None:
        transaction.transmissions += 1
        transaction.timer = self.clock.callLater(transaction.interval, self._expired, transaction)
        try:
            transaction.transmit()
        except Exception:
            # A failed send is a lost message: the timer covers it.
            self.log.failure("sending {transaction} failed", transaction=transaction)

    def _expired(self, transaction: Transaction[T]) -> None:
        transaction.timer = None
        if self._pending.get(transaction.transactionId) is not transaction:
            return
        if transaction.retransmitting and transaction.transmissions < self.transmissions:
            self.retransmitted += 1
            self._send(transaction)
            return
        if transaction.transmissions < self.transmissions:
            # Retransmission stopped (section 6.5.1.2): wait out the rest.
            transaction.transmissions += 1
            transaction.timer = self.clock.callLater(
                transaction.interval, self._expired, transaction
            )
            return
        del self._pending[transaction.transactionId]
        self.timedOut += 1
        elapsed = self.clock.seconds() - transaction.started
        transaction.deferred.errback(
            ReloadTimeout(
                transaction.transactionId, transaction.transmissions, elapsed, transaction.what
            )
        )

    def stopRetransmitting(self, transactionId: int) -> None:
        """Keep waiting for an answer but send no more copies (section
        6.5.1.2: a peer that lost an Attach tie-break "MUST cancel
        retransmission of its own incomplete Attach request")."""
        transaction = self._pending.get(transactionId)
        if transaction is not None:
            transaction.retransmitting = False

    def complete(self, transactionId: int, result: T) -> bool:
        """Fire the transaction's Deferred with ``result``; False (and
        nothing done) if it is not pending: a duplicate or late answer."""
        transaction = self._take(transactionId)
        if transaction is None:
            self.duplicates += 1
            return False
        transaction.deferred.callback(result)
        return True

    def fail(self, transactionId: int, reason: BaseException | Failure) -> bool:
        """Fail the transaction's Deferred; False if it is not pending."""
        transaction = self._take(transactionId)
        if transaction is None:
            return False
        transaction.deferred.errback(reason)
        return True

    def failAll(self, reason: BaseException) -> None:
        """Fail every pending transaction (shutdown)."""
        for transaction in list(self._pending.values()):
            self.fail(transaction.transactionId, reason)

    def _take(self, transactionId: int) -> Transaction[T] | None:
        transaction = self._pending.pop(transactionId, None)
        if transaction is not None and transaction.timer is not None:
            if transaction.timer.active():
                transaction.timer.cancel()
            transaction.timer = None
        return transaction

    def _cancelled(self, transaction: Transaction[T]) -> None:
        if self._pending.get(transaction.transactionId) is transaction:
            self._take(transaction.transactionId)
