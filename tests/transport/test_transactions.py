"""End-to-end retransmission and the overall timeout (RFC 6940 section 6.2.1)
on a :class:`twisted.internet.task.Clock`."""

from __future__ import annotations

from random import Random

import pytest
from twisted.internet.defer import CancelledError, TimeoutError
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from reload.errors import ReloadError, ReloadTimeout
from reload.transport.transactions import TransactionTable


def run(clock: Clock, seconds: float, step: float = 0.5) -> None:
    """Advance in small steps, so timers run at the time they were due."""
    steps = round(seconds / step)
    clock.pump([step] * steps)


def table(clock: Clock) -> TransactionTable[str]:
    return TransactionTable(clock, rng=Random(1))


def test_five_transmissions_three_seconds_apart_then_failure_at_15_seconds() -> None:
    """Section 6.2.1: timer = overlay-reliability-timer (3 s by default),
    "retransmitted up to 4 times, for a total of 5 messages", "After the
    timer for the fifth transmission fires, the message MUST be considered
    to have failed" -- 15 s, the maximum request lifetime."""
    clock = Clock()
    transactions = table(clock)
    sentAt: list[float] = []
    transaction = transactions.start(7, lambda: sentAt.append(clock.seconds()))
    outcome: list[object] = []
    transaction.deferred.addBoth(outcome.append)
    run(clock, 14.5)
    assert sentAt == [0.0, 3.0, 6.0, 9.0, 12.0]
    assert outcome == []
    clock.advance(0.499)
    assert outcome == []
    clock.advance(0.001)
    assert len(outcome) == 1
    failure = outcome[0]
    assert isinstance(failure, Failure)
    assert failure.check(ReloadTimeout) and failure.check(TimeoutError)
    error = failure.value
    assert isinstance(error, ReloadTimeout)
    assert (error.transmissions, error.elapsed) == (5, 15.0)
    assert 7 not in transactions and not clock.getDelayedCalls()
    assert transactions.timedOut == 1 and transactions.retransmitted == 4


def test_the_interval_is_the_configured_timer() -> None:
    clock = Clock()
    transactions: TransactionTable[str] = TransactionTable(clock, interval=0.25)
    sent: list[float] = []
    d = transactions.start(1, lambda: sent.append(clock.seconds())).deferred
    d.addErrback(lambda f: f.trap(ReloadTimeout))
    run(clock, 1.125, 0.125)
    assert sent == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert not d.called
    run(clock, 0.125, 0.125)
    assert d.called


def test_an_answer_stops_the_timer_and_a_second_answer_is_refused() -> None:
    clock = Clock()
    transactions = table(clock)
    sent: list[float] = []
    d = transactions.start(9, lambda: sent.append(clock.seconds())).deferred
    run(clock, 4)
    assert transactions.complete(9, "answer")
    assert d.result == "answer"
    assert not clock.getDelayedCalls()
    assert not transactions.complete(9, "duplicate")
    assert transactions.duplicates == 1
    clock.advance(30)
    assert sent == [0.0, 3.0]


def test_failing_with_an_error() -> None:
    clock = Clock()
    transactions = table(clock)
    d = transactions.start(3, lambda: None).deferred
    assert transactions.fail(3, ReloadError(0x0A, "too far"))
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert failures[0].check(ReloadError)
    assert not transactions.fail(3, ReloadError(0x0A))


def test_cancelling_forgets_the_transaction() -> None:
    clock = Clock()
    transactions = table(clock)
    d = transactions.start(5, lambda: None).deferred
    d.cancel()
    failures: list[Failure] = []
    d.addErrback(failures.append)
    assert failures[0].check(CancelledError)
    assert 5 not in transactions and not clock.getDelayedCalls()


def test_a_send_that_raises_is_a_lost_message() -> None:
    clock = Clock()
    transactions = table(clock)
    calls: list[float] = []

    def transmit() -> None:
        calls.append(clock.seconds())
        if len(calls) == 1:
            raise OSError("no route")

    d = transactions.start(11, transmit).deferred
    run(clock, 3)
    transactions.complete(11, "ok")
    assert calls == [0.0, 3.0] and d.result == "ok"


def test_stopped_retransmission_still_waits_out_the_lifetime() -> None:
    """Section 6.5.1.2: the loser of an Attach tie-break "MUST cancel
    retransmission of its own incomplete Attach request"."""
    clock = Clock()
    transactions = table(clock)
    sent: list[float] = []
    d = transactions.start(13, lambda: sent.append(clock.seconds())).deferred
    transactions.stopRetransmitting(13)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    clock.pump([1.0] * 15)
    assert sent == [0.0]
    assert failures and failures[0].check(ReloadTimeout)


def test_transaction_ids_are_random_and_unused() -> None:
    clock = Clock()
    transactions = table(clock)
    ids = {transactions.newTransactionId() for _ in range(100)}
    assert len(ids) == 100 and all(0 <= i < 2**64 for i in ids)
    transactions.start(1, lambda: None).deferred.addErrback(lambda f: None)
    with pytest.raises(ValueError):
        transactions.start(1, lambda: None)
