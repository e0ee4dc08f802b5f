"""Small overlays of :class:`TransportNode` on memory links, with a fixed
topology: a chain A - B - C - D, each node routing towards the node (or the
owner of the Resource-ID) to its left or right."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from reload.transport.attach import NoIceAttachHandler, hostCandidate
from reload.transport.node_api import TransportNode
from reload.transport.security import MessageSecurity, TrustingSecurity
from reload.transport.transport import TransportSettings

from .memlinks import MemoryNetwork


def nodeId(index: int) -> bytes:
    return bytes([0x10 * (index + 1)]) * 16


A, B, C, D = (nodeId(i) for i in range(4))


class StaticTopology:
    """A topology whose routes are a function; it records what it is told."""

    def __init__(self, nodeId: bytes, route: Any) -> None:
        self.nodeId = nodeId
        self.route = route
        self.up: list[bytes] = []
        self.down: list[bytes] = []
        self.updatesSent: list[bytes] = []
        self.calls: list[tuple[str, bytes, bytes]] = []

    def nextHop(self, destination: bytes) -> bytes | None:
        if destination == self.nodeId:
            return None
        hop: bytes | None = self.route(destination)
        return hop

    def linkUp(self, nodeId: bytes) -> None:
        self.up.append(nodeId)

    def linkDown(self, nodeId: bytes) -> None:
        self.down.append(nodeId)

    def hashResource(self, name: bytes) -> bytes:
        return hashlib.sha1(name).digest()[:16]

    def handleJoin(self, joiningPeer: bytes, data: bytes) -> bytes:
        self.calls.append(("join", joiningPeer, data))
        return b"welcome"

    def handleUpdate(self, sender: bytes, data: bytes) -> bytes:
        self.calls.append(("update", sender, data))
        return b""

    def handleLeave(self, leavingPeer: bytes, data: bytes) -> None:
        self.calls.append(("leave", leavingPeer, data))

    def handleRouteQuery(
        self, destination: bytes, sendUpdate: bool, data: bytes, requester: bytes | None = None
    ) -> bytes:
        self.calls.append(("routeQuery", destination, requester or b""))
        hop = self.nextHop(destination)
        return self.nodeId if hop is None else hop

    def sendUpdate(self, peer: bytes) -> Deferred[None]:
        self.updatesSent.append(peer)
        return succeed(None)


class Chain:
    """``count`` nodes in a line, each linked to its neighbours.

    ``owners`` maps Resource-IDs to the index of the node responsible;
    ``ids`` and ``security`` replace the default Node-IDs and
    :class:`TrustingSecurity`.
    """

    def __init__(
        self,
        count: int = 3,
        owners: dict[bytes, int] | None = None,
        settings: dict[bytes, TransportSettings] | None = None,
        link: bool = True,
        ids: Sequence[bytes] | None = None,
        security: Callable[[bytes], MessageSecurity] = TrustingSecurity,
        clock: Clock | None = None,
        **nodeOptions: Any,
    ) -> None:
        self.net = MemoryNetwork() if clock is None else MemoryNetwork(clock)
        self.ids = list(ids) if ids is not None else [nodeId(i) for i in range(count)]
        self.owners = dict(owners or {})
        self.nodes: list[TransportNode] = []
        for index, nid in enumerate(self.ids):
            custom = (settings or {}).get(nid)
            handler = NoIceAttachHandler(self.net.connector(nid), self._candidates(nid))
            node = TransportNode(
                nid,
                security(nid),
                self.net.clock,
                settings=custom,
                attachHandler=handler,
                **nodeOptions,
            )
            node.useTopology(StaticTopology(nid, self._router(index)))
            self.net.add(nid, node.transport)
            self.nodes.append(node)
        if link:
            for a, b in zip(self.ids, self.ids[1:], strict=False):
                self.net.link(a, b)

    def _candidates(self, nid: bytes) -> Any:
        def candidates() -> list[Any]:
            host, port = self.net.addressOf[nid]
            return [hostCandidate(host, port)]

        return candidates

    def _router(self, index: int) -> Any:
        def route(destination: bytes) -> bytes | None:
            if destination in self.ids:
                target = self.ids.index(destination)
            elif destination in self.owners:
                target = self.owners[destination]
            else:
                return None
            if target == index:
                return None
            return self.ids[index + 1 if target > index else index - 1]

        return route

    def topology(self, index: int) -> StaticTopology:
        topology = self.nodes[index].topology
        assert isinstance(topology, StaticTopology)
        return topology

    def __getitem__(self, index: int) -> TransportNode:
        return self.nodes[index]

    def settle(self, horizon: float = 30.0) -> None:
        self.net.settle(horizon)
