"""The message layer of a node: the :class:`~reload.link.interfaces.ILinkHandler`
above the links (RFC 6940 sections 6.1 to 6.3).

:class:`Transport` receives every message from every link and, with the
:class:`~reload.transport.routing.Router`'s decision:

* forwards it (section 6.1.2): the previous hop is appended to the via list,
  leading destination entries naming this node are removed, the TTL is
  decremented, the body is never decoded (the
  :class:`~reload.wire.header.HeaderView` fast path);
* delivers it here (section 6.1.1): fragments are reassembled (section 6.7),
  the message decoded and its signature verified (section 6.3.4, through a
  :class:`~reload.transport.security.MessageSecurity`; a message that fails
  is dropped).  A request is checked against this node's configuration
  sequence (section 6.3.2.1), answered once per transaction within the
  request lifetime (section 6.2.1: retransmissions get the same answer) and
  passed to the :class:`~reload.transport.dispatcher.Dispatcher`; an answer
  goes to the :class:`~reload.transport.transactions.TransactionTable`;
* answers a request it cannot route with the Error the router chose.

Answers are built by section 6.2.2 (destination list = the previous hop and
the reversed via list), signed, held to the request's max_response_length
and to max-message-size (Error_Response_Too_Large otherwise, section
6.3.3.1), and copy the request's RESPONSE_COPY forwarding options (section
6.3.2.3).

Requests originate in :meth:`Transport.request` (section 6.2.1): one
destination list, signed once, sent to the first entry when it is connected,
else to the topology's next hop, and retransmitted end to end until
answered.  Section 6.3.4's checks on answers: an answer to a request sent to
a Node-ID must be signed by that Node-ID; an Error is accepted from whoever
on the path signed it (a peer on the way may answer Error_TTL_Exceeded).

Nothing raised while handling what a link delivered escapes to the link:
bad bytes are answered or dropped and logged, and every other link goes on.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from reload.config.sequence import ANY_SEQUENCE, compareSequence
from reload.errors import LinkTimeout, ReloadError
from reload.link.errors import LinkBusy, LinkClosed
from reload.link.interfaces import ILink, ILinkHandler
from reload.link.logs import RefusalLog
from reload.transport.dispatcher import Dispatcher, Reply, Request, errorReply
from reload.transport.routing import (
    Decision,
    Deliver,
    Drop,
    Forward,
    Reject,
    Router,
    forwardingOptions,
    isRequestView,
    isWildcard,
    responseDestinations,
)
from reload.transport.security import UNSIGNED, MessageSecurity, Signer, TrustedSigner
from reload.transport.trace import MessageObserver, traceMessage
from reload.transport.transactions import (
    DEFAULT_RELIABILITY_TIMER,
    DEFAULT_TRANSMISSIONS,
    MAX_REQUEST_LIFETIME,
    Clock,
    DelayedCall,
    TransactionTable,
)
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.fragment import UNFRAGMENTED, Reassembler
from reload.wire.header import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_TTL,
    Destination,
    DestinationType,
    ForwardingFlags,
    ForwardingHeader,
    ForwardingOption,
    HeaderView,
    overlay_hash,
)
from reload.wire.message import (
    ErrorCode,
    ErrorResponse,
    Message,
    MessageCode,
    MessageContents,
    MessageExtension,
    UnknownCriticalExtension,
)
from reload.wire.security_block import CertificateType, GenericCertificate, SecurityBlock
from reload.wire.storage import DEFAULT_NODE_ID_LENGTH

__all__ = ["Response", "Transport", "TransportSettings"]

#: Requests remembered for answering retransmissions (section 6.2.1).
MAX_RECENT_REQUESTS = 10000
_RESPONSE_COPY_CLEARED = ~(
    ForwardingFlags.RESPONSE_COPY
    | ForwardingFlags.FORWARD_CRITICAL
    | ForwardingFlags.DESTINATION_CRITICAL
)


@dataclass(frozen=True, slots=True)
class TransportSettings:
    """The overlay parameters the transport follows (section 11.1)."""

    overlayName: str = "reload.local"
    #: This node's configuration sequence number (section 6.3.2.1).
    configurationSequence: int = 0
    #: initial-ttl: the TTL of originated messages and the most accepted.
    initialTtl: int = DEFAULT_TTL
    #: max-message-size.
    maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE
    #: overlay-reliability-timer, in seconds (section 6.2.1).
    reliabilityTimer: float = DEFAULT_RELIABILITY_TIMER
    #: Messages sent per request before it fails (section 6.2.1: 5).
    transmissions: int = DEFAULT_TRANSMISSIONS
    nodeIdLength: int = DEFAULT_NODE_ID_LENGTH
    #: How long a request's answer is kept for its retransmissions.
    requestLifetime: float = MAX_REQUEST_LIFETIME
    #: How long to wait for a link to come up after an Attach.
    linkTimeout: float = MAX_REQUEST_LIFETIME

    @property
    def overlay(self) -> int:
        """The forwarding header's overlay field (section 6.3.2)."""
        return overlay_hash(self.overlayName)

    @classmethod
    def fromConfiguration(cls, configuration: Any, **overrides: Any) -> TransportSettings:
        """The settings of an :class:`reload.config.OverlayConfiguration`."""
        values: dict[str, Any] = {
            "overlayName": configuration.instanceName,
            "configurationSequence": configuration.sequence,
            "initialTtl": configuration.initialTtl,
            "maxMessageSize": configuration.maxMessageSize,
            "reliabilityTimer": configuration.effectiveOverlayReliabilityTimer / 1000.0,
            "nodeIdLength": configuration.nodeIdLength,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Response:
    """A verified answer to a request this node sent."""

    code: int
    body: bytes
    signer: Signer
    message: Message = field(repr=False)

    @property
    def nodeId(self) -> bytes:
        """The Node-ID that answered."""
        return self.signer.nodeId


@dataclass(frozen=True, slots=True)
class _Pending:
    """What an answer is checked against."""

    code: int
    #: Section 6.3.4 rule 1: the Node-ID that must sign a successful answer.
    expectedSigner: bytes | None
    #: The Resource-ID a Store, Fetch, Stat or Find went to, whose answer
    #: comes from the peer responsible for it (section 7).
    resource: bytes | None = None


#: Requests that the peer responsible for their Resource-ID answers.
_ANSWERED_BY_RESPONSIBLE = frozenset(
    (MessageCode.STORE_REQ, MessageCode.FETCH_REQ, MessageCode.STAT_REQ, MessageCode.FIND_REQ)
)


@dataclass(slots=True)
class _Recent:
    """A request being answered or answered within the request lifetime."""

    expires: float
    answer: Message | None = None


class _Topology(Protocol):
    """The routing part of :class:`reload.interfaces.ITopology`."""

    def nextHop(self, destination: bytes) -> bytes | None: ...

    def linkUp(self, nodeId: bytes) -> None: ...

    def linkDown(self, nodeId: bytes) -> None: ...

    def answeredFor(self, resourceId: bytes, nodeId: bytes) -> None: ...


@implementer(ILinkHandler)
class Transport:
    """Forwarding, local delivery and request origination for one node.

    ``nodeId`` is this node's Node-ID, ``security`` signs and verifies,
    ``clock`` runs every timer.  The topology (for ``nextHop``, ``linkUp``
    and ``linkDown``) is set with :meth:`setTopology` once it exists, as it
    is usually built from the node this transport serves.  ``dispatcher``
    answers requests for this node (a bare one answers every method with
    Error_Invalid_Message).
    """

    log = Logger()

    def __init__(
        self,
        nodeId: bytes,
        security: MessageSecurity,
        clock: Clock,
        settings: TransportSettings | None = None,
        dispatcher: Dispatcher | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.nodeId = nodeId
        self.security = security
        self.clock = clock
        self.settings = settings if settings is not None else TransportSettings()
        self.dispatcher = (
            dispatcher if dispatcher is not None else Dispatcher(self.settings.nodeIdLength)
        )
        self.topology: _Topology | None = None
        self.transactions: TransactionTable[Response] = TransactionTable(
            clock, self.settings.reliabilityTimer, self.settings.transmissions, rng
        )
        self.router = Router(
            nodeId,
            self.settings.overlay,
            nextHop=self._nextHop,
            isConnected=self.isConnected,
            initialTtl=self.settings.initialTtl,
        )
        self.reassembler = Reassembler(self.settings.maxMessageSize)
        #: Counters of what happened, for status pages and tests.
        self.counters: Counter[str] = Counter()
        #: Called with the requester's Node-ID when a request carried an
        #: older configuration sequence: section 6.3.2.1 says the node "MUST
        #: generate a ConfigUpdate message to update the requesting node".
        self.onConfigurationTooOld: Callable[[bytes], object] | None = None
        #: Log every message sent, received and forwarded (--trace-messages).
        self.trace = False
        #: Told of every message and own request (the admin API's metrics).
        self.observer: MessageObserver | None = None
        #: Lines about what others sent that was refused or dropped, rate-
        #: limited per reason and sender (reload.link.logs).
        self.refusals = RefusalLog(self.log, clock)
        #: Malformed messages a link may deliver in ``malformedInterval``
        #: seconds; one more closes that link (the peer set these from
        #: LinkSettings).
        self.maxMalformed = 10
        self.malformedInterval = 10.0
        self._malformed: dict[bytes, tuple[float, int]] = {}
        self._self = TrustedSigner(nodeId)
        self._links: dict[bytes, Any] = {}
        self._linkNodeIds: dict[int, tuple[bytes, Any]] = {}
        self._hops: dict[bytes, bytes] = {}
        self._linkWaiters: dict[bytes, list[Deferred[None]]] = {}
        self._recent: OrderedDict[tuple[bytes, int], _Recent] = OrderedDict()
        self._stopped = False

    # -- wiring --------------------------------------------------------------------

    def setTopology(self, topology: _Topology) -> None:
        """Route with ``topology`` and tell it of the links up now and later."""
        self.topology = topology
        for nodeId in list(self._links):
            self._topologyCall("linkUp", nodeId)

    def _nextHop(self, destination: bytes) -> bytes | None:
        topology = self.topology
        return None if topology is None else topology.nextHop(destination)

    def _topologyCall(self, name: str, nodeId: bytes) -> None:
        if self.topology is None:
            return
        try:
            getattr(self.topology, name)(nodeId)
        except Exception:
            self.log.failure("topology.{name}({nodeId}) failed", name=name, nodeId=nodeId.hex())

    # -- links (ILinkHandler) -----------------------------------------------------

    def isConnected(self, nodeId: bytes) -> bool:
        return nodeId in self._links

    @property
    def connected(self) -> frozenset[bytes]:
        """Node-IDs with a link up."""
        return frozenset(self._links)

    def linkFor(self, nodeId: bytes) -> ILink | None:
        link: ILink | None = self._links.get(nodeId)
        return link

    def linkUp(self, link: ILink) -> None:
        try:
            nodeId: bytes = link.peer.nodeId
        except Exception:
            self.log.failure("a link without a verified Node-ID: closing it")
            link.close()
            return
        if self._stopped:
            link.close()
            return
        old = self._links.get(nodeId)
        if old is link:
            return
        self._links[nodeId] = link
        self._linkNodeIds[id(link)] = (nodeId, link)
        self._hops.setdefault(nodeId, Destination.node(nodeId).encode())
        # A replacement (the link layer keeps one link per Node-ID) leaves
        # the node connected and the topology untold; what still arrives on
        # the old link is handled until it closes.
        if old is None:
            self.counters["linksUp"] += 1
            self._topologyCall("linkUp", nodeId)
        for waiter in self._linkWaiters.pop(nodeId, []):
            waiter.callback(None)

    def linkClosed(self, link: ILink, reason: str) -> None:
        entry = self._linkNodeIds.pop(id(link), None)
        if entry is None or entry[1] is not link:
            return
        nodeId = entry[0]
        self._malformed.pop(nodeId, None)
        if self._links.get(nodeId) is link:
            del self._links[nodeId]
            self._hops.pop(nodeId, None)
            self.counters["linksDown"] += 1
            self.log.debug("link to {nodeId} closed: {reason}", nodeId=nodeId.hex(), reason=reason)
            self._topologyCall("linkDown", nodeId)

    def whenLinkUp(self, nodeId: bytes, timeout: float | None = None) -> Deferred[None]:
        """Fires when a link to ``nodeId`` is up (at once if it is);
        fails with :class:`LinkTimeout` after ``timeout`` seconds
        (default: the settings' ``linkTimeout``)."""
        if nodeId in self._links:
            return succeed(None)
        seconds = self.settings.linkTimeout if timeout is None else timeout
        timer: list[DelayedCall] = []

        def cancel(d: Deferred[None]) -> None:
            forget(d)

        def forget(d: Deferred[None]) -> None:
            waiters = self._linkWaiters.get(nodeId)
            if waiters is not None and d in waiters:
                waiters.remove(d)
                if not waiters:
                    del self._linkWaiters[nodeId]
            if timer and timer[0].active():
                timer[0].cancel()

        d: Deferred[None] = Deferred(cancel)

        def expired() -> None:
            forget(d)
            d.errback(LinkTimeout(nodeId, seconds))

        timer.append(self.clock.callLater(seconds, expired))
        self._linkWaiters.setdefault(nodeId, []).append(d)

        def done(result: object) -> object:
            if timer[0].active():
                timer[0].cancel()
            return result

        return d.addBoth(done)

    def messageReceived(self, link: ILink, message: bytes) -> None:
        try:
            self._received(link, message)
        except Exception:
            self.counters["internalErrors"] += 1
            self.log.failure("handling a message from {link!r} failed", link=link)

    # -- receiving ---------------------------------------------------------------------

    def _received(self, link: ILink, data: bytes) -> None:
        entry = self._linkNodeIds.get(id(link))
        if entry is None or entry[1] is not link:
            self.counters["dropped"] += 1
            self.refusals.warn(
                "message on a link not up", "?", "a message on a link that is not up: dropped"
            )
            return
        previousHop = entry[0]
        self.counters["received"] += 1
        if type(data) is not bytes:
            data = bytes(data)
        if self.trace:
            traceMessage("received", data, link, previousHop)
        if self.observer is not None:
            self.observer.message("received", data)
        try:
            view = HeaderView(data, self.settings.maxMessageSize)
        except DecodeError as exc:
            self._malformedHeader(data, previousHop, exc)
            return
        self._act(self.router.route(view, previousHop), view, previousHop)

    def _act(self, decision: Decision, view: HeaderView, previousHop: bytes) -> None:
        if isinstance(decision, Forward):
            self._forward(view, decision, previousHop)
        elif isinstance(decision, Deliver):
            self._deliver(view, previousHop)
        elif isinstance(decision, Reject):
            self._reject(view, previousHop, decision.errorCode, decision.reason)
        else:
            self._drop(view, decision.reason)

    def _drop(self, view: HeaderView, reason: str) -> None:
        self.counters["dropped"] += 1
        self.refusals.info(
            "dropped",
            "-",
            "dropped transaction {transactionId:#018x}: {why}",
            transactionId=view.transaction_id,
            why=reason,
        )

    def _malformedHeader(self, data: bytes, previousHop: bytes, exc: DecodeError) -> None:
        """Section 6.1: a message whose header is wrong "MUST be discarded";
        an error is sent when there is a header to answer: a request above
        max-message-size gets Error_Message_Too_Large (section 6.6)."""
        self.counters["malformed"] += 1
        if len(data) > self.settings.maxMessageSize:
            try:
                view = HeaderView(data, len(data))
            except DecodeError:
                pass
            else:
                self._reject(
                    view,
                    previousHop,
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"{len(data)} bytes exceed max-message-size {self.settings.maxMessageSize}",
                )
                return
        self.refusals.warn(
            "malformed message",
            previousHop.hex(),
            "discarded a malformed message from {source}: {error}",
            error=str(exc),
        )
        self._noteMalformed(previousHop)

    def _noteMalformed(self, previousHop: bytes) -> None:
        """Count a malformed message against the link it came on; more
        than ``maxMalformed`` in ``malformedInterval`` seconds close it
        (the peer goes on serving everyone else, DESIGN.md)."""
        now = self.clock.seconds()
        start, count = self._malformed.get(previousHop, (now, 0))
        if now - start >= self.malformedInterval:
            start, count = now, 0
        count += 1
        self._malformed[previousHop] = (start, count)
        if count <= self.maxMalformed:
            return
        link = self._links.get(previousHop)
        self._malformed.pop(previousHop, None)
        if link is None:
            return
        self.counters["linksClosedMalformed"] += 1
        self.refusals.warn(
            "closing link: malformed messages",
            previousHop.hex(),
            "closing the link to {source}: more than {limit} malformed messages in {interval:g} s",
            limit=self.maxMalformed,
            interval=self.malformedInterval,
        )
        link.close()

    def _forward(self, view: HeaderView, decision: Forward, previousHop: bytes) -> None:
        link = self._links.get(decision.nextHop)
        if link is None:
            self._drop(view, f"no link to the next hop {decision.nextHop.hex()}")
            return
        try:
            hop = self._hops.get(previousHop) or Destination.node(previousHop).encode()
            data = self.router.forwarded(view, decision, hop)
        except EncodeError as exc:
            self._reject(view, previousHop, ErrorCode.INVALID_MESSAGE, str(exc))
            return
        if self._send(link, data, "forwarded"):
            self.counters["forwarded"] += 1

    def _send(self, link: Any, data: bytes, direction: str = "sent") -> bool:
        if self.trace:
            entry = self._linkNodeIds.get(id(link))
            traceMessage(direction, data, link, entry[0] if entry else None)
        if self.observer is not None:
            self.observer.message(direction, data)
        try:
            link.send(data)
        except (LinkClosed, LinkBusy) as exc:
            self.counters["sendFailed"] += 1
            self.log.info("cannot send on {link!r}: {error}", link=link, error=repr(exc))
            return False
        except Exception:
            self.counters["sendFailed"] += 1
            self.log.failure("sending on {link!r} failed", link=link)
            return False
        self.counters["sent"] += 1
        return True

    def _deliver(self, view: HeaderView, previousHop: bytes) -> None:
        data = view.data
        if view.fragment != UNFRAGMENTED:
            try:
                whole = self.reassembler.feed(data, self.clock.seconds())
            except DecodeError as exc:
                self.counters["malformed"] += 1
                self.refusals.warn(
                    "bad fragments",
                    previousHop.hex(),
                    "dropped fragments from {source}: {error}",
                    error=str(exc),
                )
                self._noteMalformed(previousHop)
                return
            if whole is None:
                return
            data = whole
            try:
                view = HeaderView(data, self.settings.maxMessageSize)
            except DecodeError as exc:
                self._malformedHeader(data, previousHop, exc)
                return
        try:
            message = Message.decode(data, self.settings.maxMessageSize, view)
        except DecodeError as exc:
            self.counters["malformed"] += 1
            self.refusals.warn(
                "malformed message",
                previousHop.hex(),
                "malformed message from {source}: {error}",
                error=str(exc),
            )
            self._reject(view, previousHop, ErrorCode.INVALID_MESSAGE, str(exc))
            self._noteMalformed(previousHop)
            return
        try:
            signer = self.security.verify(message, previousHop)
        except Exception as exc:
            # Section 6.3.4: "SHOULD simply drop the message and MUST NOT
            # process it".
            self.counters["badSignature"] += 1
            self.refusals.warn(
                "signature rejected",
                previousHop.hex(),
                "dropped a message from {source} whose signature was rejected: {error}",
                error=str(exc),
            )
            return
        self.counters["delivered"] += 1
        if message.contents.is_request:
            self._handleRequest(message, signer, previousHop)
        else:
            self._handleAnswer(message, signer)

    # -- requests for this node ----------------------------------------------------------

    def _handleRequest(self, message: Message, signer: Signer, previousHop: bytes | None) -> None:
        now = self.clock.seconds()
        recent = self._recent
        while recent:
            key, first = next(iter(recent.items()))
            if first.expires > now and len(recent) < MAX_RECENT_REQUESTS:
                break
            del recent[key]
        key = (signer.nodeId, message.header.transaction_id)
        seen = recent.get(key)
        if seen is not None:
            # Section 6.2.1: a retransmission gets the same answer.
            self.counters["duplicateRequests"] += 1
            if seen.answer is not None:
                self._resend(seen.answer, message, previousHop)
            return
        recent[key] = entry = _Recent(now + self.settings.requestLifetime)
        refused = self._checkConfiguration(message, signer)
        if refused is not None:
            self._answer(refused, message, previousHop, entry)
            return
        request = Request(message, signer, previousHop)
        answering = self.dispatcher.answer(request)
        if isinstance(answering, Deferred):
            answering.addCallback(self._logRefusal, message, signer)
            answering.addCallback(self._answer, message, previousHop, entry)
            answering.addErrback(lambda f: self.log.failure("answering a request failed", f))
            return
        # Answered at once (a Fetch, a Ping...): no Deferred in between.
        try:
            self._answer(self._logRefusal(answering, message, signer), message, previousHop, entry)
        except Exception:
            self.log.failure("answering a request failed")

    def _logRefusal(self, reply: Reply, message: Message, signer: Signer) -> Reply:
        """A request this node answers with an Error (a Store refused as
        Forbidden, Unknown Kind, Data_Too_Large...; section 6.3.3.1) gets a
        log line, rate-limited per error code and signer."""
        if reply.isError:
            try:
                error = ErrorResponse.decode(reply.body)
                code, info = error.error_code, error.error_info.decode(errors="replace")
            except DecodeError:
                code, info = -1, "?"
            try:
                name = ErrorCode(code).name
            except ValueError:
                name = str(code)
            self.refusals.info(
                f"refused {name}",
                signer.nodeId.hex(),
                "refused a request {method:#06x} from {source}: {code} {info}",
                method=message.contents.message_code,
                code=name,
                info=info[:200],
            )
        return reply

    def _checkConfiguration(self, message: Message, signer: Signer) -> Reply | None:
        """Section 6.3.2.1: a request's configuration_sequence must equal
        this node's, except 65535 on a ConfigUpdate."""
        theirs = message.header.configuration_sequence
        ours = self.settings.configurationSequence
        if theirs == ours:
            return None
        if theirs == ANY_SEQUENCE:
            if message.contents.message_code == MessageCode.CONFIG_UPDATE_REQ:
                return None
            return errorReply(
                ErrorCode.INVALID_MESSAGE,
                "configuration sequence 65535 is only for ConfigUpdate (section 6.3.2.1)",
            )
        if compareSequence(theirs, ours) < 0:
            if self.onConfigurationTooOld is not None:
                try:
                    self.onConfigurationTooOld(signer.nodeId)
                except Exception:
                    self.log.failure("onConfigurationTooOld failed")
            return errorReply(
                ErrorCode.CONFIG_TOO_OLD, f"configuration sequence {theirs}, this node has {ours}"
            )
        return errorReply(
            ErrorCode.CONFIG_TOO_NEW, f"configuration sequence {theirs}, this node has {ours}"
        )

    def _answerHeader(
        self,
        request: ForwardingHeader,
        options: Sequence[ForwardingOption],
        previousHop: bytes | None,
    ) -> ForwardingHeader:
        return ForwardingHeader(
            overlay=request.overlay,
            transaction_id=request.transaction_id,
            destination_list=responseDestinations(request.via_list, previousHop),
            options=tuple(
                ForwardingOption(o.type, o.flags & _RESPONSE_COPY_CLEARED, o.value)
                for o in options
                if o.flags & ForwardingFlags.RESPONSE_COPY
            ),
            configuration_sequence=self.settings.configurationSequence,
            ttl=self.settings.initialTtl,
            max_response_length=0,
        )

    def _signedAnswer(self, header: ForwardingHeader, reply: Reply) -> tuple[Message, bytes]:
        signed = self.security.sign(
            Message(
                header,
                MessageContents(reply.code, reply.body, reply.extensions),
                _carrying(reply.certificates),
            )
        )
        return signed, signed.encode()

    def _answer(
        self, reply: Reply, message: Message, previousHop: bytes | None, entry: _Recent
    ) -> None:
        if self._stopped:
            return
        request = message.header
        header = self._answerHeader(request, request.options, previousHop)
        try:
            signed, data = self._signedAnswer(header, reply)
        except EncodeError as exc:
            # An answer that cannot be encoded at all: its security block
            # would carry more than 2^16-1 bytes of certificates (section
            # 6.3.4), or a field is out of range.  The requester gets the
            # Error rather than silence and a timeout.
            reply = errorReply(ErrorCode.RESPONSE_TOO_LARGE, f"the answer cannot be encoded: {exc}")
            signed, data = self._signedAnswer(header, reply)
        limit = request.max_response_length
        if (limit and len(data) > limit) or len(data) > self.settings.maxMessageSize:
            # Section 6.3.3.1 Error_Response_Too_Large: "A node would have
            # generated a response that is too large per the
            # max_response_length field".  (Section 6.3.2 names
            # Error_Incompatible_with_Overlay here; the specific code wins.)
            why = (
                f"the answer is {len(data)} bytes, max_response_length {limit}"
                if limit and len(data) > limit
                else f"the answer is {len(data)} bytes, above max-message-size"
            )
            reply = errorReply(ErrorCode.RESPONSE_TOO_LARGE, why)
            signed, data = self._signedAnswer(header, reply)
        entry.answer = signed
        if reply.isError:
            self.counters["errorsSent"] += 1
        self.counters["answered"] += 1
        if previousHop is None and not request.via_list:
            self.clock.callLater(0, self._handleAnswer, signed, self._self)
        else:
            self._originate(data, signed)
        if reply.afterSent is not None:
            try:
                reply.afterSent()
            except Exception:
                self.log.failure("an after-answer action failed")

    def _resend(self, answer: Message, request: Message, previousHop: bytes | None) -> None:
        """The kept answer again, routed back along the path of this copy
        of the request (the signature does not cover the header)."""
        header = dataclasses.replace(
            self._answerHeader(request.header, (), previousHop), options=answer.header.options
        )
        again = Message(header, answer.contents, answer.security_block)
        if previousHop is None and not request.header.via_list:
            self.clock.callLater(0, self._handleAnswer, again, self._self)
        else:
            self._originate(again.encode(), again)

    def _reject(self, view: HeaderView, previousHop: bytes, code: int, reason: str) -> None:
        """Answer the request in ``view`` with an Error without decoding
        its contents; drop anything else."""
        self.refusals.info(
            "refusing transaction",
            previousHop.hex(),
            "refusing transaction {transactionId:#018x} from {source}: {why}",
            transactionId=view.transaction_id,
            why=reason,
        )
        if not isRequestView(view):
            self.counters["dropped"] += 1
            return
        try:
            via = view.via_list
            options = forwardingOptions(view)
        except DecodeError:
            options = ()
            via = ()
        request = ForwardingHeader(
            overlay=view.overlay,
            transaction_id=view.transaction_id,
            destination_list=view.destinations,
            via_list=via,
        )
        header = self._answerHeader(request, options, previousHop)
        signed, data = self._signedAnswer(header, errorReply(code, reason))
        self.counters["errorsSent"] += 1
        self._originate(data, signed)

    # -- originating ----------------------------------------------------------------

    def _ownSigner(self, message: Message) -> Signer:
        """The signer of a request this node sends to itself: verified like
        any other, so that handlers see the same identity (user name and
        all) whichever peer is responsible (section 6.1.1)."""
        try:
            return self.security.verify(message, self.nodeId)
        except Exception:
            self.log.failure("cannot verify this node's own request")
            return self._self

    def _originate(self, data: bytes, message: Message, firstHop: bytes | None = None) -> Decision:
        """Route a message this node made (a request or an answer) and send
        it; returns the decision."""
        try:
            view = HeaderView(data, max(len(data), self.settings.maxMessageSize))
        except DecodeError as exc:
            self.log.error("an originated message does not decode: {error}", error=str(exc))
            return Drop(str(exc))
        first = view.destinations[0]
        if firstHop is not None and first.type == DestinationType.NODE and isWildcard(first.value):
            decision: Decision = Forward(firstHop, 0)
        else:
            decision = self.router.route(view, None)
        if isinstance(decision, Forward):
            link = self._links.get(decision.nextHop)
            if link is None:
                return Drop(f"no link to the next hop {decision.nextHop.hex()}")
            self._send(link, self.router.forwarded(view, decision, None))
        elif isinstance(decision, Deliver):
            if message.contents.is_request:
                self.clock.callLater(
                    0, self._handleRequest, message, self._ownSigner(message), None
                )
            else:
                self.clock.callLater(0, self._handleAnswer, message, self._self)
        else:
            self.log.info(
                "cannot send transaction {transactionId:#018x}: {reason}",
                transactionId=view.transaction_id,
                reason=decision.reason,
            )
        return decision

    def requestSize(
        self,
        destinations: Sequence[Destination],
        code: int,
        body: bytes,
        *,
        certificates: Sequence[bytes] = (),
        forwardedBy: int = 0,
    ) -> int:
        """The encoded length of the request :meth:`request` would send with
        these arguments, signed as it would be (section 6.3: forwarding
        header, MessageContents, security block with the signer's and
        ``certificates``), after ``forwardedBy`` peers each appended a
        Node-ID to its via list on the way (section 6.1.2).  Compare it
        with ``settings.maxMessageSize`` (section 6.6): a caller splitting
        data into messages measures them with it instead of guessing."""
        header = ForwardingHeader(
            overlay=self.settings.overlay,
            transaction_id=0,
            destination_list=tuple(destinations),
            via_list=tuple(Destination.node(self.nodeId) for _ in range(forwardedBy)),
            configuration_sequence=self.settings.configurationSequence,
            ttl=self.settings.initialTtl,
        )
        message = self.security.sign(
            Message(header, MessageContents(code, body), _carrying(certificates))
        )
        return len(message.encode())

    def request(
        self,
        destinations: Sequence[Destination],
        code: int,
        body: bytes,
        *,
        maxResponseLength: int = 0,
        ttl: int | None = None,
        firstHop: bytes | None = None,
        configurationSequence: int | None = None,
        certificates: Sequence[bytes] = (),
        extensions: Sequence[MessageExtension] = (),
    ) -> Deferred[Response]:
        """Send a request along ``destinations`` (section 6.2.1) and fire
        with its verified :class:`Response`.  ``configurationSequence``
        overrides this node's (ConfigUpdate sends 65535, section 6.3.2.1).
        ``certificates`` (DER) go into the security block besides the
        signer's: a replica Store carries those of its values' signers
        (section 6.3.4).  ``extensions`` go into the MessageContents
        (section 6.3.3).

        Fails with :class:`ReloadError` when an Error comes back (or this
        node cannot route it at all), with
        :class:`~reload.errors.ReloadTimeout` after the last
        retransmission.  ``firstHop`` is the connected node to send a
        request for the wildcard Node-ID to.
        """
        if self._stopped:
            return fail(CancelledError("the transport is stopped"))
        if not destinations:
            return fail(ValueError("a request needs a destination"))
        transactionId = self.transactions.newTransactionId()
        header = ForwardingHeader(
            overlay=self.settings.overlay,
            transaction_id=transactionId,
            destination_list=tuple(destinations),
            configuration_sequence=(
                self.settings.configurationSequence
                if configurationSequence is None
                else configurationSequence
            ),
            ttl=self.settings.initialTtl if ttl is None else ttl,
            max_response_length=maxResponseLength,
        )
        try:
            message = self.security.sign(
                Message(
                    header, MessageContents(code, body, tuple(extensions)), _carrying(certificates)
                )
            )
            data = message.encode()
        except Exception as exc:  # EncodeError, or a signer that cannot sign
            return fail(exc)
        if len(data) > self.settings.maxMessageSize:
            return fail(
                ReloadError(
                    ErrorCode.MESSAGE_TOO_LARGE,
                    f"{len(data)} bytes exceed max-message-size {self.settings.maxMessageSize}",
                    self.nodeId,
                )
            )
        target = destinations[-1]
        expected = (
            target.value
            if target.type == DestinationType.NODE
            and not target.compressed
            and not isWildcard(target.value)
            else None
        )

        resource = (
            target.value
            if target.type == DestinationType.RESOURCE
            and len(destinations) == 1
            and code in _ANSWERED_BY_RESPONSIBLE
            else None
        )

        def transmit() -> None:
            decision = self._originate(data, message, firstHop)
            if isinstance(decision, Reject):
                self.transactions.fail(
                    transactionId, ReloadError(decision.errorCode, decision.reason, self.nodeId)
                )

        self.counters["requests"] += 1
        try:
            name = MessageCode(code).name
        except ValueError:
            name = f"{code:#x}"
        transaction = self.transactions.start(
            transactionId,
            transmit,
            context=_Pending(code, expected, resource),
            what=f"{name} to {target.value.hex()}",
        )
        if self.observer is not None:
            self.observer.request(code, transaction.deferred)
        return transaction.deferred

    # -- answers for this node -------------------------------------------------------

    def _handleAnswer(self, message: Message, signer: Signer) -> None:
        transactionId = message.header.transaction_id
        transaction = self.transactions.get(transactionId)
        if transaction is None:
            self.counters["unexpectedAnswers"] += 1
            self.log.debug(
                "an answer to no pending request ({transactionId:#018x}): dropped",
                transactionId=transactionId,
            )
            return
        pending = transaction.context
        assert isinstance(pending, _Pending)
        contents = message.contents
        code = contents.message_code
        if code == MessageCode.ERROR:
            try:
                error = ErrorResponse.decode(contents.body)
            except DecodeError as exc:
                error = ErrorResponse.with_text(
                    ErrorCode.INVALID_MESSAGE, f"an undecodable error response: {exc}"
                )
            self.transactions.fail(transactionId, ReloadError.fromResponse(error, signer.nodeId))
            return
        if code != pending.code + 1:
            self.counters["invalidAnswers"] += 1
            self.log.warn(
                "dropped an answer with code {code:#x} to a request {request:#x}",
                code=code,
                request=pending.code,
            )
            return
        if pending.expectedSigner is not None and signer.nodeId != pending.expectedSigner:
            # Section 6.3.4 rule 1: "The response to a message sent to a
            # Node-ID MUST have been sent by that Node-ID".
            self.counters["invalidAnswers"] += 1
            self.log.warn(
                "dropped an answer from {signer} to a request for {expected}",
                signer=signer.nodeId.hex(),
                expected=pending.expectedSigner.hex(),
            )
            return
        try:
            contents.check_extensions(self.dispatcher.understoodExtensions)
        except UnknownCriticalExtension as exc:
            self.transactions.fail(
                transactionId, ReloadError(ErrorCode.UNKNOWN_EXTENSION, str(exc), signer.nodeId)
            )
            return
        self.transactions.complete(transactionId, Response(code, contents.body, signer, message))
        if pending.resource is not None:
            self._answeredFor(pending.resource, signer.nodeId)

    def _answeredFor(self, resourceId: bytes, nodeId: bytes) -> None:
        """Tell the topology (``ITopology.answeredFor``) which peer answered
        for a Resource-ID: the one responsible for it (a topology may open a
        direct link to it, section 6.5.1)."""
        if self.topology is None:
            return
        try:
            self.topology.answeredFor(resourceId, nodeId)
        except Exception:
            self.log.failure("topology.answeredFor({nodeId}) failed", nodeId=nodeId.hex())

    # -- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Fail every pending request and link wait; answer nothing more."""
        self._stopped = True
        self.refusals.stop()
        self.transactions.failAll(CancelledError("the transport stopped"))
        for waiters in list(self._linkWaiters.values()):
            for waiter in list(waiters):
                waiter.cancel()
        self._linkWaiters.clear()


def _carrying(certificates: Sequence[bytes]) -> SecurityBlock:
    """The unsigned security block the signer fills in, with ``certificates``
    (DER) to carry besides its own."""
    if not certificates:
        return UNSIGNED
    carried = tuple(GenericCertificate(CertificateType.X509, c) for c in certificates)
    return SecurityBlock(carried, UNSIGNED.signature)
