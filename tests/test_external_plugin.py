"""A usage and a topology shipped in a separate distribution are discovered
(DESIGN.md "Discovery"): built with pip into a directory of its own, outside
this repository, and found through the ``usages`` and ``topologies`` plugin
packages' path extension."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import REPO, installDistribution, sourceEnv

USAGE_MODULE = '''
"""A third party's usage, shipped as usages/exampleusage.py."""
from zope.interface import implementer
from reload.interfaces import IUsage

@implementer(IUsage)
class ExampleUsage:
    name = "EXAMPLE-EXTERNAL"
    description = "a usage from another distribution"
    options = {"greeting": "what to say"}

    def kinds(self):
        return []

    def accessPolicies(self):
        return []

    def checkOptions(self, options):
        return None

    def makeService(self, node, options):
        return None

example = ExampleUsage()
'''

TOPOLOGY_MODULE = '''
"""A third party's topology plugin object (its name is what matters here)."""
from zope.interface import implementer
from reload.interfaces import ITopologyPlugin

@implementer(ITopologyPlugin)
class ExampleTopology:
    name = "EXAMPLE-RING"
    nodeIdLength = 16

    def makeTopology(self, node):
        raise RuntimeError("selected only by name in this test")

example = ExampleTopology()
'''


@pytest.fixture(scope="module")
def externalSite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("example-dist")
    (source / "usages").mkdir()
    (source / "topologies").mkdir()
    (source / "usages" / "exampleusage.py").write_text(USAGE_MODULE)
    (source / "topologies" / "exampletopology.py").write_text(TOPOLOGY_MODULE)
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    (source / "setup.cfg").write_text(
        textwrap.dedent(
            """
            [metadata]
            name = reload-example-plugins
            version = 1.0

            [options]
            packages = usages, topologies
            """
        )
    )
    site = installDistribution(source, tmp_path_factory.mktemp("example-site"))
    assert (site / "usages" / "exampleusage.py").exists()
    assert not (site / "usages" / "__init__.py").exists()
    return site


def test_reloadctl_lists_plugins_from_another_distribution(externalSite: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reload.ctl.main", "plugins", "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=sourceEnv([str(externalSite)]),
        cwd=externalSite,
    )
    plugins = json.loads(out.stdout)
    assert "EXAMPLE-EXTERNAL" in plugins["usages"]
    assert "EXAMPLE-RING" in plugins["topologies"]
    assert "CHORD-RELOAD" in plugins["topologies"]


def test_external_usage_is_selected_and_verified(externalSite: Path) -> None:
    code = (
        "from reload.plugins import loadUsages\n"
        "[u] = loadUsages(['EXAMPLE-EXTERNAL'])\n"
        "print(u.name, sorted(u.options))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=sourceEnv([str(externalSite)]),
        cwd=externalSite,
    )
    assert out.stdout.strip() == "EXAMPLE-EXTERNAL ['greeting']"


def test_without_the_distribution_it_is_not_found(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reload.ctl.main", "plugins", "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=sourceEnv(),
        cwd=tmp_path,
    )
    assert "EXAMPLE-EXTERNAL" not in json.loads(out.stdout)["usages"]


def test_an_installed_reload_finds_its_own_topology_outside_the_checkout(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pip install .`` ships CHORD-RELOAD whole (the plugin module and
    its package, topologies/chordreload): found from an installation, not
    from this checkout."""
    # Which packages ship is the question here, not the compiled codec
    # (tests/test_codec_build.py, and CI's compiled run): skip the minute
    # mypyc and the C compiler would take.
    monkeypatch.setenv("RELOAD_COMPILE", "0")
    # A clean copy of the source, as a fresh clone has it: no build/ or
    # egg-info whose file lists would hide a package missing from setup.cfg.
    source = tmp_path_factory.mktemp("reload-source") / "reload"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", "dropin.cache", ".mypy_cache",
            ".ruff_cache", ".pytest_cache", ".hypothesis", "*.so",
        ),
    )  # fmt: skip
    site = installDistribution(source, tmp_path_factory.mktemp("reload-site"))
    assert (site / "topologies" / "chordreload" / "topology.py").exists()
    code = (
        "import reload, sys\n"
        "from reload.plugins import loadTopology\n"
        "assert reload.__file__.startswith(sys.argv[1]), reload.__file__\n"
        "print(loadTopology('CHORD-RELOAD').name)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        capture_output=True, text=True, env=env, cwd=site, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "CHORD-RELOAD"
