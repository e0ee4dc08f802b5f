"""The REDIR usage (RFC 7374) in an in-memory overlay of real nodes
(``reload.testing.MemoryOverlay``): registration (section 4.3), lookups
(section 4.5) with exact Fetch counts on fixed seeds, withdrawal (4.6),
expiry of a crashed provider's records (4.4), hostile writers (section 5)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reload.config.defaults import defaultConfiguration
from reload.errors import ReloadError
from reload.testing import HarnessNode, MemoryOverlay
from reload.wire.message import ErrorCode
from usages.redir import (
    REDIR_KIND_ID,
    BadNamespace,
    NoProvider,
    RedirServiceProvider,
    TreeNodeTooLarge,
    closestSuccessor,
    redir,
    resourceName,
    treeNodeOf,
)


def _int(nodeId: bytes) -> int:
    return int.from_bytes(nodeId, "big")


def _keys(overlay: MemoryOverlay, count: int) -> list[bytes]:
    """Keys all around the ring: the providers' own Node-IDs, their
    neighbours, the ends of the space and random ones."""
    keys = [b"\x00" * 16, b"\xff" * 16]
    keys += [overlay.rng.getrandbits(128).to_bytes(16, "big") for _ in range(count)]
    return keys


def _countFetches(node: HarnessNode) -> list[bytes]:
    """Wrap the node's INode.fetch: the Resource-IDs of every Fetch sent."""
    seen: list[bytes] = []
    original = node.api.fetch

    def fetch(resourceId: bytes, specifiers: Any) -> Any:
        seen.append(resourceId)
        return original(resourceId, specifiers)

    node.api.fetch = fetch  # type: ignore[method-assign]
    return seen


def test_lookups_all_around_the_ring_find_the_closest_successor_provider() -> None:
    with MemoryOverlay(16, usages=[redir], seed=3) as overlay:
        providers = overlay.nodes[1:7]
        registrations = [overlay.wait(node.service("REDIR").register("svc")) for node in providers]
        # Section 4.3 with b = 10: six providers, each alone in its level-2
        # interval, store at levels 2, 1 and 0 with one Fetch per level.
        assert [r.fetches for r in registrations] == [3] * 6
        assert all([lvl for lvl, _ in r.stored] == [2, 1, 0] for r in registrations)
        ids = [_int(node.nodeId) for node in providers]
        looker = overlay.nodes[0]
        client = looker.service("REDIR").client
        sent = _countFetches(looker)
        keys = _keys(overlay, 30) + [node.nodeId for node in providers]
        keys += [(i - 1).to_bytes(16, "big") for i in ids]
        fetches = []
        results = []
        for key in keys:
            before = len(sent)
            result = overlay.wait(client.lookup("svc", key))
            assert _int(result.nodeId) == closestSuccessor(_int(key), ids), key.hex()
            assert result.record.namespace == b"svc"
            assert result.nodeId in [d.value for d in result.record.destinations]
            fetches.append(len(sent) - before)
            results.append(result)
        assert client.fetches == len(sent) == sum(fetches)
        # The first lookup walks up from level 2 (3 Fetches); then the
        # mode of the last 16 lookups' levels (section 4.2) is the root,
        # which answers every key with one Fetch.
        # Measured on this seed: walk steps, plus, for the root, whose six
        # records with their signers' certificates exceed the default
        # max-message-size, the wildcard Fetch refused with
        # Error_Response_Too_Large and two Fetches of 4 and 2 keys after a
        # Stat (RedirClient._fetchInParts).  The client then knows the root
        # is large (no more wildcard Fetch of it) and learns the batch:
        # 8 keys are too many (one refused Fetch), then 4 and 2 each time.
        # The first key (0) ends at level 1 after 2 steps; the second starts
        # there (section 4.2, the mode of the last lookups) and goes up to
        # the root; from then on the mode is the root: one step per lookup.
        assert [r.fetches for r in results[:3]] == [2, 2, 1]
        assert [r.level for r in results[:3]] == [1, 0, 0]
        assert all(r.fetches == 1 and r.level == 0 for r in results[2:])
        assert fetches == [2, 4, 3] + [2] * (len(keys) - 3)
        assert client.stats == len(keys) - 1


def test_a_denser_namespace_walks_down_and_still_finds_the_successor() -> None:
    """Twelve providers with start level 0: the walks go down the tree."""
    options = {"REDIR": {"start-level": "0"}}
    with MemoryOverlay(14, usages=[redir], options=options, seed=8) as overlay:
        providers = overlay.nodes[2:14]
        registrations = [
            overlay.wait(node.service("REDIR").register("dense")) for node in providers
        ]
        ids = [_int(node.nodeId) for node in providers]
        client = overlay.nodes[0].service("REDIR").client
        for key in _keys(overlay, 40):
            result = overlay.wait(client.lookup("dense", key))
            assert _int(result.nodeId) == closestSuccessor(_int(key), ids)
        measured = ([r.fetches for r in registrations], client.fetches)
        assert measured == MEASURED_DENSE


#: Measured on seed 8: the Fetches of each registration from level 0 (the
#: downward walk, section 4.3 step 5), and of the 42 lookups together.
MEASURED_DENSE = ([1, 1, 1, 1, 2, 2, 1, 1, 2, 2, 1, 2], 135)


def test_an_empty_namespace_has_no_provider() -> None:
    with MemoryOverlay(6, usages=[redir], seed=4) as overlay:
        client = overlay.nodes[0].service("REDIR").client
        with pytest.raises(NoProvider, match="no provider of 'nobody'"):
            overlay.wait(client.lookup("nobody"))
        # Levels 2, 1 and 0 (Condition 1 up to the root).
        assert client.fetches == 3


def test_the_provide_option_registers_after_join_and_stop_withdraws() -> None:
    options = {"REDIR": {"provide": "turn-server,voice-mail"}}
    with MemoryOverlay(6, usages=[redir], options=options, seed=5) as overlay:
        overlay.run(30)
        ids = [_int(node.nodeId) for node in overlay.nodes]
        client = overlay.nodes[0].service("REDIR").client
        for namespace in ("turn-server", "voice-mail"):
            for node in overlay.nodes:
                result = overlay.wait(client.lookup(namespace, node.nodeId))
                assert _int(result.nodeId) == closestSuccessor(_int(node.nodeId), ids)
        leaving = overlay.nodes[3]
        stored = leaving.service("REDIR").client.registration("turn-server").stored
        overlay.stopNode(leaving)
        # Section 4.6: exists=False in every tree node it had stored in, at
        # once, not when the records expire.
        for level, node in stored:
            resourceId = client.resourceId(b"turn-server", level, node)
            [kind] = overlay.wait(overlay.nodes[0].api.fetch(resourceId, [REDIR_KIND_ID]))
            assert leaving.nodeId not in kind.existing()
        rest = [i for i in ids if i != _int(leaving.nodeId)]
        for node in overlay.alive:
            result = overlay.wait(client.lookup("turn-server", node.nodeId))
            assert _int(result.nodeId) == closestSuccessor(_int(node.nodeId), rest)


def test_a_crashed_providers_records_expire_and_the_others_are_refreshed() -> None:
    options = {"REDIR": {"lifetime": "120"}}
    with MemoryOverlay(10, usages=[redir], options=options, seed=6) as overlay:
        providers = overlay.nodes[1:6]
        for node in providers:
            overlay.wait(node.service("REDIR").register("svc"))
        crashed = providers[2]
        overlay.failNode(crashed)
        # Past the lifetime (section 4.4): the survivors refreshed at 90 %.
        overlay.run(400)
        rest = [_int(n.nodeId) for n in providers if n is not crashed]
        client = overlay.nodes[0].service("REDIR").client
        for key in _keys(overlay, 20):
            result = overlay.wait(client.lookup("svc", key))
            assert _int(result.nodeId) == closestSuccessor(_int(key), rest)


def test_a_hostile_peer_cannot_write_another_providers_entry_or_misplace_its_own() -> None:
    with MemoryOverlay(5, usages=[redir], seed=7) as overlay:
        victim, hostile = overlay.nodes[1], overlay.nodes[2]
        overlay.wait(victim.service("REDIR").register("svc"))
        b, bits = 10, 128
        level = 2
        node = treeNodeOf(_int(victim.nodeId), level, b, bits)
        resourceId = hostile.api.resourceId(resourceName(b"svc", level, node))
        forged = RedirServiceProvider.forProvider(victim.nodeId, b"svc", level, node).encode()
        with pytest.raises(ReloadError) as caught:
            overlay.wait(hostile.api.store(resourceId, REDIR_KIND_ID, {victim.nodeId: forged}))
        assert caught.value.code == ErrorCode.FORBIDDEN
        with pytest.raises(ReloadError):
            overlay.wait(hostile.api.store(resourceId, REDIR_KIND_ID, {victim.nodeId: None}))
        # Its own entry in a tree node whose intervals do not hold it.
        own = treeNodeOf(_int(hostile.nodeId), level, b, bits)
        wrong = (own + 1) % b**level
        wrongId = hostile.api.resourceId(resourceName(b"svc", level, wrong))
        record = RedirServiceProvider.forProvider(hostile.nodeId, b"svc", level, wrong).encode()
        with pytest.raises(ReloadError) as caught:
            overlay.wait(hostile.api.store(wrongId, REDIR_KIND_ID, {hostile.nodeId: record}))
        assert caught.value.code == ErrorCode.FORBIDDEN
        # A malformed record: refused by the Kind's validate.
        with pytest.raises((ReloadError, ValueError)):
            overlay.wait(hostile.api.store(resourceId, REDIR_KIND_ID, {hostile.nodeId: b"\x00"}))
        result = overlay.wait(overlay.nodes[0].service("REDIR").lookup("svc", b"\x00" * 16))
        assert result.nodeId == victim.nodeId


def test_bad_namespaces_fail_the_api_with_a_clear_error() -> None:
    with MemoryOverlay(3, usages=[redir], seed=9) as overlay:
        service = overlay.nodes[0].service("REDIR")
        for namespace in (b"", "x" * 65536):
            for call in (service.register, service.unregister, service.lookup):
                with pytest.raises(BadNamespace):
                    overlay.wait(call(namespace))


def test_a_tree_node_too_large_to_list_fails_with_a_clear_error() -> None:
    """An overlay whose max-message-size is too small for a busy namespace:
    even the Stat of its root does not fit an answer.  Registration and
    lookup fail with TreeNodeTooLarge, which names the limit to raise,
    instead of an answer from part of the tree."""
    configuration = dataclasses.replace(defaultConfiguration(), maxMessageSize=2000)
    with MemoryOverlay(24, usages=[redir], seed=3, configuration=configuration) as overlay:
        failures = []
        for node in overlay.nodes[1:21]:
            try:
                overlay.wait(node.service("REDIR").register("svc"))
            except TreeNodeTooLarge as exc:
                failures.append(exc)
        assert failures, "the root never outgrew one answer"
        client = overlay.nodes[0].service("REDIR").client
        with pytest.raises(TreeNodeTooLarge, match="max-message-size is too small"):
            overlay.wait(client.lookup("svc", b"\xff" * 16))
