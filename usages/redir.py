"""REDIR: service discovery with ReDiR (RFC 7374) as a usage plugin.

A *service* is a namespace (an opaque UTF-8 string such as ``turn-server``,
section 3).  Its providers register in a ReDiR tree stored in the overlay,
one tree node per Resource-ID, and anyone finds the provider whose Node-ID
is the closest successor of a key with a few Fetches (sections 3, 4).

The parts, from pure to I/O:

- the interval arithmetic (section 3): :func:`intervalIndex`,
  :func:`treeNodeOf`, :func:`nodeIntervals`, :func:`maxLevel`,
  :func:`isExtreme`, :func:`aloneInInterval`, and the Resource Name of a
  tree node, :func:`resourceName` -- pure functions of integers and bytes;
- the record (section 4.1): :class:`RedirServiceProvider` and its codec;
- the Kind (section 6): :class:`RedirKind`, REDIR, 0x104, a DICTIONARY
  keyed by the provider's Node-ID, whose ``validate`` every storing peer and
  every fetcher runs;
- the access policy (section 5): :class:`NodeIdMatch`, NODE-ID-MATCH;
- the walks (sections 4.3 and 4.5): :func:`registerWalk` and
  :func:`lookupWalk`, which see the overlay only as two functions (fetch a
  tree node, store the record in one), so they run against the RFC's
  worked examples without an overlay;
- :class:`RedirClient`: register, refresh, withdraw and look up through
  any :class:`~reload.interfaces.INode` (the Python API of applications
  and other usages), and :class:`RedirService`, the service the peer runs
  beside the node for ``--usage REDIR``.

**H(namespace, level, node).**  Section 3 says the tree node (level, j) is
stored "under a key created by taking a hash over the concatenation of the
namespace, level, and j" and leaves the widths open.  This module hashes,
with the overlay's hash (``INode.resourceId``, section 10.2 for
CHORD-RELOAD), the Resource Name::

    namespace bytes (UTF-8, as in the record) || uint16 level || uint16 node

in network byte order: the widths of the record's own ``level`` and
``node`` fields (section 4.1), which are also what Wireshark's RELOAD
dissector decodes them as (two big-endian uint16).  Wireshark does not
compute Resource Names, so it constrains nothing more; its older record
layout and its decimal Kind-ID 104 are not followed (RFC 7374 wins,
DESIGN.md).  Because ``node`` is a uint16, a tree is used down to
:func:`maxLevel` only (level 4 for the default branching factor 10, whose
level 5 would have 100,000 tree nodes); a walk stops there.

**Lookups that find no successor.**  When every provider's Node-ID is below
the key, the upward walk reaches the root without a successor; section 4.5
suggests a random root entry.  This module answers the lowest Node-ID of
the root instead: the root holds the lowest and highest provider of each of
its intervals (section 4.3), so that is the closest successor going round
the ring, the answer the RFC's definition asks for, and deterministic.
"""

from __future__ import annotations

import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.api.config import DEFAULT_BRANCHING_FACTOR, redirBranchingFactor
from reload.api.data import (
    Destination,
    KindValues,
    Specifier,
    decodeDestinations,
    encodeDestinations,
)
from reload.api.topology import ErrorCode
from reload.errors import ReloadError
from reload.interfaces import (
    AccessRequest,
    DataModel,
    IAccessPolicy,
    IKind,
    INode,
    IUsage,
    IUsageOperations,
    IUsageSimulation,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "NODE_ID_MATCH",
    "REDIR_KIND_ID",
    "START_LEVEL",
    "BadNamespace",
    "LookupResult",
    "NoProvider",
    "NodeIdMatch",
    "Redir",
    "RedirClient",
    "RedirError",
    "RedirKind",
    "RedirService",
    "RedirServiceProvider",
    "Registration",
    "TreeNodeTooLarge",
    "aloneInInterval",
    "closestSuccessor",
    "intervalIndex",
    "isExtreme",
    "lookupWalk",
    "maxLevel",
    "namespaceBytes",
    "nodeIntervals",
    "redir",
    "registerWalk",
    "resourceName",
    "treeNodeOf",
]

#: Section 10.3: the IANA Kind-ID of REDIR (hexadecimal 0x104, 260).
REDIR_KIND_ID = 0x104
#: Section 5 and 10.1: the access policy's registered name.
NODE_ID_MATCH = "NODE-ID-MATCH"
#: Section 4.2: "It is RECOMMENDED that Lstart is set to 2."
START_LEVEL = 2
#: Section 4.4: "a default value of 10 minutes is RECOMMENDED".
DEFAULT_LIFETIME = 600
#: Section 4.4: refresh "when 90% of the refresh interval has passed".
REFRESH_FRACTION = 0.9
#: Section 4.2: the levels of "the last 16 service lookups".
LOOKUP_HISTORY = 16
#: ``opaque namespace<0..2^16-1>`` (section 4.1): at most 65,535 bytes.
MAX_NAMESPACE = 0xFFFF
#: ``uint16 level`` and ``uint16 node`` (section 4.1).
_UINT16 = 0xFFFF
#: Records fetched by the first Fetch of a tree node too large for one
#: answer (:meth:`RedirClient._fetchInParts`), and the most: each record
#: brings its signer's certificate, and the security block holds at most
#: 65,535 bytes of them (RFC 6940 section 6.3.4).
FETCH_BATCH = 4
FETCH_BATCH_MAX = 64
#: Tree nodes remembered as too large for one answer (fetched in parts
#: straight away): the busy top of a few trees.
LARGE_NODES_KEPT = 64
#: Section 4.1: ``RedirServiceProviderExtType`` none(0).
EXT_NONE = 0


class RedirError(Exception):
    """What a ReDiR operation fails with, besides the overlay's own errors
    (:class:`reload.errors.ReloadError`, :class:`reload.errors.ReloadTimeout`)."""


class BadNamespace(RedirError, ValueError):
    """A namespace that cannot name a ReDiR tree: empty, 65,536 bytes or
    more (``opaque namespace<0..2^16-1>``, section 4.1), or not UTF-8."""


class BadKey(RedirError, ValueError):
    """A lookup key that is not a Node-ID of this overlay's length."""


class TreeNodeTooLarge(RedirError, ReloadError):
    """Even the Stat of a tree node does not fit the overlay's
    max-message-size: its records cannot be listed.  The overlay's
    configuration is too small for this namespace (a tree node holds up to
    2 b^2 records, section 4.3): raise ``max-message-size``.  It is the
    overlay's Error_Response_Too_Large (RFC 6940 section 6.3.3.1) with
    that said."""

    def __init__(self, resourceId: bytes, cause: ReloadError) -> None:
        ReloadError.__init__(
            self,
            cause.code,
            f"ReDiR tree node {resourceId.hex()} has more records than one answer can list"
            f" ({cause}); the overlay's max-message-size is too small for this namespace",
            cause.nodeId,
        )
        self.resourceId = resourceId

    def __str__(self) -> str:
        return self.text


class NoProvider(RedirError, LookupError):
    """Section 4.5: the tree of ``namespace`` holds no provider at all."""

    def __init__(self, namespace: bytes, key: bytes) -> None:
        self.namespace = namespace
        self.key = key
        name = namespace.decode("utf-8", "replace")
        super().__init__(f"no provider of {name!r} in the overlay (looked up {key.hex()})")


# -- pure functions: namespaces and the interval arithmetic (section 3) -------------


def namespaceBytes(namespace: str | bytes) -> bytes:
    """The bytes of a namespace (section 4.1: "an opaque UTF-8-encoded
    string"); :class:`BadNamespace` for 0 bytes, 65,536 or more, or bytes
    that are not UTF-8."""
    if isinstance(namespace, str):
        data = namespace.encode("utf-8")
    elif isinstance(namespace, bytes | bytearray):
        data = bytes(namespace)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadNamespace("a namespace is UTF-8 text (RFC 7374 section 4.1)") from None
    else:
        raise TypeError(f"a namespace is str or bytes, not {type(namespace).__name__}")
    if not data:
        raise BadNamespace("a namespace of 0 bytes names no service")
    if len(data) > MAX_NAMESPACE:
        raise BadNamespace(
            f"a namespace of {len(data)} bytes is too long: at most {MAX_NAMESPACE} bytes"
            " (opaque namespace<0..2^16-1>, RFC 7374 section 4.1)"
        )
    return data


def _checkTree(level: int, b: int, bits: int) -> None:
    if b < 2:
        raise ValueError(f"branching factor {b} is not at least 2")
    if level < 0:
        raise ValueError(f"level {level} is negative")
    if bits < 1:
        raise ValueError(f"an identifier space of {bits} bits")


def intervalIndex(key: int, level: int, b: int, bits: int) -> int:
    """The global index g of the interval I(level, key) among the
    b^(level+1) intervals of ``level``: floor(key * b^(level+1) / 2^bits).

    Section 3: tree node (level, j) has the intervals
    [2^N b^-level (j + b'/b), 2^N b^-level (j + (b'+1)/b)) for 0 <= b' < b,
    so g = j * b + b'.
    """
    _checkTree(level, b, bits)
    if not 0 <= key < 1 << bits:
        raise ValueError(f"key {key} is outside a {bits}-bit identifier space")
    return int(key * b ** (level + 1)) >> bits


def treeNodeOf(key: int, level: int, b: int, bits: int) -> int:
    """j of the tree node (level, j) responsible for I(level, key)."""
    return intervalIndex(key, level, b, bits) // b


def nodeIntervals(level: int, node: int, b: int, bits: int) -> list[tuple[int, int]]:
    """The b intervals of tree node (level, node) as inclusive integer
    ranges ``(first, last)`` of keys (section 3, Figure 3); an interval
    too narrow to hold an integer key is ``(first, first - 1)``."""
    _checkTree(level, b, bits)
    if not 0 <= node < b**level:
        raise ValueError(f"level {level} has no tree node {node}")
    scale = b ** (level + 1)
    out = []
    for g in range(node * b, node * b + b):
        first = -((-g << bits) // scale)  # ceil(g * 2^N / b^(l+1))
        after = -((-(g + 1) << bits) // scale)
        out.append((first, after - 1))
    return out


def maxLevel(b: int, bits: int) -> int:
    """The deepest level a tree uses: its node numbers fit the record's
    ``uint16 node`` (section 4.1) and its intervals are at least one key
    wide.  4 for b = 10 in a 128-bit space, 3 for the RFC's examples (b =
    2, 4 bits, section 7)."""
    _checkTree(0, b, bits)
    level = 0
    while b ** (level + 1) - 1 <= _UINT16 and b ** (level + 2) <= 1 << bits:
        level += 1
    return level


def resourceName(namespace: bytes, level: int, node: int) -> bytes:
    """The Resource Name of tree node (level, node) of ``namespace``, whose
    overlay hash is H(namespace, level, node) (sections 3 and 6):
    ``namespace || uint16 level || uint16 node``, network byte order (see
    the module's documentation for why)."""
    if not 0 <= level <= _UINT16 or not 0 <= node <= _UINT16:
        raise ValueError(f"tree node ({level}, {node}) does not fit two uint16")
    return bytes(namespace) + struct.pack("!HH", level, node)


def _inInterval(key: int, others: Iterable[int], level: int, b: int, bits: int) -> list[int]:
    g = intervalIndex(key, level, b, bits)
    return [o for o in others if o != key and intervalIndex(o, level, b, bits) == g]


def isExtreme(key: int, others: Iterable[int], level: int, b: int, bits: int) -> bool:
    """Whether ``key`` is "the lowest or highest Node-ID" in I(level, key)
    among itself and ``others`` (sections 4.3 step 4 and 4.5 Condition 2)."""
    same = _inInterval(key, others, level, b, bits)
    return all(o > key for o in same) or all(o < key for o in same)


def aloneInInterval(key: int, others: Iterable[int], level: int, b: int, bits: int) -> bool:
    """Whether ``key`` is "the only service provider in its interval
    I(level, key)" (section 4.3 step 5)."""
    return not _inInterval(key, others, level, b, bits)


def closestSuccessor(key: int, candidates: Iterable[int]) -> int | None:
    """The closest successor of ``key`` on the ring among ``candidates``:
    the lowest above ``key``, else (going round) the lowest of all.  A
    provider whose Node-ID is the key itself is not its successor: a
    provider looking up its own Node-ID (section 4.5's usual key) finds the
    next provider, and the walk's answer does not depend on the level it
    starts at."""
    ids = sorted(set(candidates))
    if not ids:
        return None
    for candidate in ids:
        if candidate > key:
            return candidate
    return ids[0]


# -- the record (section 4.1) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedirServiceProvider:
    """A RedirServiceProvider (section 4.1)::

        struct {
          RedirServiceProviderExtType type;            uint8, none(0)
          Destination destination_list<0..2^16-1>;     route to the provider
          opaque      namespace<0..2^16-1>;            UTF-8
          uint16      level;
          uint16      node;
          uint16      length;                          bytes of extension
          select (type) { } extension;
        } RedirServiceProvider;

    ``extension`` is carried as bytes ("Unknown types are allowed").
    """

    namespace: bytes
    level: int
    node: int
    destinations: tuple[Destination, ...] = ()
    type: int = EXT_NONE
    extension: bytes = b""

    @classmethod
    def forProvider(
        cls, nodeId: bytes, namespace: bytes, level: int, node: int
    ) -> RedirServiceProvider:
        """The record provider ``nodeId`` stores in tree node (level, node):
        its destination list is its own Node-ID."""
        return cls(namespace, level, node, (Destination.node(nodeId),))

    def encode(self) -> bytes:
        """The record's bytes; :class:`ValueError` when a field is out of range."""
        if not 0 <= self.type <= 0xFF:
            raise ValueError(f"type {self.type} is not a uint8")
        destinations = encodeDestinations(self.destinations)
        for name, data in (
            ("destination_list", destinations),
            ("namespace", self.namespace),
            ("extension", self.extension),
        ):
            if len(data) > _UINT16:
                raise ValueError(f"{name} of {len(data)} bytes does not fit <0..2^16-1>")
        if not 0 <= self.level <= _UINT16 or not 0 <= self.node <= _UINT16:
            raise ValueError(f"tree node ({self.level}, {self.node}) does not fit two uint16")
        return b"".join(
            (
                struct.pack("!BH", self.type, len(destinations)),
                destinations,
                struct.pack("!H", len(self.namespace)),
                self.namespace,
                struct.pack("!HHH", self.level, self.node, len(self.extension)),
                self.extension,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> RedirServiceProvider:
        """The record in ``data``, all of it; :class:`ValueError` naming the
        field for anything else (a short or long record, a destination list
        that does not parse, a namespace that is not UTF-8)."""
        data = bytes(data)
        pos = 0

        def take(n: int, what: str) -> bytes:
            nonlocal pos
            if pos + n > len(data):
                raise ValueError(
                    f"RedirServiceProvider.{what}: needs {n} bytes, {len(data) - pos} left"
                )
            chunk = data[pos : pos + n]
            pos += n
            return chunk

        (kind,) = struct.unpack("!B", take(1, "type"))
        (n,) = struct.unpack("!H", take(2, "destination_list length"))
        destinations = decodeDestinations(
            take(n, "destination_list"), "RedirServiceProvider.destination_list"
        )
        (n,) = struct.unpack("!H", take(2, "namespace length"))
        namespace = take(n, "namespace")
        try:
            namespace.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("RedirServiceProvider.namespace: not UTF-8") from None
        level, node, n = struct.unpack("!HHH", take(6, "level, node and length"))
        extension = take(n, "extension")
        if pos != len(data):
            raise ValueError(f"RedirServiceProvider: {len(data) - pos} bytes after the record")
        return cls(namespace, level, node, destinations, kind, extension)


# -- the Kind (section 6) and NODE-ID-MATCH (section 5) -----------------------------


@implementer(IKind)
class RedirKind:
    """REDIR (section 6): tree nodes of ReDiR trees, a DICTIONARY whose key
    is the provider's Node-ID and whose values are RedirServiceProvider
    records, under NODE-ID-MATCH."""

    name = "REDIR"
    kindId = REDIR_KIND_ID
    dataModel = DataModel.DICTIONARY
    accessPolicy = NODE_ID_MATCH
    #: As the embedded default configuration lists them (reload.config.defaults):
    #: 1,024 holds the root of a busy namespace (2b^2 records, and a burst).
    maxCount = 1024
    maxSize = 512

    def validate(self, value: bytes) -> None:
        """Storing peers refuse, and fetchers reject, bytes that are not one
        RedirServiceProvider."""
        RedirServiceProvider.decode(value)

    def encode(self, value: object) -> bytes:
        if not isinstance(value, RedirServiceProvider):
            raise TypeError("a REDIR value is a RedirServiceProvider")
        return value.encode()

    def decode(self, data: bytes) -> RedirServiceProvider:
        return RedirServiceProvider.decode(data)


REDIR_KIND = RedirKind()


@implementer(IAccessPolicy)
class NodeIdMatch:
    """NODE-ID-MATCH (section 5), for dictionaries only.

    A value is written only when it is signed by the Node-ID that is its
    dictionary key; and, provided that exists=True, that Node-ID lies in
    one of the b intervals of the tree node the record names, and
    H(namespace, level, node) of the record is the Resource-ID written.
    b comes from the configuration in force; without one it denies
    (security fails closed), as it does for anything it cannot decode.
    """

    name = NODE_ID_MATCH

    def permits(self, request: AccessRequest, node: Any) -> bool:
        key = request.entry
        if request.dataModel != DataModel.DICTIONARY or not isinstance(key, bytes) or not key:
            return False
        if key not in request.signerNodeIds:
            return False
        if not request.exists:
            return True
        try:
            record = RedirServiceProvider.decode(request.value)
        except ValueError:
            return False
        configuration = getattr(node, "configuration", None)
        if configuration is None:
            return False
        b = redirBranchingFactor(configuration)
        bits = 8 * len(key)
        if record.level > maxLevel(b, bits):
            return False
        if treeNodeOf(int.from_bytes(key, "big"), record.level, b, bits) != record.node:
            return False
        name = resourceName(record.namespace, record.level, record.node)
        hashed = node.resourceId(name)
        return isinstance(hashed, bytes) and hashed == request.resourceId


# -- the walks (sections 4.3 and 4.5), on two functions -----------------------------

#: Fetch tree node (level, node): Deferred of provider key -> record.
FetchTreeNode = Callable[[int, int], Awaitable[Mapping[int, RedirServiceProvider]]]
#: Store this provider's record in tree node (level, node).
StoreTreeNode = Callable[[int, int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of one registration (section 4.3): the tree nodes the
    record was stored in, in order, the level the walk finished at (the
    next registration's Lstart, section 4.2) and the Fetches it took."""

    stored: tuple[tuple[int, int], ...]
    endLevel: int
    fetches: int


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The outcome of a lookup (section 4.5): the provider's Node-ID (the
    closest successor of the key among the providers), its record, the
    level the walk ended at and the Fetches it took.  ``fromCache`` tells
    that the walk ended without Condition 3 and the answer came from the
    records it had seen (section 4.5's temporary cache)."""

    nodeId: bytes
    record: RedirServiceProvider
    level: int
    fetches: int
    fromCache: bool = False


async def registerWalk(
    key: int, start: int, b: int, bits: int, fetch: FetchTreeNode, store: StoreTreeNode
) -> Registration:
    """Section 4.3 for provider ``key``, from level ``start``.

    Upward walk (steps 1-4): fetch the tree node of I(level, key), store the
    record there whatever it holds, and go one level up while ``key`` is the
    lowest or highest in its interval, up to the root.  Downward walk (step
    5): from ``start`` down, fetch (the start level's Fetch is reused), store
    where ``key`` is the lowest or highest of its interval, and end at the
    first level where it is the only provider of its interval (or at
    :func:`maxLevel`).
    """
    top = maxLevel(b, bits)
    start = max(0, min(start, top))
    stored: list[tuple[int, int]] = []
    fetches = 0
    level = start
    startIds: list[int] = []
    while True:
        node = treeNodeOf(key, level, b, bits)
        ids = [k for k in await fetch(level, node) if k != key]
        fetches += 1
        if level == start:
            startIds = ids
        await store(level, node)
        stored.append((level, node))
        if level == 0 or not isExtreme(key, ids, level, b, bits):
            break
        level -= 1
    level, ids = start, startIds
    while not aloneInInterval(key, ids, level, b, bits) and level < top:
        level += 1
        node = treeNodeOf(key, level, b, bits)
        ids = [k for k in await fetch(level, node) if k != key]
        fetches += 1
        if isExtreme(key, ids, level, b, bits):
            await store(level, node)
            stored.append((level, node))
    return Registration(tuple(stored), level, fetches)


async def lookupWalk(
    key: int, start: int, b: int, bits: int, fetch: FetchTreeNode
) -> tuple[int, RedirServiceProvider, int, int, bool] | None:
    """Section 4.5 for ``key`` from level ``start``: ``(provider, record,
    level, fetches, fromCache)``, or ``None`` when the tree is empty.

    Condition 1 (no successor of the key in the fetched tree node): one
    level up; at the root, the lowest provider there (see the module's
    documentation).  Condition 2 (the key is neither the lowest nor the
    highest of its interval): one level down.  Condition 3: the closest
    successor in the tree node is the answer -- or a closer one among the
    records the walk fetched on its way (section 4.5's temporary cache).
    Section 4.3's tree only guarantees that the tree node holds the closest
    successor once every provider has refreshed: a provider that registered
    alone in its interval stopped there, and one that came later to that
    interval stored only further down, so a lookup that went down past the
    first sees only the second.  Answering from every record seen is never
    further from the true successor and closes that window for the walks
    that passed the first provider's tree node.  A walk that would go below
    :func:`maxLevel` or back to a level it has left, which only an
    inconsistent tree (records expiring while refreshed) causes, ends with
    the closest successor among every record it has seen.
    """
    top = maxLevel(b, bits)
    level = max(0, min(start, top))
    seen: dict[int, RedirServiceProvider] = {}
    visited: set[int] = set()
    fetches = 0

    def fromSeen(
        current: Mapping[int, RedirServiceProvider] | None = None,
    ) -> tuple[int, RedirServiceProvider, int, int, bool] | None:
        """The closest successor among the records seen; ``fromCache``
        unless it is in the ``current`` tree node."""
        best = closestSuccessor(key, seen)
        if best is None:
            return None
        return best, seen[best], level, fetches, current is None or best not in current

    while True:
        visited.add(level)
        providers = dict(await fetch(level, treeNodeOf(key, level, b, bits)))
        fetches += 1
        seen.update(providers)
        successors = [p for p in providers if p > key]
        if not successors:  # Condition 1
            if level == 0:
                # Nothing above the key anywhere: round the ring to the
                # lowest provider (the root holds it).
                return fromSeen(providers)
            if level - 1 in visited:
                return fromSeen()
            level -= 1
            continue
        if not isExtreme(key, providers, level, b, bits):  # Condition 2
            if level >= top or level + 1 in visited:
                return fromSeen()
            level += 1
            continue
        return fromSeen(providers)  # Condition 3


# -- the client: register, refresh, withdraw, look up through an INode ---------------


@dataclass
class _Provided:
    """One namespace this node provides."""

    namespace: bytes
    active: bool = True
    startLevel: int = START_LEVEL
    #: (level, node) -> when its record expires (the node's clock).
    stored: dict[tuple[int, int], float] = field(default_factory=dict)
    walk: Deferred[Registration] | None = None
    timer: Any = None
    last: Registration | None = None


class RedirClient:
    """ReDiR for any code holding an :class:`~reload.interfaces.INode`: a
    usage, an application, the admin API.

    ``register(namespace)`` makes this node a provider and keeps its records
    fresh (section 4.4) until ``unregister(namespace)`` or :meth:`close`
    withdraws them (section 4.6); ``lookup(namespace, key)`` finds the
    provider whose Node-ID is the closest successor of ``key`` (section
    4.5).  ``fetches`` counts the tree nodes fetched, for tests and
    benchmarks.  The branching factor is the configuration's (section 8).
    """

    log = Logger()

    def __init__(
        self,
        node: INode,
        *,
        lifetime: int = DEFAULT_LIFETIME,
        refresh: float | None = None,
        startLevel: int = START_LEVEL,
    ) -> None:
        if lifetime < 1:
            raise ValueError(f"lifetime {lifetime} is not a positive number of seconds")
        self.node = node
        self.lifetime = lifetime
        self.refresh = refresh if refresh is not None else lifetime * REFRESH_FRACTION
        if not 0 < self.refresh < lifetime:
            raise ValueError(f"refresh {self.refresh} is not between 0 and the lifetime")
        self.startLevel = startLevel
        self.fetches = 0
        #: Stats sent for tree nodes too large for one Fetch answer.
        self.stats = 0
        #: Records per Fetch of such a tree node, and the fewest found too
        #: many (learnt, see _fetchInParts).
        self._batch = FETCH_BATCH
        self._batchLimit = FETCH_BATCH_MAX + 1
        #: Tree nodes last found too large for one answer (most recent last).
        self._large: OrderedDict[bytes, None] = OrderedDict()
        self._provided: dict[bytes, _Provided] = {}
        self._lookupLevels: dict[bytes, deque[int]] = {}

    # -- what the overlay is ----------------------------------------------------------

    @property
    def branchingFactor(self) -> int:
        """b, from the configuration in force (section 8; default 10)."""
        configuration = self.node.configuration
        if configuration is None:
            return DEFAULT_BRANCHING_FACTOR
        return redirBranchingFactor(configuration)

    @property
    def bits(self) -> int:
        """numBitsInNodeId (section 3): the overlay's Node-IDs in bits."""
        return 8 * len(self.node.nodeId)

    def resourceId(self, namespace: bytes, level: int, node: int) -> bytes:
        """H(namespace, level, node) with the overlay's hash."""
        return self.node.resourceId(resourceName(namespace, level, node))

    def _fetch(self, namespace: bytes) -> FetchTreeNode:
        async def fetch(level: int, node: int) -> dict[int, RedirServiceProvider]:
            resourceId = self.resourceId(namespace, level, node)
            if resourceId in self._large:
                kinds = await self._fetchInParts(resourceId)
            else:
                self.fetches += 1
                try:
                    # Section 4.3 step 2: "The fetch MUST be a wildcard fetch".
                    kinds = await self.node.fetch(resourceId, [Specifier(REDIR_KIND_ID)])
                except ReloadError as exc:
                    if exc.code != ErrorCode.RESPONSE_TOO_LARGE:
                        raise
                    kinds = await self._fetchInParts(resourceId)
            found: dict[int, RedirServiceProvider] = {}
            for kind in kinds:
                for value in kind.values:
                    if not value.exists or not isinstance(value.entry, bytes):
                        continue
                    record = RedirServiceProvider.decode(value.value)
                    if (record.namespace, record.level, record.node) == (namespace, level, node):
                        found[int.from_bytes(value.entry, "big")] = record
            return found

        return fetch

    async def _fetchInParts(self, resourceId: bytes) -> list[KindValues]:
        """A tree node whose records, with their signers' certificates, do
        not fit one answer (Error_Response_Too_Large, RFC 6940 section
        6.3.3.1: the root of a busy namespace): Stat it for its keys
        (section 7.4.3), then Fetch the keys in batches.  The batch size is
        learnt: halved when an answer is still too large, doubled after a
        batch that fitted (up to FETCH_BATCH_MAX, which keeps the signers'
        certificates under the security block's 65,535 bytes, section
        6.3.4) but never to a size that was too large, and remembered for
        the next tree node."""
        self.stats += 1
        try:
            metadata = await self.node.stat(resourceId, [Specifier(REDIR_KIND_ID)])
        except ReloadError as exc:
            if exc.code != ErrorCode.RESPONSE_TOO_LARGE:
                raise
            raise TreeNodeTooLarge(resourceId, exc) from exc
        keys = [
            entry.entry
            for kind in metadata
            for entry in kind.entries
            if entry.exists and isinstance(entry.entry, bytes)
        ]
        # Fetch it this way again while it stays large: the wildcard Fetch
        # would only be refused again.
        self._large.pop(resourceId, None)
        if len(keys) > FETCH_BATCH:
            self._large[resourceId] = None
            while len(self._large) > LARGE_NODES_KEPT:
                self._large.popitem(last=False)
        out: list[KindValues] = []
        while keys:
            part = tuple(keys[: self._batch])
            self.fetches += 1
            try:
                out += await self.node.fetch(resourceId, [Specifier(REDIR_KIND_ID, keys=part)])
            except ReloadError as exc:
                if exc.code != ErrorCode.RESPONSE_TOO_LARGE or len(part) == 1:
                    raise
                self._batchLimit = len(part)
                self._batch = max(1, len(part) // 2)
                continue
            del keys[: len(part)]
            if len(part) == self._batch:
                self._batch = min(FETCH_BATCH_MAX, self._batchLimit - 1, self._batch * 2)
        return out

    # -- registration (sections 4.3, 4.4, 4.6) ------------------------------------------

    def provides(self) -> list[bytes]:
        """The namespaces this node is registered in (or registering)."""
        return [ns for ns, entry in self._provided.items() if entry.active]

    def registration(self, namespace: str | bytes) -> Registration | None:
        """The last completed registration in ``namespace``, or None."""
        entry = self._provided.get(namespaceBytes(namespace))
        return entry.last if entry is not None else None

    def register(self, namespace: str | bytes) -> Deferred[Registration]:
        """Register this node as a provider of ``namespace`` (section 4.3)
        and refresh the registration before its records expire (section
        4.4) until :meth:`unregister`.  Deferred of the
        :class:`Registration`; fails with :class:`BadNamespace` for a bad
        namespace and with the overlay's error when a Fetch or Store fails
        (the refresh timer retries)."""
        try:
            ns = namespaceBytes(namespace)
        except BadNamespace as exc:
            return _failed(exc)
        entry = self._provided.get(ns)
        if entry is not None and entry.active and entry.walk is not None:
            return _chain(entry.walk)
        if entry is None or not entry.active:
            entry = _Provided(ns, startLevel=self.startLevel)
            self._provided[ns] = entry
        return self._walk(entry)

    def _walk(self, entry: _Provided) -> Deferred[Registration]:
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        entry.timer = None
        ns = entry.namespace
        nodeId = self.node.nodeId
        b = self.branchingFactor

        async def store(level: int, node: int) -> None:
            record = RedirServiceProvider.forProvider(nodeId, ns, level, node)
            await self.node.store(
                self.resourceId(ns, level, node),
                REDIR_KIND_ID,
                {nodeId: record.encode()},
                lifetime=self.lifetime,
            )
            entry.stored[(level, node)] = self.node.clock.seconds() + self.lifetime

        walk = Deferred.fromCoroutine(
            registerWalk(
                int.from_bytes(nodeId, "big"),
                entry.startLevel,
                b,
                self.bits,
                self._fetch(ns),
                store,
            )
        )
        entry.walk = walk

        def done(registration: Registration) -> Registration:
            entry.walk = None
            entry.last = registration
            # Section 4.2: later registrations MAY start "at the lowest
            # level at which a registration operation has last completed".
            entry.startLevel = registration.endLevel
            self._schedule(entry, self.refresh)
            return registration

        def failed(failure: Failure) -> Failure:
            entry.walk = None
            self.log.warn(
                "REDIR: registering in {namespace} failed: {error}",
                namespace=ns.decode("utf-8", "replace"),
                error=failure.getErrorMessage(),
            )
            # Try again well before the records stored so far expire.
            self._schedule(entry, max(1.0, (self.lifetime - self.refresh) / 2))
            return failure

        return _chain(walk.addCallbacks(done, failed))

    def _schedule(self, entry: _Provided, delay: float) -> None:
        if not entry.active:
            return

        def refresh() -> None:
            entry.timer = None
            if entry.active:
                # Section 4.4: "repeat the entire registration process".
                self._walk(entry).addErrback(lambda f: None)

        entry.timer = self.node.clock.callLater(delay, refresh)

    def unregister(self, namespace: str | bytes) -> Deferred[None]:
        """Stop providing ``namespace``: no more refreshes, and every record
        this node stored that has not expired is overwritten with
        exists=False (section 4.6).  Deferred fired when the deletions are
        answered (a failed one is logged: the record expires anyway);
        :class:`BadNamespace` for a bad namespace.  A namespace not
        provided is withdrawn at once."""
        try:
            ns = namespaceBytes(namespace)
        except BadNamespace as exc:
            return _failed(exc)
        entry = self._provided.get(ns)
        if entry is None or not entry.active:
            return succeed(None)
        entry.active = False
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        entry.timer = None
        walk = entry.walk
        before: Deferred[Any] = succeed(None) if walk is None else _chain(walk)
        return before.addBoth(lambda _: self._withdraw(entry))

    def _withdraw(self, entry: _Provided) -> Deferred[None]:
        now = self.node.clock.seconds()
        nodeId = self.node.nodeId
        pending = []
        for (level, node), expires in sorted(entry.stored.items()):
            if expires <= now:
                continue
            d = self.node.store(
                self.resourceId(entry.namespace, level, node),
                REDIR_KIND_ID,
                {nodeId: None},
                lifetime=self.lifetime,
            )
            pending.append(d.addErrback(self._notWithdrawn, entry.namespace, level, node))
        entry.stored = {}
        if self._provided.get(entry.namespace) is entry:
            del self._provided[entry.namespace]
        return DeferredList(pending, consumeErrors=True).addCallback(lambda _: None)

    def _notWithdrawn(self, failure: Failure, namespace: bytes, level: int, node: int) -> None:
        self.log.warn(
            "REDIR: withdrawing from {namespace} ({level}, {node}) failed: {error}",
            namespace=namespace.decode("utf-8", "replace"),
            level=level,
            node=node,
            error=failure.getErrorMessage(),
        )

    def close(self) -> Deferred[None]:
        """Withdraw from every namespace (the provider stops or the node
        leaves, section 4.6)."""
        pending = [self.unregister(ns) for ns in list(self._provided)]
        return DeferredList(pending, consumeErrors=True).addCallback(lambda _: None)

    # -- lookup (section 4.5) -----------------------------------------------------------

    def lookupStartLevel(self, namespace: str | bytes) -> int:
        """Section 4.2: the mode of the levels where the last 16 lookups in
        ``namespace`` ended (the most recent of equally common ones), else
        the configured starting level."""
        levels = self._lookupLevels.get(namespaceBytes(namespace))
        if not levels:
            return self.startLevel
        counts = Counter(levels)
        most = max(counts.values())
        return next(level for level in reversed(levels) if counts[level] == most)

    def lookup(self, namespace: str | bytes, key: bytes | None = None) -> Deferred[LookupResult]:
        """The provider of ``namespace`` whose Node-ID is the closest
        successor of ``key`` (this node's Node-ID when None), section 4.5.
        Deferred of a :class:`LookupResult`; fails with :class:`NoProvider`
        when the namespace has no provider, :class:`BadNamespace` or
        :class:`BadKey` for bad input, and with the overlay's error when a
        Fetch fails."""
        try:
            ns = namespaceBytes(namespace)
            start = self.lookupStartLevel(ns)
            keyBytes = self.node.nodeId if key is None else key
            if not isinstance(keyBytes, bytes) or len(keyBytes) != len(self.node.nodeId):
                raise BadKey(f"a key is a Node-ID of {len(self.node.nodeId)} bytes")
        except RedirError as exc:
            return _failed(exc)
        size = len(keyBytes)
        walk = Deferred.fromCoroutine(
            lookupWalk(
                int.from_bytes(keyBytes, "big"),
                start,
                self.branchingFactor,
                self.bits,
                self._fetch(ns),
            )
        )

        def found(
            outcome: tuple[int, RedirServiceProvider, int, int, bool] | None,
        ) -> LookupResult:
            if outcome is None:
                raise NoProvider(ns, keyBytes)
            provider, record, level, fetches, fromCache = outcome
            self._lookupLevels.setdefault(ns, deque(maxlen=LOOKUP_HISTORY)).append(level)
            return LookupResult(provider.to_bytes(size, "big"), record, level, fetches, fromCache)

        return walk.addCallback(found)


def _failed(exc: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(Failure(exc))
    return d


def _chain(d: Deferred[Any]) -> Deferred[Any]:
    """A new Deferred with ``d``'s outcome, leaving ``d``'s own chain alone."""
    out: Deferred[Any] = Deferred()

    def passOn(result: Any) -> Any:
        if isinstance(result, Failure):
            out.errback(result)
            return None
        out.callback(result)
        return result

    d.addBoth(passOn)
    return out


# -- the service and the plugin ---------------------------------------------------


@implementer(IUsageOperations)
class RedirService(Service):
    """``--usage REDIR`` beside a node: registers the namespaces of the
    ``provide`` option once the node has joined, refreshes them, and
    withdraws them when it stops (before the node leaves).  The Python API
    is :attr:`client` (also as :meth:`register`, :meth:`unregister`,
    :meth:`lookup`); operators reach the same through the admin API
    (:meth:`operations`: ``reloadctl service register|unregister|lookup|list``)."""

    log = Logger()

    def __init__(self, client: RedirClient, provide: Sequence[bytes] = ()) -> None:
        self.client = client
        self.provide = tuple(provide)

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        for namespace in self.provide:
            # A failure is logged and retried by the client's timer.
            self.client.register(namespace).addErrback(lambda f: None)

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.client.close()

    def register(self, namespace: str | bytes) -> Deferred[Registration]:
        return self.client.register(namespace)

    def unregister(self, namespace: str | bytes) -> Deferred[None]:
        return self.client.unregister(namespace)

    def lookup(self, namespace: str | bytes, key: bytes | None = None) -> Deferred[LookupResult]:
        return self.client.lookup(namespace, key)

    # -- operator operations (IUsageOperations) ----------------------------------

    def operations(self) -> Mapping[str, Callable[[Mapping[str, str]], Deferred[dict[str, Any]]]]:
        """``register``, ``unregister`` and ``lookup`` (``namespace=``, and
        ``key=HEX`` for a lookup: default this node's Node-ID), and
        ``list``: what this node provides."""
        return {
            "register": self._registerOperation,
            "unregister": self._unregisterOperation,
            "lookup": self._lookupOperation,
            "list": self._listOperation,
        }

    def _registerOperation(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        namespace = _namespaceArgument(arguments)
        d = self.client.register(namespace)
        return d.addCallback(lambda r: {"namespace": _text(namespace), **_registration(r)})

    def _unregisterOperation(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        namespace = _namespaceArgument(arguments)
        d = self.client.unregister(namespace)
        return d.addCallback(lambda _: {"namespace": _text(namespace), "registered": False})

    def _lookupOperation(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        namespace = _namespaceArgument(arguments)
        key = None
        if arguments.get("key"):
            try:
                key = bytes.fromhex(arguments["key"])
            except ValueError:
                raise BadKey(f"key: {arguments['key']!r} is not hexadecimal") from None

        def found(result: LookupResult) -> dict[str, Any]:
            return {
                "namespace": _text(namespace),
                "key": (key if key is not None else self.client.node.nodeId).hex(),
                "provider": result.nodeId.hex(),
                "destinations": [d.encode().hex() for d in result.record.destinations],
                "level": result.level,
                "fetches": result.fetches,
                "fromCache": result.fromCache,
            }

        return self.client.lookup(namespace, key).addCallback(found)

    def _listOperation(self, arguments: Mapping[str, str]) -> Deferred[dict[str, Any]]:
        registrations = {}
        for namespace in self.client.provides():
            last = self.client.registration(namespace)
            registrations[_text(namespace)] = None if last is None else _registration(last)
        return succeed({"provides": sorted(registrations), "registrations": registrations})


def _namespaceArgument(arguments: Mapping[str, str]) -> bytes:
    raw = arguments.get("namespace")
    if raw is None:
        raise BadNamespace("namespace: missing")
    return namespaceBytes(raw)


def _text(namespace: bytes) -> str:
    return namespace.decode("utf-8", "replace")


def _registration(registration: Registration) -> dict[str, Any]:
    return {
        "stored": [list(levelNode) for levelNode in registration.stored],
        "endLevel": registration.endLevel,
        "fetches": registration.fetches,
    }


def _positive(options: Mapping[str, str], key: str) -> int | None:
    raw = options.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key}: {raw!r} is not a whole number of seconds") from None
    if not 1 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{key}: {value} is not between 1 and 4294967295 seconds")
    return value


def _parse(options: Mapping[str, str]) -> dict[str, Any]:
    provide: list[bytes] = []
    raw = options.get("provide")
    for part in raw.split(",") if raw is not None else []:
        try:
            namespace = namespaceBytes(part.strip())
        except BadNamespace as exc:
            raise ValueError(f"provide: {exc}") from None
        if namespace not in provide:
            provide.append(namespace)
    lifetime = _positive(options, "lifetime") or DEFAULT_LIFETIME
    refresh = _positive(options, "refresh")
    if refresh is not None and refresh >= lifetime:
        raise ValueError(f"refresh: {refresh} s is not shorter than the lifetime ({lifetime} s)")
    startLevel = START_LEVEL
    if "start-level" in options:
        raw = options["start-level"]
        try:
            startLevel = int(raw)
        except ValueError:
            raise ValueError(f"start-level: {raw!r} is not a whole number") from None
        if not 0 <= startLevel <= _UINT16:
            raise ValueError(f"start-level: {startLevel} is not a tree level (0 to 65535)")
    return {"provide": provide, "lifetime": lifetime, "refresh": refresh, "startLevel": startLevel}


@implementer(IUsage, IUsageSimulation)
class Redir:
    """The plugin object ``getPlugins(IUsage, usages)`` finds; its
    simulation is ``python -m reload.sim usage REDIR`` (:mod:`usages.redirsim`)."""

    name = "REDIR"
    description = "ReDiR service discovery (RFC 7374): register as a provider, find providers."
    options = {
        "provide": "comma-separated namespaces this peer provides, e.g. turn-server,voice-mail",
        "lifetime": f"seconds a registration lives (default {DEFAULT_LIFETIME}, RFC 7374 4.4)",
        "refresh": "seconds between refreshes (default 90% of the lifetime)",
        "start-level": f"starting level Lstart of walks (default {START_LEVEL}, RFC 7374 4.2)",
    }

    def kinds(self) -> list[IKind]:
        return [REDIR_KIND]

    def accessPolicies(self) -> list[IAccessPolicy]:
        return [NodeIdMatch()]

    def checkOptions(self, options: Mapping[str, str]) -> None:
        _parse(options)

    def makeService(self, node: INode, options: dict[str, str]) -> IService:
        parsed = _parse(options)
        client = RedirClient(
            node,
            lifetime=parsed["lifetime"],
            refresh=parsed["refresh"],
            startLevel=parsed["startLevel"],
        )
        return RedirService(client, parsed["provide"])

    def simulate(self, arguments: Sequence[str]) -> int:
        # Imported here: the simulation needs the harness, a peer does not.
        from usages.redirsim import main

        return main(arguments)


redir = Redir()
