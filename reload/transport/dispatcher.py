"""Local delivery: a request for this node to the handler of its method
(RFC 6940 sections 6.3.3, 6.3.3.1, 6.4.2, 6.5).

The transport hands every verified request addressed to this node to
:meth:`Dispatcher.dispatch`, which always produces a :class:`Reply` (never
raises):

* a critical extension this node does not understand: Error_Unknown_Extension
  (section 6.3.3: "If critical = True and the recipient does not understand
  the message, it MUST generate an Error_Unknown_Extension error");
* a method with no handler: Error_Invalid_Message ("Something about this
  message is invalid, but it does not fit the other error codes", section
  6.3.3.1; the RFC has no code for an unsupported method, and a request must
  be answered, not dropped);
* a body that does not decode: Error_Invalid_Message with the field path;
* otherwise the handler's answer, or the Error it raised as
  :class:`~reload.errors.ReloadError` (an exception with an
  ``errorCode`` attribute, such as the topology's ChordError, is taken as
  that error; any other exception is logged and answered with
  Error_Invalid_Message, so the requester is not left to time out).

Handlers take a :class:`Request` and return a :class:`Reply`, or a body
structure with a ``CODE`` (the answer's code is taken from it), or a
Deferred of either.  Handlers for the base methods are here: Ping (section
6.5.3), Probe (section 6.4.2.5) and the topology's Join, Leave, Update and
RouteQuery (section 6.4.2), passed to :class:`reload.interfaces.ITopology`.
Attach is :mod:`reload.transport.attach`'s.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.errors import ReloadError
from reload.transport.security import Signer
from reload.wire.errors import DecodeError
from reload.wire.header import Destination, ForwardingHeader
from reload.wire.message import (
    Body,
    ErrorCode,
    Message,
    MessageCode,
    MessageExtension,
    UnknownCriticalExtension,
    answer_code,
)
from reload.wire.methods import (
    JoinAns,
    JoinReq,
    LeaveAns,
    LeaveReq,
    PingAns,
    PingReq,
    ProbeAns,
    ProbeInformation,
    ProbeReq,
    RouteQueryAns,
    RouteQueryReq,
    UpdateAns,
    UpdateReq,
)
from reload.wire.registry import body_class
from reload.wire.storage import DEFAULT_NODE_ID_LENGTH

__all__ = [
    "BodyDecoder",
    "Dispatcher",
    "ExtensionHandler",
    "Handler",
    "Reply",
    "Request",
    "TopologyHandlers",
    "errorReply",
    "pingHandler",
    "probeHandler",
]


@dataclass(frozen=True, slots=True)
class Request:
    """A verified request for this node.

    ``previousHop`` is the Node-ID of the link it arrived on (``None`` when
    this node sent it to itself); ``signer`` its verified signer; ``body``
    the decoded body structure (set by the dispatcher before the handler
    runs; the raw bytes are ``message.contents.body``).
    """

    message: Message
    signer: Signer
    previousHop: bytes | None
    body: object = None

    @property
    def header(self) -> ForwardingHeader:
        return self.message.header

    @property
    def code(self) -> int:
        return self.message.contents.message_code

    @property
    def rawBody(self) -> bytes:
        return self.message.contents.body

    @property
    def transactionId(self) -> int:
        return self.message.header.transaction_id

    @property
    def maxResponseLength(self) -> int:
        """The forwarding header's max_response_length (section 6.3.2): the
        largest answer the requester takes, 0 for no limit."""
        return self.message.header.max_response_length

    @property
    def source(self) -> bytes:
        """The Node-ID the request was signed by (section 6.3.4)."""
        return self.signer.nodeId

    @property
    def viaList(self) -> tuple[Destination, ...]:
        return self.message.header.via_list

    @property
    def direct(self) -> bool:
        """Whether the request came straight from its signer over a link
        bound to its Node-ID (sections 6.4.2.1 and 6.4.2.2 require it for
        Join and Leave)."""
        return not self.viaList and self.previousHop == self.signer.nodeId

    def withBody(self, body: object) -> Request:
        return Request(self.message, self.signer, self.previousHop, body)


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to send: ``code`` and encoded ``body``.  ``afterSent`` is
    called once the answer has been handed to the link (Attach uses it to
    start connecting, section 6.5.1.2).  ``certificates`` (DER) go into the
    answer's security block beside the signer's (section 6.3.4: e.g. the
    signers of the values a FetchAns returns)."""

    code: int
    body: bytes
    afterSent: Callable[[], object] | None = field(default=None, compare=False)
    certificates: tuple[bytes, ...] = ()
    #: Message extensions of the answer's MessageContents (section 6.3.3).
    extensions: tuple[MessageExtension, ...] = ()

    @property
    def isError(self) -> bool:
        return self.code == MessageCode.ERROR


def errorReply(code: int, info: bytes | str = b"") -> Reply:
    """An Error answer (section 6.3.3.1)."""
    return Reply(MessageCode.ERROR, ReloadError(code, info).toResponse().encode())


Handler = Callable[[Request], Reply | Body | Deferred[Any]]
BodyDecoder = Callable[[bytes], object]


class ExtensionHandler(Protocol):
    """:class:`reload.interfaces.ITopologyExtensions`: the message
    extensions a topology defines, and what it answers to them."""

    @property
    def extensionTypes(self) -> frozenset[int]: ...

    def requestExtensions(
        self, sender: bytes, messageCode: int, extensions: Sequence[MessageExtension]
    ) -> Sequence[MessageExtension]: ...

    def answerExtensions(
        self, sender: bytes, messageCode: int, extensions: Sequence[MessageExtension]
    ) -> None: ...


class Dispatcher:
    """Method code -> handler, and the rules of local delivery above.

    ``nodeIdLength`` is passed to body decoders that need it (JoinReq,
    LeaveReq); ``understoodExtensions`` are the message extension types
    this node implements (none are defined, section 6.3.3).
    """

    log = Logger()

    def __init__(
        self,
        nodeIdLength: int = DEFAULT_NODE_ID_LENGTH,
        understoodExtensions: frozenset[int] = frozenset(),
    ) -> None:
        self.nodeIdLength = nodeIdLength
        self.understoodExtensions = understoodExtensions
        self.extensionHandler: ExtensionHandler | None = None
        self._handlers: dict[int, tuple[Handler, BodyDecoder]] = {}

    def useExtensions(self, handler: ExtensionHandler) -> None:
        """Pass the extensions of ``handler.extensionTypes`` that requests
        carry to ``handler`` and add what it returns to the answer; those
        types are understood from now on (a critical one is accepted,
        section 6.3.3)."""
        self.extensionHandler = handler
        self.understoodExtensions = self.understoodExtensions | frozenset(handler.extensionTypes)

    def register(self, code: int, handler: Handler, decoder: BodyDecoder | None = None) -> None:
        """Handle requests with message code ``code``; ``decoder`` turns the
        body bytes into what ``Request.body`` holds (default: the body class
        registered for ``code`` in :mod:`reload.wire.registry`)."""
        answer_code(code)  # ValueError unless a request code
        self._handlers[code] = (handler, decoder if decoder is not None else self._decoder(code))

    def unregister(self, code: int) -> None:
        self._handlers.pop(code, None)

    def handles(self, code: int) -> bool:
        return code in self._handlers

    @property
    def codes(self) -> frozenset[int]:
        return frozenset(self._handlers)

    def _decoder(self, code: int) -> BodyDecoder:
        cls: Any = body_class(code)
        if cls in (JoinReq, LeaveReq):
            length = self.nodeIdLength
            return lambda data: cls.decode(data, length)
        decode: BodyDecoder = cls.decode
        return decode

    def dispatch(self, request: Request) -> Deferred[Reply]:
        """The reply to ``request``; never fails."""
        answer = self.answer(request)
        return answer if isinstance(answer, Deferred) else succeed(answer)

    def answer(self, request: Request) -> Reply | Deferred[Reply]:
        """The reply to ``request``, at once when its handler answers at once
        (a Fetch, a Ping), else a Deferred of it (a Store waiting for its
        replicas); never fails.  The transport answers most requests this
        way without a Deferred and its callbacks per message."""
        code = request.code
        try:
            request.message.contents.check_extensions(self.understoodExtensions)
        except UnknownCriticalExtension as exc:
            return errorReply(ErrorCode.UNKNOWN_EXTENSION, str(exc))
        entry = self._handlers.get(code)
        if entry is None:
            return errorReply(
                ErrorCode.INVALID_MESSAGE,
                f"message code {code:#06x} is not supported by this node",
            )
        handler, decoder = entry
        try:
            body = decoder(request.rawBody)
        except DecodeError as exc:
            return errorReply(ErrorCode.INVALID_MESSAGE, str(exc))
        except Exception as exc:  # a decoder bug must not leave the request unanswered
            self.log.failure("decoding a {code:#x} body failed", code=code)
            return errorReply(ErrorCode.INVALID_MESSAGE, f"undecodable body: {exc}")
        try:
            result = handler(request.withBody(body))
        except BaseException:
            return self._failed(code, Failure())
        extended = self.extensionHandler is not None and bool(request.message.contents.extensions)
        if isinstance(result, Deferred):
            d = result.addCallbacks(
                lambda answer: self._reply(code, answer), lambda f: self._failed(code, f)
            )
            if extended:
                d.addCallback(self._withExtensions, request)
            return d
        reply = self._reply(code, result)
        return self._withExtensions(reply, request) if extended else reply

    def _withExtensions(self, reply: Reply, request: Request) -> Reply:
        """The extension handler's extensions added to a successful answer
        of a request that carried extensions it understands."""
        handler = self.extensionHandler
        if handler is None or reply.isError:
            return reply
        types = handler.extensionTypes
        theirs = [e for e in request.message.contents.extensions if e.type in types]
        if not theirs:
            return reply
        try:
            ours = tuple(handler.requestExtensions(request.source, request.code, theirs))
        except Exception:
            self.log.failure(
                "the topology failed on the extensions of a {code:#x}", code=request.code
            )
            return reply
        if not ours:
            return reply
        return dataclasses.replace(reply, extensions=reply.extensions + ours)

    def _reply(self, code: int, result: object) -> Reply:
        if isinstance(result, Reply):
            return result
        encode = getattr(result, "encode", None)
        answerCode = getattr(result, "CODE", None)
        if callable(encode) and isinstance(answerCode, int):
            body = encode()
            if isinstance(body, bytes):
                return Reply(answerCode, body)
        self.log.error(
            "the handler of {code:#x} returned {result!r}, not a reply", code=code, result=result
        )
        return errorReply(ErrorCode.INVALID_MESSAGE, "internal error: no answer was produced")

    def _failed(self, code: int, failure: Failure) -> Reply:
        error = failure.value
        if isinstance(error, ReloadError):
            return Reply(MessageCode.ERROR, error.toResponse().encode())
        errorCode = getattr(error, "errorCode", None)
        if isinstance(errorCode, int) and 0 < errorCode <= 0xFFFF:
            return errorReply(errorCode, str(error))
        if isinstance(error, DecodeError):
            return errorReply(ErrorCode.INVALID_MESSAGE, str(error))
        self.log.failure("the handler of {code:#x} failed", failure, code=code)
        return errorReply(ErrorCode.INVALID_MESSAGE, f"the request failed: {type(error).__name__}")


# -- Ping (section 6.5.3) --------------------------------------------------------


class _Clock(Protocol):
    def seconds(self) -> float: ...


def pingHandler(clock: _Clock, rng: random.Random | None = None) -> Handler:
    """Section 6.5.3.2: a random 64-bit response_id and the time, "in the
    same way as storage_time" (milliseconds since the epoch, section 7)."""
    source = rng if rng is not None else random.SystemRandom()

    def ping(request: Request) -> PingAns:
        assert isinstance(request.body, PingReq)
        return PingAns(source.getrandbits(64), int(clock.seconds() * 1000))

    return ping


# -- Probe (section 6.4.2.5) -------------------------------------------------------


def probeHandler(providers: Mapping[int, Callable[[], int]]) -> Handler:
    """Section 6.4.2.5.2: "The responding peer SHOULD include any values
    that the requesting node requested and that it recognizes.  They SHOULD
    be returned in the requested order.  Any other values MUST NOT be
    returned."  ``providers`` maps a ProbeInformationType to a function
    giving its uint32 value now; a type without a provider is not
    recognised (num_resources needs storage, responsible_set the
    topology)."""

    def probe(request: Request) -> ProbeAns:
        assert isinstance(request.body, ProbeReq)
        info: list[ProbeInformation] = []
        seen: set[int] = set()
        for kind in request.body.requested_info:
            provider = providers.get(kind)
            if provider is None or kind in seen:
                continue
            seen.add(kind)
            value = max(0, min(0xFFFFFFFF, int(provider())))
            info.append(ProbeInformation(kind, value))
        return ProbeAns(tuple(info))

    return probe


# -- topology methods (section 6.4.2) --------------------------------------------


class _Topology(Protocol):
    """The ``handle*`` half of :class:`reload.interfaces.ITopology`."""

    def handleJoin(self, joiningPeer: bytes, data: bytes) -> bytes: ...

    def handleUpdate(self, sender: bytes, data: bytes) -> bytes: ...

    def handleLeave(self, leavingPeer: bytes, data: bytes) -> None: ...

    def handleRouteQuery(
        self, destination: bytes, sendUpdate: bool, data: bytes, requester: bytes | None = None
    ) -> bytes: ...


class TopologyHandlers:
    """Join, Leave, Update and RouteQuery passed to a topology (section
    6.4.2), with the checks the base protocol makes before the topology
    sees them."""

    def __init__(self, topology: _Topology) -> None:
        self.topology = topology

    def register(self, dispatcher: Dispatcher) -> None:
        dispatcher.register(JoinReq.CODE, self.join)
        dispatcher.register(LeaveReq.CODE, self.leave)
        dispatcher.register(UpdateReq.CODE, self.update)
        dispatcher.register(RouteQueryReq.CODE, self.routeQuery)

    def join(self, request: Request) -> JoinAns:
        """Section 6.4.2.1: "Receivers of the JoinReq MUST verify that the
        joining_peer_id field matches the Node-ID used to sign the message
        and, if not, the message MUST be rejected with an Error_Forbidden
        error", and that it "arrives from a transport channel that is bound
        to the Node-ID to be assumed by the Joining Node"."""
        body = request.body
        assert isinstance(body, JoinReq)
        self._checkDirect(request, body.joining_peer_id, "JoinReq", "6.4.2.1")
        data = self.topology.handleJoin(body.joining_peer_id, body.overlay_specific_data)
        return JoinAns(data)

    def leave(self, request: Request) -> LeaveAns:
        """Section 6.4.2.2: the same two checks for LeaveReq."""
        body = request.body
        assert isinstance(body, LeaveReq)
        self._checkDirect(request, body.leaving_peer_id, "LeaveReq", "6.4.2.2")
        self.topology.handleLeave(body.leaving_peer_id, body.overlay_specific_data)
        return LeaveAns()

    def update(self, request: Request) -> UpdateAns:
        """Section 6.4.2.3: the contents are the topology's; the sender is
        the verified signer."""
        body = request.body
        assert isinstance(body, UpdateReq)
        return UpdateAns(self.topology.handleUpdate(request.source, body.overlay_specific_data))

    def routeQuery(self, request: Request) -> RouteQueryAns:
        """Section 6.4.2.4: the topology answers where it would route the
        destination; ``requester`` lets it send the Update send_update
        asks for."""
        body = request.body
        assert isinstance(body, RouteQueryReq)
        data = self.topology.handleRouteQuery(
            body.destination.value,
            body.send_update,
            body.overlay_specific_data,
            requester=request.source,
        )
        return RouteQueryAns(data)

    @staticmethod
    def _checkDirect(request: Request, claimed: bytes, what: str, section: str) -> None:
        if claimed != request.source:
            raise ReloadError(
                ErrorCode.FORBIDDEN,
                f"{what} for {claimed.hex()} signed by {request.source.hex()} (section {section})",
            )
        if not request.direct:
            raise ReloadError(
                ErrorCode.FORBIDDEN,
                f"{what} must arrive over a link bound to {claimed.hex()} (section {section})",
            )
