"""FULL-MESH: a deliberately simple topology plugin for small overlays.

It exists to show that the core works with whichever topology the
configuration names (DESIGN.md): it is written against
:mod:`reload.interfaces`, :mod:`reload.errors` and :mod:`reload.api.topology`
only, as a third party would, and the storage, replication and handover
tests run against it unchanged.  It ships as a distribution of its own
(``examples/fullmesh``), whose ``topologies`` directory has no
``__init__.py``: ``pip install ./examples/fullmesh`` and
``getPlugins(ITopologyPlugin, topologies)`` finds it (``topologies.__path__``
is extended with ``pluginPackagePaths``).

The algorithm (RFC 6940 section 3.2.1 leaves the overlay algorithm open):

- every peer keeps a connection to every other peer, so a message takes at
  most one hop (section 6.1.2: the next hop is the responsible peer);
- Node-IDs and Resource-IDs are 128 bits; a Resource-ID is the SHA-1 of its
  name truncated to 16 bytes (as section 10.2 does for CHORD-RELOAD);
- the peer responsible for an id is its successor on the sorted ring of
  peers (the rule of section 10.1), and the replica set is the two peers
  after it (section 10.4);
- Join (section 6.4.2.1): the JoinAns data lists every peer; the joining
  node Attaches to each (section 6.5.1) and sends each an Update (section
  6.4.2.3, empty data: "I am a peer now");
- Leave (section 6.4.2.2) and a closed link (section 10.7.1's rule: a lost
  connection is a failed peer) remove the peer;
- every change of the peer set is reported to storage as a change of the
  whole ring, so data follows (sections 10.5 step 6 and 10.7.3).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable
from random import Random
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from reload.api.topology import (
    ClientTopology,
    ErrorCode,
    JoinAns,
    JoinReq,
    LeaveReq,
    UpdateReq,
)
from reload.errors import ReloadError
from reload.interfaces import INode, ITopology, ITopologyPlugin

__all__ = ["FullMeshPlugin", "FullMeshTopology", "fullMesh"]

ID_LENGTH = 16
REPLICAS = 2


def hashName(name: bytes) -> bytes:
    """SHA-1 truncated to 128 bits."""
    return hashlib.sha1(name).digest()[:ID_LENGTH]


class _WholeRing:
    """Every id: the range a change of the peer set touches."""

    def __contains__(self, x: object) -> bool:
        return isinstance(x, bytes)


@implementer(ITopology)
class FullMeshTopology:
    """One node's view of a full-mesh overlay."""

    log = Logger()

    def __init__(self, node: INode) -> None:
        self.node = node
        self.nodeId: bytes = node.nodeId
        self.phase = "idle"
        self._connected: set[bytes] = set()
        #: Peers in the overlay, each with a live connection.
        self._peers: set[bytes] = set()
        self._admitting: bytes | None = None
        self._callbacks: list[Callable[[tuple[object, ...]], object]] = []

    # -- join state ------------------------------------------------------------------

    @property
    def inRing(self) -> bool:
        return self.phase in ("joined", "leaving")

    # -- the ring --------------------------------------------------------------------

    def _ring(self) -> list[bytes]:
        return sorted({*self._peers, self.nodeId})

    def _owner(self, ring: list[bytes], resourceId: bytes) -> int:
        """Index of the successor of ``resourceId`` (section 10.1)."""
        index = bisect_left(ring, resourceId)
        return index % len(ring)

    def responsiblePeer(self, resourceId: bytes) -> bytes:
        ring = self._ring()
        return ring[self._owner(ring, resourceId)]

    def _replicas(self, resourceId: bytes) -> list[bytes]:
        ring = self._ring()
        owner = self._owner(ring, resourceId)
        count = min(REPLICAS, len(ring) - 1)
        return [ring[(owner + i) % len(ring)] for i in range(1, count + 1)]

    # -- routing and storage questions (ITopology) -----------------------------------

    def nextHop(self, destination: bytes) -> bytes | None:
        if destination == self.nodeId:
            return None
        if destination in self._connected:
            return destination
        if not self.inRing:
            if self._admitting in self._connected:
                return self._admitting
            return min(self._connected, default=None)
        owner = self.responsiblePeer(destination)
        return None if owner == self.nodeId else owner

    def isResponsible(self, resourceId: bytes) -> bool:
        return self.inRing and self.responsiblePeer(resourceId) == self.nodeId

    def replicaSet(self, resourceId: bytes) -> list[bytes]:
        return self._replicas(resourceId) if self.inRing else []

    def holdsReplica(self, resourceId: bytes) -> bool:
        return self.inRing and self.nodeId in self._replicas(resourceId)

    def isNeighbour(self, nodeId: bytes) -> bool:
        return nodeId in self._peers

    def shouldHold(self, resourceId: bytes) -> bool:
        if self.phase not in ("joining", "joined"):
            return False
        return self.responsiblePeer(resourceId) == self.nodeId or self.nodeId in self._replicas(
            resourceId
        )

    def answeredFor(self, resourceId: bytes, nodeId: bytes) -> None:
        """Every peer is connected already."""

    def hashResource(self, name: bytes) -> bytes:
        return hashName(name)

    def neighbours(self) -> dict[str, list[bytes]]:
        ring = self._ring()
        me = ring.index(self.nodeId)
        others = [ring[(me + i) % len(ring)] for i in range(1, len(ring))]
        return {
            "successors": others[:REPLICAS],
            "predecessors": others[::-1][:REPLICAS],
            "peers": others,
        }

    def routeQueryAnswer(self, data: bytes) -> dict[str, Any]:
        if len(data) != ID_LENGTH:
            raise ValueError(f"a FULL-MESH RouteQueryAns is {ID_LENGTH} bytes, not {len(data)}")
        return {"nextPeer": data.hex()}

    def onResponsibilityChange(self, callback: object) -> None:
        if not callable(callback):
            raise TypeError(f"{callback!r} is not callable")
        self._callbacks.append(callback)

    def _changed(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback((_WholeRing(),))
            except Exception:
                self.log.failure("responsibility-change callback failed")

    def _addPeer(self, peer: bytes) -> None:
        if peer != self.nodeId and peer in self._connected and peer not in self._peers:
            self._peers.add(peer)
            self._changed()

    def _removePeer(self, peer: bytes) -> None:
        if peer in self._peers:
            self._peers.discard(peer)
            self._changed()

    # -- links -------------------------------------------------------------------------

    def linkUp(self, nodeId: bytes) -> None:
        if nodeId != self.nodeId:
            self._connected.add(nodeId)

    def linkDown(self, nodeId: bytes) -> None:
        self._connected.discard(nodeId)
        self._removePeer(nodeId)

    # -- Join, Update, Leave, RouteQuery (section 6.4.2) -------------------------------

    def join(self, admittingPeer: bytes | None) -> Deferred[None]:
        if self.phase != "idle":
            return fail(ReloadError(ErrorCode.INVALID_MESSAGE, f"cannot join: {self.phase}"))
        if admittingPeer is None:
            self.phase = "joined"
            return succeed(None)
        self.phase = "joining"
        self._admitting = admittingPeer
        return Deferred.fromCoroutine(self._join(admittingPeer))

    async def _join(self, admitting: bytes) -> None:
        try:
            code, body = await self.node.request(
                admitting, JoinReq.CODE, JoinReq(self.nodeId).encode()
            )
            if code != JoinAns.CODE:
                raise ReloadError(ErrorCode.INVALID_MESSAGE, f"JoinReq answered with {code:#x}")
            data = JoinAns.decode(body).overlay_specific_data
            peers = [data[i : i + ID_LENGTH] for i in range(0, len(data), ID_LENGTH)]
            self._addPeer(admitting)
            for peer in peers:
                if peer in (self.nodeId, admitting):
                    continue
                if peer not in self._connected:
                    await self.node.attach(peer, via=admitting)
                self._addPeer(peer)
        except BaseException:
            self.phase = "idle"
            raise
        self.phase = "joined"
        self._changed()
        # Tell every peer that this node is one now.
        await DeferredList([self.sendUpdate(peer) for peer in sorted(self._peers)])

    def handleJoin(self, joiningPeer: bytes, data: bytes) -> bytes:
        if self.phase != "joined":
            raise ReloadError(ErrorCode.FORBIDDEN, f"cannot admit a peer: {self.phase}")
        known = b"".join(sorted(self._peers))
        self._addPeer(joiningPeer)
        return known

    def sendUpdate(self, peer: bytes) -> Deferred[None]:
        d = self.node.request(peer, UpdateReq.CODE, UpdateReq(b"").encode())
        return d.addCallbacks(lambda _: None, lambda f: None)

    def handleUpdate(self, sender: bytes, data: bytes) -> bytes:
        if self.inRing:
            self._addPeer(sender)
        return b""

    def handleLeave(self, leavingPeer: bytes, data: bytes) -> None:
        self._removePeer(leavingPeer)

    def handleRouteQuery(
        self, destination: bytes, sendUpdate: bool, data: bytes, requester: bytes | None = None
    ) -> bytes:
        return self.responsiblePeer(destination) if self.inRing else self.nodeId

    def leave(self) -> Deferred[None]:
        if not self.inRing:
            self.phase = "left"
            return succeed(None)
        self.phase = "leaving"
        body = LeaveReq(self.nodeId).encode()
        sent = [self.node.request(peer, LeaveReq.CODE, body) for peer in sorted(self._peers)]

        def left(_: object) -> None:
            self.phase = "left"

        return DeferredList(sent, consumeErrors=True).addCallback(left)


@implementer(ITopologyPlugin)
class FullMeshPlugin:
    name = "FULL-MESH"
    nodeIdLength = ID_LENGTH

    def makeTopology(self, node: INode, rng: Random | None = None) -> FullMeshTopology:
        return FullMeshTopology(node)

    def makeClientTopology(self, node: INode, directLinks: int) -> ClientTopology:
        return ClientTopology(node, hashName)


fullMesh = FullMeshPlugin()
