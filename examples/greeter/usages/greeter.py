"""GREETER: the worked example of a RELOAD usage plugin (RFC 6940 section 5.2).

Every peer that runs it publishes a greeting in the overlay under its own
Node-ID, and answers questions about everyone else's on a small TCP port:
send a Node-ID in hex and a newline, get that peer's greeting back (or
``ERROR reason``).  It shows each piece a usage has:

- a Kind (:class:`GreetingKind`): a private Kind-ID, a data model, an
  access policy, limits, and a ``validate`` that every storing peer and
  every fetcher runs;
- options, checked before the peer starts (:meth:`Greeter.checkOptions`);
- a service (:class:`GreeterService`) the peer starts once it has joined
  and stops before it leaves, which stores and fetches through
  :class:`reload.interfaces.INode` only.

It imports nothing of reload but ``reload.interfaces``, ``reload.errors``
and ``reload.api``: the contract a third party can rely on.  Run it::

    twistd -n reload --usage GREETER --usage-option GREETER:greeting=hello \\
        --usage-option GREETER:listen=tcp:7070:interface=127.0.0.1
    printf '%s\\n' NODE-ID-HEX | nc 127.0.0.1 7070
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.api.data import Specifier
from reload.errors import ReloadError
from reload.interfaces import DataModel, IKind, INode, IUsage

#: From the private-use range of section 14.6 (0xF0000001 to 0xFFFFFFFE): a
#: usage that is not registered with IANA picks one no other usage of its
#: overlays uses, and the overlay configuration lists it.
GREETING_KIND_ID = 0xF0000001
#: The longest greeting, in bytes of UTF-8.
MAX_GREETING = 200


@implementer(IKind)
class GreetingKind:
    """A peer's greeting: one UTF-8 text per peer (SINGLE), at the
    Resource-ID of the hash of its Node-ID, which only that peer may write
    (NODE-MATCH, section 7.3.2)."""

    name = "GREETING"
    kindId = GREETING_KIND_ID
    dataModel = DataModel.SINGLE
    accessPolicy = "NODE-MATCH"
    maxCount = 1
    maxSize = MAX_GREETING

    def validate(self, value: bytes) -> None:
        """Storing peers refuse, and fetchers reject, anything but a short
        line of UTF-8 text."""
        self.decode(value)

    def encode(self, value: object) -> bytes:
        if not isinstance(value, str):
            raise TypeError("a greeting is a str")
        data = value.encode("utf-8")
        self.validate(data)
        return data

    def decode(self, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("a greeting is UTF-8 text") from None
        if not text or len(data) > MAX_GREETING or "\n" in text:
            raise ValueError(f"a greeting is one line of 1 to {MAX_GREETING} bytes")
        return text


GREETING = GreetingKind()


class GreetingLookup(LineOnlyReceiver):
    """One client of the lookup port: a Node-ID in hex per line, answered
    with ``OK greeting`` or ``ERROR reason``, in the order asked."""

    delimiter = b"\n"
    MAX_LENGTH = 256

    def __init__(self, service: GreeterService) -> None:
        self.service = service
        self._previous: Deferred[Any] = succeed(None)

    def lineReceived(self, line: bytes) -> None:
        answer = self._answer(line)
        # Answers leave in the order of the questions, however long each
        # Fetch takes.
        self._previous = self._previous.addCallback(lambda _: answer).addCallback(self.sendLine)

    def _answer(self, line: bytes) -> Deferred[bytes]:
        try:
            nodeId = bytes.fromhex(line.strip().decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return succeed(b"ERROR expected a Node-ID in hex")
        return self.service.greetingOf(nodeId).addCallbacks(_found, _failed)


def _found(greeting: str | None) -> bytes:
    return b"ERROR no greeting" if greeting is None else b"OK " + greeting.encode("utf-8")


def _failed(failure: Failure) -> bytes:
    """The overlay's Error (RFC 6940 section 6.3.3.1) by its name, anything
    else (a timeout, a value that failed verification) by its message."""
    error = failure.value
    reason = error.name if isinstance(error, ReloadError) else failure.getErrorMessage()
    return b"ERROR " + reason.encode("utf-8", "replace")[:200]


class GreeterService(Service):
    """Publishes this node's greeting while it runs and serves lookups."""

    log = Logger()

    def __init__(self, node: INode, greeting: str, listen: str | None) -> None:
        self.node = node
        self.greeting = greeting
        self.listen = listen
        self.port: Any = None
        #: Fires when this node's greeting has been stored (or failed to).
        self.published: Deferred[Any] | None = None

    @property
    def resourceId(self) -> bytes:
        return self.node.resourceId(self.node.nodeId)

    def startService(self) -> Deferred[None] | None:  # type: ignore[override]
        super().startService()
        self.published = self.node.store(
            self.resourceId, GREETING_KIND_ID, GREETING.encode(self.greeting)
        )
        self.published.addErrback(self._notPublished)
        if self.listen is None:
            return None
        endpoint = serverFromString(self.node.reactor, self.listen)
        d = endpoint.listen(Factory.forProtocol(lambda: GreetingLookup(self)))

        def listening(port: Any) -> None:
            self.port = port
            self.log.info("GREETER lookups on {address}", address=port.getHost())

        # A lookup port that cannot be opened fails the service: the peer
        # logs it and marks the usage failed, and goes on.
        return d.addCallback(listening)

    def _notPublished(self, failure: Failure) -> Failure:
        self.log.warn(
            "GREETER: cannot publish the greeting: {error}", error=failure.getErrorMessage()
        )
        return failure

    def stopService(self) -> Deferred[Any] | None:  # type: ignore[override]
        super().stopService()
        # Section 7.4.1.1: storing "exists = False" withdraws the greeting.
        withdraw = self.node.store(self.resourceId, GREETING_KIND_ID, None)
        withdraw.addErrback(lambda f: None)
        if self.port is not None:
            port, self.port = self.port, None
            return withdraw.addCallback(lambda _: port.stopListening())
        return withdraw

    def greetingOf(self, nodeId: bytes) -> Deferred[str | None]:
        """The greeting of the peer ``nodeId``, verified, or None."""
        d = self.node.fetch(self.node.resourceId(nodeId), [Specifier(GREETING_KIND_ID)])

        def found(kinds: list[Any]) -> str | None:
            for kind in kinds:
                for value in kind.values:
                    if value.exists:
                        return GREETING.decode(value.value)
            return None

        return d.addCallback(found)


@implementer(IUsage)
class Greeter:
    """The plugin object ``getPlugins(IUsage, usages)`` finds."""

    name = "GREETER"
    description = "Publishes a greeting under this peer's Node-ID and looks up others'."
    options = {
        "greeting": "the text this peer publishes (default: Hello from NODE-ID)",
        "listen": "Twisted endpoint of the lookup port, e.g. tcp:7070 (default: no port)",
    }

    def kinds(self) -> list[IKind]:
        return [GREETING]

    def accessPolicies(self) -> list[Any]:
        return []

    def checkOptions(self, options: Mapping[str, str]) -> None:
        if "greeting" in options:
            try:
                GREETING.encode(options["greeting"])
            except ValueError as exc:
                raise ValueError(f"greeting: {exc}") from None
        listen = options.get("listen")
        if listen is not None and ":" not in listen:
            raise ValueError(f"listen: {listen!r} is not a Twisted endpoint such as tcp:7070")

    def makeService(self, node: INode, options: dict[str, str]) -> IService:
        greeting = options.get("greeting") or f"Hello from {node.nodeId.hex()}"
        return GreeterService(node, greeting, options.get("listen"))


greeter = Greeter()
