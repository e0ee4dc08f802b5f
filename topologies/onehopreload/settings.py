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
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["OneHopSettings"]


@dataclass(frozen=True, slots=True)
class OneHopSettings:
    """Timers and bounds of one ONE-HOP-RELOAD peer."""

    gossipInterval: float = 5.0
    fanout: int = 2
    eventRounds: int = 3
    digestInterval: float = 120.0
    tombstoneTtl: float = 1800.0
    #: Links this peer opens to other peers at most (beyond that it
    #: forwards through the closest preceding peer it has a link to).
    maxLinks: int = 2048
    linkInterval: float = 1.0
    linksPerTick: int = 2
    #: Entries in one message: 21 bytes each keeps it far inside the
    #: default max-message-size of 5,000 bytes.
    maxEntries: int = 150
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
