"""The TURN usage (RFC 6940 section 9) in an in-memory overlay of real
nodes (``reload.testing.MemoryOverlay``): advertising at H(Node-ID || d)
for d = 1..turn-density, refresh, withdrawal; discovery by Find and Fetch
at random Resource-IDs with exact counts on a fixed seed, the liveness
check, the cache, rotation and dead servers; discovery through ReDiR's
``turn-server`` namespace (RFC 7374 section 10.4).

The harness has no sockets, so the STUN Binding check is the one seam:
each test gives discovery a check that answers for the servers it calls
alive (the real check is used in tests/test_turn_lab.py)."""

from __future__ import annotations

import dataclasses
from random import Random
from typing import Any, cast

from twisted.internet.defer import Deferred, succeed

from reload.api.names import nodeMultipleResourceName
from reload.config import defaultConfiguration
from reload.overlaynode import OverlayNode
from reload.testing import HarnessNode, MemoryOverlay
from usages.redir import redir
from usages.turn import TurnService, turn
from usages.turnusage.discovery import TurnDiscovery
from usages.turnusage.kind import TURN_SERVICE_KIND_ID, TurnServer
from usages.turnusage.options import parseOptions

SERVERS = (2, 5, 9)
LIFETIME = 60


def _overlay(memoryOverlay: Any, density: int, usages: list[Any] | None = None,
             turnOptions: dict[str, str] | None = None) -> MemoryOverlay:  # fmt: skip
    configuration = dataclasses.replace(defaultConfiguration(), turnDensity=density)
    options = {"TURN": turnOptions or {"external": "1.2.3.4:3478", "advertise": "never"}}
    overlay: MemoryOverlay = memoryOverlay(
        12, usages=usages or [turn], options=options, configuration=configuration, seed=19
    )
    return overlay


class Alive:
    """The Binding check of the test: servers in ``live`` answer."""

    def __init__(self) -> None:
        self.live: set[tuple[str, int]] = set()
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Deferred[tuple[str, int] | None]:
        self.asked.append((host, port))
        return succeed(("192.0.2.200", 40000) if (host, port) in self.live else None)


def _advertise(node: HarnessNode, host: str, **options: str) -> TurnService:
    """A TURN service advertising ``host``:3478 on ``node``, as
    ``--usage TURN --usage-option TURN:external=HOST:3478`` makes it."""
    parsed = parseOptions({"external": f"{host}:3478", "lifetime": str(LIFETIME), **options})
    service = TurnService(node.api, parsed, TurnDiscovery(node.api, Alive()))
    service.startService()
    return service


def _fetch(overlay: MemoryOverlay, node: HarnessNode, owner: bytes, d: int) -> Any:
    where = node.api.resourceId(nodeMultipleResourceName(owner, d))
    [kind] = overlay.wait(node.api.fetch(where, [TURN_SERVICE_KIND_ID]))
    return kind.values[0]


def test_a_public_server_stores_its_address_at_each_d(memoryOverlay: Any) -> None:
    overlay = _overlay(memoryOverlay, density=3)
    server = overlay.nodes[4]
    service = _advertise(server, "1.2.3.4", advertise="auto")
    overlay.run(5)
    reader = overlay.nodes[0]
    for d in (1, 2, 3):
        value = _fetch(overlay, reader, server.nodeId, d)
        assert value.exists and value.signerNodeId == server.nodeId
        assert TurnServer.decode(value.value) == TurnServer(d, "1.2.3.4", 3478)
    # d = 4 is beyond turn-density: nothing there.
    assert not _fetch(overlay, reader, server.nodeId, 4).exists
    status = service.status()["advertising"]
    assert status["advertised"] and status["stored"] == [1, 2, 3] and status["stores"] == 3


def test_values_are_refreshed_before_they_expire_and_withdrawn_on_stop(
    memoryOverlay: Any,
) -> None:
    overlay = _overlay(memoryOverlay, density=2)
    server, reader = overlay.nodes[4], overlay.nodes[0]
    service = _advertise(server, "1.2.3.4", advertise="always")
    overlay.run(5)
    first = _fetch(overlay, reader, server.nodeId, 1).storageTime
    overlay.run(3 * LIFETIME)
    value = _fetch(overlay, reader, server.nodeId, 1)
    assert value.exists and value.storageTime > first
    # 3 refreshes at 90% of 60 s (54, 108, 162 s), plus the first round.
    assert service.status()["advertising"]["stores"] == 2 * 4
    overlay.wait(service.stopService())
    for d in (1, 2):
        assert not _fetch(overlay, reader, server.nodeId, d).exists
    overlay.run(2 * LIFETIME)
    assert not _fetch(overlay, reader, server.nodeId, 1).exists


def test_a_private_address_is_not_advertised_with_auto(memoryOverlay: Any) -> None:
    overlay = _overlay(memoryOverlay, density=1)
    server = overlay.nodes[4]
    service = _advertise(server, "10.0.0.7", advertise="auto")
    overlay.run(5)
    assert not _fetch(overlay, overlay.nodes[0], server.nodeId, 1).exists
    status = service.status()["advertising"]
    assert not status["advertised"]
    assert status["why not"] == (
        "advertise=auto and 10.0.0.7 is a private or reserved address (RFC 1918 and the like)"
    )
    never = _advertise(overlay.nodes[5], "1.2.3.4", advertise="never")
    assert never.status()["advertising"]["why not"] == "advertise=never"


def test_a_peer_behind_a_nat_does_not_advertise_with_auto(memoryOverlay: Any) -> None:
    """RFC 6940 section 9: a peer ICE found behind a NAT does not offer
    TURN, even with a public address; one ICE found public does, and
    ``always`` overrides."""
    overlay = _overlay(memoryOverlay, density=1)
    nated, public, forced = overlay.nodes[4], overlay.nodes[6], overlay.nodes[8]
    assert nated.api.behindNat is None  # no ICE in the harness: nobody knows
    for node, state in ((nated, True), (public, False), (forced, True)):
        cast(OverlayNode, node.api).natState = lambda state=state: state
    behind = _advertise(nated, "1.2.3.4", advertise="auto")
    found = _advertise(public, "1.2.3.5", advertise="auto")
    always = _advertise(forced, "1.2.3.6", advertise="always")
    overlay.run(5)
    status = behind.status()["advertising"]
    assert not status["advertised"]
    assert status["why not"] == (
        "advertise=auto and this peer is behind a NAT (its STUN-reflexive address differs)"
    )
    assert not _fetch(overlay, overlay.nodes[0], nated.nodeId, 1).exists
    assert found.status()["advertising"]["advertised"]
    assert _fetch(overlay, overlay.nodes[0], public.nodeId, 1).exists
    assert always.status()["advertising"]["advertised"]


def test_another_peer_cannot_write_a_servers_slot(memoryOverlay: Any) -> None:
    """NODE-MULTIPLE (section 7.3.4): only the Node-ID whose hash it is."""
    overlay = _overlay(memoryOverlay, density=1)
    owner, intruder = overlay.nodes[4], overlay.nodes[6]
    where = intruder.api.resourceId(nodeMultipleResourceName(owner.nodeId, 1))
    value = TurnServer(1, "6.6.6.6", 3478).encode()
    failure = overlay.scheduler.runUntilFired(
        intruder.api.store(where, TURN_SERVICE_KIND_ID, value), 60
    )
    assert "Forbidden" in str(failure.value) or "forbidden" in str(failure.value).lower()


def _discoveryLab(memoryOverlay: Any) -> tuple[MemoryOverlay, list[TurnService], Alive]:
    overlay = _overlay(memoryOverlay, density=1)
    services = [_advertise(overlay.nodes[i], f"1.2.3.{i}") for i in SERVERS]
    overlay.run(5)
    return overlay, services, Alive()


def test_discovery_finds_live_servers_in_a_fixed_number_of_finds(memoryOverlay: Any) -> None:
    overlay, _, alive = _discoveryLab(memoryOverlay)
    alive.live = {(f"1.2.3.{i}", 3478) for i in SERVERS}
    client = overlay.nodes[0]
    discovery = TurnDiscovery(client.api, alive, rng=Random(7))
    [found] = overlay.wait(discovery.findTurnServers(1))
    stats = discovery.lastSearch
    assert stats is not None
    assert (found.host, found.port) in alive.live
    owner = overlay.nodes[int(found.host.rsplit(".", 1)[1])]
    assert found.nodeId == owner.nodeId and found.iteration == 1
    assert found.mapped == ("192.0.2.200", 40000)
    # The fixed seed: the exact cost of this search.
    assert (stats.finds, stats.fetches, stats.checks, stats.firstFoundAt) == FIRST_SEARCH
    # Asking for all three takes more Finds; each server is checked once.
    servers = overlay.wait(discovery.findTurnServers(3))
    assert {s.address for s in servers} == alive.live
    second = discovery.lastSearch
    assert second is not None and second.fromCache == 1
    assert (second.finds, second.fetches, second.checks) == SECOND_SEARCH
    # Each server checked before each hand-out: the first once per call.
    assert len(alive.asked) == 4 and len(set(alive.asked)) == 3


FIRST_SEARCH = (6, 1, 1, 6)
SECOND_SEARCH = (14, 9, 3)


def test_servers_are_handed_out_in_rotation(memoryOverlay: Any) -> None:
    overlay, _, alive = _discoveryLab(memoryOverlay)
    alive.live = {(f"1.2.3.{i}", 3478) for i in SERVERS}
    discovery = TurnDiscovery(overlay.nodes[0].api, alive, rng=Random(7), maxSearches=64)
    overlay.wait(discovery.findTurnServers(3))
    order = [overlay.wait(discovery.findTurnServers(1))[0].address for _ in range(6)]
    assert order[:3] == order[3:] and set(order[:3]) == alive.live
    assert discovery.lastSearch is not None and discovery.lastSearch.finds == 0


def test_a_dead_server_is_never_handed_out_and_is_forgotten(memoryOverlay: Any) -> None:
    overlay, _, alive = _discoveryLab(memoryOverlay)
    alive.live = {(f"1.2.3.{i}", 3478) for i in SERVERS}
    discovery = TurnDiscovery(overlay.nodes[0].api, alive, rng=Random(7), maxSearches=64)
    overlay.wait(discovery.findTurnServers(3))
    dead = ("1.2.3.5", 3478)
    alive.live.discard(dead)  # crashed: its value is still stored
    handed = [s.address for _ in range(6) for s in overlay.wait(discovery.findTurnServers(1))]
    assert dead not in handed and set(handed) == alive.live
    assert dead not in discovery.cache and dead in discovery.dead
    status = discovery.status()
    assert status["ignoredDead"] == ["1.2.3.5:3478"]
    # Every server dead: nothing is handed out, and the search says why.
    alive.live.clear()
    assert overlay.wait(discovery.findTurnServers(1)) == []
    assert discovery.lastSearch is not None and discovery.lastSearch.finds == 64


def test_the_find_operation_answers_json_and_refuses_bad_counts(memoryOverlay: Any) -> None:
    overlay = _overlay(memoryOverlay, density=1)
    for i in SERVERS:
        _advertise(overlay.nodes[i], f"1.2.3.{i}")
    overlay.run(5)
    service = overlay.nodes[0].service("TURN")
    alive = Alive()
    alive.live = {(f"1.2.3.{i}", 3478) for i in SERVERS}
    service.discovery.check = alive
    result = overlay.wait(service.operations()["find"]({"count": "2"}))
    assert result["method"] == "find" and len(result["servers"]) == 2
    assert {s["host"] for s in result["servers"]} <= {f"1.2.3.{i}" for i in SERVERS}
    assert result["finds"] >= 1 and result["fetches"] >= 1
    for bad in ("0", "21", "two"):
        try:
            service.operations()["find"]({"count": bad})
        except ValueError as exc:
            assert str(exc).startswith("count: ")
        else:
            raise AssertionError(f"count={bad} accepted")
    alive.live.clear()
    failure = overlay.scheduler.runUntilFired(service.operations()["find"]({}), 600)
    assert isinstance(failure.value, LookupError)
    assert str(failure.value).startswith("no live TURN server found")
    status = overlay.nodes[0].usages.status()
    [entry] = status
    assert entry["name"] == "TURN" and entry["status"]["server"] == {"external": "1.2.3.4:3478"}


def test_discovery_through_redir_finds_the_registered_servers(memoryOverlay: Any) -> None:
    overlay = _overlay(
        memoryOverlay, density=0, usages=[redir, turn],
        turnOptions={"external": "1.2.3.4:3478", "advertise": "never", "discovery": "redir"},
    )  # fmt: skip
    services = []
    for i in SERVERS:
        node = overlay.nodes[i]
        parsed = parseOptions({"external": f"1.2.3.{i}:3478", "discovery": "redir"})
        from usages.redir import RedirClient

        client = RedirClient(node.api)
        service = TurnService(
            node.api, parsed, TurnDiscovery(node.api, Alive(), redir=client), redir=client
        )
        service.startService()
        services.append(service)
    overlay.run(10)
    # turn-density 0: only d = 1, for ReDiR's providers to be Fetched at.
    assert services[0].status()["advertising"]["stored"] == [1]
    assert services[0].status()["advertising"]["redir"] == "registered in turn-server"
    turnService = overlay.nodes[0].service("TURN")
    alive = Alive()
    alive.live = {(f"1.2.3.{i}", 3478) for i in SERVERS}
    turnService.discovery.check = alive
    turnService.discovery.rng = Random(3)
    servers = overlay.wait(turnService.findTurnServers(3))
    assert {s.address for s in servers} == alive.live
    stats = turnService.discovery.lastSearch
    assert stats.finds == 0 and stats.lookups >= 3
    overlay.wait(services[1].stopService())


def test_a_harness_node_serves_no_tls_and_says_so(memoryOverlay: Any) -> None:
    """The harness has no sockets and no link identity: asking for
    TURN:tls-port fails with a clear error, and no connection has a
    verified Node-ID there (fail closed)."""
    import pytest

    from reload.errors import AppAttachFailed

    overlay = _overlay(memoryOverlay, density=1)
    node = overlay.alive[0]
    with pytest.raises(AppAttachFailed, match="serves no TLS"):
        turn.makeService(node.api, {"host": "127.0.0.1", "advertise": "never", "tls-port": "0"})
    assert node.api.verifiedNodeIds(object()) == ()
