"""Attach with full ICE (RFC 6940 sections 6.5.1.3-6.5.1.13) beside No-ICE.

:class:`IceAttachHandler` is an :class:`~reload.transport.attach.AttachHandler`
that offers DTLS-UDP-SR candidates with ICE parameters and, when ICE is
chosen, runs the checks on the DTLS port (:class:`reload.link.stunport.StunPort`,
agent :class:`reload.link.ice.IceAgent`) and then DTLS over the selected
pair.  Everything else goes to the :class:`NoIceAttachHandler` it wraps.

Which mechanism: section 6.5.1.11 selects No-ICE "when either side has
provided 'no ICE' Overlay Link candidates".  Here a peer that knows it is
behind a NAT (its server-reflexive address differs from its host address)
offers ICE candidates only; a public peer offers both.  An answerer uses
No-ICE when the request carries No-ICE candidates it can use and it is not
itself behind a NAT, and ICE otherwise -- so links between public peers
stay No-ICE (and TCP), as before, and every link with a NATed end uses ICE.

Candidates (section 6.5.1.5): host (the DTLS port on the advertised
address), server-reflexive (learned from a STUN query to a peer's link
port, section 6.5.1.4) and relayed, when the STUN port has a TURN
allocation (:class:`reload.link.turnclient.TurnClient`, made from the DTLS
port itself).  Before the checks run, the TURN server is asked to permit
the remote candidates' addresses (RFC 8656 section 10); once a pair whose
local end is the relay is selected, the DTLS endpoint sends to that peer
through the relay.

Roles: the requester (offerer) is controlling, the answerer controlled
(section 6.5.1.9); once ICE selected a pair the answerer opens DTLS as the
client and the requester is the server (section 6.5.1.13: "The node that
sent the Attach request MUST be the TLS server"); the certificate must be
the other node's (the DTLS endpoint checks the expected Node-ID on its
client side, the transport maps the server side's link by its verified
Node-ID).  The selected pair is kept alive with STUN Binding indications
(section 6.5.1.10.3).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from reload.link.ice import Candidate, IceAgent, candidatePriority
from reload.link.stunport import IceFailed, StunPort
from reload.transport.attach import ANSWERER_ROLE, OFFERER_ROLE, NoIceAttachHandler
from reload.wire.attach import (
    AttachAns,
    AttachReq,
    CandType,
    IceCandidate,
    IpAddressPort,
    OverlayLinkType,
)

__all__ = ["IceAttachHandler", "IcePort", "iceCandidates", "pairType"]

Address = tuple[str, int]
_KINDS = {CandType.HOST: "host", CandType.SRFLX: "srflx", CandType.PRFLX: "prflx",
          CandType.RELAY: "relay"}  # fmt: skip
_TYPES = {kind: cand for cand, kind in _KINDS.items()}
ICE = OverlayLinkType.DTLS_UDP_SR
#: Most Node-IDs remembered for another Attach once a relay is there.
MAX_RETRY_LATER = 64


def _secret(size: int) -> bytes:
    return os.urandom(size).hex().encode()


def pairType(local: str, remote: str) -> str:
    """The type of a selected pair as the status shows it: "relay" when
    either end is relayed, "host" when both are host candidates, "srflx"
    otherwise (a NAT mapping on at least one side)."""
    if "relay" in (local, remote):
        return "relay"
    if local == remote == "host":
        return "host"
    return "srflx"


def iceCandidates(candidates: tuple[IceCandidate, ...]) -> list[Candidate]:
    out = []
    for c in candidates:
        if c.overlay_link != ICE or c.addr_port.ip is None:
            continue
        related = None
        if c.rel_addr_port is not None and c.rel_addr_port.ip is not None:
            related = (str(c.rel_addr_port.ip), c.rel_addr_port.port)
        out.append(
            Candidate(
                _KINDS[CandType(c.type)],
                str(c.addr_port.ip),
                c.addr_port.port,
                c.priority,
                c.foundation.decode("ascii", "replace"),
                related,
            )
        )
    return out


class IcePort:
    """ICE on one STUN/DTLS port: its candidates, the agent of a session and
    the checks followed by DTLS over the selected pair.  Attach uses the
    node's DTLS port (:class:`IceAttachHandler`); each AppAttach over ICE
    its own port (:mod:`reload.transport.iceappattach`).  ``hostAddress()``
    is the port's advertised address (None before listening);
    ``connectDTLS(host, port, nodeId)`` opens a DTLS link from that port."""

    log = Logger()

    def __init__(
        self,
        stun: StunPort,
        hostAddress: Callable[[], Address | None],
        connectDTLS: Callable[[str, int, bytes], Deferred[Any]],
        *,
        timeout: float = 10.0,
    ) -> None:
        self.stun = stun
        self.hostAddress = hostAddress
        self.connectDTLS = connectDTLS
        self.timeout = timeout
        #: Our server-reflexive address, once a STUN server told us.
        self.reflexive: Address | None = None
        #: Whether this peer is behind a NAT: None until a STUN server answered.
        self.behindNat: bool | None = None
        #: The selected pair's type per Node-ID.
        self.pairTypes: dict[bytes, str] = {}
        #: Seconds from the start of the checks to the selected pair (and,
        #: on the DTLS client side, the link up), per pair type: what
        #: benchmarks/ice.py reports.
        self.setupTimes: dict[str, list[float]] = {}
        #: Node-IDs whose checks failed while this port had no relayed
        #: candidate: worth another Attach once it has one (section 6.5.1.5).
        self.failedWithoutRelay: set[bytes] = set()

    # -- what we know about ourselves -----------------------------------------------

    def learnReflexive(self, mapped: Address) -> None:
        """A STUN server saw this port as ``mapped`` (section 6.5.1.4)."""
        self.reflexive = mapped
        self.behindNat = mapped != self.hostAddress()

    async def discover(self, servers: list[Address]) -> Address | None:
        """Ask the ``servers`` (peers' link ports) in turn for our
        server-reflexive address; the first answer, or None."""
        for server in servers:
            try:
                mapped = await self.stun.query(server)
            except Exception as exc:
                self.log.info("STUN query to {server}: {error}", server=server, error=exc)
                continue
            self.learnReflexive(mapped)
            self.log.info(
                "Server-reflexive address {host}:{port} (from {server}): {nat}",
                host=mapped[0],
                port=mapped[1],
                server=f"{server[0]}:{server[1]}",
                nat="behind a NAT" if self.behindNat else "no NAT",
            )
            return mapped
        return None

    def candidates(self) -> list[IceCandidate]:
        """Section 6.5.1.5: host and server-reflexive candidates of the DTLS port."""
        host = self.hostAddress()
        if host is None:
            return []
        priority = candidatePriority("host")
        out = [
            IceCandidate(
                IpAddressPort.of(*host), ICE, f"h{host[0]}".encode()[:32], priority, CandType.HOST
            )
        ]
        if self.reflexive is not None and self.reflexive != host:
            out.append(
                IceCandidate(
                    IpAddressPort.of(*self.reflexive),
                    ICE,
                    f"s{host[0]}".encode()[:32],
                    candidatePriority("srflx"),
                    CandType.SRFLX,
                    IpAddressPort.of(*host),
                )
            )
        relayed = self.relayed
        if relayed is not None:
            turn = self.stun.turn
            assert turn is not None
            out.append(
                IceCandidate(
                    IpAddressPort.of(*relayed),
                    ICE,
                    f"r{turn.server[0]}".encode()[:32],
                    candidatePriority("relay"),
                    CandType.RELAY,
                    IpAddressPort.of(*(turn.mapped or host)),
                )
            )
        return out

    @property
    def relayed(self) -> Address | None:
        """Our relayed address (RFC 6940 section 6.5.1.5), if allocated."""
        turn = self.stun.turn
        return None if turn is None else turn.relayed

    def agent(self, controlling: bool, mine: Any, theirs: Any) -> IceAgent:
        """The agent of one session: ``mine`` and ``theirs`` are the
        requests and answers (Attach or AppAttach) with our and the other
        side's ICE parameters."""
        return IceAgent(
            controlling=controlling,
            localUfrag=mine.ufrag,
            localPassword=mine.password,
            remoteUfrag=theirs.ufrag,
            remotePassword=theirs.password,
            localPriority=candidatePriority("host"),
            remoteCandidates=iceCandidates(theirs.candidates),
            now=self.stun.clock.seconds(),
            timeout=self.timeout,
            relayPriority=None if self.relayed is None else candidatePriority("relay"),
        )

    async def _permit(self, agent: IceAgent) -> None:
        """RFC 8656 section 10: the TURN server relays from the remote
        candidates' addresses only once permitted; a refusal leaves the
        relayed pairs to fail, the others go on."""
        turn = self.stun.turn
        if turn is None or agent.relayPriority is None:
            return
        try:
            await turn.permit(c.host for c in agent.remoteCandidates)
        except Exception as exc:
            self.log.info("TURN permissions: {error}", error=exc)

    async def runChecks(self, agent: IceAgent, peer: bytes, dtlsClient: bool) -> object:
        """Run ``agent``'s checks with the node ``peer``; then, on the DTLS
        client side, open DTLS to the selected candidate and return the
        link (the server side returns None: the link comes to it).  Fails
        with :class:`~reload.link.stunport.IceFailed` when no pair works."""
        started = self.stun.clock.seconds()
        await self._permit(agent)
        try:
            selected = await self.stun.run(agent)
        except IceFailed:
            if agent.relayPriority is None and len(self.failedWithoutRelay) < MAX_RETRY_LATER:
                self.failedWithoutRelay.add(peer)
            raise
        self.failedWithoutRelay.discard(peer)
        host = self.hostAddress()
        if agent.selectedRelayed:
            local = "relay"
        else:
            local = "host" if agent.selectedMapped in (None, host) else "srflx"
        self.stun.routeThroughRelay(selected.address, agent.selectedRelayed)
        kind = pairType(local, selected.kind)
        self.pairTypes[peer] = kind
        self.log.info(
            "ICE with {peer}: selected {host}:{port} ({kind} pair)",
            peer=peer.hex(),
            host=selected.host,
            port=selected.port,
            kind=kind,
        )
        self.stun.keepAlive(selected.address)
        link: object = None
        if dtlsClient:
            link = await self.connectDTLS(str(ip_address(selected.host)), selected.port, peer)
        times = self.setupTimes.setdefault(kind, [])
        times.append(self.stun.clock.seconds() - started)
        del times[:-100]
        return link


class IceAttachHandler(IcePort):
    """See the module docstring: an :class:`IcePort` on the node's DTLS
    port that answers Attach, and leaves No-ICE to ``noIce``."""

    def __init__(
        self,
        noIce: NoIceAttachHandler,
        stun: StunPort,
        hostAddress: Callable[[], Address | None],
        connectDTLS: Callable[[str, int, bytes], Deferred[Any]],
        *,
        isConnected: Callable[[bytes], bool] = lambda nodeId: False,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(stun, hostAddress, connectDTLS, timeout=timeout)
        #: Whether a link to a Node-ID is up: the requester runs no checks
        #: then (:class:`AttachService` skips ``complete``), so neither
        #: does the answerer.
        self.isConnected = isConnected
        self.noIce = noIce

    # -- AttachHandler ----------------------------------------------------------------

    def offer(self, sendUpdate: bool) -> AttachReq:
        candidates = self.candidates()
        if not self.behindNat:
            candidates += self.noIce.candidates()
        return AttachReq(_secret(4), _secret(12), OFFERER_ROLE, tuple(candidates), sendUpdate)

    def _usesIce(self, request: AttachReq) -> bool:
        if not iceCandidates(request.candidates) or self.hostAddress() is None:
            return False
        return bool(self.behindNat) or not self.noIce._usable(request.candidates)

    def answer(self, requester: bytes, request: AttachReq) -> AttachAns:
        if not self._usesIce(request):
            return self.noIce.answer(requester, request)
        return AttachAns(_secret(4), _secret(12), ANSWERER_ROLE, tuple(self.candidates()), False)

    def answered(
        self, requester: bytes, request: AttachReq, answer: AttachAns
    ) -> Deferred[Any] | None:
        if not iceCandidates(answer.candidates):
            return self.noIce.answered(requester, request, answer)
        if self.isConnected(requester):
            return None
        agent = self.agent(False, answer, request)
        return Deferred.fromCoroutine(self.runChecks(agent, requester, dtlsClient=True))

    def complete(
        self, responder: bytes, request: AttachReq, answer: AttachAns
    ) -> Deferred[Any] | None:
        if not iceCandidates(answer.candidates):
            return self.noIce.complete(responder, request, answer)
        agent = self.agent(True, request, answer)
        return Deferred.fromCoroutine(self.runChecks(agent, responder, dtlsClient=False))
