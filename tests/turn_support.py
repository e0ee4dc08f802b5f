"""Helpers for the TURN tests and benchmark: free ports and coturn.

coturn (Debian package ``coturn``) is the independent implementation the
built-in server is checked against: its ``turnserver`` answers the probe,
and its ``turnutils_uclient`` and ``turnutils_peer`` drive the built-in
server.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from usages.turnserver.stun import (
    MessageClass,
    Method,
    StunDecodeError,
    decodeMessage,
    encodeMessage,
    newTransactionId,
)

HOST = "127.0.0.1"


def freeTurnPort(low: int = 20000, high: int = 30000) -> int:
    """A port on 127.0.0.1 free for both UDP and TCP now (below the
    ephemeral range, so outbound sockets do not take it meanwhile)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((HOST, port))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((HOST, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for a TURN server")


def freePortRange(size: int, low: int = 30000, high: int = 32000) -> tuple[int, int]:
    """``size`` consecutive UDP ports free now, for relayed addresses."""
    rng = random.Random()
    for _ in range(100):
        start = rng.randrange(low, high - size) & ~1
        sockets: list[socket.socket] = []
        try:
            for port in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return start, start + size - 1
    raise RuntimeError("no free port range")


def bindingAnswers(port: int, host: str = HOST, timeout: float = 0.3) -> bool:
    """A blocking STUN Binding over UDP: does something answer there?"""
    tid = newTransactionId()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(encodeMessage(Method.BINDING, MessageClass.REQUEST, tid), (host, port))
            data, _ = s.recvfrom(2048)
        except OSError:
            return False
    try:
        return decodeMessage(data).transactionId == tid
    except StunDecodeError:
        return False


@contextmanager
def coturn(
    workdir: Path,
    port: int,
    *,
    users: Mapping[str, str] | None = None,
    realm: str = "reload",
    relayPorts: tuple[int, int] | None = None,
    extra: tuple[str, ...] = (),
    startTimeout: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run coturn's ``turnserver`` on 127.0.0.1:``port`` (UDP and TCP, no
    TLS, no CLI, no daemon, a database in ``workdir``) until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    low, high = relayPorts or freePortRange(64)
    command = [
        "turnserver", "-n",
        "--listening-ip", HOST, "--listening-port", str(port),
        "--relay-ip", HOST, "--min-port", str(low), "--max-port", str(high),
        "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
        "--realm", realm,
        "--userdb", str(workdir / "turndb"),
        "--pidfile", str(workdir / "turnserver.pid"),
        "--log-file", str(workdir / "turnserver.log"), "--simple-log",
    ]  # fmt: skip
    if users:
        command.append("--lt-cred-mech")
        for name, password in users.items():
            command += ["--user", f"{name}:{password}"]
    else:
        command.append("--no-auth")
    command += list(extra)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
    )
    try:
        deadline = time.monotonic() + startTimeout
        while not bindingAnswers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coturn did not start on port {port}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
