"""The simulator's discrete-event scheduler (reload.sim.clock)."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface.verify import verifyObject

from reload.sim.clock import NodeClock, Scheduler


class Owner:
    alive = True


def test_scheduler_and_its_calls_provide_the_reactor_time_interfaces() -> None:
    sched = Scheduler(100.0)
    assert verifyObject(IReactorTime, sched)
    assert verifyObject(IReactorTime, NodeClock(sched, Owner()))
    call = sched.callLater(1, lambda: None)
    assert verifyObject(IDelayedCall, call)
    assert call.getTime() == 101.0 and sched.seconds() == 100.0


def test_calls_run_in_time_order_and_in_scheduling_order_at_equal_times() -> None:
    sched = Scheduler()
    seen: list[str] = []
    sched.callLater(2, seen.append, "c")
    sched.callLater(1, seen.append, "a")
    sched.later(1, seen.append, "b")
    sched.callLater(1, seen.append, "b2")
    sched.advance(1.5)
    assert seen == ["a", "b", "b2"]
    assert sched.seconds() == 1.5
    sched.advance(10)
    assert seen == ["a", "b", "b2", "c"]
    assert sched.seconds() == 11.5


def test_cancel_reset_and_delay() -> None:
    sched = Scheduler()
    seen: list[int] = []
    cancelled = sched.callLater(1, seen.append, 1)
    moved = sched.callLater(1, seen.append, 2)
    delayed = sched.callLater(1, seen.append, 3)
    cancelled.cancel()
    moved.reset(5)
    delayed.delay(2)
    assert not cancelled.active() and moved.active()
    with pytest.raises(AlreadyCancelled):
        cancelled.cancel()
    sched.advance(4)
    assert seen == [3]
    sched.advance(1)
    assert seen == [3, 2]
    with pytest.raises(AlreadyCalled):
        moved.cancel()
    assert sched.getDelayedCalls() == []


def test_many_cancelled_calls_are_compacted_without_losing_live_ones() -> None:
    sched = Scheduler()
    seen: list[int] = []
    live = [sched.callLater(10 + i, seen.append, i) for i in range(100)]
    for _ in range(3):
        for call in [sched.callLater(5, seen.append, -1) for _ in range(5000)]:
            call.cancel()

    # A call that runs while the heap is compacted under it.
    def reschedule() -> None:
        for call in [sched.callLater(1, seen.append, -1) for _ in range(6000)]:
            call.cancel()
        sched.callLater(1, seen.append, 1000)

    sched.callLater(1, reschedule)
    sched.advance(200)
    assert seen == [1000, *range(100)]
    assert all(not c.active() for c in live)
    assert sched.pending < 1000


def test_a_dead_owners_calls_are_dropped() -> None:
    sched = Scheduler()
    owner = Owner()
    clock = NodeClock(sched, owner)
    seen: list[str] = []
    clock.callLater(1, seen.append, "mine")
    sched.callLater(1, seen.append, "other")
    assert clock.getDelayedCalls()[0].getTime() == 1
    owner.alive = False
    sched.advance(2)
    assert seen == ["other"]


def test_a_failing_call_is_counted_and_the_others_run() -> None:
    sched = Scheduler()
    seen: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    sched.callLater(1, boom)
    sched.callLater(2, seen.append, 2)
    sched.advance(3)
    assert seen == [2] and sched.errors == 1
    assert sched.failures[0].check(RuntimeError)


def test_run_until_fired_and_until_quiet() -> None:
    sched = Scheduler()
    d: Deferred[str] = Deferred()
    sched.callLater(3, d.callback, "done")
    assert sched.runUntilFired(d) == "done"
    assert sched.seconds() == 3
    with pytest.raises(TimeoutError):
        sched.runUntilFired(Deferred(), timeout=10)
    assert sched.seconds() == 13
    seen: list[int] = []
    sched.callLater(5, seen.append, 1)
    sched.callLater(100, seen.append, 2)
    sched.runUntilQuiet(horizon=30)
    assert seen == [1] and sched.seconds() == 18
