"""An in-memory overlay for testing usages and topologies (public API).

:class:`MemoryOverlay` runs N real nodes in one process, on the simulator
of :mod:`reload.sim`: each node is the real message layer, the real storage
(in memory) wired by :class:`~reload.storagestack.StorageStack`, the
topology plugin the test names and the usages it gives, on memory links
with latency and one simulated clock.  Every node has a certificate from
the simulation's CA; every message and every stored value is signed and
verified as in a deployed peer.  A run is a function of its seed.

Plugin authors use it like this (``docs/plugins.md``)::

    with MemoryOverlay(20, usages=[greeter]) as overlay:
        first, last = overlay.nodes[0], overlay.nodes[-1]
        kinds = overlay.wait(first.api.fetch(first.api.resourceId(last.nodeId), [KIND]))

or, with pytest, through the ``memoryOverlay`` fixture of
:mod:`reload.testing.fixtures` (``pytest_plugins = ["reload.testing.fixtures"]``).

What the harness does not have: sockets.  ``node.reactor`` is the
simulated clock, and AppAttach (which opens TLS connections) fails with
:class:`~reload.errors.AppAttachFailed`; test those parts in a real-process
lab (:class:`reload.lab.Lab`).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from random import Random
from types import TracebackType
from typing import Any

from twisted.python.failure import Failure

from reload.config import OverlayConfiguration, defaultConfiguration
from reload.interfaces import INode, ITopology, ITopologyPlugin, IUsage
from reload.overlaynode import OverlayNode
from reload.plugins import brokenReason, loadTopology
from reload.sim.clock import Scheduler
from reload.sim.network import SimNetwork
from reload.sim.node import Security, SimNode, SimPki
from reload.storage.sqlite import MemoryStore
from reload.storagestack import StorageStack
from reload.transport.node_api import TransportNode
from reload.transport.security import SigningSecurity
from reload.transport.transport import TransportSettings
from reload.usageruntime import (
    UsageError,
    UsageRunner,
    checkUsageOptions,
    kindTable,
    usageKindConfigs,
    usageKinds,
)

__all__ = ["HarnessNode", "MemoryOverlay", "UsageError"]

#: The simulated time a harness starts at (2027-01-15): certificates are
#: issued for it, values are stored at it.
DEFAULT_START = 1_800_000_000.0
#: One-way delay of a memory link, in seconds.
DEFAULT_LATENCY = 0.005
#: Simulated seconds the constructor lets pass once its nodes have joined,
#: for the usages' start-up work (their first Stores) and the topology's
#: first stabilisation to finish.
SETTLE = 5.0
#: Simulated seconds an operation may take before :meth:`MemoryOverlay.wait`
#: gives up (a request fails after its retransmissions well before).
DEFAULT_WAIT = 600.0


class HarnessNode:
    """One node of a :class:`MemoryOverlay`: ``api`` is its
    :class:`~reload.interfaces.INode`."""

    def __init__(self, sim: SimNode, api: OverlayNode, stack: StorageStack, usages: UsageRunner):
        self.sim = sim
        self.api: INode = api
        self.stack = stack
        self.usages = usages

    def __repr__(self) -> str:
        return f"<HarnessNode {self.nodeId.hex()[:8]} {self.sim.phase}>"

    @property
    def nodeId(self) -> bytes:
        return self.sim.nodeId

    @property
    def topology(self) -> ITopology:
        topology: ITopology = self.sim.topology
        return topology

    @property
    def alive(self) -> bool:
        return self.sim.alive

    @property
    def inOverlay(self) -> bool:
        """Joined and part of the overlay (``ITopology.inRing``)."""
        return self.sim.inRing

    def service(self, usage: str) -> Any:
        """The service ``usage`` made for this node (None when it runs
        none or has not started); KeyError for a usage not given."""
        return self.usages.service(usage)

    def holds(self, resourceId: bytes, kindId: int) -> bool:
        """Whether this node itself stores something of (resourceId,
        kindId): a replica or the responsible peer's copy."""
        return bool(self.api.localData(resourceId, kindId))


class MemoryOverlay:
    """``size`` nodes joined into one overlay, running ``usages`` (each
    given its ``options[usage.name]``), with the topology plugin named
    ``topology`` (or given as an object).

    ``configuration`` defaults to the embedded default overlay plus the
    usages' Kinds.  ``seed`` fixes Node-IDs, keys, timers and routing
    choices.  Raises :class:`UsageError` (one line) for a usage whose Kinds
    or options would stop a real peer.
    """

    def __init__(
        self,
        size: int = 0,
        *,
        usages: Sequence[Any] = (),
        options: Mapping[str, Mapping[str, str]] | None = None,
        topology: str | ITopologyPlugin = "CHORD-RELOAD",
        configuration: OverlayConfiguration | None = None,
        seed: int = 0,
        latency: float = DEFAULT_LATENCY,
        start: float = DEFAULT_START,
    ) -> None:
        if size < 0:
            raise ValueError(f"size must be 0 or more, got {size}")
        self.plugin: ITopologyPlugin = (
            loadTopology(topology) if isinstance(topology, str) else topology
        )
        self.usages = list(usages)
        for usage in self.usages:
            reason = brokenReason(IUsage, usage)
            if reason is not None:
                raise UsageError(f"{usage!r} is not an IUsage: {reason}")
        self.options = {name: dict(values) for name, values in (options or {}).items()}
        if configuration is None:
            configuration = self._defaultConfiguration(seed)
        self.configuration = configuration
        self.kinds = usageKinds(configuration, self.usages)
        checkUsageOptions(self.usages, self.options)
        self.rng = Random(seed)
        self.scheduler = Scheduler(start)
        self.pki = SimPki(
            configuration.instanceName, datetime.datetime.fromtimestamp(start, datetime.UTC)
        )
        self.network = SimNetwork(
            self.scheduler, latency=latency, rng=Random(self.rng.getrandbits(64))
        )
        self.nodes: list[HarnessNode] = []
        self._stopped = False
        for _ in range(size):
            self.addNode()
        if size:
            self.run(SETTLE)

    def _defaultConfiguration(self, seed: int) -> OverlayConfiguration:
        base = defaultConfiguration(f"harness-{seed}.reload.invalid")
        added = tuple(k for k in usageKindConfigs(self.usages) if base.kind(k.kindId or 0) is None)
        return dataclasses.replace(
            base, kinds=(*base.kinds, *added), topologyPlugin=self.plugin.name
        )

    # -- time ----------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The simulated time, in seconds since the epoch."""
        return self.scheduler.now

    def run(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass (timers, stabilisation,
        messages in flight)."""
        self.scheduler.advance(seconds)

    def wait(self, d: Any, timeout: float = DEFAULT_WAIT) -> Any:
        """Run simulated time until the Deferred ``d`` fires; its result,
        or its failure raised.  :class:`TimeoutError` when it has not fired
        after ``timeout`` simulated seconds."""
        result = self.scheduler.runUntilFired(d, timeout)
        if isinstance(result, Failure):
            result.raiseException()
        return result

    # -- membership ----------------------------------------------------------------

    @property
    def alive(self) -> list[HarnessNode]:
        """The nodes that have not left or failed, in the order they came."""
        return [node for node in self.nodes if node.alive]

    def addNode(self) -> HarnessNode:
        """A new node joins (through a random member, or starts the
        overlay); its usages start once it has joined.  Returns it joined;
        what its usages do at start is under way (:meth:`run` a few
        seconds to let it finish)."""
        if self._stopped:
            raise RuntimeError("this overlay is stopped")
        nodeId = self._newNodeId()
        made: list[OverlayNode] = []

        def makeTopology(transport: TransportNode, rng: Random) -> ITopology:
            api = OverlayNode(
                transport,
                kinds=self.kinds,
                configuration=lambda: self.configuration,
                applications=None,
            )
            made.append(api)
            topology: ITopology = self.plugin.makeTopology(api, rng=rng)
            return topology

        sim = SimNode(
            self.network,
            nodeId,
            Random(self.rng.getrandbits(64)),
            security=Security.SIGNING,
            pki=self.pki,
            configuration=self.configuration,  # type: ignore[arg-type]
            settings=TransportSettings.fromConfiguration(self.configuration),
            makeTopology=makeTopology,
        )
        [api] = made
        node = HarnessNode(
            sim, api, self._storage(sim, api), UsageRunner(self.usages, self.options)
        )
        members = [n for n in self.alive if n.inOverlay]
        bootstrap = self.rng.choice(members).sim if members else None
        self.nodes.append(node)
        self.wait(sim.join(bootstrap))
        node.usages.start(api)
        return node

    def _newNodeId(self) -> bytes:
        used = {node.nodeId for node in self.nodes}
        length = int(self.plugin.nodeIdLength)
        while True:
            nodeId = self.rng.getrandbits(8 * length).to_bytes(length, "big")
            if nodeId not in used:
                return nodeId

    def _storage(self, sim: SimNode, api: OverlayNode) -> StorageStack:
        """Storage as a peer has it (section 7), in memory."""
        assert sim.identity is not None
        security = sim.node.transport.security
        assert isinstance(security, SigningSecurity)
        certificates = security.certificates
        now = datetime.datetime.fromtimestamp(self.now, datetime.UTC)
        certificates.add(self.pki.trust.verify([sim.identity.certificate], now))
        kinds, registry = kindTable(self.configuration, self.usages, self.kinds)
        stack = StorageStack(
            sim.node,
            sim.identity,
            certificates,
            sim.topology,
            kinds,
            registry,
            MemoryStore(),
            clock=sim.host.clock,
            configuration=lambda: self.configuration,
        )
        api.storage = stack.client
        stack.start()
        return stack

    def stopNode(self, node: HarnessNode) -> None:
        """``node`` leaves gracefully: its usages stop, then it leaves the
        overlay (its data is handed over, sections 10.7.3 and 10.9)."""
        self.wait(node.usages.stop())
        node.stack.stop()
        self.wait(node.sim.leave())

    def failNode(self, node: HarnessNode) -> None:
        """``node`` crashes: nothing more runs there, its neighbours see
        its links go (section 10.7.1)."""
        node.stack.stop()
        node.sim.fail()

    def stop(self) -> None:
        """Stop every node's usages and storage; nothing runs afterwards."""
        if self._stopped:
            return
        self._stopped = True
        for node in self.alive:
            node.usages.stop()
            node.stack.stop()
            node.sim.stop()

    def __enter__(self) -> MemoryOverlay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
