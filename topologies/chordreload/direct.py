"""A CHORD-RELOAD client's direct links to the peers responsible for the
Resource-IDs it uses.

A client (section 4.2) hands every request to one peer, which routes it on
through the ring: a Fetch or Store costs the forwarding hops there and back.
RFC 6940 allows a shorter way for a node that uses some Resource-IDs often:
"An Attach routed to a Resource-ID will establish a connection with the peer
currently responsible for that Resource-ID, which may be useful in
establishing a direct connection to the responsible peer for use with
frequent or large resource updates" (section 6.5.1), and after a RouteQuery
walk "the sender can send messages directly to that peer" (6.4.2.4).

:class:`DirectClientTopology` does that with what the answers already say.
The answer to a Store, Fetch, Stat or Find comes from the peer responsible
for its Resource-ID (the transport reports its signer through
:meth:`answeredFor`); the client Attaches to that peer with send_update, and
the peer's Update (section 6.5.1.2, 10.7) names its predecessor, so the
client knows the range (predecessor, peer] the peer is responsible for
(section 10.3).  A request for a Resource-ID in a known range goes straight
to that peer; everything else goes to the client's own peer as before.

Section 6.5.1 forbids routing "through B to other peers" over an Attach
link before B has sent an Update: a peer is used only once its Update came,
and only for ids in its range.  Ranges go stale when peers join; a request
then reaches the old peer, which routes it to the new one (it sent an
Update, so that is allowed), and the answer's signer is learnt in turn.  A
range never reaches past a closer known peer, and a peer whose link goes
down is forgotten.  At most ``maxLinks`` peers are attached this way.

What a peer's Update claims cannot widen its share: a request goes to the
first known peer at or after its id, so a peer that names a far-away
predecessor still gets only the ids no other known peer is closer to, and
what it answers is checked as everything else is (signatures, access
policies): a peer can withhold data for its range, as it could as the
responsible peer on a routed path.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.api.topology import DEFAULT_DIRECT_LINKS, DecodeError
from reload.interfaces import INode
from topologies.chordreload.client import ChordClientTopology
from topologies.chordreload.codec import ChordUpdate, ChordUpdateType

__all__ = ["DirectClientTopology"]

#: Seconds before an Attach that failed is tried again for the same peer.
RETRY_AFTER = 60.0


class DirectClientTopology(ChordClientTopology):
    """:class:`~topologies.chordreload.client.ChordClientTopology` plus direct links to the peers
    that answered for the Resource-IDs it used (module docstring).

    ``clock`` times the retry of failed Attaches; ``maxLinks`` bounds the
    direct links.
    """

    log = Logger()

    def __init__(
        self,
        node: INode,
        clock: IReactorTime,
        maxLinks: int = DEFAULT_DIRECT_LINKS,
    ) -> None:
        super().__init__(node)
        if maxLinks < 1:
            raise ValueError(f"maxLinks must be at least 1, got {maxLinks}")
        self.clock = clock
        self.maxLinks = maxLinks
        self._size = 1 << (8 * len(node.nodeId))
        #: Node-IDs (as integers, sorted) of the peers with a known range.
        self._ids: list[int] = []
        #: Each of those peers' predecessor, from its Update.
        self._predecessor: dict[int, int] = {}
        self._attaching: set[bytes] = set()
        self._retryAt: dict[bytes, float] = {}
        #: What happened, for status pages and tests.
        self.counters: Counter[str] = Counter()

    # -- routing ----------------------------------------------------------------------

    def nextHop(self, destination: bytes) -> bytes | None:
        """The peer whose known range holds ``destination``, else the
        client's own peer."""
        ids = self._ids
        if ids:
            target = int.from_bytes(destination, "big")
            index = bisect_left(ids, target)
            peer = ids[index] if index < len(ids) else ids[0]
            if self._inRange(target, self._predecessor[peer], peer):
                self.counters["direct"] += 1
                return peer.to_bytes(len(destination), "big")
        return super().nextHop(destination)

    def _inRange(self, x: int, predecessor: int, peer: int) -> bool:
        """``x`` in (predecessor, peer] clockwise (the whole ring for a peer
        that is its own predecessor: it is alone, section 10.1)."""
        if predecessor == peer:
            return True
        size = self._size
        return 0 < (x - predecessor) % size <= (peer - predecessor) % size

    # -- learning ---------------------------------------------------------------------

    def answeredFor(self, resourceId: bytes, nodeId: bytes) -> None:
        """The transport's report: ``nodeId`` answered a Store, Fetch, Stat
        or Find for ``resourceId``, so it is responsible for it.  Attach to
        it (with send_update) unless that is done, under way, recently
        failed or over the limit."""
        if nodeId == self.nodeId or int.from_bytes(nodeId, "big") in self._predecessor:
            return
        if nodeId in self._attaching or len(self._ids) + len(self._attaching) >= self.maxLinks:
            return
        now = self.clock.seconds()
        if self._retryAt.get(nodeId, 0.0) > now:
            return
        if len(self._retryAt) > 4 * self.maxLinks:
            # Forget failures whose wait is over, so churn cannot grow it.
            self._retryAt = {n: t for n, t in self._retryAt.items() if t > now}
        self._attaching.add(nodeId)
        self.counters["attaches"] += 1
        d: Deferred[bytes] = self.node.attach(nodeId, sendUpdate=True)

        def failed(failure: Failure) -> None:
            self.counters["attachFailures"] += 1
            self._retryAt[nodeId] = self.clock.seconds() + RETRY_AFTER
            self.log.info(
                "Direct link to {peer} failed: {why}",
                peer=nodeId.hex(),
                why=failure.getErrorMessage(),
            )

        def done(_: object) -> None:
            self._attaching.discard(nodeId)

        d.addCallbacks(lambda _: None, failed).addBoth(done)

    def handleUpdate(self, sender: bytes, data: bytes) -> bytes:
        """Section 6.5.1.2: the Update a peer sends after an Attach with
        send_update; its first predecessor bounds the peer's range."""
        answer = super().handleUpdate(sender, data)
        if sender not in self._connected:
            return answer  # routed here: no link to send its range over
        try:
            update = ChordUpdate.decode(data, len(sender))
        except (DecodeError, ValueError):
            return answer
        if update.type is ChordUpdateType.PEER_READY:
            return answer  # names no neighbours (section 10.7)
        peer = int.from_bytes(sender, "big")
        if update.predecessors:
            predecessor = int.from_bytes(update.predecessors[0], "big")
        elif update.successors:
            return answer  # a lone peer names neither; one with successors should
        else:
            predecessor = peer
        if peer not in self._predecessor:
            if len(self._ids) >= self.maxLinks:
                return answer
            insort(self._ids, peer)
        self._predecessor[peer] = predecessor
        return answer

    def linkDown(self, nodeId: bytes) -> None:
        peer = int.from_bytes(nodeId, "big")
        if self._predecessor.pop(peer, None) is not None:
            self._ids.remove(peer)
        super().linkDown(nodeId)

    def neighbours(self) -> dict[str, list[bytes]]:
        """Its peer and the peers it has direct links to, for status pages."""
        view = super().neighbours()
        length = len(self.nodeId)
        view["direct"] = [peer.to_bytes(length, "big") for peer in self._ids]
        return view
