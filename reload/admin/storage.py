"""Storage operations on the admin API, for ``reloadctl store``, ``fetch``,
``stat`` and ``find`` (RFC 6940 section 7.4): the peer stores and fetches as
itself, signing what it stores and verifying what it fetches.

Every operation names a Kind (``kind=ID``, decimal or 0x-hex) and a
Resource-ID (``resource=HEX``) or the name it is the hash of (``name=TEXT``,
``node=HEX`` for a Node-ID's).  Array entries take ``index=N`` (store) or
``index=FIRST-LAST`` (fetch), dictionary entries ``key=TEXT``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.web.server import Request

from reload.admin.overlay import BadRequest, Operation, hexQueryArg, queryArg
from reload.storage.model import dataValueOf
from reload.storageclient import FetchedKind, StorageClient
from reload.transport.node_api import TransportNode
from reload.wire.storage import (
    ArrayEntry,
    ArrayEntryMeta,
    ArrayRange,
    DataModel,
    DataValue,
    DictionaryEntry,
    DictionaryEntryMeta,
    StoredData,
    StoredDataSpecifier,
)

__all__ = ["fetch", "find", "held", "stat", "store"]


def _kind(request: Request) -> int:
    value = queryArg(request, "kind")
    if value is None:
        raise BadRequest("missing kind")
    try:
        return int(value, 0)
    except ValueError:
        raise BadRequest(f"kind {value!r} is not a number") from None


def _resource(node: TransportNode, request: Request) -> bytes:
    name = queryArg(request, "name")
    if name is not None:
        return node.resourceId(name.encode())
    if queryArg(request, "node") is not None:
        return node.resourceId(hexQueryArg(request, "node"))
    return hexQueryArg(request, "resource")


def _model(client: StorageClient, kindId: int) -> DataModel:
    entry = client.service.kinds.get(kindId)
    if entry is None:
        raise BadRequest(
            f"Kind {kindId:#x} is not in this overlay's configuration (start a new overlay "
            f"with twistd reload --kind {kindId:#x}, or reloadctl lab --kind {kindId:#x}; "
            "or add a <kind-block> to its overlay.xml)"
        )
    return entry.model


def _int(request: Request, name: str, default: int) -> int:
    value = queryArg(request, name)
    if value is None:
        return default
    try:
        return int(value, 0)
    except ValueError:
        raise BadRequest(f"{name} {value!r} is not a number") from None


def _text(data: bytes) -> dict[str, str]:
    try:
        return {"value": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"valueHex": data.hex()}


def _describe(data: StoredData) -> dict[str, Any]:
    value = dataValueOf(data.value)
    out: dict[str, Any] = {
        "storageTime": data.storage_time,
        "lifetime": data.lifetime,
        "exists": value.exists,
        **_text(value.value),
    }
    if isinstance(data.value, ArrayEntry):
        out["index"] = data.value.index
    elif isinstance(data.value, DictionaryEntry):
        out["key"] = _text(data.value.key).popitem()[1]
    return out


#: The HashAlgorithm code points a MetaData digest names (section 7.4.3.1:
#: the TLS HashAlgorithm registry of RFC 5246 section 7.4.1.4.1).
_HASHES = {0: "none", 1: "md5", 2: "sha1", 3: "sha224", 4: "sha256", 5: "sha384", 6: "sha512"}


def _metadata(value: Any) -> dict[str, Any]:
    """One value of a StatAns (section 7.4.3): where it is (array index,
    dictionary key), whether it exists, its size and digest."""
    meta = value.metadata
    out: dict[str, Any] = {"storageTime": value.storage_time, "lifetime": value.lifetime}
    if isinstance(meta, ArrayEntryMeta):
        out["index"] = meta.index
        meta = meta.value
    elif isinstance(meta, DictionaryEntryMeta):
        out["key"] = _text(meta.key).popitem()[1]
        meta = meta.value
    out.update(
        exists=meta.exists,
        size=meta.value_length,
        hashAlgorithm=_HASHES.get(meta.hash_algorithm, str(meta.hash_algorithm)),
        hash=meta.hash_value.hex(),
    )
    return out


def _perKind(
    resourceId: bytes, kinds: Iterable[tuple[int, int, list[dict[str, Any]]]]
) -> dict[str, Any]:
    """The JSON of a Fetch or Stat answer: per Kind its generation counter
    and the values, described."""
    return {
        "resource": resourceId.hex(),
        "kinds": [
            {"kind": kind, "generation": generation, "values": values}
            for kind, generation, values in kinds
        ],
    }


StorageOperation = Callable[[TransportNode, StorageClient, Request], Deferred[dict[str, Any]]]


def _withStorage(client: Callable[[], StorageClient | None], run: StorageOperation) -> Operation:
    def operation(node: TransportNode, request: Request) -> Deferred[dict[str, Any]]:
        storage = client()
        if storage is None:
            raise BadRequest("this peer has no storage yet")
        return run(node, storage, request)

    return operation


def store(client: Callable[[], StorageClient | None]) -> Operation:
    """Store one value (section 7.4.1) of the Kind's data model."""

    def run(node: TransportNode, storage: StorageClient, request: Request) -> Deferred[Any]:
        kindId = _kind(request)
        resourceId = _resource(node, request)
        text = queryArg(request, "value")
        if text is None:
            raise BadRequest("missing value")
        value = DataValue(True, text.encode())
        model = _model(storage, kindId)
        entry: DataValue | ArrayEntry | DictionaryEntry = value
        if model == DataModel.ARRAY:
            entry = ArrayEntry(_int(request, "index", ArrayEntry.APPEND), value)
        elif model == DataModel.DICTIONARY:
            key = queryArg(request, "key")
            if key is None:
                raise BadRequest("a dictionary Kind needs key")
            entry = DictionaryEntry(key.encode(), value)
        lifetime = _int(request, "lifetime", 86400)

        def answered(answer: Any) -> dict[str, Any]:
            [response] = answer.kind_responses
            return {
                "resource": resourceId.hex(),
                "kind": kindId,
                "generation": response.generation_counter,
                "replicas": [r.hex() for r in response.replicas],
            }

        d = storage.store(resourceId, kindId, [entry], lifetime=lifetime)
        return d.addCallback(answered)

    return _withStorage(client, run)


def _specifier(storage: StorageClient, request: Request, kindId: int) -> StoredDataSpecifier:
    model = _model(storage, kindId)
    if model == DataModel.ARRAY:
        first, _, last = (queryArg(request, "index") or f"0-{ArrayRange.LAST}").partition("-")
        try:
            bounds = ArrayRange(int(first, 0), int(last or first, 0))
        except ValueError:
            raise BadRequest("index is FIRST-LAST") from None
        return StoredDataSpecifier.array(kindId, [bounds])
    if model == DataModel.DICTIONARY:
        key = queryArg(request, "key")
        return StoredDataSpecifier.dictionary(kindId, [key.encode()] if key else [])
    return StoredDataSpecifier.single(kindId)


def fetch(client: Callable[[], StorageClient | None]) -> Operation:
    """Fetch (section 7.4.2), every value verified."""

    def run(node: TransportNode, storage: StorageClient, request: Request) -> Deferred[Any]:
        kindId = _kind(request)
        resourceId = _resource(node, request)

        def answered(kinds: list[FetchedKind]) -> dict[str, Any]:
            return _perKind(
                resourceId,
                ((k.kindId, k.generation, [_describe(v) for v in k.values]) for k in kinds),
            )

        specifier = _specifier(storage, request, kindId)
        return storage.fetch(resourceId, [specifier]).addCallback(answered)

    return _withStorage(client, run)


def stat(client: Callable[[], StorageClient | None]) -> Operation:
    """Stat (section 7.4.3): sizes and digests instead of values."""

    def run(node: TransportNode, storage: StorageClient, request: Request) -> Deferred[Any]:
        kindId = _kind(request)
        resourceId = _resource(node, request)

        def answered(answer: Any) -> dict[str, Any]:
            return _perKind(
                resourceId,
                (
                    (k.kind, k.generation, [_metadata(v) for v in k.values])
                    for k in answer.kind_responses
                ),
            )

        specifier = _specifier(storage, request, kindId)
        return storage.stat(resourceId, [specifier]).addCallback(answered)

    return _withStorage(client, run)


def find(client: Callable[[], StorageClient | None]) -> Operation:
    """Find (section 7.4.4)."""

    def run(node: TransportNode, storage: StorageClient, request: Request) -> Deferred[Any]:
        kindId = _kind(request)
        resourceId = _resource(node, request)

        def answered(answer: Any) -> dict[str, Any]:
            return {
                "resource": resourceId.hex(),
                "results": [{"kind": r.kind, "closest": r.closest.hex()} for r in answer.results],
            }

        return storage.find(resourceId, [kindId]).addCallback(answered)

    return _withStorage(client, run)


def held(client: Callable[[], StorageClient | None]) -> Operation:
    """What this peer itself holds at a Resource-ID -- as the responsible
    peer or as a replica (section 10.4) -- without asking the overlay: how
    an operator sees where a value's copies are."""

    def run(node: TransportNode, storage: StorageClient, request: Request) -> Deferred[Any]:
        resourceId = _resource(node, request)
        service = storage.service
        nowMs = int(node.clock.seconds() * 1000)
        kinds = [
            {
                "kind": record.kindId,
                "generation": record.generation,
                "values": len(record.live(nowMs)),
            }
            for record in sorted(service.store.records(resourceId), key=lambda r: r.kindId)
        ]
        responsible = service.isResponsible(resourceId) is True
        return succeed({"resource": resourceId.hex(), "responsible": responsible, "kinds": kinds})

    return _withStorage(client, run)
