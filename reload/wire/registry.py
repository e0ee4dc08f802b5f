"""Every message body class, by message code (RFC 6940 section 14.8).

:mod:`reload.wire.message` knows only :class:`~reload.wire.message.ErrorResponse`
and the storage bodies; this module adds the bodies of the other methods.
It imports their modules when first asked (inside a function), so that
importing :mod:`reload.wire.message` stays cheap and free of cycles.

Every class defined in one of :data:`BODY_MODULES` that has an integer
``CODE`` is a body class.  CHORD-RELOAD's structures (the plug-in's codec,
:mod:`topologies.chordreload.codec`) are deliberately absent: Join, Update,
Leave and RouteQuery carry them as topology-specific opaque data inside the
generic bodies, so they are decoded by the topology plug-in, never by message
code.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from reload.wire.message import ErrorResponse, build_registry
from reload.wire.message import body_class as _body_class
from reload.wire.message import decode_body as _decode_body
from reload.wire.storage import DEFAULT_NODE_ID_LENGTH, DataModel

__all__ = ["BODY_MODULES", "all_bodies", "body_class", "collect_bodies", "decode_body"]

#: The modules that define message bodies, listed explicitly.
BODY_MODULES: tuple[str, ...] = (
    "reload.wire.storage",
    "reload.wire.attach",
    "reload.wire.methods",
)


def collect_bodies(modules: Iterable[str] = BODY_MODULES) -> dict[int, type]:
    """Import ``modules`` and map the ``CODE`` of each body class defined in
    them (plus :class:`ErrorResponse`) to the class."""
    classes: list[type] = [ErrorResponse]
    for name in modules:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and obj.__module__ == name
                and isinstance(getattr(obj, "CODE", None), int)
            ):
                classes.append(obj)
    return build_registry(classes)


@functools.cache
def all_bodies() -> Mapping[int, type]:
    """Message code -> body class for every module of :data:`BODY_MODULES`
    (read-only; built on first use)."""
    return MappingProxyType(collect_bodies())


def body_class(code: int) -> type:
    """The body class for ``code``; raises
    :class:`~reload.wire.message.UnknownMessageCode` if there is none."""
    return _body_class(code, all_bodies())


def decode_body(
    code: int,
    data: bytes,
    *,
    models: Mapping[int, DataModel] | None = None,
    node_id_length: int = DEFAULT_NODE_ID_LENGTH,
) -> object:
    """:func:`reload.wire.message.decode_body` over all body classes."""
    return _decode_body(
        code, data, models=models, node_id_length=node_id_length, registry=all_bodies()
    )
