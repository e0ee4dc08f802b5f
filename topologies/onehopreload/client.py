"""A client of a ONE-HOP-RELOAD overlay (RFC 6940 section 4.2).

The client role is the core's :class:`~reload.api.topology.ClientTopology`;
this adds the overlay's hash (4.2.2), its RouteQuery answers, and direct
links: the answer to a Store, Fetch, Stat or Find comes from the peer
responsible for its Resource-ID (the transport reports its signer through
:meth:`answeredFor`), so the client Attaches to that peer (section 6.5.1:
"useful in establishing a direct connection to the responsible peer for
use with frequent or large resource updates") and sends later requests
for that Resource-ID straight to it.  After a join moves the Resource-ID,
the old peer routes the request on in one hop and the new signer is
learnt.  At most ``directLinks`` peers and :data:`REMEMBERED` Resource-IDs.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from twisted.python.failure import Failure

from reload.api.topology import ClientTopology
from reload.interfaces import INode
from topologies.onehopreload.topology import hashName

__all__ = ["REMEMBERED", "OneHopClientTopology"]

#: Resource-IDs whose responsible peer a client remembers.
REMEMBERED = 1024


class OneHopClientTopology(ClientTopology):
    def __init__(self, node: INode, directLinks: int) -> None:
        length = len(node.nodeId)
        super().__init__(node, lambda name: hashName(name, length))
        self.directLinks = directLinks
        self._direct: set[bytes] = set()
        self._attachingDirect: set[bytes] = set()
        self._answerers: OrderedDict[bytes, bytes] = OrderedDict()

    def nextHop(self, destination: bytes) -> bytes | None:
        peer = self._answerers.get(destination)
        if peer is not None and peer in self._direct and peer in self._connected:
            self._answerers.move_to_end(destination)
            return peer
        return super().nextHop(destination)

    def answeredFor(self, resourceId: bytes, nodeId: bytes) -> None:
        if not self.directLinks or nodeId == self.nodeId:
            return
        self._answerers[resourceId] = nodeId
        self._answerers.move_to_end(resourceId)
        while len(self._answerers) > REMEMBERED:
            self._answerers.popitem(last=False)
        if (
            nodeId in self._direct
            or nodeId in self._attachingDirect
            or len(self._direct) + len(self._attachingDirect) >= self.directLinks
        ):
            return
        if nodeId in self._connected:
            self._direct.add(nodeId)
            return
        self._attachingDirect.add(nodeId)

        def attached(peer: bytes) -> None:
            self._attachingDirect.discard(nodeId)
            if peer == nodeId:
                self._direct.add(peer)

        def failed(failure: Failure) -> None:
            self._attachingDirect.discard(nodeId)

        self.node.attach(nodeId).addCallbacks(attached, failed)

    def linkDown(self, nodeId: bytes) -> None:
        self._direct.discard(nodeId)
        super().linkDown(nodeId)

    def routeQueryAnswer(self, data: bytes) -> dict[str, Any]:
        if len(data) != len(self.nodeId):
            raise ValueError(
                f"a ONE-HOP-RELOAD RouteQueryAns is {len(self.nodeId)} bytes, not {len(data)}"
            )
        return {"nextPeer": data.hex()}

    def neighbours(self) -> dict[str, list[bytes]]:
        out = super().neighbours()
        out["direct"] = sorted(self._direct)
        return out
