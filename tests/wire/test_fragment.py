"""Tests of fragmentation and reassembly (RFC 6940 section 6.7)."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reload.wire.errors import DecodeError, EncodeError
from reload.wire.fragment import (
    FRAGMENT_HEADROOM,
    MIN_FRAGMENT_BODY,
    UNFRAGMENTED,
    Reassembler,
    fragment,
)
from reload.wire.header import (
    FRAGMENT_HIGH_BIT,
    FRAGMENT_OFFSET_MASK,
    LAST_FRAGMENT,
    Destination,
    ForwardingHeader,
    HeaderView,
)
from tests.wire.fuzzing import fuzz_decoder
from tests.wire.strategies_framing import reload_message, reload_messages

NODE_A = bytes([0xAA]) * 16
HEADER = ForwardingHeader(
    overlay=0x01020304,
    transaction_id=0x1122334455667788,
    destination_list=(Destination.node(NODE_A),),
)
HEADER_SIZE = 56  # 38 fixed + destination: type, length, 16-byte Node-ID
BODY = bytes(i % 251 for i in range(600))
MESSAGE = reload_message(HEADER, BODY)


def make_fragment(header: ForwardingHeader, offset: int, last: bool, chunk: bytes) -> bytes:
    """A fragment built field by field, whatever its consistency."""
    field = FRAGMENT_HIGH_BIT | (LAST_FRAGMENT if last else 0) | offset
    return dataclasses.replace(header, fragment=field).encode(len(chunk)) + chunk


# -- fragment(): worked example -----------------------------------------------


def test_fragments_byte_exact_section_6_7() -> None:
    # 656-byte message, path MTU 400: fragments are at most 400 - 32 = 368
    # bytes, so 312 bytes of body fit after the 56-byte header; 600 bytes of
    # body make two equal fragments of 300.
    first, second = fragment(MESSAGE, 400)
    fixed_first = bytes.fromhex(
        "d2454c4f"  # relo_token "RELO" with the high bit set
        "01020304"  # overlay
        "0000"  # configuration_sequence
        "0a"  # version 1.0
        "64"  # ttl 100
        "80000000"  # fragment: high bit, not last, offset 0
        "00000164"  # length 356: the size of this fragment
        "1122334455667788"  # transaction_id
        "00000000"  # max_response_length
        "0000"  # via_list_length
        "0012"  # destination_list_length: 18
        "0000"  # options_length
    )
    fixed_second = bytes.fromhex(
        "d2454c4f"
        "01020304"
        "0000"
        "0a"
        "64"
        "c000012c"  # fragment: high bit, last, offset 300 (bytes after the header)
        "00000164"  # length 356
        "1122334455667788"
        "00000000"
        "0000"
        "0012"
        "0000"
    )
    destination = bytes([0x01, 0x10]) + NODE_A  # node, 16 bytes, Node-ID
    assert first == fixed_first + destination + BODY[:300]
    assert second == fixed_second + destination + BODY[300:]


def test_message_that_fits_is_not_fragmented() -> None:
    assert fragment(MESSAGE, len(MESSAGE)) == [MESSAGE]
    assert fragment(MESSAGE, 10_000)[0] is MESSAGE


def test_no_fragmentation_when_the_header_leaves_less_than_256_bytes_section_6_7() -> None:
    # 343 - 32 - 56 = 255: a copy of the header leaves room for 255 bytes of body.
    mtu = HEADER_SIZE + FRAGMENT_HEADROOM + MIN_FRAGMENT_BODY - 1
    message = reload_message(HEADER, bytes(768))
    assert fragment(message, mtu) == [message]
    # One more byte: three fragments of exactly 256 bytes of body.
    pieces = fragment(message, mtu + 1)
    assert [len(p) - HEADER_SIZE for p in pieces] == [256, 256, 256]


def test_no_fragmentation_when_the_body_cannot_give_each_fragment_256_bytes() -> None:
    message = reload_message(HEADER, bytes(320))  # two fragments would carry 160 each
    assert fragment(message, 400) == [message]


def test_mtu_must_be_positive() -> None:
    with pytest.raises(ValueError):
        fragment(MESSAGE, 0)


def test_fragmenting_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        fragment(b"\x00" * 500, 300)


def test_refragmenting_a_fragment_keeps_offsets_of_the_whole_section_6_7() -> None:
    message = reload_message(HEADER, bytes(range(200)) * 6)  # 1200-byte body
    first, second = fragment(message, 800)  # 600 + 600
    pieces = fragment(first, 400) + fragment(second, 400)
    fields = [HeaderView(p, 10_000).fragment for p in pieces]
    assert fields == [
        FRAGMENT_HIGH_BIT | 0,
        FRAGMENT_HIGH_BIT | 300,
        FRAGMENT_HIGH_BIT | 600,
        FRAGMENT_HIGH_BIT | LAST_FRAGMENT | 900,
    ]
    reassembler = Reassembler()
    results = [reassembler.feed(p, 0.0) for p in reversed(pieces)]
    assert results[:3] == [None, None, None]
    assert results[3] == message


def test_offsets_that_do_not_fit_24_bits_raise_encode_error() -> None:
    near_end = make_fragment(HEADER, FRAGMENT_OFFSET_MASK - 10, True, bytes(600))
    with pytest.raises(EncodeError):
        fragment(near_end, 400)


@settings(max_examples=200)
@given(reload_messages(min_body=600, max_body=3000), st.integers(min_value=400, max_value=1600))
def test_fragments_are_equal_sized_and_within_mtu_minus_32_section_6_7(
    message: bytes, mtu: int
) -> None:
    pieces = fragment(message, mtu)
    original = HeaderView(message, 10_000)
    if len(pieces) == 1:
        assert pieces == [message]
        return
    header_len = original.body_offset
    bodies: list[bytes] = []
    for index, piece in enumerate(pieces):
        view = HeaderView(piece, 10_000)  # also checks length == fragment size
        assert len(piece) <= mtu - FRAGMENT_HEADROOM
        assert piece[:12] == message[:12] and piece[20:header_len] == message[20:header_len]
        assert (view.fragment & LAST_FRAGMENT) == (LAST_FRAGMENT if piece is pieces[-1] else 0)
        assert view.fragment & FRAGMENT_OFFSET_MASK == sum(len(b) for b in bodies)
        assert view.fragment & 0x3F000000 == 0  # reserved bits zero
        bodies.append(piece[header_len:])
        assert len(bodies[index]) >= MIN_FRAGMENT_BODY
    sizes = {len(b) for b in bodies}
    assert max(sizes) - min(sizes) <= 1
    assert b"".join(bodies) == message[header_len:]


# -- reassembly: round trips ------------------------------------------------------


@settings(max_examples=300)
@given(
    # Sizes chosen so that most examples need several fragments.
    reload_messages(min_body=600, max_body=4000),
    st.integers(min_value=500, max_value=1500),
    st.integers(min_value=300, max_value=1500),
    st.randoms(use_true_random=False),
)
def test_fragment_then_reassemble_in_any_order_with_duplicates(
    message: bytes, mtu: int, second_mtu: int, rnd: random.Random
) -> None:
    pieces = fragment(message, mtu)
    # Some fragments are fragmented again further down the path, some
    # arrive twice, and pieces of a second, different fragmentation of the
    # same message overlap them.
    arriving: list[bytes] = []
    for piece in pieces:
        arriving += fragment(piece, second_mtu) if rnd.random() < 0.5 else [piece]
    arriving += rnd.sample(arriving, k=len(arriving) // 2)
    other = fragment(message, second_mtu)
    arriving += rnd.sample(other, k=rnd.randrange(len(other) + 1))
    rnd.shuffle(arriving)
    reassembler = Reassembler(max_message_size=10_000)
    result = None
    for index, piece in enumerate(arriving):
        result = reassembler.feed(piece, index * 0.01)  # well within the 15 s timeout
        if result is not None:
            break
    assert result == message
    assert HeaderView(result, 10_000).fragment == UNFRAGMENTED


def test_unfragmented_message_passes_through() -> None:
    reassembler = Reassembler()
    assert reassembler.feed(MESSAGE, 0.0) is MESSAGE
    assert len(reassembler) == 0


def test_fragments_of_interleaved_messages_are_kept_apart() -> None:
    other_header = dataclasses.replace(HEADER, transaction_id=7)
    other = reload_message(other_header, bytes(reversed(BODY)))
    a = fragment(MESSAGE, 400)
    b = fragment(other, 400)
    reassembler = Reassembler()
    assert reassembler.feed(a[0], 0) is None
    assert reassembler.feed(b[1], 0) is None
    assert len(reassembler) == 2
    assert reassembler.feed(b[0], 0) == other
    assert reassembler.feed(a[1], 0) == MESSAGE
    assert len(reassembler) == 0


def test_reassembled_message_keeps_the_header_of_the_first_fragment() -> None:
    # The fragments reached us along different routes (different Via Lists).
    via_header = dataclasses.replace(HEADER, via_list=(Destination.node(bytes(16)),))
    first = make_fragment(via_header, 0, False, BODY[:300])
    second = make_fragment(HEADER, 300, True, BODY[300:])
    reassembler = Reassembler()
    assert reassembler.feed(second, 0) is None
    assert reassembler.feed(first, 0) == reload_message(via_header, BODY)


# -- reassembly: inconsistent fragments ------------------------------------------


def _fed(reassembler: Reassembler, *pieces: bytes) -> None:
    for piece in pieces:
        assert reassembler.feed(piece, 0.0) is None


def test_overlap_with_different_bytes_is_a_decode_error_and_drops_the_message() -> None:
    reassembler = Reassembler()
    _fed(reassembler, make_fragment(HEADER, 0, False, bytes(300)))
    with pytest.raises(DecodeError) as info:
        reassembler.feed(make_fragment(HEADER, 200, True, b"\x01" * 300), 0.0)
    assert info.value.path == "Fragment.data"
    assert len(reassembler) == 0


def test_overlap_with_equal_bytes_is_accepted() -> None:
    reassembler = Reassembler()
    _fed(
        reassembler,
        make_fragment(HEADER, 0, False, BODY[:300]),
        make_fragment(HEADER, 0, False, BODY[:300]),
        make_fragment(HEADER, 100, False, BODY[100:400]),
    )
    assert reassembler.feed(make_fragment(HEADER, 250, True, BODY[250:]), 0.0) == MESSAGE


def test_two_different_last_fragments_are_a_decode_error() -> None:
    reassembler = Reassembler()
    _fed(reassembler, make_fragment(HEADER, 300, True, BODY[300:]))
    with pytest.raises(DecodeError):
        reassembler.feed(make_fragment(HEADER, 300, True, BODY[300:500]), 0.0)
    assert len(reassembler) == 0


def test_last_fragment_before_data_already_received_is_a_decode_error() -> None:
    reassembler = Reassembler()
    _fed(reassembler, make_fragment(HEADER, 300, False, BODY[300:]))
    with pytest.raises(DecodeError):
        reassembler.feed(make_fragment(HEADER, 100, True, BODY[100:300]), 0.0)
    assert len(reassembler) == 0


def test_data_past_the_last_fragment_is_a_decode_error() -> None:
    reassembler = Reassembler()
    _fed(reassembler, make_fragment(HEADER, 300, True, BODY[300:]))
    with pytest.raises(DecodeError):
        reassembler.feed(make_fragment(HEADER, 500, False, bytes(300)), 0.0)
    assert len(reassembler) == 0


def test_fragments_with_different_configuration_sequence_are_a_decode_error() -> None:
    reassembler = Reassembler()
    _fed(reassembler, make_fragment(HEADER, 0, False, BODY[:300]))
    changed = dataclasses.replace(HEADER, configuration_sequence=9)
    with pytest.raises(DecodeError) as info:
        reassembler.feed(make_fragment(changed, 300, True, BODY[300:]), 0.0)
    assert info.value.path == "Fragment.configuration_sequence"
    assert len(reassembler) == 0


def test_malformed_fragment_is_a_decode_error_and_keeps_other_state() -> None:
    reassembler = Reassembler()
    first, second = fragment(MESSAGE, 400)
    _fed(reassembler, first)
    with pytest.raises(DecodeError):
        reassembler.feed(b"\x00" + second[1:], 0.0)
    assert reassembler.feed(second, 0.0) == MESSAGE


# -- reassembly: bounds -----------------------------------------------------------------


def test_fragment_past_the_maximum_message_size_is_rejected() -> None:
    reassembler = Reassembler(max_message_size=5000)
    with pytest.raises(DecodeError) as info:
        reassembler.feed(make_fragment(HEADER, 4800, True, bytes(300)), 0.0)
    assert info.value.path == "Fragment.offset"
    assert len(reassembler) == 0
    # The same bound drops a partial message that a later fragment would
    # make too large.
    _fed(reassembler, make_fragment(HEADER, 0, False, bytes(300)))
    with pytest.raises(DecodeError):
        reassembler.feed(make_fragment(HEADER, 4900, False, bytes(100)), 0.0)
    assert len(reassembler) == 0


def test_reassembled_size_is_checked_with_the_first_fragments_header() -> None:
    long_via = dataclasses.replace(HEADER, via_list=(Destination.node(bytes(16)),) * 3)
    reassembler = Reassembler(max_message_size=400)
    _fed(reassembler, make_fragment(HEADER, 200, True, bytes(100)))  # 56 + 300 fits
    with pytest.raises(DecodeError) as info:
        reassembler.feed(make_fragment(long_via, 0, False, bytes(200)), 0.0)  # 110 + 300
    assert info.value.path == "Fragment.length"


def test_thousands_of_transactions_keep_state_within_the_limit_section_6_7() -> None:
    reassembler = Reassembler(max_message_size=5000, max_reassemblies=16)
    for tid in range(5000):
        header = dataclasses.replace(HEADER, transaction_id=tid)
        offset = (tid * 37) % 4000 + 1
        assert (
            reassembler.feed(make_fragment(header, offset, tid % 3 == 0, bytes(300)), 0.0) is None
        )
        assert len(reassembler) <= 16
        assert reassembler.buffered_bytes <= 16 * 5000
    assert reassembler.evicted == 5000 - 16


def test_the_oldest_partial_message_is_dropped_for_a_new_one() -> None:
    reassembler = Reassembler(max_reassemblies=2)
    a, b, c = (dataclasses.replace(HEADER, transaction_id=t) for t in (1, 2, 3))
    _fed(reassembler, make_fragment(a, 0, False, BODY[:300]))
    _fed(reassembler, make_fragment(b, 0, False, BODY[:300]))
    _fed(reassembler, make_fragment(c, 0, False, BODY[:300]))
    assert reassembler.evicted == 1
    # a was dropped: its second half starts a new partial message.
    assert reassembler.feed(make_fragment(a, 300, True, BODY[300:]), 0.0) is None
    assert reassembler.feed(make_fragment(c, 300, True, BODY[300:]), 0.0) == reload_message(c, BODY)


def test_too_many_separate_pieces_is_a_decode_error() -> None:
    reassembler = Reassembler(max_fragments=4)
    for offset in range(0, 8, 2):
        _fed(reassembler, make_fragment(HEADER, offset, False, b"\x00"))
    with pytest.raises(DecodeError):
        reassembler.feed(make_fragment(HEADER, 8, False, b"\x00"), 0.0)
    assert len(reassembler) == 0


def test_incomplete_message_times_out_after_15_seconds_section_6_7() -> None:
    first, second = fragment(MESSAGE, 400)
    reassembler = Reassembler()
    assert reassembler.feed(first, 100.0) is None
    assert reassembler.next_expiry() == 115.0
    assert reassembler.feed(second, 114.9) == MESSAGE

    assert reassembler.feed(first, 200.0) is None
    assert reassembler.expire(214.9) == 0
    assert reassembler.expire(215.0) == 1
    assert reassembler.next_expiry() is None
    # The late second half starts a new partial message, which also times out.
    assert reassembler.feed(second, 215.5) is None
    assert reassembler.feed(first, 231.0) is None
    assert reassembler.expired == 2


# -- fuzzing ----------------------------------------------------------------------------

_SEEDS = [
    *fragment(MESSAGE, 400),
    *fragment(reload_message(HEADER, bytes(range(256)) * 4), 500),
    MESSAGE,
]


def test_fuzz_reassembler_feed() -> None:
    reassembler = Reassembler(max_reassemblies=8)
    clock = iter(range(1_000_000))
    assert fuzz_decoder(lambda data: reassembler.feed(data, float(next(clock))), _SEEDS) > 0
    assert len(reassembler) <= 8
    assert reassembler.buffered_bytes <= 8 * reassembler.max_message_size


def test_fuzz_fragment() -> None:
    def split(data: bytes) -> object:
        try:
            return fragment(data, 350)
        except EncodeError:
            # The documented outcome for a fragment whose pieces' offsets
            # would not fit 24 bits.
            return None

    assert fuzz_decoder(split, _SEEDS, seed=5) > 0
