"""Resource Names the base protocol defines for usages (RFC 6940).

A usage whose Kind is written under NODE-MULTIPLE (section 7.3.4) stores at
the Resource-IDs H(Node-ID || i) for i = 1 up to the Kind's
max-node-multiple.  The RFC leaves the bytes of i open; the storing peer's
access check (``reload.storage.policies.NodeMultiple``) and every writer
must agree on them, so a plugin forms the name with
:func:`nodeMultipleResourceName` and hashes it with
:meth:`reload.interfaces.INode.resourceId`, never by itself.
"""

from __future__ import annotations

from reload.storage.policies import MAX_ITERATION, iterationSuffix
from reload.storage.policies import nodeMultipleResourceName as _nodeMultipleResourceName

__all__ = ["MAX_ITERATION", "iterationSuffix", "nodeMultipleResourceName"]


def nodeMultipleResourceName(nodeId: bytes, i: int) -> bytes:
    """The Resource Name ``Node-ID || i`` of NODE-MULTIPLE (section
    7.3.4): the Node-ID's bytes followed by i as one unsigned byte (the
    width of TurnServer's ``uint8 iteration``, section 9).  ValueError when
    i does not fit a byte."""
    return _nodeMultipleResourceName(nodeId, i)
