"""Hypothesis strategies for the link-level wire code: framed messages
(RFC 6940 section 6.6.2) and whole RELOAD messages to fragment (section 6.7).

Shared so that link-layer tests can reuse them.
"""

from __future__ import annotations

from hypothesis import strategies as st

from reload.wire.framing import AckFrame, DataFrame, Frame
from reload.wire.header import Destination, ForwardingHeader

uint32 = st.integers(min_value=0, max_value=0xFFFFFFFF)

data_frames = st.builds(DataFrame, sequence=uint32, message=st.binary(max_size=300))
ack_frames = st.builds(AckFrame, ack_sequence=uint32, received=uint32)
frames: st.SearchStrategy[Frame] = st.one_of(data_frames, ack_frames)

node_ids = st.binary(min_size=16, max_size=16)
destinations = st.one_of(
    st.builds(Destination.node, node_ids),
    st.builds(Destination.resource, st.binary(min_size=1, max_size=32)),
)

forwarding_headers = st.builds(
    ForwardingHeader,
    overlay=uint32,
    transaction_id=st.integers(min_value=0, max_value=(1 << 64) - 1),
    destination_list=st.lists(destinations, min_size=1, max_size=3).map(tuple),
    via_list=st.lists(st.builds(Destination.node, node_ids), max_size=3).map(tuple),
    configuration_sequence=st.integers(min_value=0, max_value=0xFFFF),
    ttl=st.integers(min_value=0, max_value=100),
    max_response_length=uint32,
)


def reload_message(header: ForwardingHeader, body: bytes) -> bytes:
    """An encoded, unfragmented message: ``header`` then ``body``."""
    return header.encode(len(body)) + body


@st.composite
def reload_messages(draw: st.DrawFn, min_body: int = 0, max_body: int = 4000) -> bytes:
    """Whole messages (fragment field 0xC0000000) with a random body."""
    header = draw(forwarding_headers)
    # Draw the size first: st.binary alone stays short, which would never
    # need fragmenting.
    size = draw(st.integers(min_value=min_body, max_value=max_body))
    seed = draw(st.binary(min_size=1, max_size=64))
    body = (seed * (size // len(seed) + 1))[:size]
    return reload_message(header, body)
