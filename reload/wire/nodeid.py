"""Node-ID lengths (RFC 6940 section 6.3.1.1): one definition for the codec.

A NodeId is ``opaque NodeId[NodeIdLength]``: its length is not on the wire
but fixed by the overlay configuration (``node-id-length``, 16 to 20 bytes,
default 16; CHORD-RELOAD uses 16, section 10.2).
"""

from __future__ import annotations

from typing import Final

from reload.wire.errors import EncodeError

DEFAULT_NODE_ID_LENGTH: Final = 16
MIN_NODE_ID_LENGTH: Final = 16
MAX_NODE_ID_LENGTH: Final = 20


def check_node_id_length(node_id_length: int) -> int:
    """Return ``node_id_length`` if the RFC allows it, else raise ValueError.

    A wrong length here is the caller's bug (a bad configuration value), not
    bad input, so it is not a :class:`~reload.wire.errors.DecodeError`.
    """
    if not MIN_NODE_ID_LENGTH <= node_id_length <= MAX_NODE_ID_LENGTH:
        raise ValueError(
            f"NodeIdLength must be {MIN_NODE_ID_LENGTH}-{MAX_NODE_ID_LENGTH}, not {node_id_length}"
        )
    return node_id_length


def encode_node_id(node_id: bytes) -> bytes:
    """A NodeId as it goes on the wire: its bytes, no length (section 6.3.1.1)."""
    if not MIN_NODE_ID_LENGTH <= len(node_id) <= MAX_NODE_ID_LENGTH:
        raise EncodeError(
            f"a Node-ID is {MIN_NODE_ID_LENGTH}-{MAX_NODE_ID_LENGTH} bytes, not {len(node_id)}"
        )
    return node_id
