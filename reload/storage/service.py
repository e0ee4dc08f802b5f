"""The storage service: Store, Fetch, Stat and Find answered on one peer
(RFC 6940 section 7.4), without I/O.

Each ``handle*`` method takes a decoded request body and the time (seconds
since the epoch, from the node's clock) and returns the answer body, or
raises :class:`~reload.errors.ReloadError` with the RFC error
code; :mod:`reload.storage.handlers` puts them on a dispatcher.

A Store (section 7.4.1.1) is checked in this order, and nothing is written
unless every check of every Kind passed; then all its Kinds are written in
one :meth:`~reload.storage.sqlite.RecordStore.commit` ("These operations
MUST be atomic"):

1. responsibility: replica_number 0 and this peer not responsible for the
   Resource-ID -> Error_Not_Found (the RFC says only "must reject"; 7.4.4.2
   answers a misdirected Find with Error_Not_Found, and so does this peer
   for every method); replica_number > 0 from a sender the topology does not
   expect to replicate here -> Error_Forbidden (7.4.1.1);
2. every Kind known, else Error_Unknown_Kind listing them all (7.4.1.2);
3. every value's signature, with
   :func:`~reload.security.signing.verifyData` -> Error_Forbidden (7.4.1.1:
   "The signatures over each individual data element, if any, are valid");
4. access control (7.3, 13.5.1): the value's signer, and for an original
   store also the StoreReq's signer, must satisfy the Kind's policy ->
   Error_Forbidden; the Kind's own value checks -> Error_Invalid_Message;
5. a replica store's generation counter must not be 0 (7.4.1.1) ->
   Error_Invalid_Message;
6. generation counters (7.4.1.1) -> Error_Generation_Counter_Too_Low with a
   StoreAns of the current counters as error_info (7.4.1.2);
7. the merge of :func:`reload.storage.model.merge`: storage times ->
   Error_Data_Too_Old, max-size and max-count -> Error_Data_Too_Large;
8. the per-signer quota -> Error_Forbidden: section 13.5.1 makes a writer
   "authorized to write, pending quota checks", so a signer over its quota
   is not permitted this store (Error_Data_Too_Large is about "the size
   limits for that Kind", which the value does not exceed).

Fetch and Stat (7.4.2, 7.4.3) answer from live values; a body longer than
the request's max_response_length is Error_Response_Too_Large (section
6.3.3.1; section 6.3.2 names Error_Incompatible_with_Overlay for the same
case, the specific code wins, as in the transport).  Find (7.4.4) gives,
per Kind, the closest Resource-ID at or after the requested one that this
peer is responsible for and holds a value of that Kind.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from twisted.logger import Logger

from reload.errors import ReloadError
from reload.interfaces import AccessRequest
from reload.interfaces import DataModel as InterfaceDataModel
from reload.security.signing import CertificateCache, SignatureRejected, VerifiedSigner, verifyData
from reload.storage.kinds import KindEntry, KindTable
from reload.storage.model import (
    Incoming,
    KindRecord,
    Slot,
    StoredValue,
    StoreRejected,
    dataValueOf,
    expiryOf,
    generationMismatch,
    merge,
    metadataOf,
    select,
    slotOf,
)
from reload.storage.policies import PolicyRegistry
from reload.storage.sqlite import RecordStore, StoreError
from reload.wire.message import ErrorCode
from reload.wire.storage import (
    FetchAns,
    FetchKindResponse,
    FetchReq,
    FindAns,
    FindKindData,
    FindReq,
    StatAns,
    StatKindResponse,
    StatReq,
    StoreAns,
    StoredData,
    StoreKindData,
    StoreKindResponse,
    StoreReq,
)

__all__ = [
    "NOT_FOUND_RESOURCE",
    "Budget",
    "Changes",
    "FetchResult",
    "Position",
    "ReplicaChunk",
    "ReplicaStore",
    "Requester",
    "StorageService",
    "StoreListener",
]

#: FindKindData.closest when no Resource-ID is known (section 7.4.4.2: "It
#: is 0 if no Resource-ID is known"): the empty ResourceId, which no real
#: Resource-ID can be (a 16-byte zero could).
NOT_FOUND_RESOURCE = b""


class Requester(Protocol):
    """Who signed the request (the transport's verified signer; a
    :class:`~reload.security.signing.VerifiedSigner` also has ``userName``,
    which USER-MATCH and USER-NODE-MATCH need: without it they deny)."""

    @property
    def nodeId(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A FetchAns and the DER certificates of the signers of its values,
    which the answer's security block should carry (section 6.3.4: "all
    the certificates necessary to verify every signature")."""

    answer: FetchAns
    certificates: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ReplicaStore:
    """A StoreReq that copies everything this peer holds at one Resource-ID
    to a replica or a new responsible peer (sections 10.4, 10.5, 10.7.3),
    with the certificates its values' signatures need."""

    request: StoreReq
    certificates: tuple[bytes, ...]


#: What an original Store changed: each Kind-ID whose generation counter
#: moved, with the slots it wrote (array indices, dictionary keys, None for
#: SINGLE) in the order replica Stores copy them.
Changes = Mapping[int, tuple[Slot, ...]]

#: ``listener(resourceId, changes)``: see :meth:`StorageService.addStoreListener`.
StoreListener = Callable[[bytes, Changes], object]

#: A place in the order replica Stores copy a Resource-ID's values in: the
#: Kind-ID, then the slot's place (array indices ascending, then dictionary
#: keys bytewise; SINGLE has one slot).
Position = tuple[int, tuple[int, int, bytes]]

#: ``budget(certificates)``: the most bytes the StoreReq body of a replica
#: Store may have when its security block carries ``certificates`` (DER)
#: besides the sender's own: max-message-size less everything else of the
#: message, found by encoding it (section 6.6 and 11.1 max-message-size).
Budget = Callable[[tuple[bytes, ...]], int]


@dataclass(frozen=True, slots=True)
class ReplicaChunk:
    """One replica Store of a copy split to fit max-message-size: the
    request, the :data:`Position` of its last value (the next chunk starts
    after it) and the (Kind-ID, slot) of every value it carries."""

    replica: ReplicaStore
    last: Position
    slots: tuple[tuple[int, Slot], ...]


def _seconds(now: float) -> int:
    return int(now * 1000)


def _utc(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, datetime.UTC)


def _sameWriter(nodeId: bytes, userName: object, signer: VerifiedSigner) -> bool:
    """Whether a StoreReq signed as ``nodeId`` and ``userName`` comes from
    the signer of a value, as the access policies see writers (section
    7.3: a Node-ID and a user name, a name that is not a string counting
    as none)."""
    if nodeId != signer.nodeId:
        return False
    theirs = signer.userName
    return (userName if isinstance(userName, str) else "") == (
        theirs if isinstance(theirs, str) else ""
    )


def _validUntilMs(signer: VerifiedSigner) -> int | None:
    """The end of the signer's certificate path validity, which bounds how
    long its values are kept (section 7.1)."""
    until = signer.peer.validUntil
    return _seconds(until.timestamp()) if until is not None else None


class _Context:
    """What a policy sees of the node (:class:`~reload.storage.policies.
    PolicyContext`): the overlay hash and this peer's stored data."""

    def __init__(self, service: StorageService, nowMs: int) -> None:
        self._service = service
        self._nowMs = nowMs

    def resourceId(self, name: bytes) -> bytes:
        return self._service.hashResource(name)

    def localData(self, resourceId: bytes, kindId: int) -> tuple[StoredData, ...]:
        return self._service._localData(resourceId, kindId, self._nowMs)

    @property
    def configuration(self) -> object:
        source = self._service.configuration
        return source() if source is not None else None


class StorageService:
    """One peer's storage, as the four methods of section 7.4 see it.

    ``kinds`` the effective Kind table, ``store`` where records live,
    ``certificates`` the cache signers are found in (the transport's, which
    learns the certificates of every verified message), ``hashResource``
    the overlay's hash (section 10.2 for Chord), ``isResponsible`` the
    topology's answer for a Resource-ID.

    ``acceptReplica(resourceId, senderNodeId)`` says whether a replica
    Store (replica_number > 0) from that sender is plausible (7.4.1.1, 10.4:
    "from an appropriate predecessor in their Neighbor Table"); without it
    every replica Store is refused.  ``replicaSet(resourceId)`` gives the
    Node-IDs a StoreAns lists as replicas.  ``quota`` bounds the bytes of
    values one signer Node-ID may have stored here (None: no bound).
    ``configuration()`` gives the overlay configuration in force, which
    access policies may read (``IAccessPolicy.permits``).
    """

    log = Logger()

    def __init__(
        self,
        kinds: KindTable,
        store: RecordStore,
        certificates: CertificateCache,
        hashResource: Callable[[bytes], bytes],
        isResponsible: Callable[[bytes], bool],
        *,
        policies: PolicyRegistry | None = None,
        acceptReplica: Callable[[bytes, bytes], bool] | None = None,
        replicaSet: Callable[[bytes], Sequence[bytes]] | None = None,
        quota: int | None = None,
        configuration: Callable[[], object] | None = None,
    ) -> None:
        if quota is not None and quota < 0:
            raise ValueError("the quota is a number of bytes, at least 0")
        self.kinds = kinds
        self.store = store
        self.certificates = certificates
        self.hashResource = hashResource
        self.isResponsible = isResponsible
        self.policies = policies if policies is not None else PolicyRegistry()
        self.acceptReplica = acceptReplica
        self.replicaSet = replicaSet
        self.quota = quota
        self.configuration = configuration
        self._listeners: list[StoreListener] = []

    # -- hooks -------------------------------------------------------------------

    def addStoreListener(self, listener: StoreListener) -> None:
        """Call ``listener(resourceId, changes)`` after every original
        (replica_number 0) Store that was written; ``changes`` maps each
        Kind-ID whose generation counter moved to the slots the Store wrote
        (array indices, dictionary keys, None for SINGLE), in stored order.
        The node then copies those values to the replica set (section 10.4,
        :meth:`replicaChunk`)."""
        self._listeners.append(listener)

    def _notify(self, resourceId: bytes, changes: Changes) -> None:
        for listener in list(self._listeners):
            try:
                listener(resourceId, changes)
            except Exception:
                self.log.failure("a store listener failed")

    def _responsible(self, resourceId: bytes) -> bool:
        try:
            return self.isResponsible(resourceId) is True
        except Exception:
            self.log.failure("isResponsible failed for {rid}", rid=resourceId.hex())
            return False

    def _requireResponsible(self, resourceId: bytes, method: str) -> None:
        if not self._responsible(resourceId):
            raise ReloadError(
                ErrorCode.NOT_FOUND,
                f"{method}: this peer is not responsible for Resource-ID {resourceId.hex()}",
            )

    # -- Store (section 7.4.1) ---------------------------------------------------

    def handleStore(self, request: StoreReq, requester: Requester, now: float) -> StoreAns:
        """Answer a StoreReq signed by ``requester`` received at ``now``."""
        resourceId = request.resource
        replica = request.replica_number != 0
        if not replica:
            self._requireResponsible(resourceId, "Store")
        else:
            sender = requester.nodeId
            accept = self.acceptReplica
            try:
                plausible = accept is not None and accept(resourceId, sender) is True
            except Exception:
                self.log.failure("acceptReplica failed")
                plausible = False
            if not plausible:
                raise ReloadError(
                    ErrorCode.FORBIDDEN,
                    f"replica Store for {resourceId.hex()} from {sender.hex()}, which is not a"
                    " node this peer replicates for (section 7.4.1.1)",
                )
        return self._store(request, now, None if replica else requester)

    def applyReplica(self, request: StoreReq, now: float) -> StoreAns:
        """Apply, as a replica store, data this node obtained itself: the
        newer data fetched after a replica Store of its own failed with
        Error_Generation_Counter_Too_Low or Error_Data_Too_Old (section
        7.4.1.1), or data a leaving neighbour handed over.  Signatures and
        access control are checked as for any replica store; the request's
        replica_number is not looked at."""
        return self._store(request, now, None)

    def _store(self, request: StoreReq, now: float, requester: Requester | None) -> StoreAns:
        resourceId = request.resource
        replica = requester is None
        self.kinds.require(kd.kind for kd in request.kind_data)
        nowMs = _seconds(now)
        when = _utc(now)
        entries = [(self.kinds[kd.kind], kd) for kd in request.kind_data]
        # Every signature before any access check and anything written.
        signed: list[list[tuple[StoredData, VerifiedSigner]]] = []
        for entry, kd in entries:
            signers = []
            for index, data in enumerate(kd.values):
                if data.signature.is_anonymous:
                    raise ReloadError(
                        ErrorCode.FORBIDDEN,
                        f"value {index} of Kind {entry.label} is not signed (section 7.4.1.1)",
                    )
                try:
                    signer = verifyData(resourceId, kd.kind, data, self.certificates, when)
                except SignatureRejected as exc:
                    raise ReloadError(
                        ErrorCode.FORBIDDEN,
                        f"value {index} of Kind {entry.label}: {exc.reason}",
                    ) from None
                signers.append((data, signer))
            signed.append(signers)
        context = _Context(self, nowMs)
        for (entry, _), signers in zip(entries, signed, strict=True):
            for index, (data, signer) in enumerate(signers):
                self._authorize(entry, resourceId, data, index, signer, requester, context)
        if replica:
            for entry, kd in entries:
                if kd.generation_counter == 0:
                    raise ReloadError(
                        ErrorCode.INVALID_MESSAGE,
                        f"replica Store of Kind {entry.label} with generation counter 0"
                        " (section 7.4.1.1: Replica Stores MUST NOT use a generation counter"
                        " of 0)",
                    )
        current = [self._record(resourceId, entry) for entry, _ in entries]
        if any(
            generationMismatch(record, kd.generation_counter, replica)
            for record, (_, kd) in zip(current, entries, strict=True)
        ):
            info = StoreAns(
                tuple(
                    StoreKindResponse(kd.kind, record.generation if record is not None else 0)
                    for record, (_, kd) in zip(current, entries, strict=True)
                )
            )
            raise ReloadError(ErrorCode.GENERATION_COUNTER_TOO_LOW, info.encode())
        updated: list[KindRecord] = []
        responses: list[StoreKindResponse] = []
        replicas = () if replica else self._replicas(resourceId)
        for (entry, kd), record, signers in zip(entries, current, signed, strict=True):
            incoming = [
                Incoming(
                    data,
                    expiryOf(nowMs, data.lifetime, _validUntilMs(signer)),
                    signer.nodeId,
                    signer.peer.certificateDer,
                )
                for data, signer in signers
            ]
            try:
                new = merge(
                    record, resourceId, entry, kd.generation_counter, incoming, nowMs, replica
                )
            except StoreRejected as exc:
                raise ReloadError(exc.code, exc.reason) from None
            if new is not None:
                updated.append(new)
            generation = new.generation if new is not None else 0
            responses.append(StoreKindResponse(kd.kind, generation, replicas))
        if not replica:
            # Replica Stores come from neighbours copying what they accepted
            # under their own quota (section 10.4); a replica peer holds the
            # data of three ranges, so the same bound would refuse them first.
            self._checkQuota(current, updated)
        try:
            self.store.commit(updated)
        except StoreError as exc:
            self.log.error("storing failed: {why}", why=str(exc))
            raise ReloadError(
                ErrorCode.FORBIDDEN, "this peer cannot write its storage now; nothing was stored"
            ) from None
        if not replica:
            changes = _changedSlots(current, updated)
            if changes:
                self._notify(resourceId, changes)
        return StoreAns(tuple(responses))

    def _record(self, resourceId: bytes, entry: KindEntry) -> KindRecord | None:
        """The record of ``entry``'s Kind at ``resourceId``.  One kept
        under another data model (the configuration changed the Kind) is
        data this Kind no longer has: treated as absent, and replaced by
        the next store."""
        record = self.store.get(resourceId, entry.kindId)
        if record is not None and record.model != entry.model:
            return None
        return record

    def _replicas(self, resourceId: bytes) -> tuple[bytes, ...]:
        if self.replicaSet is None:
            return ()
        try:
            return tuple(self.replicaSet(resourceId))
        except Exception:
            self.log.failure("replicaSet failed")
            return ()

    def verifyFetched(
        self, resourceId: bytes, kindId: int, data: StoredData, now: float
    ) -> VerifiedSigner:
        """Section 7.4.2.2: a fetcher checks each value it got as a storing
        peer checks a replica: its signature, then that its signer may
        write there (section 7.3).  Raises :class:`ReloadError`
        Error_Forbidden (or Error_Unknown_Kind) saying why not."""
        self.kinds.require((kindId,))
        entry = self.kinds[kindId]
        try:
            signer = verifyData(resourceId, kindId, data, self.certificates, _utc(now))
        except SignatureRejected as exc:
            raise ReloadError(ErrorCode.FORBIDDEN, f"Kind {entry.label}: {exc.reason}") from None
        self._authorize(entry, resourceId, data, 0, signer, None, _Context(self, _seconds(now)))
        return signer

    def _authorize(
        self,
        entry: KindEntry,
        resourceId: bytes,
        data: StoredData,
        index: int,
        signer: VerifiedSigner,
        requester: Requester | None,
        context: _Context,
    ) -> None:
        """Section 7.3: "in a non-replica store, both the signer of the
        StoredValue and the signer of the StoreReq MUST conform to the
        policy.  In the case of a replica store, the signer of the
        StoredValue MUST conform"."""
        if not entry.policyAvailable:
            raise ReloadError(
                ErrorCode.FORBIDDEN,
                f"Kind {entry.label}: access policy {entry.policy} is not available on this"
                " peer, so nothing of this Kind can be stored here",
            )
        dataValue = dataValueOf(data.value)
        payload = dataValue.value
        slot = slotOf(data.value)

        def check(userName: object, nodeId: bytes, who: str) -> None:
            request = AccessRequest(
                resourceId=resourceId,
                kindId=entry.kindId,
                dataModel=InterfaceDataModel(int(entry.model)),
                entry=slot,
                value=payload,
                signerUserName=userName if isinstance(userName, str) else "",
                signerNodeIds=(nodeId,),
                maxNodeMultiple=entry.maxNodeMultiple,
                exists=dataValue.exists,
            )
            if not self.policies.permits(entry.policy, request, context):
                raise ReloadError(
                    ErrorCode.FORBIDDEN,
                    f"value {index} of Kind {entry.label}: {who} {nodeId.hex()} may not write"
                    f" Resource-ID {resourceId.hex()} under {entry.policy} (section 7.3)",
                )
            if entry.storeCheck is not None:
                try:
                    entry.storeCheck(request, context)
                except ValueError as exc:
                    raise ReloadError(
                        ErrorCode.FORBIDDEN, f"value {index} of Kind {entry.label}: {exc}"
                    ) from None
                except Exception:
                    self.log.failure(
                        "store check of Kind {kind} failed; refusing", kind=entry.label
                    )
                    raise ReloadError(
                        ErrorCode.FORBIDDEN,
                        f"value {index} of Kind {entry.label}: its store check failed",
                    ) from None

        check(signer.userName, signer.nodeId, "its signer")
        if requester is not None:
            # A client usually signs its values and its StoreReq with the
            # same certificate: the StoreReq's signer then makes the very
            # AccessRequest just allowed, and the policy is not asked again.
            userName = getattr(requester, "userName", None)
            if not _sameWriter(requester.nodeId, userName, signer):
                check(userName, requester.nodeId, "the StoreReq's signer")
        if entry.validator is not None and dataValue.exists:
            try:
                entry.validator(payload)
            except ValueError as exc:
                raise ReloadError(
                    ErrorCode.INVALID_MESSAGE, f"value {index} of Kind {entry.label}: {exc}"
                ) from None
            except Exception:
                self.log.failure("the validator of Kind {kind} failed", kind=entry.label)
                raise ReloadError(
                    ErrorCode.INVALID_MESSAGE,
                    f"value {index} of Kind {entry.label} could not be checked",
                ) from None

    def _checkQuota(
        self, current: Sequence[KindRecord | None], updated: Sequence[KindRecord]
    ) -> None:
        """Refuse a store that would take a signer above the quota; one
        that frees space (a delete) always passes."""
        if self.quota is None:
            return
        delta: dict[bytes, int] = {}
        for record in updated:
            for signer, size in record.usage().items():
                delta[signer] = delta.get(signer, 0) + size
        for old in current:
            if old is not None:
                for signer, size in old.usage().items():
                    delta[signer] = delta.get(signer, 0) - size
        for signer, change in delta.items():
            if change > 0 and self.store.usage(signer) + change > self.quota:
                raise ReloadError(
                    ErrorCode.FORBIDDEN,
                    f"signer {signer.hex()} would store {self.store.usage(signer) + change}"
                    f" bytes on this peer, its quota is {self.quota} (section 13.5)",
                )

    # -- Fetch and Stat (sections 7.4.2, 7.4.3) ----------------------------------

    def _checkSpecifiers(self, request: FetchReq | StatReq, method: str) -> None:
        self._requireResponsible(request.resource, method)
        self.kinds.require(s.kind for s in request.specifiers)
        for spec in request.specifiers:
            if spec.model != self.kinds[spec.kind].model:
                raise ReloadError(
                    ErrorCode.INVALID_MESSAGE,
                    f"specifier of Kind {spec.kind:#x} is {spec.model.name}, the Kind is"
                    f" {self.kinds[spec.kind].model.name}",
                )

    def _select(
        self, resourceId: bytes, request: FetchReq | StatReq, nowMs: int
    ) -> list[tuple[int, int, list[tuple[StoredData, StoredValue | None]]]]:
        out = []
        for spec in request.specifiers:
            record = self._record(resourceId, self.kinds[spec.kind])
            try:
                generation, items = select(record, spec, nowMs)
            except StoreRejected as exc:
                raise ReloadError(exc.code, exc.reason) from None
            out.append((spec.kind, generation, items))
        return out

    @staticmethod
    def _checkLength(answer: FetchAns | StatAns, maxResponseLength: int) -> None:
        if maxResponseLength:
            length = len(answer.encode())
            if length > maxResponseLength:
                raise ReloadError(
                    ErrorCode.RESPONSE_TOO_LARGE,
                    f"the answer's body alone is {length} bytes, max_response_length"
                    f" {maxResponseLength} (section 6.3.3.1)",
                )

    def fetch(self, request: FetchReq, now: float, maxResponseLength: int = 0) -> FetchResult:
        """Section 7.4.2: the FetchAns and the certificates of its values'
        signers.  ``maxResponseLength`` is the request's
        max_response_length (0: none)."""
        self._checkSpecifiers(request, "Fetch")
        nowMs = _seconds(now)
        responses = []
        certificates: dict[bytes, None] = {}
        for kind, generation, items in self._select(request.resource, request, nowMs):
            responses.append(FetchKindResponse(kind, generation, tuple(d for d, _ in items)))
            for _, stored in items:
                if stored is not None and stored.certificate:
                    certificates.setdefault(stored.certificate)
        answer = FetchAns(tuple(responses))
        self._checkLength(answer, maxResponseLength)
        return FetchResult(answer, tuple(certificates))

    def handleFetch(self, request: FetchReq, now: float, maxResponseLength: int = 0) -> FetchAns:
        return self.fetch(request, now, maxResponseLength).answer

    def handleStat(self, request: StatReq, now: float, maxResponseLength: int = 0) -> StatAns:
        """Section 7.4.3: Fetch's selection, as metadata."""
        self._checkSpecifiers(request, "Stat")
        nowMs = _seconds(now)
        answer = StatAns(
            tuple(
                StatKindResponse(kind, generation, tuple(metadataOf(d) for d, _ in items))
                for kind, generation, items in self._select(request.resource, request, nowMs)
            )
        )
        self._checkLength(answer, maxResponseLength)
        return answer

    # -- Find (section 7.4.4) ----------------------------------------------------

    def handleFind(self, request: FindReq, now: float) -> FindAns:
        """Section 7.4.4: per Kind, the closest Resource-ID at or after the
        requested one (clockwise on the ring, the walk R_n+1 = nearest(1 +
        R_n) of 7.4.4) that this peer is responsible for and holds an
        existing value of that Kind at; :data:`NOT_FOUND_RESOURCE` for none
        and for an unknown Kind ("If a Kind-ID is not known, then the
        corresponding Resource-ID MUST be 0")."""
        target = request.resource
        if len(set(request.kinds)) != len(request.kinds):
            raise ReloadError(
                ErrorCode.INVALID_MESSAGE, "a Kind-ID appears twice in the FindReq (7.4.4.1)"
            )
        self._requireResponsible(target, "Find")
        nowMs = _seconds(now)
        bits = 8 * len(target)
        origin = int.from_bytes(target, "big")
        best: dict[int, tuple[int, bytes]] = {}
        wanted = {k for k in request.kinds if k in self.kinds}
        for resourceId in self.store.resources():
            if len(resourceId) != len(target):
                continue
            kinds = [
                r.kindId
                for r in self.store.records(resourceId)
                if r.kindId in wanted and r.holdsExisting(nowMs)
            ]
            if not kinds or not self._responsible(resourceId):
                continue
            distance = (int.from_bytes(resourceId, "big") - origin) % (1 << bits)
            for kind in kinds:
                if kind not in best or distance < best[kind][0]:
                    best[kind] = (distance, resourceId)
        return FindAns(
            tuple(
                FindKindData(kind, best[kind][1] if kind in best else NOT_FOUND_RESOURCE)
                for kind in request.kinds
            )
        )

    # -- data for policies, replication and handover -------------------------------

    def _localData(self, resourceId: bytes, kindId: int, nowMs: int) -> tuple[StoredData, ...]:
        record = self.store.get(resourceId, kindId)
        if record is None:
            return ()
        live = record.live(nowMs)
        return tuple(live[s].at(nowMs) for s in _ordered(live))

    def localData(self, resourceId: bytes, kindId: int, now: float) -> tuple[StoredData, ...]:
        """The live values stored here at (resourceId, kindId), as a Fetch
        would serve them (:meth:`reload.interfaces.INode.localData`)."""
        return self._localData(resourceId, kindId, _seconds(now))

    def resources(self) -> list[bytes]:
        """Every Resource-ID this peer holds data for."""
        return self.store.resources()

    def resourcesIn(self, ids: Container[bytes]) -> list[bytes]:
        """The Resource-IDs held here that are in ``ids`` (e.g. a range
        a topology's responsibility change names, section 10.7.3)."""
        return self.store.resourcesIn(ids)

    @property
    def numResources(self) -> int:
        """Probe's num_resources (section 6.4.2.5)."""
        return len(self.store.resources())

    def replicaStore(
        self, resourceId: bytes, replicaNumber: int, now: float, kinds: Iterable[int] | None = None
    ) -> ReplicaStore | None:
        """One StoreReq that copies everything held at ``resourceId`` (of
        ``kinds``, default all) to another peer, whatever its size: to
        replica ``replicaNumber`` after an original store (section 10.4),
        or to the new responsible peer of a handover (10.5, 10.7.3, with a
        nonzero replica_number: those values are not the sender's).  Each
        Kind carries its generation counter and its live values with the
        lifetime they have left (7.4.1.1).  None when nothing is held.
        Replication sends :meth:`replicaChunk`, which fits a message."""
        chunk = self.replicaChunk(resourceId, replicaNumber, now, kinds=kinds)
        return chunk.replica if chunk is not None else None

    def replicaChunk(
        self,
        resourceId: bytes,
        replicaNumber: int,
        now: float,
        *,
        after: Position | None = None,
        slots: Changes | None = None,
        kinds: Iterable[int] | None = None,
        budget: Budget | None = None,
    ) -> ReplicaChunk | None:
        """The next replica Store of a copy of what is held at
        ``resourceId``, or None when nothing is left to copy.

        Values go in a stable order (Kinds by Kind-ID, then
        :func:`_ordered` slots), starting after ``after``; ``slots`` limits
        the copy to the values an original Store wrote (section 10.4: the
        replicas get the new values), ``kinds`` to some Kinds.  The chunk
        takes values while its StoreReq body stays within ``budget`` of the
        certificates of the values' signers it must carry (section 6.3.4),
        measured by encoding each part: a StoreReq is its header plus, per
        Kind, a StoreKindData header and the encoded values, so the sum is
        the exact encoded length.  A chunk holds at least one value (one
        alone above the budget would not have fitted the original Store
        either: sending it reports why).

        Each StoreKindData carries the Kind's generation counter as it is
        now: a replica store sets the replica's counter to it and is not
        checked against it (section 7.4.1.1), so every chunk is taken, and
        chunks sent one after another leave the replica at the newest
        counter.  Values keep the lifetime they have left (7.4.1.1)."""
        if not 1 <= replicaNumber <= 0xFF:
            raise ValueError(f"a replica number is 1 to 255, not {replicaNumber}")
        nowMs = _seconds(now)
        only = set(kinds) if kinds is not None else None
        size = len(StoreReq(resourceId, replicaNumber, ()).encode())
        kindData: list[StoreKindData] = []
        certificates: dict[bytes, None] = {}
        carried: list[tuple[int, Slot]] = []
        last: Position | None = None
        full = False
        for record in sorted(self.store.records(resourceId), key=lambda r: r.kindId):
            kindId = record.kindId
            if full:
                break
            if (only is not None and kindId not in only) or kindId not in self.kinds:
                continue
            if record.generation == 0 or (slots is not None and kindId not in slots):
                continue
            wanted = set(slots[kindId]) if slots is not None else None
            if after is not None and kindId < after[0]:
                continue
            head = len(StoreKindData(kindId, record.generation, ()).encode())
            live = record.live(nowMs)
            values: list[StoredData] = []
            for slot in _ordered(live):
                position = (kindId, _slotKey(slot))
                if (after is not None and position <= after) or (
                    wanted is not None and slot not in wanted
                ):
                    continue
                stored = live[slot]
                data = stored.at(nowMs)
                grown = size + len(data.encode()) + (0 if values else head)
                needed = dict(certificates)
                if stored.certificate:
                    needed.setdefault(stored.certificate)
                if budget is not None and carried and grown > budget(tuple(needed)):
                    full = True
                    break
                values.append(data)
                carried.append((kindId, slot))
                certificates = needed
                size = grown
                last = position
            if values:
                kindData.append(StoreKindData(kindId, record.generation, tuple(values)))
        if last is None:
            return None
        request = StoreReq(resourceId, replicaNumber, tuple(kindData))
        return ReplicaChunk(ReplicaStore(request, tuple(certificates)), last, tuple(carried))

    def replicaChunks(
        self,
        resourceId: bytes,
        replicaNumber: int,
        now: float,
        *,
        slots: Changes | None = None,
        kinds: Iterable[int] | None = None,
        budget: Budget | None = None,
    ) -> Iterator[ReplicaChunk]:
        """Every chunk of a copy (:meth:`replicaChunk`), first to last."""
        after: Position | None = None
        while True:
            chunk = self.replicaChunk(
                resourceId,
                replicaNumber,
                now,
                after=after,
                slots=slots,
                kinds=kinds,
                budget=budget,
            )
            if chunk is None:
                return
            yield chunk
            after = chunk.last

    def dropResources(self, resourceIds: Iterable[bytes]) -> None:
        """Forget the data at ``resourceIds`` (after handing it over)."""
        self.store.dropResources(resourceIds)

    def purgeExpired(self, now: float) -> int:
        """Remove expired values (section 7.4.1.3: "When a stored
        nonexistent value's lifetime expires, it is simply removed"), and
        records left with none; returns how many values went.  Run it
        periodically; reads already ignore expired values."""
        nowMs = _seconds(now)
        keep: list[KindRecord] = []
        gone: list[tuple[bytes, int]] = []
        removed = 0
        for record in list(self.store):
            if not record.hasExpired(nowMs):
                continue
            fresh = record.withoutExpired(nowMs)
            removed += len(record.values) - len(fresh.values)
            if fresh.values:
                keep.append(fresh)
            else:
                gone.append((record.resourceId, record.kindId))
        self.store.commit(keep, gone)
        return removed


def _slotKey(slot: Slot) -> tuple[int, int, bytes]:
    return (0, slot, b"") if isinstance(slot, int) else (1, 0, slot or b"")


def _ordered(values: Iterable[Slot]) -> list[Slot]:
    """Slots in a stable order: array indices ascending, keys bytewise."""
    return sorted(values, key=_slotKey)


def _changedSlots(
    current: Sequence[KindRecord | None], updated: Sequence[KindRecord]
) -> dict[int, tuple[Slot, ...]]:
    """What an original Store changed (:data:`Changes`): per Kind whose
    generation counter moved, the slots whose value differs from before."""
    before = {r.kindId: r for r in current if r is not None}
    changes: dict[int, tuple[Slot, ...]] = {}
    for record in updated:
        old = before.get(record.kindId)
        if record.generation == (old.generation if old is not None else 0):
            continue
        previous = old.values if old is not None else {}
        slots = tuple(s for s in _ordered(record.values) if previous.get(s) is not record.values[s])
        if slots:
            changes[record.kindId] = slots
    return changes
