"""The TURN usage (RFC 6940 section 9) between real peers over TLS, as an
operator runs it: ten peers with ``--usage TURN``, three of them
advertising a coturn server each (``TURN:external=HOST:PORT``,
``TURN:advertise=always`` since the lab is on loopback), the others only
finding (``TURN:serve=no``), and a client (section 4.2) that finds a live
server with ``reloadctl turn find``.  The server found relays for a
standard TURN client (coturn's ``turnutils_uclient``, with
``turnutils_peer`` as the far end); a killed server is never handed out
again (the STUN Binding check before every hand-out)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from reload.lab import Lab

from .conftest import commandPath, requireTool, sourceEnv
from .replication_support import PeerProcess, eventually
from .turn_support import HOST, coturn, freeTurnPort

ADVERTISERS = (1, 4, 7)
USER, PASSWORD = "alice", "overlay-found-me"


def reloadctl(admin: str, *args: str, json_: bool = True) -> tuple[int, Any, str]:
    result = subprocess.run(
        [commandPath("reloadctl"), *args, "--admin", admin, *(["--json"] if json_ else [])],
        capture_output=True, text=True, env=sourceEnv(), timeout=90,
    )  # fmt: skip
    if not json_:
        return result.returncode, result.stdout, result.stderr
    data = json.loads(result.stdout) if result.returncode == 0 else None
    return result.returncode, data, result.stderr


class TurnLab:
    def __init__(self, lab: Lab, client: PeerProcess, servers: dict[int, Any]) -> None:
        self.lab = lab
        self.client = client
        #: port -> its coturn process
        self.servers = servers


def relaysWithoutLoss(host: str, port: int) -> None:
    """turnutils_uclient relays 20 packets through the TURN server at
    ``host:port`` to a turnutils_peer on loopback: it exits 0, loses none
    and got back as many as it sent."""
    peerPort = freeTurnPort()
    farEnd = subprocess.Popen(
        ["turnutils_peer", "-L", HOST, "-p", str(peerPort)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        run = subprocess.run(
            ["turnutils_uclient", "-u", USER, "-w", PASSWORD, "-e", HOST, "-r", str(peerPort),
             "-n", "20", "-l", "100", "-p", str(port), host],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        farEnd.terminate()
        farEnd.wait(5)
    assert run.returncode == 0, run.stdout[-2000:]
    lost = re.search(r"Total lost packets (\d+)", run.stdout)
    assert lost is not None and lost.group(1) == "0", run.stdout[-2000:]
    sent = re.search(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n", run.stdout)
    assert sent is not None and sent.group(1) == sent.group(2) != "0", run.stdout[-2000:]


@pytest.fixture(scope="module")
def turnLab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnLab]:
    requireTool("turnserver", "coturn")
    directory = tmp_path_factory.mktemp("lab-turn")
    with ExitStack() as stack:
        servers: dict[int, Any] = {}
        for n in ADVERTISERS:
            port = freeTurnPort()
            servers[port] = stack.enter_context(
                coturn(directory / f"coturn{n}", port, users={USER: PASSWORD})
            )
        ports = list(servers)
        lab = Lab(directory, basePort=None, adminBasePort=None, environment=sourceEnv())
        lab.create()
        stack.callback(lab.stop)
        for index in range(10):
            lab.extraArgs = ["--usage", "TURN"]
            if index in ADVERTISERS:
                port = ports[ADVERTISERS.index(index)]
                lab.extraArgs += [
                    "--usage-option", f"TURN:external={HOST}:{port}",
                    "--usage-option", "TURN:advertise=always",
                ]  # fmt: skip
            else:
                lab.extraArgs += ["--usage-option", "TURN:serve=no"]
            lab.startPeer()
            lab.waitConverged(90)
        client = PeerProcess(
            directory,
            "client",
            ["--client", "--bootstrap", lab.peers[0].address,
             "--usage", "TURN", "--usage-option", "TURN:serve=no",
             # A live server that misses the default 2 s on a loaded
             # machine would be ignored as dead for a minute.
             "--usage-option", "TURN:check-timeout=5"],
        )  # fmt: skip
        client.start()
        stack.callback(lambda: client.process and client.kill(signal.SIGTERM))
        yield TurnLab(lab, client, servers)


def test_a_client_finds_a_live_server_with_reloadctl_turn_find(turnLab: TurnLab) -> None:
    admin = turnLab.client.lab.admin

    def find() -> Any:
        code, result, _ = reloadctl(admin, "turn", "find")
        return result if code == 0 else None

    result = eventually(find, 60, interval=2)
    assert result, "no TURN server found"
    [server] = result["servers"]
    assert server["host"] == HOST and server["port"] in turnLab.servers
    assert server["mapped"].startswith(f"{HOST}:")
    assert result["method"] == "find" and result["finds"] >= 1
    print(f"\nfirst live server found in {result['finds']} Find(s), {result['fetches']} Fetch(es)")
    # All three, as a person reads it.  A search probes random
    # Resource-IDs within a budget of Finds, so one search may come back
    # with fewer; a few searches find all three.

    def findThree() -> list[str] | None:
        code, text, _ = reloadctl(admin, "turn", "find", "--count", "3", json_=False)
        lines: list[str] = text.splitlines()
        return lines if code == 0 and len(lines) == 4 else None

    lines = eventually(findThree, 60, interval=2)
    assert lines, "three live servers were never found together"
    assert lines[-1].startswith("3 live TURN server(s): ")
    assert {int(line.split()[0].rsplit(":", 1)[1]) for line in lines[:3]} == set(turnLab.servers)
    assert all("answered a STUN Binding" in line for line in lines[:3])


def test_advertisers_show_their_advertisement_in_reloadctl_status(turnLab: TurnLab) -> None:
    advertiser = turnLab.lab.peers[ADVERTISERS[0]]
    status = turnLab.lab.status(advertiser)
    [usage] = status["usages"]
    assert usage["name"] == "TURN" and usage["state"] == "running"
    assert usage["status"]["advertising"]["advertised"] is True
    assert usage["status"]["advertising"]["stored"] == [1]
    code, text, err = reloadctl(advertiser.admin, "status", json_=False)
    assert code == 0, err
    assert "TURN:" in text and "  advertising.advertised  yes" in text
    other = turnLab.lab.status(turnLab.lab.peers[0])["usages"][0]["status"]
    assert other["advertising"] == {"advertised": False, "why not": "serve=no"}


def test_coturn_relays_for_a_client_that_found_it_through_the_overlay(
    turnLab: TurnLab, tmp_path: Path
) -> None:
    requireTool("turnutils_uclient", "coturn")
    code, result, err = reloadctl(turnLab.client.lab.admin, "turn", "find")
    assert code == 0, err
    [server] = result["servers"]
    relaysWithoutLoss(server["host"], server["port"])


def test_a_peer_running_the_built_in_server_is_found_and_relays(
    turnLab: TurnLab, tmp_path: Path
) -> None:
    """``--usage TURN`` alone: the built-in server (usages/turnserver),
    advertised, found by the client, and relaying for turnutils_uclient;
    its allocations show in ``reloadctl status``.  Stopped (SIGTERM), it
    withdraws its advertisement."""
    requireTool("turnutils_uclient", "coturn")
    users = tmp_path / "turn-users"
    users.write_text(f"{USER}:{PASSWORD}\n")
    lab = turnLab.lab
    lab.extraArgs = ["--usage", "TURN"] + [
        arg for option in (
            "host=127.0.0.1", "udp-port=0", "tcp-port=0", f"users={users}",
            "allow-loopback=yes", "advertise=always", "relay-ports=32100-32199",
        ) for arg in ("--usage-option", f"TURN:{option}")
    ]  # fmt: skip
    peer = lab.startPeer()
    lab.waitConverged(90)
    server = lab.status(peer)["usages"][0]["status"]["server"]
    host, port = server["addresses"]["udp"]
    admin = turnLab.client.lab.admin

    def found() -> Any:
        code, result, _ = reloadctl(admin, "turn", "find", "--count", "4")
        return code == 0 and port in {s["port"] for s in result["servers"]}

    assert eventually(found, 60, interval=2), "the built-in server was never found"
    relaysWithoutLoss(host, port)
    status = lab.status(peer)["usages"][0]["status"]
    assert status["server"]["bytesRelayed"] > 0
    assert status["advertising"]["stored"] == [1]
    lab.stopPeer(peer)

    def gone() -> bool:
        code, result, _ = reloadctl(admin, "turn", "find", "--count", "4")
        return code == 0 and port not in {s["port"] for s in result["servers"]}

    assert eventually(gone, 30, interval=2)


def test_a_killed_server_stops_being_handed_out(turnLab: TurnLab) -> None:
    admin = turnLab.client.lab.admin
    victimPort = list(turnLab.servers)[1]
    victim = turnLab.servers.pop(victimPort)
    victim.send_signal(signal.SIGKILL)
    victim.wait(5)
    # Its advertisement is still stored (no withdrawal, lifetime 600 s):
    # the Binding check keeps it from being handed out at once.
    for _ in range(4):
        code, result, err = reloadctl(admin, "turn", "find", "--count", "3")
        assert code == 0, err
        ports = {s["port"] for s in result["servers"]}
        assert victimPort not in ports and ports <= set(turnLab.servers)
    code, status, err = reloadctl(admin, "turn", "status")
    assert code == 0, err
    assert f"{HOST}:{victimPort}" in status["discovery"]["ignoredDead"]
    assert f"{HOST}:{victimPort}" not in status["discovery"]["cached"]
