"""The one contract every wire structure follows.

A structure is a frozen, slotted dataclass that subclasses :class:`WireStruct`
and implements :meth:`WireStruct.encode` and :meth:`WireStruct.read`.
:meth:`WireStruct.decode` then decodes a whole byte string, refusing trailing
bytes, with the class name as the root of every error path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self, TypeVar

from reload.wire.buffer import Reader


class WireStruct(ABC):
    __slots__ = ()

    @abstractmethod
    def encode(self) -> bytes:
        """The structure's bytes as RFC 6940 lays them out."""

    @classmethod
    @abstractmethod
    def read(cls, r: Reader) -> Self:
        """Read one structure at ``r.pos``, advancing ``r``; raise
        :class:`~reload.wire.errors.DecodeError` on anything invalid."""

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode exactly one structure from ``data``."""
        r = Reader(data, path=cls.__name__)
        value = cls.read(r)
        r.finish()
        return value


T = TypeVar("T", bound=WireStruct)


def read_list(r: Reader, read_one: type[T], field_name: str) -> tuple[T, ...]:
    """Read structures until ``r`` is exhausted (a length-prefixed vector whose
    reader ``r`` is)."""
    out: list[T] = []
    while r.pos < r.end:
        item_reader = r.enter(f"{field_name}[{len(out)}]")
        out.append(read_one.read(item_reader))
        r.pos = item_reader.pos
    return tuple(out)
