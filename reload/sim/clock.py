"""Simulated time for the simulator: one discrete-event scheduler for the
whole overlay.

:class:`Scheduler` provides :class:`twisted.internet.interfaces.IReactorTime`
(``seconds``, ``callLater``, ``getDelayedCalls``) on a binary heap, so that
scheduling, cancelling and firing a call cost O(log n) with hundreds of
thousands of calls pending.  (:class:`twisted.internet.task.Clock` sorts its
whole list on every ``callLater`` and removes cancelled calls with a linear
search: fine for a test of a few nodes, quadratic for thousands.)

Calls due at the same time run in the order they were scheduled, so a run
is a pure function of what was scheduled: with seeded inputs the simulator
is reproducible.  Time never runs by itself: :meth:`Scheduler.advance`,
:meth:`Scheduler.runUntil`, :meth:`Scheduler.runUntilQuiet` and
:meth:`Scheduler.runUntilFired` move it.

Each simulated node gets a :class:`NodeClock`, a view of the scheduler
whose calls belong to that node: once the node is dead (:attr:`Owner.alive`
false) its pending calls are dropped instead of run, as a crashed process
runs nothing.  An exception raised by a call is logged and counted
(:attr:`Scheduler.errors`), the way a reactor goes on after a failed call.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.error import AlreadyCalled, AlreadyCancelled
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["NodeClock", "Owner", "Scheduler", "SimDelayedCall"]

#: Compact the heap once this many of its entries are cancelled or stale.
_COMPACT_AT = 4096


class Owner(Protocol):
    """What a :class:`NodeClock` asks of the node it belongs to."""

    @property
    def alive(self) -> bool: ...


@implementer(IDelayedCall)
class SimDelayedCall:
    """A call scheduled on a :class:`Scheduler` (``IDelayedCall``)."""

    __slots__ = ("args", "called", "cancelled", "func", "kw", "owner", "sched", "seq", "time")

    def __init__(
        self,
        sched: Scheduler,
        time: float,
        func: Callable[..., object],
        args: tuple[object, ...],
        kw: dict[str, object],
        owner: Owner | None,
    ) -> None:
        self.sched = sched
        self.time = time
        self.func = func
        self.args = args
        self.kw = kw
        self.owner = owner
        self.cancelled = False
        self.called = False
        self.seq = 0

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", repr(self.func))
        state = "called" if self.called else "cancelled" if self.cancelled else "active"
        return f"<SimDelayedCall {name} at {self.time:.6f} {state}>"

    def getTime(self) -> float:
        return self.time

    def active(self) -> bool:
        return not (self.cancelled or self.called)

    def cancel(self) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.cancelled = True
        self.sched._stale += 1

    def reset(self, secondsFromNow: float) -> None:
        self._move(self.sched.now + max(0.0, secondsFromNow))

    def delay(self, secondsLater: float) -> None:
        self._move(self.time + secondsLater)

    def _move(self, time: float) -> None:
        if self.cancelled:
            raise AlreadyCancelled()
        if self.called:
            raise AlreadyCalled()
        self.sched._stale += 1
        self.time = max(time, self.sched.now)
        self.sched._push(self)


@implementer(IReactorTime)
class Scheduler:
    """The discrete-event scheduler: a heap of timed calls and the current
    simulated time (``start`` seconds since the epoch at first)."""

    log = Logger()

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)
        self._heap: list[tuple[float, int, Any, Any]] = []
        self._seq = 0
        self._stale = 0
        #: Calls run so far, and calls that raised.
        self.executed = 0
        self.errors = 0
        #: The first few failures, for reports and tests.
        self.failures: list[Failure] = []

    # -- IReactorTime ------------------------------------------------------------

    def seconds(self) -> float:
        return self.now

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> SimDelayedCall:
        return self.callLaterFor(None, delay, callable, *args, **kw)

    def getDelayedCalls(self) -> list[SimDelayedCall]:
        return sorted(
            {e[2] for e in self._heap if e[3] is None and e[2].active() and e[2].seq == e[1]},
            key=lambda c: c.time,
        )

    # -- scheduling -----------------------------------------------------------------

    def callLaterFor(
        self,
        owner: Owner | None,
        delay: float,
        callable: Callable[..., object],
        *args: object,
        **kw: object,
    ) -> SimDelayedCall:
        """``callLater`` for a call that belongs to ``owner`` (dropped if
        the owner is dead when it is due)."""
        call = SimDelayedCall(self, self.now + max(0.0, delay), callable, args, kw, owner)
        self._push(call)
        return call

    def later(self, delay: float, callable: Callable[..., object], *args: object) -> None:
        """A call that cannot be cancelled, cheaper than :meth:`callLater`
        (message deliveries)."""
        self._seq += 1
        heapq.heappush(self._heap, (self.now + max(0.0, delay), self._seq, callable, args))

    def _push(self, call: SimDelayedCall) -> None:
        self._seq += 1
        call.seq = self._seq
        heapq.heappush(self._heap, (call.time, self._seq, call, None))
        if self._stale > _COMPACT_AT and self._stale > len(self._heap) // 2:
            self._compact()

    def _compact(self) -> None:
        # In place: a run in progress holds this very list.
        heap = self._heap
        heap[:] = [e for e in heap if e[3] is not None or (e[2].seq == e[1] and e[2].active())]
        heapq.heapify(heap)
        self._stale = 0

    # -- running ------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Entries in the heap (cancelled ones included until dropped)."""
        return len(self._heap)

    def nextTime(self) -> float | None:
        """When the next live call is due; None if nothing is scheduled."""
        heap = self._heap
        while heap:
            time, seq, target, args = heap[0]
            if args is None and (target.seq != seq or not target.active()):
                heapq.heappop(heap)
                self._stale = max(0, self._stale - 1)
                continue
            return time
        return None

    def _run(self, until: float, stop: Callable[[], bool] | None = None) -> bool:
        """Run every call due at or before ``until``; with ``stop``, stop as
        soon as it returns true after a call (returns True then)."""
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= until:
            time, seq, target, args = pop(heap)
            if args is None:
                call: SimDelayedCall = target
                if call.seq != seq or call.cancelled or call.called:
                    self._stale = max(0, self._stale - 1)
                    continue
                owner = call.owner
                if owner is not None and not owner.alive:
                    call.cancelled = True
                    continue
                self.now = time
                call.called = True
                self.executed += 1
                try:
                    call.func(*call.args, **call.kw)
                except Exception:
                    self._failed()
            else:
                self.now = time
                self.executed += 1
                try:
                    target(*args)
                except Exception:
                    self._failed()
            if stop is not None and stop():
                return True
        return False

    def _failed(self) -> None:
        self.errors += 1
        failure = Failure()
        if len(self.failures) < 20:
            self.failures.append(failure)
        self.log.failure("a simulated call failed", failure)

    def advance(self, amount: float) -> None:
        """Run everything due within ``amount`` seconds; time ends at
        ``now + amount``."""
        self.runUntil(self.now + amount)

    def runUntil(self, when: float) -> None:
        """Run everything due at or before ``when``; time ends at ``when``."""
        self._run(when)
        self.now = max(self.now, when)

    def runUntilQuiet(self, horizon: float = 30.0, limit: float | None = None) -> None:
        """Run until nothing is due within ``horizon`` seconds of the
        current time (the periodic stabilisation timers of a small overlay
        are further away), or until the time ``limit``."""
        while True:
            due = self.nextTime()
            if due is None or due > self.now + horizon:
                return
            if limit is not None and due > limit:
                self.now = max(self.now, limit)
                return
            self._run(due)

    def runUntilTrue(self, condition: Callable[[], bool], timeout: float = 3600.0) -> bool:
        """Run until ``condition()`` holds (checked after every call), or
        ``timeout`` seconds of simulated time passed; whether it holds."""
        if condition():
            return True
        deadline = self.now + timeout
        if self._run(deadline, condition):
            return True
        self.now = max(self.now, deadline)
        return condition()

    def runUntilFired(self, d: Deferred[Any], timeout: float = 3600.0) -> Any:
        """Run until ``d`` fires; its result (a :class:`Failure` for an
        error).  Raises :class:`TimeoutError` if it did not fire within
        ``timeout`` simulated seconds."""
        box: list[Any] = []
        d.addBoth(box.append)
        if not self.runUntilTrue(lambda: bool(box), timeout):
            raise TimeoutError(f"did not fire within {timeout} simulated seconds")
        return box[0]


@implementer(IReactorTime)
class NodeClock:
    """One node's view of the :class:`Scheduler`: its calls are dropped
    once ``owner`` is dead."""

    __slots__ = ("owner", "sched")

    def __init__(self, sched: Scheduler, owner: Owner) -> None:
        self.sched = sched
        self.owner = owner

    def seconds(self) -> float:
        return self.sched.now

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> SimDelayedCall:
        sched = self.sched
        time = sched.now + delay if delay > 0 else sched.now
        call = SimDelayedCall(sched, time, callable, args, kw, self.owner)
        sched._push(call)
        return call

    def getDelayedCalls(self) -> list[SimDelayedCall]:
        return [c for c in self.sched.getDelayedCalls() if c.owner is self.owner]
