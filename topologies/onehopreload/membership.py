"""The whole membership of a one-hop overlay, without I/O.

Each peer is an :class:`Entry`: its Node-ID, a *version* (the incarnation
the peer chose when it joined, raised when it refutes a false failure
report) and whether it is alive.  Reports of joins, leaves and failures
are entries too, and :meth:`Membership.apply` merges them so that every
peer reaches the same table whatever order it hears them in:

- a higher version wins;
- at one version, *dead* wins over *alive* (a failure report about an
  incarnation is final; the peer itself answers it with a higher version);
- a dead entry (a tombstone) is kept for ``tombstoneTtl`` seconds, so a
  peer that missed the failure learns it from anyone's table, then
  forgotten.

The ring is the sorted list of live Node-IDs (this node's included):
responsibility is the successor rule of RFC 6940 section 10.1 and the
replicas are the two peers after the responsible one (section 10.4).

For convergence the id space is cut into :data:`SEGMENTS` segments (by the
top bits of the Node-ID); :meth:`Membership.digests` hashes the live
entries of each, so two peers find which segments they disagree on with a
message of a few hundred bytes and exchange only those entries.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

__all__ = ["SEGMENTS", "Entry", "Membership", "segmentOf"]

#: Segments of the id space for digests (a power of two, at most 256).
SEGMENTS = 16
_DIGEST_BYTES = 8


def segmentOf(nodeId: bytes) -> int:
    """The segment of ``nodeId``: its top bits."""
    return nodeId[0] * SEGMENTS // 256


@dataclass(frozen=True, slots=True)
class Entry:
    """One peer as the membership knows it (also a membership event)."""

    nodeId: bytes
    version: int
    alive: bool

    def supersedes(self, other: Entry) -> bool:
        """Whether this report is newer than ``other`` about one peer."""
        if self.version != other.version:
            return self.version > other.version
        return other.alive and not self.alive


class Membership:
    """Every peer of the overlay, as one node knows it."""

    def __init__(self, nodeId: bytes, version: int, *, tombstoneTtl: float = 1800.0) -> None:
        self.nodeId = nodeId
        self.length = len(nodeId)
        self.tombstoneTtl = tombstoneTtl
        self._entries: dict[bytes, Entry] = {nodeId: Entry(nodeId, version, True)}
        #: When each tombstone was made (by this node's clock).
        self._buried: dict[bytes, float] = {}
        self._ring: list[bytes] = [nodeId]
        self._digests: list[bytes] | None = None

    # -- the table ------------------------------------------------------------------------

    @property
    def me(self) -> Entry:
        return self._entries[self.nodeId]

    def __len__(self) -> int:
        """Live peers, this node included."""
        return len(self._ring)

    def __contains__(self, nodeId: object) -> bool:
        """Whether ``nodeId`` is a live peer (not this node)."""
        entry = self._entries.get(nodeId) if isinstance(nodeId, bytes) else None
        return entry is not None and entry.alive and nodeId != self.nodeId

    def entry(self, nodeId: bytes) -> Entry | None:
        return self._entries.get(nodeId)

    def entries(self) -> list[Entry]:
        """Every entry, tombstones included, in id order."""
        return [self._entries[n] for n in sorted(self._entries)]

    @property
    def ring(self) -> list[bytes]:
        """The live peers in id order, this node included (do not modify)."""
        return self._ring

    def others(self) -> list[bytes]:
        """The live peers but this node, in id order."""
        return [n for n in self._ring if n != self.nodeId]

    def apply(self, entry: Entry, now: float) -> bool:
        """Merge one report; whether it changed the table.  Reports about
        this node are not applied here (see :meth:`refute`)."""
        if len(entry.nodeId) != self.length or entry.nodeId == self.nodeId:
            return False
        old = self._entries.get(entry.nodeId)
        if old is not None and not entry.supersedes(old):
            return False
        # A tombstone of a peer never known is kept too, so that a stale
        # report of it alive is not taken later.
        self._entries[entry.nodeId] = entry
        wasAlive = old is not None and old.alive
        if entry.alive:
            self._buried.pop(entry.nodeId, None)
            if not wasAlive:
                insort(self._ring, entry.nodeId)
        else:
            self._buried[entry.nodeId] = now
            if wasAlive:
                del self._ring[bisect_left(self._ring, entry.nodeId)]
        self._digests = None
        return True

    def refute(self, report: Entry) -> Entry | None:
        """A report that this node failed or left: if it is about this
        incarnation or a later one, raise this node's version above it and
        return the new entry to spread; else ``None``."""
        me = self.me
        if report.nodeId != self.nodeId or report.alive or report.version < me.version:
            return None
        fresh = Entry(self.nodeId, report.version + 1, True)
        self._entries[self.nodeId] = fresh
        self._digests = None
        return fresh

    def setVersion(self, version: int) -> Entry:
        """This node's incarnation (chosen when it joins)."""
        self._entries[self.nodeId] = Entry(self.nodeId, version, True)
        self._digests = None
        return self.me

    def expire(self, now: float) -> None:
        """Forget tombstones older than ``tombstoneTtl``."""
        for nodeId, since in list(self._buried.items()):
            if now - since >= self.tombstoneTtl:
                del self._buried[nodeId]
                self._entries.pop(nodeId, None)
                self._digests = None

    # -- the ring (RFC 6940 sections 10.1, 10.4) -------------------------------------------

    def ownerIndex(self, resourceId: bytes) -> int:
        """Index in :attr:`ring` of the peer responsible for
        ``resourceId``: the first at or after it, wrapping (section 10.1)."""
        return bisect_left(self._ring, resourceId) % len(self._ring)

    def responsible(self, resourceId: bytes) -> bytes:
        return self._ring[self.ownerIndex(resourceId)]

    def replicas(self, resourceId: bytes, count: int) -> list[bytes]:
        """Section 10.4: the ``count`` peers after the responsible one."""
        ring = self._ring
        owner = self.ownerIndex(resourceId)
        return [ring[(owner + i) % len(ring)] for i in range(1, min(count, len(ring) - 1) + 1)]

    def successors(self, count: int) -> list[bytes]:
        ring = self._ring
        me = bisect_left(ring, self.nodeId)
        return [ring[(me + i) % len(ring)] for i in range(1, min(count, len(ring) - 1) + 1)]

    def predecessors(self, count: int) -> list[bytes]:
        ring = self._ring
        me = bisect_left(ring, self.nodeId)
        return [ring[(me - i) % len(ring)] for i in range(1, min(count, len(ring) - 1) + 1)]

    def closestPreceding(self, target: bytes, usable: set[bytes]) -> bytes | None:
        """The peer in ``usable`` closest before ``target`` going clockwise
        from this node (``target`` itself included): the greedy next hop
        when the responsible peer has no link yet.  Walks back from
        ``target``; ``None`` when no usable peer lies between."""
        ring = self._ring
        n = len(ring)
        me = bisect_left(ring, self.nodeId)
        i = bisect_left(ring, target) % n
        for _ in range(n):
            if i == me:
                return None
            peer = ring[i]
            if peer in usable:
                return peer
            i = (i - 1) % n
        return None

    def closestFollowing(self, target: bytes, usable: set[bytes]) -> bytes | None:
        """The peer in ``usable`` first after ``target`` going clockwise
        (``target`` excluded, this node neither): the next hop when no
        usable peer lies before ``target`` -- the peer after a newcomer is
        the one that admitted it and has a link to it."""
        ring = self._ring
        n = len(ring)
        i = bisect_right(ring, target) % n
        for _ in range(n):
            peer = ring[i]
            if peer != self.nodeId and peer != target and peer in usable:
                return peer
            i = (i + 1) % n
        return None

    # -- digests (convergence) ---------------------------------------------------------------

    def digests(self) -> list[bytes]:
        """One short hash per segment over its live entries and versions."""
        if self._digests is None:
            hashes = [hashlib.blake2b(digest_size=_DIGEST_BYTES) for _ in range(SEGMENTS)]
            for nodeId in self._ring:
                entry = self._entries[nodeId]
                hashes[segmentOf(nodeId)].update(nodeId + entry.version.to_bytes(4, "big"))
            self._digests = [h.digest() for h in hashes]
        return self._digests

    def segmentEntries(self, segments: set[int]) -> list[Entry]:
        """Every entry (tombstones included) in ``segments``, id order."""
        return [self._entries[n] for n in sorted(self._entries) if segmentOf(n) in segments]

    @staticmethod
    def differing(mine: list[bytes], theirs: list[bytes]) -> set[int]:
        """Segments whose digests differ (all when the counts differ)."""
        if len(mine) != len(theirs):
            return set(range(SEGMENTS))
        return {i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b}
