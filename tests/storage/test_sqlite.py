"""The SQLite store: data and generation counters survive a restart, a
crash in the middle of a Store leaves the old or the new state, never a
mix (RFC 6940 section 7.4.1.1: "These operations MUST be atomic")."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reload.errors import ReloadError
from reload.storage.service import StorageService
from reload.storage.sqlite import FILE_NAME, SCHEMA_VERSION, SQLiteStore, StoreError
from reload.wire.message import ErrorCode
from reload.wire.storage import ArrayEntry, DataValue
from tests.conftest import REPO, sourceEnv
from tests.storage import crashwriter
from tests.storage.support import (
    ARRAY_NODE,
    ARRAY_USER,
    DICT_USER_NODE,
    NOW,
    NOW_MS,
    SINGLE_USER,
    Setup,
    entry,
    fetchArray,
    fetchDictionary,
    fetchSingle,
    h,
    item,
    makeIdentity,
    requester,
    sign,
    single,
    storeReq,
)

ALICE_NAME = "alice@storage.example.org"
ALICE = makeIdentity(ALICE_NAME)


def fill(service: StorageService, setup: Setup) -> None:
    """Three Kinds at two Resource-IDs, some stored twice."""
    signer = requester(setup.cache, ALICE)
    user, node = h(ALICE_NAME), h(ALICE.nodeId)
    for t in range(3):
        value = sign(ALICE, user, SINGLE_USER, single(b"v%d" % t), NOW_MS + t)
        service.handleStore(storeReq(user, SINGLE_USER, [value]), signer, NOW)
    value = sign(ALICE, user, DICT_USER_NODE, item(ALICE.nodeId, b"route"))
    service.handleStore(storeReq(user, DICT_USER_NODE, [value]), signer, NOW)
    values = [sign(ALICE, node, ARRAY_NODE, entry(i, b"a%d" % i)) for i in (0, 2)]
    service.handleStore(storeReq(node, ARRAY_NODE, values), signer, NOW)
    gone = sign(ALICE, node, ARRAY_NODE, entry(2, None), NOW_MS + 1)
    service.handleStore(storeReq(node, ARRAY_NODE, [gone]), signer, NOW)


def answers(setup: Setup) -> list[object]:
    user, node = h(ALICE_NAME), h(ALICE.nodeId)
    service = setup.service
    return [
        service.handleFetch(fetchSingle(user, SINGLE_USER), NOW + 10),
        service.handleFetch(fetchDictionary(user, DICT_USER_NODE), NOW + 10),
        service.handleFetch(fetchArray(node, ARRAY_NODE, (0, ArrayEntry.APPEND)), NOW + 10),
    ]


def test_close_and_reopen_gives_the_same_data_and_generation_counters(tmp_path: Path) -> None:
    store = SQLiteStore.inDirectory(tmp_path / "peer")
    setup = Setup(store=store, identities=(ALICE,))
    fill(setup.service, setup)
    before = answers(setup)
    counters = {(r.resourceId, r.kindId): r.generation for r in store}
    usage = store.usage(ALICE.nodeId)
    store.close()

    reopened = SQLiteStore.inDirectory(tmp_path / "peer")
    again = Setup(store=reopened, identities=(ALICE,))
    assert answers(again) == before
    assert {(r.resourceId, r.kindId): r.generation for r in reopened} == counters
    assert counters[(h(ALICE_NAME), SINGLE_USER)] == 3
    assert reopened.usage(ALICE.nodeId) == usage > 0
    assert reopened.discarded == 0
    # The counters go on from where they were.
    value = sign(ALICE, h(ALICE_NAME), SINGLE_USER, single(b"v9"), NOW_MS + 9)
    answer = again.service.handleStore(
        storeReq(h(ALICE_NAME), SINGLE_USER, [value], generation=3),
        requester(again.cache, ALICE),
        NOW,
    )
    assert answer.kind_responses[0].generation_counter == 4
    reopened.close()
    # The file is a WAL database with a schema version.
    db = sqlite3.connect(tmp_path / "peer" / FILE_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_expired_values_are_not_brought_back(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    setup = Setup(store=SQLiteStore(path), identities=(ALICE,))
    rid = h(ALICE_NAME)
    value = sign(ALICE, rid, SINGLE_USER, single(b"brief"), lifetime=60)
    setup.service.handleStore(
        storeReq(rid, SINGLE_USER, [value]), requester(setup.cache, ALICE), NOW
    )
    assert setup.service.purgeExpired(NOW + 61) == 1
    setup.store.close()
    again = Setup(store=SQLiteStore(path), identities=(ALICE,))
    assert len(again.store) == 0
    (got,) = again.service.handleFetch(fetchSingle(rid, SINGLE_USER), NOW).kind_responses[0].values
    assert got.value == DataValue(False, b"")


def test_a_newer_schema_or_a_foreign_file_is_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite"
    SQLiteStore(newer).close()
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(newer)
    foreign = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a reload storage database"):
        SQLiteStore(foreign)
    (tmp_path / "garbage.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path / "garbage.sqlite")


def test_a_failed_write_stores_nothing_and_is_answered(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / FILE_NAME)
    setup = Setup(store=store, identities=(ALICE,))
    rid = h(ALICE_NAME)
    signer = requester(setup.cache, ALICE)
    setup.service.handleStore(
        storeReq(rid, SINGLE_USER, [sign(ALICE, rid, SINGLE_USER, single(b"a"))]), signer, NOW
    )
    store._db.close()  # the disk goes away
    newer = sign(ALICE, rid, SINGLE_USER, single(b"b"), NOW_MS + 1)
    with pytest.raises(ReloadError) as caught:
        setup.service.handleStore(storeReq(rid, SINGLE_USER, [newer]), signer, NOW)
    assert caught.value.code == ErrorCode.FORBIDDEN
    record = store.get(rid, SINGLE_USER)
    assert record is not None and record.generation == 1
    assert record.values[None].data.value == single(b"a")


def _check(path: Path) -> int:
    """Open the store a killed writer left and check it is one round's
    state; return that round."""
    store = SQLiteStore(path)
    try:
        assert store.discarded == 0
        rid = h(crashwriter.USER)
        single_ = store.get(rid, SINGLE_USER)
        array = store.get(rid, ARRAY_USER)
        if single_ is None:
            assert array is None
            return 0
        assert array is not None
        n = single_.generation
        assert array.generation == n
        assert single_.values[None].data.value == single(crashwriter.payload(n))
        stored = array.values[0].data.value
        assert isinstance(stored, ArrayEntry)
        assert stored.value.value == crashwriter.payload(n).ljust(crashwriter.PAD, b".")
        assert single_.values[None].data.storage_time == NOW_MS + n
        return n
    finally:
        store.close()


def test_a_crash_during_stores_leaves_the_old_or_the_new_state(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    rng = random.Random(6940)
    last = 0
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.crashwriter", str(path)],
            cwd=REPO,
            env=sourceEnv(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdout is not None and child.stderr is not None
        try:
            target = rng.randint(5, 40)
            done = last
            deadline = time.monotonic() + 60
            while done < last + target:
                line = child.stdout.readline()
                if not line:
                    pytest.fail(f"the writer stopped: {child.stderr.read().decode()}")
                done = int(line)
                assert time.monotonic() < deadline
            # Kill it while it goes on writing.
            time.sleep(rng.random() * 0.01)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=30)
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        found = _check(path)
        # Everything reported done is there; at most a few more rounds
        # finished after the last line was read.
        assert found >= done
        last = found
    assert last > 0


def test_the_crash_writer_writes_two_kinds_per_store(tmp_path: Path) -> None:
    """What the crash test relies on: one StoreReq, both Kinds."""
    setup = Setup(store=SQLiteStore(tmp_path / FILE_NAME), identities=(ALICE,))
    signer = requester(setup.cache, ALICE)
    for n in (1, 2):
        setup.service.handleStore(crashwriter.roundRequest(ALICE, n), signer, NOW)
    setup.store.close()
    assert _check(tmp_path / FILE_NAME) == 2


def test_the_crash_check_sees_a_torn_store(tmp_path: Path) -> None:
    """The crash test would notice a Store written by halves."""
    setup = Setup(store=SQLiteStore(tmp_path / FILE_NAME), identities=(ALICE,))
    signer = requester(setup.cache, ALICE)
    for n in (1, 2):
        setup.service.handleStore(crashwriter.roundRequest(ALICE, n), signer, NOW)
    setup.store.close()
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.execute("UPDATE records SET generation = 1 WHERE kind = ?", (ARRAY_USER,))
    db.commit()
    db.close()
    with pytest.raises(AssertionError):
        _check(tmp_path / FILE_NAME)


def test_the_file_is_a_wal_with_normal_or_full_synchronous(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL by default (kill -9 safe, which the crash
    test above shows); FULL on request; anything else refused."""
    normal = SQLiteStore(tmp_path / "normal.sqlite")
    full = SQLiteStore(tmp_path / "full.sqlite", synchronous="full")
    try:
        assert normal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert normal._db.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert full._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        normal.close()
        full.close()
    with pytest.raises(ValueError, match="synchronous must be"):
        SQLiteStore(tmp_path / "bad.sqlite", synchronous="SOMETIMES")
