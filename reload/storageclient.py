"""Storing and fetching through the overlay, for usages and people
(RFC 6940 section 7.4): the Python API behind ``INode.store`` and
``INode.fetch`` and behind ``reloadctl store`` and ``fetch``.

Values are signed here with the node's identity (section 7.1) before they
leave; every value that comes back is verified -- signature and access
policy -- by the same rules a storing peer applies (section 7.4.2.2),
except for the unsigned placeholders of section 7.4.2.2 (absent values),
which are recognised and passed on as not existing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from reload.security.certificates import PeerIdentity
from reload.security.signing import VerifiedSigner, signData
from reload.storage.model import dataValueOf
from reload.storage.service import StorageService
from reload.transport.node_api import TransportNode
from reload.wire.header import Destination
from reload.wire.storage import (
    FetchAns,
    FetchReq,
    FindAns,
    FindReq,
    StatAns,
    StatReq,
    StoreAns,
    StoredData,
    StoredDataSpecifier,
    StoredDataValue,
    StoreKindData,
    StoreReq,
)

__all__ = ["FetchedKind", "StorageClient"]

#: Section 7.4.1.1 leaves lifetimes to the storer; a day by default.
DEFAULT_LIFETIME = 86400


@dataclass(frozen=True)
class FetchedKind:
    """What a Fetch returned for one Kind, every value verified."""

    kindId: int
    generation: int
    values: tuple[StoredData, ...]
    #: The verified signer of each value, in order (``None`` for the
    #: unsigned placeholder of a value that does not exist).
    signers: tuple[VerifiedSigner | None, ...] = ()


class StorageClient:
    """Store, Fetch, Stat and Find on behalf of one node.

    ``service`` is the node's own storage service, whose kind table and
    access policies judge what comes back; ``node`` sends the requests.
    """

    def __init__(
        self, node: TransportNode, identity: PeerIdentity, service: StorageService, clock: Any
    ) -> None:
        self.node = node
        self.identity = identity
        self.service = service
        self.clock = clock

    def _request(self, resourceId: bytes, code: int, body: bytes) -> Deferred[Any]:
        return self.node.transport.request([Destination.resource(resourceId)], code, body)

    def store(
        self,
        resourceId: bytes,
        kindId: int,
        values: Iterable[StoredDataValue],
        *,
        lifetime: int = DEFAULT_LIFETIME,
        generation: int = 0,
    ) -> Deferred[StoreAns]:
        """Section 7.4.1: store ``values`` (DataValue, ArrayEntry or
        DictionaryEntry, as the Kind's data model says) at ``resourceId``,
        each signed now; fires with the StoreAns or fails with
        :class:`~reload.errors.ReloadError`."""
        storageTime = int(self.clock.seconds() * 1000)
        stored = tuple(
            StoredData(
                storageTime,
                lifetime,
                value,
                signData(resourceId, kindId, storageTime, value, self.identity),
            )
            for value in values
        )
        body = StoreReq(resourceId, 0, (StoreKindData(kindId, generation, stored),)).encode()
        length = self.node.settings.nodeIdLength
        d = self._request(resourceId, StoreReq.CODE, body)
        return d.addCallback(lambda r: StoreAns.decode(r.body, node_id_length=length))

    def fetch(
        self, resourceId: bytes, specifiers: Sequence[StoredDataSpecifier]
    ) -> Deferred[list[FetchedKind]]:
        """Section 7.4.2: fetch, then verify every value (signature and
        access policy); a value that fails makes the whole Fetch fail with
        Error_Forbidden rather than being silently dropped."""
        body = FetchReq(resourceId, tuple(specifiers)).encode()
        d = self._request(resourceId, FetchReq.CODE, body)
        return d.addCallback(self._verified, resourceId)

    def _verified(self, response: Any, resourceId: bytes) -> list[FetchedKind]:
        answer = FetchAns.decode(response.body, self.service.kinds.models)
        now = self.clock.seconds()
        out = []
        for kind in answer.kind_responses:
            signers = tuple(
                None
                if _placeholder(data)
                else self.service.verifyFetched(resourceId, kind.kind, data, now)
                for data in kind.values
            )
            out.append(FetchedKind(kind.kind, kind.generation, kind.values, signers))
        return out

    def stat(
        self, resourceId: bytes, specifiers: Sequence[StoredDataSpecifier]
    ) -> Deferred[StatAns]:
        """Section 7.4.3: the metadata of the values a Fetch would return."""
        body = StatReq(resourceId, tuple(specifiers)).encode()
        d = self._request(resourceId, StatReq.CODE, body)
        return d.addCallback(lambda r: StatAns.decode(r.body, self.service.kinds.models))

    def find(self, resourceId: bytes, kindIds: Sequence[int]) -> Deferred[FindAns]:
        """Section 7.4.4: per Kind, the closest Resource-ID at or after
        ``resourceId`` that the responsible peer stores data of."""
        body = FindReq(resourceId, tuple(kindIds)).encode()
        d = self._request(resourceId, FindReq.CODE, body)
        return d.addCallback(lambda r: FindAns.decode(r.body))


def _placeholder(data: StoredData) -> bool:
    """Section 7.4.2.2: an absent value is returned unsigned, with exists
    False and the identity 'none' -- it claims nothing, so nothing to
    verify."""
    return data.signature.is_anonymous and not dataValueOf(data.value).exists
