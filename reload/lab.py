"""A local overlay of real ``twistd reload`` processes on loopback.

``reloadctl lab`` and the multi-process tests use it: it makes a fresh
self-signed overlay in a directory, starts N peers (the first starts the
overlay, the others join through it), watches their admin status until the
ring has converged, and stops them.  Everything listens on 127.0.0.1 only.

The lab directory holds ``overlay.xml``, one ``peer-N`` data directory per
peer (with its ``twistd.log``) and ``lab.json``, which names the processes
so that ``reloadctl lab stop`` can stop a lab started elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reload.admin.token import TOKEN_FILE, TokenFileError, authorizationHeader, readToken
from reload.config import KindConfig, defaultConfiguration, writeConfiguration

__all__ = ["MAX_LAB_PEERS", "Lab", "LabPeer", "freeListenPort", "pidRunning", "ringErrors"]

HOST = "127.0.0.1"
STATE_FILE = "lab.json"
CONFIG_FILE = "overlay.xml"
#: Seconds a starting peer may take to join before the lab gives up.
JOIN_TIMEOUT = 60.0
#: The most peers one lab runs (each is a process with its own ports).
MAX_LAB_PEERS = 200


def _joined(status: dict[str, Any]) -> bool:
    return status.get("state") == "joined"


@dataclass
class LabPeer:
    """One peer process of a lab."""

    index: int
    port: int
    adminPort: int
    dataDir: str
    pid: int | None = None

    @property
    def admin(self) -> str:
        return f"http://{HOST}:{self.adminPort}"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def tokenFile(self) -> Path:
        """The admin token the peer made in its data directory."""
        return Path(self.dataDir) / TOKEN_FILE

    def adminHeaders(self) -> dict[str, str]:
        """The header that authorizes admin requests (none before the
        peer made its token)."""
        try:
            return authorizationHeader(readToken(str(self.tokenFile)))
        except TokenFileError:
            return {}

    def adminRequest(self, path: str, data: bytes | None = None) -> urllib.request.Request:
        """A request for the admin API's ``path`` (a POST when ``data`` is
        given), with the token."""
        return urllib.request.Request(self.admin + path, data=data, headers=self.adminHeaders())


def ringErrors(statuses: Sequence[dict[str, Any]], depth: int = 2) -> list[str]:
    """What is wrong with the ring the peers report: empty when every
    peer's first successor and predecessor are its neighbours in Node-ID
    order, and so are the next ones it lists, up to ``depth`` each way --
    the peers a value is replicated on (RFC 6940 section 10.4) must agree
    on who they are, whatever the topology."""
    joined = [s for s in statuses if s.get("state") == "joined" and "nodeId" in s]
    errors = [
        f"peer {s.get('nodeId', '?')} is {s.get('state')}" for s in statuses if s not in joined
    ]
    ring = sorted(s["nodeId"] for s in joined)
    if len(ring) < 2:
        return errors
    position = {nodeId: i for i, nodeId in enumerate(ring)}
    reach = min(depth, len(ring) - 1)
    for status in joined:
        i = position[status["nodeId"]]
        neighbours = status.get("neighbours", {})
        for role, step in (("successor", 1), ("predecessor", -1)):
            listed = neighbours.get(f"{role}s", [])
            if not listed:
                errors.append(f"{status['nodeId'][:8]}: no {role}")
                continue
            for k, reported in enumerate(listed[:reach]):
                expected = ring[(i + step * (k + 1)) % len(ring)]
                if reported != expected:
                    errors.append(
                        f"{status['nodeId'][:8]}: {role} {k + 1} {reported[:8]} != {expected[:8]}"
                    )
                    break
    return errors


def pidRunning(pid: int) -> bool:
    """Whether process ``pid`` runs.  A zombie does not: the peers of a
    detached lab are reaped by init, which may take a second after they
    exit, and ``reloadctl lab stop`` should not wait for that."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust the signal
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _ephemeralStart() -> int:
    """The first port of the kernel's ephemeral range (outbound sockets)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def freeListenPort(low: int = 10000) -> int:
    """A port on 127.0.0.1 that is free now and will stay free until a
    listener takes it: one below the ephemeral range.  Asking the kernel for
    port 0 gives an ephemeral one, which the peers' own outbound connections
    may take before the listener that was meant to have it starts (about
    one 50-peer lab start in two failed with "Address already in use")."""
    high = max(low + 1, _ephemeralStart())
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port between {low} and {high}")


def _port(base: int | None, index: int) -> int:
    """Port ``base + index - 1``, or with no base a free one
    (:func:`freeListenPort`; for tests, which must not collide with
    anything)."""
    if base is not None:
        return base + index - 1
    return freeListenPort()


class Lab:
    """N ``twistd reload`` processes in ``directory``; ports count up from
    ``basePort`` (links) and ``adminBasePort`` (admin API), or are picked
    free when those are None."""

    def __init__(
        self,
        directory: Path,
        basePort: int | None = 16084,
        adminBasePort: int | None = 18084,
        extraArgs: Sequence[str] = (),
        environment: dict[str, str] | None = None,
        kinds: Sequence[KindConfig] = (),
    ) -> None:
        # Absolute: each peer runs in its own data directory and is given
        # paths in the lab directory.
        self.directory = directory.absolute()
        self.basePort = basePort
        self.adminBasePort = adminBasePort
        self.extraArgs = list(extraArgs)
        self.environment = environment
        #: Kinds a new overlay of this lab lists besides the default's.
        self.kinds = tuple(kinds)
        self.peers: list[LabPeer] = []
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._plannedPorts: dict[int, int] = {}
        #: ``time.monotonic()`` when the newest peer process was launched.
        self.lastStarted: float | None = None

    # -- state on disk ---------------------------------------------------------

    @property
    def configPath(self) -> Path:
        return self.directory / CONFIG_FILE

    def save(self) -> None:
        state = {"peers": [asdict(p) for p in self.peers]}
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Lab:
        """The lab a ``reloadctl lab`` started in ``directory``."""
        state = json.loads((directory / STATE_FILE).read_text())
        lab = cls(directory)
        lab.peers = [LabPeer(**p) for p in state["peers"]]
        return lab

    def create(self) -> None:
        """A fresh overlay: its own instance name, self-signed certificates,
        and the lab's ``kinds`` (those of the usages its peers run) besides
        the embedded default's."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.configPath.exists():
            name = f"lab-{secrets.token_hex(4)}.reload.local"
            base = defaultConfiguration(name)
            added = tuple(k for k in self.kinds if base.kind(k.kindId or 0) is None)
            configuration = dataclasses.replace(base, kinds=(*base.kinds, *added))
            self.configPath.write_bytes(writeConfiguration(configuration))

    # -- processes -------------------------------------------------------------

    def _twistd(self) -> list[str]:
        script = Path(sys.executable).parent / "twistd"
        if script.exists():
            return [str(script)]
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]

    def _nextIndex(self) -> int:
        # A new directory (and so a new Node-ID) even after peers stopped.
        used = [int(d.name[5:]) for d in self.directory.glob("peer-*") if d.name[5:].isdigit()]
        return max(used, default=0) + 1

    def linkPorts(self, count: int) -> list[int]:
        """The link ports the next ``count`` peers will listen on, fixed
        now: a capture filter has to name them before the peers start."""
        first = self._nextIndex()
        for index in range(first, first + count):
            if index not in self._plannedPorts:
                self._plannedPorts[index] = _port(self.basePort, index)
        return [self._plannedPorts[index] for index in range(first, first + count)]

    def startPeer(self, bootstrap: LabPeer | None = None) -> LabPeer:
        """Start one more peer, joining through ``bootstrap`` (or the first)."""
        index = self._nextIndex()
        dataDir = self.directory / f"peer-{index}"
        dataDir.mkdir(parents=True)
        port = self._plannedPorts.pop(index, None)
        peer = LabPeer(
            index,
            _port(self.basePort, index) if port is None else port,
            _port(self.adminBasePort, index),
            str(dataDir),
        )
        through = bootstrap if bootstrap is not None else (self.peers[0] if self.peers else None)
        self._launch(peer, through, self.extraArgs)
        return peer

    def restartPeer(
        self,
        peer: LabPeer,
        bootstrap: LabPeer | None = None,
        extraArgs: Sequence[str] = (),
    ) -> LabPeer:
        """Start ``peer`` again on its data directory and ports: the same
        Node-ID and stored data, a new incarnation -- what an operator's
        restart does.  A running peer is stopped first (it leaves the
        overlay); a killed one just comes back (a restart after a crash).
        It joins through ``bootstrap`` (default: the first other peer),
        with ``extraArgs`` after the lab's: one peer of a lab can so run
        with options the others do not (a ReDiR provider placed where a test
        needs it).  Returns the restarted peer."""
        if self.alive(peer):
            self.stopPeer(peer)
        elif peer in self.peers:
            self.peers.remove(peer)
        again = dataclasses.replace(peer, pid=None)
        through = bootstrap if bootstrap is not None else (self.peers[0] if self.peers else None)
        self._launch(again, through, [*self.extraArgs, *extraArgs])
        return again

    def _launch(self, peer: LabPeer, through: LabPeer | None, extraArgs: Sequence[str]) -> None:
        dataDir = Path(peer.dataDir)
        args = [
            *self._twistd(), "-n", "--pidfile=", f"--logfile={dataDir / 'twistd.log'}", "reload",
            "--config", str(self.configPath), "--data-dir", str(dataDir),
            "--listen", f"tcp:{peer.port}:interface={HOST}",
            "--admin", f"tcp:{peer.adminPort}:interface={HOST}",
            *extraArgs,
        ]  # fmt: skip
        if through is not None:
            args += ["--bootstrap", through.address]
        self._spawn(peer, args, dataDir)

    def _spawn(self, peer: LabPeer, command: list[str], dataDir: Path) -> None:
        """Run ``command`` as ``peer`` (in its own session, output to its
        ``stderr.log``) and record it in the lab."""
        process = subprocess.Popen(
            command,
            cwd=dataDir,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(dataDir / "stderr.log", "ab"),  # noqa: SIM115 - the child owns it
            start_new_session=True,
        )
        peer.pid = process.pid
        self.lastStarted = time.monotonic()
        self._processes[peer.index] = process
        self.peers.append(peer)
        self.save()

    def start(
        self,
        count: int,
        progress: Callable[[str], None] | None = None,
        concurrency: int | None = None,
    ) -> None:
        """Create the overlay and start ``count`` peers: the first alone,
        then the others with at most ``concurrency`` (default: one per CPU
        core) started and not yet joined at any time.

        Why paced: a peer process spends about half a CPU-second on imports
        and its key before it can join, and every newcomer's Join goes
        through the bootstrap peer.  Launched all at once on a small machine
        the start-ups only time-slice, so every peer joins late and the
        bootstrap peer gets all the Joins together; launched as cores free
        up, each joins at once and the ring stays converged as it grows.
        """
        if not 1 <= count <= MAX_LAB_PEERS:
            raise ValueError(f"a lab runs 1 to {MAX_LAB_PEERS} peers, not {count}")
        self.create()
        first = self.startPeer()
        self.waitFor(_joined, [first], JOIN_TIMEOUT, progress)
        width = max(1, concurrency or os.cpu_count() or 1)
        starting: dict[int, tuple[LabPeer, float]] = {}
        remaining = count - 1
        while remaining or starting:
            while remaining and len(starting) < width:
                peer = self.startPeer()
                starting[peer.index] = (peer, time.monotonic())
                remaining -= 1
            time.sleep(0.05)
            for index, (peer, since) in list(starting.items()):
                if _joined(self.status(peer)):
                    del starting[index]
                elif not self.alive(peer):
                    raise RuntimeError(f"peer {index} exited; see {peer.dataDir}/twistd.log")
                elif time.monotonic() - since > JOIN_TIMEOUT:
                    raise TimeoutError(f"peer {index} not joined after {JOIN_TIMEOUT} s")
            if progress is not None:
                progress(f"{len(self.peers) - len(starting)}/{count} peers joined")

    def status(self, peer: LabPeer, timeout: float = 2.0) -> dict[str, Any]:
        """A peer's admin status, or ``{"state": "unreachable"}``."""
        try:
            with urllib.request.urlopen(peer.adminRequest("/status"), timeout=timeout) as r:
                status: dict[str, Any] = json.load(r)
                return status
        except (OSError, ValueError, urllib.error.URLError):
            return {"state": "unreachable"}

    def statuses(self) -> list[dict[str, Any]]:
        return [self.status(p) for p in self.peers if self.alive(p)]

    def alive(self, peer: LabPeer) -> bool:
        process = self._processes.get(peer.index)
        if process is not None:
            return process.poll() is None
        return peer.pid is not None and pidRunning(peer.pid)

    def waitFor(
        self,
        condition: Callable[[dict[str, Any]], bool],
        peers: Sequence[LabPeer],
        timeout: float,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            statuses = [self.status(p) for p in peers]
            done = sum(1 for s in statuses if condition(s))
            if progress is not None:
                progress(f"{done}/{len(peers)} peers ready")
            if done == len(peers):
                return
            dead = [p for p in peers if not self.alive(p)]
            if dead:
                raise RuntimeError(f"peer {dead[0].index} exited; see {dead[0].dataDir}/twistd.log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {done} of {len(peers)} peers ready after {timeout} s")
            time.sleep(0.25)

    def waitConverged(self, timeout: float, progress: Callable[[str], None] | None = None) -> float:
        """Wait until every live peer has joined and the ring is right;
        return the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            statuses = self.statuses()
            errors = ringErrors(statuses)
            joined = sum(1 for s in statuses if s.get("state") == "joined")
            if progress is not None:
                progress(f"{joined}/{len(statuses)} joined, {len(errors)} ring errors")
            if not errors and joined == len(statuses):
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"not converged after {timeout} s: {errors[:5]}")
            time.sleep(0.25)

    def sendSignal(self, peer: LabPeer, signum: int) -> None:
        if peer.pid is not None and self.alive(peer):
            os.kill(peer.pid, signum)

    def stopPeer(self, peer: LabPeer, signum: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Stop one peer (SIGTERM leaves gracefully; SIGKILL is a failure)."""
        self.sendSignal(peer, signum)
        deadline = time.monotonic() + timeout
        while self.alive(peer) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.alive(peer):
            self.sendSignal(peer, signal.SIGKILL)
        process = self._processes.pop(peer.index, None)
        if process is not None:
            process.wait()
        self.peers.remove(peer)
        self.save()

    def stopOneByOne(self, settle: float = 10.0) -> None:
        """Stop the peers one at a time, each once the others' ring has
        settled again (or after ``settle`` seconds): every Leave, and every
        Update it causes, then goes to a peer still running that answers it,
        so that a capture of the lab ends with no request left unanswered."""
        for peer in list(self.peers):
            self.stopPeer(peer)
            if self.peers:
                with contextlib.suppress(TimeoutError):
                    self.waitConverged(settle)

    def stop(self) -> None:
        """Stop every peer: SIGTERM to all, then wait, then SIGKILL."""
        for peer in self.peers:
            self.sendSignal(peer, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for peer in list(self.peers):
            while self.alive(peer) and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.alive(peer):
                self.sendSignal(peer, signal.SIGKILL)
            process = self._processes.pop(peer.index, None)
            if process is not None:
                process.wait()
        self.peers = []
        self.save()
