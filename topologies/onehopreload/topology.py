"""ONE-HOP-RELOAD for one node: the :class:`~reload.interfaces.ITopology`
that keeps the whole membership and disseminates its changes.

Routing (RFC 6940 section 6.1.2): the next hop for a destination is the
peer responsible for it (section 10.1's successor rule over the whole
membership), over a link this node has to it.  Links are opened to every
member at a bounded rate (``linksPerTick`` every ``linkInterval``, at most
``maxLinks``), and at once, on demand, to a member a message is routed to
while it has none; until then the message goes to the linked peer
closest before the responsible one, which is nearer to it on the ring
(every peer has links to its ring neighbours first), so it still arrives.

Membership changes (:mod:`topologies.onehopreload.membership`):

- a join is announced by the admitting peer (the joining peer's successor,
  which answers its JoinReq, section 6.4.2.1) and by the joining peer to its
  ring neighbours: a neighbour exchange (Update, section 6.4.2.3) with each,
  retried until the neighbour answers;
- a leave by the LeaveReq to the leaving peer's neighbours (6.4.2.2);
- a failure by every peer whose link to it closes (section 10.7.1's rule,
  a lost connection is a failed peer) or whose Attaches to it fail
  ``suspectAttempts`` times in a row with nobody answering for it (an
  Error the peer itself sends, such as Error_In_Progress for crossed
  Attaches, section 6.5.1.2, shows it alive).  The report goes to that
  peer too: if it is alive it refutes it at once.

Whoever first hears of a change spreads it in ``eventRounds`` gossip
rounds, each an Update to ``fanout`` random linked peers every
``gossipInterval`` seconds; changes heard in one interval travel together.
Every ``digestInterval`` a peer compares segment digests with a random peer
(an Update of type digest, answered with the entries of the segments that
differ) and pushes back what the other lacks, so a peer that missed an
event converges.  A peer reported failed that is alive answers with a
higher version of itself.

Gossip reaches every peer only with high probability, and responsibility
and replica placement (sections 10.1, 10.4) need the ring neighbours to
agree at once, so neighbours confirm: a peer exchanges its neighbourhood
(itself and the ``neighbours`` peers either side) with each new ring
neighbour until that one answers, and with its successor in every digest
round (every ``digestInterval`` seconds); the answer brings the other's
neighbourhood and its newer entries of the peers listed, so a neighbour
that missed a join, a failure or a refutation converges within that
interval whatever the gossip did.

It is meant for overlays of up to a few thousand peers (the default
``maxLinks`` is 2,048): each peer holds 21 bytes of membership and one link
per peer, and churn costs each peer a bounded number of messages a second
whatever the overlay's size, at the price of slower convergence when many
peers change at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from random import Random
from typing import Any, Protocol, cast

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.api.topology import (
    ErrorCode,
    JoinAns,
    JoinReq,
    LeaveReq,
    UpdateAns,
    UpdateReq,
)
from reload.errors import ReloadError
from reload.interfaces import ITopology
from topologies.chordreload.node import Clock, Timer
from topologies.onehopreload.codec import (
    OneHopUpdate,
    OneHopUpdateType,
    decodeEntries,
    decodeVersion,
    encodeEntries,
    encodeVersion,
)
from topologies.onehopreload.membership import SEGMENTS, Entry, Membership
from topologies.onehopreload.settings import OneHopSettings

__all__ = ["OneHopNode", "OneHopTopology", "hashName"]

REPLICAS = 2
JOIN_ATTEMPTS = 4
#: Digest exchanges a joining peer makes with its admitting peer at most.
SYNC_ROUNDS = 64
_UINT32_MAX = 0xFFFFFFFF


def hashName(name: bytes, length: int = 16) -> bytes:
    """SHA-1 truncated to the Node-ID length, as section 10.2 for Chord."""
    return hashlib.sha1(name).digest()[:length]


def addOne(nodeId: bytes) -> bytes:
    """``nodeId + 1`` on the ring."""
    n = len(nodeId)
    return ((int.from_bytes(nodeId, "big") + 1) % (1 << (8 * n))).to_bytes(n, "big")


class OneHopNode(Protocol):
    """What the topology uses of :class:`reload.interfaces.INode`."""

    @property
    def nodeId(self) -> bytes: ...

    @property
    def clock(self) -> object: ...

    def request(
        self, destination: bytes, messageCode: int, body: bytes
    ) -> Deferred[tuple[int, bytes]]: ...

    def attach(
        self, destination: bytes, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[bytes]: ...


class _WholeRing:
    """Every id: what a change of a neighbour touches, for storage."""

    def __contains__(self, x: object) -> bool:
        return isinstance(x, bytes)


class OneHopError(ReloadError):
    """A topology request refused, with its RFC 6940 error code."""

    def __init__(self, message: str, code: int = ErrorCode.INVALID_MESSAGE) -> None:
        super().__init__(code, message)
        self.errorCode = code


@implementer(ITopology)
class OneHopTopology:
    """ONE-HOP-RELOAD state and procedures for one node."""

    log = Logger()

    def __init__(
        self,
        node: OneHopNode,
        *,
        settings: OneHopSettings | None = None,
        rng: Random | None = None,
    ) -> None:
        self.node = node
        self.nodeId: bytes = node.nodeId
        self.clock = cast(Clock, node.clock)
        if settings is None:
            settings = OneHopSettings.fromConfiguration(getattr(node, "configuration", None))
        self.settings = settings
        self._rng = rng if rng is not None else Random()
        self.members = Membership(self.nodeId, 0, tombstoneTtl=settings.tombstoneTtl)
        self.phase = "idle"
        self._admitting: bytes | None = None
        self._connected: set[bytes] = set()
        #: Changes still to spread, and in how many more rounds.
        self._fresh: dict[bytes, tuple[Entry, int]] = {}
        self._attaching: set[bytes] = set()
        #: Ring neighbours a neighbour exchange was confirmed with since
        #: they became neighbours; those being exchanged with.
        self._introduced: set[bytes] = set()
        self._introducing: set[bytes] = set()
        #: Attaches in a row that failed with nobody answering for a peer.
        self._suspicion: dict[bytes, int] = {}
        #: Peers this node reported failed after unanswered Attaches: if
        #: one refutes, it is alive but unreachable from here (routing
        #: goes through others); it is not reported again for that.
        self._unreachable: set[bytes] = set()
        #: Retries per peer: ``("introduce" | "attach", peer)``.
        self._retries: dict[tuple[str, bytes], Timer] = {}
        self._callbacks: list[Callable[[tuple[object, ...]], object]] = []
        self._timers: dict[str, Timer] = {}
        #: Counters for the simulator and status pages.
        self.sent: dict[str, int] = {"events": 0, "digests": 0, "attaches": 0, "neighbours": 0}

    # -- state ------------------------------------------------------------------------

    @property
    def inRing(self) -> bool:
        return self.phase in ("joined", "leaving")

    def _neighbourhood(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        n = self.settings.neighbours
        return tuple(self.members.predecessors(n)), tuple(self.members.successors(n))

    # -- routing and storage questions (ITopology) -------------------------------------

    def nextHop(self, destination: bytes) -> bytes | None:
        if destination == self.nodeId:
            return None
        if destination in self._connected:
            return destination
        if not self.inRing:
            if self._admitting in self._connected:
                return self._admitting
            return min(self._connected, default=None)
        owner = self.members.responsible(destination)
        if owner == self.nodeId:
            return None
        if owner in self._connected:
            return owner
        self._wantLink(owner)
        hop = self.members.closestPreceding(owner, self._connected)
        if hop is None:
            # Not linked to any peer before it (a newcomer just after this
            # node, its link still coming up): the linked peer after it,
            # which routes back (a peer before it would route through this
            # node again, a routing loop).
            hop = self.members.closestFollowing(owner, self._connected)
        return hop

    def isResponsible(self, resourceId: bytes) -> bool:
        return self.inRing and self.members.responsible(resourceId) == self.nodeId

    def replicaSet(self, resourceId: bytes) -> list[bytes]:
        return self.members.replicas(resourceId, REPLICAS) if self.inRing else []

    def holdsReplica(self, resourceId: bytes) -> bool:
        return self.inRing and self.nodeId in self.members.replicas(resourceId, REPLICAS)

    def responsiblePeer(self, resourceId: bytes) -> bytes:
        return self.members.responsible(resourceId)

    def isNeighbour(self, nodeId: bytes) -> bool:
        preds, succs = self._neighbourhood()
        return nodeId in preds or nodeId in succs

    def shouldHold(self, resourceId: bytes) -> bool:
        if self.phase not in ("joining", "joined"):
            return False
        return self.members.responsible(
            resourceId
        ) == self.nodeId or self.nodeId in self.members.replicas(resourceId, REPLICAS)

    def answeredFor(self, resourceId: bytes, nodeId: bytes) -> None:
        """A peer that answered for a Resource-ID gets a link if it has none."""
        if self.inRing and nodeId in self.members:
            self._wantLink(nodeId)

    def routeQueryAnswer(self, data: bytes) -> dict[str, Any]:
        if len(data) != len(self.nodeId):
            raise ValueError(
                f"a ONE-HOP-RELOAD RouteQueryAns is {len(self.nodeId)} bytes, not {len(data)}"
            )
        return {"nextPeer": data.hex()}

    def hashResource(self, name: bytes) -> bytes:
        return hashName(name, len(self.nodeId))

    def neighbours(self) -> dict[str, list[bytes]]:
        preds, succs = self._neighbourhood()
        return {
            "predecessors": list(preds),
            "successors": list(succs),
            "members": self.members.others(),
        }

    def onResponsibilityChange(self, callback: object) -> None:
        if not callable(callback):
            raise TypeError(f"{callback!r} is not callable")
        self._callbacks.append(callback)

    def _notify(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback((_WholeRing(),))
            except Exception:
                self.log.failure("responsibility-change callback failed")

    # -- learning about members -------------------------------------------------------

    def _learn(self, entries: tuple[Entry, ...] | list[Entry], *, spread: bool = True) -> bool:
        """Merge reports; spread what is new; tell storage when the
        neighbourhood changed (only then do responsibility or replica sets
        of data this node holds change, sections 10.4 and 10.7.3)."""
        now = self.clock.seconds()
        before = self._neighbourhood()
        changed = False
        for entry in entries:
            if entry.nodeId == self.nodeId:
                fresh = self.members.refute(entry)
                if fresh is not None:
                    self.log.info(
                        "ONE-HOP-RELOAD: reported failed; answering with version {v}",
                        v=fresh.version,
                    )
                    self._spread(fresh)
                continue
            if not self.members.apply(entry, now):
                continue
            changed = True
            if spread:
                self._spread(entry)
            if entry.alive and entry.nodeId not in self._connected:
                self._armLinks()
        if self._neighbourhood() != before and self.phase in ("joining", "joined"):
            self._notify()
            if self.phase == "joined":
                self._linkNeighbours()
                self._introduceNeighbours()
        return changed

    def _learnFrom(self, sender: bytes, entries: tuple[Entry, ...] | list[Entry]) -> None:
        """Reports from ``sender``: all of them from a member (or while
        this node joins); from anyone else only its report about itself,
        after which it is a member."""
        if sender not in self.members and self.phase != "joining":
            self._learn([e for e in entries if e.nodeId == sender])
            if sender not in self.members:
                return
        self._learn(entries)

    def _spread(self, entry: Entry) -> None:
        self._fresh[entry.nodeId] = (entry, self.settings.eventRounds)
        if self.phase == "joined" and "gossip" not in self._timers:
            self._arm("gossip", self.settings.gossipInterval, self._gossip)

    def _arm(self, name: str, interval: float, action: Callable[[], None]) -> None:
        delay = interval * self._rng.uniform(0.75, 1.25)
        self._timers[name] = self.clock.callLater(delay, self._tick, name, action)

    def _tick(self, name: str, action: Callable[[], None]) -> None:
        self._timers.pop(name, None)
        if self.phase == "joined":
            action()

    def _retryLater(
        self, what: str, peer: bytes, delay: float, action: Callable[[bytes, int], object], n: int
    ) -> None:
        """``action(peer, n)`` in about ``delay`` seconds, if this node is
        still in the ring then (one pending retry of each kind per peer)."""
        key = (what, peer)

        def run() -> None:
            self._retries.pop(key, None)
            if self.phase == "joined":
                action(peer, n)

        old = self._retries.get(key)
        if old is not None and old.active():
            old.cancel()
        self._retries[key] = self.clock.callLater(delay * self._rng.uniform(0.75, 1.25), run)

    def _linkedMembers(self) -> list[bytes]:
        return sorted(n for n in self._connected if n in self.members)

    def _gossip(self) -> None:
        """One round: the fresh changes to ``fanout`` random linked peers."""
        if not self._fresh:
            return
        batch = []
        for nodeId, (entry, rounds) in list(self._fresh.items())[: self.settings.maxEntries]:
            batch.append(entry)
            if rounds <= 1:
                del self._fresh[nodeId]
            else:
                self._fresh[nodeId] = (entry, rounds - 1)
        targets = self._linkedMembers() or self.members.others()
        chosen = self._rng.sample(targets, min(self.settings.fanout, len(targets)))
        for peer in chosen:
            self._sendEvents(peer, batch)
        if self._fresh:
            self._arm("gossip", self.settings.gossipInterval, self._gossip)

    def _sendEvents(self, peer: bytes, entries: list[Entry]) -> Deferred[None]:
        self.sent["events"] += 1
        body = UpdateReq(OneHopUpdate(OneHopUpdateType.EVENTS, tuple(entries)).encode()).encode()
        d = self.node.request(peer, UpdateReq.CODE, body)
        return d.addCallbacks(lambda _: None, lambda f: None)

    # -- convergence: digest exchanges -------------------------------------------------

    def _digestRound(self) -> None:
        """Digests with a random peer, and neighbourhoods with the
        successor: a neighbour that missed a change near it learns it
        within ``digestInterval`` whatever the gossip did."""
        others = self._linkedMembers() or self.members.others()
        if others:
            self.exchangeDigests(self._rng.choice(others))
        successors = self.members.successors(1)
        if successors:
            self.exchangeNeighbours(successors[0])
        self._arm("digest", self.settings.digestInterval, self._digestRound)

    def _catchUp(self) -> None:
        others = [p for p in self._linkedMembers() if p != self._admitting]
        if others:
            self.exchangeDigests(self._rng.choice(others))

    def exchangeDigests(self, peer: bytes) -> Deferred[int]:
        """Compare segment digests with ``peer``: take the entries it sends
        for the segments that differ, push back the ones it lacks.  Fires
        with the number of entries received."""
        self.sent["digests"] += 1
        self.members.expire(self.clock.seconds())
        digests = tuple(self.members.digests())
        body = UpdateReq(OneHopUpdate(OneHopUpdateType.DIGEST, digests=digests).encode()).encode()
        d = self.node.request(peer, UpdateReq.CODE, body)

        def answered(result: tuple[int, bytes]) -> int:
            code, answer = result
            if code != UpdateAns.CODE:
                return 0
            theirs = decodeEntries(UpdateAns.decode(answer).overlay_specific_data, len(self.nodeId))
            self._learn(theirs)
            self._pushBack(peer, theirs)
            return len(theirs)

        def failed(failure: Failure) -> int:
            self.log.debug(
                "ONE-HOP-RELOAD: digest exchange with {peer} failed: {why}",
                peer=peer.hex(),
                why=failure.getErrorMessage(),
            )
            return 0

        return d.addCallbacks(answered, failed)

    def _pushBack(self, peer: bytes, theirs: tuple[Entry, ...]) -> None:
        """Entries of the segments ``peer`` sent that it lacks or has older
        (only for a complete answer: a truncated one may omit entries)."""
        if not theirs or len(theirs) >= self.settings.maxEntries:
            return
        known = {e.nodeId: e for e in theirs}
        segments = {e.nodeId[0] * SEGMENTS // 256 for e in theirs}
        missing = [
            e
            for e in self.members.segmentEntries(segments)
            if e.nodeId not in known or e.supersedes(known[e.nodeId])
        ]
        if missing:
            self._sendEvents(peer, missing[: self.settings.maxEntries])

    def _answerDigests(self, digests: tuple[bytes, ...]) -> bytes:
        self.members.expire(self.clock.seconds())
        differ = Membership.differing(self.members.digests(), list(digests))
        out: list[Entry] = []
        for segment in sorted(differ):
            entries = self.members.segmentEntries({segment})
            if out and len(out) + len(entries) > self.settings.maxEntries:
                break
            out.extend(entries[: self.settings.maxEntries - len(out)])
        return encodeEntries(out)

    # -- ring neighbours: confirmed exchanges ------------------------------------------

    def _neighbourEntries(self) -> list[Entry]:
        """This node and its ring neighbourhood, as entries."""
        preds, succs = self._neighbourhood()
        out = [self.members.me]
        for nodeId in dict.fromkeys((*succs, *preds)):
            entry = self.members.entry(nodeId)
            if entry is not None:
                out.append(entry)
        return out

    def _introduceNeighbours(self) -> list[Deferred[bool]]:
        """A neighbour exchange with each ring neighbour that has had none
        since it became one; the first tries."""
        preds, succs = self._neighbourhood()
        self._introduced &= {*preds, *succs}
        return [
            self._introduce(peer)
            for peer in dict.fromkeys((*succs, *preds))
            if peer not in self._introduced and peer not in self._introducing
        ]

    def _introduce(self, peer: bytes, attempt: int = 1) -> Deferred[bool]:
        """Exchange neighbourhoods with ``peer`` until it answers, it is no
        longer a ring neighbour, or ``announceAttempts`` tries failed
        (waiting 1, 2, 4... seconds between them)."""
        self._introducing.add(peer)

        def settled(confirmed: bool) -> bool:
            if confirmed:
                self._introducing.discard(peer)
                return True
            if (
                attempt < self.settings.announceAttempts
                and self.phase == "joined"
                and peer in self.members
                and self.isNeighbour(peer)
            ):
                delay = min(2.0 ** (attempt - 1), self.settings.gossipInterval)
                self._retryLater("introduce", peer, delay, self._retryIntroduce, attempt + 1)
            else:
                self._introducing.discard(peer)
            return False

        return self.exchangeNeighbours(peer).addCallback(settled)

    def _retryIntroduce(self, peer: bytes, attempt: int) -> None:
        if peer in self.members and self.isNeighbour(peer) and peer not in self._introduced:
            self._introduce(peer, attempt)
        else:
            self._introducing.discard(peer)

    def exchangeNeighbours(self, peer: bytes) -> Deferred[bool]:
        """Send ``peer`` this node and its neighbourhood; learn what it
        answers.  Fires with whether it answered (confirmed)."""
        self.sent["neighbours"] += 1
        update = OneHopUpdate(OneHopUpdateType.NEIGHBOURS, tuple(self._neighbourEntries()))
        d = self.node.request(peer, UpdateReq.CODE, UpdateReq(update.encode()).encode())

        def answered(result: tuple[int, bytes]) -> bool:
            code, answer = result
            if code != UpdateAns.CODE:
                return False
            entries = decodeEntries(
                UpdateAns.decode(answer).overlay_specific_data, len(self.nodeId)
            )
            self._introduced.add(peer)
            self._learnFrom(peer, entries)
            return True

        def failed(failure: Failure) -> bool:
            self.log.debug(
                "ONE-HOP-RELOAD: neighbour exchange with {peer} failed: {why}",
                peer=peer.hex(),
                why=failure.getErrorMessage(),
            )
            return False

        return d.addCallbacks(answered, failed)

    def _answerNeighbours(self, sender: bytes, theirs: tuple[Entry, ...]) -> bytes:
        """This node, its neighbourhood, and its newer entries of the peers
        ``sender`` listed (a tombstone of one it thinks alive, a refutation
        of one it thinks failed)."""
        if sender in self.members:
            self._introduced.add(sender)
        out = {e.nodeId: e for e in self._neighbourEntries()}
        for entry in theirs:
            mine = self.members.entry(entry.nodeId)
            if mine is not None and mine.supersedes(entry):
                out[entry.nodeId] = mine
        return encodeEntries(list(out.values())[: self.settings.maxEntries])

    # -- links ------------------------------------------------------------------------

    def linkUp(self, nodeId: bytes) -> None:
        if nodeId != self.nodeId and len(nodeId) == len(self.nodeId):
            self._connected.add(nodeId)
            self._suspicion.pop(nodeId, None)
            self._unreachable.discard(nodeId)

    def linkDown(self, nodeId: bytes) -> None:
        """Section 10.7.1's rule: a lost connection is a failed peer."""
        self._connected.discard(nodeId)
        entry = self.members.entry(nodeId)
        if entry is not None and entry.alive and self.phase in ("joining", "joined"):
            # Every linked peer sees a failed peer's links close; its ring
            # neighbours alone tell it (a link closed by a fault, not a
            # failure, costs at most those few messages).
            self._reportFailed(entry, tell=self.isNeighbour(nodeId))

    def _wantLink(self, peer: bytes) -> None:
        """On demand: a link to ``peer`` now, if the bounds allow."""
        if peer in self._suspicion or peer in self._unreachable:
            return  # its retries are scheduled, or it is reached through others
        if (
            peer in self._connected
            or peer in self._attaching
            or len(self._attaching) >= 2 * self.settings.linksPerTick
            or len(self._connected) >= self.settings.maxLinks
        ):
            self._armLinks()
            return
        self._attachTo(peer)

    def _armLinks(self) -> None:
        if self.phase == "joined" and "links" not in self._timers:
            self._arm("links", self.settings.linkInterval, self._fillLinks)

    def _fillLinks(self) -> None:
        """Links to the ring neighbours at once (routing falls back on
        them, and replica Stores come from them); to the other members at
        most ``linksPerTick`` every ``linkInterval``, so that the Attaches
        a join causes (one per member, from one side or the other) stay
        within a fixed budget per peer however fast peers join.  A member
        a message is routed to gets its link on demand (:meth:`nextHop`)."""
        if len(self._connected) >= self.settings.maxLinks:
            return
        wanted = self._linkNeighbours()
        unlinked = [
            n
            for n in self.members.others()
            if n not in self._connected and n not in wanted and n not in self._suspicion
        ]
        budget = self.settings.linksPerTick - len(self._attaching.difference(wanted))
        if budget > 0 and len(unlinked) > budget:
            unlinked = self._rng.sample(unlinked, budget)
        for peer in unlinked:
            if budget <= 0:
                break
            if peer not in self._attaching:
                self._attachTo(peer)
                budget -= 1
        if any(n not in self._connected for n in self.members.others()):
            self._arm("links", self.settings.linkInterval, self._fillLinks)

    def _linkNeighbours(self) -> list[bytes]:
        """Attach to the ring neighbours this peer has no link to; those."""
        preds, succs = self._neighbourhood()
        wanted = [
            p
            for p in dict.fromkeys((*succs, *preds))
            if p not in self._connected and p not in self._suspicion
        ]
        for peer in wanted:
            if peer not in self._attaching:
                self._attachTo(peer)
        return wanted

    def _attachTo(self, peer: bytes) -> Deferred[None]:
        self._attaching.add(peer)
        self.sent["attaches"] += 1
        d = self.node.attach(peer)

        def done(connected: object) -> None:
            self._attaching.discard(peer)
            if connected == peer:
                self._suspicion.pop(peer, None)
            elif isinstance(connected, bytes):
                self.log.debug(
                    "ONE-HOP-RELOAD: Attach to {p} reached {q}", p=peer.hex(), q=connected.hex()
                )

        def failed(failure: Failure) -> None:
            self._attaching.discard(peer)
            self._attachFailed(peer, failure)

        return d.addCallbacks(done, failed)

    def _attachFailed(self, peer: bytes, failure: Failure) -> None:
        """An Attach to ``peer`` failed.  An Error the peer itself signed
        shows it alive (crossed Attaches, section 6.5.1.2: its own link will
        come up); anything else is a suspicion, retried, and reported only
        after ``suspectAttempts`` in a row -- a slow or loaded peer is not a
        failed one."""
        entry = self.members.entry(peer)
        if entry is None or not entry.alive or self.phase != "joined" or peer in self._connected:
            self._suspicion.pop(peer, None)
            return
        error = failure.value
        if peer in self._unreachable or (isinstance(error, ReloadError) and error.nodeId == peer):
            self._suspicion.pop(peer, None)
            self._armLinks()
            return
        count = self._suspicion.get(peer, 0) + 1
        if count < self.settings.suspectAttempts:
            self._suspicion[peer] = count
            self._retryLater("attach", peer, 2.0**count, self._retryAttach, count)
            return
        self._suspicion.pop(peer, None)
        self._unreachable.add(peer)
        self.log.info(
            "ONE-HOP-RELOAD: {peer} unreachable ({n} Attaches): reporting it failed",
            peer=peer.hex(),
            n=count,
        )
        self._reportFailed(entry, tell=True)

    def _retryAttach(self, peer: bytes, count: int) -> None:
        if peer in self.members and peer not in self._connected and peer not in self._attaching:
            self._attachTo(peer)
        else:
            self._suspicion.pop(peer, None)

    def _reportFailed(self, entry: Entry, tell: bool) -> None:
        """This node found ``entry``'s peer failed: spread it, and with
        ``tell`` send it the report too, so that it refutes it at once if it
        is alive after all (else the neighbour exchanges bring it the report
        within ``digestInterval``)."""
        tombstone = Entry(entry.nodeId, entry.version, False)
        self._learn([tombstone])
        if tell:
            self._sendEvents(entry.nodeId, [tombstone])

    # -- Join (sections 6.4.2.1) --------------------------------------------------------

    def _newVersion(self) -> int:
        return max(1, min(_UINT32_MAX, int(self.clock.seconds())))

    def join(self, admittingPeer: bytes | None) -> Deferred[None]:
        if self.phase != "idle":
            return fail(OneHopError(f"cannot join: this node is {self.phase}"))
        self.members.setVersion(self._newVersion())
        if admittingPeer is None:
            self._enterRing()
            return succeed(None)
        self.phase = "joining"
        self._admitting = admittingPeer
        d: Deferred[None] = Deferred.fromCoroutine(self._join(admittingPeer))

        def failed(failure: Failure) -> Failure:
            if self.phase == "joining":
                self.phase = "idle"
            return failure

        return d.addErrback(failed)

    async def _join(self, bootstrap: bytes) -> None:
        attempt = 1
        while True:
            try:
                admitting = await self._joinOnce(bootstrap)
                break
            except Exception as e:
                if self.phase != "joining" or attempt >= JOIN_ATTEMPTS:
                    raise
                self.log.info(
                    "ONE-HOP-RELOAD: join attempt {n} failed ({e}); retrying", n=attempt, e=e
                )
                await self._sleep(attempt * self._rng.uniform(0.5, 1.5))
                attempt += 1
        # The rest of the membership, segment by segment.
        for _ in range(SYNC_ROUNDS):
            if not await self.exchangeDigests(admitting):
                break
        self._enterRing()
        # Peers that joined while this one did are in neither the
        # admitting peer's answer nor the gossip this one heard: one more
        # digest exchange, with another peer, a few gossip rounds later.
        self._arm("catchUp", 3 * self.settings.gossipInterval, self._catchUp)
        # Tell the ring neighbours at once (storage hands over to this
        # node, section 10.5 step 6), each until it confirms; everyone else
        # hears it by gossip.  The join is done when each has answered or
        # its first try failed (the retries go on).
        self._introduced.add(admitting)
        await DeferredList(self._introduceNeighbours())

    async def _joinOnce(self, bootstrap: bytes) -> bytes:
        """Attach to the peer responsible for this Node-ID (its successor)
        through the bootstrap peer, and Join it (section 6.4.2.1)."""
        via = bootstrap if bootstrap in self._connected else None
        admitting = await self.node.attach(addOne(self.nodeId), via=via)
        self._connected.add(admitting)
        request = JoinReq(self.nodeId, encodeVersion(self.members.me.version))
        code, body = await self.node.request(admitting, JoinReq.CODE, request.encode())
        if code != JoinAns.CODE:
            raise OneHopError(f"the JoinReq was answered with code {code:#x}")
        entries = decodeEntries(JoinAns.decode(body).overlay_specific_data, len(self.nodeId))
        if self.phase != "joining":
            raise OneHopError(f"join abandoned: this node is {self.phase}")
        self._learn(entries, spread=False)
        return admitting

    def _sleep(self, seconds: float) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.clock.callLater(seconds, d.callback, None)
        return d

    def _enterRing(self) -> None:
        self.phase = "joined"
        self._spread(self.members.me)
        self._notify()
        self._arm("digest", self.settings.digestInterval, self._digestRound)
        self._armLinks()

    def handleJoin(self, joiningPeer: bytes, data: bytes) -> bytes:
        """Admit ``joiningPeer`` if this node is responsible for its
        Node-ID; the answer is the first page of the membership."""
        if self.phase != "joined":
            raise OneHopError(
                f"cannot admit a peer: this node is {self.phase}", ErrorCode.FORBIDDEN
            )
        if len(joiningPeer) != len(self.nodeId) or joiningPeer == self.nodeId:
            raise OneHopError("the joining Node-ID is not a valid, different Node-ID")
        version = decodeVersion(data)
        if joiningPeer not in self._connected:
            raise OneHopError("a JoinReq must come over a direct connection", ErrorCode.FORBIDDEN)
        if joiningPeer not in self.members and self.members.responsible(joiningPeer) != self.nodeId:
            raise OneHopError(
                f"not responsible for {joiningPeer.hex()}: join through "
                f"{self.members.responsible(joiningPeer).hex()}",
                ErrorCode.FORBIDDEN,
            )
        page = [e for e in self.members.entries() if e.alive][: self.settings.maxEntries]
        # After the answer is on its way: the data the joining peer takes
        # over follows it (section 10.5 step 6).
        self.clock.callLater(0, self._learn, [Entry(joiningPeer, version, True)])
        return encodeEntries(page)

    # -- Update, Leave, RouteQuery (sections 6.4.2.2 to 6.4.2.4) -----------------------

    def handleUpdate(self, sender: bytes, data: bytes) -> bytes:
        update = OneHopUpdate.decode(data, len(self.nodeId))
        if update.type is OneHopUpdateType.DIGEST:
            return self._answerDigests(update.digests)
        if self.phase == "left":
            return b""
        # Changes come from members, or from a peer about itself.
        self._learnFrom(sender, update.entries)
        if update.type is OneHopUpdateType.NEIGHBOURS:
            return self._answerNeighbours(sender, update.entries)
        return b""

    def handleLeave(self, leavingPeer: bytes, data: bytes) -> None:
        version = decodeVersion(data) if data else None
        entry = self.members.entry(leavingPeer)
        if version is None:
            version = entry.version if entry is not None else 0
        self._learn([Entry(leavingPeer, version, False)])

    def handleRouteQuery(
        self, destination: bytes, sendUpdate: bool, data: bytes, requester: bytes | None = None
    ) -> bytes:
        hop = self.nextHop(destination)
        if sendUpdate and requester is not None and self.inRing:
            self.clock.callLater(0, self.sendUpdate, requester)
        return self.nodeId if hop is None else hop

    def sendUpdate(self, peer: bytes) -> Deferred[None]:
        """An Update naming this node (section 6.4.2.3, after an Attach
        with send_update)."""
        return self._sendEvents(peer, [self.members.me])

    def leave(self) -> Deferred[None]:
        if not self.inRing:
            self.phase = "left"
            self._stopTimers()
            return succeed(None)
        self.phase = "leaving"
        self._stopTimers()
        preds, succs = self._neighbourhood()
        linked = self._linkedMembers()
        extra = self._rng.sample(linked, min(self.settings.fanout, len(linked)))
        body = LeaveReq(self.nodeId, encodeVersion(self.members.me.version)).encode()
        sent = [
            self.node.request(peer, LeaveReq.CODE, body)
            for peer in dict.fromkeys((*succs, *preds, *extra))
        ]

        def left(_: object) -> None:
            self.phase = "left"

        return DeferredList(sent, consumeErrors=True).addCallback(left)

    def _stopTimers(self) -> None:
        for call in (*self._timers.values(), *self._retries.values()):
            if call.active():
                call.cancel()
        self._timers.clear()
        self._retries.clear()
