"""A peer of an enrollment-only overlay gets its certificate from
``twistd reload-enrollment`` on first start and joins with it (RFC 6940
section 11.3), all as real processes over HTTPS and TLS on loopback; a wrong
password stops the peer with a clear error."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reload.config import parseConfiguration
from tests.conftest import commandPath, freePort, sourceEnv
from tests.enrollment.test_twistd_enrollment import _fetch

OVERLAY = "enrolled.test"


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [commandPath("twistd"), "-n", "--pidfile=", f"--logfile={cwd / 'twistd.log'}", *args],
        cwd=cwd, env=sourceEnv(), text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _status(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
            status: dict[str, Any] = json.load(r)
            return status
    except OSError:
        return {}


@pytest.fixture(scope="module")
def enrollment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running enrollment server; yields the configuration file it serves."""
    directory = tmp_path_factory.mktemp("enrollment")
    port = freePort()
    server = _start(
        ["reload-enrollment", "--data-dir", "ca", "--listen", f"ssl:{port}:interface=127.0.0.1",
         "--hostname", "127.0.0.1", "--overlay", OVERLAY,
         "--add-user", "alice:alice-secret", "--add-user", "bob:bob-secret"],
        directory,
    )  # fmt: skip
    try:
        document = _fetch(
            f"https://127.0.0.1:{port}/.well-known/reload-config",
            directory / "ca" / "ca-cert.pem", server, time.monotonic() + 60,
        )  # fmt: skip
        config = directory / "overlay.xml"
        config.write_bytes(document)
        assert not parseConfiguration(document, OVERLAY).selfSignedPermitted
        yield config
    finally:
        _stop(server)


def _peer(
    config: Path, directory: Path, user: str, password: str, bootstrap: int | None = None
) -> tuple[subprocess.Popen[str], int, int]:
    directory.mkdir()
    (directory / "password").write_text(password + "\n")
    port, admin = freePort(), freePort()
    args = ["reload", "--config", str(config), "--data-dir", "data", "--user", user,
            "--password-file", "password", "--listen", f"tcp:{port}:interface=127.0.0.1",
            "--admin", f"tcp:{admin}:interface=127.0.0.1"]  # fmt: skip
    if bootstrap is not None:
        args += ["--bootstrap", f"127.0.0.1:{bootstrap}"]
    return _start(args, directory), port, admin


def _waitJoined(process: subprocess.Popen[str], admin: int, log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = _status(admin)
        if status.get("state") == "joined":
            return status
        if process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(log.read_text()[-3000:])


def test_peers_enroll_on_first_start_and_join(enrollment: Path, tmp_path: Path) -> None:
    alice, alicePort, aliceAdmin = _peer(enrollment, tmp_path / "alice", "alice", "alice-secret")
    bob = None
    try:
        first = _waitJoined(alice, aliceAdmin, tmp_path / "alice" / "twistd.log")
        assert first["userName"] == f"alice@{OVERLAY}"
        bob, _, bobAdmin = _peer(
            enrollment, tmp_path / "bob", "bob", "bob-secret", bootstrap=alicePort
        )
        second = _waitJoined(bob, bobAdmin, tmp_path / "bob" / "twistd.log")
        assert second["userName"] == f"bob@{OVERLAY}"
        assert second["nodeId"] != first["nodeId"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if _status(bobAdmin).get("neighbours", {}).get("successors") == [first["nodeId"]]:
                break
            time.sleep(0.2)
        assert _status(bobAdmin)["neighbours"]["successors"] == [first["nodeId"]]
        # The certificate is kept: the enrolled identity is in the data dir.
        assert (tmp_path / "bob" / "data" / "identity" / "node-certificate.pem").exists()
    finally:
        _stop(alice)
        if bob is not None:
            _stop(bob)


def test_a_wrong_password_stops_the_peer_with_a_clear_error(
    enrollment: Path, tmp_path: Path
) -> None:
    process, _, _ = _peer(enrollment, tmp_path / "eve", "alice", "not-the-password")
    try:
        process.wait(timeout=60)
    finally:
        _stop(process)
    log = (tmp_path / "eve" / "twistd.log").read_text()
    assert "Cannot start the peer" in log
    assert "failed_authentication" in log
    assert "Traceback" not in log
    assert not (tmp_path / "eve" / "data" / "identity" / "node-certificate.pem").exists()
