"""The SIP front end's registrar and proxy (RFC 3261 over RFC 7904) on the
in-memory overlay: phones are fake flows that keep what they are sent, the
overlay is real (Stores and Fetches between harness nodes).  AppAttach has
no sockets here, so a call to another peer ends in 480; calls across peers
are in tests/test_sip_lab.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reload.testing import HarnessNode, MemoryOverlay
from usages.sip import sip
from usages.sipusage.connections import Flow, OverlayConnections
from usages.sipusage.digest import DigestAuthenticator
from usages.sipusage.message import SipMessage, parseDatagram
from usages.sipusage.proxy import SipProxy
from usages.sipusage.resolver import SipClient


class Phone(Flow):
    """A phone's flow: what the proxy sends it."""

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port))
        self.token = f"u127.0.0.1-{port}"
        self.got: list[SipMessage] = []

    def send(self, data: bytes) -> None:
        self.got.append(parseDatagram(data))

    def statuses(self) -> list[int]:
        return [m.status for m in self.got if not m.isRequest]


def request(method: str, uri: str, caller: str, callee: str, port: int, **extra: str) -> bytes:
    headers = {
        "Via": f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{method}{port}",
        "From": f"<sip:{caller}>;tag=f{port}",
        "To": f"<sip:{callee}>",
        "Call-ID": f"{method}-{port}@test",
        "CSeq": f"1 {method}",
        "Max-Forwards": "70",
        "Contact": f"<sip:phone@127.0.0.1:{port}>",
        **{k.replace("_", "-"): v for k, v in extra.items()},
    }
    lines = [f"{method} {uri} SIP/2.0", *(f"{k}: {v}" for k, v in headers.items() if v)]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


class Front:
    """A SipProxy on one harness node, with its UDP socket played by the
    flows themselves (each phone answers on its own flow)."""

    def __init__(self, overlay: MemoryOverlay, node: HarnessNode) -> None:
        self.overlay = overlay
        self.node = node
        client = SipClient(node.api)
        connections = OverlayConnections(node.api, self.receive, lambda *a: None, 5.0)
        self.proxy = SipProxy(client, connections, node.api.clock, "127.0.0.1", 5060, 8, 3600)
        self.phones: dict[int, Phone] = {}
        self.proxy.udp = self
        self.aor = client.aor

    def phone(self, port: int) -> Phone:
        return self.phones.setdefault(port, Phone(port))

    @property
    def transport(self) -> Any:
        return self

    def write(self, data: bytes, address: tuple[str, int]) -> None:
        # The proxy's UDP writes land on the phone at that address.
        self.phone(address[1]).send(data)

    def receive(self, message: SipMessage, flow: Flow) -> None:
        self.proxy.receive(message, flow)

    def send(self, port: int, data: bytes, settle: float = 2.0) -> Phone:
        phone = self.phone(port)
        try:
            message = parseDatagram(data)
        except ValueError as exc:
            self.proxy.badInput(str(exc), data, phone)
        else:
            self.proxy.receive(message, phone)
        self.overlay.run(settle)
        return phone


@pytest.fixture
def fronts() -> Iterator[tuple[MemoryOverlay, Front, Front]]:
    with MemoryOverlay(6, usages=[sip], options={"SIP": {"listen": "none"}}, seed=9) as overlay:
        yield overlay, Front(overlay, overlay.nodes[1]), Front(overlay, overlay.nodes[2])


def test_register_stores_the_registration_and_expires_zero_removes_it(fronts: Any) -> None:
    overlay, a, b = fronts
    phone = a.send(7001, request("REGISTER", "sip:x", a.aor, a.aor, 7001, Expires="120"))
    assert phone.statuses() == [200]
    assert "expires=120" in (phone.got[-1].get("Contact") or "")
    found = overlay.wait(SipClient(b.node.api).resolve(a.aor))
    assert [t.nodeId for t in found.targets] == [a.node.nodeId]
    # The value lives as long as the binding (RFC 7904 section 3.1).
    values = a.node.api.localData(a.node.api.resourceId(a.aor.encode()), 1) or tuple(
        v for n in overlay.nodes for v in n.api.localData(a.node.api.resourceId(a.aor.encode()), 1)
    )
    assert values and all(v.lifetime <= 120 for v in values if v.exists)
    a.send(7001, request("REGISTER", "sip:x", a.aor, a.aor, 7001, Expires="0"))
    assert phone.statuses() == [200, 200]
    assert overlay.wait(SipClient(b.node.api).resolve(a.aor)).targets == []


def test_register_for_another_aor_is_403_and_malformed_input_is_400(fronts: Any) -> None:
    _, a, b = fronts
    phone = a.send(7002, request("REGISTER", "sip:x", b.aor, b.aor, 7002))
    assert phone.statuses() == [403]
    bad = request("REGISTER", "sip:x", a.aor, a.aor, 7003).replace(b"CSeq: 1 REGISTER\r\n", b"")
    assert a.send(7003, bad).statuses() == [400]
    garbage = b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\nl: 99\r\n\r\n"
    assert a.send(7004, garbage).statuses() == [400]
    # Still serving: OPTIONS to the front end itself.
    assert a.send(7005, request("OPTIONS", "sip:127.0.0.1", "x@y.z", "x@y.z", 7005)).statuses() == [
        200
    ]


def test_invites_unknown_aor_404_max_forwards_483_unreachable_peer_480(fronts: Any) -> None:
    _, a, b = fronts
    assert a.send(
        7010, request("INVITE", "sip:nobody@x.org", a.aor, "nobody@x.org", 7010)
    ).statuses() == [100, 404]
    hops = request("INVITE", f"sip:{b.aor}", a.aor, b.aor, 7011, Max_Forwards="0")
    assert a.send(7011, hops).statuses() == [483]
    b.send(7012, request("REGISTER", "sip:x", b.aor, b.aor, 7012))
    # b is registered, but the harness has no sockets for AppAttach.
    call = a.send(7013, request("INVITE", f"sip:{b.aor}", a.aor, b.aor, 7013), settle=20)
    assert call.statuses() == [100, 480]


def test_a_call_between_two_phones_of_one_peer_is_double_record_routed(fronts: Any) -> None:
    _, a, _ = fronts
    a.send(7020, request("REGISTER", "sip:x", a.aor, a.aor, 7020))
    caller = a.send(7021, request("INVITE", f"sip:{a.aor}", a.aor, a.aor, 7021))
    callee = a.phone(7020)
    invite = next(m for m in callee.got if m.method == "INVITE")
    assert invite.uri == "sip:phone@127.0.0.1:7020"
    routes = invite.values("Record-Route")
    assert len(routes) == 2 and "flow=u127.0.0.1-7020" in routes[0] and "7021" in routes[1]
    # The callee answers 200: it reaches the caller with both routes.
    answer = SipMessage(status=200, reason="OK", headers=list(invite.headers))
    answer.set("To", f"<sip:{a.aor}>;tag=callee")
    a.proxy.receive(answer, callee)
    assert caller.statuses()[-1] == 200
    # The caller's BYE along its route set (the reverse) reaches the callee.
    bye = request(
        "BYE", "sip:phone@127.0.0.1:7020", a.aor, a.aor, 7021, To=f"<sip:{a.aor}>;tag=callee"
    )
    message = parseDatagram(bye)
    message.setValues("Route", list(reversed(routes)))
    a.proxy.receive(message, caller)
    assert [m.method for m in callee.got if m.isRequest] == ["INVITE", "BYE"]


def test_digest_authentication_challenges_register_and_invite(fronts: Any) -> None:
    _, a, b = fronts
    a.proxy.authenticator = DigestAuthenticator({a.aor: "pw"})
    assert a.send(7030, request("REGISTER", "sip:x", a.aor, a.aor, 7030)).statuses() == [401]
    challenge = a.phone(7030).got[-1].get("WWW-Authenticate") or ""
    assert 'qop="auth"' in challenge
    invite = request("INVITE", f"sip:{b.aor}", a.aor, b.aor, 7031)
    assert a.send(7031, invite).statuses() == [407]
    other = request("INVITE", f"sip:{b.aor}", b.aor, b.aor, 7032)
    assert a.send(7032, other).statuses() == [403]
