"""Replicas and handover: every acknowledged value on three peers.

RFC 6940 section 10.4: the peer responsible for a Resource-ID stores
replicas of its data on its two successors (the *replica set* the topology
names).  Section 10.5 step 6 and 10.7.3: when responsibility moves -- a peer
joins, leaves or fails -- data is Stored on the peers that now need it.

:class:`Replicator` does both, driven by two events:

* an original Store written here (:meth:`StorageService.addStoreListener`):
  the values it wrote are Stored on each replica, replica_number 1 and 2.
  :meth:`settle` lets the Store's answer wait until those values are on
  the replicas, so a value is acknowledged once three peers hold it (or the replicas that
  could be reached did answer: a replica that cannot be reached now is
  brought up to date by the repair below);
* a responsibility change (``onResponsibilityChange`` of the topology,
  sections 10.5 and 10.7.3), and a periodic sweep (:meth:`sweep`) that
  repeats the same reasoning over everything held, in case a replica Store
  was lost: for each Resource-ID in a changed range this peer holds,

  - responsible for it: Store everything on the replica set;
  - not responsible: Store everything on the peer now responsible (the
    handover), and once it acknowledged, drop the data unless this peer is
    still in the replica set (section 10.7.3: keep it until "there are three
    predecessors between x and R").

Data moves in replica Stores that fit max-message-size (sections 6.6 and
11.1): :meth:`StorageService.replicaChunk` takes values in a stable order
(Kind-ID, then array index or dictionary key) while the StoreReq stays
within the :data:`~reload.storage.service.Budget` the node measured by
encoding the rest of the message.  Each (Resource-ID, target peer) has one
:class:`_Placement` that sends its chunks one at a time, each built from
the current content just before it goes, so a replica's generation counter
never moves back.  What an original Store wrote goes first, alone (only
those values); a full copy (replica set change, handover, repair) follows
with a cursor: the Position of the last value acknowledged.  A chunk that
fails stops the placement where it is; the retry (RETRY_DELAYS, then the
periodic sweep) resumes after the cursor, with the unsent new values
first.  Every chunk's security block carries the certificates of its
values' signers, so the receiver verifies every signature itself.

A failed chunk is a warning naming the Resource-ID, the peer and the
reason, counted in :attr:`Replicator.failed`; :attr:`Replicator.lastFailure`
and :attr:`Replicator.unplaced` are on the status page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.storage.model import Slot
from reload.storage.service import (
    Budget,
    Changes,
    Position,
    ReplicaChunk,
    ReplicaStore,
    StorageService,
)

__all__ = ["ReplicaBudget", "ReplicatingTopology", "Replicator", "SendReplica"]


class ReplicatingTopology(Protocol):
    """What replication asks of a topology, for the type checker: the
    storage part of :class:`reload.interfaces.ITopology` (sections 10.4,
    10.5 step 6, 10.7.3 and 7.4.1.1), which every topology implements."""

    def isResponsible(self, resourceId: bytes) -> bool: ...

    def replicaSet(self, resourceId: bytes) -> list[bytes]: ...

    def holdsReplica(self, resourceId: bytes) -> bool: ...

    def responsiblePeer(self, resourceId: bytes) -> bytes: ...

    def isNeighbour(self, nodeId: bytes) -> bool: ...

    def shouldHold(self, resourceId: bytes) -> bool: ...

    def onResponsibilityChange(self, callback: object) -> None: ...


#: Seconds a Store's answer waits at most for its replica Stores' answers.
REPLICA_WAIT = 5.0

#: Seconds before placing data again after its 1st, 2nd... failure in a row.
RETRY_DELAYS = (2.0, 4.0, 8.0, 16.0, 32.0, 60.0)

#: ``send(nodeId, replica)``: send ``replica.request`` to the Node-ID with
#: ``replica.certificates`` in its security block; fires when it is answered.
SendReplica = Callable[[bytes, ReplicaStore], Deferred[Any]]

#: ``budget(nodeId, certificates)``: the most bytes the StoreReq body of a
#: replica Store to ``nodeId`` carrying ``certificates`` may have (the
#: node measures its messages by encoding them, section 6.6).
ReplicaBudget = Callable[[bytes, tuple[bytes, ...]], int]


@dataclass(eq=False)
class _Placement:
    """Copying one Resource-ID to one peer (as replica ``number``).

    ``changes`` are the values original Stores wrote that this peer has not
    acknowledged yet (sent first); ``full`` asks for a copy of everything
    held, acknowledged up to ``cursor``.  One chunk is in flight at a time
    (``busy``)."""

    resourceId: bytes
    peer: bytes
    number: int
    changes: dict[int, dict[Slot, None]] = field(default_factory=dict)
    full: bool = False
    cursor: Position | None = None
    busy: bool = False
    #: The target changed: forget this placement once its chunk is answered.
    obsolete: bool = False
    #: Fire (None) when ``changes`` are all acknowledged or a chunk failed.
    changeWaiters: list[Deferred[None]] = field(default_factory=list)
    #: Fire True when the full copy is acknowledged, False when it failed.
    fullWaiters: list[Deferred[bool]] = field(default_factory=list)

    def addChanges(self, changes: Changes) -> None:
        for kindId, slots in changes.items():
            pending = self.changes.setdefault(kindId, {})
            for slot in slots:
                pending.setdefault(slot)

    def acknowledged(self, carried: Iterable[tuple[int, Slot]]) -> None:
        for kindId, slot in carried:
            pending = self.changes.get(kindId)
            if pending is not None:
                pending.pop(slot, None)
                if not pending:
                    del self.changes[kindId]

    @property
    def idle(self) -> bool:
        return not (self.busy or self.changes or self.full)

    def releaseChangeWaiters(self) -> None:
        waiters, self.changeWaiters = self.changeWaiters, []
        for d in waiters:
            d.callback(None)

    def releaseFullWaiters(self, done: bool) -> None:
        waiters, self.fullWaiters = self.fullWaiters, []
        for d in waiters:
            d.callback(done)


class Replicator:
    """Keeps the data of ``service`` where ``topology`` says it belongs,
    sending replica Stores with ``send``; ``clock`` gives the time values'
    remaining lifetimes are computed at; ``nodeId`` is this peer's.
    ``budget`` bounds each replica Store's body (None: no bound, one
    Store per copy)."""

    log = Logger()

    def __init__(
        self,
        service: StorageService,
        topology: ReplicatingTopology,
        send: SendReplica,
        clock: Any,
        nodeId: bytes,
        budget: ReplicaBudget | None = None,
    ) -> None:
        self.service = service
        self.topology = topology
        self.send = send
        self.clock = clock
        self.nodeId = nodeId
        self.budget = budget
        self._placements: dict[bytes, dict[bytes, _Placement]] = {}
        #: Resource-IDs whose placement failed, and how often in a row.
        self._retries: dict[bytes, int] = {}
        self._retryCall: Any = None
        self._stopped = False
        #: Replica Stores (chunks) sent and answered with success, and
        #: failed; for the status page.
        self.sent = 0
        self.failed = 0
        #: The last failure: when (clock seconds), Resource-ID, peer, why.
        self.lastFailure: tuple[float, bytes, bytes, str] | None = None
        service.addStoreListener(self._stored)
        topology.onResponsibilityChange(self._changed)

    def stop(self) -> None:
        """Send nothing more (the peer is stopping)."""
        self._stopped = True
        if self._retryCall is not None and self._retryCall.active():
            self._retryCall.cancel()
        self._retryCall = None

    def accepts(self, resourceId: bytes, sender: bytes) -> bool:
        """Whether to take a replica Store (the ``acceptReplica`` of
        :class:`StorageService`): section 7.4.1.1 wants it to come "from an
        appropriate predecessor in their Neighbor Table", and it must be
        data this peer should hold -- as the responsible peer (a handover,
        also while it joins) or as a replica.  A refused sender keeps its
        copy and tries again (:meth:`_retryLater`), by when the two views of
        the ring agree."""
        return self.topology.isNeighbour(sender) and self.topology.shouldHold(resourceId)

    # -- events ------------------------------------------------------------------------

    def _stored(self, resourceId: bytes, changes: Changes) -> None:
        """Section 10.4: an original Store wrote ``changes``."""
        if self._stopped:
            return
        for number, peer in enumerate(self.topology.replicaSet(resourceId), start=1):
            placement = self._placement(resourceId, peer, number)
            placement.addChanges(changes)
            self._pump(placement)

    def _changed(self, ranges: Iterable[Container]) -> None:
        """Sections 10.5 step 6 and 10.7.3: who holds what changed."""
        held: dict[bytes, None] = {}
        for idRange in ranges:
            for resourceId in self.service.resourcesIn(idRange):
                held.setdefault(resourceId)
        self._place(held)

    def sweep(self) -> None:
        """Place everything held again (run periodically: it repairs what a
        lost or refused replica Store left behind)."""
        self._place(self.service.resources())

    # -- placing data ------------------------------------------------------------------

    def _place(self, resourceIds: Iterable[bytes]) -> None:
        if self._stopped:
            return
        for resourceId in resourceIds:
            try:
                responsible = self.topology.isResponsible(resourceId)
            except Exception:
                self.log.failure("isResponsible failed")
                continue
            if responsible:
                self._copyToReplicas(resourceId)
            else:
                self._handOver(resourceId)

    def _copyToReplicas(self, resourceId: bytes) -> None:
        """Everything held at ``resourceId`` to each replica (section
        10.4), resuming a copy that stopped."""
        targets = self.topology.replicaSet(resourceId)
        self._retarget(resourceId, targets)
        for number, peer in enumerate(targets, start=1):
            self._copyAll(self._placement(resourceId, peer, number))

    def _handOver(self, resourceId: bytes) -> None:
        """Store everything held at ``resourceId`` on its responsible peer;
        then drop it unless this peer is one of its replicas."""
        peer = self.topology.responsiblePeer(resourceId)
        if peer == self.nodeId:
            return
        self._retarget(resourceId, [peer])
        done = self._copyAll(self._placement(resourceId, peer, 1))
        done.addCallback(self._handedOver, resourceId)

    def _handedOver(self, delivered: bool, resourceId: bytes) -> None:
        if not delivered:
            return
        if self.topology.isResponsible(resourceId) or self.topology.holdsReplica(resourceId):
            return
        self.log.debug("handed over {rid}; dropping it", rid=resourceId.hex())
        self._forget(resourceId)
        self.service.dropResources([resourceId])

    def _placement(self, resourceId: bytes, peer: bytes, number: int) -> _Placement:
        byPeer = self._placements.setdefault(resourceId, {})
        placement = byPeer.get(peer)
        if placement is None or placement.obsolete:
            placement = byPeer[peer] = _Placement(resourceId, peer, number)
        placement.number = number
        return placement

    def _retarget(self, resourceId: bytes, targets: Iterable[bytes]) -> None:
        """Forget copies to peers that are no longer where ``resourceId``
        goes (a chunk in flight finishes first)."""
        keep = set(targets)
        byPeer = self._placements.get(resourceId, {})
        for peer, placement in list(byPeer.items()):
            if peer in keep:
                continue
            placement.obsolete = True
            placement.releaseChangeWaiters()
            placement.releaseFullWaiters(False)
            if not placement.busy:
                del byPeer[peer]
        if not byPeer:
            self._placements.pop(resourceId, None)

    def _forget(self, resourceId: bytes) -> None:
        for placement in self._placements.pop(resourceId, {}).values():
            placement.obsolete = True
            placement.releaseChangeWaiters()
            placement.releaseFullWaiters(False)

    def _copyAll(self, placement: _Placement) -> Deferred[bool]:
        """Ask ``placement`` for a full copy (resumed after its cursor if
        one is under way); fires True once it is acknowledged."""
        done: Deferred[bool] = Deferred()
        placement.fullWaiters.append(done)
        placement.full = True
        self._pump(placement)
        return done

    def _pump(self, placement: _Placement) -> None:
        """Send ``placement``'s next chunk unless one is in flight: new
        values first, then the full copy after its cursor."""
        if placement.busy or self._stopped or placement.obsolete:
            return
        now = self.clock.seconds()
        budget = self._budgetFor(placement.peer)
        chunk: ReplicaChunk | None = None
        full = False
        if placement.changes:
            slots = {kindId: tuple(pending) for kindId, pending in placement.changes.items()}
            chunk = self.service.replicaChunk(
                placement.resourceId, placement.number, now, slots=slots, budget=budget
            )
            if chunk is None:  # expired or dropped since: nothing left to send
                placement.changes.clear()
        if chunk is None:
            placement.releaseChangeWaiters()
            if placement.full:
                chunk = self.service.replicaChunk(
                    placement.resourceId,
                    placement.number,
                    now,
                    after=placement.cursor,
                    budget=budget,
                )
                full = True
                if chunk is None:
                    placement.full = False
                    placement.cursor = None
                    placement.releaseFullWaiters(True)
        if chunk is None:
            self._tidy(placement)
            return
        placement.busy = True
        self._send(placement, chunk, full)

    def _budgetFor(self, peer: bytes) -> Budget | None:
        measure = self.budget
        if measure is None:
            return None

        def budget(certificates: tuple[bytes, ...]) -> int:
            return measure(peer, certificates)

        return budget

    def _tidy(self, placement: _Placement) -> None:
        """Forget an idle placement (it has nothing to resume) or an
        obsolete one."""
        if not (placement.idle or placement.obsolete):
            return
        byPeer = self._placements.get(placement.resourceId)
        if byPeer is not None and byPeer.get(placement.peer) is placement:
            del byPeer[placement.peer]
            if not byPeer:
                del self._placements[placement.resourceId]

    def _send(self, placement: _Placement, chunk: ReplicaChunk, full: bool) -> None:
        """Send one chunk; on its answer go on with the next one, on a
        failure stop there (a warning; :meth:`_retryLater` resumes)."""
        resourceId, peer = placement.resourceId, placement.peer
        try:
            d = self.send(peer, chunk.replica)
        except Exception as exc:
            self.log.failure("sending a replica Store failed")
            self._failed(placement, f"{type(exc).__name__}: {exc}")
            return

        def stored(_: object) -> None:
            self.sent += 1
            placement.busy = False
            placement.acknowledged(chunk.slots)
            if full:
                placement.cursor = chunk.last
            if placement.obsolete:
                self._tidy(placement)
            else:
                self._pump(placement)
            if not self._stalled(resourceId):
                self._retries.pop(resourceId, None)

        def failed(failure: Failure) -> None:
            self._failed(placement, failure.getErrorMessage())

        d.addCallbacks(stored, failed)

    def _failed(self, placement: _Placement, why: str) -> None:
        placement.busy = False
        self.failed += 1
        resourceId, peer = placement.resourceId, placement.peer
        self.lastFailure = (self.clock.seconds(), resourceId, peer, why)
        self.log.warn(
            "replica Store of {rid} to {peer} failed, to be resumed: {why}",
            rid=resourceId.hex(),
            peer=peer.hex(),
            why=why,
        )
        placement.releaseChangeWaiters()
        placement.releaseFullWaiters(False)
        if placement.obsolete:
            self._tidy(placement)
        self._retryLater(resourceId)

    def _stalled(self, resourceId: bytes) -> bool:
        """Whether a copy of ``resourceId`` to some peer stopped on a
        failure and waits for its retry: an acknowledgement from another
        peer (the other replica) must not cancel that retry."""
        return any(
            not p.busy and not p.obsolete and (p.changes or p.full)
            for p in self._placements.get(resourceId, {}).values()
        )

    @property
    def unplaced(self) -> int:
        """Copies (a Resource-ID to a peer) stopped by a failure and waiting
        to be resumed."""
        return sum(
            1
            for byPeer in self._placements.values()
            for p in byPeer.values()
            if not p.busy and (p.changes or p.full)
        )

    # -- retries -----------------------------------------------------------------------

    def _retryLater(self, resourceId: bytes) -> None:
        """Place ``resourceId`` again after RETRY_DELAYS[n] for its n-th
        failure in a row (the ring may have changed meanwhile: the targets
        are chosen again); after the last, the periodic sweep takes over --
        except for data this peer should no longer hold at all, which it
        then deletes (section 10.7.3: the responsible peer and its replicas
        have it, and nobody asks this peer for it)."""
        if self._stopped:
            return
        attempt = self._retries.get(resourceId, 0)
        if attempt >= len(RETRY_DELAYS):
            self._retries.pop(resourceId, None)
            if not self.topology.shouldHold(resourceId):
                self.log.warn(
                    "giving up handing over {rid}, which this peer no longer holds for"
                    " anyone; deleting it",
                    rid=resourceId.hex(),
                )
                self._forget(resourceId)
                self.service.dropResources([resourceId])
            return
        self._retries[resourceId] = attempt + 1
        if self._retryCall is None or not self._retryCall.active():
            self._retryCall = self.clock.callLater(RETRY_DELAYS[attempt], self._retryNow)

    def _retryNow(self) -> None:
        self._retryCall = None
        held = set(self.service.resources())
        due = [rid for rid in self._retries if rid in held]
        for rid in list(self._retries):
            if rid not in held:
                del self._retries[rid]
                self._forget(rid)
        self._place(due)

    # -- waiting for replicas ----------------------------------------------------------

    def settle(self, resourceId: bytes, timeout: float = REPLICA_WAIT) -> Deferred[None]:
        """Fires once the values original Stores wrote at ``resourceId``
        are acknowledged by every replica they were sent to (or their copy
        failed), or after ``timeout`` seconds: a replica that does not
        answer (it just failed) must not make the storing node's own
        request time out (section 6.2.1's retransmissions end after 15 s);
        it is placed again later.  Never fails."""
        pending: list[Deferred[None]] = []
        for placement in self._placements.get(resourceId, {}).values():
            if placement.changes and not placement.obsolete:
                waiter: Deferred[None] = Deferred()
                placement.changeWaiters.append(waiter)
                pending.append(waiter)
        if not pending:
            return succeed(None)
        done: Deferred[None] = Deferred()

        def finish() -> None:
            if not done.called:
                done.callback(None)

        timer = self.clock.callLater(timeout, finish)

        def answered(_: object) -> None:
            if timer.active():
                timer.cancel()
            finish()

        DeferredList(pending, consumeErrors=True).addCallback(answered)
        return done

    @property
    def pending(self) -> int:
        """Replica Stores sent and not answered yet."""
        return sum(1 for byPeer in self._placements.values() for p in byPeer.values() if p.busy)


class Container(Protocol):
    """A range of ids, as a topology's ``onResponsibilityChange`` reports
    it (for CHORD-RELOAD the ids in (start, end], section 10.1)."""

    def __contains__(self, x: object) -> bool: ...
