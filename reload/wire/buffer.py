"""Bounded reading and length-prefixed writing of RFC 6940 section 6.2 types.

:class:`Reader` is the only way decoders look at bytes.  Each read checks the
bytes it needs against the reader's end, which for a length-prefixed vector is
the end of that vector, so no length field can make a decoder read past its
enclosing structure, and nothing is allocated that the input does not already
hold (RELOAD vectors carry byte lengths, never element counts).

The writer side is a set of small functions that return bytes; encoders join
them.  Both sides use :mod:`struct` directly where speed matters.
"""

from __future__ import annotations

import struct

from reload.wire.errors import DecodeError, EncodeError

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")

#: What decoders accept: any bytes-like buffer.  They read a ``bytes`` copy
#: of anything else (compiled code checks argument types, so the union is
#: spelt out where pure Python would have taken any buffer).
Buffer = bytes | bytearray | memoryview

__all__ = [
    "Buffer",
    "Reader",
    "opaque8",
    "opaque16",
    "opaque24",
    "opaque32",
    "u8",
    "u16",
    "u24",
    "u32",
    "u64",
]


class Reader:
    """A cursor over ``data[pos:end]`` that never reads past ``end``.

    ``path`` is the field path of the structure being read; it prefixes the
    path of every :class:`DecodeError` raised through this reader.
    """

    __slots__ = ("data", "end", "path", "pos")

    def __init__(self, data: Buffer, pos: int = 0, end: int | None = None, path: str = "") -> None:
        self.data: bytes = data if type(data) is bytes else bytes(data)
        self.pos = pos
        self.end = len(data) if end is None else end
        self.path = path

    # -- errors ---------------------------------------------------------

    def error(self, field: str, reason: str) -> DecodeError:
        """Build a :class:`DecodeError` for ``field`` of this structure."""
        if self.path:
            return DecodeError(f"{self.path}.{field}" if field else self.path, reason)
        return DecodeError(field, reason)

    def _need(self, n: int, field: str) -> int:
        pos = self.pos
        if pos + n > self.end:
            raise self.error(field, f"needs {n} bytes, {self.end - pos} left")
        self.pos = pos + n
        return pos

    # -- fixed-size integers ---------------------------------------------

    def u8(self, field: str) -> int:
        return self.data[self._need(1, field)]

    def u16(self, field: str) -> int:
        return _U16.unpack_from(self.data, self._need(2, field))[0]  # type: ignore[no-any-return]

    def u24(self, field: str) -> int:
        pos = self._need(3, field)
        return int.from_bytes(self.data[pos : pos + 3], "big")

    def u32(self, field: str) -> int:
        return _U32.unpack_from(self.data, self._need(4, field))[0]  # type: ignore[no-any-return]

    def u64(self, field: str) -> int:
        return _U64.unpack_from(self.data, self._need(8, field))[0]  # type: ignore[no-any-return]

    def boolean(self, field: str) -> bool:
        """RFC 6940 section 6.2: ``Boolean`` is one byte, 0 or 1."""
        value = self.u8(field)
        if value > 1:
            raise self.error(field, f"Boolean must be 0 or 1, got {value}")
        return value == 1

    # -- byte strings ------------------------------------------------------

    def fixed(self, n: int, field: str) -> bytes:
        """``opaque field[n]``: exactly ``n`` bytes."""
        pos = self._need(n, field)
        return bytes(self.data[pos : pos + n])

    def opaque(self, length_bytes: int, field: str, minimum: int = 0) -> bytes:
        """``opaque field<minimum..2^(8*length_bytes)-1>``."""
        n = self._length(length_bytes, field)
        if n < minimum:
            raise self.error(field, f"length {n} is below the minimum {minimum}")
        pos = self._need(n, field)
        return bytes(self.data[pos : pos + n])

    def rest(self) -> bytes:
        """All bytes up to ``end`` (for trailing opaque bodies)."""
        pos, self.pos = self.pos, self.end
        return bytes(self.data[pos : self.end])

    def sub(self, length_bytes: int, field: str) -> Reader:
        """A reader over the length-prefixed vector that starts here."""
        n = self._length(length_bytes, field)
        pos = self._need(n, field)
        return Reader(self.data, pos, pos + n, self._join(field))

    def sub_fixed(self, n: int, field: str) -> Reader:
        """A reader over the next ``n`` bytes (a length given elsewhere)."""
        pos = self._need(n, field)
        return Reader(self.data, pos, pos + n, self._join(field))

    def _length(self, length_bytes: int, field: str) -> int:
        if length_bytes == 1:
            return self.u8(field)
        if length_bytes == 2:
            return self.u16(field)
        if length_bytes == 3:
            return self.u24(field)
        return self.u32(field)

    def _join(self, field: str) -> str:
        return f"{self.path}.{field}" if self.path else field

    # -- structure ---------------------------------------------------------

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def finish(self) -> None:
        """Fail if bytes are left over inside this structure."""
        if self.pos != self.end:
            raise self.error("", f"{self.end - self.pos} unexpected trailing bytes")

    def enter(self, field: str) -> Reader:
        """A reader over the same bytes whose errors name ``field``.

        Used for list elements (``"via_list[3]"``); the caller copies ``pos``
        back when the element is read.
        """
        return Reader(self.data, self.pos, self.end, self._join(field))


# -- writing ---------------------------------------------------------------


def u8(value: int) -> bytes:
    if not 0 <= value <= 0xFF:
        raise EncodeError(f"uint8 out of range: {value}")
    return bytes((value,))


def u16(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"uint16 out of range: {value}")
    return _U16.pack(value)


def u24(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFF:
        raise EncodeError(f"uint24 out of range: {value}")
    return value.to_bytes(3, "big")


def u32(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise EncodeError(f"uint32 out of range: {value}")
    return _U32.pack(value)


def u64(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        raise EncodeError(f"uint64 out of range: {value}")
    return _U64.pack(value)


def opaque8(value: bytes) -> bytes:
    """``opaque<0..2^8-1>``: one length byte, then the bytes."""
    n = len(value)
    if n > 0xFF:
        raise EncodeError(f"{n} bytes do not fit a vector of at most 255")
    return bytes((n,)) + value


def opaque16(value: bytes) -> bytes:
    """``opaque<0..2^16-1>``."""
    n = len(value)
    if n > 0xFFFF:
        raise EncodeError(f"{n} bytes do not fit a vector of at most 65535")
    return _U16.pack(n) + value


def opaque24(value: bytes) -> bytes:
    """``opaque<0..2^24-1>``."""
    n = len(value)
    if n > 0xFFFFFF:
        raise EncodeError(f"{n} bytes do not fit a vector of at most 2^24-1")
    return n.to_bytes(3, "big") + value


def opaque32(value: bytes) -> bytes:
    """``opaque<0..2^32-1>``."""
    n = len(value)
    if n > 0xFFFFFFFF:
        raise EncodeError(f"{n} bytes do not fit a vector of at most 2^32-1")
    return _U32.pack(n) + value
