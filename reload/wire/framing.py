"""The per-hop framing header (RFC 6940 section 6.6.2) and a TCP stream deframer.

Every RELOAD message crossing an overlay link is wrapped in a
``FramedMessage``: a ``data`` frame carries a per-connection sequence number
and the message, an ``ack`` frame acknowledges one sequence number and
reports, in a 32-bit mask, which of the preceding ones arrived.  The same
framing is used on DTLS/UDP (one frame per datagram, see
:func:`decode_frame`) and on TLS/TCP (frames back to back on a byte stream,
see :class:`StreamDeframer`)::

    enum { data(128), ack(129), (255) } FramedMessageType;

    struct {
      FramedMessageType       type;
      select (type) {
        case data:
          uint32              sequence;
          opaque              message<0..2^24-1>;
        case ack:
          uint32              ack_sequence;
          uint32              received;
      };
    } FramedMessage;

Both sequence fields are ``uint32`` in section 6.6.2 (and in Wireshark's
``reload-framing`` dissector); only the message length is 24 bits.  No other
frame types are defined and the enum is not marked extensible by a
registry, so an unknown type is a :class:`DecodeError`: on a stream there
is no way to skip a frame whose layout is unknown.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

from reload.wire.base import SLOTTED, WireStruct
from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError, EncodeError

__all__ = [
    "ACK_FRAME_SIZE",
    "DATA_HEADER_SIZE",
    "MAX_FRAMED_MESSAGE",
    "AckFrame",
    "DataFrame",
    "DeframingError",
    "Frame",
    "FramedMessageType",
    "StreamDeframer",
    "decode_frame",
    "read_frame",
]


class FramedMessageType(IntEnum):
    """Section 6.6.2 ``FramedMessageType``."""

    DATA = 128
    ACK = 129


#: type (1) + sequence (4) + message length (3) in front of a data frame's message.
DATA_HEADER_SIZE = 8
#: type (1) + ack_sequence (4) + received (4): an ack frame has a fixed size.
ACK_FRAME_SIZE = 9
#: ``opaque message<0..2^24-1>``.
MAX_FRAMED_MESSAGE = 0xFFFFFF

_U32 = struct.Struct("!I")
# type, sequence, then the 24-bit length as a high byte and a low 16 bits.
_DATA_HEAD = struct.Struct("!BIBH")
_ACK = struct.Struct("!BII")
_DATA = FramedMessageType.DATA.value
_ACK_TYPE = FramedMessageType.ACK.value


@dataclass(frozen=True, init=False, **SLOTTED)
class DataFrame(WireStruct):
    """A ``data`` FramedMessage: one RELOAD message and its hop sequence number.

    ``sequence`` starts at zero on each connection and grows by one per
    frame sent, retransmissions included (sections 6.6.2 and 6.6.3.1).
    """

    sequence: int
    message: bytes

    def __init__(self, sequence: int, message: bytes) -> None:
        object.__setattr__(self, "sequence", sequence)
        object.__setattr__(self, "message", message)

    def encode(self) -> bytes:
        n = len(self.message)
        if n > MAX_FRAMED_MESSAGE:
            raise EncodeError(f"a framed message of {n} bytes exceeds 2^24-1")
        if not 0 <= self.sequence <= 0xFFFFFFFF:
            raise EncodeError(f"sequence out of range: {self.sequence}")
        return _DATA_HEAD.pack(_DATA, self.sequence, n >> 16, n & 0xFFFF) + self.message

    @classmethod
    def read(cls, r: Reader) -> Self:
        frame_type = r.u8("type")
        if frame_type != _DATA:
            raise r.error("type", f"expected data ({_DATA}), got {frame_type}")
        sequence = r.u32("sequence")
        return cls(sequence, r.opaque(3, "message"))


@dataclass(frozen=True, init=False, **SLOTTED)
class AckFrame(WireStruct):
    """An ``ack`` FramedMessage (section 6.6.2).

    ``received`` bit ``k`` (counting from the least significant bit, k = 0
    to 31) set means sequence number ``ack_sequence - 1 - k`` was among the
    32 frames the receiver got most recently; a clear bit means "unknown".
    Section 6.6.2 says "the N-M bit" is set for an earlier sequence M; we
    number those bits 1 to 32 from the least significant end, which is how
    Wireshark's reload-framing dissector reads the field (LSB = N-1).
    """

    ack_sequence: int
    received: int

    def __init__(self, ack_sequence: int, received: int) -> None:
        object.__setattr__(self, "ack_sequence", ack_sequence)
        object.__setattr__(self, "received", received)

    def encode(self) -> bytes:
        try:
            return _ACK.pack(_ACK_TYPE, self.ack_sequence, self.received)
        except struct.error:
            raise EncodeError(
                f"ack_sequence {self.ack_sequence} or received {self.received} is not a uint32"
            ) from None

    @classmethod
    def read(cls, r: Reader) -> Self:
        frame_type = r.u8("type")
        if frame_type != _ACK_TYPE:
            raise r.error("type", f"expected ack ({_ACK_TYPE}), got {frame_type}")
        return cls(r.u32("ack_sequence"), r.u32("received"))


#: One FramedMessage, whichever its type.
Frame = DataFrame | AckFrame


def read_frame(r: Reader) -> Frame:
    """Read one FramedMessage of either type at ``r.pos``."""
    if r.pos >= r.end:
        raise r.error("type", "needs 1 byte, 0 left")
    frame_type = r.data[r.pos]
    if frame_type == _DATA:
        return DataFrame.read(r)
    if frame_type == _ACK_TYPE:
        return AckFrame.read(r)
    raise r.error("type", f"unknown FramedMessageType {frame_type}")


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one FramedMessage (one DTLS record's worth)."""
    r = Reader(data, path="FramedMessage")
    frame = read_frame(r)
    r.finish()
    return frame


class DeframingError(DecodeError):
    """A stream that cannot be deframed any further.

    ``frames`` holds the frames that were complete before the bad one in
    the same :meth:`StreamDeframer.feed` call, so that nothing received
    intact is lost; the caller handles them and then closes the link.
    """

    def __init__(self, path: str, reason: str, frames: list[Frame]) -> None:
        super().__init__(path, reason)
        self.frames = frames


class StreamDeframer:
    """Cut a TLS/TCP byte stream into FramedMessages (section 6.6.5).

    ``max_frame_size`` bounds the ``message`` of a data frame (normally the
    overlay's max-message-size).  A data frame announcing more is rejected
    as soon as its 8-byte header is seen, before any of its message is
    buffered, and an unknown frame type as soon as its first byte is seen;
    after that the stream has lost its framing, so every later
    :meth:`feed` fails too.  Between calls the deframer holds at most one
    partial frame, so never more than ``max_frame_size + DATA_HEADER_SIZE``
    bytes, whatever the peer sends.
    """

    __slots__ = ("_buf", "_error", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        if not 0 <= max_frame_size <= MAX_FRAMED_MESSAGE:
            raise ValueError(f"max_frame_size must be within 0..2^24-1, got {max_frame_size}")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._error: DecodeError | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held until more data arrives."""
        return len(self._buf)

    @property
    def bound(self) -> int:
        """The most bytes this deframer ever holds between calls."""
        return max(self.max_frame_size + DATA_HEADER_SIZE, ACK_FRAME_SIZE)

    def feed(self, data: bytes) -> list[Frame]:
        """Take the next bytes of the stream; return the frames they complete.

        Raises :class:`DeframingError` (a :class:`DecodeError`) on an unknown
        frame type or an oversized frame; its ``frames`` are the complete
        frames before it.
        """
        if self._error is not None:
            raise DeframingError(self._error.path, self._error.reason, [])
        frames: list[Frame] = []
        try:
            pos = self._complete_pending(data, frames) if self._buf else 0
            end = len(data)
            while pos < end:
                size = self._frame_size(data, pos, end)
                if size is None or pos + size > end:
                    self._buf += data[pos:end]
                    break
                frames.append(self._parse(data, pos, size))
                pos += size
        except DecodeError as exc:
            self._error = exc
            self._buf = bytearray()
            raise DeframingError(exc.path, exc.reason, frames) from None
        return frames

    def _frame_size(self, data: bytes | bytearray, pos: int, end: int) -> int | None:
        """Total size of the frame starting at ``pos``, or None until its
        header is complete.  Checks the type and the announced length."""
        frame_type = data[pos]
        if frame_type == _DATA:
            if end - pos < DATA_HEADER_SIZE:
                return None
            length = int.from_bytes(data[pos + 5 : pos + 8], "big")
            if length > self.max_frame_size:
                raise DecodeError(
                    "DataFrame.message",
                    f"announces {length} bytes, more than the maximum {self.max_frame_size}",
                )
            return DATA_HEADER_SIZE + length
        if frame_type == _ACK_TYPE:
            return ACK_FRAME_SIZE
        raise DecodeError("FramedMessage.type", f"unknown FramedMessageType {frame_type}")

    def _complete_pending(self, data: bytes, frames: list[Frame]) -> int:
        """Move bytes from ``data`` into the partial frame; return how many
        were used (all of them while the frame is still incomplete)."""
        buf = self._buf
        pos, end = 0, len(data)
        size = self._frame_size(buf, 0, len(buf))
        if size is None:
            # Only a data frame's header can be incomplete: fill it first.
            take = min(DATA_HEADER_SIZE - len(buf), end)
            buf += data[:take]
            pos = take
            size = self._frame_size(buf, 0, len(buf))
            if size is None:
                return end
        take = min(size - len(buf), end - pos)
        buf += data[pos : pos + take]
        pos += take
        if len(buf) < size:
            return end
        frames.append(self._parse(bytes(buf), 0, size))
        self._buf = bytearray()
        return pos

    @staticmethod
    def _parse(data: bytes, pos: int, size: int) -> Frame:
        # The size and type were checked by _frame_size, so the fields are there.
        if data[pos] == _DATA:
            sequence = _U32.unpack_from(data, pos + 1)[0]
            return DataFrame(sequence, bytes(data[pos + DATA_HEADER_SIZE : pos + size]))
        _, ack_sequence, received = _ACK.unpack_from(data, pos)
        return AckFrame(ack_sequence, received)
