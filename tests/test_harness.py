"""The in-memory overlay for plugin authors (``reload.testing``), used the
way docs/plugins.md shows: the worked example usage GREETER in an overlay
of real nodes, a hundred of them in one test, the ``memoryOverlay``
fixture, another topology plugin, crashes and leaves, seeded runs."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from twisted.internet.protocol import Factory, Protocol

from reload.api.data import Specifier
from reload.errors import AppAttachFailed, ReloadError
from reload.testing import MemoryOverlay, UsageError
from reload.wire.message import ErrorCode

from .conftest import REPO
from .topology_plugins import TOPOLOGIES, topologyPlugin


def _loadGreeter() -> ModuleType:
    """examples/greeter/usages/greeter.py as a module of its own (the
    real-process tests install it as its distribution)."""
    path = REPO / "examples" / "greeter" / "usages" / "greeter.py"
    spec = importlib.util.spec_from_file_location("greeter_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GREETER = _loadGreeter()
GREETING = GREETER.GREETING_KIND_ID


def greetings(**extra: Any) -> dict[str, Any]:
    return {"usages": [GREETER.greeter], "options": {"GREETER": {"greeting": "hi"}}, **extra}


def test_the_example_usage_publishes_and_finds_greetings_in_the_harness() -> None:
    with MemoryOverlay(12, seed=1, **greetings()) as overlay:
        first, last = overlay.nodes[0], overlay.nodes[-1]
        [kind] = overlay.wait(first.api.fetch(first.api.resourceId(last.nodeId), [GREETING]))
        assert [(v.value, v.signerNodeId) for v in kind.values] == [(b"hi", last.nodeId)]
        service = first.service("GREETER")
        assert overlay.wait(service.greetingOf(last.nodeId)) == "hi"
        assert overlay.wait(service.greetingOf(b"\x00" * 16)) is None


def test_a_hundred_nodes_join_and_every_one_fetches_what_one_stored() -> None:
    with MemoryOverlay(100, seed=7, **greetings()) as overlay:
        assert len(overlay.nodes) == 100
        assert all(node.inOverlay for node in overlay.nodes)
        writer = overlay.nodes[42]
        resource = writer.api.resourceId(writer.nodeId)
        found = set()
        for node in overlay.nodes:
            [kind] = overlay.wait(node.api.fetch(resource, [Specifier(GREETING)]))
            found.add(kind.values[0].value)
        assert found == {b"hi"}
        # The responsible peer and its two replicas hold it (section 10.4).
        assert sum(node.holds(resource, GREETING) for node in overlay.nodes) == 3


def test_the_memoryoverlay_fixture_stops_what_it_made(
    memoryOverlay: Callable[..., MemoryOverlay],
) -> None:
    overlay = memoryOverlay(5, seed=2, **greetings())
    node = overlay.nodes[1]
    assert node.service("GREETER").running
    overlay.stop()
    assert not any(n.alive for n in overlay.nodes)


def test_a_stopped_node_withdraws_its_greeting_and_a_failed_ones_data_survives() -> None:
    with MemoryOverlay(8, seed=4, **greetings()) as overlay:
        leaving, crashing, reader = overlay.nodes[2], overlay.nodes[5], overlay.nodes[0]
        service = reader.service("GREETER")
        overlay.stopNode(leaving)
        assert not leaving.alive
        assert overlay.wait(service.greetingOf(leaving.nodeId)) is None
        overlay.failNode(crashing)
        overlay.run(60)
        # Its greeting was replicated (section 10.4): still there after the
        # crash, through any node.
        assert overlay.wait(service.greetingOf(crashing.nodeId)) == "hi"


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_another_topology_plugin_runs_the_same_usage(topology: str) -> None:
    plugin = topologyPlugin(topology)
    with MemoryOverlay(6, seed=5, topology=plugin, **greetings()) as overlay:
        assert overlay.configuration.topologyPlugin == topology
        reader = overlay.nodes[0].service("GREETER")
        for node in overlay.nodes:
            assert overlay.wait(reader.greetingOf(node.nodeId)) == "hi"


def test_the_same_seed_gives_the_same_overlay() -> None:
    def run(seed: int) -> tuple[list[bytes], float]:
        with MemoryOverlay(6, seed=seed, **greetings()) as overlay:
            return [n.nodeId for n in overlay.nodes], overlay.now

    assert run(11) == run(11)
    assert run(11)[0] != run(12)[0]


def test_a_value_the_kind_refuses_fails_with_the_reason() -> None:
    with MemoryOverlay(3, seed=6, **greetings()) as overlay:
        node = overlay.nodes[0]
        resource = node.api.resourceId(node.nodeId)
        with pytest.raises(ReloadError) as caught:
            overlay.wait(node.api.store(resource, GREETING, b"two\nlines"))
        assert caught.value.code == ErrorCode.INVALID_MESSAGE
        assert "one line" in caught.value.text


def test_appattach_is_refused_in_the_harness_which_has_no_sockets() -> None:
    with MemoryOverlay(2, seed=8) as overlay:
        a, b = overlay.nodes
        with pytest.raises(AppAttachFailed, match="needs sockets"):
            overlay.wait(a.api.appAttach(b.nodeId, 5060, Factory.forProtocol(Protocol)))
        with pytest.raises(AppAttachFailed):
            b.api.listenApplication(5060, Factory.forProtocol(Protocol))


def test_a_usage_whose_kind_or_options_a_peer_would_refuse_is_refused_here_too() -> None:
    base = MemoryOverlay(0).configuration
    missing = r"Kind GREETING \(0xf0000001\) is not in the overlay configuration"
    with pytest.raises(UsageError, match=missing):
        MemoryOverlay(1, usages=[GREETER.greeter], configuration=base)
    with pytest.raises(UsageError, match="greeting: a greeting is one line"):
        MemoryOverlay(1, usages=[GREETER.greeter], options={"GREETER": {"greeting": ""}})
    with pytest.raises(UsageError, match="is not an IUsage"):
        MemoryOverlay(1, usages=[object()])
