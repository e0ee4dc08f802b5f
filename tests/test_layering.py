"""DESIGN.md, "Layers and layout": the core imports no plugin package and
no topology, and plugins import only ``reload.interfaces``,
``reload.errors`` and the public API (``reload.api``).  Checked on the
source, import statement by import statement (also those inside
functions)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO

PLUGIN_PACKAGES = ("topologies", "usages")
#: The one module that hands the plugin packages to getPlugins, to select
#: plugins by name (it imports the packages, never a plugin module).
DISCOVERY = "reload/plugins.py"
#: What a plugin may import of ``reload``.
PUBLIC = ("reload.interfaces", "reload.errors", "reload.api")


def _imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _sources(directory: str) -> list[Path]:
    return sorted((REPO / directory).rglob("*.py"))


@pytest.mark.parametrize("path", _sources("reload"), ids=lambda p: str(p.relative_to(REPO)))
def test_the_core_imports_no_plugin_package(path: Path) -> None:
    found = [name for name in _imports(path) if _under(name, PLUGIN_PACKAGES)]
    if str(path.relative_to(REPO)) == DISCOVERY:
        assert set(found) <= set(PLUGIN_PACKAGES)
        return
    assert found == []


@pytest.mark.parametrize(
    "path",
    [p for package in PLUGIN_PACKAGES for p in _sources(package)],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_plugins_import_only_the_interfaces_errors_and_public_api(path: Path) -> None:
    found = [
        name for name in _imports(path) if _under(name, ("reload",)) and not _under(name, PUBLIC)
    ]
    assert found == []


def test_the_chord_code_lives_in_the_plugin_package() -> None:
    assert not (REPO / "reload" / "chord").exists()
    assert not (REPO / "reload" / "wire" / "chord.py").exists()
    assert not (REPO / "reload" / "direct.py").exists()
    assert (REPO / "topologies" / "chordreload" / "topology.py").exists()
