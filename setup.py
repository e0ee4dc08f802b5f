"""Build the package, compiling the wire codec with mypyc where it can.

Metadata lives in setup.cfg; this file only adds the compiled codec
(README, "The compiled codec").  ``RELOAD_COMPILE`` chooses:

- unset or ``auto``: compile ``reload/wire`` with mypyc; if mypyc or the C
  compiler fails, say why and install the pure-Python modules instead;
- ``1``: compile, and fail the build if that fails;
- ``0``: do not compile.

mypyc rather than Cython: the codec is already fully annotated and checked
by mypy --strict, so mypyc compiles the very modules the pure-Python
fallback runs, with no second source (.pyx or .pxd) to keep in step, and
its only build dependency is mypy, which the project uses anyway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
#: Every module of the codec package is compiled, or none is: the modules
#: share one mypyc runtime library, and reload.wire.COMPILED speaks for all.
CODEC = sorted(str(p.relative_to(HERE)) for p in (HERE / "reload" / "wire").glob("*.py"))
MODES = ("auto", "0", "1")


def compileMode() -> str:
    mode = os.environ.get("RELOAD_COMPILE", "auto").strip().lower() or "auto"
    if mode not in MODES:
        sys.exit(f"RELOAD_COMPILE must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def fallBack(reason: object) -> None:
    print(
        f"reload: the wire codec is not compiled ({reason}); installing the "
        "pure-Python modules (RELOAD_COMPILE=1 makes this an error)",
        file=sys.stderr,
    )


def codecExtensions(mode: str) -> list[Any]:
    """mypyc's extensions for reload/wire, or none."""
    if mode == "0":
        return []
    try:
        from mypyc.build import mypycify

        # --config-file= : setup.cfg's [mypy] section names plugins the build
        # environment does not have; the codec needs no plugin.
        return mypycify(["--config-file=", *CODEC], group_name="reload_wire", opt_level="3")
    except (Exception, SystemExit) as exc:
        if mode == "1":
            raise
        fallBack(f"mypyc: {exc!r}")
        return []


class OptionalBuildExt(build_ext):
    """build_ext that, unless compilation is forced, leaves the codec pure
    when the C compiler fails (no compiler, no Python headers...)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            if compileMode() == "1":
                raise
            self.removeBuilt()
            fallBack(f"C compiler: {exc}")

    def removeBuilt(self) -> None:
        """Remove every extension built before the failure, so that no
        half-compiled package is installed."""
        for ext in self.extensions:
            built = Path(self.get_ext_fullpath(ext.name))
            if built.exists():
                built.unlink()
        self.extensions = []


setup(
    ext_modules=codecExtensions(compileMode()),
    cmdclass={"build_ext": OptionalBuildExt},
)
