"""Test helper: real identities, real signatures and a storage service.

Everything happens at the fixed time :data:`NOW` (seconds since the epoch),
inside the validity of the self-signed certificates made here, so that
expiry is deterministic; a test moves time by passing another ``now``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from reload.config import KindConfig
from reload.security.certificates import PeerIdentity, makeSelfSignedCertificate
from reload.security.keys import generateEcdsaKey
from reload.security.signing import (
    CertificateCache,
    VerifiedSigner,
    signData,
    signerIdentityFor,
)
from reload.security.trust import TrustPolicy
from reload.storage.kinds import CERTIFICATE_BY_NODE, CERTIFICATE_BY_USER, KindTable
from reload.storage.policies import PolicyRegistry
from reload.storage.service import StorageService
from reload.storage.sqlite import MemoryStore, RecordStore
from reload.wire.storage import (
    ArrayEntry,
    ArrayRange,
    DataValue,
    DictionaryEntry,
    FetchReq,
    StoredData,
    StoredDataSpecifier,
    StoredDataValue,
    StoreKindData,
    StoreReq,
)
from topologies.chordreload.ring import hashResource

OVERLAY = "storage.example.org"
WHEN = datetime.datetime(2031, 3, 1, 12, 0, tzinfo=datetime.UTC)
NOW = WHEN.timestamp()
NOW_MS = int(NOW * 1000)
HOUR = 3600

# Private Kind-IDs (section 14.6: 0xf0000000 and above), one per policy.
SINGLE_USER = 0xF0000001  # SINGLE, USER-MATCH
ARRAY_NODE = 0xF0000002  # ARRAY, NODE-MATCH
DICT_USER_NODE = 0xF0000003  # DICTIONARY, USER-NODE-MATCH
SINGLE_MULTIPLE = 0xF0000004  # SINGLE, NODE-MULTIPLE (max 3)
DICT_NODE = 0xF0000005  # DICTIONARY, NODE-MATCH
DICT_REDIR = 0xF0000006  # DICTIONARY, NODE-ID-MATCH (no such policy installed)
ARRAY_USER = 0xF0000007  # ARRAY, USER-MATCH, big limits (quota tests)
DICT_USER = 0xF0000008  # DICTIONARY, USER-MATCH, big limits (replica chunks)

KIND_CONFIGS = (
    KindConfig(
        kindId=SINGLE_USER, dataModel="SINGLE", accessControl="USER-MATCH", maxCount=1, maxSize=64
    ),
    KindConfig(
        kindId=ARRAY_NODE, dataModel="ARRAY", accessControl="NODE-MATCH", maxCount=5, maxSize=64
    ),
    KindConfig(
        kindId=DICT_USER_NODE,
        dataModel="DICTIONARY",
        accessControl="USER-NODE-MATCH",
        maxCount=3,
        maxSize=64,
    ),
    KindConfig(
        kindId=SINGLE_MULTIPLE,
        dataModel="SINGLE",
        accessControl="NODE-MULTIPLE",
        maxNodeMultiple=3,
        maxCount=1,
        maxSize=64,
    ),
    KindConfig(
        kindId=DICT_NODE, dataModel="DICTIONARY", accessControl="NODE-MATCH", maxCount=4, maxSize=64
    ),
    KindConfig(
        kindId=DICT_REDIR,
        dataModel="DICTIONARY",
        accessControl="NODE-ID-MATCH",
        maxCount=4,
        maxSize=64,
    ),
    KindConfig(
        kindId=ARRAY_USER,
        dataModel="ARRAY",
        accessControl="USER-MATCH",
        maxCount=1000,
        maxSize=1000,
    ),
    KindConfig(
        kindId=DICT_USER,
        dataModel="DICTIONARY",
        accessControl="USER-MATCH",
        maxCount=1000,
        maxSize=1000,
    ),
    KindConfig(
        name="CERTIFICATE_BY_NODE",
        dataModel="ARRAY",
        accessControl="NODE-MATCH",
        maxCount=2,
        maxSize=2048,
    ),
    KindConfig(
        name="CERTIFICATE_BY_USER",
        dataModel="ARRAY",
        accessControl="USER-MATCH",
        maxCount=2,
        maxSize=2048,
    ),
)

TRUST = TrustPolicy(
    overlayName=OVERLAY, roots=(), selfSignedPermitted=True, selfSignedDigest="sha1"
)


def makeIdentity(userName: str | None = None, nodeIdCount: int = 1) -> PeerIdentity:
    """A self-signed identity (section 11.3.1) valid at :data:`NOW`."""
    key = generateEcdsaKey()
    cert = makeSelfSignedCertificate(
        key,
        OVERLAY,
        userName,
        nodeIdCount=nodeIdCount,
        validity=datetime.timedelta(days=30),
        now=WHEN,
    )
    return PeerIdentity.fromCertificate(cert, key, OVERLAY)


def certificateCache(*identities: PeerIdentity) -> CertificateCache:
    cache = CertificateCache(TRUST)
    for identity in identities:
        cache.add(TRUST.verify([identity.certificate], WHEN))
    return cache


def requester(
    cache: CertificateCache, identity: PeerIdentity, nodeId: bytes | None = None
) -> VerifiedSigner:
    """The verified signer of a request made by ``identity`` (what the
    transport hands a handler)."""
    return cache.signer(signerIdentityFor(identity, nodeId), WHEN)


def h(name: bytes | str) -> bytes:
    """The overlay hash (CHORD-RELOAD, section 10.2)."""
    return hashResource(name.encode() if isinstance(name, str) else name)


def sign(
    identity: PeerIdentity,
    resourceId: bytes,
    kind: int,
    value: StoredDataValue,
    storageTime: int = NOW_MS,
    lifetime: int = HOUR,
    nodeId: bytes | None = None,
) -> StoredData:
    signature = signData(resourceId, kind, storageTime, value, identity, nodeId=nodeId)
    return StoredData(storageTime, lifetime, value, signature)


def single(value: bytes | None) -> DataValue:
    return DataValue(value is not None, value or b"")


def entry(index: int, value: bytes | None) -> ArrayEntry:
    return ArrayEntry(index, single(value))


def item(key: bytes, value: bytes | None) -> DictionaryEntry:
    return DictionaryEntry(key, single(value))


def storeReq(
    resourceId: bytes,
    kind: int,
    values: Sequence[StoredData],
    generation: int = 0,
    replica: int = 0,
) -> StoreReq:
    return StoreReq(resourceId, replica, (StoreKindData(kind, generation, tuple(values)),))


def fetchSingle(resourceId: bytes, kind: int, generation: int = 0) -> FetchReq:
    return FetchReq(resourceId, (StoredDataSpecifier.single(kind, generation),))


def fetchArray(resourceId: bytes, kind: int, *ranges: tuple[int, int]) -> FetchReq:
    spec = StoredDataSpecifier.array(kind, [ArrayRange(a, b) for a, b in ranges])
    return FetchReq(resourceId, (spec,))


def fetchDictionary(resourceId: bytes, kind: int, keys: Iterable[bytes] = ()) -> FetchReq:
    return FetchReq(resourceId, (StoredDataSpecifier.dictionary(kind, keys),))


@dataclass
class Setup:
    """A storage service on ``store`` with the test Kinds."""

    store: RecordStore = field(default_factory=MemoryStore)
    identities: tuple[PeerIdentity, ...] = ()
    responsible: Callable[[bytes], bool] = lambda rid: True
    acceptReplica: Callable[[bytes, bytes], bool] | None = None
    quota: int | None = None
    replicaSet: Callable[[bytes], Sequence[bytes]] | None = None

    def __post_init__(self) -> None:
        self.cache = certificateCache(*self.identities)
        self.kinds = KindTable.fromConfiguration(KIND_CONFIGS, PolicyRegistry())
        self.service = StorageService(
            self.kinds,
            self.store,
            self.cache,
            hashResource,
            self.responsible,
            acceptReplica=self.acceptReplica,
            replicaSet=self.replicaSet,
            quota=self.quota,
        )

    def learn(self, identity: PeerIdentity) -> None:
        self.cache.add(TRUST.verify([identity.certificate], WHEN))


__all__ = [
    "ARRAY_NODE",
    "ARRAY_USER",
    "CERTIFICATE_BY_NODE",
    "CERTIFICATE_BY_USER",
    "DICT_NODE",
    "DICT_REDIR",
    "DICT_USER",
    "DICT_USER_NODE",
    "HOUR",
    "NOW",
    "NOW_MS",
    "OVERLAY",
    "SINGLE_MULTIPLE",
    "SINGLE_USER",
    "WHEN",
    "Setup",
    "certificateCache",
    "entry",
    "fetchArray",
    "fetchDictionary",
    "fetchSingle",
    "h",
    "item",
    "makeIdentity",
    "requester",
    "sign",
    "single",
    "storeReq",
]
