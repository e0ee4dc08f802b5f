"""The SIP usage (RFC 7904) in an in-memory overlay of real nodes: a node
registers its own AoR (the user name of its certificate) and any node
resolves it (section 4.2); AoR -> AoR forwarding, loops, GRUUs; the
storing peer's checks of section 3.3 against hostile writers."""

from __future__ import annotations

import dataclasses

import pytest

from reload.api.data import Destination
from reload.config.defaults import defaultConfiguration
from reload.config.model import Extension, OverlayConfiguration
from reload.config.namespaces import SIP
from reload.errors import ReloadError
from reload.testing import HarnessNode, MemoryOverlay
from reload.wire.message import ErrorCode
from usages.sip import SIP_REGISTRATION_KIND_ID, sip
from usages.sipusage.record import SipRegistration
from usages.sipusage.resolver import NotOwnAor

NO_FRONT_END = {"SIP": {"listen": "none"}}


def test_a_registered_aor_resolves_from_every_node_to_the_registering_peer() -> None:
    with MemoryOverlay(8, usages=[sip], options=NO_FRONT_END, seed=1) as overlay:
        alice = overlay.nodes[2]
        service = alice.service("SIP")
        aor = service.client.aor
        assert aor == alice.api.userName and "@" in aor
        overlay.wait(service.register())
        for node in overlay.nodes:
            resolution = overlay.wait(node.service("SIP").resolve("sip:" + aor))
            assert [t.nodeId for t in resolution.targets] == [alice.nodeId]
            assert resolution.fetched == [aor]
            assert not resolution.loop
        # Expires: 0 of a phone: the entry goes (exists = False).
        overlay.wait(service.client.unregister())
        assert overlay.wait(overlay.nodes[0].service("SIP").resolve(aor)).targets == []


def test_forwarding_is_followed_and_loops_and_depth_are_caught() -> None:
    with MemoryOverlay(8, usages=[sip], options=NO_FRONT_END, seed=2) as overlay:
        a, b, c = (overlay.nodes[i].service("SIP") for i in (1, 2, 3))
        overlay.wait(c.register())
        overlay.wait(a.forward(b.client.aor))
        overlay.wait(b.forward(c.client.aor))
        caller = overlay.nodes[0].service("SIP")
        found = overlay.wait(caller.resolve(a.client.aor))
        assert [t.nodeId for t in found.targets] == [overlay.nodes[3].nodeId]
        assert found.fetched == [a.client.aor, b.client.aor, c.client.aor]
        assert overlay.wait(caller.client.resolve(a.client.aor, maxDepth=1)).tooDeep
        # c forwards back to a: a loop, and c's own route is gone.
        overlay.wait(c.forward(a.client.aor))
        looped = overlay.wait(caller.resolve(a.client.aor))
        assert looped.loop and looped.targets == []


def test_a_device_keyed_entry_per_peer_and_duplicates_removed() -> None:
    with MemoryOverlay(6, usages=[sip], options=NO_FRONT_END, seed=3) as overlay:
        a, b = overlay.nodes[1], overlay.nodes[2]
        overlay.wait(a.service("SIP").register())
        # b forwards to a; a's route must appear once.
        overlay.wait(b.service("SIP").forward(a.service("SIP").client.aor))
        overlay.wait(
            b.service("SIP").register(destinations=[Destination.node(a.nodeId)], lifetime=60)
        )
        found = overlay.wait(overlay.nodes[0].service("SIP").resolve(b.service("SIP").client.aor))
        # b's route record replaced its forwarding (one entry per device).
        assert [t.nodeId for t in found.targets] == [a.nodeId]


def test_a_gruu_resolves_without_a_fetch() -> None:
    with MemoryOverlay(4, usages=[sip], options=NO_FRONT_END, seed=4) as overlay:
        service = overlay.nodes[1].service("SIP")
        found = overlay.wait(overlay.nodes[0].service("SIP").resolve(service.gruu()))
        assert found.gruu and found.fetched == []
        assert [t.nodeId for t in found.targets] == [overlay.nodes[1].nodeId]


def test_a_node_cannot_register_someone_elses_aor() -> None:
    with MemoryOverlay(4, usages=[sip], options=NO_FRONT_END, seed=5) as overlay:
        mallory, bob = overlay.nodes[1], overlay.nodes[2]
        bobAor = bob.service("SIP").client.aor
        with pytest.raises(NotOwnAor):
            overlay.wait(mallory.service("SIP").register(bobAor))
        # Past the client's own check, the storing peer refuses it (3.3).
        resourceId = mallory.api.resourceId(bobAor.encode())
        value = SipRegistration.route((Destination.node(mallory.nodeId),)).encode()
        with pytest.raises(ReloadError) as refused:
            overlay.wait(
                mallory.api.store(resourceId, SIP_REGISTRATION_KIND_ID, {mallory.nodeId: value})
            )
        assert refused.value.code == ErrorCode.FORBIDDEN
        # A key that is not the signer's Node-ID (check 3).
        own = mallory.api.resourceId(mallory.service("SIP").client.aor.encode())
        with pytest.raises(ReloadError) as wrongKey:
            overlay.wait(mallory.api.store(own, SIP_REGISTRATION_KIND_ID, {bob.nodeId: value}))
        assert wrongKey.value.code == ErrorCode.FORBIDDEN


def test_a_hostile_peers_malformed_sip_registration_is_refused_by_the_storing_peer() -> None:
    with MemoryOverlay(6, usages=[sip], options=NO_FRONT_END, seed=6) as overlay:
        # A hostile node that is not responsible for its own AoR, with the
        # Kind's validate taken out of its own table: what it sends is
        # judged by the storing peer alone.
        def ownResource(node: HarnessNode) -> bytes:
            return node.api.resourceId(node.service("SIP").client.aor.encode())

        hostile = next(n for n in overlay.nodes if not n.topology.isResponsible(ownResource(n)))
        table = hostile.stack.service.kinds
        entry = table[SIP_REGISTRATION_KIND_ID]
        table._entries[SIP_REGISTRATION_KIND_ID] = dataclasses.replace(entry, validator=None)
        for bad in (b"\x02\x00", b"\x02\x00\x04\x00\x00\x00\x00", b"\x01\x00\x05\x00\x03abc"):
            with pytest.raises(ReloadError) as refused:
                overlay.wait(
                    hostile.api.store(
                        ownResource(hostile), SIP_REGISTRATION_KIND_ID, {hostile.nodeId: bad}
                    )
                )
            assert refused.value.code == ErrorCode.INVALID_MESSAGE
            assert "SipRegistration" in refused.value.text
        # The storing peer goes on serving: a good registration is stored.
        table._entries[SIP_REGISTRATION_KIND_ID] = entry
        overlay.wait(hostile.service("SIP").register())
        found = overlay.wait(
            overlay.nodes[0].service("SIP").resolve(hostile.service("SIP").client.aor)
        )
        assert [t.nodeId for t in found.targets] == [hostile.nodeId]


def _restricted(enable: str, patterns: str = "") -> OverlayConfiguration:
    base = defaultConfiguration("overlay.example")
    extension = Extension(
        f'<sip:domain-restriction xmlns:sip="{SIP}" enable="{enable}">{patterns}'
        "</sip:domain-restriction>"
    )
    kinds = tuple(
        dataclasses.replace(k, extensions=(extension,)) if k.name == "SIP-REGISTRATION" else k
        for k in base.kinds
    )
    return dataclasses.replace(base, kinds=kinds)


def test_the_storing_peer_enforces_the_domain_restriction() -> None:
    # Harness users are peerN@<instance name>: "overlay.example" here.
    refused = _restricted("true", "<sip:pattern>dht\\.example\\.com</sip:pattern>")
    with MemoryOverlay(
        4, usages=[sip], options=NO_FRONT_END, configuration=refused, seed=7
    ) as overlay:
        with pytest.raises(ReloadError) as error:
            overlay.wait(overlay.nodes[1].service("SIP").register())
        assert error.value.code == ErrorCode.FORBIDDEN
        assert "not admissible" in error.value.text
    allowed = _restricted("false")  # only the overlay's own domain
    with MemoryOverlay(
        4, usages=[sip], options=NO_FRONT_END, configuration=allowed, seed=7
    ) as overlay:
        service = overlay.nodes[1].service("SIP")
        overlay.wait(service.register())
        assert overlay.wait(service.resolve(service.client.aor)).targets
