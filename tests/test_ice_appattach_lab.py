"""AppAttach over ICE in the NAT lab (RFC 6940 section 6.5.2): every peer
runs the ECHO-APP test usage (tests/plugins/usages/echoapp.py), which
answers application 0xECB0 by echoing.  A public peer runs the TURN
usage's server, and the NATed peers allocate relayed candidates on it.

* behind the friendly NAT (``a``) -> the public bootstrap peer: the
  answer is ICE (the caller offers ICE only), and the pair is srflx;
* friendly NAT <-> hostile NAT (``b``, a new port per destination), in
  both directions: no direct pair works, the pair is relayed.

Each time the bytes go both ways (the caller's reach the answering
application, its echo comes back), and both applications saw the other
node's verified certificate (section 6.5.1.11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reload.config import defaultConfiguration, writeConfiguration
from reload.natlab import NatLabPeer, NatPeerLab

from .conftest import TEST_PLUGINS, sourceEnv
from .natlab import credentialRelayLab, postAdmin, requireNatLab


@pytest.fixture(scope="module")
def appLab(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NatPeerLab, dict[str, NatLabPeer]]]:
    requireNatLab()
    directory: Path = tmp_path_factory.mktemp("ice-appattach-lab")
    (directory / "overlay.xml").write_bytes(
        writeConfiguration(defaultConfiguration("ice-appattach-lab.reload.local"))
    )
    with credentialRelayLab(
        directory, ["--usage", "ECHO-APP"], sourceEnv([str(TEST_PLUGINS)])
    ) as lab:
        yield lab


def _appAttach(
    lab: NatPeerLab, caller: NatLabPeer, answerer: NatLabPeer, data: str, pairType: str
) -> None:
    callerId = lab.status(caller)["nodeId"]
    answererId = lab.status(answerer)["nodeId"]
    result = lab.adminCall(
        caller, "POST", f"/usage/ECHO-APP/attach?node={answererId}&data={data}", b"", timeout=60
    )
    # Both ways: the answering application echoed what the caller wrote.
    assert result["echo"] == f"echo:{data}", result
    assert result["pairType"] == pairType, result
    assert answererId in result["peerNodeIds"], result
    answered = postAdmin(lab, answerer, "/usage/ECHO-APP/answered")["connections"]
    mine = [c for c in answered if c["received"] == data]
    assert len(mine) == 1, answered
    assert mine[0]["pairType"] == pairType, mine
    assert callerId in mine[0]["peerNodeIds"], mine


def test_appAttachFromTheFriendlyNatToAPublicPeerIsSrflx_6_5_2(
    appLab: tuple[NatPeerLab, dict[str, NatLabPeer]],
) -> None:
    lab, peers = appLab
    _appAttach(lab, peers["friendly"], peers["boot"], "hello-public", "srflx")


def test_appAttachBetweenTheTwoNatsIsRelayedBothWays_6_5_2(
    appLab: tuple[NatPeerLab, dict[str, NatLabPeer]],
) -> None:
    lab, peers = appLab
    _appAttach(lab, peers["friendly"], peers["hostile"], "a-to-b", "relay")
    _appAttach(lab, peers["hostile"], peers["friendly"], "b-to-a", "relay")
