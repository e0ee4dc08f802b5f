"""The connection table (RFC 6940 section 6.3.2.2 compressed destinations),
its link limit and its duplicate rule; no sockets."""

from __future__ import annotations

import random

import pytest

from reload.link.table import GENERATION_BITS, INDEX_BITS, SLOT_COUNT, ConnectionTable


class FakeLink:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = 0

    def close(self) -> None:
        self.closed += 1

    def __repr__(self) -> str:
        return f"<FakeLink {self.name}>"


LOW = bytes(15) + b"\x01"
HIGH = b"\xff" * 16
X = b"\x42" * 16


def table(
    maxLinks: int = 8, localNodeId: bytes | None = LOW, seed: int = 1
) -> ConnectionTable[FakeLink]:
    return ConnectionTable(localNodeId, maxLinks, random.Random(seed))


def test_addAndLookUpByNodeId() -> None:
    t = table()
    link = FakeLink("a")
    assert t.add(X, link, outbound=True)
    assert t.linkFor(X) is link and X in t and len(t) == 1
    assert t.nodeIdOf(link) == X
    assert list(t) == [link] and t.items() == [(X, link)]
    assert t.add(X, link, outbound=True)  # the same link again changes nothing
    assert len(t) == 1 and link.closed == 0
    assert t.remove(link) == X
    assert t.linkFor(X) is None and len(t) == 0
    assert t.remove(link) is None


def test_limitRefusesAndClosesALinkToANewNodeId() -> None:
    t = table(maxLinks=2)
    links = [FakeLink(str(i)) for i in range(3)]
    assert t.add(b"\x01" * 16, links[0], True)
    assert t.add(b"\x02" * 16, links[1], False)
    assert t.full
    assert not t.add(b"\x03" * 16, links[2], False)
    assert links[2].closed == 1
    assert b"\x03" * 16 not in t and len(t) == 2
    # A replacement for a Node-ID already present needs no room.
    newer = FakeLink("newer")
    assert t.add(b"\x02" * 16, newer, False)
    assert links[1].closed == 1 and t.linkFor(b"\x02" * 16) is newer
    # Room again after a removal.
    t.remove(links[0])
    assert t.add(b"\x03" * 16, links[2], False)


@pytest.mark.parametrize("outbound", [True, False])
def test_duplicateFromTheSameSideKeepsTheNewerLink(outbound: bool) -> None:
    """A reconnect (same initiator) supersedes the older link."""
    t = table()
    old, new = FakeLink("old"), FakeLink("new")
    assert t.add(X, old, outbound)
    assert t.add(X, new, outbound)
    assert t.linkFor(X) is new
    assert old.closed == 1 and new.closed == 0
    assert t.remove(old) is None  # its linkClosed does not disturb the new entry
    assert t.linkFor(X) is new


def test_closeLaterHandsTheReplacedLinkToTheCaller() -> None:
    """The listener announces a replacement before closing the link it
    replaces, so the layers above never see the peer lost in between."""
    t = table()
    old, new = FakeLink("old"), FakeLink("new")
    assert t.add(X, old, True)
    toClose: list[FakeLink] = []
    assert t.add(X, new, True, closeLater=toClose)
    assert toClose == [old] and old.closed == 0
    assert t.linkFor(X) is new


def test_simultaneousOpenBothEndsKeepTheLinkInitiatedByTheSmallerNodeId() -> None:
    """Both ends connect at once: whatever order their handshakes finish,
    both keep the connection opened by the smaller Node-ID (LOW)."""
    for lowFirst in (True, False):
        for highFirst in (True, False):
            low, high = table(localNodeId=LOW), table(localNodeId=HIGH)
            fromLow, fromHigh = "low->high", "high->low"  # the two TCP connections
            lowEnds = {fromLow: FakeLink(fromLow), fromHigh: FakeLink(fromHigh)}
            highEnds = {fromLow: FakeLink(fromLow), fromHigh: FakeLink(fromHigh)}
            order = [fromLow, fromHigh] if lowFirst else [fromHigh, fromLow]
            for conn in order:
                low.add(HIGH, lowEnds[conn], outbound=conn == fromLow)
            order = [fromLow, fromHigh] if highFirst else [fromHigh, fromLow]
            for conn in order:
                high.add(LOW, highEnds[conn], outbound=conn == fromHigh)
            assert low.linkFor(HIGH) is lowEnds[fromLow]
            assert high.linkFor(LOW) is highEnds[fromLow]
            assert lowEnds[fromHigh].closed == 1 and highEnds[fromHigh].closed == 1
            assert lowEnds[fromLow].closed == 0 and highEnds[fromLow].closed == 0


def test_withoutALocalNodeIdTheNewerLinkWins() -> None:
    t = table(localNodeId=None)
    old, new = FakeLink("old"), FakeLink("new")
    t.add(X, old, outbound=True)
    t.add(X, new, outbound=False)
    assert t.linkFor(X) is new and old.closed == 1


def test_slotValueHasTopBitIndexAndGeneration() -> None:
    """Section 6.3.2.2: a 16-bit destination with the first bit set; 12
    bits of index and 3 of generation."""
    t = table()
    link = FakeLink("a")
    t.add(X, link, True)
    value = t.slotFor(link)
    assert 0x8000 <= value <= 0xFFFF
    assert value >> 15 == 1
    index = value & (SLOT_COUNT - 1)
    generation = (value >> INDEX_BITS) & ((1 << GENERATION_BITS) - 1)
    assert 0 <= index < 4096 and 0 <= generation < 8
    assert t.linkForSlot(value) is link


def test_linkForSlotChecksTheGeneration() -> None:
    """Section 6.3.2.2: a value whose generation is not the slot's current
    one names no link (the message MUST be silently dropped)."""
    t = table()
    link = FakeLink("a")
    t.add(X, link, True)
    value = t.slotFor(link)
    generation = (value >> INDEX_BITS) & 7
    for other in range(8):
        if other != generation:
            wrong = 0x8000 | other << INDEX_BITS | (value & 0xFFF)
            assert t.linkForSlot(wrong) is None
    assert t.linkForSlot(value & 0x7FFF) is None  # top bit clear: not a compressed id
    assert t.linkForSlot(0x10000 | value) is None
    assert t.linkForSlot(-1) is None
    t.remove(link)
    assert t.linkForSlot(value) is None  # a freed slot
    with pytest.raises(KeyError):
        t.slotFor(link)


def test_reusedSlotGetsTheNextGenerationAndOldValuesStopMatching() -> None:
    """A slot given to a new connection increments its generation (with
    wrapping); a value handed out for the old connection no longer matches."""
    t = table(maxLinks=1)
    first = FakeLink("first")
    t.add(X, first, True)
    values = [t.slotFor(first)]
    previous = first
    # maxLinks=1 and rotation over 4096 indexes: each new link takes the next
    # index; come back to the first index after 4096 connections.
    for i in range(SLOT_COUNT):
        t.remove(previous)
        previous = FakeLink(str(i))
        t.add(X, previous, True)
        values.append(t.slotFor(previous))
    indexes = [v & 0xFFF for v in values]
    assert len(set(indexes[:SLOT_COUNT])) == SLOT_COUNT  # rotation: no index reused early
    assert indexes[SLOT_COUNT] == indexes[0]
    g0 = (values[0] >> INDEX_BITS) & 7
    gN = (values[SLOT_COUNT] >> INDEX_BITS) & 7
    assert gN == (g0 + 1) % 8
    assert t.linkForSlot(values[0]) is None
    assert t.linkForSlot(values[SLOT_COUNT]) is previous


def test_generationCountersStartRandom() -> None:
    """Section 6.3.2.2: generation counters SHOULD start at random values."""
    firsts = set()
    for seed in range(20):
        t = table(seed=seed)
        link = FakeLink("a")
        t.add(X, link, True)
        firsts.add(t.slotFor(link))
    assert len(firsts) > 10


def test_replacedDuplicateGetsANewSlot() -> None:
    t = table()
    old, new = FakeLink("old"), FakeLink("new")
    t.add(X, old, True)
    oldValue = t.slotFor(old)
    t.add(X, new, True)
    assert t.slotFor(new) != oldValue
    assert t.linkForSlot(oldValue) is None


def test_maxLinksMustFitTheIndexSpace() -> None:
    with pytest.raises(ValueError):
        ConnectionTable(None, 0)
    with pytest.raises(ValueError):
        ConnectionTable(None, SLOT_COUNT + 1)
    ConnectionTable(None, SLOT_COUNT)
