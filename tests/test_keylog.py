"""Key logging (issue 9): with SSLKEYLOGFILE set, real peers append the
secrets of their TLS and DTLS links in the NSS key log format and warn at
start; without it, no key log is written anywhere."""

from __future__ import annotations

import os
from pathlib import Path

from reload.lab import Lab

from .conftest import sourceEnv

SECRET_LABELS = (b"CLIENT_HANDSHAKE_TRAFFIC_SECRET", b"CLIENT_TRAFFIC_SECRET_0", b"CLIENT_RANDOM")


def _run(directory: Path, environment: dict[str, str]) -> Lab:
    lab = Lab(
        directory,
        basePort=None,
        adminBasePort=None,
        extraArgs=["--link-protocol", "dtls"],
        environment=environment,
    )
    lab.start(3)
    try:
        lab.waitConverged(90)
        statuses = lab.statuses()
        assert all(s["linkTypes"]["dtls"] >= 1 for s in statuses)
    finally:
        lab.stop()
    return lab


def test_peers_log_tls_and_dtls_secrets_when_asked(tmp_path: Path) -> None:
    keyLog = tmp_path / "keys.log"
    env = sourceEnv()
    env["SSLKEYLOGFILE"] = str(keyLog)
    _run(tmp_path / "lab", env)
    lines = keyLog.read_bytes().splitlines()
    assert lines, "no secrets were logged"
    for line in lines:
        label, clientRandom, secret = line.split(b" ")
        assert label.isupper() and len(clientRandom) == 64 and len(secret) >= 64
    labels = {line.split(b" ")[0] for line in lines}
    assert labels & {b"CLIENT_TRAFFIC_SECRET_0"}, "TLS 1.3 secrets"
    # DTLS 1.2 sessions are logged with their master secret.
    assert b"CLIENT_RANDOM" in labels, "DTLS 1.2 secrets"
    assert os.stat(keyLog).st_mode & 0o077 == 0
    for peer in (tmp_path / "lab").glob("peer-*"):
        assert "SSLKEYLOGFILE is set" in (peer / "twistd.log").read_text()


def test_no_key_log_without_the_variable(tmp_path: Path) -> None:
    env = sourceEnv()
    env.pop("SSLKEYLOGFILE", None)
    _run(tmp_path / "lab", env)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(label in data for label in SECRET_LABELS), path
    for peer in (tmp_path / "lab").glob("peer-*"):
        assert "SSLKEYLOGFILE" not in (peer / "twistd.log").read_text()
