"""A third party's topology in a distribution of its own (issue 22; DESIGN.md
"Discovery"): the worked example ``examples/fullmesh`` (FULL-MESH), built
and installed with pip into a directory outside this checkout, is found by
``getPlugins(ITopologyPlugin, topologies)`` beside the topologies reload
ships, and real ``twistd reload`` peers whose overlay configuration names
it in ``topology-plugin`` (RFC 6940 section 11.1) run it: store and fetch."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.lab import Lab

from .conftest import sourceEnv
from .replication_support import fetchSpread, holders, spreadResource, storeSpread, writeOverlay

SHIPPED = ["CHORD-RELOAD", "CHORD-SELF-TUNING", "ONE-HOP-RELOAD"]

FIND = (
    "import json, topologies\n"
    "from twisted.plugin import getPlugins\n"
    "from reload.interfaces import ITopologyPlugin\n"
    "found = {p.name: type(p).__module__ for p in getPlugins(ITopologyPlugin, topologies)}\n"
    "files = {n: __import__(m, fromlist=['x']).__file__ for n, m in found.items()}\n"
    "print(json.dumps(files))\n"
)


def foundTopologies(extraPath: list[str], cwd: Path) -> dict[str, str]:
    """Topology name -> the file of its plugin module, as a fresh process
    with ``extraPath`` first on its path finds them."""
    out = subprocess.run(
        [sys.executable, "-c", FIND],
        capture_output=True, text=True, env=sourceEnv(extraPath), cwd=cwd, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    found: dict[str, str] = json.loads(out.stdout)
    return found


def test_getplugins_finds_the_installed_topology(fullMeshSite: Path) -> None:
    found = foundTopologies([str(fullMeshSite)], fullMeshSite)
    assert sorted(found) == sorted([*SHIPPED, "FULL-MESH"])
    # The installed copy, not the example's source in this checkout.
    assert found["FULL-MESH"] == str(fullMeshSite / "topologies" / "fullmesh.py")


def test_without_the_distribution_it_is_not_found(tmp_path: Path) -> None:
    assert sorted(foundTopologies([], tmp_path)) == SHIPPED


@pytest.fixture
def fullMeshLab(tmp_path: Path, fullMeshSite: Path) -> Iterator[Lab]:
    writeOverlay(tmp_path, "external-topology.reload.local", topology="FULL-MESH")
    lab = Lab(
        tmp_path, basePort=None, adminBasePort=None, environment=sourceEnv([str(fullMeshSite)])
    )
    try:
        lab.start(4)
        lab.waitConverged(120)
        yield lab
    finally:
        lab.stop()


def test_twistd_peers_run_the_installed_topology(fullMeshLab: Lab) -> None:
    lab = fullMeshLab
    statuses = [lab.status(p) for p in lab.peers]
    assert {s["topology"] for s in statuses} == {"FULL-MESH"}
    # FULL-MESH: every peer is connected to the three others.
    for status in statuses:
        assert len(status["links"]) >= 3, status["links"]
    writer, writerId = lab.peers[0], statuses[0]["nodeId"]
    for i in range(1, 4):
        stored = storeSpread(writer, writerId, i, f"value {i}")
        assert len(stored["replicas"]) == 2, stored
    for i in range(1, 4):
        for reader in lab.peers[1:]:
            assert fetchSpread(reader, writerId, i) == f"value {i}"
        assert len(holders(lab, spreadResource(writerId, i))) == 3
