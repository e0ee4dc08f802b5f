"""The topologies tests run against: those this checkout ships, and the
worked example FULL-MESH (``examples/fullmesh``, a third party's
distribution: loaded from its file here; a real process finds it installed
with pip, the ``fullMeshSite`` fixture of conftest)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

from reload.plugins import loadTopology

from .conftest import REPO

FULL_MESH_FILE = REPO / "examples" / "fullmesh" / "topologies" / "fullmesh.py"


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
