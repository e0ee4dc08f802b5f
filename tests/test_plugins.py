"""Plugin discovery and selection (DESIGN.md "Plugin contracts")."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from zope.interface.verify import verifyObject

import topologies
import usages
from reload.interfaces import ITopologyPlugin, IUsage
from reload.plugins import (
    PluginError,
    installedTopologies,
    installedUsages,
    loadTopology,
    loadUsages,
)

from .conftest import REPO

#: Exactly what this repository ships.  A plugin module that fails to import
#: vanishes from getPlugins silently; this list makes that a failure.
SHIPPED_TOPOLOGIES = {"CHORD-RELOAD", "CHORD-SELF-TUNING", "ONE-HOP-RELOAD"}
SHIPPED_USAGES = {"REDIR", "SIP", "TURN"}


def _ownModules(package: object, directory: str) -> list[str]:
    return sorted(
        name
        for _, name, _ in pkgutil.iter_modules([str(REPO / directory)])
        if not name.startswith("_")
    )


@pytest.mark.parametrize("package,directory", [("topologies", "topologies"), ("usages", "usages")])
def test_every_plugin_module_imports(package: str, directory: str) -> None:
    """Importing a shipped plugin module directly surfaces its ImportError."""
    for name in _ownModules(package, directory):
        importlib.import_module(f"{package}.{name}")


def test_discovery_finds_exactly_the_shipped_topologies() -> None:
    assert set(installedTopologies()) == SHIPPED_TOPOLOGIES


def test_discovery_finds_exactly_the_shipped_usages() -> None:
    assert set(installedUsages()) == SHIPPED_USAGES


def test_plugin_packages_extend_their_path_for_third_parties() -> None:
    """DESIGN.md: the packages use pluginPackagePaths so other
    distributions can add modules without an __init__.py."""
    from twisted.plugin import pluginPackagePaths

    for package in (topologies, usages):
        for path in pluginPackagePaths(package.__name__):
            assert path in package.__path__


def test_loaded_plugins_provide_their_interfaces() -> None:
    for name in SHIPPED_TOPOLOGIES:
        assert verifyObject(ITopologyPlugin, loadTopology(name))
    for usage in loadUsages(sorted(SHIPPED_USAGES)):
        assert verifyObject(IUsage, usage)


def test_unknown_topology_names_the_installed_ones() -> None:
    with pytest.raises(PluginError) as info:
        loadTopology("NO-SUCH-TOPOLOGY")
    message = str(info.value)
    assert "\n" not in message
    assert "unknown topology 'NO-SUCH-TOPOLOGY'" in message
    for name in SHIPPED_TOPOLOGIES:
        assert name in message


def test_unknown_usage_names_the_installed_ones() -> None:
    with pytest.raises(PluginError, match=r"unknown usage 'NOPE'; installed: "):
        loadUsages(["NOPE"])


def test_a_plugin_that_does_not_implement_its_interface_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zope.interface import implementer

    @implementer(ITopologyPlugin)
    class Hollow:
        name = "HOLLOW"

    monkeypatch.setattr("reload.plugins.installedTopologies", lambda: {"HOLLOW": Hollow()})
    with pytest.raises(PluginError, match=r"topology plugin 'HOLLOW' is broken"):
        loadTopology("HOLLOW")
