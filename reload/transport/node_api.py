"""The routing half of :class:`reload.interfaces.INode`, on the transport.

:class:`TransportNode` builds a node's message layer (a
:class:`~reload.transport.transport.Transport` with its
:class:`~reload.transport.dispatcher.Dispatcher`, Ping and Probe answered
here, Attach through an :class:`~reload.transport.attach.AttachService`) and
offers what topologies use of :class:`~reload.interfaces.INode`: ``nodeId``,
``overlayName``, ``configuration``, ``clock``, ``reactor``, ``resourceId``,
``request`` and ``attach``.  The storage methods (``store``, ``fetch``,
``stat``, ``find``, ``localData``), ``kind``, ``appAttach`` and
``listenApplication`` are not here: the node that owns storage and the
usages completes INode around this object.

Wiring a topology (the topology is built from the node, and the transport
routes with the topology)::

    node = TransportNode(nodeId, security, clock, configuration=config,
                         attachHandler=handler)
    node.useTopology(plugin.makeTopology(node))
    # the link layer's handler is node.transport
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger

from reload.errors import ReloadError
from reload.transport.attach import AttachHandler, AttachService
from reload.transport.dispatcher import (
    Dispatcher,
    ExtensionHandler,
    TopologyHandlers,
    pingHandler,
    probeHandler,
)
from reload.transport.routing import wildcard
from reload.transport.security import MessageSecurity
from reload.transport.transactions import Clock
from reload.transport.transport import Response, Transport, TransportSettings
from reload.wire.header import Destination
from reload.wire.message import ErrorCode, MessageExtension
from reload.wire.methods import (
    PingAns,
    PingReq,
    ProbeAns,
    ProbeInformationType,
    ProbeReq,
    RouteQueryAns,
    RouteQueryReq,
)

__all__ = ["NodeTopology", "TransportNode"]

log = Logger()


class NodeTopology(Protocol):
    """What the node uses of :class:`reload.interfaces.ITopology`."""

    def nextHop(self, destination: bytes) -> bytes | None: ...

    def linkUp(self, nodeId: bytes) -> None: ...

    def linkDown(self, nodeId: bytes) -> None: ...

    def hashResource(self, name: bytes) -> bytes: ...

    def handleJoin(self, joiningPeer: bytes, data: bytes) -> bytes: ...

    def handleUpdate(self, sender: bytes, data: bytes) -> bytes: ...

    def handleLeave(self, leavingPeer: bytes, data: bytes) -> None: ...

    def handleRouteQuery(
        self, destination: bytes, sendUpdate: bool, data: bytes, requester: bytes | None = None
    ) -> bytes: ...

    def sendUpdate(self, peer: bytes) -> Deferred[None]: ...

    def answeredFor(self, resourceId: bytes, nodeId: bytes) -> None: ...

    def routeQueryAnswer(self, data: bytes) -> dict[str, Any]: ...


class TransportNode:
    """A node's Node-ID, settings and message layer, and the routing part
    of INode on top of them.

    ``security`` signs and verifies (section 6.3.4), ``clock`` runs every
    timer, ``configuration`` is the overlay configuration (an
    :class:`reload.config.OverlayConfiguration`; ``settings`` are derived
    from it unless given).  Without an ``attachHandler`` this node answers
    Attach with an Error and cannot attach.  ``probeProviders`` add or
    replace Probe values (section 6.4.2.5) by ProbeInformationType; uptime
    is built in.
    """

    def __init__(
        self,
        nodeId: bytes,
        security: MessageSecurity,
        clock: Clock,
        *,
        configuration: Any = None,
        settings: TransportSettings | None = None,
        attachHandler: AttachHandler | None = None,
        reactor: Any = None,
        rng: random.Random | None = None,
        probeProviders: Mapping[int, Callable[[], int]] | None = None,
    ) -> None:
        if settings is None:
            settings = (
                TransportSettings.fromConfiguration(configuration)
                if configuration is not None
                else TransportSettings()
            )
        self.nodeId = nodeId
        self.configuration = configuration
        self.settings = settings
        self.overlayName = settings.overlayName
        self.clock = clock
        self.reactor = reactor if reactor is not None else clock
        self.startedAt = clock.seconds()
        self.dispatcher = Dispatcher(settings.nodeIdLength)
        self.transport = Transport(nodeId, security, clock, settings, self.dispatcher, rng)
        self.topology: NodeTopology | None = None
        self.probeProviders: dict[int, Callable[[], int]] = {
            ProbeInformationType.UPTIME: self.uptime,
        }
        if probeProviders:
            self.probeProviders.update(probeProviders)
        self.dispatcher.register(PingReq.CODE, pingHandler(clock, rng))
        self.dispatcher.register(ProbeReq.CODE, probeHandler(self.probeProviders))
        self.extensionHandler: ExtensionHandler | None = None
        self.attachService: AttachService | None = None
        if attachHandler is not None:
            self.attachService = AttachService(self.transport, attachHandler, self._sendUpdate)
            self.attachService.register(self.dispatcher)

    def uptime(self) -> int:
        """Seconds since this node started (Probe's uptime)."""
        return int(self.clock.seconds() - self.startedAt)

    def useTopology(self, topology: NodeTopology) -> None:
        """Route with ``topology`` and pass it Join, Leave, Update and
        RouteQuery (section 6.4.2); one that defines message extensions
        (:class:`reload.interfaces.ITopologyExtensions`: it has
        ``extensionTypes``) sees those of requests and answers."""
        self.topology = topology
        TopologyHandlers(topology).register(self.dispatcher)
        self.transport.setTopology(topology)
        if getattr(topology, "extensionTypes", None) is not None:
            self.extensionHandler = cast(ExtensionHandler, topology)
            self.dispatcher.useExtensions(self.extensionHandler)

    def _sendUpdate(self, peer: bytes) -> object:
        if self.topology is None:
            return None
        return self.topology.sendUpdate(peer)

    # -- INode ------------------------------------------------------------------------

    def resourceId(self, name: bytes) -> bytes:
        """The topology's hash of a resource name (section 10.2 for Chord)."""
        if self.topology is None:
            raise RuntimeError("no topology: resource names cannot be hashed yet")
        return self.topology.hashResource(name)

    def request(
        self,
        destination: bytes,
        messageCode: int,
        body: bytes,
        extensions: Sequence[MessageExtension] = (),
        *,
        resource: bool = False,
        maxResponseLength: int = 0,
        ttl: int | None = None,
    ) -> Deferred[tuple[int, bytes]]:
        """INode.request: send a request to the Node-ID ``destination`` (a
        Resource-ID with ``resource``), carrying ``extensions`` (section
        6.3.3), and fire with the answer's ``(messageCode, body)``; fails
        with :class:`ReloadError` or a TimeoutError.  The answer's
        extensions of the topology's types go to the topology first."""
        target = Destination.resource(destination) if resource else Destination.node(destination)
        d = self.transport.request(
            [target],
            messageCode,
            body,
            maxResponseLength=maxResponseLength,
            ttl=ttl,
            extensions=extensions,
        )
        return d.addCallback(self._answered)

    def _answered(self, response: Response) -> tuple[int, bytes]:
        handler = self.extensionHandler
        carried = response.message.contents.extensions
        if handler is not None and carried:
            types = handler.extensionTypes
            theirs = [e for e in carried if e.type in types]
            if theirs:
                try:
                    handler.answerExtensions(response.signer.nodeId, response.code, theirs)
                except Exception:
                    log.failure("the topology failed on the extensions of an answer")
        return response.code, response.body

    def requestTo(
        self,
        destinations: Sequence[Destination],
        messageCode: int,
        body: bytes,
        **options: Any,
    ) -> Deferred[Response]:
        """A request along an explicit destination list (source routing,
        section 6.2.1), with the verified :class:`Response`."""
        return self.transport.request(destinations, messageCode, body, **options)

    def attach(
        self, destination: bytes, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[bytes]:
        """INode.attach (section 6.5.1); see :meth:`AttachService.attach`."""
        if self.attachService is None:
            return fail(
                ReloadError(ErrorCode.FORBIDDEN, "this node has no attach handler", self.nodeId)
            )
        return self.attachService.attach(destination, via, sendUpdate)

    # -- the base methods, for callers that want their structures ---------------------

    def _target(self, destination: bytes, resource: bool) -> Destination:
        return Destination.resource(destination) if resource else Destination.node(destination)

    def ping(
        self,
        destination: bytes,
        *,
        resource: bool = False,
        padding: bytes = b"",
        firstHop: bytes | None = None,
    ) -> Deferred[Response]:
        """Ping (section 6.5.3) a Node-ID, a Resource-ID, or the wildcard
        Node-ID through the connected ``firstHop``."""
        d = self.transport.request(
            [self._target(destination, resource)],
            PingReq.CODE,
            PingReq(padding).encode(),
            firstHop=firstHop,
        )
        return d.addCallback(_checked, PingAns)

    def pingNeighbour(self, nodeId: bytes) -> Deferred[Response]:
        """Ping the wildcard Node-ID over the link to ``nodeId``."""
        return self.ping(wildcard(self.settings.nodeIdLength), firstHop=nodeId)

    def probe(
        self, destination: bytes, requested: Sequence[int], *, resource: bool = False
    ) -> Deferred[ProbeAns]:
        """Probe (section 6.4.2.5); fires with the ProbeAns."""
        d = self.transport.request(
            [self._target(destination, resource)],
            ProbeReq.CODE,
            ProbeReq(tuple(requested)).encode(),
        )
        return d.addCallback(lambda r: ProbeAns.decode(r.body))

    def routeQuery(
        self,
        peer: bytes,
        destination: Destination,
        *,
        sendUpdate: bool = False,
        data: bytes = b"",
    ) -> Deferred[Response]:
        """RouteQuery (section 6.4.2.4) to the Node-ID ``peer`` about
        ``destination``; the answer's body is the topology's."""
        d = self.transport.request(
            [Destination.node(peer)],
            RouteQueryReq.CODE,
            RouteQueryReq(sendUpdate, destination, data).encode(),
        )
        return d.addCallback(_checked, RouteQueryAns)

    def stop(self) -> None:
        """Fail what is pending and answer nothing more."""
        self.transport.stop()


def _checked(response: Response, cls: Any) -> Response:
    """Decode the body as ``cls`` to refuse a malformed answer."""
    cls.decode(response.body)
    return response
