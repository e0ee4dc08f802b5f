"""ONE-HOP-RELOAD's parameters and their defaults.

The overlay configuration (RFC 6940 section 11.1) has no elements for a
private topology, so these are read, like CHORD-RELOAD's, by attribute
from whatever ``node.configuration`` is (``oneHopGossipInterval`` and the
others below, ``None`` or absent for the default).

Bandwidth: a peer sends at most ``fanout`` event Updates every
``gossipInterval`` seconds however fast peers join and fail (events wait
and travel together, at most ``maxEntries`` an Update), one digest
exchange every ``digestInterval`` seconds, and opens at most
``linksPerTick`` links every ``linkInterval`` seconds.  An event is
forwarded in ``eventRounds`` rounds by every peer that hears it first, so
it reaches all peers in about log_(fanout·eventRounds)(N) rounds; a peer
it misses learns it from the next digest exchange that involves a peer
that has it.

Ring neighbours do not rely on gossip: a peer exchanges its neighbourhood
with every new ring neighbour, confirmed by the answer and retried
(``announceAttempts`` times, waiting 1, 2, 4... seconds), and with its
successor in each digest round (two messages more), so a neighbour that
missed a join or a failure learns it within ``digestInterval``.
A peer is reported failed after ``suspectAttempts`` Attaches in a row that
nobody answered for it (an Attach the peer itself refused, such as
crossed Attaches, shows it alive), and the report goes to the peer too,
so that one alive refutes it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["OneHopSettings"]


@dataclass(frozen=True, slots=True)
class OneHopSettings:
    """Timers and bounds of one ONE-HOP-RELOAD peer."""

    gossipInterval: float = 10.0
    fanout: int = 2
    eventRounds: int = 3
    digestInterval: float = 120.0
    tombstoneTtl: float = 1800.0
    #: Links this peer opens to other peers at most (beyond that it
    #: forwards through the closest preceding peer it has a link to).
    maxLinks: int = 2048
    #: Links to members other than the ring neighbours: ``linksPerTick``
    #: every ``linkInterval`` seconds.  An Attach and its answer cross
    #: about four links, so a peer that is filling its links costs about
    #: 4 * linksPerTick / linkInterval messages a second (0.4), and a
    #: mesh of 1,000 peers built at once is complete after about
    #: 1,000 / (2 * 0.1) s, 1.4 hours (both sides open links).
    linkInterval: float = 10.0
    linksPerTick: int = 1
    #: Entries in one message: 21 bytes each keeps it far inside the
    #: default max-message-size of 5,000 bytes.
    maxEntries: int = 150
    #: Tries of a neighbour exchange with a new ring neighbour.
    announceAttempts: int = 5
    #: Failed Attaches in a row before a peer is reported failed.
    suspectAttempts: int = 3
    #: Peers either side that count as neighbours (replica Stores come
    #: from them, section 7.4.1.1).
    neighbours: int = 3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"ONE-HOP-RELOAD {f.name} must be positive, not {value!r}")

    @classmethod
    def fromConfiguration(cls, configuration: object) -> OneHopSettings:
        values = {}
        for f in fields(cls):
            name = "oneHop" + f.name[0].upper() + f.name[1:]
            value = getattr(configuration, name, None)
            if value is not None:
                values[f.name] = type(getattr(cls(), f.name))(value)
        return cls(**values)
