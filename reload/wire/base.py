"""The one contract every wire structure follows.

A structure is a frozen, slotted dataclass that subclasses :class:`WireStruct`
and implements :meth:`WireStruct.encode` and :meth:`WireStruct.read`.
:meth:`WireStruct.decode` then decodes a whole byte string, refusing trailing
bytes, with the class name as the root of every error path.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Self, TypeVar

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


_C = TypeVar("_C")


def fast_constructor(cls: type[_C]) -> Callable[..., _C]:
    """A function that builds a frozen, slotted dataclass ``cls`` from its
    field values, in field order, without running ``__init__``.

    A frozen dataclass's ``__init__`` sets every field through a generic
    ``object.__setattr__`` call, which costs about as much again as the rest
    of decoding a small structure.  Decoders build many small structures,
    so they set the slots directly, one slot descriptor call per field,
    unrolled (the same technique :mod:`dataclasses` uses to write
    ``__init__``); the result is the same object.  Only for classes whose
    ``__init__`` does nothing else: no ``__post_init__``, no ``init=False``
    fields.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or not all(f.init for f in fields):
        raise TypeError(f"{cls.__name__} needs its __init__")
    if not getattr(cls, "__slots__", None):
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params = []
    lines = []
    for index, f in enumerate(fields):
        scope[f"_set{index}"] = getattr(cls, f.name).__set__
        params.append(f"v{index}")
        lines.append(f"    _set{index}(obj, v{index})")
    head = f"def make_{cls.__name__}({', '.join(params)}):"
    source = "\n".join([head, "    obj = _new(_cls)", *lines, "    return obj"])
    # The source is built above from the class's own field count: no input
    # from outside reaches it.
    exec(source, scope)
    make: Callable[..., _C] = scope[f"make_{cls.__name__}"]
    make.__qualname__ = f"fast_constructor({cls.__qualname__})"
    return make
