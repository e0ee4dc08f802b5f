"""A simulated peer: the real :class:`~reload.transport.TransportNode` and
a real topology (CHORD-RELOAD unless told otherwise) on a
:class:`~reload.sim.network.Host` of the simulated network.

Nothing of the node is simulated but its surroundings: the clock is a
:class:`~reload.sim.clock.NodeClock` of the shared scheduler, links are
:class:`~reload.sim.network.SimLink` pairs (or real TLS links, see
:mod:`reload.sim.tls`) opened by the real
:class:`~reload.transport.attach.NoIceAttachHandler` through the network's
connector, and every message is encoded, routed, signed and verified by the
transport as in a deployed peer.

The costly part is a switch, :class:`Security`:

* ``trusting`` (the default): :class:`~reload.transport.TrustingSecurity`,
  the transport's test signer (the signature is the claimed Node-ID);
* ``signing``: a certificate issued by the simulation's own enrollment CA
  (:class:`SimPki`) for each node, ECDSA P-256 signatures on every message
  and their verification through
  :class:`~reload.security.signing.CertificateCache` and
  :class:`~reload.security.trust.TrustPolicy`
  (:class:`~reload.transport.SigningSecurity`).

Randomness: every node gets its own :class:`random.Random`, seeded from the
simulation's, for its transaction ids and the topology's timer offsets and
finger choices, so a run is a function of the seed.  The topology is built
by a topology plugin (``ITopologyPlugin.makeTopology(node, rng)``), by
default the installed CHORD-RELOAD, looked up by name when first needed:
the simulator imports no topology.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import cache
from random import Random
from typing import Any, cast

from cryptography import x509
from twisted.internet.defer import Deferred

from reload.interfaces import INode, ITopology, ITopologyPlugin
from reload.plugins import loadTopology
from reload.security.certificates import PeerIdentity, issueCertificate, makeCertificateAuthority
from reload.security.keys import PrivateKey, generateEcdsaKey
from reload.security.signing import CertificateCache
from reload.security.trust import TrustPolicy
from reload.sim.network import Host, SimNetwork
from reload.transport.attach import NoIceAttachHandler, hostCandidate
from reload.transport.node_api import TransportNode
from reload.transport.security import MessageSecurity, SigningSecurity, TrustingSecurity
from reload.transport.transport import TransportSettings

__all__ = [
    "DEFAULT_TOPOLOGY",
    "Security",
    "SimConfiguration",
    "SimNode",
    "SimPki",
    "TopologyFactory",
    "defaultTopology",
    "pluginTopology",
]

#: The topology plugin a simulation runs unless told otherwise.
DEFAULT_TOPOLOGY = "CHORD-RELOAD"


class Security(Enum):
    """How simulated nodes sign their messages."""

    TRUSTING = "trusting"
    SIGNING = "signing"


@dataclass(frozen=True)
class SimConfiguration:
    """The few overlay configuration elements (RFC 6940 section 11.1) the
    topology reads from ``node.configuration``."""

    instanceName: str = "sim.reload.invalid"
    #: chord-update-interval, chord-ping-interval, chord-reactive: ``None``
    #: leaves the topology's default, as an element left out of the document.
    chordUpdateInterval: float | None = None
    chordPingInterval: float | None = None
    chordReactive: bool | None = None


class SimPki:
    """The simulation's enrollment CA (RFC 6940 section 11.3) and the trust
    policy of its overlay, shared by every node (its cache of verified
    certificates saves each node checking each chain again; every node still
    verifies every message signature itself)."""

    def __init__(self, overlayName: str, now: datetime.datetime) -> None:
        self.overlayName = overlayName
        self.now = now
        self.caKey, self.caCertificate = makeCertificateAuthority(overlayName, now=now)
        self.trust = TrustPolicy(overlayName, (self.caCertificate,), selfSignedPermitted=False)
        self.issued = 0

    def identity(self, nodeId: bytes, key: PrivateKey | None = None) -> PeerIdentity:
        """A new key and a CA-issued certificate for ``nodeId``."""
        if key is None:
            key = generateEcdsaKey()
        self.issued += 1
        certificate = issueCertificate(
            self.caKey,
            self.caCertificate,
            key.public_key(),
            [nodeId],
            f"peer{self.issued}@{self.overlayName}",
            self.overlayName,
            now=self.now,
        )
        return PeerIdentity.fromCertificate(certificate, key, self.overlayName)

    def security(self, identity: PeerIdentity, clock: Any) -> SigningSecurity:
        return SigningSecurity(identity, CertificateCache(self.trust), clock)

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return (self.caCertificate,)


#: Builds the topology of a node: ``(node, rng) -> topology``.
TopologyFactory = Callable[[TransportNode, Random], ITopology]


def pluginTopology(plugin: ITopologyPlugin) -> TopologyFactory:
    """A factory that builds ``plugin``'s topology (settings from
    ``node.configuration``) with the node's random generator."""

    def make(node: TransportNode, rng: Random) -> ITopology:
        topology: ITopology = plugin.makeTopology(cast(INode, node), rng=rng)
        return topology

    return make


@cache
def _defaultPlugin() -> ITopologyPlugin:
    return loadTopology(DEFAULT_TOPOLOGY)


def defaultTopology(node: TransportNode, rng: Random) -> ITopology:
    """The :data:`DEFAULT_TOPOLOGY` plugin's topology, found once through
    :func:`reload.plugins.loadTopology`."""
    return pluginTopology(_defaultPlugin())(node, rng)


class SimNode:
    """One simulated peer on ``network``: a
    :class:`~reload.transport.TransportNode` with its topology.

    ``rng`` is the node's own random generator (transaction ids, timer
    offsets, finger choices); ``pki`` (with ``security`` SIGNING) issues its
    certificate.  ``configuration`` is what the topology reads its timers
    from.
    """

    def __init__(
        self,
        network: SimNetwork,
        nodeId: bytes,
        rng: Random,
        *,
        security: Security = Security.TRUSTING,
        pki: SimPki | None = None,
        configuration: SimConfiguration | None = None,
        settings: TransportSettings | None = None,
        makeTopology: TopologyFactory = defaultTopology,
    ) -> None:
        self.network = network
        self.nodeId = nodeId
        self.host: Host = network.add(nodeId)
        clock = self.host.clock
        self.identity: PeerIdentity | None = None
        signer: MessageSecurity
        if security is Security.SIGNING:
            if pki is None:
                raise ValueError("signing needs the simulation's PKI")
            self.identity = pki.identity(nodeId)
            signer = pki.security(self.identity, clock)
        else:
            signer = TrustingSecurity(nodeId)
        configuration = configuration if configuration is not None else SimConfiguration()
        if settings is None:
            settings = TransportSettings(overlayName=configuration.instanceName)
        candidates = (hostCandidate(*self.host.address),)
        self.node = TransportNode(
            nodeId,
            signer,
            clock,
            configuration=configuration,
            settings=settings,
            attachHandler=NoIceAttachHandler(network.connector(self.host), candidates),
            rng=rng,
        )
        self.topology = makeTopology(self.node, rng)
        self.node.useTopology(cast(Any, self.topology))
        self.host.handler = self.node.transport
        #: Simulated time this node entered the ring (None before).
        self.joinedAt: float | None = None

    def __repr__(self) -> str:
        return f"<SimNode {self.nodeId.hex()[:8]} {self.phase}>"

    @property
    def transport(self) -> Any:
        return self.node.transport

    @property
    def alive(self) -> bool:
        return self.host.alive

    @property
    def phase(self) -> str:
        if not self.host.alive:
            return "dead"
        return str(self.topology.phase)

    @property
    def inRing(self) -> bool:
        return self.host.alive and bool(self.topology.inRing)

    def join(self, bootstrap: SimNode | None) -> Deferred[None]:
        """Start an overlay (``None``) or join through ``bootstrap``,
        linked to first (section 10.5 step 1: the Joining Node connects to
        a bootstrap peer)."""
        if bootstrap is None:
            d: Deferred[None] = self.topology.join(None)
            return d
        self.network.link(self.host, bootstrap.host)
        joined: Deferred[None] = self.topology.join(bootstrap.nodeId)
        return joined

    def leave(self) -> Deferred[None]:
        """Leave the overlay (section 10.9), then close every link and stop."""
        d: Deferred[None] = self.topology.leave()

        def done(result: object) -> object:
            self.stop()
            return result

        return d.addBoth(done)

    def stop(self) -> None:
        """A clean shutdown: links closed, nothing more runs."""
        if not self.host.alive:
            return
        self.node.stop()
        self.network.disconnect(self.host)
        self.network.fail(self.host)

    def fail(self) -> None:
        """A crash: nothing more runs; the neighbours see the links go."""
        self.network.fail(self.host)
