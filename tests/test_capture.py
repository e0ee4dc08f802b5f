"""``reloadctl lab --capture`` (issue 9), the way a user runs it: a detached
lab of five real peers over TLS (and over DTLS) is captured with dumpcap
while values are stored and fetched through ``reloadctl``; after
``reloadctl lab stop`` the capture alone -- secrets embedded, read with the
options the stop prints -- shows every RELOAD request with its answer and
no malformed packet.  Without ``--capture`` no key log is written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reload.capture import LabCapture, captureFilter, findTools, portRanges
from reload.config import KindConfig, defaultConfiguration, writeConfiguration
from reload.lab import Lab
from reload.wire.message import MessageCode

from .conftest import commandPath, requireTool, sourceEnv
from .wire.capture import tsharkFields

PEERS = 5
#: A Kind each peer may write at the hash of its own Node-ID (NODE-MATCH),
#: so that the lab's peers can store without a user name.
NOTES = 0xF0000002
KEYLOG_LABELS = (b"CLIENT_HANDSHAKE_TRAFFIC_SECRET", b"CLIENT_TRAFFIC_SECRET_0", b"CLIENT_RANDOM")


def _reloadctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [commandPath("reloadctl"), *args],
        capture_output=True, text=True, env=_env(), timeout=timeout,
    )  # fmt: skip


def _env() -> dict[str, str]:
    env = sourceEnv()
    env.pop("SSLKEYLOGFILE", None)
    return env


def _json(*args: str) -> Any:
    result = _reloadctl(*args, "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _sha1(data: bytes) -> str:
    """A Resource-ID as hex: CHORD-RELOAD's SHA-1, cut to 128 bits (10.2)."""
    return hashlib.sha1(data).hexdigest()[:32]


def _responsible(ring: list[str], resourceId: str) -> str:
    return next((n for n in ring if n >= resourceId), ring[0])


def _environ(pid: int | None) -> dict[str, str]:
    assert pid is not None
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {os.fsdecode(k): os.fsdecode(v) for k, v in pairs}


def _useTheLab(lab: Lab) -> None:
    """Store and fetch through peers other than the responsible one, and
    ping a name another peer is responsible for: traffic on the links."""
    nodeIds = {p.index: lab.status(p)["nodeId"] for p in lab.peers}
    ring = sorted(nodeIds.values())
    # NODE-MATCH: a peer writes at the hash of its own Node-ID; take peers
    # for whom another peer holds that Resource-ID.
    writers = [
        p for p in lab.peers
        if _responsible(ring, _sha1(bytes.fromhex(nodeIds[p.index]))) != nodeIds[p.index]
    ][:2]  # fmt: skip
    assert writers, "every peer holds its own Resource-ID: a one-in-thousands ring"
    for writer in writers:
        nodeId = nodeIds[writer.index]
        resourceId = _sha1(bytes.fromhex(nodeId))
        stored = _json(
            "store", "--admin", writer.admin, "--kind", hex(NOTES), "--node", nodeId,
            "--value", f"note of peer {writer.index}", "--index", "0",
        )  # fmt: skip
        assert stored["resource"] == resourceId
        holder = _responsible(ring, resourceId)
        reader = next(p for p in lab.peers if nodeIds[p.index] not in (holder, nodeId))
        fetched = _json("fetch", "--admin", reader.admin, "--kind", hex(NOTES), "--node", nodeId)
        [kind] = fetched["kinds"]
        assert [v["value"] for v in kind["values"]] == [f"note of peer {writer.index}"]
    first = lab.peers[0]
    name = next(
        f"carol-{n}@example.org"
        for n in range(100)
        if _responsible(ring, _sha1(f"carol-{n}@example.org".encode())) != nodeIds[first.index]
    )
    _json("ping", "--admin", first.admin, "--name", name)


def _capturedLab(tmp_path: Path, linkProtocol: str) -> tuple[Path, list[str]]:
    """Run the lab with --capture, use it, stop it; the capture and the
    tshark options ``reloadctl lab stop`` printed."""
    requireTool("dumpcap", "wireshark-common")
    requireTool("editcap", "wireshark-common")
    requireTool("tshark", "tshark")
    directory = tmp_path / "lab"
    directory.mkdir()
    base = defaultConfiguration("capture-lab.reload.local")
    notes = KindConfig(
        kindId=NOTES, name=None, maxCount=4, maxSize=64, maxNodeMultiple=None,
        dataModel="ARRAY", accessControl="NODE-MATCH",
    )  # fmt: skip
    config = dataclasses.replace(base, kinds=(*base.kinds, notes))
    (directory / "overlay.xml").write_bytes(writeConfiguration(config))
    capture = tmp_path / "lab.pcapng"
    started = _reloadctl(
        "lab", "--peers", str(PEERS), "--dir", str(directory), "--detach",
        "--base-port", "0", "--admin-base-port", "0",
        "--link-protocol", linkProtocol, "--capture", str(capture),
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        lab = Lab.load(directory)
        keyLog = str(directory / "keys.log")
        assert all(_environ(p.pid).get("SSLKEYLOGFILE") == keyLog for p in lab.peers)
        _useTheLab(lab)
    finally:
        stopped = _reloadctl("lab", "stop", "--dir", str(directory))
    assert stopped.returncode == 0, stopped.stderr
    assert not (directory / "capture-raw.pcapng").exists()
    [line] = [line for line in stopped.stdout.splitlines() if line.strip().startswith("tshark ")]
    command = shlex.split(line)
    assert command[:3] == ["tshark", "-r", str(capture)]
    assert command[-2:] == ["-Y", "reload"]
    assert any(line.strip().startswith("wireshark -r ") for line in stopped.stdout.splitlines())
    return capture, command[3:-2]


def _decoded(capture: Path, options: list[str]) -> tuple[Counter[str], dict[str, str], set[str]]:
    """Messages per method and direction, each request transaction id with
    its method, and the transaction ids answered (by an answer or Error)."""
    names = {code.value: code.name for code in MessageCode}
    fields = ["frame.number", "reload.forwarding.trans_id", "reload.message.code"]
    counts = Counter[str]()
    requests: dict[str, str] = {}
    answered: set[str] = set()
    for row in tsharkFields(capture, fields, "reload", extra=options):
        codes = row["reload.message.code"]
        if not codes:
            counts["fragment"] += 1  # a RELOAD fragment (6.7), reassembled later
            continue
        transactions = row["reload.forwarding.trans_id"]
        assert len(transactions) == len(codes), row
        for transaction, code in zip(transactions, codes, strict=True):
            name = names[int(code)]
            counts[name] += 1
            if name.endswith("_REQ"):
                requests.setdefault(transaction, name)
            else:
                answered.add(transaction)
    return counts, requests, answered


def _checkCapture(capture: Path, options: list[str], transport: str) -> Counter[str]:
    counts, requests, answered = _decoded(capture, options)
    for method in ("JOIN", "UPDATE", "STORE", "FETCH", "PING"):
        assert counts[f"{method}_REQ"] >= 1 and counts[f"{method}_ANS"] >= 1, (method, counts)
    unanswered = {t: m for t, m in requests.items() if t not in answered}
    assert unanswered == {}, counts
    malformed = tsharkFields(capture, ["frame.number"], "_ws.malformed", extra=options)
    assert malformed == []
    # The messages did travel over the link protocol asked for.
    over = tsharkFields(capture, ["frame.number"], f"reload && {transport}", extra=options)
    assert over
    return counts


def test_a_captured_tls_lab_decodes_as_reload_alone(tmp_path: Path) -> None:
    capture, options = _capturedLab(tmp_path, "tls")
    _checkCapture(capture, options, "tls")


def test_a_captured_dtls_lab_decodes_as_reload_alone(tmp_path: Path) -> None:
    capture, options = _capturedLab(tmp_path, "dtls")
    _checkCapture(capture, options, "dtls")


def test_no_key_log_without_capture(tmp_path: Path) -> None:
    """SSLKEYLOGFILE unset: the lab's peers get none, nothing writes one."""
    directory = tmp_path / "lab"
    started = _reloadctl(
        "lab", "--peers", "3", "--dir", str(directory), "--detach",
        "--base-port", "0", "--admin-base-port", "0",
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        lab = Lab.load(directory)
        assert lab.peers
        for peer in lab.peers:
            assert "SSLKEYLOGFILE" not in _environ(peer.pid)
    finally:
        stopped = _reloadctl("lab", "stop", "--dir", str(directory))
    assert stopped.returncode == 0, stopped.stderr
    assert "tshark" not in stopped.stdout
    assert not (directory / "keys.log").exists()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(label in data for label in KEYLOG_LABELS), path


def test_missing_capture_tools_name_the_package_before_any_peer(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = _env()
    env["PATH"] = str(empty)
    directory = tmp_path / "lab"
    result = subprocess.run(
        [commandPath("reloadctl"), "lab", "--dir", str(directory), "--capture",
         str(tmp_path / "x.pcapng"), "--base-port", "0", "--admin-base-port", "0"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "wireshark-common" in result.stderr and "dumpcap" in result.stderr
    assert not list(directory.glob("peer-*"))


def test_find_tools_names_editcap_package() -> None:
    tools = {"dumpcap": "/usr/bin/dumpcap"}
    with pytest.raises(Exception, match=r"editcap \(Debian package wireshark-common\)"):
        findTools(tools.get)
    found = findTools({"tshark": "/t", "editcap": "/e"}.get)
    assert (found.capturer, found.editcap) == ("/t", "/e")


def test_filter_and_decode_options_cover_the_lab_ports(tmp_path: Path) -> None:
    assert portRanges([16086, 16084, 16085, 16090]) == ["16084-16086", "16090"]
    assert captureFilter([2, 1]) == "(tcp or udp) and (port 1 or port 2)"
    capture = LabCapture(tmp_path, tmp_path / "x.pcapng", [16084, 16085], findTools(lambda n: n))
    assert capture.command("tshark") == [
        "tshark", "-r", str(tmp_path / "x.pcapng"),
        "-X", f"lua_script:{tmp_path / 'reload-tls.lua'}", "-X", "lua_script1:16084-16085",
        "-d", "tcp.port==16084-16085,tls", "-d", "udp.port==16084-16085,dtls",
        "-Y", "reload",
    ]  # fmt: skip
