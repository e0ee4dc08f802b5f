"""DESIGN.md's layering, held by the import-linter contracts in setup.cfg:
they pass on this tree, they name every module of reload, and they fail
on a wrong-way import."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, commandPath, sourceEnv

#: What plugins may import of reload (DESIGN.md): everything else of it is
#: forbidden to them.
PUBLIC = {"interfaces", "errors", "api", "testing"}


def _contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return parser


def _listed(section: str, key: str) -> set[str]:
    return set(_contracts()[section][key].split())


def _topLevelModules() -> set[str]:
    package = REPO / "reload"
    found = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    found |= {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    return found


def _lintImports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [commandPath("lint-imports"), "--config", str(root / "setup.cfg"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=root,
        env=sourceEnv([str(root)]),
        timeout=300,
    )


def test_every_module_of_reload_is_either_public_or_forbidden_to_plugins() -> None:
    forbidden = {
        m.removeprefix("reload.")
        for m in _listed("importlinter:contract:plugins-public-api", "forbidden_modules")
    }
    modules = _topLevelModules()
    assert modules - PUBLIC <= forbidden, f"unclassified: {sorted(modules - PUBLIC - forbidden)}"
    assert not forbidden & PUBLIC
    # And the wire layer may import none of them.
    wire = {
        m.removeprefix("reload.")
        for m in _listed("importlinter:contract:wire", "forbidden_modules")
        if m.startswith("reload.")
    }
    assert modules - {"wire"} <= wire, sorted(modules - {"wire"} - wire)


def test_the_contracts_hold_on_this_tree() -> None:
    result = _lintImports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "reload/storage/kinds.py",
            "import reload.transport.dispatcher  # wrong way\n",
            "transport imports wire, security and link",
        ),
        (
            "reload/wire/buffer.py",
            "import twisted.internet.defer  # wrong way\n",
            "wire imports nothing of reload but itself, and no Twisted",
        ),
        (
            "usages/wrongway.py",
            "import reload.storage.service  # wrong way\n",
            "topologies and usages import only reload.interfaces",
        ),
        (
            "reload/transport/routing.py",
            "import topologies  # wrong way\n",
            "the core imports no topology and no usage",
        ),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    for name in ("reload", "topologies", "usages"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "setup.cfg", tmp_path / "setup.cfg")
    target = tmp_path / module
    target.write_text((target.read_text() if target.exists() else "") + line)
    result = _lintImports(tmp_path)
    assert result.returncode != 0
    assert f"{contract}" in " ".join(result.stdout.split())
    assert "BROKEN" in result.stdout
