"""Reload URIs, self-signed Node-IDs and RELOAD certificates
(RFC 6940 sections 11.3, 11.3.1, 14.15)."""

from __future__ import annotations

import datetime
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given
from hypothesis import strategies as st

from reload.security.certificates import (
    CERTIFICATE_FILE,
    PRIVATE_KEY_FILE,
    PeerIdentity,
    issueCertificate,
    loadPeerIdentity,
    makeCertificateAuthority,
    makeSelfSignedCertificate,
    makeSelfSignedIdentity,
    nodeIdsOf,
    nodeUri,
    parseNodeUri,
    savePeerIdentity,
    selfSignedNodeId,
    selfSignedNodeIds,
    subjectPublicKeyInfo,
    userNameOf,
)
from reload.security.keys import generateEcdsaKey, generateRsaKey
from tests.security.certs import NOW, OVERLAY, makeLeaf

_OVERLAY_CHARS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~", min_size=1
)

# -- reload URIs (section 14.15) ----------------------------------------------


def test_nodeUriIsHexOfOneNodeDestination() -> None:
    """Section 14.15: reload:// + hex(Destination List) + @ + overlay + /;
    a node_id Destination is type 0x01, length, Node-ID (section 6.3.2.2)."""
    nodeId = bytes(range(16))
    assert nodeUri(nodeId, OVERLAY) == (
        "reload://0110000102030405060708090a0b0c0d0e0f@overlay.example.org/"
    )


@given(st.binary(min_size=16, max_size=20), _OVERLAY_CHARS)
def test_nodeUriRoundTrips(nodeId: bytes, overlay: str) -> None:
    assert parseNodeUri(nodeUri(nodeId, overlay)) == (nodeId, overlay)


def test_parseNodeUriAcceptsUpperCase() -> None:
    """HEXDIG and the scheme are case-insensitive (RFC 5234, RFC 3986)."""
    assert parseNodeUri("RELOAD://0102ABCD@o/") == (b"\xab\xcd", "o")


@pytest.mark.parametrize(
    "uri",
    [
        "http://0102abcd@o/",
        "reload://0102abcd@o",  # no slash
        "reload://0102abc@o/",  # odd number of digits
        "reload://0102abcd@o/0102",  # a specifier: a data value, not a node
        "reload://0102abcd0102abcd@o/",  # two destinations
        "reload://0203020102@o/",  # a resource destination
        "reload://0103abcd@o/",  # length beyond the data
        "reload://8001@o/",  # a compressed (opaque) destination
        "reload://0100@o/",  # empty Node-ID
        "reload://@o/",
        "reload://0102abcd@/",
        "reload://0102abcd@o/x/",
        "reload://0102abcd@o p/",
    ],
)
def test_parseNodeUriRejectsWhatIsNotANodeUri(uri: str) -> None:
    with pytest.raises(ValueError):
        parseNodeUri(uri)


def test_nodeUriRefusesBadInput() -> None:
    with pytest.raises(ValueError):
        nodeUri(b"", OVERLAY)
    with pytest.raises(ValueError):
        nodeUri(b"\x01" * 16, "bad/overlay")


# -- self-signed Node-IDs (section 11.3.1) ------------------------------------


def test_selfSignedNodeIdIsHighOrderBitsOfKeyDigest() -> None:
    """Section 11.3.1: the digest of the DER subjectPublicKeyInfo, high-order
    bits."""
    key = generateEcdsaKey().public_key()
    spki = subjectPublicKeyInfo(key)
    assert selfSignedNodeId(key) == hashlib.sha1(spki).digest()[:16]
    assert selfSignedNodeId(key, "sha256", 20) == hashlib.sha256(spki).digest()[:20]


def test_selfSignedNodeIdsWithIndexPrependFourByteIndex() -> None:
    """Section 11.3.1: with several Node-IDs, the index (1..n) is prepended
    as a 4-byte big-endian integer."""
    key = generateEcdsaKey().public_key()
    spki = subjectPublicKeyInfo(key)
    assert selfSignedNodeIds(key, 3) == tuple(
        hashlib.sha1(i.to_bytes(4, "big") + spki).digest()[:16] for i in (1, 2, 3)
    )
    assert selfSignedNodeIds(key, 1) == (selfSignedNodeId(key),)


def test_selfSignedNodeIdRefusesImpossibleRequests() -> None:
    key = generateEcdsaKey().public_key()
    with pytest.raises(ValueError):
        selfSignedNodeId(key, "sha1", 21)  # SHA-1 has 20 bytes
    with pytest.raises(ValueError):
        selfSignedNodeId(key, "nosuchhash")
    with pytest.raises(ValueError):
        selfSignedNodeId(key, index=0)


# -- self-signed certificates -------------------------------------------------


def _san(cert: x509.Certificate) -> x509.Extension[x509.SubjectAlternativeName]:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_selfSignedCertificateContents() -> None:
    """Sections 11.3 and 11.3.1: empty subject, SAN with the key-derived
    Node-ID's reload URI and the user name only (critical, as RFC 5280
    wants with an empty subject), valid self-signature."""
    key = generateEcdsaKey()
    cert = makeSelfSignedCertificate(key, OVERLAY, "carol@example.org", now=NOW)
    assert cert.subject == x509.Name([]) and cert.issuer == x509.Name([])
    cert.verify_directly_issued_by(cert)
    san = _san(cert)
    assert san.critical
    assert list(san.value) == [
        x509.UniformResourceIdentifier(nodeUri(selfSignedNodeId(key.public_key()), OVERLAY)),
        x509.RFC822Name("carol@example.org"),
    ]
    assert nodeIdsOf(cert, OVERLAY) == (selfSignedNodeId(key.public_key()),)
    assert userNameOf(cert) == "carol@example.org"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.not_valid_before_utc <= NOW <= cert.not_valid_after_utc


def test_selfSignedCertificateWithSeveralNodeIdsAndDigest() -> None:
    key = generateEcdsaKey()
    cert = makeSelfSignedCertificate(
        key, OVERLAY, None, digest="sha256", nodeIdLength=20, nodeIdCount=2
    )
    assert nodeIdsOf(cert, OVERLAY) == selfSignedNodeIds(key.public_key(), 2, "sha256", 20)
    assert userNameOf(cert) is None


# -- enrollment server certificates (section 11.3) ----------------------------


def test_certificateAuthority() -> None:
    _key, ca = makeCertificateAuthority(OVERLAY)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    ca.verify_directly_issued_by(ca)


def test_issuedCertificateContents() -> None:
    """Section 11.3: SAN = one reload URI per Node-ID + one rfc822Name, and
    nothing else; empty subject DN; RSA keys get keyEncipherment rather
    than keyAgreement."""
    caKey, ca = makeCertificateAuthority(OVERLAY)
    nodeIds = [b"\x01" * 16, b"\x02" * 16]
    userKey = generateRsaKey()
    cert = issueCertificate(caKey, ca, userKey.public_key(), nodeIds, "alice@example.org", OVERLAY)
    cert.verify_directly_issued_by(ca)
    assert cert.subject == x509.Name([])
    assert cert.issuer == ca.subject
    assert [type(n) for n in _san(cert).value] == [
        x509.UniformResourceIdentifier,
        x509.UniformResourceIdentifier,
        x509.RFC822Name,
    ]
    assert nodeIdsOf(cert, OVERLAY) == tuple(nodeIds)
    assert userNameOf(cert) == "alice@example.org"
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_agreement
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_issuedCertificateNeverOutlivesItsCa() -> None:
    caKey, ca = makeCertificateAuthority(OVERLAY, validity=datetime.timedelta(days=10))
    cert = issueCertificate(
        caKey,
        ca,
        generateEcdsaKey().public_key(),
        [b"\x01" * 16],
        "a@b",
        OVERLAY,
        datetime.timedelta(days=365),
    )
    assert cert.not_valid_after_utc <= ca.not_valid_after_utc


def test_issueRefusesDuplicateOrMissingNodeIds() -> None:
    caKey, ca = makeCertificateAuthority(OVERLAY)
    public = generateEcdsaKey().public_key()
    with pytest.raises(ValueError):
        issueCertificate(caKey, ca, public, [], "a@b", OVERLAY)
    with pytest.raises(ValueError):
        issueCertificate(caKey, ca, public, [b"\x01" * 16] * 2, "a@b", OVERLAY)
    with pytest.raises(ValueError):
        issueCertificate(caKey, ca, public, [b"\x01" * 16], "a\x00b", OVERLAY)


# -- reading ------------------------------------------------------------------


def test_nodeIdsOfIsStrict() -> None:
    _, other = makeLeaf(None, overlay="other.example.org")
    with pytest.raises(ValueError, match="is for overlay"):
        nodeIdsOf(other, OVERLAY)
    _, bare = makeLeaf(None, san=False)
    with pytest.raises(ValueError, match="no subjectAltName"):
        nodeIdsOf(bare, OVERLAY)
    with pytest.raises(ValueError, match="no subjectAltName"):
        userNameOf(bare)
    _, noUri = makeLeaf(None, uris=[])
    with pytest.raises(ValueError, match="no reload URI"):
        nodeIdsOf(noUri, OVERLAY)


def test_overlayNamesCompareCaseInsensitively() -> None:
    _, cert = makeLeaf(None, overlay="Overlay.Example.ORG")
    assert len(nodeIdsOf(cert, OVERLAY)) == 1


def test_userNameOfRefusesSeveral() -> None:
    _, cert = makeLeaf(None, extraNames=[x509.RFC822Name("b@x")])
    with pytest.raises(ValueError, match="single"):
        userNameOf(cert)


# -- PeerIdentity -------------------------------------------------------------


def test_peerIdentityFromCertificate() -> None:
    identity = makeSelfSignedIdentity(OVERLAY, "dave@example.org", nodeIdCount=2)
    assert identity.nodeIds == nodeIdsOf(identity.certificate, OVERLAY)
    assert identity.nodeId == identity.nodeIds[0]
    assert identity.userName == "dave@example.org"


def test_peerIdentityRefusesAForeignKey() -> None:
    identity = makeSelfSignedIdentity(OVERLAY, None)
    with pytest.raises(ValueError, match="does not belong"):
        PeerIdentity(identity.certificate, generateEcdsaKey(), (), identity.nodeIds, None)
    with pytest.raises(ValueError, match="at least one Node-ID"):
        PeerIdentity(identity.certificate, identity.privateKey, (), (), None)


def test_peerIdentitySavedAndLoaded(tmp_path: Path) -> None:
    caKey, ca = makeCertificateAuthority(OVERLAY)
    key = generateEcdsaKey()
    cert = issueCertificate(caKey, ca, key.public_key(), [b"\x07" * 16], "e@x", OVERLAY)
    identity = PeerIdentity.fromCertificate(cert, key, OVERLAY, chain=[ca])
    directory = tmp_path / "data"
    savePeerIdentity(identity, directory)
    assert stat.S_IMODE((directory / PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert (directory / CERTIFICATE_FILE).read_bytes().count(b"BEGIN CERTIFICATE") == 2
    loaded = loadPeerIdentity(directory, OVERLAY)
    assert loaded.certificate == cert
    assert loaded.chain == (ca,)
    assert loaded.nodeIds == (b"\x07" * 16,)
    assert loaded.userName == "e@x"
    assert subjectPublicKeyInfo(loaded.privateKey.public_key()) == subjectPublicKeyInfo(
        key.public_key()
    )


def test_loadingAMissingIdentityRaises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        loadPeerIdentity(tmp_path, OVERLAY)
