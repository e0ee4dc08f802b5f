"""The public API for plugins (DESIGN.md, "Layers and layout").

Topology and usage plugins (``topologies/``, ``usages/``) import only
:mod:`reload.interfaces`, :mod:`reload.errors` and the modules of this
package, which re-export on purpose what a plugin may build on:

- :mod:`reload.api.data`: the values a usage stores and fetches through
  :class:`reload.interfaces.INode`;
- :mod:`reload.api.topology`: what an overlay algorithm needs.

Anything else of ``reload`` may change without notice; a plugin that needs
more widens this API.
"""

__all__: list[str] = []
