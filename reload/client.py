"""The client role (RFC 6940 section 4.2): a node that uses the overlay
without joining it.

A client has a certificate and signs like a peer, but takes no part in
routing or storage.  Section 4.2.1 gives it two ways in; this one takes the
first and falls back to the second:

* it Attaches to the peer responsible for its own Node-ID (through the
  bootstrap peer it is connected to), so that messages for its Node-ID
  reach it: that peer routes the last hop to a node it is connected to;
* if that Attach fails, it keeps the bootstrap link and is reachable only
  by Destination List.

Every message it sends goes to that peer.  The peers never add it to
their Routing Tables: it sends no Join, no Update and no peer_ready Ping
(section 10.7), so to CHORD-RELOAD it stays a connected node.  It answers
the Updates a peer sends it (section 4.2.1: "clients ... need to process
Update messages") and, when its peer's link goes down, attaches again
through any peer it is still connected to.

:class:`ClientTopology` implements :class:`reload.interfaces.ITopology`
around the overlay topology's hash (a client "needs an implementation of an
appropriate algorithm for the overlay" to compute Resource-IDs, 4.2.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.errors import ReloadError
from reload.interfaces import INode, ITopology
from reload.wire.message import ErrorCode

__all__ = ["ClientError", "ClientTopology"]


class ClientError(Exception):
    """The client cannot reach the overlay."""


@implementer(ITopology)
class ClientTopology:
    """A client's view of the overlay: one peer it sends everything to.

    ``node`` gives ``nodeId`` and ``attach``; ``hashResource`` is the
    overlay topology's (section 10.2 for CHORD-RELOAD).
    """

    log = Logger()

    def __init__(self, node: INode, hashResource: Callable[[bytes], bytes]) -> None:
        self.node = node
        self._hash = hashResource
        self.nodeId: bytes = node.nodeId
        #: The peer every message goes to, once attached.
        self.peer: bytes | None = None
        self._connected: set[bytes] = set()
        self._callbacks: list[object] = []
        self._joined = False
        self._reattaching: Deferred[None] | None = None

    # -- routing (ITopology) ---------------------------------------------------------

    def nextHop(self, destination: bytes) -> bytes | None:
        """Everything goes to the client's peer: a client is responsible for
        nothing, so None (deliver here) is never the answer, except before
        it has a peer at all."""
        if self.peer is not None:
            return self.peer
        return next(iter(sorted(self._connected)), None)

    def isResponsible(self, resourceId: bytes) -> bool:
        return False

    def replicaSet(self, resourceId: bytes) -> list[bytes]:
        return []

    # -- storage questions (ITopology): a client holds nothing (section 4.2) ----

    def holdsReplica(self, resourceId: bytes) -> bool:
        return False

    def responsiblePeer(self, resourceId: bytes) -> bytes:
        """As far as a client knows, the peer it sends the request to (its
        own Node-ID before it has one)."""
        hop = self.nextHop(resourceId)
        return self.nodeId if hop is None else hop

    def isNeighbour(self, nodeId: bytes) -> bool:
        """A client has no Neighbor Table, so it takes no replica Store
        (section 7.4.1.1)."""
        return False

    def shouldHold(self, resourceId: bytes) -> bool:
        return False

    def answeredFor(self, resourceId: bytes, nodeId: bytes) -> None:
        """Nothing to learn: everything goes to the client's peer (a
        topology's client subclass may keep direct links, section 6.5.1)."""

    def routeQueryAnswer(self, data: bytes) -> dict[str, Any]:
        """The RouteQueryAns format is the overlay topology's (section
        6.4.2.4); this client decodes nothing of it."""
        return {}

    # -- join state (ITopology) ------------------------------------------------------

    @property
    def phase(self) -> str:
        """'joined' while the client uses the overlay (section 4.2.1),
        'idle' before and after."""
        return "joined" if self._joined else "idle"

    @property
    def inRing(self) -> bool:
        """Never: a client is part of no ring (section 4.2)."""
        return False

    def hashResource(self, name: bytes) -> bytes:
        return self._hash(name)

    def neighbours(self) -> dict[str, list[bytes]]:
        """Its one peer, for status pages."""
        return {"peer": [self.peer] if self.peer is not None else []}

    def onResponsibilityChange(self, callback: object) -> None:
        """A client is never responsible for anything: nothing to report."""
        if not callable(callback):
            raise TypeError(f"{callback!r} is not callable")
        self._callbacks.append(callback)

    # -- life ---------------------------------------------------------------------

    def join(self, admittingPeer: bytes | None) -> Deferred[None]:
        """Section 4.2.1: attach to the peer responsible for this Node-ID
        through ``admittingPeer`` (the bootstrap peer), or stay with it."""
        if admittingPeer is None:
            return fail(
                ClientError(
                    "a client cannot start an overlay: give it a bootstrap peer that answers"
                )
            )
        self.peer = admittingPeer
        self._joined = True
        return self._attachResponsible(admittingPeer)

    def _attachResponsible(self, via: bytes) -> Deferred[None]:
        # The peer responsible for n is the first at or after n, and so for
        # n + 1 as well (no peer has the client's Node-ID); an Attach for n
        # itself would be refused as one to this node.
        d = self.node.attach(_next(self.nodeId), via=via)

        def attached(peer: bytes) -> None:
            self.peer = peer
            self.log.info(
                "Client attached to {peer}, the peer responsible for its Node-ID",
                peer=peer.hex(),
            )

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError):
                # The node is stopping (its transport fails what is still
                # pending): nothing is wrong and nothing is left to do.
                self.log.info(
                    "Client: attach to the peer responsible for its Node-ID cancelled ({why})",
                    why=failure.getErrorMessage(),
                )
                return
            self.log.warn(
                "Client: cannot attach to the peer responsible for its Node-ID ({why});"
                " using {peer}, reachable by Destination List only (section 4.2.1)",
                why=failure.getErrorMessage(),
                peer=via.hex(),
            )

        return d.addCallbacks(attached, failed)

    def leave(self) -> Deferred[None]:
        """A client has nothing to hand over and sends no Leave."""
        self._joined = False
        return succeed(None)

    # -- what peers send it ------------------------------------------------------------

    def handleJoin(self, joiningPeer: bytes, data: bytes) -> bytes:
        raise ReloadError(ErrorCode.FORBIDDEN, "this node is a client: join through a peer")

    def handleUpdate(self, sender: bytes, data: bytes) -> bytes:
        """Section 4.2.1: Updates from its peer are answered (their content
        matters to peers only; a change of responsibility shows up as the
        peer closing the link, which :meth:`linkDown` handles)."""
        return b""

    def handleLeave(self, leavingPeer: bytes, data: bytes) -> None:
        if leavingPeer == self.peer:
            self._peerLost(leavingPeer)

    def handleRouteQuery(
        self, destination: bytes, sendUpdate: bool, data: bytes, requester: bytes | None = None
    ) -> bytes:
        raise ReloadError(ErrorCode.FORBIDDEN, "this node is a client: it routes nothing")

    def sendUpdate(self, peer: bytes) -> Deferred[None]:
        return succeed(None)

    # -- links -------------------------------------------------------------------------

    def linkUp(self, nodeId: bytes) -> None:
        if nodeId != self.nodeId:
            self._connected.add(nodeId)

    def linkDown(self, nodeId: bytes) -> None:
        self._connected.discard(nodeId)
        if nodeId == self.peer:
            self._peerLost(nodeId)

    def _peerLost(self, peer: bytes) -> None:
        """Attach again through any peer still connected (section 4.2.1:
        "The client would then need to form a connection to the appropriate
        peer")."""
        self.peer = None
        if not self._joined or self._reattaching is not None:
            return
        others = sorted(self._connected - {peer})
        if not others:
            self.log.warn("Client: lost its peer {peer} and has no other link", peer=peer.hex())
            return
        self.peer = others[0]
        d = self._attachResponsible(others[0])
        self._reattaching = d

        def done(_: Any) -> None:
            self._reattaching = None

        # An attach that fails at once (a stopped transport) has fired
        # already: ``done`` runs now and the next lost link tries again.
        d.addBoth(done)


def _next(nodeId: bytes) -> bytes:
    """``nodeId + 1`` modulo the size of the id space."""
    value = (int.from_bytes(nodeId, "big") + 1) % (1 << (8 * len(nodeId)))
    return value.to_bytes(len(nodeId), "big")
