"""Relayed ICE candidates in the NAT lab (RFC 6940 section 6.5.1.5, RFC
8656): a public peer runs the TURN usage's built-in server; peers behind
the friendly NAT (``a``) and the hostile one (``b``, a new random port per
destination) allocate a relay on it from their DTLS port.  Between ``a``
and ``b`` no direct pair can work, so their link goes through the relay:
the test asserts the selected pair type, pings both ways over that link,
sees the datagrams counted by the relay client, and stores and fetches
from both NATed peers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reload.ctl.main import linkPairTypes, main
from reload.lab import ringErrors
from reload.natlab import NatLabPeer, NatPeerLab

from .conftest import sourceEnv
from .natlab import NOTES, credentialRelayLab, postAdmin, requireNatLab, writeNotesOverlay
from .replication_support import untilAsserted

USER = "alice@example.org"


@pytest.fixture(scope="module")
def relayLab(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NatPeerLab, dict[str, NatLabPeer]]]:
    requireNatLab()
    directory: Path = tmp_path_factory.mktemp("ice-relay-lab")
    writeNotesOverlay(directory, "ice-relay-lab.reload.local")
    with credentialRelayLab(directory, ["--user", USER], sourceEnv()) as lab:
        yield lab


def test_natedPeersAllocateARelay(relayLab: tuple[NatPeerLab, dict[str, NatLabPeer]]) -> None:
    lab, peers = relayLab
    for name in ("friendly", "hostile"):
        nat = lab.status(peers[name])["nat"]
        assert nat["behindNat"] is True, nat
        assert nat["relayed"] is not None and nat["relayed"].startswith("198.18.0.2:"), nat


def test_peersBehindTheTwoNatsLinkThroughTheRelay(
    relayLab: tuple[NatPeerLab, dict[str, NatLabPeer]],
) -> None:
    lab, peers = relayLab
    friendly, hostile = peers["friendly"], peers["hostile"]
    friendlyId = lab.status(friendly)["nodeId"]
    hostileId = lab.status(hostile)["nodeId"]

    def linked() -> None:
        fromFriendly = lab.status(friendly)["nat"]["pairTypes"].get(hostileId)
        fromHostile = lab.status(hostile)["nat"]["pairTypes"].get(friendlyId)
        assert "relay" in (fromFriendly, fromHostile), (fromFriendly, fromHostile)
        # Neither side may think it has a direct path.
        assert fromFriendly in ("relay", None) and fromHostile in ("relay", None)
        assert hostileId in lab.status(friendly)["links"]

    untilAsserted(linked, 60)
    # What `reloadctl ring` shows per link.
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


def test_peersBehindBothNatsStoreAndFetch(
    relayLab: tuple[NatPeerLab, dict[str, NatLabPeer]],
) -> None:
    lab, peers = relayLab
    untilAsserted(lambda: _assertConverged(lab), 60)
    for writer, reader, value in (
        ("friendly", "hostile", "from nat a"),
        ("hostile", "friendly", "from nat b"),
    ):
        stored = postAdmin(lab, peers[writer], "/store", kind=hex(NOTES), name=USER, value=value)
        assert stored["generation"] >= 1, stored
        fetched = postAdmin(lab, peers[reader], "/fetch", kind=hex(NOTES), name=USER)
        values = [v["value"] for v in fetched["kinds"][0]["values"]]
        assert value in str(values), fetched


def _assertConverged(lab: NatPeerLab) -> None:
    assert ringErrors(lab.statuses()) == []


def test_natLabCommandNeedsRoot(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    """`reloadctl lab --nat` without root: a clear message, nothing built."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "--nat", "--dir", str(tmp_path / "lab")]) == 1
    assert "needs root" in capsys.readouterr().err
    assert not (tmp_path / "lab").exists()
