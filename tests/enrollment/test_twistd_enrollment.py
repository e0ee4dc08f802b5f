"""``twistd reload-enrollment`` as an operator runs it: help, bad options,
start, fetch the configuration over HTTPS, SIGTERM."""

from __future__ import annotations

import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from reload.config import parseConfiguration
from tests.conftest import commandPath, freePort, sourceEnv, twistd

OPTIONS = [
    "--data-dir",
    "--listen",
    "--hostname",
    "--overlay",
    "--config",
    "--bootstrap",
    "--add-user",
    "--node-ids-per-user",
    "--validity-days",
    "--tls-cert",
    "--tls-key",
]


def test_help_documents_every_option(tmp_path: Path) -> None:
    result = twistd("reload-enrollment", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in OPTIONS:
        assert option in result.stdout, option


def test_twistd_lists_the_enrollment_plugin(tmp_path: Path) -> None:
    result = twistd("--help", cwd=tmp_path)
    assert "reload-enrollment" in result.stdout
    assert "A RELOAD (RFC 6940) enrollment server." in result.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["--listen", "tcp:notaport"], "--listen 'tcp:notaport': the tcp port 'notaport' is not"),
        (["--listen", "ssl:8443:privateKey=k.pem"], "privateKey= is not taken here"),
        (["--add-user", "alice"], "expected NAME:PASSWORD"),
        (["--add-user", "al ice:pw"], "is not an account name"),
        (["--add-user", "a\tb:pw"], "is not an account name"),
        (["--node-ids-per-user", "0"], "--node-ids-per-user '0': expected a number"),
        (["--validity-days", "forever"], "--validity-days 'forever': expected a number"),
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "none.pem", "--tls-key", "none.pem"], "none.pem"),
        (["--hostname", "not a host"], "--hostname 'not a host'"),
        (["--overlay", "bad!name"], "overlay 'bad!name'"),
        (["--bootstrap", "host:port"], "--bootstrap 'host:port': port must be a number"),
        (["--config", "/nonexistent/overlay.xml"], "--config /nonexistent/overlay.xml"),
        (["--no-such-option"], "option --no-such-option not recognized"),
    ],
)
def test_bad_options_are_usage_errors_not_tracebacks(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = twistd("-n", "reload-enrollment", "--data-dir", "data", *args, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output
    assert "Traceback" not in output


def test_config_without_this_ca_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "overlay.xml"
    config.write_text(
        '<overlay xmlns="urn:ietf:params:xml:ns:p2p:config-base">'
        '<configuration instance-name="overlay.test" sequence="1">'
        "<enrollment-server>https://overlay.test/enroll</enrollment-server>"
        "</configuration></overlay>"
    )
    result = twistd("-n", "reload-enrollment", "--config", str(config), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "root-cert does not include this server's CA" in output
    assert "Traceback" not in output


def _fetch(url: str, ca: Path, process: subprocess.Popen[str], deadline: float) -> bytes:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"twistd exited early: {process.communicate()}")
        if ca.exists():
            context = ssl.create_default_context(cafile=str(ca))
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    assert response.headers["Content-Type"] == "application/p2p-overlay+xml"
                    data: bytes = response.read()
                    return data
            except OSError:
                pass
        time.sleep(0.2)
    pytest.fail("the enrollment server did not answer in time")


def test_server_starts_serves_the_configuration_and_stops(tmp_path: Path) -> None:
    port = freePort()
    logFile = tmp_path / "twistd.log"
    process = subprocess.Popen(
        [
            commandPath("twistd"),
            "-n",
            "--pidfile=",
            f"--logfile={logFile}",
            "reload-enrollment",
            "--data-dir",
            "ca",
            "--listen",
            f"ssl:{port}:interface=127.0.0.1",
            "--hostname",
            "127.0.0.1",
            "--overlay",
            "overlay.test",
            "--add-user",
            "alice:secret",
            "--bootstrap",
            "192.0.2.1:6084",
        ],
        cwd=tmp_path,
        env=sourceEnv(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"https://127.0.0.1:{port}/.well-known/reload-config"
        data = _fetch(url, tmp_path / "ca" / "ca-cert.pem", process, time.monotonic() + 60)
        configuration = parseConfiguration(data, "overlay.test")
        assert configuration.enrollmentServers == (f"https://127.0.0.1:{port}/enroll",)
        assert configuration.bootstrapNodes[0].address == "192.0.2.1"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGTERM
    users = (tmp_path / "ca" / "users.json").read_text()
    assert "alice" in users and "secret" not in users
    log = logFile.read_text()
    assert "RELOAD enrollment server for overlay.test listening" in log
    assert "Traceback" not in log
