"""Where a peer keeps what it stores: in memory, or in a SQLite file.

Both stores hold every :class:`~reload.storage.model.KindRecord` in memory
(a peer stores what its share of the overlay and the Kinds' limits allow,
which fits) and answer reads from there.  :class:`SQLiteStore` also writes
each :meth:`~RecordStore.commit` to its file in **one** transaction, so a
Store (section 7.4.1.1: "These operations MUST be atomic.  If any operation
fails, the state MUST be rolled back to what it was before the request was
received") is on disk whole or not at all, and reopening the file after a
crash or a restart gives back the data and the generation counters.

The file (:data:`FILE_NAME` in the peer's data directory) uses the WAL
journal.  With ``synchronous=NORMAL`` (the default) a commit that returned
is in the WAL in the operating system's hands: it survives the peer
process being killed (kill -9 included), and a crash in the middle of one
leaves the previous state; only a power failure or a kernel crash can lose
the last commits (never tear one: WAL frames are checksummed), and the two
replicas of every value (section 10.4) are on other machines for that.
``synchronous=FULL`` also fsyncs every commit, which costs a disk flush
per Store on every holder (``twistd reload --storage-sync full``).  Its
schema is versioned with ``PRAGMA user_version``; a file written by a newer
version is refused rather than misread.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Container, Iterable, Iterator, Sequence
from pathlib import Path

from twisted.logger import Logger

from reload.storage.model import KindRecord, Slot, StoredValue
from reload.wire.errors import DecodeError
from reload.wire.storage import DataModel, StoredData

__all__ = ["FILE_NAME", "SCHEMA_VERSION", "MemoryStore", "RecordStore", "SQLiteStore", "StoreError"]

#: The database file in a peer's data directory.
FILE_NAME = "storage.sqlite"
#: The schema this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = 1

_U32 = struct.Struct("!I")

_SCHEMA = (
    """CREATE TABLE records (
        resource BLOB NOT NULL,
        kind INTEGER NOT NULL,
        model INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        PRIMARY KEY (resource, kind)
    ) WITHOUT ROWID""",
    """CREATE TABLE entries (
        resource BLOB NOT NULL,
        kind INTEGER NOT NULL,
        slot BLOB NOT NULL,
        data BLOB NOT NULL,
        expiry INTEGER NOT NULL,
        signer BLOB NOT NULL,
        certificate BLOB NOT NULL,
        PRIMARY KEY (resource, kind, slot),
        FOREIGN KEY (resource, kind) REFERENCES records (resource, kind) ON DELETE CASCADE
    ) WITHOUT ROWID""",
    "CREATE INDEX entries_expiry ON entries (expiry)",
)


class StoreError(Exception):
    """The store cannot be opened or written; the message says why."""


class RecordStore:
    """The records of a peer, by Resource-ID then Kind-ID, with the bytes
    each signer Node-ID uses (for the quota).

    :meth:`commit` replaces whole records (and deletes others) atomically;
    a subclass makes that durable in :meth:`_persist`, which either
    succeeds or raises with nothing changed.
    """

    def __init__(self) -> None:
        self._records: dict[bytes, dict[int, KindRecord]] = {}
        self._usage: dict[bytes, int] = {}

    # -- reading ---------------------------------------------------------------

    def get(self, resourceId: bytes, kindId: int) -> KindRecord | None:
        kinds = self._records.get(resourceId)
        return kinds.get(kindId) if kinds is not None else None

    def records(self, resourceId: bytes) -> tuple[KindRecord, ...]:
        """Every record at ``resourceId``."""
        return tuple(self._records.get(resourceId, {}).values())

    def resources(self) -> list[bytes]:
        """The Resource-IDs with records, sorted."""
        return sorted(self._records)

    def resourcesIn(self, ids: Container[bytes]) -> list[bytes]:
        """The Resource-IDs with records that are in ``ids`` (e.g. a range
        a topology's responsibility change names), sorted."""
        return [r for r in sorted(self._records) if r in ids]

    def __iter__(self) -> Iterator[KindRecord]:
        for kinds in self._records.values():
            yield from kinds.values()

    def __len__(self) -> int:
        return sum(len(k) for k in self._records.values())

    def usage(self, signer: bytes) -> int:
        """Bytes of stored values signed by ``signer``."""
        return self._usage.get(signer, 0)

    # -- writing ---------------------------------------------------------------

    def commit(
        self, records: Sequence[KindRecord], deleted: Iterable[tuple[bytes, int]] = ()
    ) -> None:
        """Replace ``records`` and delete the (Resource-ID, Kind-ID) pairs
        ``deleted``, all or nothing."""
        records = tuple(records)
        gone = [k for k in deleted if self.get(*k) is not None]
        if not records and not gone:
            return
        self._persist(records, gone)
        for resourceId, kindId in gone:
            kinds = self._records[resourceId]
            self._account(kinds.pop(kindId), -1)
            if not kinds:
                del self._records[resourceId]
        for record in records:
            kinds = self._records.setdefault(record.resourceId, {})
            old = kinds.get(record.kindId)
            if old is not None:
                self._account(old, -1)
            kinds[record.kindId] = record
            self._account(record, +1)

    def dropResources(self, resourceIds: Iterable[bytes]) -> None:
        """Forget everything at ``resourceIds`` (handed over to another
        peer, section 10.5)."""
        self.commit(
            (), [(r.resourceId, r.kindId) for rid in resourceIds for r in self.records(rid)]
        )

    def close(self) -> None:
        pass

    def _account(self, record: KindRecord, sign: int) -> None:
        for signer, size in record.usage().items():
            total = self._usage.get(signer, 0) + sign * size
            if total > 0:
                self._usage[signer] = total
            else:
                self._usage.pop(signer, None)

    def _load(self, records: Iterable[KindRecord]) -> None:
        for record in records:
            self._records.setdefault(record.resourceId, {})[record.kindId] = record
            self._account(record, +1)

    def _persist(self, records: Sequence[KindRecord], deleted: Sequence[tuple[bytes, int]]) -> None:
        """Make the commit durable, or raise with nothing changed."""


class MemoryStore(RecordStore):
    """Records in memory only: tests and the simulator."""


def _slotBytes(slot: Slot) -> bytes:
    if slot is None:
        return b""
    if isinstance(slot, int):
        return _U32.pack(slot)
    return slot


class SQLiteStore(RecordStore):
    """Records in memory and in the SQLite file ``path``.

    ``SQLiteStore.inDirectory(dataDir)`` opens :data:`FILE_NAME` there.
    Entries that no longer decode (which only a damaged file can cause) are
    skipped with a log line and counted in ``discarded``; everything else
    is loaded.
    """

    log = Logger()

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL") -> None:
        super().__init__()
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
        self.path = Path(path)
        self.discarded = 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the storage database: {exc}") from None
        try:
            self._prepare(synchronous.upper())
            self._load(self._read())
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def inDirectory(cls, directory: str | os.PathLike[str], **options: str) -> SQLiteStore:
        """The store of the peer whose data directory is ``directory``
        (created if missing)."""
        path = Path(directory)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(path / FILE_NAME, **options)

    def _prepare(self, synchronous: str) -> None:
        db = self._db
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: the WAL journal mode is not available ({mode})")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.execute("PRAGMA foreign_keys=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise StoreError(
                        f"{self.path}: not a reload storage database (tables without a"
                        " schema version)"
                    )
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            elif version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: storage schema version {version} was written by a newer"
                    f" reload (this one reads version {SCHEMA_VERSION})"
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot use the storage database: {exc}") from None

    def _read(self) -> list[KindRecord]:
        db = self._db
        models: dict[tuple[bytes, int], tuple[DataModel, int]] = {}
        for resource, kind, model, generation in db.execute(
            "SELECT resource, kind, model, generation FROM records"
        ):
            try:
                models[(bytes(resource), kind)] = (DataModel(model), generation)
            except ValueError:
                self.discarded += 1
                self.log.error(
                    "{path}: record {resource} kind {kind:#x} has unknown model {model}; skipped",
                    path=str(self.path),
                    resource=bytes(resource).hex(),
                    kind=kind,
                    model=model,
                )
        values: dict[tuple[bytes, int], dict[Slot, StoredValue]] = {k: {} for k in models}
        for resource, kind, data, expiry, signer, certificate in db.execute(
            "SELECT resource, kind, data, expiry, signer, certificate FROM entries"
        ):
            key = (bytes(resource), kind)
            found = models.get(key)
            if found is None:
                continue
            try:
                stored = StoredData.decode(bytes(data), found[0])
            except DecodeError as exc:
                self.discarded += 1
                self.log.error(
                    "{path}: a value of {resource} kind {kind:#x} does not decode ({why}); skipped",
                    path=str(self.path),
                    resource=key[0].hex(),
                    kind=kind,
                    why=str(exc),
                )
                continue
            value = StoredValue.make(stored, expiry, bytes(signer), bytes(certificate))
            values[key][value.slot] = value
        return [
            KindRecord(resource, kind, model, generation, values[(resource, kind)])
            for (resource, kind), (model, generation) in models.items()
        ]

    def _persist(self, records: Sequence[KindRecord], deleted: Sequence[tuple[bytes, int]]) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for resource, kind in deleted:
                    db.execute("DELETE FROM records WHERE resource=? AND kind=?", (resource, kind))
                for record in records:
                    key = (record.resourceId, record.kindId)
                    db.execute(
                        "INSERT INTO records (resource, kind, model, generation)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (resource, kind)"
                        " DO UPDATE SET model=excluded.model, generation=excluded.generation",
                        (*key, int(record.model), record.generation),
                    )
                    db.execute("DELETE FROM entries WHERE resource=? AND kind=?", key)
                    db.executemany(
                        "INSERT INTO entries (resource, kind, slot, data, expiry, signer,"
                        " certificate) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                *key,
                                _slotBytes(slot),
                                value.data.encode(),
                                value.expiry,
                                value.signer,
                                value.certificate,
                            )
                            for slot, value in record.values.items()
                        ],
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: writing failed, nothing was stored: {exc}") from None

    def close(self) -> None:
        """Close the file (the WAL is checkpointed by SQLite)."""
        self._db.close()
