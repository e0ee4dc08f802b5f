"""Store, Fetch, Stat and Find on a dispatcher (RFC 6940 section 7.4).

The glue between :class:`~reload.transport.dispatcher.Dispatcher` and the
sans-I/O :class:`~reload.storage.service.StorageService`::

    StorageHandlers(service, clock).register(node.dispatcher)

Bodies are decoded with the data models of the service's Kind table at the
time of the request (a ConfigUpdate that replaces ``service.kinds`` takes
effect at once).  A body naming Kinds this peer does not know is well
formed: it is answered Error_Unknown_Kind listing them all (section
7.4.1.2), not Error_Invalid_Message, so the decoder hands the handler an
:class:`UnknownKinds` instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from twisted.internet.defer import Deferred

from reload.errors import ReloadError
from reload.storage.kinds import unknownKindError
from reload.storage.service import StorageService
from reload.transport.dispatcher import Dispatcher, Reply, Request
from reload.wire.message import ErrorCode
from reload.wire.storage import (
    DataModel,
    FetchAns,
    FetchReq,
    FindAns,
    FindReq,
    StatAns,
    StatReq,
    StoreAns,
    StoreReq,
    UnknownKind,
)

__all__ = ["StorageHandlers", "UnknownKinds"]


_Body = TypeVar("_Body")


class _Clock(Protocol):
    def seconds(self) -> float: ...


class _Replication(Protocol):
    """:class:`reload.storage.replication.Replicator`, as the Store handler
    sees it."""

    def settle(self, resourceId: bytes) -> Deferred[None]: ...


@dataclass(frozen=True, slots=True)
class UnknownKinds:
    """What the decoder gives for a body that names unknown Kinds."""

    kinds: tuple[int, ...]


class StorageHandlers:
    """The four storage methods of ``service``, timed by ``clock`` (the
    node's ``IReactorTime``)."""

    def __init__(
        self, service: StorageService, clock: _Clock, replication: _Replication | None = None
    ) -> None:
        self.service = service
        self.clock = clock
        self.replication = replication

    def register(self, dispatcher: Dispatcher) -> None:
        dispatcher.register(StoreReq.CODE, self.store, self._decoder(StoreReq.decode))
        dispatcher.register(FetchReq.CODE, self.fetch, self._decoder(FetchReq.decode))
        dispatcher.register(StatReq.CODE, self.stat, self._decoder(StatReq.decode))
        dispatcher.register(FindReq.CODE, self.find, FindReq.decode)

    def unregister(self, dispatcher: Dispatcher) -> None:
        for code in (StoreReq.CODE, FetchReq.CODE, StatReq.CODE, FindReq.CODE):
            dispatcher.unregister(code)

    def _decoder(
        self, decode: Callable[[bytes, Mapping[int, DataModel]], object]
    ) -> Callable[[bytes], object]:
        def decoder(data: bytes) -> object:
            try:
                return decode(data, self.service.kinds.models)
            except UnknownKind as exc:
                return UnknownKinds(exc.kinds)

        return decoder

    @staticmethod
    def _body(request: Request, cls: type[_Body]) -> _Body:
        body = request.body
        if isinstance(body, UnknownKinds):
            raise unknownKindError(body.kinds)
        if not isinstance(body, cls):
            raise ReloadError(ErrorCode.INVALID_MESSAGE, f"expected a {cls.__name__}")
        return body

    @staticmethod
    def _maxResponseLength(request: Request) -> int:
        message = request.message
        return message.header.max_response_length if message is not None else 0

    def store(self, request: Request) -> StoreAns | Deferred[StoreAns]:
        """Section 7.4.1; an original Store is answered once the replica
        Stores it caused have been answered (section 10.4), so that an
        acknowledged value is held by the replica set too."""
        body = self._body(request, StoreReq)
        answer = self.service.handleStore(body, request.signer, self.clock.seconds())
        if self.replication is None or body.replica_number != 0:
            return answer
        return self.replication.settle(body.resource).addCallback(lambda _: answer)

    def fetch(self, request: Request) -> Reply:
        """Section 7.4.2.2, with the certificates of the values' signers in
        the answer's security block (section 6.3.4)."""
        body = self._body(request, FetchReq)
        result = self.service.fetch(body, self.clock.seconds(), self._maxResponseLength(request))
        return Reply(FetchAns.CODE, result.answer.encode(), certificates=result.certificates)

    def stat(self, request: Request) -> StatAns:
        body = self._body(request, StatReq)
        return self.service.handleStat(body, self.clock.seconds(), self._maxResponseLength(request))

    def find(self, request: Request) -> FindAns:
        body = self._body(request, FindReq)
        return self.service.handleFind(body, self.clock.seconds())
