"""TrustPolicy, one rule at a time (RFC 6940 sections 11.3, 11.3.1, 13.3;
RFC 5280 section 6.1 for the path)."""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from reload.security import trust as trustModule
from reload.security.certificates import makeSelfSignedCertificate, nodeUri
from reload.security.keys import generateEcdsaKey
from reload.security.trust import (
    CLIENT_AUTH,
    SERVER_AUTH,
    CertificateRejected,
    TrustPolicy,
    VerifiedPeer,
)
from tests.security.certs import (
    BAD_KINDS,
    CRL_SIGN,
    DAY,
    DIGITAL_SIGNATURE,
    KEY_AGREEMENT,
    KEY_ENCIPHERMENT,
    NOW,
    OTHER_OVERLAY,
    OVERLAY,
    Issuer,
    Pki,
    keyUsage,
    makeCa,
    makeLeaf,
    randomNodeId,
    selfSignedIdentity,
)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def rejected(policy: TrustPolicy, chain: list[x509.Certificate], **kwargs: Any) -> str:
    with pytest.raises(CertificateRejected) as info:
        policy.verify(chain, kwargs.pop("now", NOW), **kwargs)
    return info.value.reason


# -- accepted -----------------------------------------------------------------


def test_caIssuedCertificateAccepted(pki: Pki) -> None:
    nodeId = randomNodeId()
    _, cert = makeLeaf(pki.root, nodeIds=[nodeId], userName="alice@example.org")
    peer = pki.policy().verify([cert], NOW, nodeId, purpose=SERVER_AUTH)
    assert peer == VerifiedPeer(
        cert,
        (nodeId,),
        "alice@example.org",
        False,
        max(cert.not_valid_before_utc, pki.root.certificate.not_valid_before_utc),
        min(cert.not_valid_after_utc, pki.root.certificate.not_valid_after_utc),
    )
    assert peer.nodeId == nodeId


def test_productionCaAndIssuedCertificateAccepted() -> None:
    """The certificates reload.security.certificates makes pass the
    policy built from them."""
    from reload.security.certificates import issueCertificate

    pki = Pki.fromProductionCode()
    key = generateEcdsaKey()
    nodeIds = [randomNodeId(), randomNodeId()]
    cert = issueCertificate(
        pki.root.key, pki.root.certificate, key.public_key(), nodeIds, "u@x", OVERLAY, now=NOW
    )
    peer = pki.policy().verify([cert], NOW, nodeIds[1], purpose=CLIENT_AUTH)
    assert peer.nodeIds == tuple(nodeIds)


def test_naiveTimeIsUtc(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root)
    pki.policy().verify([cert], NOW.replace(tzinfo=None))


def test_intermediateCaAccepted(pki: Pki) -> None:
    intermediate = makeCa("Intermediate", pki.root)
    _, cert = makeLeaf(intermediate)
    peer = pki.policy().verify([cert, intermediate.certificate], NOW)
    assert peer.validUntil == min(
        c.not_valid_after_utc for c in (cert, intermediate.certificate, pki.root.certificate)
    )


def test_unrelatedCertificatesInTheChainAreIgnored(pki: Pki) -> None:
    intermediate = makeCa("Intermediate", pki.root)
    _, cert = makeLeaf(intermediate)
    noise = makeCa("Noise").certificate
    pki.policy().verify([cert, noise, intermediate.certificate], NOW)


def test_keyUsageAndExtendedKeyUsageMayBeAbsent(pki: Pki) -> None:
    """RFC 5280: no keyUsage / extendedKeyUsage means no restriction."""
    _, cert = makeLeaf(pki.root, usage=None, eku=None)
    pki.policy().verify([cert], NOW, purpose=SERVER_AUTH)


def test_anyExtendedKeyUsageAllowsBothRoles(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    pki.policy().verify([cert], NOW, purpose=CLIENT_AUTH)


def test_selfSignedAcceptedWherePermitted(pki: Pki) -> None:
    """Section 11.3.1."""
    identity = selfSignedIdentity()
    peer = pki.policy(selfSignedPermitted=True).verify([identity.certificate], NOW)
    assert peer.selfSigned
    assert peer.nodeIds == identity.nodeIds


def test_selfSignedWithSeveralNodeIdsAccepted(pki: Pki) -> None:
    """Section 11.3.1: the index 1..n prepended for several Node-IDs."""
    key = generateEcdsaKey()
    cert = makeSelfSignedCertificate(key, OVERLAY, None, nodeIdCount=3, now=NOW - DAY)
    assert len(pki.policy(selfSignedPermitted=True).verify([cert], NOW).nodeIds) == 3


def test_selfSignedWithTheConfiguredDigest(pki: Pki) -> None:
    key = generateEcdsaKey()
    cert = makeSelfSignedCertificate(key, OVERLAY, None, digest="sha256", now=NOW - DAY)
    policy = pki.policy(selfSignedPermitted=True, selfSignedDigest="sha256")
    policy.verify([cert], NOW)
    assert "do not match" in rejected(pki.policy(selfSignedPermitted=True), [cert])


def test_fromConfiguration(pki: Pki) -> None:
    configuration = SimpleNamespace(
        instanceName=OVERLAY,
        rootCerts=(pki.root.certificate.public_bytes(serialization.Encoding.DER),),
        selfSignedPermitted=False,
        selfSignedDigest=None,
        nodeIdLength=16,
    )
    policy = TrustPolicy.fromConfiguration(configuration)
    assert policy.roots == (pki.root.certificate,)
    _, cert = makeLeaf(pki.root)
    policy.verify([cert], NOW)


# -- the path -----------------------------------------------------------------


def test_wrongRootRejected(pki: Pki) -> None:
    _, cert = makeLeaf(makeCa("Stranger"))
    assert "does not chain" in rejected(pki.policy(), [cert])


def test_sameNameDifferentKeyRootRejected(pki: Pki) -> None:
    """Issuer names match but the signature is not the root's."""
    impostor = makeCa("Test CA")
    genuine = makeCa("Test CA")
    _, cert = makeLeaf(impostor)
    policy = TrustPolicy(OVERLAY, (genuine.certificate,), False)
    assert "does not chain" in rejected(policy, [cert])


def test_selfSignedRejectedWhereNotPermitted(pki: Pki) -> None:
    assert "not permitted" in rejected(pki.policy(), [selfSignedIdentity().certificate])


def test_selfSignedWithForgedNodeIdRejected(pki: Pki) -> None:
    """Section 11.3.1: "nodes MUST check that the Node-ID and public keys
    match. This prevents Node-ID theft.\""""
    victim = selfSignedIdentity()
    _, thief = makeLeaf(None, nodeIds=victim.nodeIds)
    reason = rejected(pki.policy(selfSignedPermitted=True), [thief])
    assert "do not match the public key" in reason


def test_selfSignedRejectedWithoutDigest(pki: Pki) -> None:
    policy = pki.policy(selfSignedPermitted=True, selfSignedDigest=None)
    assert "no self-signed digest" in rejected(policy, [selfSignedIdentity().certificate])


def test_issuerThatIsNotACaRejected(pki: Pki) -> None:
    notCa = makeCa("Not a CA", pki.root, ca=False)
    _, cert = makeLeaf(notCa)
    assert "is not a CA" in rejected(pki.policy(), [cert, notCa.certificate])


def test_issuerWithoutBasicConstraintsRejected(pki: Pki) -> None:
    bare = makeCa("Bare", pki.root, basicConstraints=False)
    _, cert = makeLeaf(bare)
    assert "no basicConstraints" in rejected(pki.policy(), [cert, bare.certificate])


def test_issuerWithoutKeyCertSignRejected(pki: Pki) -> None:
    signer = makeCa("No keyCertSign", pki.root, usage=keyUsage(DIGITAL_SIGNATURE, CRL_SIGN))
    _, cert = makeLeaf(signer)
    assert "may not sign certificates" in rejected(pki.policy(), [cert, signer.certificate])


def test_rootThatIsNotACaRejected() -> None:
    root = makeCa("Root", ca=False)
    _, cert = makeLeaf(root)
    assert "is not a CA" in rejected(TrustPolicy(OVERLAY, (root.certificate,), False), [cert])


def test_pathLengthConstraintEnforced() -> None:
    root = makeCa("Root", pathLength=0)
    intermediate = makeCa("Intermediate", root)
    _, cert = makeLeaf(intermediate)
    policy = TrustPolicy(OVERLAY, (root.certificate,), False)
    assert "intermediate CAs below it" in rejected(policy, [cert, intermediate.certificate])
    _, direct = makeLeaf(root)
    policy.verify([direct], NOW)


def test_tooLongChainRejected(pki: Pki) -> None:
    chain: list[Issuer] = [pki.root]
    for depth in range(3):
        chain.append(makeCa(f"Level {depth}", chain[-1]))
    _, cert = makeLeaf(chain[-1])
    policy = pki.policy(maxChainLength=2)
    reason = rejected(policy, [cert, *(i.certificate for i in reversed(chain[1:]))])
    assert "longer than 2" in reason
    pki.policy().verify([cert, *(i.certificate for i in chain[1:])], NOW)


# -- validity -----------------------------------------------------------------


def test_expiredRejected(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, notBefore=NOW - 10 * DAY, notAfter=NOW - DAY)
    assert "has expired" in rejected(pki.policy(), [cert])


def test_notYetValidRejected(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, notBefore=NOW + DAY, notAfter=NOW + 10 * DAY)
    assert "not valid yet" in rejected(pki.policy(), [cert])


def test_expiredIntermediateRejected(pki: Pki) -> None:
    intermediate = makeCa("Old", pki.root, notAfter=NOW - DAY)
    _, cert = makeLeaf(intermediate)
    assert "'CN=Old' has expired" in rejected(pki.policy(), [cert, intermediate.certificate])


def test_expiredRootRejected() -> None:
    root = makeCa("Old root", notBefore=NOW - 10 * DAY, notAfter=NOW - DAY)
    _, cert = makeLeaf(root)
    policy = TrustPolicy(OVERLAY, (root.certificate,), False)
    assert "has expired" in rejected(policy, [cert])


def test_selfSignedExpiredRejected(pki: Pki) -> None:
    _, cert = makeLeaf(None, notBefore=NOW - 10 * DAY, notAfter=NOW - DAY)
    assert "has expired" in rejected(pki.policy(selfSignedPermitted=True), [cert])


# -- subjectAltName (section 11.3) --------------------------------------------


def test_noSanRejected(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, san=False)
    assert "no subjectAltName" in rejected(pki.policy(), [cert])


def test_wrongOverlayRejected(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, overlay=OTHER_OVERLAY)
    assert "is for overlay" in rejected(pki.policy(), [cert])


def test_oneUriForAnotherOverlayRejected(pki: Pki) -> None:
    uris = [nodeUri(randomNodeId(), OVERLAY), nodeUri(randomNodeId(), OTHER_OVERLAY)]
    _, cert = makeLeaf(pki.root, uris=uris)
    assert "is for overlay" in rejected(pki.policy(), [cert])


def test_sanWithoutNodeIdRejected(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, uris=[])
    assert "no reload URI" in rejected(pki.policy(), [cert])


@pytest.mark.parametrize(
    "name",
    [
        x509.DNSName("peer.example.org"),
        x509.UniformResourceIdentifier("sip:alice@example.org"),
        x509.UniformResourceIdentifier("reload://0102abcd@overlay.example.org/0102"),
    ],
)
def test_otherSanEntriesRejected(pki: Pki, name: x509.GeneralName) -> None:
    """Section 11.3: "MUST NOT contain any identities other than those
    listed above"."""
    _, cert = makeLeaf(pki.root, extraNames=[name])
    rejected(pki.policy(), [cert])


def test_twoUserNamesRejected(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, extraNames=[x509.RFC822Name("mallory@example.org")])
    assert "allows one" in rejected(pki.policy(), [cert])


def test_nodeIdOfTheWrongLengthRejected(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, nodeIds=[randomNodeId(20)])
    assert "the overlay uses 16" in rejected(pki.policy(), [cert])
    pki.policy(nodeIdLength=20).verify([cert], NOW)


def test_duplicateNodeIdRejected(pki: Pki) -> None:
    nodeId = randomNodeId()
    _, cert = makeLeaf(pki.root, uris=[nodeUri(nodeId, OVERLAY)] * 2)
    assert "twice" in rejected(pki.policy(), [cert])


def test_certificateWithoutUserNameAccepted(pki: Pki) -> None:
    _, cert = makeLeaf(pki.root, userName=None)
    assert pki.policy().verify([cert], NOW).userName is None


# -- key usage ----------------------------------------------------------------


@pytest.mark.parametrize(
    "usage",
    [keyUsage(KEY_ENCIPHERMENT), keyUsage(KEY_AGREEMENT), keyUsage(CRL_SIGN)],
)
def test_keyUsageWithoutDigitalSignatureRejected(pki: Pki, usage: x509.KeyUsage) -> None:
    _, cert = makeLeaf(pki.root, usage=usage)
    assert "digitalSignature" in rejected(pki.policy(), [cert])


def test_extendedKeyUsageMustAllowTheTlsRole(pki: Pki) -> None:
    _, serverOnly = makeLeaf(pki.root, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    policy = pki.policy()
    policy.verify([serverOnly], NOW, purpose=SERVER_AUTH)
    assert "clientAuth" in rejected(policy, [serverOnly], purpose=CLIENT_AUTH)
    # No TLS role (a message signer): the extended key usage is not asked.
    policy.verify([serverOnly], NOW)


def test_weakKeysRejected(pki: Pki) -> None:
    smallRsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    _, cert = makeLeaf(pki.root, key=smallRsa)
    assert "too short" in rejected(pki.policy(), [cert])


def test_unknownCriticalExtensionRejected(pki: Pki) -> None:
    """RFC 5280 section 4.2: an unprocessed critical extension rejects."""
    odd = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    _, cert = makeLeaf(pki.root, extraExtensions=[(odd, True)])
    assert "critical extension" in rejected(pki.policy(), [cert])
    _, fine = makeLeaf(pki.root, extraExtensions=[(odd, False)])
    pki.policy().verify([fine], NOW)


# -- expected Node-ID ---------------------------------------------------------


def test_expectedNodeIdMustBeAmongTheNodeIds(pki: Pki) -> None:
    nodeIds = [randomNodeId(), randomNodeId()]
    _, cert = makeLeaf(pki.root, nodeIds=nodeIds)
    policy = pki.policy()
    for nodeId in nodeIds:
        policy.verify([cert], NOW, nodeId)
    assert "expected Node-ID" in rejected(policy, [cert], expectedNodeId=randomNodeId())


# -- failing closed -----------------------------------------------------------


def test_emptyChainRejected(pki: Pki) -> None:
    assert "no certificate" in rejected(pki.policy(), [])


def test_notACertificateRejected(pki: Pki) -> None:
    rejected(pki.policy(), [b"DER bytes are not a certificate object"])  # type: ignore[list-item]


def test_unexpectedErrorsBecomeRejections(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(trustModule, "_signedBy", explode)
    _, cert = makeLeaf(pki.root)
    assert "RuntimeError: boom" in rejected(pki.policy(), [cert])


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_everyBadKindOfTheTlsMatrixIsRejected(pki: Pki, kind: str) -> None:
    factory, words = BAD_KINDS[kind]
    assert words in rejected(pki.policy(), [factory(pki).certificate])


# -- the cache ----------------------------------------------------------------


def test_positiveResultsAreCachedUntilExpiry(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = pki.policy()
    _, cert = makeLeaf(pki.root, notAfter=NOW + DAY)
    calls: list[int] = []
    original = TrustPolicy._verify

    def counting(self: TrustPolicy, *args: Any) -> VerifiedPeer:
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(TrustPolicy, "_verify", counting)
    first = policy.verify([cert], NOW)
    assert policy.verify([cert], NOW + datetime.timedelta(hours=1)) is first
    assert len(calls) == 1
    # Past notAfter the cached result is not used: the certificate is
    # checked again, and rejected.
    assert "expired" in rejected(policy, [cert], now=NOW + 2 * DAY)
    assert len(calls) == 2


def test_cacheIsKeyedByExpectedNodeIdAndPurpose(pki: Pki) -> None:
    policy = pki.policy()
    nodeId = randomNodeId()
    _, cert = makeLeaf(pki.root, nodeIds=[nodeId], eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    policy.verify([cert], NOW, nodeId, purpose=SERVER_AUTH)
    rejected(policy, [cert], expectedNodeId=randomNodeId(), purpose=SERVER_AUTH)
    rejected(policy, [cert], expectedNodeId=nodeId, purpose=CLIENT_AUTH)


def test_negativeResultsAreNotCached(pki: Pki) -> None:
    policy = pki.policy()
    _, cert = makeLeaf(pki.root, notBefore=NOW + DAY, notAfter=NOW + 10 * DAY)
    rejected(policy, [cert])
    policy.verify([cert], NOW + 2 * DAY)


def test_cacheIsBounded(pki: Pki) -> None:
    policy = pki.policy(cacheSize=3)
    for _ in range(5):
        _, cert = makeLeaf(pki.root)
        policy.verify([cert], NOW)
    assert len(policy._cache) == 3
