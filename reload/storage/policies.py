"""Access control policies (RFC 6940 section 7.3) and their registry.

"Every Kind which is storable in an overlay MUST be associated with an
access control policy" (section 7.3).  The four base policies are here, as
:class:`~reload.interfaces.IAccessPolicy` providers:

* USER-MATCH (7.3.1): the signer's user name hashes to the Resource-ID;
* NODE-MATCH (7.3.2): the signer's Node-ID hashes to the Resource-ID;
* USER-NODE-MATCH (7.3.3, dictionaries only): USER-MATCH, and the
  dictionary key is the signer's Node-ID;
* NODE-MULTIPLE (7.3.4): H(Node-ID || i) is the Resource-ID for some i from
  1 to the Kind's max-node-multiple.

Each decides on an :class:`~reload.interfaces.AccessRequest` built by the
storage service after the value's signature verified.  Its
``signerNodeIds`` holds only the Node-ID the SignerIdentity indicates
(7.3.2-7.3.4: "that Node-ID is the one indicated in the SignerIdentity
value cert_hash"), not every Node-ID of the certificate.  The overlay's hash
comes from the ``node`` argument (``node.resourceId(name)``, the
:class:`~reload.interfaces.INode` method; the storage service passes a
:class:`PolicyContext`).

A :class:`PolicyRegistry` finds a policy by the name the configuration
uses; usages add their own (ReDiR's NODE-ID-MATCH, RFC 7374 section 5).
:meth:`PolicyRegistry.permits` is the one place a decision is taken: a
policy that raises, answers anything but ``True``, or is unknown is a
denial (security fails closed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, cast

from twisted.logger import Logger
from zope.interface import implementer
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from reload.interfaces import AccessRequest, DataModel, IAccessPolicy, INode

__all__ = [
    "BASE_POLICIES",
    "NODE_MATCH",
    "NODE_MULTIPLE",
    "USER_MATCH",
    "USER_NODE_MATCH",
    "NodeMatch",
    "NodeMultiple",
    "PolicyContext",
    "PolicyRegistry",
    "UserMatch",
    "UserNodeMatch",
    "iterationSuffix",
    "nodeMultipleResourceName",
]

USER_MATCH = "USER-MATCH"
NODE_MATCH = "NODE-MATCH"
USER_NODE_MATCH = "USER-NODE-MATCH"
NODE_MULTIPLE = "NODE-MULTIPLE"

#: The largest i NODE-MULTIPLE tries, whatever max-node-multiple says: the
#: RFC means "some small integer value of i" (7.3.4), and i is one byte
#: (:func:`iterationSuffix`).
MAX_ITERATION = 0xFF


class PolicyContext(Protocol):
    """What a policy uses of the node: the subset of
    :class:`~reload.interfaces.INode` the storage service can offer."""

    def resourceId(self, name: bytes) -> bytes:
        """The overlay's hash of a resource name (section 10.2 for Chord)."""
        ...

    def localData(self, resourceId: bytes, kindId: int) -> object:
        """The values this node stores at (resourceId, kindId)."""
        ...

    @property
    def configuration(self) -> object:
        """The overlay configuration in force (section 11.1), or ``None``."""
        ...


def _hashOf(node: Any, name: bytes) -> bytes | None:
    """The overlay's hash of ``name``; None for anything but a non-empty
    byte string, which matches no Resource-ID (security fails closed)."""
    hashed = node.resourceId(name)
    return hashed if isinstance(hashed, bytes) and hashed else None


def _hashesTo(node: Any, name: bytes, resourceId: bytes) -> bool:
    hashed = _hashOf(node, name)
    return hashed is not None and hashed == resourceId


def _userMatches(request: AccessRequest, node: Any) -> bool:
    """7.3.1: "the signer's certificate has a user name which hashes (using
    the hash function for the overlay) to the Resource-ID".  No user name
    is no match: the empty name is not a name (its hash is a Resource-ID
    like any other, which must not be writable by every nameless
    certificate)."""
    name = request.signerUserName
    if not isinstance(name, str) or not name:
        return False
    return _hashesTo(node, name.encode("utf-8"), request.resourceId)


@implementer(IAccessPolicy)
class UserMatch:
    """USER-MATCH (section 7.3.1)."""

    name = USER_MATCH

    def permits(self, request: AccessRequest, node: Any) -> bool:
        return _userMatches(request, node)


@implementer(IAccessPolicy)
class NodeMatch:
    """NODE-MATCH (section 7.3.2): "the signer's certificate has a
    specified Node-ID which hashes ... to the Resource-ID for the resource
    and that Node-ID is the one indicated in the SignerIdentity value"."""

    name = NODE_MATCH

    def permits(self, request: AccessRequest, node: Any) -> bool:
        return any(_hashesTo(node, nodeId, request.resourceId) for nodeId in request.signerNodeIds)


@implementer(IAccessPolicy)
class UserNodeMatch:
    """USER-NODE-MATCH (section 7.3.3): "may be used only with dictionary
    types"; the user name hashes to the Resource-ID and "the dictionary key
    MUST be equal to the Node-ID in the certificate, and that Node-ID MUST
    be the one indicated in the SignerIdentity"."""

    name = USER_NODE_MATCH

    def permits(self, request: AccessRequest, node: Any) -> bool:
        if request.dataModel != DataModel.DICTIONARY or not isinstance(request.entry, bytes):
            return False
        if request.entry not in request.signerNodeIds:
            return False
        return _userMatches(request, node)


def iterationSuffix(i: int) -> bytes:
    """The bytes of the counter i in NODE-MULTIPLE's H(Node-ID || i)
    (section 7.3.4).

    The RFC does not give the encoding.  Its only NODE-MULTIPLE Kind,
    TURN-SERVICE (section 9), forms the Resource Name "by concatenating its
    Node-ID and the value d" and carries d as the ``uint8 iteration`` of
    TurnServer, so i is one byte.
    """
    if not 0 <= i <= MAX_ITERATION:
        raise ValueError(f"iteration {i} does not fit one byte")
    return bytes((i,))


def nodeMultipleResourceName(nodeId: bytes, i: int) -> bytes:
    """The Resource Name ``Node-ID || i`` whose hash NODE-MULTIPLE accepts
    (section 7.3.4; the TURN server usage, section 9, stores at d = 1 to
    turn-density)."""
    return nodeId + iterationSuffix(i)


@implementer(IAccessPolicy)
class NodeMultiple:
    """NODE-MULTIPLE (section 7.3.4): "the verifier MUST iterate through
    potential i values, up to the maximum value" -- i from ``first`` (1, as
    the TURN usage counts d "between 1 and turn-density", section 9) to
    the Kind's max-node-multiple.  A Kind without max-node-multiple is
    denied ("the maximum value of i MUST be specified in the Kind
    definition")."""

    name = NODE_MULTIPLE

    #: Signers whose Resource-IDs are kept (:meth:`_resourceIds`).
    CACHED_SIGNERS = 64

    def __init__(self, first: int = 1, suffix: Callable[[int], bytes] = iterationSuffix) -> None:
        self.first = first
        self.suffix = suffix
        self._cache: OrderedDict[tuple[bytes, int, object], frozenset[bytes]] = OrderedDict()

    def permits(self, request: AccessRequest, node: Any) -> bool:
        limit = request.maxNodeMultiple
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            return False
        last = min(limit, MAX_ITERATION)
        resourceId = request.resourceId
        return any(
            resourceId in self._resourceIds(node, nodeId, last) for nodeId in request.signerNodeIds
        )

    def _resourceIds(self, node: Any, nodeId: bytes, last: int) -> frozenset[bytes]:
        """Every H(Node-ID || i), i = first..last, of one signer.

        The iteration the RFC asks for, done once per signer: the same few
        writers store again and again (a TURN server refreshes its
        turn-density entries, a client its values), and every Store, replica
        Store and Fetch checks the policy, each time hashing up to 255 names.
        The most recent signers are kept.  The overlay's hash makes the
        Resource-IDs, and the node only lends it per call, so the key holds
        the hash of the first name: the same signer under another hash
        function gets its own entry."""
        key = (nodeId, last, node.resourceId(nodeId + self.suffix(self.first)))
        cache = self._cache
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
        hashes = (_hashOf(node, nodeId + self.suffix(i)) for i in range(self.first, last + 1))
        found = frozenset(h for h in hashes if h is not None)
        cache[key] = found
        if len(cache) > self.CACHED_SIGNERS:
            cache.popitem(last=False)
        return found


#: The base policies of section 7.3, which every node enforces.
BASE_POLICIES: tuple[IAccessPolicy, ...] = (
    UserMatch(),
    NodeMatch(),
    UserNodeMatch(),
    NodeMultiple(),
)


class PolicyRegistry:
    """Access policies by name: the base four and those usages bring
    (:meth:`reload.interfaces.IUsage.accessPolicies`).

    A usage cannot replace a base policy or another usage's: two policies
    with one name would let the configuration mean two things.
    """

    log = Logger()

    def __init__(self, policies: Iterable[IAccessPolicy] = ()) -> None:
        self._policies: dict[str, IAccessPolicy] = {}
        for policy in BASE_POLICIES:
            self._add(policy)
        for policy in policies:
            self.register(policy)

    def _add(self, policy: IAccessPolicy) -> None:
        self._policies[str(policy.name)] = policy

    def register(self, policy: IAccessPolicy) -> None:
        """Add a usage's policy; ValueError if it does not provide
        IAccessPolicy or its name is taken."""
        try:
            verifyObject(IAccessPolicy, policy)
        except Invalid as exc:
            raise ValueError(f"{policy!r} is not an access policy: {exc}") from None
        name = policy.name
        if not isinstance(name, str) or not name:
            raise ValueError(f"{policy!r} has no policy name")
        if name in self._policies:
            raise ValueError(f"access policy {name} is already defined")
        self._add(policy)

    def get(self, name: str) -> IAccessPolicy | None:
        return self._policies.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._policies

    def __iter__(self) -> Iterator[str]:
        return iter(self._policies)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._policies)

    def permits(self, name: str, request: AccessRequest, node: PolicyContext) -> bool:
        """Whether policy ``name`` lets ``request`` through.  Unknown
        policies, exceptions and answers other than ``True`` deny."""
        policy = self._policies.get(name)
        if policy is None:
            return False
        try:
            # IAccessPolicy.permits documents what it may use of the node:
            # "the overlay's hash (INode.resourceId) and the locally stored
            # data" -- exactly what a PolicyContext has.
            answer = policy.permits(request, cast(INode, node))
        except Exception:
            self.log.failure("access policy {name} failed; denying", name=name)
            return False
        return answer is True
