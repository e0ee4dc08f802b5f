"""Message signatures (RFC 6940 section 6.3.4), stored data signatures
(section 7.1) and the certificate cache signers are found in."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from reload.security.certificates import PeerIdentity, makeSelfSignedIdentity
from reload.security.keys import generateEcdsaKey, generateRsaKey
from reload.security.signing import (
    CertificateCache,
    MessageSigner,
    SignatureRejected,
    messageSourceNodeId,
    signData,
    signerIdentityFor,
    signMessage,
    verifyData,
    verifyMessage,
)
from reload.security.trust import TrustPolicy
from reload.wire.header import Destination, ForwardingHeader, overlay_hash
from reload.wire.message import Message, MessageContents
from reload.wire.security_block import (
    RSA_SHA256,
    HashAlgorithm,
    SecurityBlock,
    Signature,
    SignatureAlgorithm,
    SignatureAndHashAlgorithm,
    SignerIdentity,
    SignerIdentityType,
)
from reload.wire.storage import ArrayEntry, DataValue, DictionaryEntry, StoredData
from tests.security.certs import (
    DAY,
    NOW,
    OVERLAY,
    Pki,
    identityOf,
    makeCa,
    makeLeaf,
    randomNodeId,
    selfSignedIdentity,
)

PING_REQ = 0x17
STORE_REQ = 0x07
KIND = 0x0001


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.fixture(scope="module")
def alice(pki: Pki) -> PeerIdentity:
    """An ECDSA P-256 identity."""
    return pki.identity(userName="alice@overlay.example.org")


@pytest.fixture(scope="module")
def bob(pki: Pki) -> PeerIdentity:
    """An RSA-2048 identity."""
    return pki.identity(rsaKey=True, userName="bob@overlay.example.org")


@pytest.fixture
def cache(pki: Pki) -> CertificateCache:
    return CertificateCache(pki.policy())


def header(
    destination: bytes, via: tuple[Destination, ...] = (), txid: int = 7
) -> ForwardingHeader:
    return ForwardingHeader(overlay_hash(OVERLAY), txid, (Destination.node(destination),), via)


def received(message: Message) -> Message:
    """The message as the destination decodes it off the wire."""
    return Message.decode(message.encode())


def rejected(message: Message, cache: CertificateCache, **kwargs: object) -> str:
    with pytest.raises(SignatureRejected) as info:
        verifyMessage(received(message), cache, NOW, **kwargs)  # type: ignore[arg-type]
    return info.value.reason


# -- good signatures ----------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_rsaAndEcdsaMessagesVerify(
    who: str, alice: PeerIdentity, bob: PeerIdentity, cache: CertificateCache
) -> None:
    """Section 6.3.4: RSA-PKCS1-v1_5 with SHA-256 (mandatory) and ECDSA
    P-256 with SHA-256 both sign and verify, through encoding and
    decoding."""
    signer = alice if who == "alice" else bob
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b"\x00"), signer)
    expected = (
        SignatureAlgorithm.RSA if signer is bob else SignatureAlgorithm.ECDSA,
        HashAlgorithm.SHA256,
    )
    algorithm = message.security_block.signature.algorithm
    assert (algorithm.signature_algorithm, algorithm.hash_algorithm) == expected
    result = verifyMessage(received(message), cache, NOW, senderNodeId=signer.nodeId)
    assert result.nodeId == signer.nodeId
    assert result.userName == signer.userName
    assert result.certificate == signer.certificate


def test_signerIdentityIsCertHashForOneNodeId(alice: PeerIdentity) -> None:
    """Section 6.3.4: one Node-ID -> cert_hash, the hash of the DER
    certificate."""
    import hashlib

    identity = signerIdentityFor(alice)
    assert identity.identity_type == SignerIdentityType.CERT_HASH
    assert identity.value == hashlib.sha256(alice.certificateDer).digest()


def test_securityBlockCarriesTheSignersCertificate(alice: PeerIdentity) -> None:
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    ders = [c.certificate for c in message.security_block.certificates]
    assert ders == [alice.certificateDer]


def test_forwardedMessageComesFromTheFirstViaEntry(
    alice: PeerIdentity, pki: Pki, cache: CertificateCache
) -> None:
    """Section 6.3.2: the first via-list entry is the originator; the link
    peer is only the last hop."""
    relay = randomNodeId()
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    forwarded = dataclasses.replace(
        message,
        header=dataclasses.replace(
            message.header, via_list=(Destination.node(alice.nodeId), Destination.node(relay))
        ),
    )
    assert verifyMessage(received(forwarded), cache, NOW, senderNodeId=relay).nodeId == (
        alice.nodeId
    )


def test_signerLearnedEarlierNeedsNoCertificateInTheBlock(
    alice: PeerIdentity, cache: CertificateCache
) -> None:
    first = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    verifyMessage(received(first), cache, NOW, senderNodeId=alice.nodeId)
    bare = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b"2"), alice)
    bare = dataclasses.replace(
        bare, security_block=SecurityBlock((), bare.security_block.signature)
    )
    verifyMessage(received(bare), cache, NOW, senderNodeId=alice.nodeId)


def test_intermediateInTheSecurityBlock(pki: Pki, cache: CertificateCache) -> None:
    intermediate = makeCa("Intermediate", pki.root)
    key, cert = makeLeaf(intermediate)
    signer = identityOf(key, cert, chain=[intermediate.certificate])
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), signer)
    assert len(message.security_block.certificates) == 2
    verifyMessage(received(message), cache, NOW, senderNodeId=signer.nodeId)
    assert cert in cache and intermediate.certificate not in cache


def test_selfSignedSignerWherePermitted(pki: Pki) -> None:
    signer = selfSignedIdentity()
    cache = CertificateCache(pki.policy(selfSignedPermitted=True))
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), signer)
    assert verifyMessage(received(message), cache, NOW, senderNodeId=signer.nodeId).peer.selfSigned


def test_severalNodeIdsUseCertHashNodeId(pki: Pki, cache: CertificateCache) -> None:
    """Section 6.3.4: a certificate with several Node-IDs signs with
    cert_hash_node_id = H(NodeId || certificate), naming the Node-ID."""
    import hashlib

    nodeIds = (randomNodeId(), randomNodeId())
    key, cert = makeLeaf(pki.root, nodeIds=nodeIds)
    signer = identityOf(key, cert)
    identity = signerIdentityFor(signer, nodeIds[1])
    assert identity.identity_type == SignerIdentityType.CERT_HASH_NODE_ID
    assert identity.value == hashlib.sha256(nodeIds[1] + signer.certificateDer).digest()
    message = signMessage(
        header(randomNodeId()), MessageContents(PING_REQ, b""), signer, nodeId=nodeIds[1]
    )
    assert (
        verifyMessage(received(message), cache, NOW, senderNodeId=nodeIds[1]).nodeId == (nodeIds[1])
    )
    # Signed as the second Node-ID, it does not come from the first.
    assert "signed by" in rejected(message, cache, senderNodeId=nodeIds[0])


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_messageSignerSignsAsSignMessageDoes(
    who: str, alice: PeerIdentity, bob: PeerIdentity, cache: CertificateCache
) -> None:
    """A node's MessageSigner (what its signatures share, worked out once)
    gives the security block signMessage gives: the same algorithm, signer
    identity and certificates, and a signature that verifies."""
    signer = alice if who == "alice" else bob
    messageSigner = MessageSigner(signer)
    contents = MessageContents(PING_REQ, b"\x01\x02")
    once = signMessage(header(randomNodeId()), contents, signer)
    kept = messageSigner.sign(header(randomNodeId()), contents)
    assert kept.security_block.signature.algorithm == once.security_block.signature.algorithm
    assert kept.security_block.signature.identity == once.security_block.signature.identity
    assert kept.security_block.certificates == once.security_block.certificates
    assert verifyMessage(received(kept), cache, NOW, senderNodeId=signer.nodeId).nodeId == (
        signer.nodeId
    )


def test_messageSignerCarriesEachExtraCertificateOnce(
    alice: PeerIdentity, bob: PeerIdentity, pki: Pki, cache: CertificateCache
) -> None:
    """Section 6.3.4: the bucket holds "all the certificates necessary to
    verify every signature" -- the signer's chain, the extra certificates
    it was built with, and the DER certificates carried with one message
    (a FetchAns's value signers), each once and in that order."""
    intermediate = makeCa("Intermediate", pki.root)
    key, cert = makeLeaf(intermediate)
    signer = identityOf(key, cert, chain=[intermediate.certificate])
    messageSigner = MessageSigner(signer, certificates=[bob.certificate])
    message = messageSigner.sign(
        header(randomNodeId()),
        MessageContents(PING_REQ, b""),
        [alice.certificateDer, signer.certificateDer, alice.certificateDer],
    )
    ders = [c.certificate for c in message.security_block.certificates]
    assert ders == [
        signer.certificateDer,
        intermediate.certificate.public_bytes(Encoding.DER),
        bob.certificateDer,
        alice.certificateDer,
    ]
    verifyMessage(received(message), cache, NOW, senderNodeId=signer.nodeId)
    # The carried certificates belong to that message only.
    plain = messageSigner.sign(header(randomNodeId()), MessageContents(PING_REQ, b""))
    assert len(plain.security_block.certificates) == 3


def test_messageSignerSignsAsTheNodeIdItWasGiven(pki: Pki, cache: CertificateCache) -> None:
    """Section 6.3.4: with several Node-IDs the signer identity names the
    one the node signs as."""
    nodeIds = (randomNodeId(), randomNodeId())
    key, cert = makeLeaf(pki.root, nodeIds=nodeIds)
    signer = identityOf(key, cert)
    message = MessageSigner(signer, nodeIds[1]).sign(
        header(randomNodeId()), MessageContents(PING_REQ, b"")
    )
    assert (
        verifyMessage(received(message), cache, NOW, senderNodeId=nodeIds[1]).nodeId == (nodeIds[1])
    )
    assert "signed by" in rejected(message, cache, senderNodeId=nodeIds[0])


# -- bad signatures -----------------------------------------------------------


def test_tamperedSignatureRejected(alice: PeerIdentity, cache: CertificateCache) -> None:
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    signature = message.security_block.signature
    value = bytearray(signature.value)
    value[len(value) // 2] ^= 0x01
    tampered = dataclasses.replace(
        message,
        security_block=dataclasses.replace(
            message.security_block,
            signature=dataclasses.replace(signature, value=bytes(value)),
        ),
    )
    assert "does not verify" in rejected(tampered, cache, senderNodeId=alice.nodeId)


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_replayedMessageWithChangedBodyRejected(
    who: str, alice: PeerIdentity, bob: PeerIdentity, cache: CertificateCache
) -> None:
    """The security block of one message does not authenticate another
    body (section 6.3.4: the signature covers MessageContents)."""
    signer = alice if who == "alice" else bob
    original = signMessage(header(randomNodeId()), MessageContents(STORE_REQ, b"old"), signer)
    verifyMessage(received(original), cache, NOW, senderNodeId=signer.nodeId)
    replayed = dataclasses.replace(original, contents=MessageContents(STORE_REQ, b"new"))
    assert "does not verify" in rejected(replayed, cache, senderNodeId=signer.nodeId)


def test_changedTransactionIdOrOverlayRejected(
    alice: PeerIdentity, cache: CertificateCache
) -> None:
    """overlay and transaction_id are signed (section 6.3.4)."""
    original = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    for change in ({"transaction_id": 8}, {"overlay": overlay_hash("elsewhere.example.org")}):
        moved = dataclasses.replace(
            original,
            header=dataclasses.replace(original.header, **change),  # type: ignore[arg-type]
        )
        assert "does not verify" in rejected(moved, cache, senderNodeId=alice.nodeId)


def test_messageFromANodeThatIsNotTheSignerRejected(
    alice: PeerIdentity, bob: PeerIdentity, cache: CertificateCache
) -> None:
    """Bob relays Alice's signed message as if it were his own (no via
    entry), or names a third node first in the via list: the signer is not
    the node the message comes from."""
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    assert "signed by" in rejected(message, cache, senderNodeId=bob.nodeId)
    viaOther = dataclasses.replace(
        message,
        header=dataclasses.replace(message.header, via_list=(Destination.node(bob.nodeId),)),
    )
    assert "signed by" in rejected(viaOther, cache, senderNodeId=alice.nodeId)


def test_explicitSourceNodeIdForResponses(alice: PeerIdentity, cache: CertificateCache) -> None:
    """Section 6.3.4 rule 1: a response to a request sent to a Node-ID MUST
    come from that Node-ID, whatever the via list says."""
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ + 1, b""), alice)
    verifyMessage(received(message), cache, NOW, sourceNodeId=alice.nodeId)
    assert "signed by" in rejected(message, cache, sourceNodeId=randomNodeId())
    verifyMessage(received(message), cache, NOW, checkSource=False)


def test_unknownSourceRejected(alice: PeerIdentity, cache: CertificateCache) -> None:
    """A compressed (opaque) first via entry hides the originator; with no
    link peer given nothing is known either: fail closed."""
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    assert "unknown" in rejected(message, cache)
    compressed = dataclasses.replace(
        message,
        header=dataclasses.replace(message.header, via_list=(Destination.compressed_id(0x8001),)),
    )
    assert messageSourceNodeId(compressed.header, alice.nodeId) is None
    assert "unknown" in rejected(compressed, cache, senderNodeId=alice.nodeId)


def test_unknownSignerRejected(alice: PeerIdentity, cache: CertificateCache) -> None:
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    bare = dataclasses.replace(
        message, security_block=SecurityBlock((), message.security_block.signature)
    )
    assert "unknown signer" in rejected(bare, cache, senderNodeId=alice.nodeId)


def test_untrustedSignerRejectedWithTheReason(pki: Pki, cache: CertificateCache) -> None:
    signer = selfSignedIdentity()
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), signer)
    reason = rejected(message, cache, senderNodeId=signer.nodeId)
    assert "unknown signer" in reason and "not permitted" in reason


def test_signerWhoseCertificateExpiredRejected(pki: Pki, cache: CertificateCache) -> None:
    """Section 7.1: the current time MUST be compared to the certificate
    validity period, also for a certificate learned while it was valid."""
    key, cert = makeLeaf(pki.root, notAfter=NOW + DAY)
    signer = identityOf(key, cert)
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), signer)
    verifyMessage(received(message), cache, NOW, senderNodeId=signer.nodeId)
    with pytest.raises(SignatureRejected, match="not valid now"):
        verifyMessage(received(message), cache, NOW + 2 * DAY, senderNodeId=signer.nodeId)


def test_unsignedMessageRejected(alice: PeerIdentity, cache: CertificateCache) -> None:
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    unsigned = dataclasses.replace(
        message,
        security_block=SecurityBlock(message.security_block.certificates, Signature.empty()),
    )
    assert "not signed" in rejected(unsigned, cache, senderNodeId=alice.nodeId)


def test_algorithmThatDoesNotFitTheKeyRejected(bob: PeerIdentity, cache: CertificateCache) -> None:
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), bob)
    signature = message.security_block.signature
    for algorithm in (
        SignatureAndHashAlgorithm(HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA),
        SignatureAndHashAlgorithm(HashAlgorithm.SHA1, SignatureAlgorithm.RSA),
        SignatureAndHashAlgorithm(HashAlgorithm.SHA384, SignatureAlgorithm.RSA),
    ):
        changed = dataclasses.replace(
            message,
            security_block=dataclasses.replace(
                message.security_block,
                signature=dataclasses.replace(signature, algorithm=algorithm),
            ),
        )
        rejected(changed, cache, senderNodeId=bob.nodeId)


def test_certHashForACertificateWithSeveralNodeIdsRejected(
    pki: Pki, cache: CertificateCache
) -> None:
    """Section 6.3.4: cert_hash only for a certificate with one Node-ID."""
    from reload.security.signing import signatureAlgorithmFor, signBytes
    from reload.wire.security_block import message_signature_input

    nodeIds = (randomNodeId(), randomNodeId())
    key, cert = makeLeaf(pki.root, nodeIds=nodeIds)
    signer = identityOf(key, cert)
    good = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), signer)
    identity = SignerIdentity.for_certificate(signer.certificateDer)
    contents = good.contents
    data = message_signature_input(good.header.overlay, 7, contents.encode(), identity)
    algorithm = signatureAlgorithmFor(key)
    signature = Signature(algorithm, identity, signBytes(key, algorithm, data))
    wrong = dataclasses.replace(
        good,
        security_block=SecurityBlock(good.security_block.certificates, signature),
    )
    assert "cert_hash_node_id" in rejected(wrong, cache, senderNodeId=nodeIds[0])


def test_unknownIdentityTypesRejected(alice: PeerIdentity, cache: CertificateCache) -> None:
    message = signMessage(header(randomNodeId()), MessageContents(PING_REQ, b""), alice)
    signature = message.security_block.signature
    md5 = dataclasses.replace(signature.identity, hash_algorithm=HashAlgorithm.MD5)
    odd = SignerIdentity(9, 0, b"\x01\x02")
    for identity in (md5, odd):
        changed = dataclasses.replace(
            message,
            security_block=dataclasses.replace(
                message.security_block,
                signature=dataclasses.replace(signature, identity=identity),
            ),
        )
        rejected(changed, cache, senderNodeId=alice.nodeId)


# -- the certificate cache ----------------------------------------------------


def test_cacheIsBoundedLeastRecentlyUsedFirst(pki: Pki) -> None:
    cache = CertificateCache(pki.policy(), maxSize=2)
    identities = [pki.identity() for _ in range(3)]
    cache.learn([identities[0].certificate, identities[1].certificate], NOW)
    assert cache.lookup(signerIdentityFor(identities[0])) is not None  # now most recent
    cache.learn([identities[2].certificate], NOW)
    assert len(cache) == 2
    assert identities[1].certificate not in cache
    assert identities[0].certificate in cache and identities[2].certificate in cache
    assert cache.lookup(signerIdentityFor(identities[1])) is None


def test_cacheLearnsOnlyTrustedCertificates(pki: Pki) -> None:
    cache = CertificateCache(pki.policy())
    good, bad = pki.identity(), selfSignedIdentity()
    rejections = cache.learn([good.certificate, bad.certificate, b"not DER"], NOW)
    assert good.certificate in cache and bad.certificate not in cache
    assert set(rejections) == {bad.certificateDer, b"not DER"}


def test_cacheTakesTlsVerifiedPeers(pki: Pki, alice: PeerIdentity) -> None:
    policy = pki.policy()
    cache = CertificateCache(policy)
    cache.add(policy.verify([alice.certificate], NOW))
    found = cache.lookup(signerIdentityFor(alice))
    assert found is not None and found[0].certificate == alice.certificate


# -- stored data (section 7.1) ------------------------------------------------


def _stored(
    identity: PeerIdentity, resourceId: bytes, value: object, storageTime: int = 1_900_000_000_000
) -> StoredData:
    signature = signData(resourceId, KIND, storageTime, value, identity)  # type: ignore[arg-type]
    return StoredData(storageTime, 3600, value, signature)  # type: ignore[arg-type]


@pytest.fixture
def dataCache(pki: Pki, alice: PeerIdentity, bob: PeerIdentity) -> CertificateCache:
    cache = CertificateCache(pki.policy())
    cache.learn([alice.certificate, bob.certificate], NOW)
    return cache


@pytest.mark.parametrize("who", ["alice", "bob"])
@pytest.mark.parametrize(
    "value",
    [
        DataValue(True, b"sip:alice@192.0.2.1"),
        ArrayEntry(3, DataValue(True, b"x")),
        DictionaryEntry(b"key", DataValue(True, b"y")),
        DataValue(False),
    ],
    ids=["single", "array", "dictionary", "deleted"],
)
def test_storedDataSignaturesVerify(
    who: str,
    value: object,
    alice: PeerIdentity,
    bob: PeerIdentity,
    dataCache: CertificateCache,
) -> None:
    signer = alice if who == "alice" else bob
    resourceId = randomNodeId()
    stored = _stored(signer, resourceId, value)
    # Through the wire, as a fetcher would see it.
    stored = StoredData.decode(stored.encode(), stored.model)
    result = verifyData(resourceId, KIND, stored, dataCache, NOW)
    assert result.userName == signer.userName and result.nodeId == signer.nodeId


def test_storedDataSignatureCoversResourceKindTimeAndValue(
    alice: PeerIdentity, dataCache: CertificateCache
) -> None:
    """Section 7.1: resource_id || kind || storage_time || StoredDataValue
    || SignerIdentity."""
    resourceId = randomNodeId()
    stored = _stored(alice, resourceId, DataValue(True, b"value"))
    verifyData(resourceId, KIND, stored, dataCache, NOW)
    attempts = [
        (randomNodeId(), KIND, stored),
        (resourceId, KIND + 1, stored),
        (resourceId, KIND, dataclasses.replace(stored, storage_time=stored.storage_time + 1)),
        (resourceId, KIND, dataclasses.replace(stored, value=DataValue(True, b"other"))),
        (resourceId, KIND, dataclasses.replace(stored, value=DataValue(False, b"value"))),
    ]
    for rid, kind, data in attempts:
        with pytest.raises(SignatureRejected, match="does not verify"):
            verifyData(rid, kind, data, dataCache, NOW)


def test_storedDataFromAnUnknownOrExpiredSignerRejected(
    pki: Pki, alice: PeerIdentity, dataCache: CertificateCache
) -> None:
    stranger = pki.identity()
    with pytest.raises(SignatureRejected, match="unknown signer"):
        verifyData(b"r" * 16, KIND, _stored(stranger, b"r" * 16, DataValue(True)), dataCache, NOW)
    later = NOW + datetime.timedelta(days=365)
    with pytest.raises(SignatureRejected, match="not valid now"):
        verifyData(b"r" * 16, KIND, _stored(alice, b"r" * 16, DataValue(True)), dataCache, later)


def test_unsignedStoredDataRejected(dataCache: CertificateCache) -> None:
    """Section 7.4.1.1: the anonymous form is not a signature."""
    stored = StoredData(1, 1, DataValue(False), Signature.empty())
    with pytest.raises(SignatureRejected, match="not signed"):
        verifyData(b"r" * 16, KIND, stored, dataCache, NOW)


def test_selfSignedMultiNodeIdentitySignsData(pki: Pki) -> None:
    signer = makeSelfSignedIdentity(OVERLAY, "erin@example.org", nodeIdCount=2)
    cache = CertificateCache(pki.policy(selfSignedPermitted=True))
    cache.learn([signer.certificate], datetime.datetime.now(datetime.UTC))
    value = DataValue(True, b"v")
    signature = signData(b"r" * 16, KIND, 5, value, signer, nodeId=signer.nodeIds[1])
    result = verifyData(
        b"r" * 16,
        KIND,
        StoredData(5, 60, value, signature),
        cache,
        datetime.datetime.now(datetime.UTC),
    )
    assert result.nodeId == signer.nodeIds[1]


def test_rsaSignatureIsPkcs1v15(bob: PeerIdentity) -> None:
    """Section 6.3.4: RSASSA-PKCS1-v1_5: deterministic, so signing twice
    gives the same bytes."""
    value = DataValue(True, b"v")
    first = signData(b"r" * 16, KIND, 5, value, bob)
    assert first.algorithm == RSA_SHA256
    assert signData(b"r" * 16, KIND, 5, value, bob).value == first.value


def test_otherKeysDoNotMatchCertificate(pki: Pki) -> None:
    """A PeerIdentity cannot hold another key than its certificate's, so a
    node cannot sign with a key its certificate does not vouch for."""
    identity = pki.identity()
    with pytest.raises(ValueError):
        PeerIdentity(identity.certificate, generateRsaKey(), (), identity.nodeIds, None)
    with pytest.raises(ValueError):
        PeerIdentity(identity.certificate, generateEcdsaKey(), (), identity.nodeIds, None)


def test_trustPolicyIsShared(pki: Pki) -> None:
    policy = pki.policy()
    assert CertificateCache(policy).trust is policy
    assert isinstance(policy, TrustPolicy)
    assert isinstance(pki.root.certificate, x509.Certificate)


def test_keysSignAndVerifyOnlyWithTheirOwnAlgorithm() -> None:
    """Each key family signs and verifies with its own algorithm only; a
    public key cannot sign, a signature cannot be checked with the other
    family's algorithm, and a tampered one is rejected."""
    from reload.security.signing import signatureAlgorithmFor, signBytes, verifyBytes

    ecdsa = SignatureAndHashAlgorithm(HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA)
    data = b"section 6.3.4"
    for key, own, other in ((generateEcdsaKey(), ecdsa, RSA_SHA256),
                            (generateRsaKey(), RSA_SHA256, ecdsa)):  # fmt: skip
        assert signatureAlgorithmFor(key) == own
        signature = signBytes(key, own, data)
        verifyBytes(key.public_key(), own, signature, data)
        with pytest.raises(SignatureRejected, match="does not verify"):
            verifyBytes(key.public_key(), own, signature, data + b"!")
        with pytest.raises(SignatureRejected, match="does not fit"):
            verifyBytes(key.public_key(), other, signature, data)
        with pytest.raises(ValueError, match="cannot sign"):
            signBytes(key, other, data)
        with pytest.raises(ValueError, match="cannot sign"):
            signBytes(key.public_key(), own, data)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot sign"):
        signatureAlgorithmFor(generateEcdsaKey().public_key())  # type: ignore[arg-type]
