"""The access control policies of RFC 6940 section 7.3, one decision at a
time, and the registry that fails closed."""

from __future__ import annotations

from typing import Any

import pytest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from reload.interfaces import AccessRequest, DataModel, IAccessPolicy
from reload.storage.policies import (
    BASE_POLICIES,
    NodeMatch,
    NodeMultiple,
    PolicyRegistry,
    UserMatch,
    UserNodeMatch,
    nodeMultipleResourceName,
)
from tests.storage.support import h

ALICE = "alice@storage.example.org"
NODE = b"\x11" * 16
OTHER = b"\x22" * 16


class Context:
    """The node as a policy sees it: the overlay hash, no stored data."""

    def resourceId(self, name: bytes) -> bytes:
        return h(name)

    def localData(self, resourceId: bytes, kindId: int) -> tuple[()]:
        return ()


def request(
    resourceId: bytes,
    *,
    user: str = ALICE,
    nodeIds: tuple[bytes, ...] = (NODE,),
    model: DataModel = DataModel.SINGLE,
    entry: int | bytes | None = None,
    maxNodeMultiple: int | None = None,
) -> AccessRequest:
    return AccessRequest(
        resourceId=resourceId,
        kindId=0xF0000001,
        dataModel=model,
        entry=entry,
        value=b"v",
        signerUserName=user,
        signerNodeIds=nodeIds,
        maxNodeMultiple=maxNodeMultiple,
    )


def test_the_base_policies_provide_IAccessPolicy() -> None:
    names = set()
    for policy in BASE_POLICIES:
        assert verifyObject(IAccessPolicy, policy)
        names.add(policy.name)
    assert names == {"USER-MATCH", "NODE-MATCH", "USER-NODE-MATCH", "NODE-MULTIPLE"}


def test_user_match_7_3_1() -> None:
    policy, node = UserMatch(), Context()
    assert policy.permits(request(h(ALICE)), node)
    assert not policy.permits(request(h("bob@storage.example.org")), node)
    # A certificate without a user name matches nothing, not even H("").
    assert not policy.permits(request(h(""), user=""), node)


def test_node_match_7_3_2() -> None:
    policy, node = NodeMatch(), Context()
    assert policy.permits(request(h(NODE)), node)
    assert not policy.permits(request(h(OTHER)), node)
    # The Node-ID must be the one the SignerIdentity names: the service
    # passes only that one.
    assert not policy.permits(request(h(NODE), nodeIds=(OTHER,)), node)


def test_user_node_match_7_3_3() -> None:
    policy, node = UserNodeMatch(), Context()
    ok = request(h(ALICE), model=DataModel.DICTIONARY, entry=NODE)
    assert policy.permits(ok, node)
    # The key must be the signer's Node-ID.
    assert not policy.permits(request(h(ALICE), model=DataModel.DICTIONARY, entry=OTHER), node)
    # The user name must hash to the Resource-ID.
    assert not policy.permits(
        request(h("bob@storage.example.org"), model=DataModel.DICTIONARY, entry=NODE), node
    )
    # Dictionaries only.
    assert not policy.permits(request(h(ALICE), model=DataModel.ARRAY, entry=0), node)


def test_node_multiple_7_3_4_iterates_up_to_max_node_multiple() -> None:
    policy, node = NodeMultiple(), Context()
    for i in (1, 2, 3):
        rid = h(nodeMultipleResourceName(NODE, i))
        assert policy.permits(request(rid, maxNodeMultiple=3), node)
    assert not policy.permits(
        request(h(nodeMultipleResourceName(NODE, 4)), maxNodeMultiple=3), node
    )
    assert not policy.permits(
        request(h(nodeMultipleResourceName(OTHER, 1)), maxNodeMultiple=3), node
    )
    # Without max-node-multiple the policy cannot be applied: denied.
    assert not policy.permits(request(h(nodeMultipleResourceName(NODE, 1))), node)
    assert nodeMultipleResourceName(NODE, 2) == NODE + b"\x02"


class OtherHash(Context):
    """An overlay with another hash function."""

    def resourceId(self, name: bytes) -> bytes:
        return h(b"other" + name)


def test_node_multiple_keeps_each_signers_ids_per_limit_and_hash() -> None:
    policy, node, other = NodeMultiple(), Context(), OtherHash()
    fourth = h(nodeMultipleResourceName(NODE, 4))
    assert not policy.permits(request(fourth, maxNodeMultiple=3), node)
    # The same signer under a larger limit, then under the smaller again:
    # each limit gets its own answer, not the one computed first.
    assert policy.permits(request(fourth, maxNodeMultiple=255), node)
    assert not policy.permits(request(fourth, maxNodeMultiple=3), node)
    # Under another hash the signer's Resource-IDs are others.
    assert not policy.permits(request(fourth, maxNodeMultiple=255), other)
    otherFourth = other.resourceId(nodeMultipleResourceName(NODE, 4))
    assert policy.permits(request(otherFourth, maxNodeMultiple=255), other)
    assert not policy.permits(request(otherFourth, maxNodeMultiple=255), node)
    # At most CACHED_SIGNERS signers are kept; the answers stay right.
    for n in range(NodeMultiple.CACHED_SIGNERS + 10):
        signer = n.to_bytes(16, "big")
        rid = h(nodeMultipleResourceName(signer, 2))
        assert policy.permits(request(rid, nodeIds=(signer,), maxNodeMultiple=3), node)
    assert len(policy._cache) == NodeMultiple.CACHED_SIGNERS
    assert policy.permits(request(fourth, maxNodeMultiple=255), node)


@implementer(IAccessPolicy)
class Everyone:
    name = "EVERYONE"

    def permits(self, request: AccessRequest, node: Any) -> bool:
        return True


@implementer(IAccessPolicy)
class Broken:
    name = "BROKEN"

    def permits(self, request: AccessRequest, node: Any) -> bool:
        raise RuntimeError("cannot decide")


@implementer(IAccessPolicy)
class Truthy:
    name = "TRUTHY"

    def permits(self, request: AccessRequest, node: Any) -> Any:
        return "yes"


def test_the_registry_takes_usage_policies() -> None:
    registry = PolicyRegistry([Everyone()])
    assert "EVERYONE" in registry
    assert registry.names >= {"USER-MATCH", "NODE-MATCH", "USER-NODE-MATCH", "NODE-MULTIPLE"}
    assert registry.permits("EVERYONE", request(OTHER), Context())


def test_the_registry_fails_closed() -> None:
    registry = PolicyRegistry([Broken(), Truthy()])
    assert not registry.permits("BROKEN", request(h(ALICE)), Context())
    assert not registry.permits("TRUTHY", request(h(ALICE)), Context())
    assert not registry.permits("NO-SUCH-POLICY", request(h(ALICE)), Context())


def test_a_usage_cannot_replace_a_policy() -> None:
    @implementer(IAccessPolicy)
    class Impostor:
        name = "USER-MATCH"

        def permits(self, request: AccessRequest, node: Any) -> bool:
            return True

    registry = PolicyRegistry()
    with pytest.raises(ValueError, match="already defined"):
        registry.register(Impostor())
    with pytest.raises(ValueError, match="not an access policy"):
        registry.register(object())  # type: ignore[arg-type]
