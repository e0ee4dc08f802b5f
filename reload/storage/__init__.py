"""Data storage (RFC 6940 section 7): Kinds, access policies, the merge
rules of Store, persistent stores and the service answering Store, Fetch,
Stat and Find.

Modules, each with one job:

- :mod:`~reload.storage.policies`: the access control policies of section
  7.3 and the registry that also takes usages' policies;
- :mod:`~reload.storage.kinds`: the effective Kind table of the
  configuration (model, policy, limits);
- :mod:`~reload.storage.model`: what is stored per (Resource-ID, Kind) and
  the rules of section 7.4.1 that change it;
- :mod:`~reload.storage.sqlite`: the in-memory and the SQLite stores;
- :mod:`~reload.storage.service`: the sans-I/O storage service;
- :mod:`~reload.storage.handlers`: the service's answers to decoded requests,
  which the node registers with its dispatcher.

Wiring it into a node::

    registry = PolicyRegistry(policiesOfUsages)
    kinds = KindTable.fromConfiguration(configuration.kinds, registry)
    service = StorageService(
        kinds, SQLiteStore.inDirectory(dataDir), certificateCache,
        topology.hashResource, topology.isResponsible,
        policies=registry, acceptReplica=..., replicaSet=topology.replicaSet,
        quota=...,
    )
    registerStorage(dispatcher, StorageHandlers(service, clock))  # reload.storagestack
"""

from reload.storage.handlers import StorageHandlers, UnknownKinds
from reload.storage.kinds import (
    CERTIFICATE_BY_NODE,
    CERTIFICATE_BY_USER,
    IANA_KINDS,
    KindEntry,
    KindTable,
    unknownKindError,
)
from reload.storage.model import KindRecord, StoredValue, StoreRejected
from reload.storage.policies import (
    BASE_POLICIES,
    NodeMatch,
    NodeMultiple,
    PolicyRegistry,
    UserMatch,
    UserNodeMatch,
    nodeMultipleResourceName,
)
from reload.storage.service import (
    NOT_FOUND_RESOURCE,
    FetchResult,
    ReplicaStore,
    StorageService,
)
from reload.storage.sqlite import FILE_NAME, MemoryStore, RecordStore, SQLiteStore, StoreError

__all__ = [
    "BASE_POLICIES",
    "CERTIFICATE_BY_NODE",
    "CERTIFICATE_BY_USER",
    "FILE_NAME",
    "IANA_KINDS",
    "NOT_FOUND_RESOURCE",
    "FetchResult",
    "KindEntry",
    "KindRecord",
    "KindTable",
    "MemoryStore",
    "NodeMatch",
    "NodeMultiple",
    "PolicyRegistry",
    "RecordStore",
    "ReplicaStore",
    "SQLiteStore",
    "StorageHandlers",
    "StorageService",
    "StoreError",
    "StoreRejected",
    "StoredValue",
    "UnknownKinds",
    "UserMatch",
    "UserNodeMatch",
    "nodeMultipleResourceName",
    "unknownKindError",
]
