"""Attach: opening overlay links through the overlay (RFC 6940 section 6.5.1),
No-ICE link types only (section 6.5.1.11).

Two halves:

* :class:`AttachService` is the method: the requesting side sends an
  AttachReq along the overlay (to a Node-ID or a Resource-ID, optionally
  source-routed through a connected peer, section 10.6) and waits for the
  link to the node that answered; the answering side answers with its
  candidates, applies the Error_In_Progress rules of section 6.5.1.2, and,
  when send_update was set, sends the requester an Update once the link is
  up (section 6.4.2.3).
* an :class:`AttachHandler` is how links are made: which candidates this
  node offers, and who connects to whom.  :class:`NoIceAttachHandler` does
  it for the No-ICE link types with a ``connect(host, port, nodeId)``
  function, :meth:`reload.link.listener.LinkListener.connect` in a real
  node.  With No-ICE "the DTLS or TLS handshake ... forms the connectivity
  check", and the certificate "MUST match the node which sent the
  AttachReqAns" (section 6.5.1.11): ``connect`` is given that Node-ID.

Roles: section 6.5.1.1 makes the offerer "passive" and the answerer
"active" (RFC 4145: the active side opens the connection), so by default the
answering node connects to the requester's candidates after sending its
answer, and the requester waits for the link.  ``initiator="offerer"``
turns that round, for requesters that cannot be reached (a client behind a
NAT with a public peer).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from ipaddress import ip_address
from typing import Any, Literal, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.errors import ReloadError
from reload.transport.dispatcher import Dispatcher, Reply, Request
from reload.transport.transport import Transport
from reload.wire.attach import (
    NO_ICE_LINK_TYPES,
    AttachAns,
    AttachReq,
    CandType,
    IceCandidate,
    IpAddressPort,
    OverlayLinkType,
)
from reload.wire.header import Destination
from reload.wire.message import ErrorCode

__all__ = [
    "AttachFailed",
    "AttachHandler",
    "AttachService",
    "NoIceAttachHandler",
    "hostCandidate",
]

#: RFC 4145 roles as section 6.5.1.1 assigns them.
OFFERER_ROLE = b"passive"
ANSWERER_ROLE = b"active"


class AttachFailed(Exception):
    """An Attach that cannot give a link (it came back to this node, or no
    candidate could be used)."""


class AttachHandler(Protocol):
    """This node's side of the Attach offer/answer (section 6.5.1)."""

    def offer(self, sendUpdate: bool) -> AttachReq:
        """The AttachReq to send: this node's candidates, role "passive"."""
        ...

    def answer(self, requester: bytes, request: AttachReq) -> AttachAns:
        """The AttachAns for ``requester`` (role "active"); raise
        :class:`ReloadError` to refuse (section 6.5.1.2: "If the peer is
        overloaded or detects some other kind of error, it MAY generate an
        error")."""
        ...

    def answered(
        self, requester: bytes, request: AttachReq, answer: AttachAns
    ) -> Deferred[Any] | None:
        """The answer is on its way: start connecting, if this side does."""
        ...

    def complete(
        self, responder: bytes, request: AttachReq, answer: AttachAns
    ) -> Deferred[Any] | None:
        """The requester got ``answer``: connect, if this side does."""
        ...


def hostCandidate(
    host: str,
    port: int,
    linkType: int = OverlayLinkType.TLS_TCP_FH_NO_ICE,
    localPreference: int = 65535,
) -> IceCandidate:
    """A host candidate for an address this node listens on.  The priority
    follows RFC 5245 section 4.1.2.1 (type preference 126 for host, component
    1); the foundation names the address and link type."""
    priority = (126 << 24) | (localPreference << 8) | (256 - 1)
    foundation = f"{linkType}{host}".encode()[:32]
    return IceCandidate(IpAddressPort.of(host, port), linkType, foundation, priority, CandType.HOST)


def _token(size: int) -> bytes:
    return os.urandom(size).hex().encode()


class NoIceAttachHandler:
    """Attach over No-ICE link types (section 6.5.1.11).

    ``connect(host, port, nodeId)`` opens a link to the node ``nodeId`` at
    that address and fires once it is up (the transport heard ``linkUp``);
    ``candidates`` are this node's (a sequence, or a function for addresses
    known only once listening).  ``linkTypes`` are the link types
    ``connect`` can make; ``connectors`` instead gives one such function
    per link type, for a node with several (TLS and DTLS links);
    ``initiator`` says who connects (see the module docstring).  With a
    ``clock``, :attr:`setupTimes` keeps the seconds from the start of each
    connection attempt to a new link up, on the connecting side (what
    benchmarks/ice.py reports for NO-ICE).
    """

    log = Logger()

    def __init__(
        self,
        connect: Callable[[str, int, bytes], Deferred[Any]],
        candidates: Sequence[IceCandidate] | Callable[[], Sequence[IceCandidate]],
        *,
        linkTypes: frozenset[int] = frozenset({OverlayLinkType.TLS_TCP_FH_NO_ICE}),
        initiator: Literal["answerer", "offerer"] = "answerer",
        connectors: Mapping[int, Callable[[str, int, bytes], Deferred[Any]]] | None = None,
        clock: Any = None,
    ) -> None:
        self.clock = clock
        #: Setup times of the last 100 links this side connected (seconds).
        self.setupTimes: list[float] = []
        self.connectors = dict(connectors) if connectors else dict.fromkeys(linkTypes, connect)
        if not self.connectors.keys() <= NO_ICE_LINK_TYPES:
            raise ValueError("NoIceAttachHandler makes No-ICE link types only")
        self.connect = connect
        self._candidates = candidates
        self.linkTypes = frozenset(self.connectors)
        self.initiator = initiator

    def candidates(self) -> tuple[IceCandidate, ...]:
        found = self._candidates() if callable(self._candidates) else self._candidates
        return tuple(found)

    def offer(self, sendUpdate: bool) -> AttachReq:
        return AttachReq(_token(4), _token(12), OFFERER_ROLE, self.candidates(), sendUpdate)

    def answer(self, requester: bytes, request: AttachReq) -> AttachAns:
        usable = self._usable(request.candidates)
        if request.candidates and not usable:
            raise ReloadError(
                ErrorCode.INCOMPATIBLE_WITH_OVERLAY,
                "no candidate of a link type this node makes (it offers "
                f"{sorted(int(t) for t in self.linkTypes)}, No-ICE only)",
            )
        if self.initiator == "answerer" and not usable:
            raise ReloadError(ErrorCode.INVALID_MESSAGE, "an AttachReq without candidates")
        return AttachAns(_token(4), _token(12), ANSWERER_ROLE, self.candidates(), False)

    def answered(
        self, requester: bytes, request: AttachReq, answer: AttachAns
    ) -> Deferred[Any] | None:
        if self.initiator != "answerer":
            return None
        return self._connect(requester, request.candidates)

    def complete(
        self, responder: bytes, request: AttachReq, answer: AttachAns
    ) -> Deferred[Any] | None:
        if self.initiator != "offerer":
            return None
        return self._connect(responder, answer.candidates)

    def _usable(self, candidates: Sequence[IceCandidate]) -> list[IceCandidate]:
        usable = [
            c for c in candidates if c.overlay_link in self.linkTypes and c.addr_port.ip is not None
        ]
        usable.sort(key=lambda c: -c.priority)
        return usable

    def _connect(self, nodeId: bytes, candidates: Sequence[IceCandidate]) -> Deferred[Any]:
        usable = self._usable(candidates)
        if not usable:
            return fail(AttachFailed(f"{nodeId.hex()} offered no usable candidate"))
        return Deferred.fromCoroutine(self._tryAll(nodeId, usable))

    async def _tryAll(self, nodeId: bytes, candidates: list[IceCandidate]) -> object:
        errors: list[str] = []
        started = None if self.clock is None else self.clock.seconds()
        for candidate in candidates:
            host = str(ip_address(candidate.addr_port.address))
            port = candidate.addr_port.port
            try:
                connecting = self.connectors[candidate.overlay_link](host, port, nodeId)
                # A link that was up already (fired at once) took no setup.
                fresh = not connecting.called
                link = await connecting
                if started is not None and fresh:
                    self.setupTimes.append(self.clock.seconds() - started)
                    del self.setupTimes[:-100]
                return link
            except Exception as exc:
                errors.append(f"{host}:{port}: {exc}")
                self.log.info(
                    "Attach: cannot connect to {nodeId} at {host}:{port}: {error}",
                    nodeId=nodeId.hex(),
                    host=host,
                    port=port,
                    error=exc,
                )
        raise AttachFailed(f"no candidate of {nodeId.hex()} answered: {'; '.join(errors)}")


class AttachService:
    """The Attach method on a :class:`Transport` (section 6.5.1).

    ``sendUpdate(peer)`` is the topology's, called for an accepted Attach
    with send_update once the link to its requester is up (section
    6.4.2.3: "it MUST send an Update message back to the sender of the
    Attach request after completion of the corresponding ICE check and TLS
    connection").
    """

    log = Logger()

    def __init__(
        self,
        transport: Transport,
        handler: AttachHandler,
        sendUpdate: Callable[[bytes], object] | None = None,
    ) -> None:
        self.transport = transport
        self.handler = handler
        self.sendUpdate = sendUpdate
        #: Attaches this node started and not finished, by destination:
        #: "requested" (no answer yet) or "connecting" (answered).
        self.outgoing: dict[bytes, str] = {}

    @property
    def nodeId(self) -> bytes:
        return self.transport.nodeId

    def register(self, dispatcher: Dispatcher) -> None:
        dispatcher.register(AttachReq.CODE, self.handleAttach)

    # -- requesting ------------------------------------------------------------------

    def attach(
        self, destination: bytes, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[bytes]:
        """Attach to the node responsible for ``destination`` (routed as a
        Resource-ID: the peer whose Node-ID it is when that peer is in the
        overlay or connected, section 6.5.1), through ``via`` first when
        given.  Fires with the Node-ID now connected, after the transport
        (and so the topology) heard ``linkUp`` for it."""
        if destination == self.nodeId:
            return fail(AttachFailed("cannot Attach to this node itself"))
        return Deferred.fromCoroutine(self._attach(destination, via, sendUpdate))

    async def _attach(self, destination: bytes, via: bytes | None, sendUpdate: bool) -> bytes:
        offer = self.handler.offer(sendUpdate)
        route: list[Destination] = []
        if via is not None and via != destination:
            route.append(Destination.node(via))
        route.append(Destination.resource(destination))
        mine = destination not in self.outgoing
        if mine:
            self.outgoing[destination] = "requested"
        try:
            try:
                response = await self.transport.request(route, AttachReq.CODE, offer.encode())
            except ReloadError as error:
                peer = error.nodeId
                if peer == self.nodeId and error.code == ErrorCode.NOT_FOUND:
                    raise AttachFailed(
                        f"the Attach for {destination.hex()} came back to this node"
                    ) from None
                if error.code == ErrorCode.IN_PROGRESS and peer is not None and peer != self.nodeId:
                    # Section 6.5.1.2: the other side is completing an
                    # Attach of its own to this node; its link will do.
                    await self.transport.whenLinkUp(peer)
                    return peer
                raise
            responder = response.nodeId
            if responder == self.nodeId:
                raise AttachFailed("the Attach came back to this node")
            answer = AttachAns.decode(response.body)
            if not self.transport.isConnected(responder):
                if mine:
                    self.outgoing[destination] = "connecting"
                connecting = self.handler.complete(responder, offer, answer)
                if connecting is not None:
                    await connecting
                await self.transport.whenLinkUp(responder)
            return responder
        finally:
            if mine:
                self.outgoing.pop(destination, None)

    # -- answering -------------------------------------------------------------------

    def handleAttach(self, request: Request) -> Reply:
        """Section 6.5.1.2 for an AttachReq addressed to this node."""
        body = request.body
        assert isinstance(body, AttachReq)
        requester = request.source
        if requester == self.nodeId:
            # Routed back here: this node is responsible for the destination.
            raise ReloadError(ErrorCode.NOT_FOUND, "the Attach reached the node that sent it")
        state = self.outgoing.get(requester)
        if state == "connecting":
            raise ReloadError(
                ErrorCode.IN_PROGRESS, "this node's own Attach to the requester is connecting"
            )
        if state == "requested" and self.nodeId > requester:
            # "If the peer's own Node-ID is larger ... it MUST generate an
            # Error_In_Progress error to this Attach request".
            raise ReloadError(
                ErrorCode.IN_PROGRESS, "Attaches crossed; the larger Node-ID's goes on"
            )
        answer = self.handler.answer(requester, body)

        def afterSent() -> None:
            connecting = self.handler.answered(requester, body, answer)
            if connecting is not None:
                connecting.addErrback(self._failed, "connecting to", requester)
            if body.send_update:
                self.transport.whenLinkUp(requester).addCallback(
                    lambda _: self._update(requester)
                ).addErrback(self._failed, "sending the Update to", requester)

        return Reply(AttachAns.CODE, answer.encode(), afterSent)

    def _update(self, peer: bytes) -> object:
        if self.sendUpdate is None:
            return None
        return self.sendUpdate(peer)

    def _failed(self, failure: Failure, what: str, peer: bytes) -> None:
        self.log.info(
            "Attach: {what} {peer} failed: {error}",
            what=what,
            peer=peer.hex(),
            error=failure.getErrorMessage(),
        )
