"""The one contract every wire structure follows, and how it is built.

A structure is a frozen dataclass that subclasses :class:`WireStruct` and
implements :meth:`WireStruct.encode` and :meth:`WireStruct.read`.
:meth:`WireStruct.decode` then decodes a whole byte string, refusing trailing
bytes, with the class name as the root of every error path.

The package runs two ways from the same source (README, "The compiled
codec"): compiled by mypyc into C extensions when the package is built, or
as plain Python when it was not.  What that asks of the source:

- No ABC: mypyc compiles native classes, and an ABC is not one; the base
  methods raise :class:`NotImplementedError` instead.
- ``@dataclass(frozen=True, **SLOTTED)``: a native class already keeps its
  fields in a C struct, and ``slots=True`` would make the dataclass module
  rebuild the class, which a native class refuses; in pure Python the
  slotted class is the smaller and faster one.
- No class variable in a dataclass body: mypyc hands ``ClassVar``
  annotations to the dataclass module as fields (mypyc issue 1122).  A
  message body's ``CODE`` is declared here, on :class:`WireValue`, and set
  on each body class right after it.
- Classes that code outside the package subclasses (:class:`WireValue`,
  :class:`WireStruct`, ``NodeIdStruct``, the errors) allow interpreted
  subclasses, which a native class refuses by default.
- The structures write their ``__init__`` out (``init=False``, one
  ``object.__setattr__`` per field, what the dataclass would generate):
  compiled, that ``__init__`` is native, about ten times faster than the
  interpreted one the dataclass module would add to the class.  Not for
  a dataclass whose dataclass subclasses add no ``__init__`` of their own
  (``AttachReqAns``): mypyc 2.4 generates a wrong call to the parent's.
- Hot readers declare the integers they unpack (``n: int`` before
  ``n, = _U16.unpack_from(...)``): unpacked values are ``Any`` to mypy,
  and compiled code does generic object arithmetic on ``Any``, native
  arithmetic on ``int``.
- Hot decoders build their structures through :func:`constructor`: the
  class itself when compiled, and :func:`fast_constructor`'s slot-setting
  function in pure Python.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, ClassVar, Final, Self, TypeVar

from mypy_extensions import mypyc_attr

from reload.wire.buffer import Buffer, Reader


def _probe() -> None:
    """A function of this module: compiled, it is no longer a Python function."""


#: True when this package runs as mypyc-compiled C extensions.  The whole
#: package is compiled or none of it (``setup.py``), so one module's answer
#: is the package's; ``tests/wire/test_codec_mode.py`` checks every module.
COMPILED: Final[bool] = type(_probe) is not types.FunctionType

#: Keyword arguments for ``@dataclass``: slotted in pure Python, native
#: (already slotted) when compiled.
SLOTTED: Final[dict[str, Any]] = {} if COMPILED else {"slots": True}


@mypyc_attr(allow_interpreted_subclasses=True)
class WireValue:
    """Anything with an RFC 6940 encoding."""

    __slots__ = ()

    #: Section 14.8: the message code of a message body class, set right
    #: after the class (never in a dataclass body: see the module docstring).
    CODE: ClassVar[int]

    def encode(self) -> bytes:
        """The structure's bytes as RFC 6940 lays them out."""
        raise NotImplementedError(f"{type(self).__name__}.encode")


@mypyc_attr(allow_interpreted_subclasses=True)
class WireStruct(WireValue):
    """A structure that decodes from its bytes alone (no configuration).
    Plugins subclass it (:mod:`reload.api.topology`), compiled or not."""

    __slots__ = ()

    @classmethod
    def read(cls, r: Reader) -> Self:
        """Read one structure at ``r.pos``, advancing ``r``; raise
        :class:`~reload.wire.errors.DecodeError` on anything invalid."""
        raise NotImplementedError(f"{cls.__name__}.read")

    @classmethod
    def decode(cls, data: Buffer) -> Self:
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


def constructor(cls: type[_C]) -> Callable[..., _C]:
    """The fastest way to build ``cls`` from its field values, in field order.

    Compiled, that is the class itself (mypyc's native ``__init__``); in
    pure Python, :func:`fast_constructor`.
    """
    if COMPILED:
        return cls
    return fast_constructor(cls)


def fast_constructor(cls: type[_C]) -> Callable[..., _C]:
    """A function that builds a frozen, slotted dataclass ``cls`` from its
    field values, in field order, without running ``__init__`` (pure Python
    only: a compiled class has no slot descriptors, use :func:`constructor`).

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
