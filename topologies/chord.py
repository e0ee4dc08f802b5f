"""The CHORD-RELOAD topology plugin (RFC 6940 section 10).

Only the plugin object lives here, so that ``getPlugins(ITopologyPlugin,
topologies)`` finds it; the algorithm, its codec and its clients' direct
links are in :mod:`topologies.chordreload`.
"""

from __future__ import annotations

from random import Random
from typing import cast

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from reload.interfaces import INode, ITopologyPlugin
from topologies.chordreload.client import ChordClientTopology
from topologies.chordreload.direct import DirectClientTopology
from topologies.chordreload.ring import NODE_ID_LENGTH
from topologies.chordreload.topology import ChordNode, ChordTopology

__all__ = ["ChordPlugin", "chord"]


@implementer(ITopologyPlugin)
class ChordPlugin:
    """Builds a :class:`ChordTopology` for a peer, a client topology for a
    client."""

    #: Section 10 / 14.3: the overlay algorithm name the configuration's
    #: ``topology-plugin`` element uses.
    name = "CHORD-RELOAD"
    #: Section 10.2: 128-bit Node-IDs and Resource-IDs.
    nodeIdLength = NODE_ID_LENGTH

    def makeTopology(self, node: INode, rng: Random | None = None) -> ChordTopology:
        """A topology for ``node``; nothing is sent until ``join``.  ``rng``
        drives its timer offsets and finger choices (section 10.7.4)."""
        return ChordTopology(cast(ChordNode, node), rng=rng)

    def makeClientTopology(self, node: INode, directLinks: int) -> ChordClientTopology:
        """A client of a CHORD-RELOAD overlay (section 4.2), hashing as
        section 10.2 says, with up to ``directLinks`` direct links to the
        peers responsible for the Resource-IDs it uses (section 6.5.1;
        :mod:`topologies.chordreload.direct`)."""
        if directLinks:
            return DirectClientTopology(node, cast(IReactorTime, node.clock), directLinks)
        return ChordClientTopology(node)


chord = ChordPlugin()
