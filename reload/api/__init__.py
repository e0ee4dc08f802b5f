"""The public API for plugins (DESIGN.md, "Layers and layout").

Usages and topologies import :mod:`reload.interfaces`, :mod:`reload.errors`
and the modules of this package, nothing else of ``reload``: what a plugin
needs beyond them is added here on purpose, so the node's internals can
change without breaking the plugins written against it.

- :mod:`reload.api.data`: the values stored and fetched through
  :class:`reload.interfaces.INode`.
"""

__all__: list[str] = []
