"""The ONE-HOP-RELOAD topology plugin: every peer keeps the whole
membership, so a request takes one overlay hop.

ONE-HOP-RELOAD is a private ``topology-plugin`` name of this
implementation, not an IANA registration (RFC 6940 section 14.3 lists only
CHORD-RELOAD).  The algorithm is in :mod:`topologies.onehopreload`.
"""

from __future__ import annotations

from random import Random
from typing import cast

from zope.interface import implementer

from reload.interfaces import INode, ITopologyPlugin
from topologies.onehopreload.client import OneHopClientTopology
from topologies.onehopreload.topology import OneHopNode, OneHopTopology

__all__ = ["OneHopPlugin", "oneHop"]


@implementer(ITopologyPlugin)
class OneHopPlugin:
    """Builds a :class:`OneHopTopology` for a peer, a client topology for
    a client."""

    name = "ONE-HOP-RELOAD"
    nodeIdLength = 16

    def makeTopology(self, node: INode, rng: Random | None = None) -> OneHopTopology:
        return OneHopTopology(cast(OneHopNode, node), rng=rng)

    def makeClientTopology(self, node: INode, directLinks: int) -> OneHopClientTopology:
        return OneHopClientTopology(node, directLinks)


oneHop = OneHopPlugin()
