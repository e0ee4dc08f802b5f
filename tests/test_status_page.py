"""The status page (issue 23), loaded the way an operator sees it: headless
Chromium renders ``GET /`` of a peer in a real five-peer lab, and what the
page shows -- this peer, its ring, its links, its storage -- is what
``reloadctl`` reports for the same peer."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from reload.lab import Lab, LabPeer

from .conftest import commandPath, requireTool, sourceEnv

PEERS = 5


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(
        tmp_path_factory.mktemp("page"), basePort=None, adminBasePort=None, environment=sourceEnv()
    )
    lab.start(PEERS)
    try:
        lab.waitConverged(90)
        yield lab
    finally:
        lab.stop()


class _Fields(HTMLParser):
    """Every ``data-field`` element's text, by field name, in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, list[str]] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        field = dict(attrs).get("data-field")
        self._open.append(field)
        if field is not None:
            self.fields.setdefault(field, []).append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        field = next((f for f in reversed(self._open) if f is not None), None)
        if field is not None:
            self.fields[field][-1] += data


def _rendered(peer: LabPeer, profile: Path) -> dict[str, list[str]]:
    """The page as Chromium renders it (its DOM after loading)."""
    browser = requireTool("chromium", "chromium")
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", peer.admin + "/"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    parser = _Fields()
    parser.feed(result.stdout)
    return parser.fields


def _reloadctl(*args: str) -> Any:
    result = subprocess.run(
        [commandPath("reloadctl"), *args, "--json"],
        capture_output=True, text=True, env=sourceEnv(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_page_shows_what_reloadctl_reports(lab: Lab, tmp_path: Path) -> None:
    peer = lab.peers[0]
    # The page and reloadctl are two reads: a finger or a link may change
    # in between while the ring settles.  Look again until they agree.
    for _ in range(10):
        shown = _rendered(peer, tmp_path / "profile")
        status = _reloadctl("status", "--admin", peer.admin)
        ring = _reloadctl("ring", "--admin", peer.admin)
        roles = ("predecessors", "successors", "fingers")
        sameRing = all(shown.get(role) == ring[role] for role in roles)
        if sameRing and sorted(shown.get("link", [])) == sorted(status["links"]):
            break
        time.sleep(1)
    assert shown["nodeId"] == [status["nodeId"]] == [ring["nodeId"]]
    assert shown["state"] == ["joined"]
    assert shown["overlay"] == [status["overlay"]]
    assert shown["topology"] == ["CHORD-RELOAD"]
    assert shown["version"] == [status["version"]]
    assert shown["address"] == [status["address"]]
    assert shown["predecessors"] == ring["predecessors"]
    assert shown["successors"] == ring["successors"]
    assert shown["fingers"] == ring["fingers"]
    assert shown["linkCount"] == [str(len(status["links"]))]
    assert sorted(shown["link"]) == sorted(status["links"])
    assert shown["resources"] == [str(status["storage"]["resources"])]
    assert "0x3" in shown["kind"]  # every peer stores its certificate (Kind 3)


def test_the_page_refreshes_itself_runs_no_script_and_draws_the_ring(lab: Lab) -> None:
    with urllib.request.urlopen(lab.peers[1].admin + "/", timeout=10) as response:
        html = response.read().decode()
        policy = response.headers["content-security-policy"]
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "<script" not in html and "default-src 'none'" in policy
    ring = html[html.index("<svg") : html.index("</svg>")]
    assert ring.count("<circle") == 1 + 1 + len(
        {n for ids in _reloadctl("ring", "--admin", lab.peers[1].admin).values()
         if isinstance(ids, list) for n in ids}
    )  # fmt: skip


def test_a_screenshot_of_the_page(lab: Lab, tmp_path: Path) -> None:
    browser = requireTool("chromium", "chromium")
    shot = tmp_path / "status-page.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=1100,1300", f"--screenshot={shot}", lab.peers[0].admin + "/"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20000
