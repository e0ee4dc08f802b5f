"""CHORD-RELOAD for one node: the ITopology that drives joins, Updates,
stabilisation and leaving through the node (RFC 6940 sections 6.4.2, 10).

The ring logic is :class:`topologies.chordreload.ring.RoutingTable`; this module
decides when to change it and which messages that takes.  It does its I/O
only through the node: :meth:`INode.request` for Join, Update and Leave,
``node.clock`` for every timer, and one capability :class:`INode` does not
name yet, ``attach`` (see :class:`AttachFunction`), because a topology has
to open connections to new neighbours (section 10.5 steps 2-4, 10.7.3) and
building an AttachReq (ICE candidates, section 6.5.1) is the link layer's
job, not the topology's.

Which connections count as Routing Table entries: a node that is
connected *and* known to be a peer.  A connection alone is not enough: a
Joining Node attaches to its future neighbours before it has joined, and
"this does not populate their Routing Tables, but only their Connection
Tables, so JN will not get messages that it is expected to route to other
nodes" (section 10.5 step 3).  A node becomes known as a peer when it sends
an Update (any type; peer_ready says exactly this, section 10.7), when a
peer lists it in an Update or Leave, when it answers an Attach routed to a
Resource-ID (only a peer can be responsible for one), or when it Joins
through this node.

A peer that failed (section 10.7.1) may come back as a new incarnation
with the same Node-ID -- a restart on the same data directory -- and join
again (section 10.5).  Two rules keep a stale entry for the old incarnation
from wedging that join or looping messages through the joining node:

* a failed peer is *suspect* for the successor replacement hold-down time
  (section 10.7.1: the time "to allow a triggered update to inform it"):
  hearsay about it (other peers' Updates and Leaves, an Attach this node
  routed to its Node-ID, which a Joining Node answers too) does not make
  it a peer again; only what it says itself does (an Update it sends, or
  its JoinReq), because a Joining Node sends neither before its Join
  (section 10.5 steps 5 and 9);
* a JoinReq from a Node-ID still in the Routing Table comes from a new
  incarnation: a peer in the ring never joins again.  The stale entry is
  removed as a failed neighbour (section 10.7.1) before the admitting
  peer decides whether it is responsible, so the restarted peer is
  admitted at once instead of being told to "join through" itself.

A neighbour whose failure went unnoticed (half-open links) still lists the
restarted peer and so sees no change when it joins: it learns of the
restart from the uptime in the new incarnation's Updates (section 10.7),
and answers with its neighbours, which the new incarnation's empty tables
need (section 10.7.3).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from random import Random
from typing import cast

from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.api.topology import (
    DecodeError,
    ErrorCode,
    JoinAns,
    JoinReq,
    LeaveReq,
    UpdateAns,
    UpdateReq,
)
from reload.interfaces import ITopology
from topologies.chordreload.codec import (
    ChordLeaveData,
    ChordRouteQueryAns,
    ChordUpdate,
    ChordUpdateType,
)
from topologies.chordreload.node import (
    AttachFunction,
    ChordError,
    ChordNode,
    Clock,
    ResponsibilityCallback,
    Timer,
)
from topologies.chordreload.ring import (
    DEFAULT_NEIGHBOURS,
    MIN_FINGERS,
    IdRange,
    ResponsibilityChange,
    RoutingTable,
    addToId,
    hashResource,
    inOpen,
)
from topologies.chordreload.settings import ChordSettings

__all__ = [
    "AttachFunction",
    "ChordError",
    "ChordNode",
    "ChordTopology",
    "ChordUpdateType",
]


class _Phase(Enum):
    """Where the node is in its life in the overlay (sections 10.5, 10.9)."""

    IDLE = "idle"
    JOINING = "joining"
    JOINED = "joined"
    LEAVING = "leaving"
    LEFT = "left"


_IN_RING = (_Phase.JOINED, _Phase.LEAVING)
_UINT32_MAX = 0xFFFFFFFF
#: How many times a join locates its admitting peer and sends the JoinReq.
JOIN_ATTEMPTS = 4
#: Seconds a peer's start time, estimated from the uptime in its Updates
#: (section 10.7, whole seconds, plus delivery delays), may move forward
#: before it counts as restarted.
RESTART_SLACK = 5.0


@implementer(ITopology)
class ChordTopology:
    """CHORD-RELOAD state and procedures for one node."""

    log = Logger()

    def __init__(
        self,
        node: ChordNode,
        *,
        settings: ChordSettings | None = None,
        neighbours: int = DEFAULT_NEIGHBOURS,
        minFingers: int = MIN_FINGERS,
        attach: AttachFunction | None = None,
        rng: Random | None = None,
    ) -> None:
        self.node = node
        self.nodeId: bytes = node.nodeId
        self.clock = cast(Clock, node.clock)
        if settings is None:
            settings = ChordSettings.fromConfiguration(getattr(node, "configuration", None))
        self.settings = settings
        self.ring = RoutingTable(self.nodeId, neighbours=neighbours, minFingers=minFingers)
        self.ring.onResponsibilityChange(self._ringChanged)
        self._attach: AttachFunction | None = (
            attach if attach is not None else getattr(node, "attach", None)
        )
        self._rng = rng if rng is not None else Random()
        self._phase = _Phase.IDLE
        self._startedAt = self.clock.seconds()
        self._admitting: bytes | None = None
        #: The Connection Table as the link layer reports it (linkUp/linkDown).
        self._connected: set[bytes] = set()
        #: Nodes known to be peers (see the module docstring).
        self._knownPeers: set[bytes] = set()
        #: Peers that sent a Leave; ignored until their link goes down.
        self._departed: set[bytes] = set()
        #: Failed peers (section 10.7.1) and until when hearsay about them
        #: is ignored (see the module docstring).
        self._suspects: dict[bytes, float] = {}
        #: When each peer started, from the uptime of its last Update.
        self._peerStarts: dict[bytes, float] = {}
        self._attaching: set[bytes] = set()
        self._pendingAttaches = 0
        self._settleWaiters: list[Deferred[None]] = []
        #: Section 10.7.4.2 alternative 2: peers seen in Updates that would
        #: fill an invalid finger entry, by entry index.
        self._fingerCandidates: dict[int, bytes] = {}
        self._callbacks: list[ResponsibilityCallback] = []
        self._sentTable: tuple[tuple[bytes, ...], tuple[bytes, ...]] = ((), ())
        self._rangeMoved = False
        self._holdDownUntil = float("-inf")
        self._timers: dict[str, Timer] = {}
        self._leaving: Deferred[None] | None = None

    # -- state --------------------------------------------------------------

    @property
    def phase(self) -> str:
        """'idle', 'joining', 'joined', 'leaving' or 'left'."""
        return self._phase.value

    @property
    def inRing(self) -> bool:
        """Whether this node is part of the ring (responsible for a range)."""
        return self._phase in _IN_RING

    @property
    def uptime(self) -> int:
        """Section 10.7: "the time this peer has been up in seconds"."""
        return max(0, min(_UINT32_MAX, int(self.clock.seconds() - self._startedAt)))

    # -- routing questions (ITopology) --------------------------------------

    def nextHop(self, destination: bytes) -> bytes | None:
        """Sections 6.1.2 and 10.3.

        A destination in the Connection Table is forwarded to directly, even
        when this node is responsible for its id: that is how a Joining Node
        or a client is reached before it is in anyone's Routing Table.  The
        destination is bare bytes, so a Resource-ID equal to a connected
        node's Node-ID goes there too; for CHORD-RELOAD that node is the
        responsible one anyway, or it is a client or joining node with a
        chance of 2^-128.
        """
        if destination == self.nodeId:
            return None
        if destination in self._connected:
            return destination
        if self.inRing:
            return self.ring.nextHop(destination)
        # Not in the ring yet (section 10.5): never keep a message, forward
        # it towards its destination through whoever this node knows.
        hop = self.ring.forwardHop(destination)
        if hop is None and self._admitting in self._connected:
            hop = self._admitting
        return hop

    def isResponsible(self, resourceId: bytes) -> bool:
        """Section 10.1: (predecessor, self]; nothing before joining."""
        return self.inRing and self.ring.isResponsible(resourceId)

    def replicaSet(self, resourceId: bytes) -> list[bytes]:
        """Section 10.4: the two successors of the responsible peer."""
        return self.ring.replicaSet(resourceId) if self.inRing else []

    def holdsReplica(self, resourceId: bytes) -> bool:
        """Whether this node should keep a replica of ``resourceId``
        (sections 10.4, 10.7.3)."""
        return self.inRing and self.ring.holdsReplica(resourceId)

    def responsiblePeer(self, resourceId: bytes) -> bytes:
        """The peer this node believes responsible for ``resourceId``
        (exact within its successors, section 10.3)."""
        return self.ring.responsiblePeer(resourceId)

    def shouldHold(self, resourceId: bytes) -> bool:
        """Whether this node should keep data at ``resourceId``: it is
        responsible for it or one of its replicas (section 10.4), or it is
        joining and will be responsible for it -- section 10.5 step 6 has the
        admitting peer Store that data while the Join completes."""
        if self._phase not in (_Phase.JOINING, _Phase.JOINED):
            return False
        return self.ring.isResponsible(resourceId) or self.ring.holdsReplica(resourceId)

    def isNeighbour(self, nodeId: bytes) -> bool:
        """Whether ``nodeId`` is in this node's Neighbor Table (section
        10.3), the peers a replica Store may come from (7.4.1.1)."""
        return nodeId in self.ring.predecessors or nodeId in self.ring.successors

    def answeredFor(self, resourceId: bytes, nodeId: bytes) -> None:
        """A peer routes through its Routing Table (section 10.3) and keeps
        no direct links for Resource-IDs: nothing to learn."""

    def routeQueryAnswer(self, data: bytes) -> dict[str, object]:
        """Section 10.8: the RouteQueryAns data is the next peer."""
        try:
            answer = ChordRouteQueryAns.decode(data, self.ring.length)
        except DecodeError as exc:
            raise ValueError(f"not a CHORD-RELOAD RouteQueryAns: {exc}") from None
        return {"nextPeer": answer.next_peer.hex()}

    def hashResource(self, name: bytes) -> bytes:
        """Section 10.2: SHA-1 truncated to the Node-ID length (128 bits)."""
        return hashResource(name, self.ring.length)

    def neighbours(self) -> dict[str, list[bytes]]:
        """Predecessors, successors and fingers, for status pages."""
        return self.ring.neighbours()

    def onResponsibilityChange(self, callback: object) -> None:
        """Register ``callback(ranges)``; ``ranges`` is a tuple of
        :class:`~topologies.chordreload.ring.IdRange`, each the ids in (start, end]
        whose responsible peer or replica set changed (sections 10.5 step 6,
        10.7.3)."""
        if not callable(callback):
            raise TypeError(f"{callback!r} is not callable")
        self._callbacks.append(callback)

    # -- links (ITopology) ----------------------------------------------------

    def linkUp(self, nodeId: bytes) -> None:
        """A connection to ``nodeId`` is authenticated.  It enters the
        Routing Table if it is known to be a peer (section 10.5 step 4)."""
        if nodeId == self.nodeId or len(nodeId) != self.ring.length:
            return
        self._connected.add(nodeId)
        if nodeId in self._knownPeers and not self._suspect(nodeId):
            self._addPeer(nodeId)

    def linkDown(self, nodeId: bytes) -> None:
        """Sections 10.7.1 and 10.7.2: a lost connection is a failed peer."""
        self._connected.discard(nodeId)
        if nodeId in self._knownPeers or nodeId in self.ring:
            self._suspectFailed(nodeId)
        self._departed.discard(nodeId)
        self._peerStarts.pop(nodeId, None)
        self._lose(nodeId)

    # -- failed peers and new incarnations (sections 10.5, 10.7.1) ------------------

    def _suspectFailed(self, peer: bytes) -> None:
        """``peer`` failed: hearsay about it is ignored for the successor
        replacement hold-down time (section 10.7.1), until it speaks for
        itself (:meth:`_vouched`)."""
        now = self.clock.seconds()
        for old in [p for p, until in self._suspects.items() if until <= now]:
            del self._suspects[old]
        self._suspects[peer] = now + self.settings.successorHoldDown

    def _suspect(self, peer: bytes) -> bool:
        """Whether ``peer`` failed recently and has not spoken since."""
        until = self._suspects.get(peer)
        if until is None:
            return False
        if until <= self.clock.seconds():
            del self._suspects[peer]
            return False
        return True

    def _vouched(self, peer: bytes) -> None:
        """``peer`` itself said it is a peer (an Update it sent, section
        10.7) or is joining (its JoinReq, section 10.5): whatever failed
        before, this incarnation is live."""
        self._suspects.pop(peer, None)

    # -- Join (sections 6.4.2.1, 10.5) ------------------------------------------

    def join(self, admittingPeer: bytes | None) -> Deferred[None]:
        """Start a ring of one (``None``), or join through ``admittingPeer``,
        the Node-ID of a bootstrap peer this node is connected to
        (section 11.4), following section 10.5."""
        if self._phase is not _Phase.IDLE:
            return fail(ChordError(f"cannot join: this node is {self.phase}"))
        self._startedAt = self.clock.seconds()
        if admittingPeer is None:
            self.log.info("CHORD-RELOAD: starting a new overlay as its only peer")
            self._enterRing()
            return succeed(None)
        if self._attach is None:
            return fail(ChordError("the node offers no attach(): it cannot join an overlay"))
        self._phase = _Phase.JOINING
        self._admitting = admittingPeer
        d: Deferred[None] = Deferred.fromCoroutine(self._join(admittingPeer))

        def failed(failure: Failure) -> Failure:
            if self._phase is _Phase.JOINING:
                self._phase = _Phase.IDLE
            return failure

        d.addErrback(failed)
        return d

    async def _join(self, bootstrap: bytes) -> None:
        attempt = 1
        while True:
            try:
                admitting = await self._joinOnce(bootstrap)
                break
            except Exception as e:
                if self._phase is not _Phase.JOINING or attempt >= JOIN_ATTEMPTS:
                    raise
                # Most often another node joined the same stretch of the ring
                # first and the peer asked is no longer responsible: locate
                # the admitting peer again after a short random pause.
                self.log.info(
                    "CHORD-RELOAD: join attempt {attempt} failed ({e}); retrying",
                    attempt=attempt,
                    e=e,
                )
                await self._sleep(attempt * self._rng.uniform(0.5, 1.5))
                attempt += 1
        self.log.info("CHORD-RELOAD: joined through {peer}", peer=admitting.hex())
        # Step 9 (Updates to the Neighbor Table) happens in _enterRing.
        self._enterRing()
        self._seekFingers()

    async def _joinOnce(self, bootstrap: bytes) -> bytes:
        """Section 10.5 steps 2-5; returns the admitting peer."""
        n = self.nodeId
        # Step 2: Attach to the Admitting Peer, the one responsible for n+1,
        # asking for its Routing Table with send_update.
        via = bootstrap if bootstrap in self._connected and bootstrap not in self.ring else None
        ap, _ = await self._startAttach(addToId(n, 1), via=via, sendUpdate=True)
        # "If for some reason JN does not get AP's Routing Table ... p0+1 to
        # discover its successor (p1)": walk the successors, so the join does
        # not depend on that Update arriving first.
        p = ap
        for _ in range(self.ring.neighbourCount - 1):
            try:
                nxt, _ = await self._startAttach(addToId(p, 1))
            except Exception as e:
                self.log.debug("successor walk stopped at {peer}: {e}", peer=p.hex(), e=e)
                break
            if nxt in (n, ap, p):
                break
            p = nxt
        # Steps 3-4: the Attaches the Updates received so far started.
        await self._settle()
        self._checkJoining()
        # Step 5: Join the peer now believed responsible for n.
        successors = self.ring.successors
        admitting = successors[0] if successors else ap
        code, body = await self.node.request(admitting, JoinReq.CODE, JoinReq(n).encode())
        if code != JoinAns.CODE:
            raise ChordError(f"the admitting peer answered the JoinReq with code {code:#x}")
        JoinAns.decode(body)
        self._checkJoining()
        return admitting

    def _checkJoining(self) -> None:
        if self._phase is not _Phase.JOINING:
            raise ChordError(f"join abandoned: this node is {self.phase}")

    def _sleep(self, seconds: float) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.clock.callLater(seconds, d.callback, None)
        return d

    def handleJoin(self, joiningPeer: bytes, data: bytes) -> bytes:
        """Admit ``joiningPeer`` (section 10.5 steps 5-8).

        Entering it in the Routing Table makes it the first predecessor, so
        the responsibility callbacks fire with the range it takes over and
        storage Stores that data to it (step 6); the Updates of steps 7 and 8
        follow once the answer is on its way.  Returns the JoinAns
        overlay_specific_data, empty for CHORD-RELOAD.
        """
        if self._phase is not _Phase.JOINED:
            raise ChordError(f"cannot admit a peer: this node is {self.phase}")
        if len(joiningPeer) != self.ring.length or joiningPeer == self.nodeId:
            raise ChordError("the joining Node-ID is not a valid, different Node-ID")
        if joiningPeer not in self._connected:
            # Section 6.4.2.1: joins happen only between adjacent nodes.
            raise ChordError("a JoinReq must come over a direct connection", ErrorCode.FORBIDDEN)
        self._vouched(joiningPeer)
        if joiningPeer in self.ring:
            # A peer in the ring never joins again (section 10.5): this is a
            # new incarnation of a peer whose failure this node has not
            # detected yet (a restart after a crash, its old link still
            # looking open).  The entry is stale: remove it as a failed
            # neighbour (section 10.7.1), then decide on the Join.
            self.log.info(
                "CHORD-RELOAD: {peer} joins again: dropping the entry of its previous incarnation",
                peer=joiningPeer.hex(),
            )
            self._knownPeers.discard(joiningPeer)
            self._lose(joiningPeer)
        if not self.ring.isResponsible(joiningPeer):
            raise ChordError(
                f"not responsible for {joiningPeer.hex()}: join through "
                f"{(self.ring.nextHop(joiningPeer) or self.nodeId).hex()}",
                ErrorCode.FORBIDDEN,
            )
        self._departed.discard(joiningPeer)
        self._knownPeers.add(joiningPeer)
        self._addPeer(joiningPeer)
        self._scheduleUpdates()
        return JoinAns().overlay_specific_data

    # -- Update (sections 6.4.2.3, 10.7) --------------------------------------

    def handleUpdate(self, sender: bytes, data: bytes) -> bytes:
        """Section 10.7.3: learn the sender and the peers it lists; Attach to
        those that belong in the Neighbor Table.  Returns the UpdateAns
        body (empty).  Malformed data raises :class:`DecodeError`."""
        update = ChordUpdate.decode(data, self.ring.length)
        if self._phase is _Phase.LEFT or sender == self.nodeId:
            return UpdateAns().encode()
        if len(sender) != self.ring.length:
            raise ChordError("the sender's Node-ID has the wrong length")
        restarted = self._noteUptime(sender, update.uptime)
        if sender not in self._departed:
            self._vouched(sender)
            self._knownPeers.add(sender)
            if sender in self._connected:
                self._addPeer(sender)
        for candidate in (*update.predecessors, *update.successors, *update.fingers):
            self._consider(candidate, via=sender)
        if restarted or self._knowsCloserNeighbour(sender, update):
            self.clock.callLater(0, self.sendUpdate, sender, ChordUpdateType.NEIGHBORS)
        return UpdateAns().encode()

    def _noteUptime(self, sender: bytes, uptime: int) -> bool:
        """Whether ``sender`` restarted since its previous Update: it
        reports less uptime (section 10.7) than it had.  A neighbour that
        missed the failure sees no other change when the new incarnation
        joins, so it answers with its neighbours (section 10.7.3)."""
        started = self.clock.seconds() - uptime
        previous = self._peerStarts.get(sender)
        self._peerStarts[sender] = started
        if previous is None or started <= previous + RESTART_SLACK:
            return False
        self.log.info(
            "CHORD-RELOAD: {peer} restarted (uptime {uptime} s); sending it this node's neighbours",
            peer=sender.hex(),
            uptime=uptime,
        )
        return self._phase is _Phase.JOINED

    def _knowsCloserNeighbour(self, sender: bytes, update: ChordUpdate) -> bool:
        """Chord's notify step (section 10.7.3, "each member of its Connection
        Table"): the sender takes this node for its first successor (or
        predecessor) while this node knows a peer in between.  Concurrent
        joins can leave such a gap; telling the sender our neighbours lets
        it Attach to the closer peer, and the ring heals."""
        if self._phase is not _Phase.JOINED:
            return False
        predecessors, successors = self.ring.predecessors, self.ring.successors
        if update.successors[:1] == (self.nodeId,) and predecessors:
            return inOpen(predecessors[0], sender, self.nodeId)
        if update.predecessors[:1] == (self.nodeId,) and successors:
            return inOpen(successors[0], self.nodeId, sender)
        return False

    def sendUpdate(
        self, peer: bytes, updateType: ChordUpdateType = ChordUpdateType.NEIGHBORS
    ) -> Deferred[None]:
        """Send ``peer`` an Update (section 10.7) of ``updateType``.

        Not in :class:`ITopology`, but the node needs it: a peer that accepts
        an Attach with send_update "MUST send an Update message back"
        (section 6.4.2.3), with type full.  A failed Update counts as a
        failed peer (section 10.7.1).
        """
        body = UpdateReq(self.makeUpdate(updateType).encode()).encode()
        d = self.node.request(peer, UpdateReq.CODE, body)

        def failed(failure: Failure) -> None:
            if self.inRing and peer in self.ring:
                self.log.info(
                    "CHORD-RELOAD: Update to {peer} failed ({why}); dropping it",
                    peer=peer.hex(),
                    why=failure.getErrorMessage(),
                )
                self._suspectFailed(peer)
                self._lose(peer)

        return d.addCallbacks(lambda _: None, failed)

    def makeUpdate(self, updateType: ChordUpdateType) -> ChordUpdate:
        """This node's ChordUpdate of ``updateType`` (section 10.7)."""
        if updateType is ChordUpdateType.PEER_READY:
            return ChordUpdate(self.uptime, updateType)
        preds = tuple(self.ring.predecessors)
        succs = tuple(self.ring.successors)
        if updateType is ChordUpdateType.NEIGHBORS:
            return ChordUpdate(self.uptime, updateType, preds, succs)
        return ChordUpdate(self.uptime, updateType, preds, succs, tuple(self.ring.fingers()))

    # -- RouteQuery (sections 6.4.2.4, 10.8) ----------------------------------

    def handleRouteQuery(
        self, destination: bytes, sendUpdate: bool, data: bytes, requester: bytes | None = None
    ) -> bytes:
        """Section 10.8: the Node-ID this node would route ``destination``
        to, or its own when it would keep the message.

        ``requester`` is not in :class:`ITopology` but section 10.8 needs it:
        with send_update, "the responder SHOULD initiate an Update" (full)
        to the requester, which only the node knows.
        """
        hop = self.nextHop(destination)
        if sendUpdate and requester is not None and self.inRing:
            self.clock.callLater(0, self.sendUpdate, requester, ChordUpdateType.FULL)
        return ChordRouteQueryAns(self.nodeId if hop is None else hop).encode()

    # -- Leave (sections 6.4.2.2, 10.9) ------------------------------------------

    def leave(self) -> Deferred[None]:
        """Section 10.9: a LeaveReq to every member of the Neighbor Table,
        then stop every timer.  Successors get this node's predecessors
        (from_pred), predecessors its successors (from_succ)."""
        if self._leaving is not None:
            return self._chain(self._leaving)
        if not self.inRing:
            self._phase = _Phase.LEFT
            self._stopTimers()
            return succeed(None)
        self._phase = _Phase.LEAVING
        self._stopTimers()
        preds = tuple(self.ring.predecessors)
        succs = tuple(self.ring.successors)
        sent = [self._sendLeave(s, ChordLeaveData.from_pred(preds)) for s in succs]
        sent += [
            self._sendLeave(p, ChordLeaveData.from_succ(succs)) for p in preds if p not in succs
        ]
        done: Deferred[None] = DeferredList(sent, consumeErrors=True).addCallback(self._left)
        self._leaving = done
        return self._chain(done)

    def _sendLeave(self, peer: bytes, data: ChordLeaveData) -> Deferred[tuple[int, bytes]]:
        body = LeaveReq(self.nodeId, data.encode()).encode()
        return self.node.request(peer, LeaveReq.CODE, body)

    def _left(self, _: object) -> None:
        self._phase = _Phase.LEFT
        self._stopTimers()
        self.log.info("CHORD-RELOAD: left the overlay")

    def handleLeave(self, leavingPeer: bytes, data: bytes) -> None:
        """Section 10.9: a Leave from a neighbour is handled as its failure
        (section 10.7.1), and the lists it carries offer replacements."""
        leave = ChordLeaveData.decode(data, self.ring.length)
        if leavingPeer == self.nodeId:
            raise ChordError("a LeaveReq for this node's own Node-ID", ErrorCode.FORBIDDEN)
        self._departed.add(leavingPeer)
        self._lose(leavingPeer)
        for candidate in leave.node_ids:
            self._consider(candidate, via=None)

    # -- Routing Table changes --------------------------------------------------

    def _addPeer(self, peer: bytes) -> None:
        if self.ring.addPeer(peer):
            self._afterChange()

    def _lose(self, peer: bytes) -> None:
        """Remove a failed or departed peer (sections 10.7.1, 10.7.2)."""
        self._knownPeers.discard(peer)
        for slot, candidate in list(self._fingerCandidates.items()):
            if candidate == peer:
                del self._fingerCandidates[slot]
        if peer not in self.ring:
            return
        if peer in self.ring.successors:
            # Section 10.7.1: delay new replicas for the hold-down time, in
            # case a triggered Update brings a better successor.
            self._holdDownUntil = self.clock.seconds() + self.settings.successorHoldDown
        slot = self.ring.fingerSlot(peer)
        wasFinger = slot <= self.ring.fingerTableSize and self.ring.finger(slot) == peer
        self.ring.removePeer(peer)
        if self.inRing and not self.ring:
            self.log.warn(
                "CHORD-RELOAD: lost every peer; now alone and responsible for the whole "
                "ring (section 10.7.1)"
            )
        if wasFinger and self.inRing and self.settings.reactive and self.ring.finger(slot) is None:
            # Section 10.7.2: reactive recovery searches for a new entry.
            self.clock.callLater(0, self._searchFinger, slot)
        self._afterChange()

    def _consider(self, candidate: bytes, via: bytes | None) -> None:
        """A peer named in an Update or Leave (section 10.7.3)."""
        if (
            candidate == self.nodeId
            or len(candidate) != self.ring.length
            or candidate in self.ring
            or candidate in self._departed
            or self._suspect(candidate)
        ):
            return
        if candidate in self._connected:
            self._knownPeers.add(candidate)
            self._addPeer(candidate)
        elif self.ring.wouldImproveNeighbours(candidate):
            self._attachPeer(candidate, via)
        else:
            slot = self.ring.fingerWouldFill(candidate)
            if slot is not None:
                self._fingerCandidates[slot] = candidate

    def _table(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return tuple(self.ring.predecessors), tuple(self.ring.successors)

    def _afterChange(self) -> None:
        """Sections 10.7.1 and 10.7.3: with reactive recovery, Update the
        Connection Table whenever the Neighbor Table changed; always when
        the range of responsible ids did."""
        if self._table() != self._sentTable and (self.settings.reactive or self._rangeMoved):
            self._scheduleUpdates()

    def _scheduleUpdates(self) -> None:
        """Coalesce every change of this turn into one round of Updates."""
        if self._phase is _Phase.JOINED and "updates" not in self._timers:
            self._timers["updates"] = self.clock.callLater(0, self._flushUpdates)

    def _flushUpdates(self) -> None:
        self._timers.pop("updates", None)
        if self._phase is not _Phase.JOINED:
            return
        self._sentTable = self._table()
        self._rangeMoved = False
        # Section 10.7.3: "send an Update request to each member of its
        # Connection Table" -- with the neighbours, so that a peer whose view
        # of this part of the ring is stale learns the peers it is missing.
        for peer in sorted(self._connected - self._departed):
            self.sendUpdate(peer, ChordUpdateType.NEIGHBORS)

    def _ringChanged(self, change: ResponsibilityChange) -> None:
        if change.moved is not None:
            self._rangeMoved = True
        if self._phase is not _Phase.JOINED:
            return
        ranges = change.ranges
        now = self.clock.seconds()
        if change.replicas is not None and now < self._holdDownUntil:
            if "holdDown" not in self._timers:
                delay = self._holdDownUntil - now
                self._timers["holdDown"] = self.clock.callLater(delay, self._holdDownOver)
            # Only new replicas wait; what moved or stopped being held not.
            ranges = tuple(r for r in (change.moved, change.held) if r is not None)
        if ranges:
            self._notify(ranges)

    def _holdDownOver(self) -> None:
        self._timers.pop("holdDown", None)
        if self._phase is _Phase.JOINED:
            self._notify((self.ring.responsibleRange(),))

    def _notify(self, ranges: tuple[IdRange, ...]) -> None:
        for callback in list(self._callbacks):
            try:
                callback(ranges)
            except Exception:
                self.log.failure("responsibility-change callback {cb!r} failed", cb=callback)

    # -- Attaches ------------------------------------------------------------------

    def _startAttach(
        self, destination: bytes, *, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[tuple[bytes, bool]]:
        """Attach through the node; fires with (peer, newly in the Routing
        Table)."""
        if self._attach is None:
            return fail(ChordError("the node offers no attach()"))
        self._pendingAttaches += 1
        d: Deferred[bytes] = maybeDeferred(
            self._attach, destination, via=via, sendUpdate=sendUpdate
        )

        def done(result: object) -> object:
            self._pendingAttaches -= 1
            if not self._pendingAttaches:
                waiters, self._settleWaiters = self._settleWaiters, []
                for waiter in waiters:
                    waiter.callback(None)
            return result

        d.addBoth(done)
        return d.addCallback(self._attached, destination)

    def _attached(self, peer: object, destination: bytes) -> tuple[bytes, bool]:
        """The Attach to ``destination`` connected ``peer``.

        Answering an Attach routed to a Resource-ID makes ``peer`` known as
        a peer: only a peer is responsible for one.  So does answering one
        routed to its own Node-ID, unless ``peer`` failed recently: a
        Joining Node answers those too, and the Node-ID came from hearsay
        about its previous incarnation (module docstring)."""
        if not isinstance(peer, bytes) or len(peer) != self.ring.length or peer == self.nodeId:
            raise ChordError(f"attach answered with an invalid Node-ID {peer!r}")
        new = peer not in self.ring
        self._departed.discard(peer)
        if peer != destination:
            self._vouched(peer)
        if not self._suspect(peer):
            self._knownPeers.add(peer)
        self.linkUp(peer)
        return peer, new and peer in self.ring

    def _settle(self) -> Deferred[None]:
        """Fires once no Attach is outstanding (section 10.5 step 3)."""
        if not self._pendingAttaches:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._settleWaiters.append(waiter)
        return waiter

    def _attachPeer(self, peer: bytes, via: bytes | None) -> None:
        """Attach to a new neighbour, source-routed through the peer that
        named it (section 10.6)."""
        if peer in self._attaching or self._attach is None:
            return
        self._attaching.add(peer)
        self._knownPeers.add(peer)
        d = self._startAttach(peer, via=via)

        def failed(failure: Failure) -> None:
            if peer not in self.ring:
                self._knownPeers.discard(peer)
            self.log.debug(
                "CHORD-RELOAD: Attach to {peer} failed: {why}",
                peer=peer.hex(),
                why=failure.getErrorMessage(),
            )

        d.addCallbacks(self._greet, failed)
        d.addBoth(lambda _: self._attaching.discard(peer))

    def _attachTarget(self, target: bytes) -> None:
        """Attach to whoever is responsible for ``target`` (finger searches,
        sections 10.5 and 10.7.4.2, routed conventionally per 10.6).  Not
        when this node is responsible for ``target`` itself: no peer holds
        that part of the ring, and the Attach would only come back to it."""
        if self.ring.isResponsible(target):
            return
        d = self._startAttach(target)

        def failed(failure: Failure) -> None:
            self.log.debug(
                "CHORD-RELOAD: finger Attach towards {target} failed: {why}",
                target=target.hex(),
                why=failure.getErrorMessage(),
            )

        d.addCallbacks(self._greet, failed)

    def _greet(self, result: tuple[bytes, bool]) -> None:
        """Tell a newly attached peer that this node is a peer it can route
        through (peer_ready, section 10.7), unless the round of neighbour
        Updates that the change scheduled does it anyway."""
        peer, new = result
        if not new or not self.inRing:
            return
        if self.settings.reactive and peer in self.ring.neighbourSet():
            return
        self.sendUpdate(peer, ChordUpdateType.PEER_READY)

    # -- stabilisation (section 10.7.4) ---------------------------------------------

    def _enterRing(self) -> None:
        self._phase = _Phase.JOINED
        self._sentTable = ((), ())
        self._rangeMoved = False
        self._arm("neighbourTimer", self.settings.updateInterval, self._stabiliseNeighbours)
        self._arm("fingerTimer", self.settings.pingInterval, self._stabiliseFingers)
        self._scheduleUpdates()

    def _arm(self, name: str, interval: float, action: Callable[[], None]) -> None:
        """Re-run ``action`` about every ``interval`` seconds, randomly
        offset "so they do not occur all at once" (section 10.7.4.1)."""
        delay = interval * self._rng.uniform(0.5, 1.5)
        self._timers[name] = self.clock.callLater(delay, self._tick, name, interval, action)

    def _tick(self, name: str, interval: float, action: Callable[[], None]) -> None:
        self._timers.pop(name, None)
        if self._phase is not _Phase.JOINED:
            return
        try:
            action()
        finally:
            self._arm(name, interval, action)

    def _stabiliseNeighbours(self) -> None:
        """Section 10.7.4.1: an Update to every peer in the Neighbor Table."""
        self._sentTable = self._table()
        for peer in sorted(self.ring.neighbourSet()):
            self.sendUpdate(peer, ChordUpdateType.NEIGHBORS)

    def _stabiliseFingers(self) -> None:
        """Section 10.7.4.2 (every chord-ping-interval): peer_ready as the
        connectivity check of non-neighbour peers, and one finger search."""
        neighbours = self.ring.neighbourSet()
        for peer in sorted(self.ring.peers - neighbours):
            self.sendUpdate(peer, ChordUpdateType.PEER_READY)
        self._searchFinger()

    def _searchFinger(self, slot: int | None = None) -> None:
        """Look for a peer for one invalid finger entry: ``slot``, or one
        chosen "exponentially weighted ... from i=1 ... with probability
        0.5" (section 10.7.4.2, alternative 1), preferring a candidate an
        Update offered (alternative 2), else a random id in its range."""
        if self._phase is not _Phase.JOINED or self._attach is None:
            return
        invalid = self.ring.invalidFingers()
        if slot is None:
            chosen = [i for i in invalid if self._rng.random() < 0.5]
            if not chosen:
                return
            slot = chosen[0]
        elif slot not in invalid:
            return
        candidate = self._fingerCandidates.pop(slot, None)
        if candidate is not None and self.ring.fingerWouldFill(candidate) == slot:
            self._attachPeer(candidate, via=None)
        else:
            self._attachTarget(self.ring.randomFingerTarget(slot, self._rng))

    def _seekFingers(self) -> None:
        """Section 10.5: "to set up its i'th Finger Table entry, JN MUST send
        an Attach to peer n+2^(128-i)", for the entries its neighbours do not
        already cover (section 10.7.4.3)."""
        for i in self.ring.invalidFingers():
            self._attachTarget(self.ring.fingerTarget(i))

    def _stopTimers(self) -> None:
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()

    @staticmethod
    def _chain(d: Deferred[None]) -> Deferred[None]:
        """A new Deferred that fires with ``d``'s outcome, so several
        callers can wait for one leave."""
        out: Deferred[None] = Deferred()

        def relay(result: object) -> object:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(None)
            return result

        d.addBoth(relay)
        return out
