"""An application over AppAttach for the lab tests (RFC 6940 section 6.5.2),
installed by putting ``tests/plugins`` on a peer's PYTHONPATH.

The ECHO-APP usage listens for Application-ID 0xECB0: every connection
answers each chunk with ``echo:`` and the chunk.  Its operations:

* ``attach`` (``node=HEX``, ``data=TEXT``): AppAttach to that node, write
  ``data``, wait for the echo and answer it, with the connection's ICE pair
  type (``transport.pairType``; None over TLS) and the Node-IDs of the
  certificate that connection verified.
* ``answered``: the connections this node answered (pair type, Node-IDs
  of the verified caller, the bytes received).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.interfaces import INode, IUsage, IUsageOperations

APPLICATION = 0xECB0


def _describe(transport: Any) -> dict[str, Any]:
    peer = getattr(transport, "peer", None)
    return {
        "pairType": getattr(transport, "pairType", None),
        "peerNodeIds": [n.hex() for n in getattr(peer, "nodeIds", ())],
    }


class _Echo(Protocol):
    def __init__(self, log: list[dict[str, Any]]) -> None:
        self.entry: dict[str, Any] = {"received": ""}
        log.append(self.entry)

    def connectionMade(self) -> None:
        self.entry.update(_describe(self.transport))

    def dataReceived(self, data: bytes) -> None:
        self.entry["received"] += data.decode("utf-8", "replace")
        assert self.transport is not None
        self.transport.write(b"echo:" + data)


class _Caller(Protocol):
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expected and not self.done.called:
            self.done.callback(self.received)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.errback(reason)


class _EchoFactory(Factory):
    def __init__(self, log: list[dict[str, Any]]) -> None:
        self.log = log

    def buildProtocol(self, addr: IAddress) -> Protocol:
        return _Echo(self.log)


class _CallerFactory(Factory):
    def __init__(self, caller: _Caller) -> None:
        self.caller = caller

    def buildProtocol(self, addr: IAddress) -> Protocol:
        return self.caller


@implementer(IUsageOperations)
class EchoService(Service):
    def __init__(self, node: INode) -> None:
        self.node = node
        self.answeredLog: list[dict[str, Any]] = []

    def startService(self) -> None:
        super().startService()
        self.node.listenApplication(APPLICATION, _EchoFactory(self.answeredLog))

    def operations(self) -> Mapping[str, Callable[[Mapping[str, str]], Deferred[dict[str, Any]]]]:
        return {"attach": self._attach, "answered": self._answered}

    def _attach(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        try:
            nodeId = bytes.fromhex(arguments["node"])
            data = arguments["data"].encode()
        except (KeyError, ValueError) as exc:
            raise ValueError(f"attach needs node=HEX and data=TEXT: {exc}") from exc
        return Deferred.fromCoroutine(self._call(nodeId, data))

    async def _call(self, nodeId: bytes, data: bytes) -> dict[str, Any]:
        caller = _Caller(len(b"echo:" + data))
        protocol = await self.node.appAttach(nodeId, APPLICATION, _CallerFactory(caller))
        assert protocol is caller and caller.transport is not None
        caller.transport.write(data)
        echoed = await caller.done
        result = {"echo": echoed.decode("utf-8", "replace"), **_describe(caller.transport)}
        caller.transport.loseConnection()
        return result

    def _answered(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._list())

    async def _list(self) -> dict[str, Any]:
        return {"connections": list(self.answeredLog)}


@implementer(IUsage)
class EchoAppUsage:
    name = "ECHO-APP"
    description = "echoes application bytes over AppAttach (tests only)"
    options: Mapping[str, str] = {}

    def kinds(self) -> list[Any]:
        return []

    def accessPolicies(self) -> list[Any]:
        return []

    def checkOptions(self, options: Mapping[str, str]) -> None:
        return None

    def makeService(self, node: INode, options: dict[str, str]) -> Service:
        return EchoService(node)


echoApp = EchoAppUsage()
