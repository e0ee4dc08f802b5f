"""Tests of the framing header (RFC 6940 section 6.6.2) and the TCP stream
deframer used by TLS-TCP-FH-NO-ICE (section 6.6.5)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reload.wire.errors import DecodeError, EncodeError
from reload.wire.framing import (
    ACK_FRAME_SIZE,
    DATA_HEADER_SIZE,
    AckFrame,
    DataFrame,
    DeframingError,
    Frame,
    FramedMessageType,
    StreamDeframer,
    decode_frame,
)
from tests.wire.fuzzing import fuzz_decoder
from tests.wire.strategies_framing import ack_frames, data_frames, frames

# -- worked examples, byte by byte -------------------------------------------

DATA_EXAMPLE = bytes.fromhex(
    "80"  # type: data (128)
    "00000001"  # sequence: uint32 1
    "000003"  # message length: uint24 3
    "616263"  # message: "abc"
)
ACK_EXAMPLE = bytes.fromhex(
    "81"  # type: ack (129)
    "00000007"  # ack_sequence: uint32 7
    "00000005"  # received: sequences 6 (bit 1 = LSB) and 4 (bit 3) arrived
)


def test_framed_message_type_values_section_6_6_2() -> None:
    assert FramedMessageType.DATA.value == 128
    assert FramedMessageType.ACK.value == 129


def test_data_frame_byte_exact_section_6_6_2() -> None:
    frame = DataFrame(1, b"abc")
    assert frame.encode() == DATA_EXAMPLE
    assert DataFrame.decode(DATA_EXAMPLE) == frame
    assert decode_frame(DATA_EXAMPLE) == frame


def test_ack_frame_byte_exact_section_6_6_2() -> None:
    frame = AckFrame(7, 5)
    assert frame.encode() == ACK_EXAMPLE
    assert AckFrame.decode(ACK_EXAMPLE) == frame
    assert decode_frame(ACK_EXAMPLE) == frame


def test_sequence_is_a_full_uint32_section_6_6_2() -> None:
    encoded = DataFrame(0xFFFFFFFF, b"").encode()
    assert encoded == bytes.fromhex("80ffffffff000000")
    assert decode_frame(encoded) == DataFrame(0xFFFFFFFF, b"")


def test_empty_message_is_a_valid_data_frame() -> None:
    assert decode_frame(bytes.fromhex("80 00000000 000000")) == DataFrame(0, b"")


# -- round trips ------------------------------------------------------------------


@given(data_frames)
def test_data_frame_round_trip(frame: DataFrame) -> None:
    assert DataFrame.decode(frame.encode()) == frame
    assert decode_frame(frame.encode()) == frame


@given(ack_frames)
def test_ack_frame_round_trip(frame: AckFrame) -> None:
    assert AckFrame.decode(frame.encode()) == frame
    assert decode_frame(frame.encode()) == frame
    assert len(frame.encode()) == ACK_FRAME_SIZE


# -- invalid input --------------------------------------------------------------


@pytest.mark.parametrize("frame_type", [0, 1, 127, 130, 255])
def test_unknown_frame_type_is_a_decode_error_section_6_6_2(frame_type: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(bytes([frame_type]) + bytes(8))
    assert info.value.path == "FramedMessage.type"


def test_empty_input_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_frame(b"")


def test_decoding_one_type_as_the_other_fails() -> None:
    with pytest.raises(DecodeError) as info:
        DataFrame.decode(ACK_EXAMPLE)
    assert info.value.path == "DataFrame.type"
    with pytest.raises(DecodeError):
        AckFrame.decode(DATA_EXAMPLE)


def test_truncated_and_trailing_bytes_are_decode_errors() -> None:
    for cut in range(len(DATA_EXAMPLE)):
        with pytest.raises(DecodeError):
            decode_frame(DATA_EXAMPLE[:cut])
    for cut in range(len(ACK_EXAMPLE)):
        with pytest.raises(DecodeError):
            decode_frame(ACK_EXAMPLE[:cut])
    with pytest.raises(DecodeError):
        decode_frame(DATA_EXAMPLE + b"x")
    with pytest.raises(DecodeError):
        decode_frame(ACK_EXAMPLE + b"x")


def test_message_length_past_the_frame_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(bytes.fromhex("80 00000001 ffffff 00"))
    assert info.value.path == "FramedMessage.message"


def test_values_that_do_not_fit_raise_encode_error() -> None:
    with pytest.raises(EncodeError):
        DataFrame(1 << 32, b"").encode()
    with pytest.raises(EncodeError):
        DataFrame(-1, b"").encode()
    with pytest.raises(EncodeError):
        DataFrame(0, bytes(1 << 24)).encode()
    with pytest.raises(EncodeError):
        AckFrame(1 << 32, 0).encode()
    with pytest.raises(EncodeError):
        AckFrame(0, 1 << 32).encode()


# -- fuzzing -------------------------------------------------------------------------

_SEEDS = [DATA_EXAMPLE, ACK_EXAMPLE, DataFrame(5, bytes(range(60))).encode()]


def test_fuzz_decode_frame() -> None:
    assert fuzz_decoder(decode_frame, _SEEDS) > 0


def test_fuzz_data_frame_decode() -> None:
    assert fuzz_decoder(DataFrame.decode, _SEEDS, seed=1) > 0


def test_fuzz_ack_frame_decode() -> None:
    assert fuzz_decoder(AckFrame.decode, _SEEDS, seed=2) > 0


def test_fuzz_stream_deframer() -> None:
    rng = random.Random(3)

    def deframe(data: bytes) -> object:
        deframer = StreamDeframer(max_frame_size=64)
        out = []
        pos = 0
        while pos < len(data):
            step = rng.randrange(1, 12)
            out += deframer.feed(data[pos : pos + step])
            pos += step
            assert deframer.buffered <= deframer.bound
        return out

    assert fuzz_decoder(deframe, [DATA_EXAMPLE + ACK_EXAMPLE, ACK_EXAMPLE * 3]) > 0


# -- the stream deframer (section 6.6.5) ----------------------------------------------


def _stream(items: list[Frame]) -> bytes:
    return b"".join(frame.encode() for frame in items)


def test_deframer_one_byte_at_a_time() -> None:
    items: list[Frame] = [DataFrame(0, b"hello"), AckFrame(3, 0xFFFF), DataFrame(1, b"")]
    deframer = StreamDeframer(max_frame_size=100)
    out: list[Frame] = []
    for byte in _stream(items):
        out += deframer.feed(bytes([byte]))
        assert deframer.buffered <= deframer.bound
    assert out == items
    assert deframer.buffered == 0


def test_deframer_many_frames_in_one_chunk() -> None:
    items: list[Frame] = [DataFrame(i, bytes([i]) * i) for i in range(20)]
    items += [AckFrame(i, i) for i in range(5)]
    deframer = StreamDeframer(max_frame_size=100)
    assert deframer.feed(_stream(items)) == items


@given(
    st.lists(frames, max_size=12),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1),
)
def test_deframer_any_chunking_gives_the_same_frames(items: list[Frame], cuts: list[int]) -> None:
    stream = _stream(items)
    deframer = StreamDeframer(max_frame_size=300)
    out: list[Frame] = []
    pos = 0
    index = 0
    while pos < len(stream):
        step = cuts[index % len(cuts)]
        index += 1
        out += deframer.feed(stream[pos : pos + step])
        pos += step
        assert deframer.buffered <= deframer.bound
    assert out == items
    assert deframer.buffered == 0


def test_deframer_rejects_oversized_frame_before_buffering_it() -> None:
    deframer = StreamDeframer(max_frame_size=1000)
    header = bytes.fromhex("80 00000000 0003e9")  # announces 1001 bytes
    assert deframer.feed(header[:7]) == []
    with pytest.raises(DeframingError) as info:
        deframer.feed(header[7:] + bytes(500))
    assert info.value.path == "DataFrame.message"
    assert isinstance(info.value, DecodeError)
    assert deframer.buffered == 0


def test_deframer_accepts_a_frame_of_exactly_the_maximum() -> None:
    deframer = StreamDeframer(max_frame_size=1000)
    frame = DataFrame(9, bytes(1000))
    data = frame.encode()
    assert deframer.feed(data[:-1]) == []
    assert deframer.buffered == 1000 + DATA_HEADER_SIZE - 1
    assert deframer.feed(data[-1:]) == [frame]


def test_deframer_unknown_type_fails_at_its_first_byte() -> None:
    deframer = StreamDeframer(max_frame_size=100)
    with pytest.raises(DeframingError) as info:
        deframer.feed(b"\x42")
    assert info.value.path == "FramedMessage.type"


def test_deframer_keeps_frames_before_an_error_and_stays_failed() -> None:
    good = DataFrame(0, b"ok")
    deframer = StreamDeframer(max_frame_size=100)
    with pytest.raises(DeframingError) as info:
        deframer.feed(good.encode() + b"\x01garbage")
    assert info.value.frames == [good]
    # The stream has lost its framing: nothing after it is trusted.
    with pytest.raises(DeframingError) as again:
        deframer.feed(AckFrame(0, 0).encode())
    assert again.value.frames == []


def test_deframer_error_while_completing_a_buffered_header() -> None:
    deframer = StreamDeframer(max_frame_size=10)
    assert deframer.feed(bytes.fromhex("80 0000")) == []
    with pytest.raises(DeframingError):
        deframer.feed(bytes.fromhex("0001 00000b"))  # length 11 > 10
    assert deframer.buffered == 0


def test_deframer_empty_feed_is_harmless() -> None:
    deframer = StreamDeframer(max_frame_size=10)
    assert deframer.feed(b"") == []
    assert deframer.feed(b"\x81\x00") == []
    assert deframer.feed(b"") == []
    assert deframer.feed(bytes(7)) == [AckFrame(0, 0)]


def test_deframer_memory_stays_bounded_under_a_flood() -> None:
    deframer = StreamDeframer(max_frame_size=50)
    rng = random.Random(4)
    stream = _stream([DataFrame(i, rng.randbytes(rng.randrange(51))) for i in range(2000)])
    pos = 0
    count = 0
    while pos < len(stream):
        step = rng.randrange(1, 200)
        count += len(deframer.feed(stream[pos : pos + step]))
        pos += step
        assert deframer.buffered <= 50 + DATA_HEADER_SIZE
    assert count == 2000


def test_deframer_max_frame_size_must_fit_the_length_field() -> None:
    with pytest.raises(ValueError):
        StreamDeframer(1 << 24)
