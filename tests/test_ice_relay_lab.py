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

from reload.ctl.main import main
from reload.natlab import NatLabPeer, NatPeerLab

from .conftest import sourceEnv
from .natlab import (
    assertRelayedBetweenTheNats,
    assertStoreAndFetchAcrossTheNats,
    credentialRelayLab,
    requireNatLab,
    writeNotesOverlay,
)

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
    assertRelayedBetweenTheNats(lab, peers, 60)


def test_peersBehindBothNatsStoreAndFetch(
    relayLab: tuple[NatPeerLab, dict[str, NatLabPeer]],
) -> None:
    lab, peers = relayLab
    assertStoreAndFetchAcrossTheNats(lab, peers, USER)


def test_natLabCommandNeedsRoot(
    monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    """`reloadctl lab --nat` without root: a clear message, nothing built."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["lab", "--nat", "--dir", str(tmp_path / "lab")]) == 1
    assert "needs root" in capsys.readouterr().err
    assert not (tmp_path / "lab").exists()
