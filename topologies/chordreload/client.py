"""A client of a CHORD-RELOAD overlay (RFC 6940 section 4.2).

The client role itself is the core's :class:`~reload.api.topology
.ClientTopology`; what CHORD-RELOAD adds is its hash (section 10.2: a client
"needs an implementation of an appropriate algorithm for the overlay",
4.2.2) and the format of its RouteQuery answers (section 10.8).
"""

from __future__ import annotations

from typing import Any

from reload.api.topology import ClientTopology, DecodeError
from reload.interfaces import INode
from topologies.chordreload.codec import ChordRouteQueryAns
from topologies.chordreload.ring import hashResource

__all__ = ["ChordClientTopology"]


class ChordClientTopology(ClientTopology):
    """:class:`~reload.api.topology.ClientTopology` with CHORD-RELOAD's
    hash for Node-IDs as long as ``node``'s."""

    def __init__(self, node: INode) -> None:
        length = len(node.nodeId)

        def hashName(name: bytes) -> bytes:
            return hashResource(name, length)

        super().__init__(node, hashName)

    def routeQueryAnswer(self, data: bytes) -> dict[str, Any]:
        """Section 10.8: the RouteQueryAns data is the next peer."""
        try:
            answer = ChordRouteQueryAns.decode(data, len(self.nodeId))
        except DecodeError as exc:
            raise ValueError(f"not a CHORD-RELOAD RouteQueryAns: {exc}") from None
        return {"nextPeer": answer.next_peer.hex()}
