"""The CHORD-RELOAD topology plugin (RFC 6940 section 10).

Only the plugin object lives here, so that ``getPlugins(ITopologyPlugin,
topologies)`` finds it; the algorithm is in :mod:`reload.chord`.
"""

from __future__ import annotations

from typing import cast

from zope.interface import implementer

from reload.chord.ring import NODE_ID_LENGTH
from reload.chord.topology import ChordNode, ChordTopology
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

    def makeTopology(self, node: INode) -> ChordTopology:
        """A topology for ``node``; nothing is sent until ``join``."""
        return ChordTopology(cast(ChordNode, node))


chord = ChordPlugin()
