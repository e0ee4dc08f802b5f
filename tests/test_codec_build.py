"""Building the compiled codec (setup.py, README "The compiled codec"):
where the C compiler fails, the build falls back to the pure-Python
modules unless RELOAD_COMPILE=1 forces compilation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """What setup.py needs to build the codec, copied: the build writes
    next to the sources."""
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path)
    (tmp_path / "reload" / "wire").mkdir(parents=True)
    shutil.copy(REPO / "reload" / "__init__.py", tmp_path / "reload")
    for module in (REPO / "reload" / "wire").glob("*.py"):
        shutil.copy(module, tmp_path / "reload" / "wire")
    return tmp_path


def buildInPlace(source: Path, mode: str) -> subprocess.CompletedProcess[str]:
    # CC=false: a C compiler that fails every compilation.
    env = {**os.environ, "RELOAD_COMPILE": mode, "CC": "false"}
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_failing_compiler_leaves_the_pure_codec(source: Path) -> None:
    done = buildInPlace(source, "auto")
    assert done.returncode == 0, done.stderr
    assert "the wire codec is not compiled" in done.stderr
    assert not list(source.rglob("*.so"))


def test_a_failing_compiler_fails_a_forced_build(source: Path) -> None:
    done = buildInPlace(source, "1")
    assert done.returncode != 0
    assert not list((source / "reload").rglob("*.so"))


def test_an_unknown_mode_is_refused_with_one_line(source: Path) -> None:
    done = buildInPlace(source, "yes")
    assert done.returncode != 0
    assert "RELOAD_COMPILE must be one of auto, 0, 1, not 'yes'" in done.stderr
