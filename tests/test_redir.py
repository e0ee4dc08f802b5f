"""The REDIR usage (RFC 7374, ``usages/redir.py``): the interval arithmetic
and walks against the RFC's worked examples (section 7), the record codec
(section 4.1), NODE-ID-MATCH (section 5), options and bad input."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from reload.api.data import Destination
from reload.config import defaultConfiguration
from reload.interfaces import AccessRequest, DataModel
from usages.redir import (
    DEFAULT_LIFETIME,
    BadNamespace,
    NodeIdMatch,
    RedirKind,
    RedirServiceProvider,
    aloneInInterval,
    closestSuccessor,
    intervalIndex,
    isExtreme,
    lookupWalk,
    maxLevel,
    namespaceBytes,
    nodeIntervals,
    redir,
    registerWalk,
    resourceName,
    treeNodeOf,
)

# -- section 3 and 7: the interval arithmetic on the RFC's 4-bit, b = 2 tree --------

BITS, B = 4, 2


def test_tree_node_intervals_are_those_of_figure_3() -> None:
    """Section 3, Figure 3: identifier space 16, branching factor 2."""
    assert nodeIntervals(0, 0, B, BITS) == [(0, 7), (8, 15)]
    assert nodeIntervals(1, 0, B, BITS) == [(0, 3), (4, 7)]
    assert nodeIntervals(1, 1, B, BITS) == [(8, 11), (12, 15)]
    assert nodeIntervals(2, 3, B, BITS) == [(12, 13), (14, 15)]


def test_key_2_at_level_2_is_the_second_interval_of_the_first_tree_node() -> None:
    """Section 7.1: "key 2 is associated with the second interval of the
    first tree node" at level 2."""
    assert intervalIndex(2, 2, B, BITS) == 1
    assert treeNodeOf(2, 2, B, BITS) == 0
    # Section 7.2: I(2,5) "maps to the second tree node from the left at
    # level 2", the third interval; I(3,5) is in the third tree node.
    assert intervalIndex(5, 2, B, BITS) == 2 and treeNodeOf(5, 2, B, BITS) == 1
    assert treeNodeOf(5, 3, B, BITS) == 2


def test_every_key_is_in_exactly_one_interval_of_its_tree_node_with_b_10() -> None:
    bits = 128
    for key in (0, 1, 2**127, 2**128 - 1, 0x0123456789ABCDEF << 64):
        for level in range(maxLevel(10, bits) + 1):
            node = treeNodeOf(key, level, 10, bits)
            inside = [
                i
                for i, (lo, hi) in enumerate(nodeIntervals(level, node, 10, bits))
                if lo <= key <= hi
            ]
            assert inside == [intervalIndex(key, level, 10, bits) % 10]


def test_the_deepest_level_keeps_node_numbers_in_a_uint16() -> None:
    """Section 4.1 ``uint16 node``: 10^4 tree nodes at level 4, 10^5 would not fit."""
    assert maxLevel(10, 128) == 4
    assert maxLevel(2, 4) == 3  # the examples' tree, Figure 1
    assert maxLevel(2, 128) == 16  # tree nodes 0 to 65535


def test_extremes_and_loneliness_compare_within_the_interval() -> None:
    """Sections 4.3 and 4.5: "within the interval, not within the entire
    tree node"."""
    assert isExtreme(7, [2, 3, 4], 1, B, BITS)  # I(1,7) = [4,7]: highest
    assert not isExtreme(5, [4, 7], 1, B, BITS)
    assert aloneInInterval(3, [2], 3, B, BITS)  # I(3,3) = [3,3]
    assert not aloneInInterval(3, [2], 2, B, BITS)  # I(2,3) = [2,3]


def test_h_namespace_level_node_is_the_namespace_and_two_uint16() -> None:
    assert resourceName(b"turn-server", 2, 5) == b"turn-server\x00\x02\x00\x05"
    assert resourceName(b"voice-mail", 0, 0) == b"voice-mail\x00\x00\x00\x00"
    with pytest.raises(ValueError):
        resourceName(b"x", 0, 0x10000)


class MemoryTree:
    """A ReDiR tree in a dict, for the walks without an overlay."""

    def __init__(self, bits: int = BITS) -> None:
        self.bits = bits
        self.nodes: dict[tuple[int, int], dict[int, RedirServiceProvider]] = {}
        self.fetched: list[tuple[int, int]] = []

    def fetch(self, level: int, node: int) -> Deferred[Mapping[int, RedirServiceProvider]]:
        self.fetched.append((level, node))
        return succeed(dict(self.nodes.get((level, node), {})))

    def storer(self, key: int) -> Any:
        def store(level: int, node: int) -> Deferred[None]:
            record = RedirServiceProvider(b"ns", level, node)
            self.nodes.setdefault((level, node), {})[key] = record
            return succeed(None)

        return store

    def register(self, key: int, start: int = 2) -> Any:
        walk = registerWalk(key, start, B, self.bits, self.fetch, self.storer(key))
        return _result(Deferred.fromCoroutine(walk))

    def contents(self) -> dict[tuple[int, int], list[int]]:
        return {where: sorted(keys) for where, keys in sorted(self.nodes.items())}


def _result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the walk did not finish synchronously"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def test_registrations_of_2_3_7_4_build_the_tree_of_figure_4() -> None:
    """Section 7.1, Figure 4."""
    tree = MemoryTree()
    two = tree.register(2)
    # Up to the root through an empty tree, down no further than level 2.
    assert two.stored == ((2, 0), (1, 0), (0, 0)) and two.endLevel == 2
    three = tree.register(3)
    # Levels 2, 1, 0, then "continues down the tree to level 3".
    assert three.stored == ((2, 0), (1, 0), (0, 0), (3, 1)) and three.endLevel == 3
    seven = tree.register(7)
    assert seven.stored == ((2, 1), (1, 0), (0, 0)) and seven.endLevel == 2
    four = tree.register(4)
    assert four.stored == ((2, 1), (1, 0), (0, 0)) and four.endLevel == 2
    assert tree.contents() == {
        (0, 0): [2, 3, 4, 7],
        (1, 0): [2, 3, 4, 7],
        (2, 0): [2, 3],
        (2, 1): [4, 7],
        (3, 1): [3],
    }
    # One Fetch per level visited (the starting level's is reused downwards).
    assert [r.fetches for r in (two, three, seven, four)] == [3, 4, 3, 3]


def _lookup(tree: MemoryTree, key: int, start: int) -> Any:
    return _result(Deferred.fromCoroutine(lookupWalk(key, start, B, tree.bits, tree.fetch)))


def _figure4() -> MemoryTree:
    tree = MemoryTree()
    for key in (2, 3, 7, 4):
        tree.register(key)
    tree.fetched.clear()
    return tree


def test_a_lookup_from_5_ends_at_level_2_with_7() -> None:
    """Section 7.2: one Fetch from level 2; two from level 3 (an empty tree
    node, Condition 1, then level 2)."""
    tree = _figure4()
    provider, _, level, fetches, fromCache = _lookup(tree, 5, 2)
    assert (provider, level, fetches, fromCache) == (7, 2, 1, False)
    assert tree.fetched == [(2, 1)]
    tree.fetched.clear()
    provider, _, level, fetches, _ = _lookup(tree, 5, 3)
    assert (provider, level, fetches) == (7, 2, 2)
    assert tree.fetched == [(3, 2), (2, 1)]


@pytest.mark.parametrize("start", [0, 1, 2, 3])
def test_every_key_finds_its_closest_successor_in_figure_4(start: int) -> None:
    tree = _figure4()
    for key in range(16):
        truth = closestSuccessor(key, (2, 3, 4, 7))
        assert truth == min((p for p in (2, 3, 4, 7) if p > key), default=2)
        assert _lookup(tree, key, start)[0] == truth, key


def test_a_lookup_answers_a_closer_provider_it_saw_above_before_the_refresh() -> None:
    """Section 4.3's tree before a refresh: 13 registered alone in its
    level-2 interval [8, 15] and stopped there; 15 and 9 came later and
    walked down to level 3, where 13 is not.  A lookup of 10 goes down
    (Condition 2) and finds 9 and 15 in the level-3 node; the RFC's
    Condition 3 would answer 15, but 13, fetched on the way, is the closest
    successor (section 4.5's temporary cache)."""
    tree = MemoryTree(bits=6)
    for key in (13, 15, 9):
        tree.register(key, start=2)
    contents = tree.contents()
    assert contents[(2, 0)] == [9, 13, 15]
    assert contents[(3, 1)] == [9, 15]  # 13 is not at level 3
    tree.fetched.clear()
    provider, _, level, fetches, fromCache = _lookup(tree, 10, 2)
    assert (provider, level, fetches, fromCache) == (13, 3, 2, True)
    assert tree.fetched == [(2, 0), (3, 1)]


def test_an_empty_tree_has_no_provider() -> None:
    tree = MemoryTree()
    assert _lookup(tree, 5, 2) is None
    assert tree.fetched == [(2, 1), (1, 0), (0, 0)]


# -- section 4.1: the record ---------------------------------------------------------

NODE = bytes(range(16))


def test_the_record_round_trips_with_its_exact_bytes() -> None:
    record = RedirServiceProvider.forProvider(NODE, b"turn-server", 2, 17)
    data = record.encode()
    assert data == (
        b"\x00"  # type none(0)
        + b"\x00\x12"  # destination_list: 18 bytes
        + b"\x01\x10"  # Destination: node, 16 bytes
        + NODE
        + b"\x00\x0bturn-server"
        + b"\x00\x02\x00\x11"  # level 2, node 17
        + b"\x00\x00"  # no extension
    )
    assert RedirServiceProvider.decode(data) == record
    extended = RedirServiceProvider(b"ns", 0, 0, (Destination.node(NODE),), 7, b"ext")
    assert RedirServiceProvider.decode(extended.encode()) == extended


GOOD = RedirServiceProvider.forProvider(NODE, b"turn-server", 2, 17).encode()


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "type"),
        (GOOD[:-1], "level, node and length"),
        (GOOD + b"\x00", "after the record"),
        (b"\x00\x00\x02\x00\x05" + GOOD[21:], "destination_list"),
        (b"\x00\x00\x00\x00\x02\xff\xfe\x00\x00\x00\x00\x00\x00", "not UTF-8"),
        (GOOD[:-2] + b"\x00\x05ab", "extension"),
    ],
)
def test_malformed_records_are_refused_with_the_field(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RedirKind().validate(data)


# -- section 5: NODE-ID-MATCH --------------------------------------------------------


class PolicyNode:
    """What a policy sees of the storing peer: the hash and the configuration."""

    def __init__(self, configuration: Any = None) -> None:
        self.configuration = configuration if configuration is not None else defaultConfiguration()

    def resourceId(self, name: bytes) -> bytes:
        return hashlib.sha1(name).digest()[:16]


def _request(
    key: bytes, signer: bytes, record: RedirServiceProvider | None, resourceId: bytes, **extra: Any
) -> AccessRequest:
    values: dict[str, Any] = {
        "resourceId": resourceId,
        "kindId": 0x104,
        "dataModel": DataModel.DICTIONARY,
        "entry": key,
        "value": record.encode() if record is not None else b"",
        "signerUserName": "",
        "signerNodeIds": (signer,),
        "maxNodeMultiple": None,
        "exists": record is not None,
    }
    values.update(extra)
    return AccessRequest(**values)


def _ownRecord(nodeId: bytes, level: int) -> tuple[RedirServiceProvider, bytes]:
    node = treeNodeOf(int.from_bytes(nodeId, "big"), level, 10, 128)
    record = RedirServiceProvider.forProvider(nodeId, b"svc", level, node)
    return record, PolicyNode().resourceId(resourceName(b"svc", level, node))


OTHER = bytes(range(100, 116))


def test_node_id_match_lets_a_provider_write_its_own_entry_in_its_tree_nodes() -> None:
    policy, node = NodeIdMatch(), PolicyNode()
    for level in range(5):
        record, resourceId = _ownRecord(NODE, level)
        assert policy.permits(_request(NODE, NODE, record, resourceId), node)
    # exists=False: only the key's owner, wherever.
    assert policy.permits(_request(NODE, NODE, None, b"\x01" * 16), node)
    assert not policy.permits(_request(NODE, OTHER, None, b"\x01" * 16), node)


def test_node_id_match_refuses_another_nodes_key() -> None:
    record, resourceId = _ownRecord(NODE, 2)
    assert not NodeIdMatch().permits(_request(NODE, OTHER, record, resourceId), PolicyNode())
    assert not NodeIdMatch().permits(_request(OTHER, NODE, record, resourceId), PolicyNode())


def test_node_id_match_refuses_a_record_at_the_wrong_tree_node() -> None:
    policy, node = NodeIdMatch(), PolicyNode()
    record, _ = _ownRecord(NODE, 2)
    # A tree node whose intervals do not hold the Node-ID, stored where that
    # tree node lives: the interval check refuses it.
    wrong = RedirServiceProvider.forProvider(NODE, b"svc", 2, record.node + 1)
    wrongId = node.resourceId(resourceName(b"svc", 2, record.node + 1))
    assert not policy.permits(_request(NODE, NODE, wrong, wrongId), node)
    # The right tree node named, stored under another Resource-ID: H differs.
    otherId = node.resourceId(resourceName(b"svc", 1, 0))
    assert not policy.permits(_request(NODE, NODE, record, otherId), node)
    assert not policy.permits(_request(NODE, NODE, record, b"\x00" * 16), node)


def test_node_id_match_fails_closed() -> None:
    policy = NodeIdMatch()
    record, resourceId = _ownRecord(NODE, 2)
    noConfig = PolicyNode()
    noConfig.configuration = None
    assert not policy.permits(_request(NODE, NODE, record, resourceId), noConfig)
    assert not policy.permits(
        _request(NODE, NODE, record, resourceId, dataModel=DataModel.ARRAY, entry=0), PolicyNode()
    )
    assert not policy.permits(
        _request(NODE, NODE, record, resourceId, value=b"\x00garbage"), PolicyNode()
    )


# -- options and bad input -------------------------------------------------------------


@pytest.mark.parametrize(
    "options,message",
    [
        ({"provide": ""}, "provide: a namespace of 0 bytes"),
        ({"provide": "a,,b"}, "provide: a namespace of 0 bytes"),
        ({"provide": "x" * 65536}, "provide: a namespace of 65536 bytes is too long"),
        ({"lifetime": "ten"}, "lifetime: 'ten' is not a whole number"),
        ({"lifetime": "0"}, "lifetime: 0 is not between 1"),
        ({"refresh": "600"}, "refresh: 600 s is not shorter than the lifetime"),
        ({"lifetime": "60", "refresh": "90"}, "refresh: 90 s is not shorter"),
        ({"start-level": "-1"}, "start-level: -1 is not a tree level"),
    ],
)
def test_bad_options_are_refused_with_the_key(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        redir.checkOptions(options)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_good_options_pass() -> None:
    redir.checkOptions({"provide": "turn-server,voice-mail", "lifetime": "120", "refresh": "100"})
    redir.checkOptions({})
    assert DEFAULT_LIFETIME == 600


@pytest.mark.parametrize("namespace", [b"", "", b"x" * 65536, b"\xff\xfe"])
def test_a_namespace_of_0_or_65536_bytes_or_not_utf8_is_refused(namespace: Any) -> None:
    with pytest.raises(BadNamespace):
        namespaceBytes(namespace)


def test_a_namespace_of_65535_bytes_is_a_namespace() -> None:
    assert len(namespaceBytes("x" * 65535)) == 65535
