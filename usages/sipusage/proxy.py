"""The front end phones talk to: a SIP registrar and proxy (RFC 3261)
whose location service is the overlay (RFC 7904).

**REGISTER** (RFC 3261 section 10.3) is answered only for AoRs this peer
holds an identity for -- the user name of its certificate, since the
overlay binds an AoR to it (RFC 7904 section 3.3) -- and 403 for any
other.  The phone's bindings are kept here (contact, the flow it came on,
expiry); the overlay gets one SipRegistration for the AoR, keyed by this
peer's Node-ID and routing to it, whose lifetime is the longest binding's
Expires (refreshed with each REGISTER); the last binding gone (Expires: 0,
expiry) removes it, and so does stopping the peer.

**Requests from phones** for an AoR are resolved (section 4.2): 404 when
nothing is registered, 482 on a forwarding loop or too long a chain; the
request goes to the first target that an AppAttach reaches (section 5.1;
targets are tried one after the other, not forked in parallel), 480 when
none does.  INVITEs get 100 Trying first.  **Requests from another peer**
(over an AppAttach connection) go to the phone registered here (480 when
none is); they are never resolved again, so a request crosses the overlay
at most once.

**Routing.**  The proxy is transaction-stateless in the sense of RFC 3261
section 16.11 (branches are a function of the incoming branch, so CANCEL
and retransmissions take the same path) and keeps only the little state
CANCEL and its own final answers need.  Each peer adds a Via with its
``reload-node`` and, on dialog-creating requests, a Record-Route
``<sip:HOST:PORT;lr;reload-node=HEX;flow=TOKEN>``: the phone's side of the
dialog reaches its own peer by host and port; a peer reaches the other by
``reload-node`` over the AppAttach connection; and the peer owning the
route finds its phone again by ``flow``.  Responses follow the Vias back.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.api.data import Destination
from reload.api.topology import ErrorCode
from reload.errors import ReloadError
from usages.sipusage.connections import Flow, OverlayConnections, StreamFlow, UdpFlow
from usages.sipusage.digest import DigestAuthenticator
from usages.sipusage.message import (
    SipMessage,
    SipParseError,
    Uri,
    canonicalName,
    parseParams,
)
from usages.sipusage.record import BadAor, normaliseAor
from usages.sipusage.resolver import Resolution, SipClient

__all__ = ["Binding", "SipProxy"]

#: RFC 3261 section 8.1.1.6.
DEFAULT_MAX_FORWARDS = 70
#: RFC 3261 section 10.2.1.1: a registration without Expires lasts an hour.
DEFAULT_EXPIRES = 3600
#: Seconds a transaction's record is kept (64 * T1, section 17.1.1.2).
TRANSACTION_KEPT = 32.0
#: Methods this front end names in Allow.
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, PRACK, MESSAGE, NOTIFY, REFER"
MAGIC = "z9hG4bK"

REASONS = {
    100: "Trying",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    407: "Proxy Authentication Required",
    416: "Unsupported URI Scheme",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    487: "Request Terminated",
    500: "Server Internal Error",
    503: "Service Unavailable",
}


@dataclass(slots=True)
class Binding:
    """One phone's contact for an AoR (RFC 3261 section 10.3)."""

    contact: str
    flow: Flow
    expires: float
    callId: str
    cseq: int


@dataclass(slots=True)
class Transaction:
    """What the proxy remembers of a request it handles: where it went
    (a peer or a phone flow), where it came from, and whether this proxy
    answered it itself."""

    request: SipMessage
    source: Flow
    state: str = "resolving"  # resolving, forwarded, answered, cancelled
    target: Flow | None = None
    outBranch: str = ""
    timer: IDelayedCall | None = None
    #: Forking (RFC 3261 section 16.7): the branches by their branch
    #: parameter, AppAttaches still under way, the best final response
    #: held so far, and whether a 2xx went upstream or a CANCEL came.
    forked: bool = False
    branches: dict[str, Branch] = field(default_factory=dict)
    pending: int = 0
    best: SipMessage | None = None
    answered2xx: bool = False
    cancelled: bool = False
    finished: bool = False


@dataclass(slots=True)
class Branch:
    """One forked copy of a request: where it went, what was sent (for its
    CANCEL and the ACK of its non-2xx answer), its final status so far."""

    target: Flow
    sent: SipMessage
    final: int = 0


@dataclass(slots=True)
class Counters:
    registers: int = 0
    refused: int = 0
    invites: int = 0
    forwarded: int = 0
    delivered: int = 0
    malformed: int = 0
    challenged: int = 0
    answered: dict[int, int] = field(default_factory=dict)


def _relay(waiter: Deferred[Any]) -> Callable[[Any], Any]:
    """Pass a result (or failure) on to ``waiter`` and keep it."""

    def relay(result: Any) -> Any:
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)
        return result

    return relay


def _better(status: int, best: int) -> bool:
    """Whether final ``status`` beats ``best`` (0: none yet) as the answer
    of a forked request (RFC 3261 section 16.7 step 6, simplified): a 6xx
    wins, otherwise the lowest class and code."""
    if best == 0:
        return True
    if best >= 600:
        return False
    return status >= 600 or status < best


def _branchOf(message: SipMessage) -> str:
    vias = message.values("Via")
    if not vias:
        return ""
    return parseParams(vias[0].partition(";")[2]).get("branch", "")


def _tagOf(value: str | None) -> str:
    if not value:
        return ""
    return parseParams(value.rpartition(">")[2] if ">" in value else value.partition(";")[2]).get(
        "tag", ""
    )


def _uriOf(value: str) -> str:
    """The URI of a name-addr or addr-spec (Contact, To, From)."""
    value = value.strip()
    if "<" in value:
        return value[value.find("<") + 1 : value.find(">")]
    return value.split(";", 1)[0]


def _isSipUri(value: str) -> bool:
    return value.lower().startswith(("sip:", "sips:"))


class SipProxy:
    """The registrar and proxy of one peer (see the module's documentation)."""

    log = Logger()

    def __init__(
        self,
        client: SipClient,
        connections: OverlayConnections,
        clock: Any,
        host: str,
        port: int,
        maxDepth: int,
        maxExpires: int,
    ) -> None:
        self.client = client
        self.node = client.node
        self.connections = connections
        self.clock = clock
        self.host = host
        self.port = port
        #: The TLS listener's port for phones (None: no TLS).
        self.tlsPort: int | None = None
        self.maxDepth = maxDepth
        self.maxExpires = maxExpires
        self.nodeHex = self.node.nodeId.hex()
        self.bindings: dict[str, list[Binding]] = {}
        self.transactions: dict[str, Transaction] = {}
        self.byOutBranch: dict[str, Transaction] = {}
        #: Phones' TCP connections by token and by remote address.
        self.streams: dict[str, StreamFlow] = {}
        self.udp: Any = None
        self.counters = Counters()
        self._expiry: IDelayedCall | None = None
        #: ``(host, port) -> Deferred[StreamFlow]``: a TCP connection to a
        #: phone's Contact.
        self.connectPhone: Callable[[str, int], Deferred[Flow]] | None = None
        #: Digest authentication of phones (``SIP:passwords``), or None.
        self.authenticator: DigestAuthenticator | None = None
        #: AoR -> callers waiting for the next Store (one in flight per AoR).
        self._publishing: dict[str, list[Deferred[Any]]] = {}

    # -- phones' flows -------------------------------------------------------------

    def phoneStreamMade(self, flow: StreamFlow) -> None:
        self.streams[flow.token] = flow

    def phoneStreamClosed(self, flow: StreamFlow) -> None:
        self.streams.pop(flow.token, None)

    def _flowByToken(self, token: str) -> Flow | None:
        if token.startswith("u") and self.udp is not None:
            host, _, port = token[1:].rpartition("-")
            if port.isdigit():
                return UdpFlow(self.udp, (host, int(port)))
            return None
        stream = self.streams.get(token)
        return stream if stream is not None and stream.alive else None

    def _streamTo(self, remote: tuple[str, int]) -> StreamFlow | None:
        for stream in self.streams.values():
            if stream.alive and stream.remote == remote:
                return stream
        return None

    # -- input -------------------------------------------------------------------------

    def badInput(self, reason: str, data: bytes, flow: Flow) -> None:
        """Bytes that are not a SIP message: 400 when a Via to answer can
        be found (RFC 3261 section 21.4.1), nothing otherwise."""
        self.counters.malformed += 1
        self.log.info("SIP: malformed message from {remote}: {reason}", remote=flow.remote,
                      reason=reason)  # fmt: skip
        if flow.nodeId is not None:
            return
        text = data.decode("utf-8", "replace")
        if text.startswith("SIP/2.0"):
            return
        headers: list[tuple[str, str]] = []
        for line in text.split("\r\n")[1:64]:
            if not line:
                break
            name, colon, value = line.partition(":")
            if colon and name.strip().lower() in ("via", "v", "from", "f", "to", "t", "call-id",
                                                  "i", "cseq"):  # fmt: skip
                headers.append((name.strip(), value.strip()))
        answer = SipMessage(status=400, reason=f"Bad Request ({reason[:120]})")
        answer.headers = [(canonicalName(n), v) for n, v in headers]
        try:
            flow.send(answer.serialise())
        except Exception:
            return

    def receive(self, message: SipMessage, flow: Flow) -> None:
        """One message from a phone or a peer."""
        try:
            if message.isRequest:
                self._request(message, flow)
            else:
                self._response(message, flow)
        except SipParseError as exc:
            self.counters.malformed += 1
            if message.isRequest and message.method != "ACK":
                self._answer(message, flow, 400, f"Bad Request ({exc})")
        except Exception:
            self.log.failure("SIP: handling a message failed")
            if message.isRequest and message.method != "ACK":
                self._answer(message, flow, 500)

    # -- answers ---------------------------------------------------------------------

    def _answer(
        self,
        request: SipMessage,
        flow: Flow,
        status: int,
        reason: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        """A response of this front end to ``request``, sent back on ``flow``
        (RFC 3261 section 8.2.6)."""
        answer = SipMessage(status=status, reason=reason or REASONS.get(status, "Unknown"))
        self._answerWith(request, flow, answer, "", extra)

    def _answerWith(
        self,
        request: SipMessage,
        flow: Flow,
        answer: SipMessage,
        tag: str,
        extra: Sequence[tuple[str, str]],
    ) -> None:
        """``answer`` completed from ``request`` (RFC 3261 section 8.2.6.2:
        its Vias, From, To, Call-ID and CSeq; a To tag, ``tag`` or one of
        this proxy's) and sent on ``flow``."""
        status = answer.status
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in request.values(name) if name == "Via" else [request.get(name) or ""]:
                if value:
                    answer.headers.append((name, value))
        if status > 100 and not _tagOf(request.get("To")):
            to = request.get("To") or ""
            tag = tag or hashlib.sha1((_branchOf(request) + self.nodeHex).encode()).hexdigest()[:12]
            answer.set("To", f"{to};tag={tag}")
        answer.headers.append(("Server", "reload-sip"))
        answer.headers.extend(extra)
        self.counters.answered[status] = self.counters.answered.get(status, 0) + 1
        flow.send(answer.serialise())

    # -- requests ------------------------------------------------------------------

    def _check(self, request: SipMessage) -> None:
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            if not request.get(name):
                raise SipParseError(f"no {name} header (RFC 3261 section 8.1.1)")
        _, method = request.cseq
        if method != request.method:
            raise SipParseError(f"CSeq method {method} is not the request's {request.method}")
        if not _isSipUri(request.uri):
            raise SipParseError(f"Request-URI {request.uri!r} is not a sip: URI")
        Uri.parse(request.uri)

    def _isMe(self, uri: Uri) -> bool:
        """Whether a Route URI names this proxy (RFC 3261 section 16.4):
        one this peer Record-Routed, or its front end's address (an
        outbound proxy a phone preloads)."""
        node = uri.params.get("reload-node")
        if node is not None:
            return bool(node == self.nodeHex)
        ports = (self.port, self.tlsPort)
        return bool(uri.host == self.host and (uri.port or 5060) in ports and not uri.user)

    def _maxForwards(self, request: SipMessage) -> int:
        raw = request.get("Max-Forwards")
        if raw is None:
            return DEFAULT_MAX_FORWARDS
        if not raw.strip().isdigit() or int(raw) > 255:
            raise SipParseError(f"Max-Forwards {raw!r} is not 0 to 255")
        return int(raw)

    def _request(self, request: SipMessage, flow: Flow) -> None:
        if flow.nodeId is None:
            # RFC 3581 / RFC 3261 section 18.2.1: where the phone really is.
            vias = request.values("Via")
            if vias:
                first = vias[0]
                first = ";".join(
                    p for p in first.split(";") if not p.strip().startswith(("received", "rport"))
                )
                vias[0] = f"{first};received={flow.remote[0]};rport={flow.remote[1]}"
                request.setValues("Via", vias)
        if request.method == "ACK":
            try:
                self._check(request)
            except SipParseError:
                return
        else:
            self._check(request)
        hops = self._maxForwards(request)
        routes = request.values("Route")
        popped: Uri | None = None
        # Every leading route that names this proxy goes (RFC 3261 section
        # 16.4); a call between two phones of this peer has two, one per
        # side, and the last names the flow to send on.
        while routes:
            top = Uri.parse(routes[0])
            if not self._isMe(top):
                break
            popped = top
            routes = routes[1:]
            request.setValues("Route", routes)
        if request.method == "REGISTER" and not routes:
            self._register(request, flow)
            return
        if request.method == "OPTIONS" and not routes and not Uri.parse(request.uri).user:
            self._answer(request, flow, 200, extra=[("Allow", ALLOW)])
            return
        if hops == 0:
            if request.method != "ACK":
                self._answer(request, flow, 483)
            return
        if request.method == "CANCEL":
            self._cancel(request, flow)
            return
        if routes:
            nextHop = Uri.parse(routes[0])
            peer = nextHop.params.get("reload-node")
            if peer is None or flow.nodeId is not None:
                if request.method != "ACK":
                    self._answer(request, flow, 403, "Forbidden (no route outside the overlay)")
                return
            try:
                nodeId = bytes.fromhex(peer)
            except ValueError:
                raise SipParseError(f"Route {routes[0]!r} names no Node-ID") from None
            self._toPeer(request, flow, [nodeId], hops, addRoute=False)
            return
        if popped is not None:
            target = self._flowByToken(popped.params.get("flow", ""))
            if target is None:
                if request.method != "ACK":
                    self._answer(
                        request, flow, 480, "Temporarily Unavailable (the phone's flow is gone)"
                    )
                return
            self._send(request, flow, target, hops, addRoute=False)
            return
        if request.method == "ACK":
            # No Route: the ACK of a non-2xx final response, hop by hop
            # along the INVITE's path (RFC 3261 section 17.1.1.3).
            self._ackForNon2xx(request, flow, hops)
            return
        if _tagOf(request.get("To")):
            self._answer(request, flow, 481)
            return
        self._outOfDialog(request, flow, hops)

    def _transactionKey(self, request: SipMessage) -> str:
        vias = request.values("Via")
        method = "INVITE" if request.method in ("ACK", "CANCEL") else request.method
        return f"{_branchOf(request)}|{vias[0].split(';', 1)[0] if vias else ''}|{method}"

    def _remember(self, request: SipMessage, flow: Flow) -> Transaction:
        key = self._transactionKey(request)
        txn = Transaction(request, flow)
        old = self.transactions.get(key)
        if old is not None and old.timer is not None and old.timer.active():
            old.timer.cancel()
        self.transactions[key] = txn

        def forget() -> None:
            if self.transactions.get(key) is txn:
                del self.transactions[key]
            if txn.outBranch and self.byOutBranch.get(txn.outBranch) is txn:
                del self.byOutBranch[txn.outBranch]

        txn.timer = self.clock.callLater(TRANSACTION_KEPT, forget)
        return txn

    def _outOfDialog(self, request: SipMessage, flow: Flow, hops: int) -> None:
        key = self._transactionKey(request)
        known = self.transactions.get(key)
        if known is not None:
            # A retransmission: the transaction is under way.
            if known.state == "resolving" and request.method == "INVITE":
                self._answer(request, flow, 100)
            elif known.state == "forwarded" and known.target is not None and not known.forked:
                self._send(request, flow, known.target, hops, addRoute=True, txn=known)
            return
        try:
            uri = Uri.parse(request.uri)
            aor = normaliseAor(f"{uri.user}@{uri.host}" if uri.user else "")
        except BadAor:
            self._answer(request, flow, 404, "Not Found (the Request-URI is no AoR)")
            return
        if flow.nodeId is None and self.authenticator is not None:
            # A phone acts for the AoR of its From, which must be this
            # peer's and proven by its password (RFC 3261 section 22.3).
            try:
                caller = normaliseAor(_uriOf(request.get("From") or ""))
            except BadAor as exc:
                raise SipParseError(str(exc)) from None
            if caller != self._ownAor():
                self._answer(request, flow, 403, f"Forbidden (no identity for {caller} here)")
                return
            if not self._authenticated(request, flow, caller, "Proxy-Authorization", 407):
                return
        txn = self._remember(request, flow)
        if request.method == "INVITE":
            self.counters.invites += 1
            self._answer(request, flow, 100)
        if flow.nodeId is not None:
            # From another peer: to the phone registered here, never again
            # to the overlay.
            self._deliver(request, flow, aor, hops, txn)
            return
        gruuUri = request.uri
        d = self.client.resolve(gruuUri if ";gr=" in gruuUri else aor, self.maxDepth)
        d.addCallbacks(
            lambda found: self._resolved(found, request, flow, hops, txn),
            lambda failure: self._resolveFailed(failure, request, flow, txn),
        )

    def _resolveFailed(
        self, failure: Failure, request: SipMessage, flow: Flow, txn: Transaction
    ) -> None:
        if txn.state != "resolving":
            return
        txn.state = "answered"
        self.log.info("SIP: resolving {uri} failed: {error}", uri=request.uri,
                      error=failure.getErrorMessage())  # fmt: skip
        self._answer(request, flow, 480, "Temporarily Unavailable (the overlay did not answer)")

    def _resolved(
        self, found: Resolution, request: SipMessage, flow: Flow, hops: int, txn: Transaction
    ) -> None:
        if txn.state != "resolving":
            return
        if not found.targets:
            txn.state = "answered"
            if found.loop or found.tooDeep:
                self._answer(request, flow, 482, "Loop Detected (AoR forwarding loop)")
            else:
                self._answer(request, flow, 404, f"Not Found ({found.aor} is not registered)")
            return
        own = [t for t in found.targets if t.nodeId == self.node.nodeId]
        if own and self._localBindings(own[0].aor):
            self._deliver(request, flow, own[0].aor, hops, txn)
            return
        targets = [t for t in found.targets if t.nodeId != self.node.nodeId]
        if not targets:
            txn.state = "answered"
            self._answer(request, flow, 480)
            return
        byNode: dict[bytes, str] = {}
        for target in targets:
            byNode.setdefault(target.nodeId, target.aor)
        if len(byNode) > 1 and request.method == "INVITE":
            self._fork(request, flow, byNode, found.aor, hops, txn)
            return
        if targets[0].aor != found.aor:
            # Retargeting (RFC 3261 section 16.5): the AoR the route was
            # registered for, which the answering peer has the phone of.
            request.uri = f"sip:{targets[0].aor}"
        self._toPeer(request, flow, [t.nodeId for t in targets], hops, addRoute=True, txn=txn)

    # -- forking (RFC 3261 section 16.7, RFC 7904 section 4.2) -----------------------

    def _fork(
        self,
        request: SipMessage,
        flow: Flow,
        byNode: dict[bytes, str],
        aor: str,
        hops: int,
        txn: Transaction,
    ) -> None:
        """An INVITE to every peer the AoR resolved to at once: responses
        go upstream as they come, the first 2xx CANCELs the others, and
        when every branch has failed the best final response goes
        upstream."""
        txn.forked = True
        txn.state = "forwarded"
        txn.pending = len(byNode)
        for nodeId, targetAor in byNode.items():
            uri = request.uri if targetAor == aor else f"sip:{targetAor}"
            copy = SipMessage(
                method=request.method, uri=uri, headers=list(request.headers), body=request.body
            )
            d = self.connections.connect(nodeId)
            d.addCallbacks(
                lambda peer, copy=copy: self._forkSend(txn, copy, flow, peer, hops),
                lambda failure: self._forkLost(txn),
            )

    def _forkSend(
        self, txn: Transaction, copy: SipMessage, flow: Flow, peer: Flow, hops: int
    ) -> None:
        txn.pending -= 1
        if txn.cancelled or txn.answered2xx or txn.finished:
            self._forkDone(txn)
            return
        branch, sent = self._send(copy, flow, peer, hops, addRoute=True, txn=txn)
        txn.branches[branch] = Branch(peer, sent)

    def _forkLost(self, txn: Transaction) -> None:
        txn.pending -= 1
        self._forkDone(txn)

    def _forkDone(self, txn: Transaction) -> None:
        """Once no branch can answer any more: the best final response
        upstream (487 after a CANCEL, 480 when no peer was reached)."""
        if txn.finished or txn.answered2xx or txn.pending:
            return
        if any(branch.final == 0 for branch in txn.branches.values()):
            return
        txn.finished = True
        txn.state = "answered"
        if txn.best is not None:
            # The best answer, as this proxy's answer to the INVITE it got
            # (its Via set, the answering phone's To tag and reason).
            best = txn.best
            tag = _tagOf(best.get("To"))
            extra = [("Warning", w) for w in best.values("Warning")]
            answer = SipMessage(status=best.status, reason=best.reason)
            self._answerWith(txn.request, txn.source, answer, tag, extra)
        elif txn.cancelled:
            self._answer(txn.request, txn.source, 487)
        else:
            self._answer(txn.request, txn.source, 480, "Temporarily Unavailable (no peer answered)")

    def _hopRequest(self, branch: Branch, method: str, to: str | None) -> SipMessage:
        """A CANCEL or ACK for one branch, built as its INVITE's client
        transaction would (RFC 3261 sections 9.1, 17.1.1.3)."""
        sent = branch.sent
        number = sent.cseq[0]
        message = SipMessage(method=method, uri=sent.uri)
        message.headers = [
            ("Via", sent.values("Via")[0]),
            ("From", sent.get("From") or ""),
            ("To", to or sent.get("To") or ""),
            ("Call-ID", sent.get("Call-ID") or ""),
            ("CSeq", f"{number} {method}"),
            ("Max-Forwards", str(DEFAULT_MAX_FORWARDS)),
        ]
        return message

    def _forkResponse(self, txn: Transaction, branchId: str, response: SipMessage) -> bool:
        """A response on a branch of a forked INVITE; True when it goes
        upstream."""
        branch = txn.branches.get(branchId)
        if branch is None:
            return False
        status = response.status
        if status < 200:
            return not txn.finished
        if branch.final:
            return status < 300 and not txn.finished  # a retransmitted 2xx
        branch.final = status
        if status < 300:
            if not txn.answered2xx:
                txn.answered2xx = True
                txn.finished = True
                for other in txn.branches.values():
                    if other is not branch and other.final == 0:
                        other.target.send(self._hopRequest(other, "CANCEL", None).serialise())
            return True
        # A non-2xx final answer: this proxy ACKs it and keeps the best.
        branch.target.send(self._hopRequest(branch, "ACK", response.get("To")).serialise())
        if not txn.answered2xx and _better(status, txn.best.status if txn.best else 0):
            txn.best = response
        self._forkDone(txn)
        return False

    def _toPeer(
        self,
        request: SipMessage,
        flow: Flow,
        nodeIds: list[bytes],
        hops: int,
        addRoute: bool,
        txn: Transaction | None = None,
    ) -> None:
        """Send ``request`` to the first of ``nodeIds`` an AppAttach reaches."""
        if not nodeIds:
            if txn is not None:
                txn.state = "answered"
            if request.method != "ACK":
                self._answer(request, flow, 480, "Temporarily Unavailable (no peer answered)")
            return
        d = self.connections.connect(nodeIds[0])

        def connected(peer: StreamFlow) -> None:
            if txn is not None and txn.state == "cancelled":
                return
            self._send(request, flow, peer, hops, addRoute, txn)

        def failed(failure: Failure) -> None:
            self.log.info("SIP: no AppAttach connection to {node}: {error}",
                          node=nodeIds[0].hex(), error=failure.getErrorMessage())  # fmt: skip
            if txn is not None and txn.state == "cancelled":
                return
            self._toPeer(request, flow, nodeIds[1:], hops, addRoute, txn)

        d.addCallbacks(connected, failed)

    def _send(
        self,
        request: SipMessage,
        source: Flow,
        target: Flow,
        hops: int,
        addRoute: bool,
        txn: Transaction | None = None,
    ) -> tuple[str, SipMessage]:
        """Forward ``request`` to ``target`` with this peer's Via, one hop
        less, and a Record-Route on a dialog-creating request; the branch
        and the message sent."""
        outgoing = SipMessage(
            method=request.method, uri=request.uri, headers=list(request.headers), body=request.body
        )
        outgoing.set("Max-Forwards", str(max(hops - 1, 0)))
        incoming = _branchOf(request) or (request.get("Call-ID") or "") + str(request.cseq)
        branch = (
            MAGIC
            + hashlib.sha1(f"{self.nodeHex}|{incoming}|{target.token}".encode()).hexdigest()[:20]
        )
        phoneTls = target.nodeId is None and target.proto == "TLS"
        sentBy = f"{self.host}:{self.tlsPort if phoneTls else self.port}"
        outgoing.prepend(
            "Via", f"SIP/2.0/{target.proto} {sentBy};branch={branch};reload-node={self.nodeHex}"
        )
        if (
            addRoute
            and request.method in ("INVITE", "SUBSCRIBE", "REFER")
            and not _tagOf(request.get("To"))
        ):
            # One route per phone side, with the phone's own transport and
            # port (it sends its in-dialog requests there) and its flow
            # (where this proxy sends the other side's).  Between a phone
            # and a peer that is one; between two phones of this peer, two
            # (the caller's below the callee's, as RFC 5658 double-routes).
            phones = [flow for flow in (source, target) if flow.nodeId is None]
            for phone in phones:
                port = self.tlsPort if phone.proto == "TLS" else self.port
                transport = {"TCP": ";transport=tcp", "TLS": ";transport=tls"}.get(phone.proto, "")
                route = f"{self.host}:{port}{transport};lr;reload-node={self.nodeHex}"
                outgoing.prepend("Record-Route", f"<sip:{route};flow={phone.token}>")
        if txn is not None:
            txn.state = "forwarded"
            txn.target = target
            txn.outBranch = branch
            self.byOutBranch[branch] = txn
        if target.nodeId is not None:
            self.counters.forwarded += 1
        else:
            self.counters.delivered += 1
        target.send(outgoing.serialise())
        return branch, outgoing

    def _localBindings(self, aor: str) -> list[Binding]:
        now = self.clock.seconds()
        return [b for b in self.bindings.get(aor, []) if b.expires > now]

    def _phoneFlow(self, binding: Binding) -> Deferred[Flow]:
        """Where a request for ``binding`` goes (RFC 3261 section 16.6):
        the TCP connection it registered on while that is open, else its
        Contact -- UDP, or a TCP connection this peer opens (or has)."""
        flow = binding.flow
        if flow.proto in ("TCP", "TLS") and flow.alive:
            return succeed(flow)
        if flow.proto == "TLS":
            return fail(ConnectionError("the phone's TLS connection is closed"))
        uri = Uri.parse(binding.contact)
        address = (uri.host, uri.port or 5060)
        if uri.params.get("transport", "").lower() == "tcp" or flow.proto == "TCP":
            stream = self._streamTo(address)
            if stream is not None:
                return succeed(stream)
            if self.connectPhone is None:
                return fail(ConnectionError("no TCP connector"))
            return self.connectPhone(*address)
        return succeed(UdpFlow(self.udp, address))

    def _deliver(
        self, request: SipMessage, flow: Flow, aor: str, hops: int, txn: Transaction
    ) -> None:
        """A request for ``aor`` to the phone registered here (the newest
        binding)."""
        bindings = self._localBindings(aor)
        if not bindings:
            txn.state = "answered"
            self._answer(request, flow, 480, "Temporarily Unavailable (no phone registered here)")
            return
        binding = bindings[-1]
        request.uri = binding.contact

        def reached(phone: Flow) -> None:
            if txn.state == "cancelled":
                return
            self._send(request, flow, phone, hops, addRoute=True, txn=txn)

        def unreachable(failure: Failure) -> None:
            if txn.state == "cancelled":
                return
            txn.state = "answered"
            self._answer(request, flow, 480, "Temporarily Unavailable (the phone is unreachable)")

        self._phoneFlow(binding).addCallbacks(reached, unreachable)

    def _ackForNon2xx(self, request: SipMessage, flow: Flow, hops: int) -> None:
        txn = self.transactions.get(self._transactionKey(request))
        if txn is None or txn.forked:
            return  # ours to absorb: this proxy ACKed each branch itself
        if txn.state in ("forwarded", "answered") and txn.target is not None:
            request.uri = txn.request.uri  # the INVITE's, as this hop sent it
            self._send(request, flow, txn.target, hops, addRoute=False)

    def _cancel(self, request: SipMessage, flow: Flow) -> None:
        txn = self.transactions.get(self._transactionKey(request))
        if txn is None or txn.state == "answered":
            self._answer(request, flow, 481)
            return
        if txn.state in ("resolving", "cancelled"):
            txn.state = "cancelled"
            self._answer(request, flow, 200)
            self._answer(txn.request, txn.source, 487)
            return
        if txn.forked:
            # RFC 3261 section 16.10: answer it, CANCEL every branch.
            self._answer(request, flow, 200)
            if not txn.finished:
                txn.cancelled = True
                for branch in txn.branches.values():
                    if branch.final == 0:
                        branch.target.send(self._hopRequest(branch, "CANCEL", None).serialise())
                self._forkDone(txn)
            return
        # Forwarded: the CANCEL takes the INVITE's path (same branch).
        assert txn.target is not None
        cancel = SipMessage(method="CANCEL", uri=txn.request.uri, headers=list(request.headers))
        self._send(cancel, flow, txn.target, self._maxForwards(request), addRoute=False)

    # -- responses -------------------------------------------------------------------

    def _response(self, response: SipMessage, flow: Flow) -> None:
        vias = response.values("Via")
        if not vias:
            raise SipParseError("a response without Via")
        top = parseParams(vias[0].partition(";")[2])
        if top.get("reload-node") != self.nodeHex:
            return  # not ours: RFC 3261 section 18.1.2 drops it
        if response.status == 100:
            return  # 100 Trying is hop by hop (RFC 3261 section 16.7 step 3)
        txn = self.byOutBranch.get(top.get("branch", ""))
        if txn is not None and txn.forked and response.cseq[1] == "INVITE":
            if self._forkResponse(txn, top.get("branch", ""), response):
                self._relayUp(response)
            return
        if not vias[1:]:
            return  # the answer to a request of this proxy's own
        final = response.status >= 200 and response.cseq[1] == "INVITE"
        if txn is not None and final and txn.state == "forwarded":
            txn.state = "answered" if response.status >= 300 else "forwarded"
        self._relayUp(response)

    def _relayUp(self, response: SipMessage) -> None:
        """A response without this peer's Via, to the next one: another
        peer over its AppAttach connection, or a phone (RFC 3261 section
        18.2.2: received/rport of its Via; its TCP connection)."""
        rest = response.values("Via")[1:]
        if not rest:
            return
        response.setValues("Via", rest)
        nextVia = rest[0]
        params = parseParams(nextVia.partition(";")[2])
        peer = params.get("reload-node")
        if peer is not None:
            try:
                target = self.connections.existing(bytes.fromhex(peer))
            except ValueError:
                return
            if target is not None:
                target.send(response.serialise())
            return
        sentBy = nextVia.partition(";")[0].split()
        if len(sentBy) != 2:
            return
        proto = sentBy[0].rpartition("/")[2].upper()
        host, _, port = sentBy[1].rpartition(":") if ":" in sentBy[1] else (sentBy[1], "", "5060")
        address = (params.get("received") or host, int(params.get("rport") or port or 5060))
        if proto == "UDP":
            phone = self._flowByToken(f"u{address[0]}-{address[1]}")
        else:
            phone = self._streamTo(address)
        if phone is not None:
            phone.send(response.serialise())

    # -- the registrar ---------------------------------------------------------------

    def _ownAor(self) -> str:
        try:
            return self.client.aor
        except ValueError:
            return ""

    def _authenticated(
        self, request: SipMessage, flow: Flow, aor: str, header: str, status: int
    ) -> bool:
        """True when no passwords are configured or the request's
        credentials prove ``aor``'s; else answers 401 or 407 with a
        challenge (RFC 3261 sections 22.2, 22.3) and returns False."""
        if self.authenticator is None:
            return True
        now = self.clock.seconds()
        verdict = self.authenticator.check(aor, request.method, request.get(header), now)
        if verdict == "ok":
            return True
        self.counters.challenged += 1
        challenge = self.authenticator.challenge(aor, now, stale=verdict == "stale")
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        self._answer(request, flow, status, extra=[(name, challenge)])
        return False

    def _register(self, request: SipMessage, flow: Flow) -> None:
        self.counters.registers += 1
        if flow.nodeId is not None:
            self._answer(request, flow, 403, "Forbidden (REGISTER comes from phones only)")
            return
        try:
            aor = normaliseAor(_uriOf(request.get("To") or ""))
        except BadAor as exc:
            raise SipParseError(str(exc)) from None
        try:
            own = self.client.aor
        except ValueError:
            own = ""
        if aor != own:
            self.counters.refused += 1
            self._answer(request, flow, 403, f"Forbidden (this peer holds no identity for {aor})")
            return
        if not self._authenticated(request, flow, aor, "Authorization", 401):
            return
        callId = request.get("Call-ID") or ""
        cseq = request.cseq[0]
        expiresHeader = request.get("Expires")
        default = DEFAULT_EXPIRES
        if expiresHeader is not None:
            if not expiresHeader.strip().isdigit():
                raise SipParseError(f"Expires {expiresHeader!r} is not a number")
            default = int(expiresHeader)
        contacts = request.values("Contact")
        now = self.clock.seconds()
        current = [b for b in self.bindings.get(aor, []) if b.expires > now]
        if contacts == ["*"]:
            if default != 0:
                raise SipParseError("Contact: * needs Expires: 0 (RFC 3261 section 10.3)")
            current = []
        else:
            for contact in contacts:
                uri = _uriOf(contact)
                Uri.parse(uri)
                params = parseParams(contact.rpartition(">")[2] if ">" in contact else "")
                seconds = default
                if "expires" in params:
                    if not params["expires"].isdigit():
                        raise SipParseError(f"Contact expires {params['expires']!r}")
                    seconds = int(params["expires"])
                seconds = min(seconds, self.maxExpires)
                current = [b for b in current if b.contact != uri]
                if seconds > 0:
                    current.append(Binding(uri, flow, now + seconds, callId, cseq))
        if current:
            self.bindings[aor] = current
        else:
            self.bindings.pop(aor, None)
        self._scheduleExpiry()
        stored = self._publish(aor, current)

        def answered(_: object) -> None:
            contactsNow = [
                ("Contact", f"<{b.contact}>;expires={int(b.expires - now)}") for b in current
            ]
            date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
            self._answer(request, flow, 200, extra=[*contactsNow, ("Date", date)])

        def failed(failure: Failure) -> None:
            self.log.warn("SIP: storing the registration of {aor} failed: {error}", aor=aor,
                          error=failure.getErrorMessage())  # fmt: skip
            self._answer(
                request, flow, 503, "Service Unavailable (the overlay refused the registration)"
            )

        stored.addCallbacks(answered, failed)

    def _publish(self, aor: str, bindings: list[Binding]) -> Deferred[Any]:
        """Bring the overlay's SipRegistration for ``aor`` up to date: a
        route to this peer living as long as the longest binding, or none.

        One Store per AoR is in flight at a time: the storing peer refuses
        a value whose storage_time is not after the one it holds (RFC 6940
        section 7, Error_Data_Too_Old), so REGISTERs that come while a
        Store is under way share the next one, which writes the bindings
        as they are then.  The Deferred fires once a Store that includes
        this call's bindings is answered."""
        state = self._publishing.get(aor)
        if state is not None:
            waiter: Deferred[Any] = Deferred()
            state.append(waiter)
            return waiter
        self._publishing[aor] = []
        return self._storeNow(aor)

    def _storeNow(self, aor: str, retried: bool = False) -> Deferred[Any]:
        bindings = self._localBindings(aor)
        d: Deferred[Any]
        if bindings:
            lifetime = max(1, int(max(b.expires for b in bindings) - self.clock.seconds()))
            d = self.client.register(aor, [Destination.node(self.node.nodeId)], "", lifetime)
        else:
            d = self.client.unregister(aor)

        def done(result: Any) -> Any:
            failure = result if isinstance(result, Failure) else None
            if (
                failure is not None
                and not retried
                and isinstance(failure.value, ReloadError)
                and failure.value.code == ErrorCode.DATA_TOO_OLD
            ):
                # Two Stores in one millisecond: once more, a moment later.
                return deferLater(self.clock, 0.002, self._storeNow, aor, True)
            waiting = self._publishing.pop(aor, [])
            if waiting:
                self._publishing[aor] = []
                again = self._storeNow(aor)
                for waiter in waiting:
                    again.addBoth(_relay(waiter))
                again.addErrback(lambda _: None)  # the waiters have it
            return result

        return d.addBoth(done)

    def _scheduleExpiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        times = [b.expires for bs in self.bindings.values() for b in bs]
        if times:
            delay = max(0.0, min(times) - self.clock.seconds()) + 0.5
            self._expiry = self.clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = self.clock.seconds()
        for aor in list(self.bindings):
            live = [b for b in self.bindings[aor] if b.expires > now]
            if live:
                self.bindings[aor] = live
            else:
                del self.bindings[aor]
                self._publish(aor, []).addErrback(lambda f: None)
        self._scheduleExpiry()

    def withdraw(self) -> Deferred[Any]:
        """Stopping: remove every registration this front end stored."""
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        for txn in self.transactions.values():
            if txn.timer is not None and txn.timer.active():
                txn.timer.cancel()
        done = [self.client.unregister(aor) for aor in self.bindings]
        self.bindings.clear()
        return DeferredList(done, consumeErrors=True)

    def status(self) -> dict[str, Any]:
        c = self.counters
        return {
            "listen": f"{self.host}:{self.port}"
            + (f", TLS {self.host}:{self.tlsPort}" if self.tlsPort is not None else ""),
            "bindings": {aor: [b.contact for b in bs] for aor, bs in self.bindings.items()},
            "registers": c.registers,
            "registers refused": c.refused,
            "invites": c.invites,
            "forwarded to peers": c.forwarded,
            "delivered to phones": c.delivered,
            "malformed": c.malformed,
            "challenged": c.challenged,
            "answered": {str(k): v for k, v in sorted(c.answered.items())},
            "connections": {
                "open": len(self.connections.flows),
                "opened": self.connections.opened,
                "reused": self.connections.reused,
                "failed": self.connections.failed,
            },
        }
