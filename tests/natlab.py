"""The NAT lab as a pytest fixture (:mod:`reload.natlab`), and small
helpers that run Python inside its namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from reload.natlab import NatLab, natLabAvailable


def requireNatLab() -> None:
    """Fail under CI (which runs as root) and skip elsewhere when the NAT
    lab cannot be built here, saying why."""
    why = natLabAvailable()
    if why is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def natLab() -> Iterator[NatLab]:
    """A freshly built NAT lab, torn down after the test whatever happens."""
    requireNatLab()
    lab = NatLab()
    lab.build()
    try:
        yield lab
    finally:
        lab.teardown()


def pythonIn(lab: NatLab, namespace: str, source: str, *args: str, timeout: float = 20) -> Any:
    """Run ``source`` (which prints one JSON document) with this Python
    inside ``namespace``; its JSON output."""
    done = subprocess.run(
        lab.command(namespace, [sys.executable, "-c", source, *args]),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def postAdmin(lab: Any, peer: Any, path: str, **query: str) -> Any:
    """POST ``path?query`` to a NAT-lab peer's admin API (its Unix socket)."""
    return lab.adminCall(peer, "POST", f"{path}?{urllib.parse.urlencode(query)}", b"")
