"""The public API for plugins.

Topology and usage plugins (``topologies/``, ``usages/``) import only
:mod:`reload.interfaces`, :mod:`reload.errors` and the modules of this
package, which re-export on purpose what a plugin may build on (DESIGN.md,
"Layers and layout"): :mod:`reload.api.topology` for overlay algorithms.
Anything else of ``reload`` may change without notice; a plugin that needs
more widens this API.
"""

__all__: list[str] = []
