"""CHORD-RELOAD ring arithmetic and Routing Table, without I/O (RFC 6940 section 10).

Everything here is a pure function of the Node-IDs it is given, so the
routing rules can be tested on thousands of rings without a reactor, and the
driver (:mod:`topologies.chordreload.topology`) only decides *when* to call it.

Identifiers are ``bytes`` (16 for CHORD-RELOAD, section 10.2) read as
unsigned big-endian integers; "all math is modulo 2^128" (section 10.1), or
2^(8 * NodeIdLength) for the longer ids section 6.3.1.1 allows.

The Routing Table is "conceptually the union of the Neighbor Table and the
Finger Table" (section 10.3).  :class:`RoutingTable` keeps exactly that
union: the set of peers this node is connected to and knows to be peers.
The Neighbor Table (the closest peers either side) and the Finger Table (the
first peer in each finger range) are *derived* from that set on demand, so
removing a failed peer automatically replaces it "with the best match it has
from the other peers in its Routing Table" (section 10.7.1) and a finger slot
left without a peer simply reads as invalid (section 10.7.4.2) until
stabilisation finds one.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

__all__ = [
    "DEFAULT_NEIGHBOURS",
    "DEFAULT_REPLICAS",
    "MIN_FINGERS",
    "NODE_ID_LENGTH",
    "IdRange",
    "ResponsibilityChange",
    "RoutingTable",
    "addToId",
    "distance",
    "hashResource",
    "idToInt",
    "inOpen",
    "inOpenClosed",
    "intToId",
]

#: Section 10.2: 128-bit Node-IDs and Resource-IDs.
NODE_ID_LENGTH = 16
#: Section 10.7: "at least three predecessors and three successors".
DEFAULT_NEIGHBOURS = 3
#: Section 10.4: data is replicated on "its successor ... and to that peer's
#: successor".
DEFAULT_REPLICAS = 2
#: Section 10.7.4.3: grow the Finger Table to at least 16 entries.
MIN_FINGERS = 16


# -- identifiers on the ring ---------------------------------------------------


def idToInt(nodeId: bytes) -> int:
    """An id as the unsigned integer the ring arithmetic works on."""
    return int.from_bytes(nodeId, "big")


def intToId(value: int, length: int = NODE_ID_LENGTH) -> bytes:
    """The ``length``-byte id of ``value`` modulo 2^(8 * length)."""
    return (value % (1 << (8 * length))).to_bytes(length, "big")


def addToId(nodeId: bytes, offset: int) -> bytes:
    """``nodeId + offset`` on the ring, e.g. n+1 of section 10.5 or the
    finger targets n + 2^(128-i)."""
    return intToId(idToInt(nodeId) + offset, len(nodeId))


def distance(a: bytes, b: bytes) -> int:
    """Clockwise distance from ``a`` to ``b``: how far one walks in the
    direction of increasing ids, wrapping at 2^k (section 10.1)."""
    if len(a) != len(b):
        raise ValueError(f"ids of different lengths ({len(a)} and {len(b)} bytes)")
    return (idToInt(b) - idToInt(a)) % (1 << (8 * len(a)))


def inOpenClosed(x: bytes, a: bytes, b: bytes) -> bool:
    """Whether ``x`` lies in (a, b] going clockwise.

    (a, a] is the whole ring: that is the range of a lone node, which is its
    own predecessor and responsible for everything (section 10.1).
    """
    if a == b:
        return True
    return 0 < distance(a, x) <= distance(a, b)


def inOpen(x: bytes, a: bytes, b: bytes) -> bool:
    """Whether ``x`` lies in (a, b) going clockwise; (a, a) is every id but
    ``a``."""
    if a == b:
        return x != a
    return 0 < distance(a, x) < distance(a, b)


def hashResource(name: bytes, length: int = NODE_ID_LENGTH) -> bytes:
    """Section 10.2: SHA-1 of the resource name, truncated to its most
    significant 128 bits (``length`` bytes)."""
    return hashlib.sha1(name).digest()[:length]


@dataclass(frozen=True, slots=True)
class IdRange:
    """The ids in (start, end], clockwise; start == end is the whole ring.

    The shape of section 10.1's responsibility rule, so a range a node is
    responsible for is ``IdRange(predecessor, self)``.
    """

    start: bytes
    end: bytes

    def __contains__(self, x: object) -> bool:
        return isinstance(x, bytes) and inOpenClosed(x, self.start, self.end)


@dataclass(frozen=True, slots=True)
class ResponsibilityChange:
    """What a Routing Table change did to the data this node must hold.

    ``moved`` is the range between the old and the new first predecessor:
    ids this node has just stopped (or started) being responsible for, so
    storage hands them to the new responsible peer (section 10.5 step 6) or
    takes them over.  ``replicas`` is the whole range this node is now
    responsible for, given when its replica set (the first two successors,
    section 10.4) changed, so storage Stores that data on any new replica
    (section 10.7.3).
    """

    moved: IdRange | None
    replicas: IdRange | None
    #: Between the old and the new start of the range this node keeps
    #: replicas of (its third predecessor, section 10.7.3): ids whose
    #: replicas it no longer keeps (or newly keeps).
    held: IdRange | None = None

    @property
    def ranges(self) -> tuple[IdRange, ...]:
        """The changed ranges, as :meth:`ITopology.onResponsibilityChange`
        callbacks receive them."""
        return tuple(r for r in (self.moved, self.replicas, self.held) if r is not None)


ChangeCallback = Callable[[ResponsibilityChange], None]


# -- the Routing Table ---------------------------------------------------------


class RoutingTable:
    """One node's view of the ring: its Routing Table and the routing rules.

    Peers are added when a connection to them is up and they are known to be
    peers, and removed when that stops being true; the caller (the driver)
    decides both.  Internally peers are kept sorted by clockwise distance
    from this node, which this node's id never changes, so successors are
    the front of the list, predecessors the back, and each finger range a
    slice.
    """

    def __init__(
        self,
        nodeId: bytes,
        *,
        neighbours: int = DEFAULT_NEIGHBOURS,
        replicas: int = DEFAULT_REPLICAS,
        minFingers: int = MIN_FINGERS,
    ) -> None:
        if not nodeId:
            raise ValueError("a Node-ID has at least one byte")
        if neighbours < 1 or replicas < 0 or minFingers < 1:
            raise ValueError("neighbours and minFingers must be positive, replicas not negative")
        self.nodeId = nodeId
        self.length = len(nodeId)
        #: k of section 10.1: ids are k-bit numbers.
        self.bits = 8 * self.length
        self.neighbourCount = neighbours
        self.replicaCount = replicas
        #: Section 10.7.4.3: grow to 16, and up to 128 entries (k for longer ids).
        self.minFingers = min(minFingers, self.bits)
        self._base = idToInt(nodeId)
        self._modulus = 1 << self.bits
        self._dists: list[int] = []
        self._peers: dict[int, bytes] = {}
        self._callbacks: list[ChangeCallback] = []

    # -- membership ---------------------------------------------------------

    def _dist(self, x: bytes) -> int:
        if len(x) != self.length:
            raise ValueError(f"an id on this ring is {self.length} bytes, not {len(x)}")
        return (idToInt(x) - self._base) % self._modulus

    def __contains__(self, peer: object) -> bool:
        return (
            isinstance(peer, bytes) and len(peer) == self.length and self._dist(peer) in self._peers
        )

    def __len__(self) -> int:
        return len(self._dists)

    @property
    def peers(self) -> frozenset[bytes]:
        """Every peer in the Routing Table."""
        return frozenset(self._peers.values())

    def addPeer(self, peer: bytes) -> bool:
        """Enter ``peer`` in the Routing Table (section 10.5 step 4, 10.7.3);
        ``False`` if it was already there.  A node never enters itself
        (section 10.7.3)."""
        d = self._dist(peer)
        if d == 0:
            raise ValueError("a node does not enter itself in its Routing Table")
        if d in self._peers:
            return False
        before = self._snapshot()
        insort(self._dists, d)
        self._peers[d] = peer
        self._notify(before)
        return True

    def removePeer(self, peer: bytes) -> bool:
        """Remove ``peer`` everywhere it appears (sections 10.7.1, 10.7.2);
        ``False`` if it was not there."""
        d = self._dist(peer)
        if d not in self._peers:
            return False
        before = self._snapshot()
        del self._peers[d]
        del self._dists[bisect_left(self._dists, d)]
        self._notify(before)
        return True

    # -- Neighbor Table (section 10.1, 10.7) --------------------------------

    @property
    def successors(self) -> list[bytes]:
        """The successor set, closest first."""
        return [self._peers[d] for d in self._dists[: self.neighbourCount]]

    @property
    def predecessors(self) -> list[bytes]:
        """The predecessor set, closest first.  In a ring of fewer than
        2 * neighbourCount + 1 nodes it overlaps the successors."""
        return [self._peers[d] for d in reversed(self._dists[-self.neighbourCount :])]

    def neighbourSet(self) -> set[bytes]:
        """The Neighbor Table as a set: predecessors and successors."""
        return set(self.successors) | set(self.predecessors)

    def wouldImproveNeighbours(self, candidate: bytes) -> bool:
        """Section 10.7.3: would ``candidate`` enter the Neighbor Table, being
        closer than an entry in it (or filling a set not yet full)?"""
        d = self._dist(candidate)
        if d == 0 or d in self._peers:
            return False
        n = self.neighbourCount
        if len(self._dists) < n:
            return True
        return d < self._dists[n - 1] or d > self._dists[-n]

    # -- responsibility and replicas (sections 10.1, 10.4) -------------------

    def responsibleRange(self) -> IdRange:
        """(predecessor, self]; the whole ring for a lone node."""
        preds = self._dists
        start = self._peers[preds[-1]] if preds else self.nodeId
        return IdRange(start, self.nodeId)

    def isResponsible(self, resourceId: bytes) -> bool:
        """Section 10.1: k in (p, x] for the first predecessor p.  Measured
        clockwise from this node x, p is the farthest peer, so k is in
        (p, x] when it is x itself or farther than p (every Store and
        Fetch asks, so no IdRange is built)."""
        d = self._dist(resourceId)
        dists = self._dists
        return d == 0 or not dists or d > dists[-1]

    def responsiblePeer(self, resourceId: bytes) -> bytes:
        """The node this table believes responsible for ``resourceId``: the
        first of self and its peers at or after it.  Exact within the
        successor span, a guess beyond it."""
        d = self._dist(resourceId)
        if d == 0 or not self._dists:
            return self.nodeId
        i = bisect_left(self._dists, d)
        return self.nodeId if i == len(self._dists) else self._peers[self._dists[i]]

    def replicaSet(self, resourceId: bytes) -> list[bytes]:
        """Section 10.4: the two peers after the one responsible for
        ``resourceId``; for ids this node is responsible for, its first two
        successors."""
        # The ring clockwise from this node's first successor, ending with
        # this node: position i < len(dists) is the peer at distance
        # dists[i], position len(dists) this node.
        dists, peers = self._dists, self._peers
        size = len(dists) + 1
        d = self._dist(resourceId)
        # The owner's position, as responsiblePeer finds it.
        owner = len(dists) if d == 0 else bisect_left(dists, d)
        chosen = []
        for j in range(1, min(self.replicaCount, size - 1) + 1):
            i = (owner + j) % size
            chosen.append(self.nodeId if i == len(dists) else peers[dists[i]])
        return chosen

    def holdsReplica(self, resourceId: bytes) -> bool:
        """Whether this node is in the replica set of ``resourceId``: one of
        its first two predecessors is responsible for it.  Section 10.7.3: a
        node SHOULD delete data once "there are three predecessors between x
        and R"."""
        if self.isResponsible(resourceId) or not self._dists:
            return False
        preds = [self._peers[d] for d in reversed(self._dists)]
        if len(preds) <= self.replicaCount:
            return True
        return resourceId in IdRange(preds[self.replicaCount], preds[0])

    # -- Finger Table (sections 10.3, 10.5, 10.7.4.2, 10.7.4.3) ---------------

    def fingerRange(self, i: int) -> tuple[int, int]:
        """Distances [lo, hi) of finger ``i`` (1-based, section 10.5): a peer
        is valid for entry i when in [x+2^(k-i), x+2^(k-(i-1))-1]
        (section 10.7.4.2)."""
        if not 1 <= i <= self.bits:
            raise ValueError(f"finger index {i} outside 1..{self.bits}")
        return 1 << (self.bits - i), 1 << (self.bits - i + 1)

    def fingerTarget(self, i: int) -> bytes:
        """Section 10.5: "JN MUST send an Attach to peer n+2^(128-i)"."""
        return intToId(self._base + self.fingerRange(i)[0], self.length)

    def randomFingerTarget(self, i: int, rng: Random) -> bytes:
        """Section 10.7.4.2: a Node-ID "selected randomly from that range",
        for stabilisation searches."""
        lo, hi = self.fingerRange(i)
        return intToId(self._base + lo + rng.randrange(hi - lo), self.length)

    def fingerSlot(self, peer: bytes) -> int:
        """The finger index whose range ``peer`` falls in (1..k)."""
        d = self._dist(peer)
        if d == 0:
            raise ValueError("a node is not in its own Finger Table")
        return self.bits - d.bit_length() + 1

    @property
    def fingerTableSize(self) -> int:
        """Section 10.7.4.3: at least 16 entries, and large enough "to
        contain at least the final successor in the peer's Neighbor Table",
        at most k (128)."""
        if not self._dists:
            return self.minFingers
        last = self._dists[min(self.neighbourCount, len(self._dists)) - 1]
        needed = self.bits - last.bit_length() + 1
        return min(self.bits, max(self.minFingers, needed))

    def finger(self, i: int) -> bytes | None:
        """Entry ``i``: the first peer in its range, or ``None`` when the
        entry is invalid (no peer known there)."""
        lo, hi = self.fingerRange(i)
        j = bisect_left(self._dists, lo)
        if j < len(self._dists) and self._dists[j] < hi:
            return self._peers[self._dists[j]]
        return None

    def fingers(self) -> list[bytes]:
        """The valid Finger Table entries, without repeats, "in numerically
        ascending order" as a full Update carries them (section 10.7)."""
        found = {self.finger(i) for i in range(1, self.fingerTableSize + 1)}
        return sorted((f for f in found if f is not None), key=idToInt)

    def invalidFingers(self) -> list[int]:
        """Indices of invalid entries worth searching (section 10.7.4.2).

        Ranges that lie wholly inside the successor span are left out: every
        peer there is already known as a successor, so a search would only
        cost traffic (section 10.7.4.3, "no additional traffic").
        """
        succs = self._dists[: self.neighbourCount]
        span = succs[-1] if len(succs) == self.neighbourCount else 0
        out = []
        for i in range(1, self.fingerTableSize + 1):
            _, hi = self.fingerRange(i)
            if hi - 1 <= span:
                continue
            if self.finger(i) is None:
                out.append(i)
        return out

    def fingerWouldFill(self, candidate: bytes) -> int | None:
        """The invalid finger entry ``candidate`` would make valid, if any
        (section 10.7.4.2, alternative 2)."""
        d = self._dist(candidate)
        if d == 0 or d in self._peers:
            return None
        i = self.fingerSlot(candidate)
        if i > self.fingerTableSize or self.finger(i) is not None:
            return None
        return i

    # -- routing (section 10.3) ----------------------------------------------

    def nextHop(self, destination: bytes) -> bytes | None:
        """Section 10.3: ``None`` when this node is responsible, else the
        peer to forward to."""
        if self.isResponsible(destination):
            return None
        return self.forwardHop(destination)

    def forwardHop(self, destination: bytes) -> bytes | None:
        """The routing rule of section 10.3 without the responsibility test,
        for a node that is not (yet) in the ring (section 10.5): the peer
        with Node-ID ``destination`` if known, else "the peer in the Routing
        Table that has the largest Node-ID that is in the interval between
        the peer and k", else "the smallest Node-ID that is greater than k"
        (which, the table being a ring, is the first successor)."""
        d = self._dist(destination)
        if not self._dists or d == 0:
            return None
        peer = self._peers.get(d)
        if peer is not None:
            return peer
        j = bisect_left(self._dists, d)
        if j == 0:
            # k in (self, successor]: the successor is responsible.
            return self._peers[self._dists[0]]
        return self._peers[self._dists[j - 1]]

    # -- status -----------------------------------------------------------------

    def neighbours(self) -> dict[str, list[bytes]]:
        """Routing state by role, for status pages."""
        return {
            "predecessors": self.predecessors,
            "successors": self.successors,
            "fingers": self.fingers(),
        }

    # -- change notification ---------------------------------------------------

    def onResponsibilityChange(self, callback: ChangeCallback) -> None:
        """Call ``callback`` with a :class:`ResponsibilityChange` when the
        first predecessor or the replica set changes."""
        self._callbacks.append(callback)

    def _heldStart(self) -> bytes | None:
        """The start of the ids this node keeps replicas of: its
        (replicaCount + 1)-th predecessor; None in a ring too small to
        have one (it then keeps everything)."""
        if len(self._dists) <= self.replicaCount:
            return None
        return self._peers[self._dists[-1 - self.replicaCount]]

    def _snapshot(self) -> tuple[bytes, tuple[bytes, ...], bytes | None]:
        return (
            self.responsibleRange().start,
            tuple(self.successors[: self.replicaCount]),
            self._heldStart(),
        )

    def _between(self, old: bytes, new: bytes) -> IdRange:
        """The ids between two starts of a range ending at this node:
        (old, new] when it shrank (new lies between old and us), else
        (new, old]."""
        return IdRange(old, new) if inOpen(new, old, self.nodeId) else IdRange(new, old)

    def _notify(self, before: tuple[bytes, tuple[bytes, ...], bytes | None]) -> None:
        oldPred, oldReplicas, oldHeld = before
        newPred, newReplicas, newHeld = self._snapshot()
        moved = self._between(oldPred, newPred) if oldPred != newPred else None
        replicas = self.responsibleRange() if oldReplicas != newReplicas else None
        held = None
        if oldHeld is not None and newHeld is not None and oldHeld != newHeld:
            held = self._between(oldHeld, newHeld)
        if moved is None and replicas is None and held is None:
            return
        change = ResponsibilityChange(moved, replicas, held)
        for callback in list(self._callbacks):
            callback(change)
