"""The plugin contracts of a RELOAD peer.

Three kinds of plugin extend a peer, all found with
:func:`twisted.plugin.getPlugins` and checked with
:func:`zope.interface.verify.verifyObject` when loaded (see
:mod:`reload.plugins`):

- an :class:`ITopologyPlugin` is an overlay algorithm (RFC 6940 section 3.2.1
  and 6.4.2): CHORD-RELOAD, or an alternative named by the overlay
  configuration's ``topology-plugin`` element;
- an :class:`IUsage` is an application of the overlay (section 5.2): it brings
  :class:`IKind` definitions and, optionally, a service that runs beside the
  node (a SIP front end, a TURN server, a ReDiR registrar);
- an :class:`IAccessPolicy` is an access-control policy (section 7.3) that a
  usage brings when the four of the base protocol do not fit.

A plugin talks to its node only through :class:`INode`, the node's public API.
It never imports the link, transport or storage internals; if a plugin needs
more than :class:`INode` offers, the API is widened on purpose.

Names follow Twisted's camelCase for interface attributes.  Identifiers are
``bytes``: a Node-ID is ``NodeIdLength`` bytes (16 for CHORD-RELOAD, section
10), a Resource-ID is at most 255 bytes (section 6.3.2.2).  Times are seconds
as ``float`` from the node's injected clock (an ``IReactorTime``), never read
from the system.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IProtocolFactory
from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface

from reload.api.data import (
    DEFAULT_LIFETIME,
    KindMetadata,
    KindValues,
    Specifier,
    StoreResult,
    StoreValues,
    Value,
)

__all__ = [
    "AccessRequest",
    "DataModel",
    "IAccessPolicy",
    "IKind",
    "IKindStoreCheck",
    "INode",
    "IRelaySource",
    "ITopology",
    "ITopologyExtensions",
    "ITopologyPlugin",
    "IUsage",
    "IUsageOperations",
    "IUsageSimulation",
    "IUsageStatus",
    "MemberTurnServer",
]


class DataModel(IntEnum):
    """RFC 6940 section 7.2 data models; the values are the wire codes of
    section 7.4.1.1."""

    SINGLE = 1
    ARRAY = 2
    DICTIONARY = 3


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """What an access policy decides on: one value a signer wants to store.

    Built by the storing peer for every value of a StoreReq (section 7.4.1.1)
    and again by a fetcher that verifies what it got (section 7.4.2.2), after
    the signature over the value has been verified.
    """

    resourceId: bytes
    kindId: int
    #: The Kind's data model and, for ARRAY and DICTIONARY, the entry's index
    #: or key (``None`` for SINGLE).
    dataModel: DataModel
    entry: int | bytes | None
    #: The encoded value (the ``value`` field of the model's entry).
    value: bytes
    #: From the signer's certificate (section 11.3): the rfc822Name user name
    #: and the Node-IDs of its ``reload:`` URI SANs.
    signerUserName: str
    signerNodeIds: tuple[bytes, ...]
    #: The Kind's ``max-node-multiple`` from the configuration, or ``None``.
    maxNodeMultiple: int | None
    #: The entry's ``exists`` flag (section 7.2): False for a deletion,
    #: whose ``value`` is empty.  Policies such as NODE-ID-MATCH (RFC 7374
    #: section 5) check the value only "provided that exists=True".
    exists: bool = True


class IAccessPolicy(Interface):
    """An access-control policy (RFC 6940 section 7.3).

    The base policies USER-MATCH, NODE-MATCH, USER-NODE-MATCH and
    NODE-MULTIPLE ship with the node; a usage that needs another (ReDiR's
    NODE-ID-MATCH, RFC 7374 section 5; USER-CHAIN-ACL, RFC 8076) provides an
    object with this interface from :meth:`IUsage.accessPolicies`.
    """

    name = Attribute(
        "The policy's name as the configuration's <kind> element and the IANA "
        "registry spell it, e.g. 'NODE-ID-MATCH'."
    )

    def permits(request: AccessRequest, node: INode) -> bool:
        """Whether the signer may write ``request``.

        ``node`` gives the overlay's hash (:meth:`INode.resourceId`), the
        locally stored data a policy such as USER-CHAIN-ACL consults
        (:meth:`INode.localData`) and the overlay configuration in force
        (``node.configuration``, ``None`` when the storing peer has none to
        offer; a policy that needs it then denies), for parameters such as
        ReDiR's ``redir:branching-factor``.  Called
        on the storing peer and on fetchers; it must be deterministic and must
        return ``False`` when it cannot decide (security fails closed).
        """


class IKind(Interface):
    """A Kind: a type of data stored in the overlay (RFC 6940 section 7.1,
    and section 5.2 for how usages define them)."""

    name = Attribute("The Kind's name, e.g. 'SIP-REGISTRATION'.")
    kindId = Attribute(
        "The 32-bit Kind-ID (section 14.6 registry, or 0xf0000000 and above "
        "for private kinds).  Two kinds with one id in one overlay are a "
        "configuration error."
    )
    dataModel = Attribute("A DataModel: SINGLE, ARRAY or DICTIONARY.")
    accessPolicy = Attribute(
        "The name of the access policy (section 7.3): one of the base four or one a usage provides."
    )
    maxCount = Attribute(
        "Default max-count (values per Resource-ID for this Kind) when the "
        "overlay configuration gives none."
    )
    maxSize = Attribute("Default max-size in bytes of one value, likewise.")

    def validate(value: bytes) -> None:
        """Check an encoded value before it is stored or after it is fetched.

        Raise :class:`ValueError` with a reason a person can read; the storing
        peer answers Error_Invalid_Message with that reason.
        """

    def encode(value: object) -> bytes:
        """Encode an application value (the usage's own type) to bytes."""

    def decode(data: bytes) -> object:
        """Decode bytes to the usage's value type; :class:`ValueError` on
        bytes that are not a valid value."""


class IKindStoreCheck(Interface):
    """What a Kind may add to its access policy on the storing peer.

    Some usages ask the storing peer for more than the Kind's access policy
    (section 7.3) checks: RFC 7904 section 3.3 has it verify that the AoR's
    domain is admissible under the overlay's ``sip:domain-restriction``,
    with a Kind whose policy IANA fixes as USER-NODE-MATCH.  A Kind that
    also provides this interface has :meth:`checkStore` run on every value
    its policy let through on the storing peer (replica stores included).
    """

    def checkStore(request: AccessRequest, node: INode) -> None:
        """Raise :class:`ValueError` with a reason a person can read to
        refuse the value; the storing peer answers Error_Forbidden.  Any
        other exception refuses it too (security fails closed)."""


@dataclass(frozen=True, slots=True)
class MemberTurnServer:
    """A TURN server an overlay member runs (RFC 6940 section 9): ``host``
    and ``port`` from its TURN-SERVICE value, ``nodeId`` the member that
    signed that value.  The node reaches it over TLS on TCP at the same
    port number (RFC 8656 section 3.1) and requires the server's
    certificate to hold ``nodeId``."""

    host: str
    port: int
    nodeId: bytes


class IRelaySource(Interface):
    """Where the node's ICE side gets TURN servers for relayed candidates
    (RFC 6940 section 6.5.1.5) when no ``--turn-server`` is configured.
    The TURN usage is one: it finds servers in the overlay (section 9).
    Register with :meth:`INode.addRelaySource`."""

    def relayServers() -> Deferred[Sequence[MemberTurnServer]]:
        """A few live TURN servers to try, best first; an empty sequence
        when none is known.  The node tries them in turn, over TLS, and
        keeps the first that allocates."""


class INode(Interface):
    """A node's public API, the only way plugins act on the overlay.

    Every method returning a Deferred fails it with
    :class:`reload.errors.ReloadError` (carrying the RFC 6940 error code) when
    the overlay answers with an Error, and with
    :class:`twisted.internet.defer.TimeoutError` when no answer arrives.
    """

    nodeId = Attribute("This node's Node-ID (bytes), from its certificate.")
    userName = Attribute(
        "The user name (rfc822Name, section 11.3) of this node's certificate, "
        "'' when it has none (a self-signed certificate made without --user)."
    )
    overlayName = Attribute("The overlay instance name (section 11.1).")
    configuration = Attribute("The overlay configuration in force (reload.config).")
    clock = Attribute("The IReactorTime every timer of a plugin must use.")
    reactor = Attribute("The reactor, for plugins that open sockets (TURN, SIP).")
    behindNat = Attribute(
        "Whether this node is behind a NAT, as ICE found out (RFC 6940 section 6.5.1.4): "
        "True when a STUN server saw its link port at another address than its own, "
        "False when at the same one, None when it cannot tell (no STUN server answered, "
        "or no ICE).  RFC 6940 section 9: a peer behind a NAT does not offer itself as a "
        "TURN server."
    )

    def resourceId(name: bytes) -> bytes:
        """Hash a resource name to its Resource-ID with the topology's hash
        (section 10.2 for CHORD-RELOAD)."""

    def kind(kindId: int) -> IKind:
        """The Kind with this id in the configuration; KeyError if none."""

    def request(
        destination: bytes, messageCode: int, body: bytes, extensions: Sequence[Any] = ()
    ) -> Deferred[tuple[int, bytes]]:
        """Send a request (section 6.3) routed to ``destination`` (a Node-ID
        or Resource-ID, as the topology routes it) and return a Deferred that
        fires with ``(messageCode, body)`` of the answer.  ``extensions``
        (:class:`reload.api.topology.MessageExtension` values) go into the
        request's MessageContents (section 6.3.3); extensions of the answer
        reach a topology that provides :class:`ITopologyExtensions`."""

    def store(
        resourceId: bytes, kindId: int, values: StoreValues, lifetime: int = DEFAULT_LIFETIME
    ) -> Deferred[list[StoreResult]]:
        """Store values of one Kind (section 7.4.1), each signed by this
        node: ``bytes`` for a SINGLE Kind, ``{index: bytes}`` for an ARRAY
        (index :data:`reload.api.data.APPEND` appends), ``{key: bytes}``
        for a DICTIONARY; ``None`` in place of bytes deletes.  Every value
        passes the Kind's :meth:`IKind.validate` first.  Deferred of one
        :class:`~reload.api.data.StoreResult` per Kind."""

    def fetch(
        resourceId: bytes, specifiers: Iterable[Specifier | int]
    ) -> Deferred[list[KindValues]]:
        """Fetch (section 7.4.2): a :class:`~reload.api.data.Specifier` per
        Kind, or a bare Kind-ID for all its values.  Every value is verified
        (signature, access policy, :meth:`IKind.validate`) before the
        Deferred fires with one :class:`~reload.api.data.KindValues` per
        Kind; one that fails fails the Fetch with Error_Forbidden or
        Error_Invalid_Message."""

    def stat(
        resourceId: bytes, specifiers: Iterable[Specifier | int]
    ) -> Deferred[list[KindMetadata]]:
        """Stat (section 7.4.3): the metadata of what a Fetch would return."""

    def find(resourceId: bytes, kindIds: Iterable[int]) -> Deferred[dict[int, bytes | None]]:
        """Find (section 7.4.4): a mapping Kind-ID -> the closest
        Resource-ID at or after ``resourceId`` that the responsible peer
        holds that Kind at, or ``None``."""

    def localData(resourceId: bytes, kindId: int) -> tuple[Value, ...]:
        """What this node itself stores for (resourceId, kindId), for access
        policies that consult stored data; empty when it stores nothing."""

    def attach(
        destination: bytes, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[bytes]:
        """Open an overlay link (Attach, section 6.5.1) to the peer
        responsible for ``destination`` (a Node-ID or Resource-ID), routed
        through the connected peer ``via`` when given (source routing,
        section 10.6), asking the other side for an Update when
        ``sendUpdate``.  Deferred of the Node-ID of the peer now connected
        (after :meth:`ITopology.linkUp` has been called for it).  Topologies
        use it to join and to reach neighbours and fingers."""

    def appAttach(nodeId: bytes, application: int, factory: IProtocolFactory) -> Deferred[Any]:
        """Open a direct connection to the peer ``nodeId`` for
        ``application`` (AppAttach, section 6.5.2; e.g. 5060 for SIP): TLS,
        both sides presenting their overlay certificates; a connection whose
        certificate is not ``nodeId``'s is closed.  Deferred of the protocol
        ``factory`` built for it, once connected."""

    def listenApplication(application: int, factory: IProtocolFactory) -> None:
        """Accept AppAttach connections for ``application`` (section 6.5.2)
        with ``factory``; its protocols see only connections whose overlay
        certificate is the requesting node's."""

    def tlsServerConnectionCreator() -> IOpenSSLServerConnectionCreator:
        """A TLS server side for a usage's own listener that overlay members
        connect to (e.g. TURN over TLS, RFC 6940 section 9): this node's
        overlay certificate, a client certificate required and verified
        exactly as on overlay links (section 13.6.3, the trust policy of
        this node's links).  Use it as ``TLSMemoryBIOFactory(creator,
        False, factory)`` over a TCP listener; read who connected with
        :meth:`verifiedNodeIds`.  A client whose certificate fails is
        refused in the handshake.  :class:`~reload.errors.AppAttachFailed`
        on a node without sockets (the in-memory harness)."""

    def addRelaySource(source: IRelaySource) -> None:
        """Let ``source`` offer TURN servers to this node's ICE side
        (relayed candidates, RFC 6940 section 6.5.1.5); used when no
        ``--turn-server`` is configured and ICE found the node behind a NAT."""

    def removeRelaySource(source: IRelaySource) -> None:
        """Stop asking ``source`` (a usage stopping); nothing if not added."""

    def verifiedNodeIds(transport: object) -> tuple[bytes, ...]:
        """The Node-IDs (section 11.3) of the certificate verified on the
        connection whose protocol has ``transport`` (made with
        :meth:`tlsServerConnectionCreator`, or an AppAttach connection).
        Fails closed: empty for a connection whose certificate was not
        verified (rejected, not yet, or not TLS at all)."""


class ITopology(Interface):
    """One node's overlay algorithm state, made by an
    :class:`ITopologyPlugin` for that node (RFC 6940 section 6.4.2).

    This is the whole contract between the core and a topology: the
    transport asks it routing questions on every message and reports who
    answered for a Resource-ID; storage asks it where data and its replicas
    belong and is told when that changes; the node reads its join state.  It
    drives its own Join, Update, Leave and RouteQuery exchanges through
    :class:`INode`.  The core never asks a topology anything else, and never
    checks which topology it is.
    """

    phase = Attribute(
        "Where the node is in its life in the overlay, one of 'idle', "
        "'joining', 'joined', 'leaving', 'left' (sections 10.5 and 10.9 for "
        "CHORD-RELOAD; a client is 'joined' once it has a peer, section 4.2)."
    )
    inRing = Attribute(
        "Whether the node is part of the overlay now, routing and responsible "
        "for a share of the Resource-IDs (section 10.1); False for a client."
    )

    def nextHop(destination: bytes) -> bytes | None:
        """The Node-ID of the connected neighbour to forward a message for
        ``destination`` to, or ``None`` when this node is the one to handle
        it (section 6.1.2)."""

    def isResponsible(resourceId: bytes) -> bool:
        """Whether this node is responsible for ``resourceId`` (for
        CHORD-RELOAD: in (predecessor, self], section 10.1)."""

    def replicaSet(resourceId: bytes) -> list[bytes]:
        """Node-IDs that should hold replicas of data this node is
        responsible for (section 10.4: the next two successors)."""

    def holdsReplica(resourceId: bytes) -> bool:
        """Whether this node is in the replica set of ``resourceId`` and so
        keeps a copy of its data (sections 10.4 and 10.7.3: until "there are
        three predecessors between x and R")."""

    def responsiblePeer(resourceId: bytes) -> bytes:
        """The Node-ID of the peer this node believes responsible for
        ``resourceId`` (its own when it is; exact among the peers it knows,
        section 10.3), where storage hands data over to (section 10.7.3)."""

    def isNeighbour(nodeId: bytes) -> bool:
        """Whether ``nodeId`` is in this node's Neighbor Table (section
        10.3): a replica Store is taken only "from an appropriate predecessor
        in their Neighbor Table" (section 7.4.1.1)."""

    def shouldHold(resourceId: bytes) -> bool:
        """Whether this node should keep data at ``resourceId``: it is
        responsible for it, holds a replica of it (section 10.4), or is
        joining and will be responsible for it (section 10.5 step 6: the
        admitting peer Stores that data while the Join completes)."""

    def answeredFor(resourceId: bytes, nodeId: bytes) -> None:
        """The transport's report that ``nodeId`` signed the answer to a
        Store, Fetch, Stat or Find for ``resourceId``, so it is the peer
        responsible for it.  A topology may open a direct connection to it
        (sections 6.5.1 and 6.4.2.4: "the sender can send messages directly
        to that peer"); most ignore it."""

    def routeQueryAnswer(data: bytes) -> dict[str, Any]:
        """The overlay_specific_data of a RouteQueryAns (section 6.4.2.4)
        rendered as a JSON-able dict for ``reloadctl route-query`` and the
        simulator; for CHORD-RELOAD ``{'nextPeer': HEX}`` (section 10.8).
        Raise :class:`ValueError` for data that is not such an answer."""

    def hashResource(name: bytes) -> bytes:
        """The topology's hash of a resource name to a Resource-ID (section
        10.2: SHA-1 truncated to 128 bits for CHORD-RELOAD)."""

    def neighbours() -> dict[str, list[bytes]]:
        """The routing state by role, for status pages and ``reloadctl ring``:
        e.g. {'predecessors': [...], 'successors': [...], 'fingers': [...]}."""

    def join(admittingPeer: bytes | None) -> Deferred[None]:
        """Run the join procedure (section 10.5 for CHORD-RELOAD) through the
        admitting peer, or start a new overlay when it is ``None``; Deferred
        that fires when the node is part of the overlay."""

    def leave() -> Deferred[None]:
        """Leave gracefully (section 10.9); Deferred fired when done."""

    def handleJoin(joiningPeer: bytes, data: bytes) -> bytes:
        """Answer a JoinReq's overlay-specific data (section 6.4.2.1)."""

    def handleUpdate(sender: bytes, data: bytes) -> bytes:
        """Apply an UpdateReq's overlay-specific data (section 6.4.2.3)."""

    def handleLeave(leavingPeer: bytes, data: bytes) -> None:
        """Apply a LeaveReq's overlay-specific data (section 6.4.2.2)."""

    def handleRouteQuery(
        destination: bytes, sendUpdate: bool, data: bytes, requester: bytes | None = None
    ) -> bytes:
        """Answer a RouteQueryReq (section 6.4.2.4) from ``requester``; with
        ``sendUpdate`` the topology also sends the requester an Update
        (section 10.8 for CHORD-RELOAD)."""

    def sendUpdate(peer: bytes) -> Deferred[None]:
        """Send ``peer`` this topology's Update (section 6.4.2.3); the node
        calls it when it accepted an Attach with send_update set (section
        6.5.1.1).  Deferred fired when the Update is answered."""

    def linkUp(nodeId: bytes) -> None:
        """The link layer has an authenticated connection to ``nodeId``."""

    def linkDown(nodeId: bytes) -> None:
        """The connection to ``nodeId`` failed or closed (section 10.7.1)."""

    def onResponsibilityChange(callback: object) -> None:
        """Register ``callback(ranges)`` to be called whenever the set of
        Resource-IDs this node is responsible for, or a replica set, changes,
        so that storage can hand data over or re-replicate (section 10.7)."""


class ITopologyExtensions(Interface):
    """Message extensions (RFC 6940 section 6.3.3) a topology defines, such
    as RFC 7363's self_tuning_data (section 6.5).  An :class:`ITopology`
    that also provides this (``@implementer``) is found by the node when it
    is wired in; every other topology never sees an extension.

    The node declares :attr:`extensionTypes` understood, so a request that
    carries one of them marked critical is not refused with
    Error_Unknown_Extension.  An extension of a type the topology does not
    name is handled by the core as before: ignored unless critical.
    """

    extensionTypes = Attribute(
        "A frozenset of the MessageExtensionType codes (section 14.14 "
        "registry) this topology understands."
    )

    def requestExtensions(
        sender: bytes, messageCode: int, extensions: Sequence[Any]
    ) -> Sequence[Any]:
        """A request addressed to this node from ``sender`` (its verified
        signer) carries ``extensions`` of :attr:`extensionTypes`; called
        after the request has been handled and only when it succeeded (not
        for an Error answer).  Return the extensions to put into the answer
        (empty for none).  Raising is logged; the answer goes out
        without extensions."""

    def answerExtensions(sender: bytes, messageCode: int, extensions: Sequence[Any]) -> None:
        """The answer (``messageCode``) from ``sender`` to a request this
        node sent carries ``extensions`` of :attr:`extensionTypes`; called
        before the request's Deferred fires."""


class ITopologyPlugin(IPlugin):
    """An overlay algorithm that a configuration can name (section 11.1,
    ``topology-plugin``)."""

    name = Attribute("The configuration's topology-plugin value, e.g. 'CHORD-RELOAD'.")
    nodeIdLength = Attribute("Node-ID length in bytes this topology uses (16-20).")

    def makeTopology(node: INode, rng: Any = None) -> ITopology:
        """Build the topology state for one node; nothing is sent until
        :meth:`ITopology.join` is called.  ``rng`` is an optional
        :class:`random.Random` for every random choice the topology makes
        (timer offsets, finger choices: section 10.7.4), so a simulated run
        is a function of its seed."""

    def makeClientTopology(node: INode, directLinks: int) -> ITopology:
        """Build the topology of a client (section 4.2) of this overlay:
        it joins no ring, sends everything through the peer it attaches to,
        and hashes resource names as this topology does (section 4.2.2).  A
        topology may give it up to ``directLinks`` direct connections to
        the peers responsible for the Resource-IDs it uses (section 6.5.1);
        0 means none."""


class IUsageOperations(Interface):
    """What a usage's service offers operators, besides running: named
    operations the admin API exposes as ``POST /usage/NAME/OPERATION?KEY=VALUE``
    and ``reloadctl usage NAME OPERATION KEY=VALUE`` calls (``reloadctl
    service`` is the same for the REDIR usage).

    A service that provides this interface (``@implementer``) is found by
    the node; nothing else of the usage is called from outside.
    """

    def operations() -> Mapping[str, Any]:
        """Operation name -> ``call(arguments: dict[str, str])`` returning a
        Deferred of a JSON-able dict.  ``call`` raises (or fails the
        Deferred with) :class:`ValueError` for bad arguments (answered 400),
        :class:`LookupError` when nothing was found (404),
        :class:`reload.errors.ReloadError` for the overlay's Error (502); a
        timeout is answered 504."""


class IUsageSimulation(Interface):
    """A usage plugin object that also provides this has scenarios for the
    overlay simulator: ``python -m reload.sim usage NAME ARGUMENTS...``
    hands it the arguments after the name.  A simulation builds its overlay
    with :class:`reload.testing.MemoryOverlay` (real nodes, in memory, on a
    simulated clock), so a usage's scaling figures come from the same code
    that runs in peers."""

    def simulate(arguments: Sequence[str]) -> int:
        """Parse ``arguments`` (``--help`` included), run, print the results;
        the exit status (0 when every check of the scenario held)."""


class IUsageStatus(Interface):
    """What a usage's service reports about itself on the peer's status
    (``reloadctl status``, the admin API's ``GET /status``): a service that
    provides this interface has its :meth:`status` shown under its usage."""

    def status() -> Mapping[str, Any]:
        """A JSON-able mapping, cheap to compute (no overlay traffic): what
        an operator watches, e.g. a TURN server's allocations and refusals."""


class IUsageMetrics(Interface):
    """Metrics a usage's service adds to the peer's ``/metrics`` (Prometheus
    text format).  A service that provides this interface is asked each
    time the peer is scraped; keep it cheap (read counters, do no I/O)."""

    def metrics() -> Iterable[Any]:
        """:class:`reload.api.metrics.UsageMetric` values; the peer names
        each ``reload_usage_<usage>_<name>``."""


class IUsage(IPlugin):
    """An application of the overlay (RFC 6940 section 5.2)."""

    name = Attribute("The name ``--usage`` selects, e.g. 'SIP', 'TURN', 'REDIR'.")
    description = Attribute("One line for ``twistd reload --help`` and the status page.")
    options = Attribute(
        "A mapping option name -> one-line help of the options this usage "
        "takes (``--usage-option NAME:KEY=VALUE``)."
    )

    def kinds() -> list[IKind]:
        """The Kinds this usage defines; the overlay configuration must list
        them (with their limits) for the node to store them."""

    def accessPolicies() -> list[IAccessPolicy]:
        """Access policies this usage brings beyond the base four (often
        none)."""

    def checkOptions(options: Mapping[str, str]) -> None:
        """Check this usage's options before the peer starts: raise
        :class:`ValueError` whose message names the option and says what is
        wrong (``twistd reload`` prints it as one line and does not start).
        Only keys of :attr:`options` are passed."""

    def makeService(node: INode, options: dict[str, str]) -> IService | None:
        """The IService that runs this usage beside ``node`` (started after
        the node has joined, stopped before it leaves), or ``None`` when the
        usage only defines Kinds.  Raise :class:`ValueError` naming the option
        for a bad option value."""
