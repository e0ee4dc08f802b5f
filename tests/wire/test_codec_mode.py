"""Which codec runs: mypyc-compiled or pure Python (README, "The compiled
codec").  CI runs the suite once each way and sets ``RELOAD_EXPECT_CODEC``
so that a run which silently imported the other one fails here."""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import pytest

import reload.wire
from reload.ctl.main import buildParser
from reload.ctl.text import statusText
from reload.wire import CODEC, COMPILED


def _modules() -> list[str]:
    return sorted(
        f"reload.wire.{m.name}" for m in pkgutil.iter_modules(reload.wire.__path__) if not m.ispkg
    )


def test_the_expected_codec_is_the_one_imported() -> None:
    expected = os.environ.get("RELOAD_EXPECT_CODEC", "")
    if expected:
        assert expected in ("compiled", "pure"), f"RELOAD_EXPECT_CODEC={expected!r}"
        assert expected == CODEC, f"{reload.wire.__file__} is the {CODEC} codec"
    assert ("compiled" if COMPILED else "pure") == CODEC


def test_every_module_of_the_codec_is_compiled_or_none_is() -> None:
    """A half-compiled package would be neither of the two runs CI makes."""
    modules = _modules()
    assert "reload.wire.storage" in modules and len(modules) >= 15
    for name in modules:
        path = Path(importlib.import_module(name).__file__ or "")
        assert (path.suffix == ".so") is COMPILED, f"{name} is {path.name}"


def test_reloadctl_version_names_the_codec(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        buildParser().parse_args(["--version"])
    assert f"({CODEC} codec)" in capsys.readouterr().out


def test_status_text_names_the_codec() -> None:
    text = statusText({"version": "1.2.3", "codec": "compiled", "links": []})
    assert "1.2.3 (compiled codec)" in text
