"""Usage plugins run by ``twistd reload --usage`` as an operator runs them
(RFC 6940 section 5.2): the worked example GREETER, built as the separate
distribution it is, beside real peers over TLS; its options and its Kind
checked before the peer starts, one line each; a usage whose service fails
leaves the peer and the other usages serving."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reload.config import KindConfig, defaultConfiguration, writeConfiguration
from reload.lab import Lab

from .conftest import TEST_PLUGINS, commandPath, freePort, sourceEnv, twistd
from .replication_support import untilAsserted

GREETING = 0xF0000001


def _status(peer: Any) -> dict[str, Any]:
    with urllib.request.urlopen(f"{peer.admin}/status", timeout=5) as answer:
        status: dict[str, Any] = json.load(answer)
        return status


def _usages(peer: Any) -> dict[str, dict[str, Any]]:
    return {u["name"]: u for u in _status(peer)["usages"]}


def _ask(port: int, *lines: bytes, timeout: float = 20) -> list[bytes]:
    """The GREETER lookup port's answers to ``lines``, in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(b"".join(line + b"\n" for line in lines))
        received = b""
        deadline = time.monotonic() + timeout
        while received.count(b"\n") < len(lines) and time.monotonic() < deadline:
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
    return received.splitlines()


@pytest.fixture(scope="module")
def greeterLab(tmp_path_factory: pytest.TempPathFactory, greeterSite: Path) -> Iterator[Any]:
    """Three peers running GREETER (and, on the last, the BROKEN test
    usage), in an overlay whose configuration lists the GREETING Kind."""
    directory = tmp_path_factory.mktemp("lab-greeter")
    base = defaultConfiguration("greeter-lab.reload.local")
    greeting = KindConfig(
        kindId=GREETING, maxCount=1, maxSize=200, dataModel="SINGLE", accessControl="NODE-MATCH"
    )
    config = dataclasses.replace(base, kinds=(*base.kinds, greeting))
    (directory / "overlay.xml").write_bytes(writeConfiguration(config))
    lab = Lab(
        directory,
        basePort=None,
        adminBasePort=None,
        environment=sourceEnv([str(greeterSite), str(TEST_PLUGINS)]),
    )
    lookups = freePort()
    peers = []
    try:
        for index in range(3):
            greeting = f"hello from peer {index + 1}"
            lab.extraArgs = ["--usage", "GREETER", "--usage-option", f"GREETER:greeting={greeting}"]
            if index == 0:
                lab.extraArgs += [
                    "--usage-option",
                    f"GREETER:listen=tcp:{lookups}:interface=127.0.0.1",
                ]
            if index == 2:
                lab.extraArgs += ["--usage", "BROKEN"]
            peers.append(lab.startPeer())
            lab.waitConverged(90)
        yield lab, lookups
    finally:
        lab.stop()


def test_the_example_usage_runs_beside_each_peer_and_answers_lookups(greeterLab: Any) -> None:
    lab, lookups = greeterLab
    nodeIds = [_status(peer)["nodeId"] for peer in lab.peers]
    for peer in lab.peers:
        assert _usages(peer)["GREETER"]["state"] == "running"
        assert _usages(peer)["GREETER"]["kinds"] == ["GREETING (0xf0000001)"]

    def answered() -> list[bytes]:
        answers = _ask(lookups, *(n.encode() for n in nodeIds), b"not hex", b"00" * 16)
        assert answers[:3] == [f"OK hello from peer {i}".encode() for i in (1, 2, 3)], answers
        return answers

    answers = untilAsserted(answered)
    # In the order asked, whatever each Fetch took.
    assert answers[3:] == [b"ERROR expected a Node-ID in hex", b"ERROR no greeting"]


def test_a_failing_usage_service_leaves_the_peer_and_the_other_usages_serving(
    greeterLab: Any,
) -> None:
    lab, lookups = greeterLab
    last = lab.peers[2]
    status = _status(last)
    assert status["state"] == "joined"
    usages = {u["name"]: u for u in status["usages"]}
    assert usages["BROKEN"]["state"] == "failed"
    assert "blew up on purpose" in usages["BROKEN"]["error"]
    assert usages["GREETER"]["state"] == "running"
    # The peer still stores and answers: its greeting is fetched through
    # another peer's lookup port.
    answer = untilAsserted(lambda: _checkedAsk(lookups, status["nodeId"], b"OK hello from peer 3"))
    assert answer == [b"OK hello from peer 3"]
    log = (Path(last.dataDir) / "twistd.log").read_text()
    assert "Usage BROKEN failed and is stopped; the peer goes on" in log
    # What an operator sees.
    shown = subprocess.run(
        [commandPath("reloadctl"), "status", "--admin", last.admin.removeprefix("http://")],
        capture_output=True, text=True, env=sourceEnv(), timeout=60, check=True,
    ).stdout  # fmt: skip
    [line] = [line for line in shown.splitlines() if line.startswith("usages")]
    assert "GREETER running" in line
    assert "BROKEN failed (RuntimeError: the BROKEN usage's service blew up on purpose)" in line


def _checkedAsk(port: int, nodeId: str, expected: bytes) -> list[bytes]:
    answer = _ask(port, nodeId.encode())
    assert answer == [expected], answer
    return answer


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["GREETER:greeting="], "--usage-option GREETER: greeting: a greeting is one line"),
        (["GREETER:listen=7070"], "--usage-option GREETER: listen: '7070' is not a Twisted"),
        (["GREETER:colour=red"], "unknown option; GREETER takes: greeting, listen"),
    ],
)
def test_a_bad_usage_option_stops_the_peer_with_one_line(
    tmp_path: Path, greeterSite: Path, options: list[str], message: str
) -> None:
    args = [arg for option in options for arg in ("--usage-option", option)]
    result = twistd("-n", "reload", "--usage", "GREETER", *args, cwd=tmp_path,
                    extraPath=[str(greeterSite)])  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    [line] = [line for line in output.splitlines() if message in line]
    assert "Traceback" not in output
    assert not (tmp_path / "reload-data").exists()
    assert line.endswith(message) or message in line


def test_a_usage_kind_missing_from_the_configuration_stops_the_peer_with_one_line(
    tmp_path: Path, greeterSite: Path
) -> None:
    config = tmp_path / "overlay.xml"
    config.write_bytes(writeConfiguration(defaultConfiguration("no-greeting.reload.local")))
    result = twistd("-n", "reload", "--usage", "GREETER", "--config", str(config), cwd=tmp_path,
                    extraPath=[str(greeterSite)])  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "GREETING" in line]
    assert "usage GREETER: Kind GREETING (0xf0000001) is not in the overlay configuration" in line
    # The element to add, whole, on that line.
    assert (
        '<kind-block><kind id="4026531841"><data-model>SINGLE</data-model>'
        "<access-control>NODE-MATCH</access-control><max-count>1</max-count>"
        "<max-size>200</max-size></kind></kind-block> to its <required-kinds>"
    ) in line


def test_a_new_default_overlay_lists_the_kinds_of_the_usages_it_runs(
    tmp_path: Path, greeterSite: Path
) -> None:
    """With no --config the first peer creates the overlay; it writes the
    Kinds of its usages into the configuration it keeps (and hands out)."""
    code = (
        "import sys\n"
        "from reload.tap import Options\n"
        "options = Options()\n"
        "options.parseOptions(['--data-dir', sys.argv[1], '--usage', 'GREETER'])\n"
        "kind = options['settings'].configuration.kind(0xF0000001)\n"
        "print(kind.dataModel, kind.accessControl, kind.maxCount, kind.maxSize)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "data")],
        capture_output=True, text=True, env=sourceEnv([str(greeterSite)]), cwd=tmp_path,
        timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.split() == ["SINGLE", "NODE-MATCH", "1", "200"]


def test_reloadctl_lab_runs_a_usage_on_every_peer(tmp_path: Path, greeterSite: Path) -> None:
    """``reloadctl lab --usage``: the lab's new overlay lists the usage's
    Kinds and every peer runs it."""
    env = sourceEnv([str(greeterSite)])
    labDir = tmp_path / "lab"
    started = subprocess.run(
        [commandPath("reloadctl"), "lab", "--peers", "2", "--dir", str(labDir),
         "--base-port", "0", "--admin-base-port", "0", "--detach",
         "--usage", "GREETER", "--usage-option", "GREETER:greeting=from the lab"],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        lab = Lab.load(labDir)
        for peer in lab.peers:
            assert _usages(peer)["GREETER"]["state"] == "running"
        assert b'<kind id="4026531841">' in (labDir / "overlay.xml").read_bytes()
    finally:
        subprocess.run(
            [commandPath("reloadctl"), "lab", "stop", "--dir", str(labDir)],
            capture_output=True, env=env, timeout=120,
        )  # fmt: skip


def test_reloadctl_usage_names_what_a_usage_does_not_offer(greeterLab: Any) -> None:
    """``POST /usage/NAME/OPERATION`` (``reloadctl usage``): a usage that is
    not run, or whose service offers no operations, is a one-line 404."""
    lab, _ = greeterLab
    admin = lab.peers[0].admin
    for args, message in (
        (["usage", "GREETER", "lookup"], "usage GREETER is running and offers no operations"),
        (["usage", "NOPE", "lookup", "a=b"], "usage NOPE is not run by this peer"),
    ):
        result = subprocess.run(
            [commandPath("reloadctl"), *args, "--admin", admin],
            capture_output=True, text=True, env=sourceEnv(), timeout=60,
        )  # fmt: skip
        assert result.returncode == 1
        assert result.stderr.strip().endswith(message), result.stderr
