"""An in-memory overlay for driving ChordTopology instances against each other.

Each :class:`FakeNode` plays the node around one topology: ``request``
routes a message hop by hop with the topologies' own ``nextHop`` and calls
the receiving topology's ``handle*`` method, the way the transport will;
``attach`` routes an "Attach" the same way and connects the two ends
(``linkUp`` on both), honouring ``via`` and ``send_update`` (section
6.4.2.3).  Every delivery is a ``callLater`` on one
:class:`twisted.internet.task.Clock`, so nothing is re-entrant and
:meth:`FakeNetwork.settle` runs the overlay until it is quiet.

It checks what the real node will check: a JoinReq comes from the joining
peer over a direct link (section 6.4.2.1), a message for a Node-ID is
delivered only to that node (section 6.1.1), and every hop is over a link.
"""

from __future__ import annotations

from random import Random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from reload.wire.methods import (
    JoinAns,
    JoinReq,
    LeaveAns,
    LeaveReq,
    UpdateAns,
    UpdateReq,
)
from topologies.chordreload.ring import idToInt
from topologies.chordreload.settings import ChordSettings
from topologies.chordreload.topology import ChordTopology, ChordUpdateType

LATENCY = 0.01


class RoutingFailed(Exception):
    """No route, a missing link or a dead destination: what a timeout
    would report."""


class FakeNode:
    """The node side of one topology (the part of INode Chord uses)."""

    overlayName = "chord.test"
    configuration = None

    def __init__(
        self, net: FakeNetwork, nodeId: bytes, settings: ChordSettings | None = None
    ) -> None:
        self.net = net
        self.nodeId = nodeId
        self.clock = net.clock
        self.reactor = net.clock
        self.alive = True
        self.topology = ChordTopology(
            self, settings=settings, attach=self.attach, rng=Random(net.rng.random())
        )

    # -- the two calls the topology makes ------------------------------------

    def request(self, destination: bytes, messageCode: int, body: bytes) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()

        def deliver() -> None:
            try:
                target = self.net.route(self, destination, None)
                if target.nodeId != destination:
                    raise RoutingFailed(f"{destination.hex()} is gone")
                result = self.net.dispatch(self, target, messageCode, body)
            except Exception:
                self.net.later(self, d.errback, Failure())  # type: ignore[no-untyped-call]
            else:
                self.net.later(self, d.callback, result)

        self.net.later(self, deliver)
        return d

    def attach(
        self, destination: bytes, *, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.net.attaches += 1

        def connect() -> None:
            try:
                target = self.net.route(self, destination, via)
                if target is self:
                    raise RoutingFailed("the Attach came back to its sender")
                exact = self.net.nodes.get(destination)
                if exact is not None and exact.alive and target is not exact:
                    raise RoutingFailed(f"could not reach {destination.hex()}")
            except Exception:
                self.net.later(self, d.errback, Failure())  # type: ignore[no-untyped-call]
                return
            self.net.link(self, target)
            if sendUpdate:
                # Section 6.4.2.3: the answering peer's node sends an Update.
                target.topology.sendUpdate(self.nodeId, ChordUpdateType.FULL)
            self.net.later(self, d.callback, target.nodeId)

        self.net.later(self, connect)
        return d

    # -- the rest of INode, unused by the topology -----------------------------

    def resourceId(self, name: bytes) -> bytes:
        return self.topology.hashResource(name)

    def __repr__(self) -> str:
        return f"<FakeNode {self.nodeId.hex()[:8]}>"


class FakeNetwork:
    """Nodes, links between them and one clock."""

    def __init__(self, seed: int = 0) -> None:
        self.clock = Clock()
        self.rng = Random(seed)
        self.nodes: dict[bytes, FakeNode] = {}
        self.links: set[frozenset[bytes]] = set()
        self.messages: dict[int, int] = {}
        self.attaches = 0
        self.maxHops = 0

    def add(self, nodeId: bytes, settings: ChordSettings | None = None) -> FakeNode:
        node = FakeNode(self, nodeId, settings)
        self.nodes[nodeId] = node
        return node

    def alive(self) -> list[FakeNode]:
        """Live nodes in ring order."""
        return sorted((n for n in self.nodes.values() if n.alive), key=lambda n: idToInt(n.nodeId))

    def joined(self) -> list[FakeNode]:
        return [n for n in self.alive() if n.topology.inRing]

    # -- links ---------------------------------------------------------------

    def linked(self, a: bytes, b: bytes) -> bool:
        return frozenset((a, b)) in self.links

    def link(self, a: FakeNode, b: FakeNode) -> None:
        key = frozenset((a.nodeId, b.nodeId))
        if key in self.links or not (a.alive and b.alive):
            return
        self.links.add(key)
        a.topology.linkUp(b.nodeId)
        b.topology.linkUp(a.nodeId)

    def disconnect(self, node: FakeNode) -> None:
        """Take ``node`` off the network: every link of it goes down."""
        node.alive = False
        for key in [k for k in self.links if node.nodeId in k]:
            self.links.discard(key)
            (other,) = key - {node.nodeId}
            if self.nodes[other].alive:
                self.nodes[other].topology.linkDown(node.nodeId)

    def crashUnnoticed(self, node: FakeNode) -> None:
        """``node`` crashes and its links die without its peers noticing
        (half-open connections): they learn of it only when a request to
        it fails (section 10.7.1)."""
        node.alive = False
        self.links = {k for k in self.links if node.nodeId not in k}

    # -- delivery ----------------------------------------------------------------

    def later(self, node: FakeNode, f: Any, *args: Any) -> None:
        """Run ``f`` one network latency from now, if ``node`` is still up."""

        def run() -> None:
            if node.alive:
                f(*args)

        self.clock.callLater(LATENCY, run)

    def route(self, origin: FakeNode, destination: bytes, via: bytes | None) -> FakeNode:
        """Follow the topologies' nextHop from ``origin`` (through ``via``
        first when given) to the node that keeps the message."""
        current = origin
        hops = 0
        if via is not None:
            current = self._hop(origin, via)
            hops = 1
        while current.nodeId != destination:
            hop = current.topology.nextHop(destination)
            if hop is None:
                break
            current = self._hop(current, hop)
            hops += 1
            if hops > 100:
                raise RoutingFailed(f"TTL exceeded towards {destination.hex()}")
        self.maxHops = max(self.maxHops, hops)
        return current

    def _hop(self, current: FakeNode, hop: bytes) -> FakeNode:
        node = self.nodes.get(hop)
        if node is None or not node.alive or not self.linked(current.nodeId, hop):
            raise RoutingFailed(f"{current!r} has no link to {hop.hex()[:8]}")
        return node

    def dispatch(
        self, origin: FakeNode, target: FakeNode, code: int, body: bytes
    ) -> tuple[int, bytes]:
        """What the receiving node does with a topology request."""
        self.messages[code] = self.messages.get(code, 0) + 1
        topology = target.topology
        if code == JoinReq.CODE:
            join = JoinReq.decode(body)
            if join.joining_peer_id != origin.nodeId:
                raise RoutingFailed("Error_Forbidden: JoinReq signed by another node")
            data = topology.handleJoin(join.joining_peer_id, join.overlay_specific_data)
            return JoinAns.CODE, JoinAns(data).encode()
        if code == UpdateReq.CODE:
            data = topology.handleUpdate(
                origin.nodeId, UpdateReq.decode(body).overlay_specific_data
            )
            return UpdateAns.CODE, UpdateAns(data).encode()
        if code == LeaveReq.CODE:
            leave = LeaveReq.decode(body)
            topology.handleLeave(leave.leaving_peer_id, leave.overlay_specific_data)
            return LeaveAns.CODE, LeaveAns().encode()
        raise RoutingFailed(f"unexpected message code {code:#x}")

    # -- running -------------------------------------------------------------------

    def settle(self, horizon: float = 30.0) -> None:
        """Run every delivery and short timer due within ``horizon`` seconds
        of activity; stabilisation timers (minutes away) do not run."""
        while True:
            due = [c.getTime() for c in self.clock.getDelayedCalls()]  # type: ignore[misc]
            soon = [t for t in due if t <= self.clock.seconds() + horizon]
            if not soon:
                return
            self.clock.advance(max(0.0, min(soon) - self.clock.seconds()))

    def lookup(self, start: FakeNode, resourceId: bytes) -> tuple[FakeNode, int]:
        """Route ``resourceId`` from ``start``: (the node that keeps it, hops)."""
        current, hops = start, 0
        while True:
            hop = current.topology.nextHop(resourceId)
            if hop is None:
                return current, hops
            current = self._hop(current, hop)
            hops += 1
            assert hops <= 100, "routing loop"

    # -- building rings ----------------------------------------------------------

    def startRing(self, first: bytes, settings: ChordSettings | None = None) -> FakeNode:
        node = self.add(first, settings)
        node.topology.join(None)
        self.settle()
        return node

    def joinNode(
        self, nodeId: bytes, bootstrap: FakeNode, settings: ChordSettings | None = None
    ) -> tuple[FakeNode, list[object]]:
        """Connect a new node to ``bootstrap`` (section 11.4) and join;
        returns the node and the join Deferred's outcome once settled."""
        node = self.add(nodeId, settings)
        self.link(node, bootstrap)
        outcome: list[object] = []
        node.topology.join(bootstrap.nodeId).addBoth(outcome.append)
        self.settle()
        return node, outcome


def responsibleFor(nodes: list[FakeNode], resourceId: bytes) -> FakeNode:
    """The first live node at or after ``resourceId`` (section 10.1)."""
    target = idToInt(resourceId)
    for node in nodes:
        if idToInt(node.nodeId) >= target:
            return node
    return nodes[0]
