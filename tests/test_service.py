"""Running the peer as a service (issue 23): the systemd unit in
``contrib/`` passes ``systemd-analyze verify``, its example options are
options ``twistd reload`` accepts, and ``--log-level`` / ``--log-format
json`` give log shippers one JSON object per line at the level asked for."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from reload.config import defaultConfiguration, writeConfiguration
from reload.tap import Options

from .conftest import REPO, commandPath, freePort, requireTool, sourceEnv

CONTRIB = REPO / "contrib"


def _settings(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = requireTool("systemd-analyze", "systemd")
    unit = (CONTRIB / "reload.service").read_text()
    # The unit names pip's /usr/local/bin/twistd; verify checks that the
    # command exists, so point it at this machine's.
    installed = tmp_path / "reload.service"
    installed.write_text(unit.replace("/usr/local/bin/twistd", commandPath("twistd")))
    result = subprocess.run(
        [analyze, "verify", str(installed)], capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "reload.service" not in result.stdout + result.stderr, result.stderr

    broken = tmp_path / "broken.service"
    broken.write_text(unit.replace("Restart=on-failure", "Restart=sometimes"))
    refused = subprocess.run(
        [analyze, "verify", str(broken)], capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    assert "restart specifier" in refused.stderr


def test_the_unit_runs_twistd_in_the_foreground_as_its_own_user_and_restarts() -> None:
    settings = _settings((CONTRIB / "reload.service").read_text())
    [execStart] = settings["ExecStart"]
    assert re.match(r"/\S+/twistd --nodaemon --pidfile= --logfile=- reload ", execStart)
    assert "--data-dir=/var/lib/reload" in execStart
    assert settings["StateDirectory"] == ["reload"]
    assert settings["User"] == ["reload"] and settings["Restart"] == ["on-failure"]
    for option in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert option in settings, option
    sysusers = (CONTRIB / "reload.sysusers").read_text()
    assert re.search(r"^u\s+reload\s", sysusers, re.M)


def test_every_example_in_the_environment_file_is_a_valid_command_line(tmp_path: Path) -> None:
    config = tmp_path / "overlay.xml"
    config.write_bytes(writeConfiguration(defaultConfiguration("example.reload.local")))
    lines = re.findall(r'^#?RELOAD_OPTIONS="(.*)"$', (CONTRIB / "reload.env").read_text(), re.M)
    assert len(lines) >= 3
    for number, line in enumerate(lines):
        args = shlex.split(line.replace("/etc/reload/overlay.xml", str(config)))
        options = Options()
        options.parseOptions([*args, "--data-dir", str(tmp_path / f"d{number}")])
        assert options["settings"].listen == "tcp:6084"


def _state(adminPort: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{adminPort}/status", timeout=2) as r:
            state: str = json.load(r)["state"]
            return state
    except OSError:
        return None


def _runPeer(tmp_path: Path, *args: str) -> str:
    """A peer run with ``args`` until it has joined, then stopped; its log."""
    log = tmp_path / "peer.log"
    admin = freePort()
    process = subprocess.Popen(
        [commandPath("twistd"), "-n", "--pidfile=", f"--logfile={log}", "reload",
         "--data-dir", str(tmp_path / "data"), "--listen", f"tcp:{freePort()}:interface=127.0.0.1",
         "--admin", f"tcp:{admin}", *args],
        cwd=tmp_path, env=sourceEnv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _state(admin) != "joined":
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    return log.read_text()


def test_json_logs_are_one_object_per_line_with_a_message(tmp_path: Path) -> None:
    text = _runPeer(tmp_path, "--log-format", "json")
    events = [json.loads(line) for line in text.splitlines()]
    starting = [e for e in events if e.get("message", "").startswith("RELOAD peer")]
    assert starting, text[:2000]
    assert starting[0]["log_level"]["name"] == "info"
    assert starting[0]["log_namespace"] == "reload.node.Node"
    assert all("log_time" in e for e in events)


def test_log_level_leaves_out_what_is_less_severe(tmp_path: Path) -> None:
    (tmp_path / "info").mkdir()
    (tmp_path / "warn").mkdir()
    atInfo = _runPeer(tmp_path / "info", "--log-level", "info", "--log-format", "text")
    atWarn = _runPeer(tmp_path / "warn", "--log-level", "warn", "--log-format", "json")
    assert "RELOAD peer" in atInfo
    levels = {json.loads(line)["log_level"]["name"] for line in atWarn.splitlines()}
    assert levels <= {"warn", "error", "critical"}
    assert "RELOAD peer" not in atWarn


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--log-level", "chatty"], "--log-level 'chatty': expected one of debug, info, warn"),
        (["--log-format", "xml"], "--log-format 'xml': expected text or json"),
    ],
)
def test_bad_log_options_are_refused(tmp_path: Path, args: list[str], expected: str) -> None:
    from twisted.python import usage

    with pytest.raises(usage.UsageError, match=re.escape(expected)):
        Options().parseOptions([*args, "--data-dir", str(tmp_path / "d")])
