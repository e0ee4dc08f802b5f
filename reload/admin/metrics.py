"""``GET /metrics``: the peer in Prometheus' text exposition format.

Each peer has its own :class:`prometheus_client.CollectorRegistry` (never
the global one), so several peers in one process -- the tests, the
simulator -- do not clash.  Two kinds of metrics:

- pushed as things happen: messages by method and direction, their bytes,
  Error responses by code, the latency of this peer's own requests (the
  transport's :class:`~reload.transport.trace.MessageObserver`);
- read from the peer when Prometheus scrapes (:class:`PeerCollector`):
  links by protocol, handshakes refused by reason, stored values and bytes
  by Kind, replication, neighbours, transport events, and the metrics the
  usages add (:class:`reload.interfaces.IUsageMetrics`).

Process metrics (``process_*``, ``python_*``) come from prometheus_client's
own collectors.  Names and labels are listed in the README's metrics table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from reload import __version__
from reload.api.metrics import COUNTER, UsageMetric
from reload.errors import ReloadError
from reload.transport.trace import messageCodes
from reload.wire.message import ErrorCode, MessageCode

if TYPE_CHECKING:
    from reload.peer import OverlayPeer
    from reload.settings import PeerSettings

__all__ = ["MetricsResource", "PeerMetrics", "linksOf", "storedByKind"]

_log = Logger()

#: Transport counters that have metrics of their own.
_OWN_METRICS = {"sent", "received", "forwarded"}
#: Latency buckets (seconds): a loopback hop is a millisecond, an overlay
#: request with retransmissions a few seconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_NAME = re.compile(r"[^a-zA-Z0-9_]")


def methodName(code: int) -> str:
    """``store_req``, ``fetch_ans``, ``error``... (section 14.8)."""
    try:
        return MessageCode(code).name.lower()
    except ValueError:
        return f"unknown_{code:#06x}"


def errorName(code: int) -> str:
    """``not_found``, ``forbidden``... (section 14.9)."""
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return f"unknown_{code:#06x}"


def _snake(text: str) -> str:
    """A camelCase counter name as a label value: ``linksUp`` -> ``links_up``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", text).lower()


class PeerMetrics:
    """The metrics of one peer, in :attr:`registry`; it observes the
    peer's messages (it is the transport's ``observer``)."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        #: Messages and bytes by (code, direction) not yet in the counters;
        #: registered first, so every collection brings them in before the
        #: counters are read.
        self._tallies: dict[tuple[int | None, str], list[int]] = {}
        self.registry.register(_BeforeCollection(self._flushTallies))
        self.messages = Counter(
            "reload_messages",
            "RELOAD messages by method and direction (sent, received, forwarded).",
            ["method", "direction"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "reload_message_bytes",
            "Bytes of RELOAD messages by direction.",
            ["direction"],
            registry=self.registry,
        )
        self.errors = Counter(
            "reload_errors",
            "Error responses (RFC 6940 section 6.3.3.1) by error code and direction.",
            ["code", "direction"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "reload_request_duration_seconds",
            "Seconds from sending one of this peer's own requests to its answer, "
            "by method and outcome (ok, error, timeout).",
            ["method", "outcome"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._counters: dict[tuple[int | None, str], tuple[Any, Any]] = {}
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    # -- MessageObserver ---------------------------------------------------------

    def message(self, direction: str, data: bytes) -> None:
        # Every message a peer handles comes here, so it only adds to two
        # plain integers per (message code, direction); the labelled
        # prometheus counters (each increment takes a lock) are brought up
        # to date when they are read (:meth:`_flushTallies`).
        codes = messageCodes(data)
        code = None if codes is None else codes[0]
        tally = self._tallies.get((code, direction))
        if tally is None:
            # Message codes are 16 bits and a peer may receive any of them:
            # at most 1,024 tallies wait for a scrape.
            if len(self._tallies) >= 1024:
                self._flushTallies()
            tally = self._tallies[(code, direction)] = [0, 0]
        tally[0] += 1
        tally[1] += len(data)
        if codes is not None and codes[1] is not None:
            self.errors.labels(errorName(codes[1]), direction).inc()

    def _flushTallies(self) -> None:
        """Add the messages and bytes counted since the last call to the
        labelled counters."""
        tallies, self._tallies = self._tallies, {}
        for (code, direction), (count, size) in tallies.items():
            counters = self._counters.get((code, direction))
            if counters is None:
                counters = self._labelled(code, direction)
            counters[0].inc(count)
            counters[1].inc(size)

    def _labelled(self, code: int | None, direction: str) -> tuple[Any, Any]:
        """The message and byte counters of ``code`` going ``direction``;
        at most 1,024 pairs are kept (message codes are 16 bits, and a
        peer may receive any of them)."""
        method = "unparsable" if code is None else methodName(code)
        counters = (self.messages.labels(method, direction), self.bytes.labels(direction))
        if len(self._counters) >= 1024:
            self._counters.clear()
        self._counters[(code, direction)] = counters
        return counters

    def request(self, code: int, answer: Deferred[Any]) -> None:
        started = self.clock.seconds()
        method = methodName(code).removesuffix("_req")

        def observed(result: object) -> object:
            if not isinstance(result, Failure):
                outcome = "ok"
            elif result.check(ReloadError):
                outcome = "error"
            else:
                outcome = "timeout"
            self.latency.labels(method, outcome).observe(self.clock.seconds() - started)
            return result

        answer.addBoth(observed)

    # -- the peer's state --------------------------------------------------------

    def watch(self, peer: OverlayPeer, settings: PeerSettings, joined: Callable[[], bool]) -> None:
        """Read ``peer`` at each scrape, and observe its messages."""
        self.registry.register(PeerCollector(peer, settings, joined, self.clock))
        peer.messageObserver = self

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class _BeforeCollection(Collector):
    """Calls ``hook`` whenever the registry is collected, and yields no
    metric itself."""

    def __init__(self, hook: Callable[[], None]) -> None:
        self.hook = hook

    def collect(self) -> Iterable[Metric]:
        self.hook()
        return ()


class PeerCollector(Collector):
    """Metrics read from the peer when scraped."""

    def __init__(
        self,
        peer: OverlayPeer,
        settings: PeerSettings,
        joined: Callable[[], bool],
        clock: IReactorTime,
    ) -> None:
        self.peer = peer
        self.settings = settings
        self.joined = joined
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        yield from self._peer()
        yield from self._transport()
        yield from self._links()
        yield from self._storage()
        yield from self._usages()

    def _peer(self) -> Iterable[Metric]:
        peer, settings = self.peer, self.settings
        info = GaugeMetricFamily(
            "reload_peer_info",
            "This peer: software version, overlay, topology, role and Node-ID.",
            labels=["version", "overlay", "topology", "role", "node_id"],
        )
        nodeId = peer.identity.nodeId.hex() if peer.identity is not None else ""
        role = "client" if settings.client else "peer"
        info.add_metric(
            [
                __version__,
                settings.configuration.instanceName,
                settings.topology.name,
                role,
                nodeId,
            ],
            1,
        )
        yield info
        yield GaugeMetricFamily(
            "reload_peer_joined", "1 when the peer has joined its overlay.", value=self.joined()
        )
        neighbours = GaugeMetricFamily(
            "reload_neighbours", "Neighbours the topology keeps, by role.", labels=["role"]
        )
        if peer.topology is not None:
            for role, ids in sorted(peer.status().get("neighbours", {}).items()):
                neighbours.add_metric([role], len(ids))
        yield neighbours

    def _transport(self) -> Iterable[Metric]:
        node = self.peer.node
        counters = dict(node.transport.counters) if node is not None else {}
        yield CounterMetricFamily(
            "reload_forwarded_messages",
            "Messages this peer forwarded for others (RFC 6940 section 6.2).",
            value=counters.get("forwarded", 0),
        )
        events = CounterMetricFamily(
            "reload_transport_events",
            "Other transport events: requests sent, answers given, malformed messages, "
            "drops, bad signatures, send failures...",
            labels=["event"],
        )
        for name, count in sorted(counters.items()):
            if name not in _OWN_METRICS:
                events.add_metric([_snake(name)], count)
        yield events

    def _links(self) -> Iterable[Metric]:
        peer = self.peer
        links = GaugeMetricFamily(
            "reload_links", "Open overlay links by protocol.", labels=["protocol"]
        )
        refused = CounterMetricFamily(
            "reload_handshakes_refused",
            "Connections and handshakes refused or cut by a limit or a failed check, by reason.",
            labels=["reason"],
        )
        if peer.listener is not None:
            links.add_metric(["tls"], len(peer.listener.table.items()))
            for reason, count in sorted(peer.listener.limited.items()):
                refused.add_metric([_snake(reason.replace(" ", "_"))], count)
        if peer.dtls is not None:
            links.add_metric(["dtls"], len(peer.dtls.links))
        yield links
        yield refused

    def _storage(self) -> Iterable[Metric]:
        storage = self.peer.storage
        values = GaugeMetricFamily(
            "reload_stored_values",
            "Values this peer stores, replicas included, by Kind.",
            labels=["kind"],
        )
        sizes = GaugeMetricFamily(
            "reload_stored_bytes", "Bytes of the values this peer stores, by Kind.", labels=["kind"]
        )
        resources = GaugeMetricFamily(
            "reload_stored_resources", "Resource-IDs this peer holds data for."
        )
        if storage is not None:
            for kindId, (count, size) in sorted(storedByKind(self.peer).items()):
                values.add_metric([f"{kindId:#x}"], count)
                sizes.add_metric([f"{kindId:#x}"], size)
            resources.add_metric([], storage.service.numResources)
        yield values
        yield sizes
        yield resources
        replicator = self.peer.storageStack.replicator if self.peer.storageStack else None
        yield CounterMetricFamily(
            "reload_replica_stores",
            "Replica Stores (RFC 6940 section 10.4) sent and acknowledged.",
            value=replicator.sent if replicator else 0,
        )
        yield CounterMetricFamily(
            "reload_replica_store_failures",
            "Replica Stores that failed.",
            value=replicator.failed if replicator else 0,
        )
        yield GaugeMetricFamily(
            "reload_replica_placements_pending",
            "Copies (a Resource-ID to a peer) a failure stopped, waiting to be resumed.",
            value=replicator.unplaced if replicator else 0,
        )

    def _usages(self) -> Iterable[Metric]:
        for usageName, source in self.peer.usages.metricSources():
            prefix = f"reload_usage_{_NAME.sub('_', usageName.lower())}_"
            try:
                metrics = list(source.metrics())
            except Exception:
                _log.failure("usage {usage}: metrics() failed", usage=usageName)
                continue
            for metric in metrics:
                if isinstance(metric, UsageMetric):
                    yield _family(prefix, metric)


def storedByKind(peer: OverlayPeer) -> dict[int, tuple[int, int]]:
    """Kind-ID -> (values, bytes) of what ``peer`` stores, replicas included."""
    if peer.storage is None:
        return {}
    perKind: dict[int, tuple[int, int]] = {}
    for record in peer.storage.service.store:
        count, size = perKind.get(record.kindId, (0, 0))
        perKind[record.kindId] = (
            count + len(record.values),
            size + sum(v.size for v in record.values.values()),
        )
    return perKind


def linksOf(peer: OverlayPeer) -> list[dict[str, Any]]:
    """The peer's links for the status page: peer Node-ID, protocol,
    direction, since when up, messages received."""
    out: list[dict[str, Any]] = []
    if peer.listener is not None:
        for nodeId, link in peer.listener.table.items():
            out.append(
                {
                    "peer": nodeId.hex(),
                    "protocol": "TLS",
                    "direction": "outbound" if link.outbound else "inbound",
                    "upSince": link.upSince or None,
                    "messagesReceived": link.messagesReceived,
                }
            )
    if peer.dtls is not None:
        for address, dtlsLink in peer.dtls.links.items():
            out.append(
                {
                    "peer": dtlsLink.expectedNodeId.hex()
                    if dtlsLink.expectedNodeId
                    else str(address),
                    "protocol": "DTLS",
                    "direction": "outbound" if dtlsLink.isClient else "inbound",
                    "upSince": dtlsLink.startedAt,
                    "messagesReceived": dtlsLink.messagesReceived,
                }
            )
    return sorted(out, key=lambda link: str(link["peer"]))


def _family(prefix: str, metric: UsageMetric) -> Metric:
    labelNames = sorted({name for labels, _ in metric.samples for name in labels})
    name = prefix + _NAME.sub("_", metric.name).removesuffix("_total")
    family: GaugeMetricFamily | CounterMetricFamily
    if metric.type == COUNTER:
        family = CounterMetricFamily(name, metric.help, labels=labelNames)
    else:
        family = GaugeMetricFamily(name, metric.help, labels=labelNames)
    for labels, value in metric.samples:
        family.add_metric([labels.get(n, "") for n in labelNames], value)
    return family


class MetricsResource(Resource):
    """Serves :meth:`PeerMetrics.exposition`."""

    isLeaf = True

    def __init__(self, metrics: PeerMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        request.setHeader(b"cache-control", b"no-store")
        return self._metrics.exposition()
