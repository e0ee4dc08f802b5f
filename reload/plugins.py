"""Selecting topology and usage plugins by name.

Plugins are found with :func:`twisted.plugin.getPlugins` in the ``topologies``
and ``usages`` packages and checked with
:func:`zope.interface.verify.verifyObject` before use, so a plugin that does
not implement its interface is refused at start rather than failing later in
the middle of a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.plugin import getPlugins
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from reload.interfaces import ITopologyPlugin, IUsage

__all__ = [
    "PluginError",
    "brokenReason",
    "installedTopologies",
    "installedUsages",
    "loadTopology",
    "loadUsages",
]


class PluginError(ValueError):
    """A plugin that is not installed, or does not implement its interface.

    The message is one line, meant to be shown to the operator as it is.
    """


def _installed(interface: Any, package: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for plugin in getPlugins(interface, package):
        name = getattr(plugin, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"a {interface.__name__} plugin ({plugin!r}) has no name")
        if name in found and found[name] is not plugin:
            raise PluginError(f"two {interface.__name__} plugins are named {name!r}")
        found[name] = plugin
    return found


def installedTopologies() -> dict[str, ITopologyPlugin]:
    """Every installed topology plugin, by its configuration name."""
    import topologies

    return _installed(ITopologyPlugin, topologies)


def installedUsages() -> dict[str, IUsage]:
    """Every installed usage plugin, by name."""
    import usages

    return _installed(IUsage, usages)


def brokenReason(interface: Any, obj: object) -> str | None:
    """Why ``obj`` does not provide ``interface``
    (:func:`~zope.interface.verify.verifyObject`), as one line for an
    operator, or ``None`` when it does."""
    try:
        verifyObject(interface, obj)
    except Invalid as exc:
        return " ".join(str(exc).split())
    return None


def _select(kind: str, interface: Any, name: str, installed: dict[str, Any]) -> Any:
    plugin = installed.get(name)
    if plugin is None:
        names = ", ".join(sorted(installed)) or "none"
        raise PluginError(f"unknown {kind} {name!r}; installed: {names}")
    reason = brokenReason(interface, plugin)
    if reason is not None:
        raise PluginError(f"{kind} plugin {name!r} is broken: {reason}")
    return plugin


def loadTopology(name: str) -> ITopologyPlugin:
    """The topology plugin called ``name``, verified."""
    plugin: ITopologyPlugin = _select("topology", ITopologyPlugin, name, installedTopologies())
    return plugin


def loadUsages(names: Iterable[str]) -> list[IUsage]:
    """The usage plugins called ``names``, in that order, verified."""
    installed = installedUsages()
    return [_select("usage", IUsage, name, installed) for name in names]
