"""A node's storage, assembled: the service, its replication, its request
handlers on the dispatcher and its periodic upkeep (RFC 6940 sections 7
and 10.4 to 10.7).

Storage sits below the transport (DESIGN.md): it answers decoded requests
and knows nothing of dispatchers or links.  :class:`StorageStack` is where
the node joins the two, the same way in a deployed peer
(:class:`reload.peer.OverlayPeer`) and in the in-memory overlay of
:mod:`reload.testing`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from reload.interfaces import ITopology
from reload.security.certificates import PeerIdentity
from reload.security.signing import CertificateCache
from reload.storage.handlers import StorageHandlers, StorageMethod
from reload.storage.kinds import KindTable
from reload.storage.policies import PolicyRegistry
from reload.storage.replication import Replicator
from reload.storage.service import FetchResult, ReplicaStore, StorageService
from reload.storage.sqlite import RecordStore
from reload.storageclient import StorageClient
from reload.transport.dispatcher import Dispatcher, Reply, Request
from reload.transport.node_api import TransportNode
from reload.wire.header import Destination
from reload.wire.storage import FetchAns, StoreReq

__all__ = [
    "PURGE_INTERVAL",
    "REPAIR_EVERY",
    "REPLICA_VIA_HEADROOM",
    "SIGNATURE_SLACK",
    "StorageStack",
    "registerStorage",
]

#: Seconds between sweeps of expired stored values.
PURGE_INTERVAL = 60.0
#: Re-place every value held every this many purge rounds (5 minutes).
REPAIR_EVERY = 5
#: Forwarding peers a replica Store leaves room for in its via list: it
#: goes to a neighbour, mostly over a direct link.
REPLICA_VIA_HEADROOM = 4
#: Bytes a message signature may be longer than the one measured: an ECDSA
#: signature is DER (two INTEGERs, each one byte longer when its top bit is
#: set), so two signatures by one key differ by a few bytes.
SIGNATURE_SLACK = 8


def _adapted(method: StorageMethod) -> Callable[[Request], Any]:
    """The handler of ``method`` with a FetchResult turned into the Reply
    whose security block carries the values' signers' certificates
    (section 6.3.4)."""

    def handle(request: Request) -> Any:
        answer = method.handler(request)
        if isinstance(answer, FetchResult):
            return Reply(FetchAns.CODE, answer.answer.encode(), certificates=answer.certificates)
        return answer

    return handle


def registerStorage(dispatcher: Dispatcher, handlers: StorageHandlers) -> None:
    """Answer Store, Fetch, Stat and Find (section 7.4) with ``handlers``."""
    for method in handlers.methods():
        dispatcher.register(method.code, _adapted(method), method.decoder)


class StorageStack:
    """Storage for one node: ``kinds`` and ``policies`` judge, ``store``
    keeps, ``topology`` says what this node is responsible for and where
    replicas go; ``node`` carries the requests.  A peer replicates what it
    is responsible for; a client (section 4.2) is responsible for nothing,
    so it only stores and fetches through the overlay, its service judging
    what comes back."""

    log = Logger()

    def __init__(
        self,
        node: TransportNode,
        identity: PeerIdentity,
        certificates: CertificateCache,
        topology: ITopology,
        kinds: KindTable,
        policies: PolicyRegistry,
        store: RecordStore,
        *,
        clock: Any,
        quota: int | None = None,
        configuration: Callable[[], object] | None = None,
    ) -> None:
        self.node = node
        self.clock = clock
        self.service = service = StorageService(
            kinds,
            store,
            certificates,
            topology.hashResource,
            topology.isResponsible,
            policies=policies,
            replicaSet=topology.replicaSet,
            quota=quota,
            configuration=configuration,
        )
        # Sections 10.4 and 10.7.3: every ITopology places replicas and
        # hands data over (a client's holds nothing, so it sends nothing).
        self.replicator = Replicator(
            service, topology, self._sendReplica, clock, node.nodeId, self.replicaBudget
        )
        self._overheads: dict[tuple[Any, tuple[bytes, ...]], int] = {}
        # Section 7.4.1.1: which replica Stores to take.
        service.acceptReplica = self.replicator.accepts
        # A client answers them too: it is responsible for nothing, so it
        # refuses every one (section 4.2).
        registerStorage(node.dispatcher, StorageHandlers(service, clock, self.replicator))
        self.client = StorageClient(node, identity, service, clock)
        self._rounds = 0
        self._upkeep = LoopingCall(self._maintain)
        self._upkeep.clock = clock

    def start(self) -> None:
        """Begin the periodic upkeep (expiry and repair)."""
        if not self._upkeep.running:
            self._upkeep.start(PURGE_INTERVAL, now=False)

    def stop(self) -> None:
        """Send nothing more; the record store stays open for its owner."""
        if self._upkeep.running:
            self._upkeep.stop()
        self.replicator.stop()

    def _maintain(self) -> None:
        """Every PURGE_INTERVAL: drop expired values (section 7.4.1.3) and,
        every REPAIR_EVERY rounds, place every value held again, which
        repairs replicas a lost Store left short (section 10.7.3)."""
        self.service.purgeExpired(self.clock.seconds())
        self._rounds += 1
        if self._rounds % REPAIR_EVERY == 0:
            self.replicator.sweep()

    def replicaBudget(self, nodeId: bytes, certificates: tuple[bytes, ...]) -> int:
        """The most bytes the StoreReq body of a replica Store to ``nodeId``
        with ``certificates`` may have: max-message-size (sections 6.6 and
        11.1) less the rest of the message -- forwarding header, message
        code, security block with the signature and the certificates --
        measured by encoding it empty, with room for REPLICA_VIA_HEADROOM
        peers to forward it (each appends to the via list, section 6.1.2)
        and for SIGNATURE_SLACK.
        A message body is a length-prefixed vector, so the body adds its
        own length exactly."""
        transport = self.node.transport
        settings = transport.settings
        key = (settings, certificates)
        overhead = self._overheads.get(key)
        if overhead is None:
            if len(self._overheads) >= 64:
                self._overheads.clear()
            overhead = self._overheads[key] = transport.requestSize(
                [Destination.node(nodeId)],
                StoreReq.CODE,
                b"",
                certificates=certificates,
                forwardedBy=REPLICA_VIA_HEADROOM,
            )
        return settings.maxMessageSize - overhead - SIGNATURE_SLACK

    def _sendReplica(self, nodeId: bytes, replica: ReplicaStore) -> Deferred[Any]:
        """A replica Store to ``nodeId``, with the certificates of its
        values' signers (section 6.3.4)."""
        return self.node.transport.request(
            [Destination.node(nodeId)],
            StoreReq.CODE,
            replica.request.encode(),
            certificates=replica.certificates,
        )
