"""Replicas and handover: every acknowledged value on three peers.

RFC 6940 section 10.4: the peer responsible for a Resource-ID stores
replicas of its data on its two successors (the *replica set* the topology
names).  Section 10.5 step 6 and 10.7.3: when responsibility moves -- a peer
joins, leaves or fails -- data is Stored on the peers that now need it.

:class:`Replicator` does both, driven by two events:

* an original Store written here (:meth:`StorageService.addStoreListener`):
  the changed Kinds are Stored on each replica, replica_number 1 and 2.
  :meth:`settle` lets the Store's answer wait for those replica Stores, so
  a value is acknowledged once three peers hold it (or the replicas that
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

A replica Store carries the whole current content of the Kinds it copies
(:meth:`StorageService.replicaStore`): generation counters and every live
value with its remaining lifetime, so a replica that missed an update
catches up with the next one.  Its security block carries the certificates
of the values' signers, so the receiver verifies every signature itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.storage.service import ReplicaStore, StorageService

__all__ = ["ReplicatingTopology", "Replicator", "SendReplica"]


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


class Replicator:
    """Keeps the data of ``service`` where ``topology`` says it belongs,
    sending replica Stores with ``send``; ``clock`` gives the time values'
    remaining lifetimes are computed at; ``nodeId`` is this peer's."""

    log = Logger()

    def __init__(
        self,
        service: StorageService,
        topology: ReplicatingTopology,
        send: SendReplica,
        clock: Any,
        nodeId: bytes,
    ) -> None:
        self.service = service
        self.topology = topology
        self.send = send
        self.clock = clock
        self.nodeId = nodeId
        self._inFlight: dict[bytes, list[Deferred[None]]] = {}
        #: Resource-IDs whose placement failed, and how often in a row.
        self._retries: dict[bytes, int] = {}
        self._retryCall: Any = None
        self._stopped = False
        #: Replica Stores sent and answered with success, and failed; for
        #: the status page.
        self.sent = 0
        self.failed = 0
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

    def _stored(self, resourceId: bytes, kindIds: tuple[int, ...]) -> None:
        """Section 10.4: an original Store changed ``kindIds``."""
        self._copyToReplicas(resourceId, kindIds)

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
                self._copyToReplicas(resourceId, None)
            else:
                self._handOver(resourceId)

    def _copyToReplicas(self, resourceId: bytes, kindIds: Sequence[int] | None) -> None:
        now = self.clock.seconds()
        for number, peer in enumerate(self.topology.replicaSet(resourceId), start=1):
            replica = self.service.replicaStore(resourceId, number, now, kindIds)
            if replica is None:
                return
            self._track(resourceId, self._send(peer, replica))

    def _handOver(self, resourceId: bytes) -> None:
        """Store everything held at ``resourceId`` on its responsible peer;
        then drop it unless this peer is one of its replicas."""
        peer = self.topology.responsiblePeer(resourceId)
        if peer == self.nodeId:
            return
        replica = self.service.replicaStore(resourceId, 1, self.clock.seconds())
        if replica is None:
            return
        d = self._send(peer, replica)
        d.addCallback(self._handedOver, resourceId)
        self._track(resourceId, d)

    def _handedOver(self, delivered: bool, resourceId: bytes) -> None:
        if not delivered:
            return
        if self.topology.isResponsible(resourceId) or self.topology.holdsReplica(resourceId):
            return
        self.log.debug("handed over {rid}; dropping it", rid=resourceId.hex())
        self.service.dropResources([resourceId])

    def _send(self, peer: bytes, replica: ReplicaStore) -> Deferred[bool]:
        """Send one replica Store; fires True when it was stored, False when
        it failed (logged; the next sweep or change tries again)."""
        try:
            d = self.send(peer, replica)
        except Exception:
            self.log.failure("sending a replica Store failed")
            self.failed += 1
            self._retryLater(replica.request.resource)
            return succeed(False)

        resourceId = replica.request.resource

        def stored(_: object) -> bool:
            self.sent += 1
            self._retries.pop(resourceId, None)
            return True

        def failed(failure: Failure) -> bool:
            self.failed += 1
            self._retryLater(resourceId)
            self.log.info(
                "replica Store of {rid} to {peer} failed: {why}",
                rid=replica.request.resource.hex(),
                peer=peer.hex(),
                why=failure.getErrorMessage(),
            )
            return False

        return d.addCallbacks(stored, failed)

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
                self.log.info(
                    "giving up handing over {rid}, which this peer no longer holds for"
                    " anyone; deleting it",
                    rid=resourceId.hex(),
                )
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
        self._place(due)

    # -- waiting for replicas ----------------------------------------------------------

    def _track(self, resourceId: bytes, d: Deferred[Any]) -> None:
        pending = self._inFlight.setdefault(resourceId, [])
        done: Deferred[None] = d.addBoth(lambda _: None)
        pending.append(done)

        def forget(_: None) -> None:
            left = self._inFlight.get(resourceId)
            if left is not None:
                if done in left:
                    left.remove(done)
                if not left:
                    del self._inFlight[resourceId]

        done.addBoth(forget)

    def settle(self, resourceId: bytes, timeout: float = REPLICA_WAIT) -> Deferred[None]:
        """Fires once every replica Store of ``resourceId`` sent so far has
        been answered (or has failed), or after ``timeout`` seconds: a
        replica that does not answer (it just failed) must not make the
        storing node's own request time out (section 6.2.1's retransmissions
        end after 15 s); it is placed again later.  Never fails."""
        pending = [_follow(d) for d in self._inFlight.get(resourceId, ())]
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
        return sum(len(v) for v in self._inFlight.values())


class Container(Protocol):
    """A range of ids, as a topology's ``onResponsibilityChange`` reports
    it (for CHORD-RELOAD the ids in (start, end], section 10.1)."""

    def __contains__(self, x: object) -> bool: ...


def _follow(d: Deferred[None]) -> Deferred[None]:
    """A Deferred that fires when ``d`` does, leaving ``d``'s own chain
    untouched."""
    follower: Deferred[None] = Deferred()

    def relay(result: object) -> object:
        follower.callback(None)
        return result

    d.addBoth(relay)
    return follower
