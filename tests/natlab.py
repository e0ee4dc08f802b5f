"""The NAT lab as a pytest fixture (:mod:`reload.natlab`), and small
helpers that run Python inside its namespaces."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reload.config import KindConfig, defaultConfiguration, writeConfiguration
from reload.ctl.main import linkPairTypes
from reload.lab import ringErrors
from reload.natlab import NatLab, NatLabPeer, NatPeerLab, natLabAvailable

from .replication_support import untilAsserted

#: The private Kind the NAT-lab tests store to and fetch from.
NOTES = 0xF0000001
#: The long-term credentials of the labs' TURN server (``TURN:users``).
TURN_USER, TURN_PASSWORD = "relayuser", "relay-secret"


def requireNatLab() -> None:
    """Fail under CI (which runs as root) and skip elsewhere when the NAT
    lab cannot be built here, saying why."""
    why = natLabAvailable()
    if why is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def natLab() -> Iterator[NatLab]:
    """A freshly built NAT lab, torn down after the test whatever happens."""
    requireNatLab()
    lab = NatLab()
    lab.build()
    try:
        yield lab
    finally:
        lab.teardown()


def pythonIn(lab: NatLab, namespace: str, source: str, *args: str, timeout: float = 20) -> Any:
    """Run ``source`` (which prints one JSON document) with this Python
    inside ``namespace``; its JSON output."""
    done = subprocess.run(
        lab.command(namespace, [sys.executable, "-c", source, *args]),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def postAdmin(lab: Any, peer: Any, path: str, **query: str) -> Any:
    """POST ``path?query`` to a NAT-lab peer's admin API (its Unix socket)."""
    return lab.adminCall(peer, "POST", f"{path}?{urllib.parse.urlencode(query)}", b"")


def writeNotesOverlay(directory: Path, name: str) -> None:
    """``directory/overlay.xml``: the default overlay ``name`` with the
    NOTES Kind (an ARRAY each user writes under its own name) added."""
    base = defaultConfiguration(name)
    notes = KindConfig(
        kindId=NOTES, name=None, maxCount=8, maxSize=64, maxNodeMultiple=None,
        dataModel="ARRAY", accessControl="USER-MATCH",
    )  # fmt: skip
    (directory / "overlay.xml").write_bytes(
        writeConfiguration(dataclasses.replace(base, kinds=(*base.kinds, notes)))
    )


@contextmanager
def credentialRelayLab(
    directory: Path, extraArgs: list[str], environment: dict[str, str]
) -> Iterator[tuple[NatPeerLab, dict[str, NatLabPeer]]]:
    """A NAT lab whose NATed peers relay with ``--turn-server``: a public
    bootstrap peer, a public peer running the TURN usage's server with the
    TURN_USER credentials, and one peer behind each NAT ("friendly" behind
    ``a``, "hostile" behind ``b``) configured with that server; all joined.
    ``directory`` must hold the overlay.xml; everything is stopped and the
    namespaces removed on exit."""
    users = directory / "turn-users"
    users.write_text(f"{TURN_USER}:{TURN_PASSWORD}\n")
    net = NatLab().build()
    lab = NatPeerLab(directory, net, extraArgs=extraArgs, environment=environment)
    try:
        boot = lab.startPeerOn("public")
        turnHost = net.nextHost("public")
        relay = lab.startPeerOn(
            "public",
            extraArgs=[
                "--usage", "TURN",
                "--usage-option", f"TURN:host={turnHost}",
                "--usage-option", "TURN:udp-port=3478",
                "--usage-option", "TURN:tcp-port=off",
                "--usage-option", f"TURN:users={users}",
            ],
        )  # fmt: skip
        lab.waitFor(lambda s: s.get("state") == "joined", [boot, relay], 60)
        turnArgs = [
            "--turn-server", f"{turnHost}:3478",
            "--turn-user", TURN_USER, "--turn-password", TURN_PASSWORD,
        ]  # fmt: skip
        friendly = lab.startPeerOn("a", extraArgs=turnArgs)
        hostile = lab.startPeerOn("b", extraArgs=turnArgs)
        peers = {"boot": boot, "relay": relay, "friendly": friendly, "hostile": hostile}
        lab.waitFor(lambda s: s.get("state") == "joined", list(peers.values()), 90)
        yield lab, peers
    finally:
        lab.stop()
        net.teardown()


def assertRelayedBetweenTheNats(
    lab: NatPeerLab, peers: dict[str, NatLabPeer], timeout: float
) -> None:
    """The "friendly" and "hostile" peers link over a relay pair (neither
    side thinks it has a direct path, and `reloadctl ring` shows it), and
    Pings both ways cross the relay: the relayed counters of their NAT
    status grow in both directions."""
    friendly, hostile = peers["friendly"], peers["hostile"]
    friendlyId = lab.status(friendly)["nodeId"]
    hostileId = lab.status(hostile)["nodeId"]

    def linked() -> None:
        fromFriendly = lab.status(friendly)["nat"]["pairTypes"].get(hostileId)
        fromHostile = lab.status(hostile)["nat"]["pairTypes"].get(friendlyId)
        assert "relay" in (fromFriendly, fromHostile), (fromFriendly, fromHostile)
        assert fromFriendly in ("relay", None) and fromHostile in ("relay", None)
        assert hostileId in lab.status(friendly)["links"]

    untilAsserted(linked, timeout)
    assert "relay" in (
        linkPairTypes(lab.status(friendly))[hostileId],
        linkPairTypes(lab.status(hostile))[friendlyId],
    )
    before = {n: lab.status(peers[n])["nat"] for n in ("friendly", "hostile")}
    for source, target in ((friendly, hostileId), (hostile, friendlyId)):
        answer = postAdmin(lab, source, "/ping", destination=target)
        assert answer, answer
    after = {n: lab.status(peers[n])["nat"] for n in ("friendly", "hostile")}
    relayedIn = sum(after[n]["relayedIn"] - before[n]["relayedIn"] for n in after)
    relayedOut = sum(after[n]["relayedOut"] - before[n]["relayedOut"] for n in after)
    assert relayedIn > 0 and relayedOut > 0, (before, after)


def assertStoreAndFetchAcrossTheNats(
    lab: NatPeerLab, peers: dict[str, NatLabPeer], user: str
) -> None:
    """Once the ring has converged, what the peer behind one NAT stores
    under ``user`` in the NOTES Kind the peer behind the other fetches."""
    untilAsserted(lambda: _assertConverged(lab), 60)
    for writer, reader, value in (
        ("friendly", "hostile", "from nat a"),
        ("hostile", "friendly", "from nat b"),
    ):
        stored = postAdmin(lab, peers[writer], "/store", kind=hex(NOTES), name=user, value=value)
        assert stored["generation"] >= 1, stored
        fetched = postAdmin(lab, peers[reader], "/fetch", kind=hex(NOTES), name=user)
        values = [v["value"] for v in fetched["kinds"][0]["values"]]
        assert value in str(values), fetched


def _assertConverged(lab: NatPeerLab) -> None:
    assert ringErrors(lab.statuses()) == []
