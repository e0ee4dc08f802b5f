"""Topology plugins (``ITopologyPlugin``), found with twisted.plugin.

Third parties ship ``topologies/<theirs>.py`` in their own distribution,
without an ``__init__.py``; the path extension below makes
``getPlugins(ITopologyPlugin, topologies)`` see it.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
