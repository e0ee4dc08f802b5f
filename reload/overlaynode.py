"""The node a plugin is given: one object providing all of
:class:`reload.interfaces.INode`.

A peer (and a client, RFC 6940 section 4.2) is built from parts -- the
message layer (:class:`~reload.transport.node_api.TransportNode`), storage
(:class:`~reload.storagestack.StorageStack`), AppAttach
(:class:`~reload.appattach.AppAttachService`) -- and :class:`OverlayNode`
puts the public API on top of them.  It speaks only the public value types
of :mod:`reload.api.data` and fails with :class:`reload.errors.ReloadError`
(or a ``TimeoutError``), so a usage never sees the wire structures; the
conversion between the two is here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolFactory,
)
from zope.interface import implementer

from reload.api.data import (
    DEFAULT_LIFETIME,
    EntryMetadata,
    KindMetadata,
    KindValues,
    Specifier,
    StoreResult,
    StoreValues,
    Value,
)
from reload.appattach import AppAttachService
from reload.errors import AppAttachFailed, ReloadError
from reload.interfaces import DataModel as PublicDataModel
from reload.interfaces import IKind, INode, IRelaySource
from reload.security.tls import serverConnectionCreator, verifiedPeerOf
from reload.security.trust import CertificateRejected
from reload.storage.kinds import KindEntry, unknownKindError
from reload.storage.model import dataValueOf, slotOf
from reload.storageclient import FetchedKind, StorageClient
from reload.transport.node_api import TransportNode
from reload.wire.message import ErrorCode
from reload.wire.storage import (
    ArrayEntry,
    ArrayEntryMeta,
    ArrayRange,
    DataModel,
    DataValue,
    DictionaryEntry,
    DictionaryEntryMeta,
    StatAns,
    StoreAns,
    StoredDataSpecifier,
    StoredDataValue,
)

__all__ = ["ConfiguredKind", "OverlayNode"]

_NO_APPLICATIONS = "this node makes no direct connections (AppAttach needs sockets)"
_NO_TLS = "this node serves no TLS (it has no sockets and no link identity)"


@implementer(IKind)
class ConfiguredKind:
    """A Kind the overlay configuration defines but no usage of this node
    brings (the certificate Kinds of section 8, another application's):
    its values are bytes, checked by the built-in validator if it has one."""

    def __init__(self, entry: KindEntry) -> None:
        self._entry = entry
        self.name = entry.label
        self.kindId = entry.kindId
        self.dataModel = PublicDataModel(int(entry.model))
        self.accessPolicy = entry.policy
        self.maxCount = entry.maxCount
        self.maxSize = entry.maxSize

    def validate(self, value: bytes) -> None:
        if self._entry.validator is not None:
            self._entry.validator(value)

    def encode(self, value: object) -> bytes:
        if not isinstance(value, bytes):
            raise TypeError(f"Kind {self.name} stores bytes, not {type(value).__name__}")
        return value

    def decode(self, data: bytes) -> object:
        return data


@implementer(INode)
class OverlayNode:
    """INode for one peer or client.

    ``transport`` is the node's message layer, ``storage`` its storage
    client (signing what it stores, verifying what it fetches), ``kinds``
    the usages' :class:`IKind` objects by Kind-ID, ``configuration`` a
    function giving the configuration in force (a ConfigUpdate replaces it,
    section 6.5.4), ``applications`` the AppAttach service (``None`` where
    there are no sockets, as in :mod:`reload.testing`).
    """

    def __init__(
        self,
        transport: TransportNode,
        storage: StorageClient | None = None,
        *,
        kinds: Mapping[int, Any] = {},
        configuration: Callable[[], object],
        applications: AppAttachService | None,
    ) -> None:
        self._transport = transport
        #: Set once storage is built: storage is made with the topology,
        #: which is made from this node (:meth:`ITopologyPlugin.makeTopology`).
        self.storage = storage
        self._kinds = dict(kinds)
        self._configuration = configuration
        self._applications = applications
        self.nodeId: bytes = transport.nodeId
        self.clock = transport.clock
        self.reactor = transport.reactor
        #: What ICE knows of this node's NAT (INode.behindNat); the peer
        #: sets it to its ICE handler's knowledge.
        self.natState: Callable[[], bool | None] = lambda: None
        #: Usages offering TURN servers for relayed candidates (in order added).
        self.relaySources: list[IRelaySource] = []

    @property
    def _client(self) -> StorageClient:
        if self.storage is None:
            raise RuntimeError("this node's storage is not built yet")
        return self.storage

    # -- identity and configuration ----------------------------------------------

    @property
    def behindNat(self) -> bool | None:
        return self.natState()

    @property
    def overlayName(self) -> str:
        return str(getattr(self.configuration, "instanceName", self._transport.overlayName))

    @property
    def userName(self) -> str:
        """The rfc822Name of this node's certificate (section 11.3), ''
        when it has none."""
        return self._client.identity.userName or ""

    @property
    def configuration(self) -> object:
        return self._configuration()

    def resourceId(self, name: bytes) -> bytes:
        """The topology's hash of ``name`` (section 10.2 for CHORD-RELOAD)."""
        return self._transport.resourceId(name)

    def kind(self, kindId: int) -> Any:
        """The usage's Kind, or the configuration's; KeyError if neither."""
        found = self._kinds.get(kindId)
        if found is not None:
            return found
        entry = self._client.service.kinds.get(kindId)
        if entry is None:
            raise KeyError(f"Kind {kindId:#x} is not in the overlay configuration")
        return ConfiguredKind(entry)

    def _entry(self, kindId: int) -> KindEntry:
        entry = self._client.service.kinds.get(kindId)
        if entry is None:
            raise unknownKindError((kindId,))
        return entry

    # -- messages and links ---------------------------------------------------------

    def request(
        self,
        destination: bytes,
        messageCode: int,
        body: bytes,
        extensions: Sequence[Any] = (),
        **options: Any,
    ) -> Deferred[tuple[int, bytes]]:
        """Section 6.3: a request routed to ``destination`` (a Node-ID; a
        Resource-ID with ``resource=True``) carrying ``extensions`` (section
        6.3.3, :class:`reload.api.topology.MessageExtension` values)."""
        return self._transport.request(destination, messageCode, body, extensions, **options)

    def attach(
        self, destination: bytes, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[bytes]:
        """Section 6.5.1: an overlay link to the peer responsible for
        ``destination``; Deferred of its Node-ID."""
        return self._transport.attach(destination, via, sendUpdate)

    def appAttach(
        self, nodeId: bytes, application: int, factory: IProtocolFactory
    ) -> Deferred[IProtocol]:
        """Section 6.5.2: a direct connection to ``nodeId`` for
        ``application``, its protocol built by ``factory``; fails with
        :class:`~reload.errors.AppAttachRefused` when the answering
        certificate is not ``nodeId``'s (RFC 7904 section 5.1)."""
        if self._applications is None:
            return fail(AppAttachFailed(_NO_APPLICATIONS))
        return self._applications.appAttach(nodeId, application, factory)

    def listenApplication(self, application: int, factory: IProtocolFactory) -> None:
        """Section 6.5.2: accept AppAttach connections for ``application``."""
        if self._applications is None:
            raise AppAttachFailed(_NO_APPLICATIONS)
        self._applications.listenApplication(application, factory)

    # -- TLS for usages' own listeners ---------------------------------------------------

    def tlsServerConnectionCreator(self) -> IOpenSSLServerConnectionCreator:
        """Section 13.6.3: the server side of an overlay link (this node's
        certificate, the client's required and checked against the trust
        policy of this node's links) for a usage's own TLS listener."""
        if self._applications is None:
            raise AppAttachFailed(_NO_TLS)
        applications = self._applications
        return serverConnectionCreator(
            applications.identity, applications.trust, applications.clock
        )

    def verifiedNodeIds(self, transport: object) -> tuple[bytes, ...]:
        """The Node-IDs the verify callback accepted on this connection;
        empty unless its certificate was verified (fails closed)."""
        try:
            return tuple(verifiedPeerOf(transport).nodeIds)
        except CertificateRejected:
            return ()

    # -- relayed candidates ----------------------------------------------------------------

    def addRelaySource(self, source: IRelaySource) -> None:
        """Section 6.5.1.5: ``source`` offers TURN servers to ICE."""
        if source not in self.relaySources:
            self.relaySources.append(source)

    def removeRelaySource(self, source: IRelaySource) -> None:
        if source in self.relaySources:
            self.relaySources.remove(source)

    # -- storage (section 7.4) ----------------------------------------------------------

    def store(
        self,
        resourceId: bytes,
        kindId: int,
        values: StoreValues,
        lifetime: int = DEFAULT_LIFETIME,
    ) -> Deferred[list[StoreResult]]:
        """Section 7.4.1: sign and store ``values`` of one Kind."""
        try:
            entry = self._entry(kindId)
            wireValues = _wireValues(entry, values)
        except (ReloadError, TypeError, ValueError) as exc:
            return fail(exc)
        d = self._client.store(resourceId, kindId, wireValues, lifetime=lifetime)
        return d.addCallback(_storeResults)

    def fetch(
        self, resourceId: bytes, specifiers: Iterable[Specifier | int]
    ) -> Deferred[list[KindValues]]:
        """Section 7.4.2: fetch and verify; a Kind-ID alone fetches every
        value of that Kind."""
        return Deferred.fromCoroutine(self._fetch(resourceId, specifiers))

    async def _fetch(
        self, resourceId: bytes, specifiers: Iterable[Specifier | int]
    ) -> list[KindValues]:
        kinds = await self._client.fetch(resourceId, self._specifiers(specifiers))
        return [_kindValues(k) for k in kinds]

    def stat(
        self, resourceId: bytes, specifiers: Iterable[Specifier | int]
    ) -> Deferred[list[KindMetadata]]:
        """Section 7.4.3: the metadata of what a Fetch would return."""
        return Deferred.fromCoroutine(self._stat(resourceId, specifiers))

    async def _stat(
        self, resourceId: bytes, specifiers: Iterable[Specifier | int]
    ) -> list[KindMetadata]:
        return _kindMetadata(await self._client.stat(resourceId, self._specifiers(specifiers)))

    def find(self, resourceId: bytes, kindIds: Iterable[int]) -> Deferred[dict[int, bytes | None]]:
        """Section 7.4.4: per Kind, the closest Resource-ID at or after
        ``resourceId`` holding it on the responsible peer, or None."""
        d = self._client.find(resourceId, list(kindIds))
        return d.addCallback(lambda ans: {k.kind: (k.closest or None) for k in ans.results})

    def localData(self, resourceId: bytes, kindId: int) -> tuple[Value, ...]:
        """What this node itself holds of (resourceId, kindId)."""
        service = self._client.service
        stored = service.localData(resourceId, kindId, self.clock.seconds())
        return tuple(_value(data, None) for data in stored)

    def _specifiers(self, specifiers: Iterable[Specifier | int]) -> list[StoredDataSpecifier]:
        out = []
        for given in specifiers:
            spec = Specifier(given) if isinstance(given, int) else given
            model = self._entry(spec.kindId).model
            if model == DataModel.SINGLE:
                out.append(StoredDataSpecifier.single(spec.kindId, spec.generation))
            elif model == DataModel.ARRAY:
                ranges = [ArrayRange(first, last) for first, last in spec.indices]
                out.append(StoredDataSpecifier.array(spec.kindId, ranges, spec.generation))
            else:
                out.append(StoredDataSpecifier.dictionary(spec.kindId, spec.keys, spec.generation))
        return out


def _dataValue(value: bytes | None, label: str) -> DataValue:
    if value is None:
        return DataValue(False)
    if not isinstance(value, bytes):
        raise TypeError(f"Kind {label}: a value is bytes or None, not {type(value).__name__}")
    return DataValue(True, value)


def _wireValues(entry: KindEntry, values: StoreValues) -> list[StoredDataValue]:
    """The public values of one Kind as the StoredDataValues of its data
    model (section 7.2); each existing value passes the Kind's validator
    first, so a bad one fails here with the reason rather than at the
    storing peer."""
    label = entry.label
    out: list[StoredDataValue] = []
    if entry.model == DataModel.SINGLE:
        if isinstance(values, Mapping):
            raise TypeError(f"Kind {label} is SINGLE: store bytes (or None), not a mapping")
        out.append(_dataValue(values, label))
    else:
        if not isinstance(values, Mapping):
            raise TypeError(
                f"Kind {label} is {entry.model.name}: store a mapping of "
                f"{'index' if entry.model == DataModel.ARRAY else 'key'} -> bytes"
            )
        for slot, value in values.items():
            if entry.model == DataModel.ARRAY:
                if not isinstance(slot, int) or not 0 <= slot <= 0xFFFFFFFF:
                    raise ValueError(f"Kind {label}: array index {slot!r} is not a uint32")
                out.append(ArrayEntry(slot, _dataValue(value, label)))
            else:
                if not isinstance(slot, bytes):
                    raise TypeError(f"Kind {label}: dictionary key {slot!r} is not bytes")
                out.append(DictionaryEntry(slot, _dataValue(value, label)))
    if entry.validator is not None:
        for item in out:
            data = dataValueOf(item)
            if data.exists:
                try:
                    entry.validator(data.value)
                except ValueError as exc:
                    raise ReloadError(ErrorCode.INVALID_MESSAGE, f"Kind {label}: {exc}") from None
    return out


def _storeResults(answer: StoreAns) -> list[StoreResult]:
    return [
        StoreResult(k.kind, k.generation_counter, tuple(k.replicas)) for k in answer.kind_responses
    ]


def _value(data: Any, signer: Any) -> Value:
    dataValue = dataValueOf(data.value)
    return Value(
        entry=slotOf(data.value),
        value=dataValue.value if dataValue.exists else b"",
        exists=dataValue.exists,
        storageTime=data.storage_time,
        lifetime=data.lifetime,
        signerNodeId=signer.nodeId if signer is not None else b"",
        signerUserName=(signer.userName or "") if signer is not None else "",
    )


def _kindValues(fetched: FetchedKind) -> KindValues:
    signers = fetched.signers or (None,) * len(fetched.values)
    return KindValues(
        fetched.kindId,
        fetched.generation,
        tuple(_value(data, signer) for data, signer in zip(fetched.values, signers, strict=True)),
    )


def _kindMetadata(answer: StatAns) -> list[KindMetadata]:
    out = []
    for kind in answer.kind_responses:
        entries = []
        for stored in kind.values:
            meta = stored.metadata
            entry: int | bytes | None = None
            if isinstance(meta, ArrayEntryMeta):
                entry, meta = meta.index, meta.value
            elif isinstance(meta, DictionaryEntryMeta):
                entry, meta = meta.key, meta.value
            entries.append(
                EntryMetadata(
                    entry=entry,
                    exists=meta.exists,
                    size=meta.value_length,
                    hashAlgorithm=meta.hash_algorithm,
                    hash=meta.hash_value,
                    storageTime=stored.storage_time,
                    lifetime=stored.lifetime,
                )
            )
        out.append(KindMetadata(kind.kind, kind.generation, tuple(entries)))
    return out
