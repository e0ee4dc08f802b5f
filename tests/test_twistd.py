"""``twistd reload`` as an operator runs it: help, bad options, start and
SIGTERM (issue: foundation)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import commandPath, freePort, sourceEnv, twistd

OPTIONS = [
    "--config",
    "--data-dir",
    "--listen",
    "--bootstrap",
    "--admin",
    "--topology",
    "--usage",
    "--usage-option",
    "--user",
    "--password-file",
    "--advertise",
    "--link-protocol",
    "--storage-quota",
    "--storage-sync",
    "--client",
    "--direct-links",
    "--trace-messages",
    "--max-links",
    "--max-handshakes",
    "--max-handshakes-per-source",
    "--max-unproven-links-per-source",
    "--handshake-timeout",
    "--max-malformed",
    "--log-keep",
]


def test_help_documents_every_option(tmp_path: Path) -> None:
    result = twistd("reload", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in OPTIONS:
        assert option in result.stdout, option


def test_twistd_lists_the_reload_plugin(tmp_path: Path) -> None:
    result = twistd("--help", cwd=tmp_path)
    assert "reload" in result.stdout
    assert "A RELOAD (RFC 6940) overlay peer." in result.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--listen", "tcp:notaport"], "--listen 'tcp:notaport': the tcp port 'notaport' is not"),
        (["--listen", "carrier-pigeon:1"], "Unknown endpoint type"),
        (["--admin", "tcp:70000"], "--admin 'tcp:70000': port 70000 is not in 0-65535"),
        (["--bootstrap", "host:port"], "--bootstrap 'host:port': port must be a number"),
        (["--bootstrap", "::1:6084"], "write IPv6 addresses as [ADDRESS]:PORT"),
        (["--topology", "NO-SUCH"], "--topology NO-SUCH: the overlay configuration uses"),
        (["--usage", "NO-SUCH"], "unknown usage 'NO-SUCH'; installed:"),
        (["--usage-option", "x"], "expected NAME:KEY=VALUE"),
        (
            ["--config", "/nonexistent/overlay.xml"],
            "--config /nonexistent/overlay.xml: no such file",
        ),
        (["--no-such-option"], "option --no-such-option not recognized"),
        (["--link-protocol", "carrier-pigeon"], "--link-protocol 'carrier-pigeon': expected tls"),
        (["--password-file", "/nonexistent/pw"], "--password-file /nonexistent/pw"),
        (["--storage-sync", "sometimes"], "--storage-sync 'sometimes': expected normal or full"),
        (["--direct-links", "-3"], "--direct-links must be 0 or more, got -3"),
    ],
)
def test_bad_options_are_usage_errors_not_tracebacks(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = twistd("-n", "reload", *args, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output
    assert "Traceback" not in output


def test_bad_config_document_names_the_element(tmp_path: Path) -> None:
    config = tmp_path / "overlay.xml"
    config.write_text(
        '<overlay xmlns="urn:ietf:params:xml:ns:p2p:config-base">'
        '<configuration instance-name="bad.example" sequence="1">'
        "<max-message-size>lots</max-message-size></configuration></overlay>"
    )
    result = twistd("-n", "reload", "--config", str(config), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "max-message-size" in output
    assert "Traceback" not in output


def _waitForStatus(port: int, process: subprocess.Popen[str], deadline: float) -> dict[str, object]:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"twistd exited early: {process.communicate()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
                status: dict[str, object] = json.load(r)
                return status
        except OSError:
            time.sleep(0.2)
    pytest.fail("the admin API did not answer in time")


def test_peer_starts_serves_status_and_stops_on_sigterm(tmp_path: Path) -> None:
    adminPort = freePort()
    logFile = tmp_path / "twistd.log"
    process = subprocess.Popen(
        [
            commandPath("twistd"),
            "-n",
            "--pidfile=",
            f"--logfile={logFile}",
            "reload",
            "--data-dir",
            "peer-data",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--admin",
            f"tcp:{adminPort}:interface=127.0.0.1",
        ],
        cwd=tmp_path,
        env=sourceEnv(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        status = _waitForStatus(adminPort, process, time.monotonic() + 60)
        assert status["running"] is True
        assert status["topology"] == "CHORD-RELOAD"
        assert (tmp_path / "peer-data").is_dir()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # twistd stops cleanly, then re-raises the signal that stopped it so the
    # exit status says so (twisted.application.app, _exitSignal).
    assert process.returncode == -signal.SIGTERM
    log = logFile.read_text()
    assert "RELOAD peer" in log and "starting" in log
    assert "RELOAD peer stopping" in log
    assert "Main loop terminated." in log
    assert "Traceback" not in log
