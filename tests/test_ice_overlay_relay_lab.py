"""Relayed ICE candidates from a TURN server found in the overlay (RFC 6940
sections 6.5.1.5 and 9) in the NAT lab: a public peer runs the TURN
usage's built-in server with ``TURN:tls-port=same`` and advertises it; the
peers behind the friendly NAT (``a``) and the hostile one (``b``) run the
TURN usage too but have no ``--turn-server``.  ICE finds them behind their
NATs, the usage finds the public server in the overlay, and each peer
allocates a relay on it over TLS, the server's certificate checked for the
advertiser's Node-ID.  The link between the two NATed peers then goes
through that relay; stores and fetches work across, and an AppAttach
between them (the ECHO-APP test usage) relays on the same member's server.

Also section 9's rule in a real lab: the public peer advertises its server,
the peer behind the friendly NAT -- which claims a global address for its
own server, as an operator forwarding a port might -- does not, because
ICE found it behind a NAT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reload.natlab import NatLab, NatLabPeer, NatPeerLab

from .conftest import TEST_PLUGINS, sourceEnv
from .natlab import (
    assertRelayedBetweenTheNats,
    assertStoreAndFetchAcrossTheNats,
    postAdmin,
    requireNatLab,
    writeNotesOverlay,
)
from .replication_support import untilAsserted

USER = "alice@example.org"
#: A global address for the NATed peer's own server: advertise=auto then
#: has only ICE's verdict to go by (the lab's 198.18/15 and 10/8 addresses
#: are never counted as public).
CLAIMED = "1.2.3.4"

Peers = dict[str, NatLabPeer]


@pytest.fixture(scope="module")
def overlayRelayLab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatPeerLab, Peers]]:
    requireNatLab()
    directory: Path = tmp_path_factory.mktemp("ice-overlay-relay-lab")
    writeNotesOverlay(directory, "ice-overlay-relay-lab.reload.local")
    net = NatLab().build()
    lab = NatPeerLab(
        directory,
        net,
        extraArgs=["--user", USER, "--usage", "ECHO-APP"],
        environment=sourceEnv([str(TEST_PLUGINS)]),
    )
    try:
        boot = lab.startPeerOn("public")
        turnHost = net.nextHost("public")
        relay = lab.startPeerOn(
            "public",
            extraArgs=[
                "--usage", "TURN",
                "--usage-option", f"TURN:host={turnHost}",
                "--usage-option", "TURN:udp-port=3478",
                "--usage-option", "TURN:tls-port=same",
                # The lab's public segment is a benchmarking range.
                "--usage-option", "TURN:advertise=always",
            ],
        )  # fmt: skip
        lab.waitFor(lambda s: s.get("state") == "joined", [boot, relay], 60)
        friendlyHost = net.nextHost("a")
        friendly = lab.startPeerOn(
            "a",
            extraArgs=[
                "--usage", "TURN",
                "--usage-option", f"TURN:host={friendlyHost}",
                "--usage-option", f"TURN:address={CLAIMED}",
                "--usage-option", f"TURN:relay-host={friendlyHost}",
            ],
        )  # fmt: skip
        # Both NATed peers join at once: their first checks with each other
        # may run before either has its relay (it comes after the join), and
        # the peers Attach again once they have it.
        hostile = lab.startPeerOn(
            "b", extraArgs=["--usage", "TURN", "--usage-option", "TURN:serve=no"]
        )
        peers = {"boot": boot, "relay": relay, "friendly": friendly, "hostile": hostile}
        lab.waitFor(lambda s: s.get("state") == "joined", list(peers.values()), 90)
        yield lab, peers
    finally:
        lab.stop()
        net.teardown()


def test_publicPeerAdvertisesAndNatedPeerDoesNot(
    overlayRelayLab: tuple[NatPeerLab, Peers],
) -> None:
    """RFC 6940 section 9: "a peer behind a NAT ... SHOULD NOT" offer TURN."""
    lab, peers = overlayRelayLab

    def advertising(name: str) -> dict[str, object]:
        advertised: dict[str, object] = _turn(lab, peers[name])["advertising"]
        return advertised

    untilAsserted(lambda: _assertAdvertised(advertising("relay")), 30)
    friendly = advertising("friendly")
    assert friendly["advertised"] is False, friendly
    assert "behind a NAT" in str(friendly["why not"]), friendly
    assert lab.status(peers["friendly"])["nat"]["behindNat"] is True


def _turn(lab: NatPeerLab, peer: NatLabPeer) -> Any:
    """The TURN usage's status on ``peer``."""
    [usage] = [u for u in lab.status(peer)["usages"] if u["name"] == "TURN"]
    return usage["status"]


def _assertAdvertised(advertising: dict[str, object]) -> None:
    assert advertising["advertised"] is True, advertising


def test_natedPeersGetARelayFromTheOverlay(overlayRelayLab: tuple[NatPeerLab, Peers]) -> None:
    """No --turn-server: the relay is on the public member's server, over
    TLS, and the status names that member."""
    lab, peers = overlayRelayLab
    relayId = lab.status(peers["relay"])["nodeId"]
    relayHost = peers["relay"].host

    def relayed(name: str) -> None:
        nat = lab.status(peers[name])["nat"]
        assert nat["behindNat"] is True, nat
        assert nat["relayed"] is not None and nat["relayed"].startswith(f"{relayHost}:"), nat
        assert nat["relayServer"] == f"{relayHost}:3478", nat
        assert nat["relayTransport"] == "tls", nat
        assert nat["relayNodeId"] == relayId, nat

    for name in ("hostile", "friendly"):
        untilAsserted(lambda name=name: relayed(name), 90)
    allocations = _turn(lab, peers["relay"])["server"]["allocations"]
    assert allocations >= 2


def test_peersBehindTheTwoNatsLinkThroughTheOverlayRelay(
    overlayRelayLab: tuple[NatPeerLab, Peers],
) -> None:
    lab, peers = overlayRelayLab
    assertRelayedBetweenTheNats(lab, peers, 120)
    # The relay traffic went through the overlay member's server.
    server = _turn(lab, peers["relay"])["server"]
    assert server["packetsRelayed"] > 0, server


def test_peersBehindBothNatsStoreAndFetch(overlayRelayLab: tuple[NatPeerLab, Peers]) -> None:
    lab, peers = overlayRelayLab
    assertStoreAndFetchAcrossTheNats(lab, peers, USER)


def test_appAttachBetweenTheNatsRelaysOnTheOverlayServer_6_5_2(
    overlayRelayLab: tuple[NatPeerLab, Peers],
) -> None:
    """AppAttach's own port allocates over TLS on the member's server the
    node's relay is on; bytes go both ways over a relay pair."""
    lab, peers = overlayRelayLab
    hostile, friendly = peers["hostile"], peers["friendly"]
    untilAsserted(lambda: _assertTlsRelay(lab, hostile), 60)
    friendlyId = lab.status(friendly)["nodeId"]
    before = _turn(lab, peers["relay"])["server"]["packetsRelayed"]
    result = lab.adminCall(
        hostile, "POST", f"/usage/ECHO-APP/attach?node={friendlyId}&data=b-to-a", b"", timeout=60
    )
    assert result["echo"] == "echo:b-to-a", result
    assert result["pairType"] == "relay", result
    assert friendlyId in result["peerNodeIds"], result
    answered = postAdmin(lab, friendly, "/usage/ECHO-APP/answered")["connections"]
    assert [c["pairType"] for c in answered if c["received"] == "b-to-a"] == ["relay"], answered
    # The only TURN server in this lab is the overlay member's: the relay
    # pair's checks, handshake and bytes went through it.
    assert _turn(lab, peers["relay"])["server"]["packetsRelayed"] > before


def _assertTlsRelay(lab: NatPeerLab, peer: NatLabPeer) -> None:
    nat = lab.status(peer)["nat"]
    assert nat["relayTransport"] == "tls" and nat["relayNodeId"], nat
