"""In-memory links of the simulator (reload.sim.network)."""

from __future__ import annotations

from random import Random
from typing import Any

import pytest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from reload.link.errors import LinkClosed
from reload.link.interfaces import ILink, ILinkHandler
from reload.sim.clock import Scheduler
from reload.sim.network import SimNetwork


@implementer(ILinkHandler)
class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any]] = []

    def linkUp(self, link: ILink) -> None:
        self.events.append(("up", link.peer.nodeId, None))

    def messageReceived(self, link: ILink, message: bytes) -> None:
        self.events.append(("message", link.peer.nodeId, message))

    def linkClosed(self, link: ILink, reason: str) -> None:
        self.events.append(("closed", link.peer.nodeId, reason))


def pair(net: SimNetwork) -> tuple[Any, Any, Recorder, Recorder]:
    a, b = net.add(b"a" * 16), net.add(b"b" * 16)
    a.handler, b.handler = Recorder(), Recorder()
    return a, b, a.handler, b.handler


def test_links_deliver_in_order_one_latency_later() -> None:
    sched = Scheduler()
    net = SimNetwork(sched, latency=0.05)
    a, b, ra, rb = pair(net)
    link = net.link(a, b)
    assert verifyObject(ILink, link)
    assert ra.events == [("up", b.nodeId, None)] and rb.events == [("up", a.nodeId, None)]
    assert net.link(a, b) is link
    link.send(b"one")
    link.send(b"two")
    sched.advance(0.04)
    assert len(rb.events) == 1
    sched.advance(0.01)
    assert rb.events[1:] == [("message", a.nodeId, b"one"), ("message", a.nodeId, b"two")]
    assert net.messages == 2 and net.bytes == 6


def test_jitter_gives_each_link_its_own_latency() -> None:
    net = SimNetwork(Scheduler(), latency=0.1, jitter=0.5, rng=Random(3))
    latencies = {net.linkLatency() for _ in range(10)}
    assert len(latencies) == 10 and all(0.05 <= x <= 0.15 for x in latencies)


def test_close_tells_both_ends_and_sending_afterwards_fails() -> None:
    sched = Scheduler()
    net = SimNetwork(sched)
    a, b, ra, rb = pair(net)
    link = net.link(a, b)
    link.close()
    assert ra.events[-1][0] == "closed"
    sched.advance(1)
    assert rb.events[-1][0] == "closed"
    with pytest.raises(LinkClosed):
        link.send(b"late")
    assert b.nodeId not in a.links and a.nodeId not in b.links


def test_a_dead_host_goes_silent_and_its_peers_see_it_after_the_detection_time() -> None:
    sched = Scheduler()
    net = SimNetwork(sched, detection=2.0)
    a, b, ra, rb = pair(net)
    net.link(a, b)
    toA = b.links[a.nodeId]
    net.fail(a)
    toA.send(b"into the void")
    sched.advance(1)
    assert rb.events[-1][0] == "up" and ra.events[-1][0] == "up"
    sched.advance(1.5)
    assert rb.events[-1] == ("closed", a.nodeId, "closed by the peer")
    assert ra.events[-1][0] == "up"


def test_connector_links_to_the_expected_node_and_refuses_others() -> None:
    sched = Scheduler()
    net = SimNetwork(sched)
    a, b, _, rb = pair(net)
    connect = net.connector(a)
    good = sched.runUntilFired(connect(b.address[0], b.address[1], b.nodeId))
    assert good.peer.nodeId == b.nodeId and rb.events[0] == ("up", a.nodeId, None)
    wrong = sched.runUntilFired(connect(b.address[0], b.address[1], b"c" * 16))
    assert wrong.check(ConnectionError)
    nothing = sched.runUntilFired(connect("10.9.9.9", 6084, b.nodeId))
    assert nothing.check(ConnectionRefusedError)


def test_held_messages_wait_until_released() -> None:
    sched = Scheduler()
    net = SimNetwork(sched)
    a, b, _, rb = pair(net)
    link = net.link(a, b)
    net.hold(lambda m: m.startswith(b"hold"))
    link.send(b"hold 1")
    link.send(b"pass")
    link.send(b"hold 2")
    sched.advance(1)
    assert [e[2] for e in rb.events[1:]] == [b"pass"]
    assert net.held == 2 and net.release() == 2
    sched.advance(1)
    assert [e[2] for e in rb.events[1:]] == [b"pass", b"hold 1", b"hold 2"]
