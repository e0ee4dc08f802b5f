"""The connection table: which link reaches which Node-ID, and the
compressed 16-bit destinations that name a link (RFC 6940 section 6.3.2.2).

One :class:`ConnectionTable` per node holds the links that finished their
handshake and whose peer was verified.  It enforces three rules:

* **One active link per Node-ID.**  A second link to the same Node-ID is a
  duplicate and one of the two is closed (:meth:`ConnectionTable.add`):

  - both initiated by the same side (a reconnect): the *newer* link is kept
    and the older closed.  The initiator opened a new connection because it
    gave up on the old one (a restart, or a link that looked dead to it),
    and the old one may be half-open on this side;
  - initiated by opposite sides (both ends connected at the same time): the
    link initiated by the node with the *numerically smaller Node-ID* is
    kept.  Both ends apply the same comparison to the same two links, so
    they keep the same one whatever order the handshakes finish in (a
    "keep the older" rule would let each end keep a different link and
    close both).  Without a local Node-ID (``localNodeId=None``) the newer
    link is kept here too.

* **A limit on the number of links** (``maxLinks``): when the table is full,
  :meth:`~ConnectionTable.add` asks :attr:`~ConnectionTable.victim` (the
  owner's eviction policy) for a link to drop and closes it to make room;
  with no policy, or none to drop, it refuses (and closes) the link to a new
  Node-ID.  Replacing a duplicate does not need room.

* **Compressed destinations** (section 6.3.2.2): "One possible encoding of
  the 16-bit integer version as an opaque identifier is to encode an index
  into a Connection Table ... An implementation MAY use 12 bits for the
  Connection Table index and 3 bits for the generation counter."  Every
  admitted link gets a slot; :meth:`~ConnectionTable.slotFor` encodes it as
  ``0x8000 | generation << 12 | index`` (top bit set, as a 16-bit
  Destination requires), and :meth:`~ConnectionTable.linkForSlot` finds the
  link again only if the generation still matches ("If it does not match,
  the message MUST be silently dropped": it returns None).  Generation
  counters start random ("When a Node first joins the overlay, the
  generation counters SHOULD be initialized to random values"), a slot's
  counter is incremented (mod 8) whenever the slot is given to a new link,
  and slots are handed out in rotation over all 4096 indexes ("used on a
  rotating basis to maximize the time interval between uses of the same
  slot").

The table never opens connections and knows nothing of TLS: it works on any
:class:`~reload.link.interfaces.ILink`, which makes it testable without
sockets.  It closes the links it refuses or replaces by calling their
``close()``; their handlers then see ``linkClosed`` as for any other close,
and :meth:`~ConnectionTable.remove` of a link no longer in the table is a
no-op.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from twisted.logger import Logger

__all__ = [
    "GENERATION_BITS",
    "INDEX_BITS",
    "SLOT_COUNT",
    "Closable",
    "ConnectionTable",
    "TableFull",
]

#: Section 6.3.2.2: "12 bits for the Connection Table index".
INDEX_BITS = 12
#: Section 6.3.2.2: "3 bits for the generation counter".
GENERATION_BITS = 3
#: Number of slot indexes (4096).
SLOT_COUNT = 1 << INDEX_BITS
_INDEX_MASK = SLOT_COUNT - 1
_GENERATION_MASK = (1 << GENERATION_BITS) - 1
#: Section 6.3.2.2: a 16-bit Destination has its first bit set to 1.
_TOP_BIT = 0x8000
#: Default for ``maxLinks``.
DEFAULT_MAX_LINKS = 256


class TableFull(Exception):
    """The connection table holds ``maxLinks`` links already."""


class Closable(Protocol):
    """What the table needs of a link: an ILink's ``close()``."""

    def close(self) -> None: ...


LinkT = TypeVar("LinkT", bound=Closable)


@dataclass(slots=True)
class _Entry(Generic[LinkT]):
    nodeId: bytes
    link: LinkT
    outbound: bool
    index: int


class ConnectionTable(Generic[LinkT]):
    """Node-ID -> link, with a size limit and section 6.3.2.2 slots.

    Generic in the link type (``ConnectionTable[TLSLink]``); any
    ILink provider works.

    ``localNodeId`` is this node's Node-ID, used to break the tie between
    two links opened by both ends at once (see the module docstring).
    ``rng`` provides the random initial generation counters (a seeded
    ``random.Random`` in tests; ``random.SystemRandom`` by default).
    """

    log = Logger()

    def __init__(
        self,
        localNodeId: bytes | None = None,
        maxLinks: int = DEFAULT_MAX_LINKS,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= maxLinks <= SLOT_COUNT:
            raise ValueError(f"maxLinks must be within 1..{SLOT_COUNT}, got {maxLinks}")
        self.localNodeId = localNodeId
        self.maxLinks = maxLinks
        rng = rng if rng is not None else random.SystemRandom()
        self._generations = [rng.randrange(1 << GENERATION_BITS) for _ in range(SLOT_COUNT)]
        self._slots: list[_Entry[LinkT] | None] = [None] * SLOT_COUNT
        # Start the rotation somewhere random too, so that a restarted node
        # does not hand out the slots it used before in the same order.
        self._nextIndex = rng.randrange(SLOT_COUNT)
        self._byNodeId: dict[bytes, _Entry[LinkT]] = {}
        self._byLink: dict[int, _Entry[LinkT]] = {}  # id(link) -> entry; links need not be hashable
        #: Eviction policy: given the newcomer, the link a full table drops
        #: for it (None: refuse the newcomer).
        self.victim: Callable[[LinkT], LinkT | None] | None = None
        #: Links dropped by the eviction policy so far.
        self.evicted = 0

    # -- queries -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._byNodeId)

    def __contains__(self, nodeId: object) -> bool:
        return nodeId in self._byNodeId

    def __iter__(self) -> Iterator[LinkT]:
        return iter([entry.link for entry in self._byNodeId.values()])

    @property
    def full(self) -> bool:
        """True when a link to a new Node-ID would be refused."""
        return len(self._byNodeId) >= self.maxLinks

    def linkFor(self, nodeId: bytes) -> LinkT | None:
        """The active link to ``nodeId``, if any."""
        entry = self._byNodeId.get(nodeId)
        return None if entry is None else entry.link

    def nodeIdOf(self, link: LinkT) -> bytes | None:
        """The Node-ID ``link`` is registered under, or None if it is not in the table."""
        entry = self._byLink.get(id(link))
        return None if entry is None or entry.link is not link else entry.nodeId

    def items(self) -> list[tuple[bytes, LinkT]]:
        """(Node-ID, link) pairs of every active link."""
        return [(nodeId, entry.link) for nodeId, entry in self._byNodeId.items()]

    # -- admission ------------------------------------------------------------

    def add(
        self, nodeId: bytes, link: LinkT, outbound: bool, *, closeLater: list[LinkT] | None = None
    ) -> bool:
        """Make ``link`` the active link to ``nodeId`` if the rules allow.

        ``outbound`` is True when this node initiated the connection.
        Returns True if ``link`` is now in the table (an older duplicate it
        replaced has been closed), False if it was refused and closed: the
        table is full, or an existing link to ``nodeId`` wins by the
        duplicate rule (module docstring).  Adding a link that is already in
        the table under ``nodeId`` returns True and changes nothing.
        With ``closeLater`` the links to close are appended to it instead,
        for the caller to close once it has announced the new link (so that
        the layer above sees a replacement, not a loss and a new peer).
        """
        existing = self._byNodeId.get(nodeId)
        if existing is not None:
            if existing.link is link:
                return True
            if not self._newerWins(nodeId, existing.outbound, outbound):
                self.log.info(
                    "Closing duplicate link to {nodeId}: the existing {direction} link is kept",
                    nodeId=nodeId.hex(),
                    direction="outbound" if existing.outbound else "inbound",
                )
                self._close(link, closeLater)
                return False
            self._drop(existing)
            self._insert(nodeId, link, outbound)
            self.log.info(
                "Replacing the {old} link to {nodeId} with a new {new} one",
                nodeId=nodeId.hex(),
                old="outbound" if existing.outbound else "inbound",
                new="outbound" if outbound else "inbound",
            )
            self._close(existing.link, closeLater)
            return True
        if self.full and self.victim is not None:
            victim = self.victim(link)
            entry = None if victim is None else self._byLink.get(id(victim))
            if entry is not None and entry.link is victim:
                self._drop(entry)
                self.evicted += 1
                self._close(victim, closeLater)
        if self.full:
            self.log.warn(
                "Refusing a link to {nodeId}: the connection table is full ({maxLinks} links)",
                nodeId=nodeId.hex(),
                maxLinks=self.maxLinks,
            )
            self._close(link, closeLater)
            return False
        self._insert(nodeId, link, outbound)
        return True

    @staticmethod
    def _close(link: LinkT, closeLater: list[LinkT] | None) -> None:
        if closeLater is None:
            link.close()
        else:
            closeLater.append(link)

    def _newerWins(self, nodeId: bytes, existingOutbound: bool, newOutbound: bool) -> bool:
        if existingOutbound == newOutbound or self.localNodeId is None:
            return True
        # Opposite directions: keep the link initiated by the smaller Node-ID.
        localIsSmaller = self.localNodeId < nodeId
        # The new link was initiated by us if it is outbound.
        return newOutbound == localIsSmaller

    def remove(self, link: LinkT) -> bytes | None:
        """Forget ``link`` (it closed); returns its Node-ID, or None if it
        was not in the table (refused, replaced, or removed already)."""
        entry = self._byLink.get(id(link))
        if entry is None or entry.link is not link:
            return None
        self._drop(entry)
        return entry.nodeId

    def _insert(self, nodeId: bytes, link: LinkT, outbound: bool) -> None:
        index = self._takeIndex()
        self._generations[index] = (self._generations[index] + 1) & _GENERATION_MASK
        entry = _Entry(nodeId, link, outbound, index)
        self._slots[index] = entry
        self._byNodeId[nodeId] = entry
        self._byLink[id(link)] = entry

    def _drop(self, entry: _Entry[LinkT]) -> None:
        del self._byNodeId[entry.nodeId]
        del self._byLink[id(entry.link)]
        self._slots[entry.index] = None

    def _takeIndex(self) -> int:
        # maxLinks <= SLOT_COUNT, so a free index exists whenever we get here.
        slots = self._slots
        index = self._nextIndex
        while slots[index] is not None:
            index = (index + 1) & _INDEX_MASK
        self._nextIndex = (index + 1) & _INDEX_MASK
        return index

    # -- section 6.3.2.2 compressed destinations ---------------------------------

    def slotFor(self, link: LinkT) -> int:
        """The 16-bit compressed Destination naming ``link``:
        ``0x8000 | generation << 12 | index``.  Raises KeyError if ``link``
        is not in the table."""
        entry = self._byLink.get(id(link))
        if entry is None or entry.link is not link:
            raise KeyError("the link is not in the connection table")
        return _TOP_BIT | self._generations[entry.index] << INDEX_BITS | entry.index

    def linkForSlot(self, value: int) -> LinkT | None:
        """The link a 16-bit compressed Destination names, or None when it
        names no link: top bit clear, out of range, a free slot, or a
        generation that is not the slot's current one (the slot was reused
        since the value was handed out; section 6.3.2.2 says to drop the
        message silently)."""
        if not _TOP_BIT <= value <= 0xFFFF:
            return None
        index = value & _INDEX_MASK
        generation = (value >> INDEX_BITS) & _GENERATION_MASK
        entry = self._slots[index]
        if entry is None or self._generations[index] != generation:
            return None
        return entry.link
