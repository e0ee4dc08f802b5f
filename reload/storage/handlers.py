"""Store, Fetch, Stat and Find as request handlers (RFC 6940 section 7.4).

The answers of the sans-I/O :class:`~reload.storage.service.StorageService`
to decoded requests.  Storage sits below the transport (DESIGN.md), so it
does not know the dispatcher: :meth:`StorageHandlers.methods` lists each
method's code, handler and body decoder, and the node registers them
(:func:`reload.storagestack.registerStorage`).  A handler takes anything
shaped like :class:`IncomingRequest` -- the transport's verified request --
and returns a wire answer body, a :class:`~reload.storage.service.FetchResult`
(the FetchAns and the certificates its security block must carry), or a
Deferred of one; it raises :class:`~reload.errors.ReloadError` to refuse.

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
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred

from reload.errors import ReloadError
from reload.storage.kinds import unknownKindError
from reload.storage.service import FetchResult, StorageService
from reload.wire.message import ErrorCode
from reload.wire.storage import (
    DataModel,
    FetchReq,
    FindAns,
    FindReq,
    StatAns,
    StatReq,
    StoreAns,
    StoreReq,
    UnknownKind,
)

__all__ = ["IncomingRequest", "StorageHandlers", "StorageMethod", "UnknownKinds"]


_Body = TypeVar("_Body")


class _Clock(Protocol):
    def seconds(self) -> float: ...


class _Replication(Protocol):
    """:class:`reload.storage.replication.Replicator`, as the Store handler
    sees it."""

    def settle(self, resourceId: bytes) -> Deferred[None]: ...


class IncomingRequest(Protocol):
    """What a handler reads of a verified request: its decoded body, its
    verified signer (section 6.3.4) and its forwarding header's
    max_response_length (section 6.3.2), 0 when it sets none."""

    @property
    def body(self) -> object: ...

    @property
    def signer(self) -> Any: ...

    @property
    def maxResponseLength(self) -> int: ...


Answer = StoreAns | FetchResult | StatAns | FindAns | Deferred[StoreAns]


@dataclass(frozen=True, slots=True)
class StorageMethod:
    """One storage method: its request code, handler and body decoder."""

    code: int
    handler: Callable[[IncomingRequest], Answer]
    decoder: Callable[[bytes], object]


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

    def methods(self) -> tuple[StorageMethod, ...]:
        """The four methods, for the node to register with its dispatcher."""
        return (
            StorageMethod(StoreReq.CODE, self.store, self._decoder(StoreReq.decode)),
            StorageMethod(FetchReq.CODE, self.fetch, self._decoder(FetchReq.decode)),
            StorageMethod(StatReq.CODE, self.stat, self._decoder(StatReq.decode)),
            StorageMethod(FindReq.CODE, self.find, FindReq.decode),
        )

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
    def _body(request: IncomingRequest, cls: type[_Body]) -> _Body:
        body = request.body
        if isinstance(body, UnknownKinds):
            raise unknownKindError(body.kinds)
        if not isinstance(body, cls):
            raise ReloadError(ErrorCode.INVALID_MESSAGE, f"expected a {cls.__name__}")
        return body

    def store(self, request: IncomingRequest) -> StoreAns | Deferred[StoreAns]:
        """Section 7.4.1; an original Store is answered once the replica
        Stores it caused have been answered (section 10.4), so that an
        acknowledged value is held by the replica set too."""
        body = self._body(request, StoreReq)
        answer = self.service.handleStore(body, request.signer, self.clock.seconds())
        if self.replication is None or body.replica_number != 0:
            return answer
        return self.replication.settle(body.resource).addCallback(lambda _: answer)

    def fetch(self, request: IncomingRequest) -> FetchResult:
        """Section 7.4.2.2, with the certificates of the values' signers,
        which the answer's security block carries (section 6.3.4)."""
        body = self._body(request, FetchReq)
        return self.service.fetch(body, self.clock.seconds(), request.maxResponseLength)

    def stat(self, request: IncomingRequest) -> StatAns:
        body = self._body(request, StatReq)
        return self.service.handleStat(body, self.clock.seconds(), request.maxResponseLength)

    def find(self, request: IncomingRequest) -> FindAns:
        body = self._body(request, FindReq)
        return self.service.handleFind(body, self.clock.seconds())
