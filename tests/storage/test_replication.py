"""The Replicator (RFC 6940 sections 10.4, 10.5, 10.7.3) on one storage
service, with a topology and a network driven by hand: which replica
Stores go where, when a Store's answer may go out, and when handed-over
data is dropped.  The real thing between processes is
tests/test_replication_lab.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from reload.errors import ReloadError
from reload.storage.replication import (
    REPLICA_WAIT,
    RETRY_DELAYS,
    ReplicatingTopology,
    Replicator,
)
from reload.storage.service import ReplicaStore
from reload.wire.message import ErrorCode
from topologies.chordreload.ring import IdRange

from .support import NOW, NOW_MS, SINGLE_USER, Setup, h, makeIdentity, requester, sign, single
from .support import storeReq as makeStoreReq

ALICE = makeIdentity("alice@example.org")
ME = b"\x50" * 16
NEXT, AFTER = b"\x60" * 16, b"\x70" * 16
OWNER = b"\x40" * 16


@dataclass
class FakeTopology:
    """Responsible for everything unless told otherwise."""

    responsible: bool = True
    replica: bool = False
    owner: bytes = OWNER
    replicas: list[bytes] = field(default_factory=lambda: [NEXT, AFTER])
    callbacks: list[Callable[[Any], None]] = field(default_factory=list)

    def isResponsible(self, resourceId: bytes) -> bool:
        return self.responsible

    def replicaSet(self, resourceId: bytes) -> list[bytes]:
        return list(self.replicas)

    def holdsReplica(self, resourceId: bytes) -> bool:
        return self.replica

    def responsiblePeer(self, resourceId: bytes) -> bytes:
        return ME if self.responsible else self.owner

    def isNeighbour(self, nodeId: bytes) -> bool:
        return nodeId in (OWNER, NEXT, AFTER)

    def shouldHold(self, resourceId: bytes) -> bool:
        return self.responsible or self.replica

    def onResponsibilityChange(self, callback: object) -> None:
        assert callable(callback)
        self.callbacks.append(callback)


@dataclass
class Network:
    """Replica Stores sent, each answered by hand."""

    sent: list[tuple[bytes, ReplicaStore, Deferred[Any]]] = field(default_factory=list)

    def send(self, nodeId: bytes, replica: ReplicaStore) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.sent.append((nodeId, replica, d))
        return d


def answerAll(network: Network) -> None:
    """Acknowledge every replica Store sent so far."""
    for _, _, answered in list(network.sent):
        if not answered.called:
            answered.callback("stored")


def make(topology: FakeTopology, clock: Clock | None = None) -> tuple[Setup, Network, Replicator]:
    if clock is None:
        clock = Clock()
        clock.advance(NOW)
    setup = Setup(identities=(ALICE,))
    network = Network()
    replicator = Replicator(setup.service, topology, network.send, clock, ME)
    return setup, network, replicator


def storeOne(setup: Setup, value: bytes, storageTime: int = NOW_MS) -> bytes:
    rid = h("alice@example.org")
    data = sign(ALICE, rid, SINGLE_USER, single(value), storageTime)
    request = makeStoreReq(rid, SINGLE_USER, [data])
    setup.service.handleStore(request, requester(setup.cache, ALICE), NOW)
    return rid


def test_what_replication_asks_of_a_topology_is_in_ITopology() -> None:
    """The replication hooks are part of the topology contract, so the
    core never asks whether a topology has them."""
    from reload.interfaces import ITopology

    asked = {name for name in vars(ReplicatingTopology) if not name.startswith("_")}
    assert asked and asked <= set(ITopology.names())
    assert all(hasattr(FakeTopology(), name) for name in asked)


def test_an_original_store_is_copied_to_each_replica_and_settles_when_they_answer() -> None:
    setup, network, replicator = make(FakeTopology())
    rid = storeOne(setup, b"v1")
    assert [(peer, r.request.replica_number) for peer, r, _ in network.sent] == [
        (NEXT, 1),
        (AFTER, 2),
    ]
    for _, replica, _ in network.sent:
        (kind,) = replica.request.kind_data
        assert kind.kind == SINGLE_USER and kind.generation_counter == 1
        assert replica.certificates == (ALICE.certificateDer,)
    settled: list[None] = []
    replicator.settle(rid).addCallback(settled.append)
    network.sent[0][2].callback("stored")
    assert settled == [] and replicator.pending == 1
    # A replica that fails does not hold the Store's answer back for ever.
    network.sent[1][2].errback(ReloadError(ErrorCode.FORBIDDEN, "no"))
    assert settled == [None] and replicator.pending == 0
    assert (replicator.sent, replicator.failed) == (1, 1)


def test_settle_with_nothing_in_flight_fires_at_once() -> None:
    _, _, replicator = make(FakeTopology())
    settled: list[None] = []
    replicator.settle(b"\x01" * 16).addCallback(settled.append)
    assert settled == [None]


def test_a_responsibility_change_copies_what_is_held_in_the_range() -> None:
    topology = FakeTopology()
    setup, network, _ = make(topology)
    rid = storeOne(setup, b"v1")
    answerAll(network)
    network.sent.clear()
    (callback,) = topology.callbacks
    callback((IdRange(rid, rid),))  # the whole ring
    assert [peer for peer, _, _ in network.sent] == [NEXT, AFTER]
    network.sent.clear()
    callback((IdRange(rid, bytes(16) if rid != bytes(16) else b"\x01" * 16),))
    assert network.sent == []  # rid is the start of the range: not in it


def test_handover_drops_the_data_once_the_new_owner_has_it() -> None:
    topology = FakeTopology()
    setup, network, _ = make(topology)
    rid = storeOne(setup, b"v1")
    network.sent.clear()
    topology.responsible = False
    (callback,) = topology.callbacks
    callback((IdRange(rid, rid),))
    [(peer, replica, answered)] = network.sent
    assert peer == OWNER and replica.request.replica_number == 1
    assert setup.service.resources() == [rid]  # kept until acknowledged
    answered.callback("stored")
    assert setup.service.resources() == []


def test_handover_keeps_the_data_of_a_replica_and_on_failure() -> None:
    topology = FakeTopology(responsible=False, replica=True)
    setup = Setup(identities=(ALICE,), acceptReplica=lambda rid, sender: True)
    clock = Clock()
    network = Network()
    replicator = Replicator(setup.service, topology, network.send, clock, ME)
    rid = h("alice@example.org")
    data = sign(ALICE, rid, SINGLE_USER, single(b"v"), NOW_MS)
    setup.service.applyReplica(makeStoreReq(rid, SINGLE_USER, [data], generation=3), NOW)
    clock.advance(NOW)
    replicator.sweep()
    [(peer, _, answered)] = network.sent
    assert peer == OWNER
    answered.callback("stored")
    assert setup.service.resources() == [rid]  # still one of its replicas
    topology.replica = False
    replicator.sweep()
    network.sent[-1][2].errback(ReloadError(ErrorCode.FORBIDDEN, "no"))
    assert setup.service.resources() == [rid]  # not delivered: not dropped


def test_a_replica_store_keeps_the_newer_value_it_holds() -> None:
    """A replica Store carries a Kind's whole content; one older value in
    it must not make the replica refuse the rest (section 7.4.1.1)."""
    setup = Setup(identities=(ALICE,), acceptReplica=lambda rid, sender: True)
    rid = h("alice@example.org")
    newer = sign(ALICE, rid, SINGLE_USER, single(b"newer"), NOW_MS + 10)
    older = sign(ALICE, rid, SINGLE_USER, single(b"older"), NOW_MS)
    sender = requester(setup.cache, ALICE)
    setup.service.handleStore(
        makeStoreReq(rid, SINGLE_USER, [newer], generation=2, replica=1), sender, NOW
    )
    setup.service.handleStore(
        makeStoreReq(rid, SINGLE_USER, [older], generation=3, replica=1), sender, NOW
    )
    (kept,) = setup.service.localData(rid, SINGLE_USER, NOW)
    assert kept.value == single(b"newer")


def test_replica_stores_are_taken_from_neighbours_for_data_this_peer_should_hold() -> None:
    topology = FakeTopology(responsible=False, replica=False)
    _, _, replicator = make(topology)
    rid = b"\x45" * 16
    assert not replicator.accepts(rid, OWNER)  # neither responsible nor a replica
    topology.replica = True
    assert replicator.accepts(rid, OWNER)
    assert not replicator.accepts(rid, b"\x99" * 16)  # not in the Neighbor Table
    topology.replica, topology.responsible = False, True
    assert replicator.accepts(rid, NEXT)  # a handover to this peer


def test_a_failed_placement_is_tried_again_with_backoff_then_left_to_the_sweep() -> None:
    clock = Clock()
    clock.advance(NOW)
    topology = FakeTopology(replicas=[NEXT])
    setup, network, replicator = make(topology, clock)
    storeOne(setup, b"v1")
    delays = []
    for _ in range(10):
        network.sent[-1][2].errback(ReloadError(ErrorCode.FORBIDDEN, "not yet"))
        before = len(network.sent)
        waited = 0.0
        while len(network.sent) == before and waited < 120:
            clock.advance(1)
            waited += 1
        if len(network.sent) == before:
            break
        delays.append(waited)
    assert delays == [2, 4, 8, 16, 32, 60]
    # Success resets the count; stop() ends retrying.
    replicator.sweep()
    network.sent[-1][2].errback(ReloadError(ErrorCode.FORBIDDEN, "again"))
    replicator.stop()
    clock.advance(300)
    assert len(network.sent) == 8


def test_settle_gives_up_waiting_for_a_silent_replica() -> None:
    """The Store's answer goes out after REPLICA_WAIT even if a replica never
    answers, well before the storing node's own request would time out."""
    clock = Clock()
    clock.advance(NOW)
    setup, network, replicator = make(FakeTopology(), clock)
    rid = storeOne(setup, b"v1")
    settled: list[None] = []
    replicator.settle(rid).addCallback(settled.append)
    network.sent[0][2].callback("stored")
    clock.advance(REPLICA_WAIT - 0.1)
    assert settled == []
    clock.advance(0.2)
    assert settled == [None]
    assert REPLICA_WAIT < 15


def test_data_nobody_takes_is_deleted_after_the_last_retry_if_not_held() -> None:
    """Section 10.7.3: a peer that is neither responsible nor a replica
    deletes the data; a handover that keeps failing does not keep it for
    ever."""
    clock = Clock()
    clock.advance(NOW)
    topology = FakeTopology()
    setup, network, replicator = make(topology, clock)
    rid = storeOne(setup, b"v1")
    topology.responsible = False
    network.sent.clear()
    replicator.sweep()
    for _ in range(len(RETRY_DELAYS)):
        network.sent[-1][2].errback(ReloadError(ErrorCode.FORBIDDEN, "not mine"))
        clock.advance(60)
    assert setup.service.resources() == [rid]  # kept while it is still being offered
    network.sent[-1][2].errback(ReloadError(ErrorCode.FORBIDDEN, "not mine"))
    assert setup.service.resources() == []
    assert len(network.sent) == len(RETRY_DELAYS) + 1


def test_a_replica_that_refused_is_retried_although_the_other_replica_took_it() -> None:
    """After a failure one replica may refuse a copy (its view of the ring
    lags) while the other takes it: the acknowledgement of the second must
    not cancel the retry of the first, or the resource stays one holder
    short until the next sweep (minutes)."""
    clock = Clock()
    clock.advance(NOW)
    setup, network, replicator = make(FakeTopology(), clock)
    rid = storeOne(setup, b"v1")
    [(first, _, toNext), (second, _, toAfter)] = network.sent
    assert (first, second) == (NEXT, AFTER)
    toNext.errback(ReloadError(ErrorCode.FORBIDDEN, "not a node this peer replicates for"))
    toAfter.callback("stored")
    clock.advance(RETRY_DELAYS[0])
    retried = [(peer, r.request.resource) for peer, r, _ in network.sent[2:]]
    assert (NEXT, rid) in retried
    answerAll(network)
    assert replicator.unplaced == 0
