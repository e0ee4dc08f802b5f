"""Abuse limits (issue 17), against a real ``twistd reload`` on 127.0.0.1:
200 silent TCP connections, 1,000 self-signed identities connecting and
10,000 garbage messages on one link.  Meanwhile a legitimate peer still
joins, stores and fetches, the attacked peer's memory stays bounded and its
log grows by a few kB."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from reload.config import defaultConfiguration
from reload.link.errors import LinkBusy, LinkClosed
from reload.link.listener import LinkListener
from reload.link.tls import TLSLink
from reload.security.certificates import makeSelfSignedIdentity
from reload.security.trust import TrustPolicy
from tests.link.conftest import Recorder

from .conftest import commandPath, freePort, sourceEnv
from .test_twistd import _waitForStatus

IDENTITIES = 1000
SILENT = 200
GARBAGE = 10_000


def _peer(tmp: Path, name: str, port: int, admin: int, *more: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            commandPath("twistd"), "-n", "--pidfile=", f"--logfile={name}.log", "reload",
            "--data-dir", name, "--listen", f"tcp:{port}:interface=127.0.0.1",
            "--admin", f"tcp:{admin}:interface=127.0.0.1", *more,
        ],
        cwd=tmp, env=sourceEnv(), text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _ctl(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [commandPath("reloadctl"), *args, "--json"],
        capture_output=True, text=True, env=sourceEnv(), timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _joined(admin: int, process: subprocess.Popen[str], limit: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        status = _waitForStatus(admin, process, time.monotonic() + limit)
        if status.get("state") == "joined":
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not joined in {limit} s")


@pytest_twisted.ensureDeferred
async def test_a_legitimate_peer_joins_stores_and_fetches_under_attack(tmp_path: Path) -> None:
    port, admin = freePort(), freePort()
    # Both run the REDIR usage (its Kind is in the default overlay, its
    # NODE-ID-MATCH policy comes with the usage): what the joiner stores.
    target = _peer(tmp_path, "target", port, admin, "--usage", "REDIR")
    processes = [target]
    silent: list[socket.socket] = []
    attackers: list[LinkListener] = []
    try:
        await deferToThread(_joined, admin, target, 60)
        await deferLater(reactor, 1.0, lambda: None)
        log = tmp_path / "target.log"
        logBefore, rssBefore = log.stat().st_size, _rss(target.pid)

        # 200 TCP connections that never say a word.
        for _ in range(SILENT):
            silent.append(socket.create_connection(("127.0.0.1", port)))
        # 1,000 fresh self-signed identities, 50 connecting at a time.
        trust = TrustPolicy.fromConfiguration(defaultConfiguration())
        semaphore = DeferredSemaphore(50)
        started = time.monotonic()

        async def connectOne() -> TLSLink | None:
            listener = LinkListener(reactor, makeSelfSignedIdentity("reload.local", None), trust,
                                    Recorder())  # fmt: skip
            attackers.append(listener)
            try:
                return await listener.connectBootstrap("127.0.0.1", port)
            except Exception:
                return None

        links = await gatherResults(
            [semaphore.run(lambda: Deferred.fromCoroutine(connectOne())) for _ in range(IDENTITIES)]
        )  # fmt: skip
        identitySeconds = time.monotonic() - started
        admitted = sum(1 for link in links if link is not None)
        # 10,000 garbage messages (valid framing, not RELOAD) on one link.
        garbageLink = next(link for link in reversed(links) if link is not None and link.isOpen)
        sent = 0
        while sent < GARBAGE and garbageLink.isOpen:
            try:
                garbageLink.send(b"\x00garbage" * 8)
                sent += 1
            except LinkClosed:
                break
            except LinkBusy:
                try:
                    await garbageLink.whenSendable()
                except LinkClosed:
                    break
            if sent % 200 == 0:
                await deferLater(reactor, 0, lambda: None)
        await deferLater(reactor, 2.0, lambda: None)
        assert not garbageLink.isOpen, "the garbage link was closed"

        # The legitimate peer, while the silent connections are still open.
        joinerAdmin = freePort()
        joiner = _peer(tmp_path, "joiner", freePort(), joinerAdmin,
                       "--bootstrap", f"127.0.0.1:{port}", "--usage", "REDIR")  # fmt: skip
        processes.append(joiner)
        joinSeconds = await deferToThread(_joined, joinerAdmin, joiner, 30)
        joinerAt = ["--admin", f"127.0.0.1:{joinerAdmin}"]
        nodeId = _ctl("status", *joinerAt)["nodeId"]
        # A store: the joiner registers as a ReDiR provider (RFC 7374
        # section 4.3: Stores of its record in the tree, checked by the
        # storing peers' NODE-ID-MATCH).
        t0 = time.monotonic()
        registered = await deferToThread(_ctl, "service", "register", "abuse-test", *joinerAt)
        storeSeconds = time.monotonic() - t0
        assert registered["stored"], registered
        # A fetch: the lookup Fetches the tree and finds the joiner.
        t0 = time.monotonic()
        found = await deferToThread(
            _ctl, "service", "lookup", "abuse-test", "--key", "00" * 16, *joinerAt
        )
        fetchSeconds = time.monotonic() - t0
        assert found["provider"] == nodeId, found
        # And the certificate the joiner stored when it joined (section
        # 11.3.1) is fetched from the overlay.
        certificate = await deferToThread(_ctl, "fetch", *joinerAt, "--kind", "3", "--node", nodeId)
        assert certificate["kinds"][0]["values"], certificate

        logGrowth = log.stat().st_size - logBefore
        rssGrowth = _rss(target.pid) - rssBefore
        print(
            f"\n{IDENTITIES} identities in {identitySeconds:.1f} s ({admitted} got a link), "
            f"{sent} garbage messages sent before the link closed; joiner joined in "
            f"{joinSeconds:.2f} s (process start included), store {storeSeconds:.2f} s, "
            f"fetch {fetchSeconds:.2f} s; target log +{logGrowth} bytes, RSS "
            f"{rssBefore >> 20} -> {_rss(target.pid) >> 20} MB"
        )
        assert joinSeconds < 10 and storeSeconds < 5 and fetchSeconds < 5
        assert logGrowth < 8 * 1024, log.read_text()[-4000:]
        assert rssGrowth < 64 << 20
        assert target.poll() is None
    finally:
        for s in silent:
            s.close()
        for listener in attackers:
            listener.stopService()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
