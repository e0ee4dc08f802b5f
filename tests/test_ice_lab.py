"""ICE for Attach between real peers in the NAT lab (RFC 6940 section
6.5.1.3): peers behind the friendly NAT join through a public bootstrap
peer, store and fetch, and their links are ICE links of the pair type the
NATs allow; a peer behind the hostile NAT learns it is behind one.

Not here: two peers behind different NATs with the hostile one involved
need a relayed candidate (TURN): tests/test_ice_relay_lab.py, where the
peers are given a TURN server; these peers have none."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.lab import ringErrors
from reload.natlab import NatLab, NatLabPeer, NatPeerLab

from .conftest import sourceEnv
from .natlab import NOTES, postAdmin, requireNatLab, writeNotesOverlay
from .replication_support import untilAsserted

USER = "alice@example.org"


@pytest.fixture(scope="module")
def iceLab(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NatPeerLab, list[NatLabPeer]]]:
    requireNatLab()
    directory: Path = tmp_path_factory.mktemp("ice-lab")
    writeNotesOverlay(directory, "ice-lab.reload.local")
    net = NatLab().build()
    lab = NatPeerLab(directory, net, extraArgs=["--user", USER], environment=sourceEnv())
    try:
        boot = lab.startPeerOn("public")
        lab.waitFor(lambda s: s.get("state") == "joined", [boot], 60)
        peers = [boot, lab.startPeerOn("public"), lab.startPeerOn("a"), lab.startPeerOn("a")]
        lab.waitFor(lambda s: s.get("state") == "joined", peers, 90)
        yield lab, peers
    finally:
        lab.stop()
        net.teardown()


def _converged(lab: NatPeerLab) -> None:
    assert ringErrors(lab.statuses()) == []


def test_peersLearnWhetherTheyAreBehindANat(iceLab: tuple[NatPeerLab, list[NatLabPeer]]) -> None:
    lab, (boot, public, friendly, _) = iceLab
    assert lab.status(friendly)["nat"]["behindNat"] is True
    assert lab.status(friendly)["nat"]["reflexive"].startswith("198.18.0.11:")
    assert lab.status(public)["nat"]["behindNat"] is False
    # The bootstrap peer has nobody to ask.
    assert lab.status(boot)["nat"]["behindNat"] is None


def test_aPublicPeerAndOneBehindTheFriendlyNatLinkOverASrflxPair(
    iceLab: tuple[NatPeerLab, list[NatLabPeer]],
) -> None:
    lab, (_, public, friendly, _) = iceLab
    friendlyId = lab.status(friendly)["nodeId"]
    publicId = lab.status(public)["nodeId"]

    def linked() -> None:
        assert lab.status(public)["nat"]["pairTypes"].get(friendlyId) == "srflx"
        assert lab.status(friendly)["nat"]["pairTypes"].get(publicId) == "srflx"

    untilAsserted(linked)


def test_natedPeersStoreAndFetch(iceLab: tuple[NatPeerLab, list[NatLabPeer]]) -> None:
    lab, (boot, _, friendly, other) = iceLab
    untilAsserted(lambda: _converged(lab), 60)
    stored = postAdmin(lab, friendly, "/store", kind=hex(NOTES), name=USER, value="behind nat a")
    assert stored["generation"] >= 1
    for reader in (other, boot):
        fetched = postAdmin(lab, reader, "/fetch", kind=hex(NOTES), name=USER)
        values = [v["value"] for v in fetched["kinds"][0]["values"]]
        assert "behind nat a" in str(values), fetched


def test_natedPeersStayInTheOverlayWithKeepalives(
    iceLab: tuple[NatPeerLab, list[NatLabPeer]],
) -> None:
    """Longer than one keepalive interval (15 s): still joined, links up."""
    lab, peers = iceLab
    time.sleep(20)
    for peer in peers:
        status = lab.status(peer)
        assert status["state"] == "joined"
        assert status["links"], status
    friendly = peers[2]
    assert lab.status(friendly)["nat"]["pairTypes"]


def test_peersBehindTheSameNatLinkOverAHostPair(
    iceLab: tuple[NatPeerLab, list[NatLabPeer]],
) -> None:
    lab, (_, _, friendly, other) = iceLab
    otherId = lab.status(other)["nodeId"]

    def linked() -> None:
        pairs = lab.status(friendly)["nat"]["pairTypes"]
        assert pairs.get(otherId) == "host", pairs

    untilAsserted(linked)


def test_aPeerBehindTheHostileNatLearnsItsMapping(
    iceLab: tuple[NatPeerLab, list[NatLabPeer]],
) -> None:
    """Last in this module: the newcomer may need a ring neighbour behind
    the other NAT, which takes a relay (these peers have no TURN server),
    so only what it learns before joining is checked."""
    lab, (boot, *_) = iceLab
    hostile = lab.startPeerOn("b", bootstrap=boot)
    lab.waitFor(lambda s: s.get("nat", {}).get("behindNat") is True, [hostile], 60)
    assert lab.status(hostile)["nat"]["reflexive"].startswith("198.18.0.12:")
