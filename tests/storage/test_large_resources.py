"""Resources larger than max-message-size survive joins and failures (RFC
6940 sections 6.6, 10.4, 10.5 step 6, 10.7.3; issue 17): real nodes of
:class:`reload.testing.MemoryOverlay` under the default max-message-size
(5,000 bytes), an ARRAY and a DICTIONARY of 1,000 values each stored
through the node API, two peers join, then the responsible peer and one
replica fail.  Every acknowledged value is fetched back, by ranges (one
FetchAns of all of them would be far above max-message-size, section
6.3.2's max_response_length), and three peers hold the resource again."""

from __future__ import annotations

import dataclasses

from reload.api.data import Specifier
from reload.config import KindConfig, OverlayConfiguration, defaultConfiguration
from reload.testing import HarnessNode, MemoryOverlay

ARRAY_KIND = 0xF0000101
DICT_KIND = 0xF0000102
COUNT = 1000
#: Values per Store and per Fetch: a Store must fit max-message-size too.
BATCH = 20


def configuration() -> OverlayConfiguration:
    base = defaultConfiguration("large.reload.invalid")
    kinds = (
        KindConfig(
            kindId=ARRAY_KIND,
            dataModel="ARRAY",
            accessControl="NODE-MATCH",
            maxCount=COUNT,
            maxSize=64,
        ),
        KindConfig(
            kindId=DICT_KIND,
            dataModel="DICTIONARY",
            accessControl="NODE-MATCH",
            maxCount=COUNT,
            maxSize=64,
        ),
    )
    return dataclasses.replace(base, kinds=(*base.kinds, *kinds))


def holders(overlay: MemoryOverlay, resourceId: bytes, kindId: int) -> list[HarnessNode]:
    return [n for n in overlay.alive if n.holds(resourceId, kindId)]


Entries = dict[int | bytes | None, bytes]


def fetchAll(
    overlay: MemoryOverlay, node: HarnessNode, resourceId: bytes
) -> tuple[Entries, Entries]:
    """Every value of both Kinds, fetched BATCH at a time through ``node``."""
    array: Entries = {}
    dictionary: Entries = {}
    for start in range(0, COUNT, BATCH):
        [kind] = overlay.wait(
            node.api.fetch(resourceId, [Specifier(ARRAY_KIND, ((start, start + BATCH - 1),))])
        )
        array.update(kind.existing())
        keys = tuple(b"key%04d" % i for i in range(start, start + BATCH))
        [kind] = overlay.wait(node.api.fetch(resourceId, [Specifier(DICT_KIND, keys=keys)]))
        dictionary.update(kind.existing())
    return array, dictionary


def test_a_thousand_values_survive_two_joins_and_two_failures() -> None:
    with MemoryOverlay(4, seed=3, configuration=configuration()) as overlay:
        assert overlay.configuration.maxMessageSize == 5000
        # A writer that is not one of its resource's holders, so killing
        # them leaves it.
        for writer in overlay.nodes:
            resourceId = writer.api.resourceId(writer.nodeId)
            if writer.topology.responsiblePeer(resourceId) != writer.nodeId and (
                writer.nodeId not in writer.topology.replicaSet(resourceId)
            ):
                break
        stored: Entries = {}
        for start in range(0, COUNT, BATCH):
            batch = {i: b"value %d" % i for i in range(start, start + BATCH)}
            overlay.wait(writer.api.store(resourceId, ARRAY_KIND, batch))
            overlay.wait(
                writer.api.store(
                    resourceId, DICT_KIND, {b"key%04d" % i: v for i, v in batch.items()}
                )
            )
            stored.update(batch)
        expectedDict: Entries = {b"key%04d" % i: v for i, v in enumerate(stored.values())}
        # Acknowledged means on three peers (section 10.4).
        for kindId in (ARRAY_KIND, DICT_KIND):
            full = holders(overlay, resourceId, kindId)
            assert len(full) == 3
            assert all(len(n.api.localData(resourceId, kindId)) == COUNT for n in full)

        overlay.addNode()
        overlay.addNode()
        overlay.run(120)
        assert fetchAll(overlay, overlay.nodes[-1], resourceId) == (stored, expectedDict)

        responsible = writer.topology.responsiblePeer(resourceId)
        replica = writer.topology.replicaSet(resourceId)[0]
        for node in list(overlay.alive):
            if node.nodeId in (responsible, replica):
                overlay.failNode(node)
        assert writer.alive and len(overlay.alive) == 4
        overlay.run(400)  # failure detection, handover, one repair sweep

        for node in overlay.alive:
            assert fetchAll(overlay, node, resourceId) == (stored, expectedDict)
        for kindId in (ARRAY_KIND, DICT_KIND):
            full = holders(overlay, resourceId, kindId)
            assert len(full) == 3
            assert all(len(n.api.localData(resourceId, kindId)) == COUNT for n in full)
        for node in overlay.alive:
            assert node.stack.replicator.unplaced == 0
