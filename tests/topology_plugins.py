"""The topologies tests run against: CHORD-RELOAD as installed, and the
test's own FULL-MESH (``tests/plugins/topologies/fullmesh.py``, a plugin
module without a package, loaded from its file here; a real process finds
it with ``tests/plugins`` on ``PYTHONPATH``)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

from reload.plugins import loadTopology

from .conftest import REPO

PLUGIN_PATH = REPO / "tests" / "plugins"
FULL_MESH_FILE = PLUGIN_PATH / "topologies" / "fullmesh.py"


def fullMeshModule() -> ModuleType:
    """The FULL-MESH plugin module, loaded once."""
    name = "reload_tests_fullmesh"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, FULL_MESH_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def topologyPlugin(name: str) -> Any:
    """The ITopologyPlugin called ``name``: FULL-MESH or an installed one."""
    if name == "FULL-MESH":
        return fullMeshModule().fullMesh
    return loadTopology(name)


#: Parametrize storage tests over these.
TOPOLOGIES = ("CHORD-RELOAD", "FULL-MESH", "ONE-HOP-RELOAD", "CHORD-SELF-TUNING")
