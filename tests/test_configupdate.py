"""ConfigUpdate (RFC 6940 sections 6.5.4, 11.1): a newer configuration
signed by a configuration-signer of the one in force is applied; anything
older, unsigned, signed by someone else or altered is refused."""

from __future__ import annotations

import base64
import dataclasses
import datetime
from typing import Any

import pytest
from twisted.internet.task import Clock

from reload.config import (
    KindConfig,
    OverlayConfiguration,
    defaultConfiguration,
    parseConfiguration,
    signedBytes,
    writeConfiguration,
)
from reload.configupdate import ConfigurationUpdater
from reload.errors import ReloadError
from reload.security.certificates import PeerIdentity, makeSelfSignedIdentity
from reload.security.signing import (
    CertificateCache,
    signatureAlgorithmFor,
    signBytes,
    signerIdentityFor,
)
from reload.security.trust import TrustPolicy
from reload.transport.dispatcher import Request
from reload.wire.message import ErrorCode
from reload.wire.methods import ConfigUpdateReq
from reload.wire.security_block import GenericCertificate, SecurityBlock, Signature

OVERLAY = "update.example.org"


def signed(config: OverlayConfiguration, signer: PeerIdentity, tamper: bool = False) -> bytes:
    """The document of ``config`` with a <signature> by ``signer`` over its
    <configuration> element (section 11.1)."""
    data = signedBytes(config)
    if tamper:
        data = data.replace(b"<configuration", b"<configuration ", 1)
    algorithm = signatureAlgorithmFor(signer.privateKey)
    block = SecurityBlock(
        (GenericCertificate(0, signer.certificateDer),),
        Signature(
            algorithm, signerIdentityFor(signer), signBytes(signer.privateKey, algorithm, data)
        ),
    )
    return writeConfiguration(dataclasses.replace(config, signature=block.encode()))


class Node:
    """The node side: the configuration in force and what was applied."""

    def __init__(self, current: OverlayConfiguration) -> None:
        self.current = current
        self.applied: list[tuple[OverlayConfiguration, bytes]] = []
        clock = Clock()
        clock.advance(datetime.datetime.now(datetime.UTC).timestamp())
        self.updater = ConfigurationUpdater(
            lambda: self.current,
            self.apply,
            CertificateCache(TrustPolicy.fromConfiguration(current)),
            clock,
        )

    def apply(self, config: OverlayConfiguration, document: bytes) -> None:
        self.applied.append((config, document))
        self.current = config

    def receive(self, body: ConfigUpdateReq) -> Any:
        request = Request(message=None, signer=None, previousHop=None, body=body)  # type: ignore[arg-type]
        return self.updater(request)


@pytest.fixture(scope="module")
def signer() -> PeerIdentity:
    return makeSelfSignedIdentity(OVERLAY, "admin@update.example.org")


@pytest.fixture(scope="module")
def stranger() -> PeerIdentity:
    return makeSelfSignedIdentity(OVERLAY, "mallory@update.example.org")


@pytest.fixture
def node(signer: PeerIdentity) -> Node:
    base = defaultConfiguration(OVERLAY)
    return Node(dataclasses.replace(
        base, sequence=5, configurationSigners=(signer.nodeId.hex(),),
        kindSigners=(signer.nodeId.hex(),),
    ))  # fmt: skip


def test_newer_configuration_signed_by_a_configuration_signer_is_applied(
    node: Node, signer: PeerIdentity
) -> None:
    newer = dataclasses.replace(node.current, sequence=6, maxMessageSize=8000, signature=None)
    document = signed(newer, signer)
    node.receive(ConfigUpdateReq.for_config(document))
    [(applied, kept)] = node.applied
    assert applied.sequence == 6 and applied.maxMessageSize == 8000
    assert kept == document  # persisted byte for byte, so the signature stays valid
    assert parseConfiguration(kept).sequence == 6


@pytest.mark.parametrize("sequence", [5, 4])
def test_a_configuration_that_is_not_newer_is_refused(
    node: Node, signer: PeerIdentity, sequence: int
) -> None:
    older = dataclasses.replace(node.current, sequence=sequence, signature=None)
    with pytest.raises(ReloadError) as info:
        node.receive(ConfigUpdateReq.for_config(signed(older, signer)))
    assert info.value.code == ErrorCode.CONFIG_TOO_OLD
    assert node.applied == []


def test_unsigned_configuration_is_refused(node: Node) -> None:
    newer = dataclasses.replace(node.current, sequence=6, signature=None)
    with pytest.raises(ReloadError) as info:
        node.receive(ConfigUpdateReq.for_config(writeConfiguration(newer)))
    assert info.value.code == ErrorCode.FORBIDDEN
    assert "not signed" in str(info.value)
    assert node.applied == []


def test_configuration_signed_by_another_node_is_refused(
    node: Node, stranger: PeerIdentity
) -> None:
    newer = dataclasses.replace(node.current, sequence=6, signature=None)
    with pytest.raises(ReloadError) as info:
        node.receive(ConfigUpdateReq.for_config(signed(newer, stranger)))
    assert info.value.code == ErrorCode.FORBIDDEN
    assert "is not a configuration signer" in str(info.value)
    assert node.applied == []


def test_altered_configuration_is_refused(node: Node, signer: PeerIdentity) -> None:
    newer = dataclasses.replace(node.current, sequence=6, signature=None)
    with pytest.raises(ReloadError) as info:
        node.receive(ConfigUpdateReq.for_config(signed(newer, signer, tamper=True)))
    assert info.value.code == ErrorCode.FORBIDDEN
    assert node.applied == []


def test_an_overlay_without_configuration_signers_cannot_be_reconfigured(
    signer: PeerIdentity,
) -> None:
    node = Node(dataclasses.replace(defaultConfiguration(OVERLAY), sequence=1))
    newer = dataclasses.replace(node.current, sequence=2, signature=None)
    with pytest.raises(ReloadError) as info:
        node.receive(ConfigUpdateReq.for_config(signed(newer, signer)))
    assert info.value.code == ErrorCode.FORBIDDEN
    assert "names no configuration signer" in str(info.value)


def test_malformed_configuration_is_an_invalid_message(node: Node) -> None:
    with pytest.raises(ReloadError) as info:
        node.receive(ConfigUpdateReq.for_config(b"<overlay"))
    assert info.value.code == ErrorCode.INVALID_MESSAGE


def _kindBlock(kind: Any, signer: PeerIdentity) -> bytes:
    """A kind-block (section 11.1) whose kind-signature signs the <kind>."""
    data = signedBytes(kind)
    algorithm = signatureAlgorithmFor(signer.privateKey)
    block = SecurityBlock(
        (GenericCertificate(0, signer.certificateDer),),
        Signature(
            algorithm, signerIdentityFor(signer), signBytes(signer.privateKey, algorithm, data)
        ),
    )
    signature = base64.b64encode(block.encode())
    return (
        b"<kind-block>" + data + b"<kind-signature>" + signature + b"</kind-signature></kind-block>"
    )


def test_kind_update_signed_by_a_kind_signer_is_merged(node: Node, signer: PeerIdentity) -> None:
    kind = KindConfig(
        kindId=0xF0000001, name=None, maxCount=7, maxSize=300, maxNodeMultiple=None,
        dataModel="DICTIONARY", accessControl="USER-NODE-MATCH",
    )  # fmt: skip
    node.receive(ConfigUpdateReq.for_kinds([_kindBlock(kind, signer)]))
    [(applied, _)] = node.applied
    added = applied.kind(0xF0000001)
    assert added is not None and added.maxCount == 7 and added.dataModel == "DICTIONARY"
    assert applied.sequence == node.applied[0][0].sequence


def test_kind_update_signed_by_another_node_is_refused(node: Node, stranger: PeerIdentity) -> None:
    kind = KindConfig(
        kindId=0xF0000002, name=None, maxCount=1, maxSize=10, maxNodeMultiple=None,
        dataModel="SINGLE", accessControl="USER-MATCH",
    )  # fmt: skip
    with pytest.raises(ReloadError) as info:
        node.receive(ConfigUpdateReq.for_kinds([_kindBlock(kind, stranger)]))
    assert info.value.code == ErrorCode.FORBIDDEN
    assert node.applied == []
