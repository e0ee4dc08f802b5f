"""What the multi-process storage tests share: an overlay configuration with
a Kind any peer may write at many Resource-IDs (NODE-MULTIPLE, section
7.3.4), and the admin API calls a client makes through one peer."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reload.config import KindConfig, defaultConfiguration, writeConfiguration
from reload.lab import Lab, LabPeer
from reload.storage.policies import nodeMultipleResourceName
from topologies.chordreload.ring import hashResource

from .conftest import commandPath, freePort, sourceEnv

#: SINGLE values, NODE-MULTIPLE: a peer writes H(its Node-ID || i).
SPREAD = 0xF0000010
#: The iteration i is one byte (reload.storage.policies.iterationSuffix).
MAX_MULTIPLE = 255


#: ARRAY values, NODE-MATCH (the Resource-ID is H(Node-ID)), up to 1,000.
BIG_ARRAY = 0xF0000011


def writeOverlay(directory: Path, name: str, topology: str = "CHORD-RELOAD") -> None:
    """An overlay configuration with the SPREAD and BIG_ARRAY Kinds and
    the ``topology`` plugin, where a Lab finds it."""
    base = dataclasses.replace(defaultConfiguration(name), topologyPlugin=topology)
    spread = KindConfig(
        kindId=SPREAD, name=None, maxCount=1, maxSize=512, maxNodeMultiple=MAX_MULTIPLE,
        dataModel="SINGLE", accessControl="NODE-MULTIPLE",
    )  # fmt: skip
    array = KindConfig(
        kindId=BIG_ARRAY, maxCount=1000, maxSize=64, dataModel="ARRAY", accessControl="NODE-MATCH"
    )
    config = dataclasses.replace(base, kinds=(*base.kinds, spread, array))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "overlay.xml").write_bytes(writeConfiguration(config))


def spreadResource(nodeIdHex: str, i: int) -> str:
    """The Resource-ID of the ``i``-th SPREAD value of a peer (7.3.4)."""
    name = nodeMultipleResourceName(bytes.fromhex(nodeIdHex), i)
    return hashResource(name, 16).hex()


class AdminCallFailed(Exception):
    """An admin API call answered with an error status, or not at all."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"{status}: {error}")
        self.status = status
        self.error = error


def call(peer: LabPeer, operation: str, /, timeout: float = 30, **query: Any) -> dict[str, Any]:
    """POST an admin operation (``store``, ``fetch``, ``held``...)."""
    request = peer.adminRequest(f"/{operation}?{urllib.parse.urlencode(query)}", b"")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            result: dict[str, Any] = json.load(response)
            return result
    except urllib.error.HTTPError as exc:
        try:
            error = json.load(exc).get("error", str(exc.reason))
        except ValueError:
            error = str(exc.reason)
        raise AdminCallFailed(exc.code, error) from None
    except OSError as exc:
        raise AdminCallFailed(0, str(exc)) from None


def storeSpread(peer: LabPeer, nodeIdHex: str, i: int, value: str) -> dict[str, Any]:
    return call(peer, "store", kind=hex(SPREAD), resource=spreadResource(nodeIdHex, i), value=value)


def fetchSpread(peer: LabPeer, nodeIdHex: str, i: int, timeout: float = 30) -> str | None:
    """The SPREAD value ``i`` of ``nodeIdHex`` as fetched (and verified)
    through ``peer``; None when none exists."""
    result = call(
        peer, "fetch", timeout=timeout, kind=hex(SPREAD), resource=spreadResource(nodeIdHex, i)
    )
    for kind in result["kinds"]:
        for value in kind["values"]:
            if value.get("exists", True) and "value" in value:
                text: str = value["value"]
                return text
    return None


def holders(lab: Lab, resourceHex: str, peers: list[LabPeer] | None = None) -> list[LabPeer]:
    """The live peers that hold data at ``resourceHex`` themselves."""
    found = []
    for peer in lab.peers if peers is None else peers:
        if not lab.alive(peer):
            continue
        try:
            held = call(peer, "held", timeout=5, resource=resourceHex)
        except AdminCallFailed:
            continue
        if any(k["values"] for k in held["kinds"]):
            found.append(peer)
    return found


def eventually(check: Any, timeout: float, interval: float = 0.5) -> Any:
    """Call ``check()`` until it returns something true; that, or the last
    falsy result once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def untilAsserted(check: Any, timeout: float = 30.0, interval: float = 0.5) -> Any:
    """Call ``check()`` until it stops raising AssertionError; its result,
    or the last AssertionError once ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


class PeerProcess:
    """One ``twistd reload`` process in the overlay of ``directory``'s
    ``overlay.xml``, on a data directory kept across runs, with
    ``extraArgs`` (``--bootstrap``, ``--client``...)."""

    def __init__(self, directory: Path, name: str = "peer", extraArgs: Sequence[str] = ()) -> None:
        self.directory = directory
        self.dataDir = directory / name
        self.extraArgs = list(extraArgs)
        self.lab = LabPeer(1, freePort(), freePort(), str(self.dataDir))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dataDir.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [
                commandPath("twistd"), "-n", "--pidfile=",
                f"--logfile={self.dataDir / 'twistd.log'}", "reload",
                "--config", str(self.directory / "overlay.xml"),
                "--data-dir", str(self.dataDir),
                "--listen", f"tcp:{self.lab.port}:interface=127.0.0.1",
                "--admin", f"tcp:{self.lab.adminPort}:interface=127.0.0.1",
                *self.extraArgs,
            ],
            env=sourceEnv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        joined = eventually(lambda: self.status().get("state") == "joined", 30)
        assert joined, (self.dataDir / "twistd.log").read_text()[-2000:]

    def status(self) -> dict[str, object]:
        try:
            with urllib.request.urlopen(f"{self.lab.admin}/status", timeout=2) as r:
                status: dict[str, object] = json.load(r)
                return status
        except OSError:
            return {}

    def kill(self, signum: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(signum)
        self.process.wait(30)
