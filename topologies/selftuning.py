"""The CHORD-SELF-TUNING topology plugin (RFC 7363, registered in its
section 9.2): CHORD-RELOAD's code with adaptive stabilisation, in
:mod:`topologies.chordselftuning`."""

from __future__ import annotations

from random import Random
from typing import cast

from zope.interface import implementer

from reload.interfaces import INode, ITopologyPlugin
from topologies.chord import chord
from topologies.chordreload.client import ChordClientTopology
from topologies.chordreload.node import ChordNode
from topologies.chordreload.ring import NODE_ID_LENGTH
from topologies.chordselftuning.topology import SelfTuningTopology

__all__ = ["SelfTuningPlugin", "selfTuning"]


@implementer(ITopologyPlugin)
class SelfTuningPlugin:
    name = "CHORD-SELF-TUNING"
    nodeIdLength = NODE_ID_LENGTH

    def makeTopology(self, node: INode, rng: Random | None = None) -> SelfTuningTopology:
        return SelfTuningTopology(cast(ChordNode, node), rng=rng)

    def makeClientTopology(self, node: INode, directLinks: int) -> ChordClientTopology:
        """A client sees a Chord ring either way (section 4.2)."""
        return chord.makeClientTopology(node, directLinks)


selfTuning = SelfTuningPlugin()
