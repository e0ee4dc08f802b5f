"""Replica Stores split to fit max-message-size (RFC 6940 sections 6.6,
10.4, 7.4.1.1; issue 17): the chunks of a copy, and a Replicator sending
them one at a time, resuming at the chunk that failed and answering an
original Store once its own values are on the replicas."""

from __future__ import annotations

from twisted.internet.task import Clock

from reload.errors import ReloadError
from reload.storage.model import Slot
from reload.storage.replication import Replicator
from reload.storage.service import ReplicaChunk, ReplicaStore
from reload.wire.message import ErrorCode
from reload.wire.storage import StoredData, StoreReq

from .support import (
    ARRAY_USER,
    DICT_USER,
    NOW,
    NOW_MS,
    SINGLE_USER,
    Setup,
    entry,
    h,
    item,
    makeIdentity,
    requester,
    sign,
    single,
    storeReq,
)
from .test_replication import ME, NEXT, FakeTopology, Network, answerAll

ALICE = makeIdentity("alice@example.org")
BOB = makeIdentity("bob@example.org")
RID = h("alice@example.org")
#: Stands for max-message-size less the message around the body.
LIMIT = 3000


def budget(certificates: tuple[bytes, ...]) -> int:
    """A body budget that shrinks with every certificate carried, as the
    node's does (storagestack.StorageStack.replicaBudget)."""
    return LIMIT - sum(len(c) for c in certificates)


def filled(count: int, *, single_: bool = True) -> Setup:
    """ALICE's resource with a SINGLE value, ``count`` array entries and
    ``count`` dictionary keys, stored in several original Stores."""
    setup = Setup(identities=(ALICE,))
    signer = requester(setup.cache, ALICE)
    if single_:
        data = [sign(ALICE, RID, SINGLE_USER, single(b"s"))]
        setup.service.handleStore(storeReq(RID, SINGLE_USER, data), signer, NOW)
    for start in range(0, count, 100):
        stop = min(count, start + 100)
        array = [
            sign(ALICE, RID, ARRAY_USER, entry(i, b"a%03d" % i), NOW_MS + i)
            for i in range(start, stop)
        ]
        setup.service.handleStore(storeReq(RID, ARRAY_USER, array), signer, NOW)
        keys = [
            sign(ALICE, RID, DICT_USER, item(b"k%04d" % i, b"d" * 20), NOW_MS + i)
            for i in range(start, stop)
        ]
        setup.service.handleStore(storeReq(RID, DICT_USER, keys), signer, NOW)
    return setup


def carried(chunks: list[ReplicaChunk]) -> list[tuple[int, StoredData]]:
    return [(kd.kind, v) for c in chunks for kd in c.replica.request.kind_data for v in kd.values]


def identities(values: list[tuple[int, StoredData]]) -> list[tuple[int, int, object]]:
    """The values without their lifetime (what is left of it is computed
    when a chunk is built)."""
    return [(kind, v.storage_time, v.value) for kind, v in values]


def test_chunks_fit_the_budget_and_carry_every_value_once_in_order() -> None:
    setup = filled(300)
    whole = setup.service.replicaStore(RID, 2, NOW)
    assert whole is not None and len(whole.request.encode()) > 10 * LIMIT
    chunks = list(setup.service.replicaChunks(RID, 2, NOW, budget=budget))
    assert len(chunks) > 10
    for chunk in chunks:
        request = chunk.replica.request
        assert len(request.encode()) <= budget(chunk.replica.certificates)
        assert request.replica_number == 2 and request.resource == RID
        assert chunk.replica.certificates == (ALICE.certificateDer,)
        # Every Kind's generation counter as held (section 7.4.1.1).
        for kd in request.kind_data:
            record = setup.store.get(RID, kd.kind)
            assert record is not None and kd.generation_counter == record.generation
        assert StoreReq.decode(request.encode(), setup.kinds.models) == request
    expected = [(kd.kind, v) for kd in whole.request.kind_data for v in kd.values]
    assert carried(chunks) == expected  # each value once, in order
    assert [kind for kind, _ in expected][:2] == [SINGLE_USER, ARRAY_USER]
    assert len(expected) == 601
    slots: list[tuple[int, Slot]] = [s for c in chunks for s in c.slots]
    assert len(slots) == len(set(slots)) == 601


def test_a_chunk_holds_one_value_even_above_the_budget() -> None:
    setup = filled(3, single_=False)
    chunks = list(setup.service.replicaChunks(RID, 1, NOW, budget=lambda certs: 10))
    assert [len(c.slots) for c in chunks] == [1] * 6


def test_only_the_values_a_store_wrote_and_resuming_after_a_position() -> None:
    setup = filled(200, single_=False)
    wrote = {ARRAY_USER: (7, 150), DICT_USER: (b"k0003",)}
    (chunk,) = setup.service.replicaChunks(RID, 1, NOW, slots=wrote, budget=budget)
    assert chunk.slots == ((ARRAY_USER, 7), (ARRAY_USER, 150), (DICT_USER, b"k0003"))
    first = setup.service.replicaChunk(RID, 1, NOW, budget=budget)
    assert first is not None
    rest = list(setup.service.replicaChunks(RID, 1, NOW, budget=budget))[1:]
    again = setup.service.replicaChunk(RID, 1, NOW, after=first.last, budget=budget)
    assert again == rest[0]


def test_chunks_of_a_replica_copy_are_all_taken_by_the_replica() -> None:
    """Every chunk carries the generation counter: the replica takes each
    (replica stores are not checked against it, 7.4.1.1) and ends with all
    values and the sender's counters."""
    setup = filled(250)
    replica = Setup(identities=(ALICE,), acceptReplica=lambda rid, sender: True)
    sender = requester(replica.cache, ALICE)
    for chunk in setup.service.replicaChunks(RID, 1, NOW, budget=budget):
        replica.service.handleStore(chunk.replica.request, sender, NOW)
    for kind in (SINGLE_USER, ARRAY_USER, DICT_USER):
        assert replica.service.localData(RID, kind, NOW) == setup.service.localData(RID, kind, NOW)
        ours, theirs = setup.store.get(RID, kind), replica.store.get(RID, kind)
        assert ours is not None and theirs is not None
        assert theirs.generation == ours.generation


def carried_(replica: ReplicaStore) -> list[tuple[int, StoredData]]:
    return [(kd.kind, v) for kd in replica.request.kind_data for v in kd.values]


def replicator(setup: Setup, clock: Clock, replicas: list[bytes]) -> tuple[Network, Replicator]:
    network = Network()
    topology = FakeTopology(replicas=replicas)
    return network, Replicator(
        setup.service, topology, network.send, clock, ME, lambda peer, certs: budget(certs)
    )


def test_a_copy_goes_one_chunk_at_a_time_and_resumes_at_the_chunk_that_failed() -> None:
    setup = filled(200)
    clock = Clock()
    clock.advance(NOW)
    network, rep = replicator(setup, clock, [NEXT])
    expected = carried(list(setup.service.replicaChunks(RID, 1, NOW, budget=budget)))
    rep.sweep()
    assert len(network.sent) == 1  # one in flight at a time
    for _ in range(3):
        network.sent[-1][2].callback("stored")
    assert len(network.sent) == 4
    network.sent[-1][2].errback(ReloadError(ErrorCode.MESSAGE_TOO_LARGE, "too big"))
    assert rep.failed == 1 and rep.unplaced == 1
    assert rep.lastFailure is not None and "too big" in rep.lastFailure[3]
    failedChunk = network.sent[-1][1]
    clock.advance(2)  # RETRY_DELAYS[0]
    # Again from the chunk that failed.
    assert identities(carried_(network.sent[-1][1])) == identities(carried_(failedChunk))
    while not network.sent[-1][2].called:
        network.sent[-1][2].callback("stored")
    delivered = [
        (kd.kind, v)
        for index, (_, r, _) in enumerate(network.sent)
        if index != 3  # the one that failed
        for kd in r.request.kind_data
        for v in kd.values
    ]
    assert identities(delivered) == identities(expected)
    assert rep.unplaced == 0 and rep.pending == 0 and rep.sent == len(network.sent) - 1


def test_an_original_store_sends_only_its_values_and_settles_once_they_are_on_the_replicas() -> (
    None
):
    setup = filled(300)
    clock = Clock()
    clock.advance(NOW)
    network, rep = replicator(setup, clock, [NEXT, b"\x70" * 16])
    new = sign(ALICE, RID, ARRAY_USER, entry(300, b"new"), NOW_MS + 1000)
    setup.service.handleStore(storeReq(RID, ARRAY_USER, [new]), requester(setup.cache, ALICE), NOW)
    assert [len(r.request.kind_data[0].values) for _, r, _ in network.sent] == [1, 1]
    record = setup.store.get(RID, ARRAY_USER)
    assert record is not None
    for _, r, _ in network.sent:
        (kd,) = r.request.kind_data
        assert kd.values[0].value == entry(300, b"new")
        assert kd.generation_counter == record.generation
    settled: list[None] = []
    rep.settle(RID).addCallback(settled.append)
    network.sent[0][2].callback("stored")
    assert settled == []
    network.sent[1][2].callback("stored")
    assert settled == [None]
    answerAll(network)
    assert rep.pending == 0 and rep.unplaced == 0
