"""Start-up fails fast (issue 17): a peer that cannot start ends with a
non-zero exit status and one line saying why, run the way an operator runs
it (``twistd reload``, ``reloadctl``)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from .conftest import commandPath, freePort, sourceEnv, twistd
from .test_twistd import _waitForStatus


def _errorLines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_a_taken_listen_port_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    port = freePort()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = twistd(
            "-n", "--pidfile=", "--logfile=twistd.log", "reload",
            "--data-dir", "data", "--listen", f"tcp:{port}:interface=127.0.0.1",
            cwd=tmp_path, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    lines = _errorLines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("twistd reload: Couldn't listen on 127.0.0.1:")
    assert "Address already in use" in lines[0]
    log = (tmp_path / "twistd.log").read_text()
    assert "Cannot start the peer" in log and "Traceback" not in log


def test_a_second_peer_on_a_data_directory_is_refused_naming_the_first(tmp_path: Path) -> None:
    adminPort = freePort()
    first = subprocess.Popen(
        [
            commandPath("twistd"), "-n", "--pidfile=", "--logfile=first.log", "reload",
            "--data-dir", "data", "--listen", "tcp:0:interface=127.0.0.1",
            "--admin", f"tcp:{adminPort}:interface=127.0.0.1",
        ],
        cwd=tmp_path, env=sourceEnv(), text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _waitForStatus(adminPort, first, time.monotonic() + 60)
        assert (tmp_path / "data" / "peer.lock").read_text().strip() == str(first.pid)
        second = twistd(
            "-n", "--pidfile=", "--logfile=second.log", "reload",
            "--data-dir", "data", "--listen", "tcp:0:interface=127.0.0.1",
            cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        lines = _errorLines(second)
        assert lines == [
            f"twistd reload: --data-dir {tmp_path / 'data'}: "
            f"in use by the peer with pid {first.pid}"
        ], lines
        assert first.poll() is None, "the first peer keeps running"
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
    # Released at exit: the directory can be used again.
    assert (tmp_path / "data" / "peer.lock").read_text() == ""


def test_reloadctl_lab_with_no_peers_is_an_error_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [commandPath("reloadctl"), "lab", "--peers", "0", "--dir", str(tmp_path / "lab")],
        capture_output=True, text=True, env=sourceEnv(), timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert _errorLines(result) == [
        "reloadctl lab: error: argument --peers: must be from 1 to 200, got 0 "
        "(see 'reloadctl lab --help')"
    ]
    assert not (tmp_path / "lab").exists()


def test_every_count_option_of_twistd_reload_checks_its_range(tmp_path: Path) -> None:
    for args, message in [
        (["--max-links", "0"], "--max-links must be from 1 to 4096, got 0"),
        (["--max-handshakes-per-source", "x"], "--max-handshakes-per-source 'x': expected"),
        (["--handshake-timeout", "0"], "--handshake-timeout must be from 0 to 600, got 0"),
        (["--log-keep", "-1"], "--log-keep must be from 0 to 1000, got -1"),
    ]:
        result = twistd("-n", "reload", *args, cwd=tmp_path)
        assert result.returncode != 0
        assert message in result.stdout + result.stderr
