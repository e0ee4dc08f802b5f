"""The CHORD-RELOAD topology plugin (RFC 6940 section 10).

Only the plugin object lives here, so that ``getPlugins(ITopologyPlugin,
topologies)`` finds it; the algorithm is in :mod:`reload.chord`.
"""

from __future__ import annotations

from random import Random
from typing import cast

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from reload.chord.ring import NODE_ID_LENGTH, hashResource
from reload.chord.topology import ChordNode, ChordTopology
from reload.client import ClientTopology
from reload.direct import DirectClientTopology
from reload.interfaces import INode, ITopologyPlugin

__all__ = ["ChordPlugin", "chord"]


@implementer(ITopologyPlugin)
class ChordPlugin:
    """Builds a :class:`ChordTopology` for a node."""

    #: Section 10 / 14.3: the overlay algorithm name the configuration's
    #: ``topology-plugin`` element uses.
    name = "CHORD-RELOAD"
    #: Section 10.2: 128-bit Node-IDs and Resource-IDs.
    nodeIdLength = NODE_ID_LENGTH

    def makeTopology(self, node: INode, rng: Random | None = None) -> ChordTopology:
        """A topology for ``node``; nothing is sent until ``join``.  ``rng``
        drives its timer offsets and finger choices (section 10.7.4)."""
        return ChordTopology(cast(ChordNode, node), rng=rng)

    def makeClientTopology(self, node: INode, directLinks: int) -> ClientTopology:
        """A client of a CHORD-RELOAD overlay (section 4.2), hashing as
        section 10.2 says, with up to ``directLinks`` direct links to
        responsible peers (section 6.5.1)."""
        length = len(node.nodeId)

        def hashName(name: bytes) -> bytes:
            return hashResource(name, length)

        if directLinks:
            return DirectClientTopology(node, hashName, cast(IReactorTime, node.clock), directLinks)
        return ClientTopology(node, hashName)


chord = ChordPlugin()
