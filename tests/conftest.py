"""Shared fixtures: running the installed commands the way a user does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reload.lab import freeListenPort

REPO = Path(__file__).resolve().parent.parent

#: The harness fixture plugin authors load the same way (docs/plugins.md).
pytest_plugins = ["reload.testing.fixtures", "tests.natlab"]


def commandPath(name: str) -> str:
    """The console script ``name`` installed beside this Python."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run pip install '.[test]' first")
    return found


def twistd(
    *args: str, cwd: Path, timeout: float = 60, extraPath: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``twistd ARGS`` in ``cwd`` with this checkout's code (and
    ``extraPath`` before it); its output."""
    return subprocess.run(
        [commandPath("twistd"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=sourceEnv(extraPath),
        timeout=timeout,
    )


#: Plugins the tests install by path: ``tests/plugins/usages/*.py``.
TEST_PLUGINS = REPO / "tests" / "plugins"


def installDistribution(source: Path, site: Path) -> Path:
    """``pip install`` the distribution in ``source`` into ``site`` (a
    directory of its own, as another project's site-packages), without its
    dependencies (this checkout is the ``reload`` it needs)."""
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--target", str(site), str(source),
        ],
        check=True,
    )  # fmt: skip
    return site


@pytest.fixture(scope="session")
def greeterSite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worked example usage (examples/greeter), built and installed as
    the separate distribution it is."""
    site = installDistribution(REPO / "examples" / "greeter", tmp_path_factory.mktemp("greeter"))
    assert (site / "usages" / "greeter.py").exists()
    assert not (site / "usages" / "__init__.py").exists()
    return site


@pytest.fixture(scope="session")
def fullMeshSite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worked example topology (examples/fullmesh, FULL-MESH), built
    and installed as the separate distribution it is."""
    site = installDistribution(REPO / "examples" / "fullmesh", tmp_path_factory.mktemp("fullmesh"))
    assert (site / "topologies" / "fullmesh.py").exists()
    assert not (site / "topologies" / "__init__.py").exists()
    return site


def freePort() -> int:
    """A TCP port on 127.0.0.1 that is free, below the ephemeral range (so
    no outbound connection takes it before the test's listener does)."""
    return freeListenPort()


def sourceEnv(extraPath: list[str] | None = None) -> dict[str, str]:
    """Environment for a subprocess that imports this checkout's code first."""
    env = dict(os.environ)
    parts = [*(extraPath or []), str(REPO)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def requireTool(name: str, debianPackage: str) -> str:
    """The path of an external tool the test needs.  Missing, it fails the
    test under CI (``CI=true``) and skips it elsewhere, naming the package."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package {debianPackage})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path
