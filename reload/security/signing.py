"""Signatures over messages (RFC 6940 section 6.3.4) and stored data
(section 7.1), and the certificates signers are found by.

Every message is signed by its originator over ``overlay || transaction_id
|| MessageContents || SignerIdentity`` (section 6.3.4), and every stored
value by its storer over ``resource_id || kind || storage_time ||
StoredDataValue || SignerIdentity`` (section 7.1).  The exact bytes come from
the codec (:meth:`reload.wire.message.Message.signature_input`,
:func:`reload.wire.storage.stored_data_signature_input`); this module signs
and verifies them.

Algorithms: RSASSA-PKCS1-v1_5 with SHA-256, which section 6.3.4 makes
mandatory, and ECDSA (P-256 with SHA-256; P-384 and P-521 with SHA-384 and
SHA-512), the TLS SignatureAndHashAlgorithm values {4,1} and {4,3} etc.  As
in TLS (RFC 5246 section 4.7), an ECDSA signature_value is the DER
``ECDSA-Sig-Value``.

Signer identities: ``cert_hash`` (SHA-256 of the DER certificate) for a
certificate with one Node-ID, ``cert_hash_node_id`` (SHA-256 of Node-ID ||
certificate) for a certificate with several, as section 6.3.4 requires.

A verifier finds the signer's certificate in a :class:`CertificateCache`,
which learns certificates from security blocks (section 6.3.4: the bucket
carries "all the certificates necessary to verify every signature") after
:class:`~reload.security.trust.TrustPolicy` accepted them, and from TLS
links.  Everything that goes wrong is a :class:`SignatureRejected`.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from reload.security.certificates import PeerIdentity
from reload.security.keys import PrivateKey
from reload.security.trust import CertificateRejected, TrustPolicy, VerifiedPeer
from reload.wire.header import DestinationType, ForwardingHeader
from reload.wire.message import Message, MessageContents
from reload.wire.security_block import (
    RSA_SHA256,
    CertificateType,
    GenericCertificate,
    HashAlgorithm,
    SecurityBlock,
    Signature,
    SignatureAlgorithm,
    SignatureAndHashAlgorithm,
    SignerIdentity,
    SignerIdentityType,
    message_signature_input,
)
from reload.wire.storage import StoredData, StoredDataValue, stored_data_signature_input

__all__ = [
    "CertificateCache",
    "MessageSigner",
    "SignatureRejected",
    "VerifiedSigner",
    "makeMessageSignature",
    "messageSourceNodeId",
    "signBytes",
    "signData",
    "signMessage",
    "signatureAlgorithmFor",
    "signerIdentityFor",
    "verifyBytes",
    "verifyData",
    "verifyMessage",
]

_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.SHA256: hashes.SHA256,
    HashAlgorithm.SHA384: hashes.SHA384,
    HashAlgorithm.SHA512: hashes.SHA512,
}
# Hashes a SignerIdentity may name (certificate hashes, not signatures);
# MD5 is not taken.
_IDENTITY_HASHES: dict[int, str] = {
    HashAlgorithm.SHA1: "sha1",
    HashAlgorithm.SHA224: "sha224",
    HashAlgorithm.SHA256: "sha256",
    HashAlgorithm.SHA384: "sha384",
    HashAlgorithm.SHA512: "sha512",
}
_CURVE_HASHES: dict[str, int] = {
    ec.SECP256R1.name: HashAlgorithm.SHA256,
    ec.SECP384R1.name: HashAlgorithm.SHA384,
    ec.SECP521R1.name: HashAlgorithm.SHA512,
}
_PKCS1 = padding.PKCS1v15()
_CACHE_SIZE = 1024

# One instance per hash algorithm, built once: every signature made or
# checked would otherwise build its own.
_HASH_INSTANCES: dict[int, hashes.HashAlgorithm] = {a: h() for a, h in _HASHES.items()}
_ECDSA_INSTANCES: dict[int, ec.ECDSA] = {a: ec.ECDSA(h) for a, h in _HASH_INSTANCES.items()}
#: What an EC key of each curve signs with (:func:`signatureAlgorithmFor`).
_ECDSA_ALGORITHMS = {
    digest: SignatureAndHashAlgorithm(digest, SignatureAlgorithm.ECDSA)
    for digest in _CURVE_HASHES.values()
}

_RSA, _EC, _RSA_PUBLIC, _EC_PUBLIC = "rsa", "ec", "rsa public", "ec public"
#: Key family by the key's class.  ``isinstance`` against cryptography's
#: abstract key classes goes through the ABC machinery and, in a running
#: peer, costs microseconds per call; a node signs and checks with a handful
#: of key classes, each looked at once.
_FAMILIES: dict[type, str | None] = {}


def _family(key: object) -> str | None:
    """The kind of ``key``: an RSA or EC private key (:data:`_RSA`,
    :data:`_EC`), an RSA or EC public key, or None."""
    cls = type(key)
    try:
        return _FAMILIES[cls]
    except KeyError:
        pass
    family: str | None = None
    if isinstance(key, rsa.RSAPrivateKey):
        family = _RSA
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        family = _EC
    elif isinstance(key, rsa.RSAPublicKey):
        family = _RSA_PUBLIC
    elif isinstance(key, ec.EllipticCurvePublicKey):
        family = _EC_PUBLIC
    if len(_FAMILIES) < 64:
        _FAMILIES[cls] = family
    return family


class SignatureRejected(Exception):
    """A signature that does not verify, or whose signer is unknown, not
    trusted, or not the node the message comes from; ``reason`` says
    which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedSigner:
    """Who made a signature that verified: the signer's verified
    certificate and the Node-ID it signed as (the one a cert_hash_node_id
    identity names, else the certificate's only Node-ID)."""

    peer: VerifiedPeer
    nodeId: bytes
    identity: SignerIdentity

    @property
    def certificate(self) -> x509.Certificate:
        return self.peer.certificate

    @property
    def nodeIds(self) -> tuple[bytes, ...]:
        return self.peer.nodeIds

    @property
    def userName(self) -> str | None:
        return self.peer.userName


# -- algorithms and raw signatures --------------------------------------------


def signatureAlgorithmFor(key: PrivateKey) -> SignatureAndHashAlgorithm:
    """The algorithm a node signs with: {sha256, rsa} for an RSA key (the
    mandatory one, section 6.3.4), {sha256, ecdsa} for P-256 (SHA-384 and
    SHA-512 for P-384 and P-521)."""
    family = _family(key)
    if family == _RSA:
        return RSA_SHA256
    if family == _EC:
        curve = cast(ec.EllipticCurvePrivateKey, key).curve.name
        digest = _CURVE_HASHES.get(curve)
        if digest is None:
            raise ValueError(f"no signature algorithm for curve {curve}")
        return _ECDSA_ALGORITHMS[digest]
    raise TypeError(f"{type(key).__name__} keys cannot sign")


def signBytes(key: PrivateKey, algorithm: SignatureAndHashAlgorithm, data: bytes) -> bytes:
    """The signature_value of ``data`` with ``key`` under ``algorithm``."""
    digest = _HASH_INSTANCES.get(algorithm.hash_algorithm)
    if digest is None:
        raise ValueError(f"hash algorithm {algorithm.hash_algorithm} is not supported")
    family = _family(key)
    if family == _RSA and algorithm.signature_algorithm == SignatureAlgorithm.RSA:
        return cast(rsa.RSAPrivateKey, key).sign(data, _PKCS1, digest)
    if family == _EC and algorithm.signature_algorithm == SignatureAlgorithm.ECDSA:
        ecdsa = _ECDSA_INSTANCES[algorithm.hash_algorithm]
        return cast(ec.EllipticCurvePrivateKey, key).sign(data, ecdsa)
    raise ValueError(f"a {type(key).__name__} cannot sign with {algorithm}")


def verifyBytes(
    publicKey: object, algorithm: SignatureAndHashAlgorithm, signature: bytes, data: bytes
) -> None:
    """Check ``signature`` over ``data``; raise :class:`SignatureRejected`
    if it is wrong or the algorithm does not fit the key."""
    digest = _HASH_INSTANCES.get(algorithm.hash_algorithm)
    if digest is None:
        raise SignatureRejected(f"hash algorithm {algorithm.hash_algorithm} is not accepted")
    family = _family(publicKey)
    try:
        if family == _RSA_PUBLIC and algorithm.signature_algorithm == SignatureAlgorithm.RSA:
            cast(rsa.RSAPublicKey, publicKey).verify(signature, data, _PKCS1, digest)
            return
        if family == _EC_PUBLIC and algorithm.signature_algorithm == SignatureAlgorithm.ECDSA:
            ecdsa = _ECDSA_INSTANCES[algorithm.hash_algorithm]
            cast(ec.EllipticCurvePublicKey, publicKey).verify(signature, data, ecdsa)
            return
    except InvalidSignature:
        raise SignatureRejected("the signature does not verify") from None
    except Exception as exc:
        raise SignatureRejected(f"the signature cannot be checked: {exc}") from None
    raise SignatureRejected(
        f"signature algorithm {algorithm.signature_algorithm} does not fit the signer's"
        f" {type(publicKey).__name__}"
    )


# -- signer identities --------------------------------------------------------


@lru_cache(maxsize=64)
def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def signerIdentityFor(
    identity: PeerIdentity,
    nodeId: bytes | None = None,
    hashAlgorithm: int = HashAlgorithm.SHA256,
) -> SignerIdentity:
    """Section 6.3.4: cert_hash for a certificate with one Node-ID,
    cert_hash_node_id with ``nodeId`` (default: the first) for one with
    several."""
    der = _der(identity.certificate)
    if nodeId is not None and nodeId not in identity.nodeIds:
        raise ValueError(f"Node-ID {nodeId.hex()} is not one of the certificate's")
    if len(identity.nodeIds) == 1:
        return _identityOf(der, hashAlgorithm, None)
    return _identityOf(der, hashAlgorithm, nodeId or identity.nodeId)


@lru_cache(maxsize=64)
def _identityOf(der: bytes, hashAlgorithm: int, nodeId: bytes | None) -> SignerIdentity:
    """A node signs every message with the same identity: hash its
    certificate once, not per message."""
    if nodeId is None:
        return SignerIdentity.for_certificate(der, hashAlgorithm)
    return SignerIdentity.for_certificate(der, hashAlgorithm, nodeId)


def _signature(identity: PeerIdentity, signerIdentity: SignerIdentity, data: bytes) -> Signature:
    algorithm = signatureAlgorithmFor(identity.privateKey)
    return Signature(algorithm, signerIdentity, signBytes(identity.privateKey, algorithm, data))


# -- the certificate cache ----------------------------------------------------

_IdentityKey = tuple[int, int, bytes]  # identity type, hash algorithm, hash


@dataclass(frozen=True)
class _Known:
    peer: VerifiedPeer
    keys: tuple[_IdentityKey, ...]


class CertificateCache:
    """Verified certificates, found by the SignerIdentity that names them.

    Bounded (least recently used go first).  Certificates enter only
    through ``trust``: :meth:`learn` verifies the leaf certificates of a
    security block's bucket (with the bucket's CA certificates as
    intermediates), :meth:`add` takes a peer verified elsewhere (a TLS
    link).  Each is indexed by its cert_hash and cert_hash_node_id values
    under every accepted hash algorithm, so a lookup is one dict access.
    """

    def __init__(self, trust: TrustPolicy, maxSize: int = _CACHE_SIZE) -> None:
        if maxSize < 1:
            raise ValueError("the cache holds at least one certificate")
        self.trust = trust
        self.maxSize = maxSize
        self._byDer: OrderedDict[bytes, _Known] = OrderedDict()
        self._byIdentity: dict[_IdentityKey, tuple[bytes, bytes | None]] = {}
        # CA certificates seen in buckets: not signers, no need to parse
        # them again for every message that carries them.
        self._issuerDers: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._byDer)

    def __contains__(self, certificate: object) -> bool:
        if isinstance(certificate, x509.Certificate):
            certificate = _der(certificate)
        return certificate in self._byDer

    def add(self, peer: VerifiedPeer) -> None:
        """Remember a certificate ``trust`` (or a TLS link using it)
        verified."""
        der = peer.certificateDer
        if der in self._byDer:
            self._byDer.move_to_end(der)
            return
        keys: list[_IdentityKey] = []
        for algorithm, name in _IDENTITY_HASHES.items():
            certKey = (SignerIdentityType.CERT_HASH, algorithm, hashlib.new(name, der).digest())
            keys.append(certKey)
            self._byIdentity[certKey] = (der, None)
            for nodeId in peer.nodeIds:
                digest = hashlib.new(name, nodeId + der).digest()
                nodeKey = (SignerIdentityType.CERT_HASH_NODE_ID, algorithm, digest)
                keys.append(nodeKey)
                self._byIdentity[nodeKey] = (der, nodeId)
        self._byDer[der] = _Known(peer, tuple(keys))
        while len(self._byDer) > self.maxSize:
            _, old = self._byDer.popitem(last=False)
            for key in old.keys:
                self._byIdentity.pop(key, None)

    def learn(
        self,
        certificates: Iterable[GenericCertificate | x509.Certificate | bytes],
        now: datetime.datetime,
    ) -> dict[bytes, CertificateRejected]:
        """Verify and remember the node certificates of a security block's
        bucket (section 6.3.4), the bucket's CA certificates serving as
        intermediates.  Certificates already known are skipped; non-X.509
        entries are ignored.  Returns the rejected leaves (DER -> reason);
        rejecting one does not stop the others."""
        ders: list[bytes] = []
        for item in certificates:
            if isinstance(item, GenericCertificate):
                if item.type == CertificateType.X509:
                    ders.append(item.certificate)
            elif isinstance(item, x509.Certificate):
                ders.append(_der(item))
            else:
                ders.append(item)
        rejected: dict[bytes, CertificateRejected] = {}
        known, issuerDers = self._byDer, self._issuerDers
        if all(der in known or der in issuerDers for der in ders):
            return rejected
        parsed: list[tuple[bytes, x509.Certificate]] = []
        for der in ders:
            try:
                parsed.append((der, x509.load_der_x509_certificate(der)))
            except ValueError as exc:
                rejected[der] = CertificateRejected(f"not a DER certificate: {exc}")
        issuers = [cert for _, cert in parsed if _isCa(cert)]
        if len(issuerDers) > self.maxSize:
            issuerDers.clear()
        issuerDers.update(der for der, cert in parsed if cert in issuers)
        for der, cert in parsed:
            if der in self._byDer or cert in issuers:
                continue
            try:
                self.add(self.trust.verify([cert, *issuers], now))
            except CertificateRejected as exc:
                rejected[der] = exc
        return rejected

    def lookup(self, identity: SignerIdentity) -> tuple[VerifiedPeer, bytes | None] | None:
        """The certificate ``identity`` names and, for cert_hash_node_id,
        the Node-ID it names; None if unknown."""
        found = self._byIdentity.get(
            (identity.identity_type, identity.hash_algorithm, identity.value)
        )
        if found is None:
            return None
        der, nodeId = found
        known = self._byDer[der]
        self._byDer.move_to_end(der)
        return known.peer, nodeId

    def signer(
        self,
        identity: SignerIdentity,
        now: datetime.datetime,
        bucketRejections: dict[bytes, CertificateRejected] | None = None,
    ) -> VerifiedSigner:
        """The :class:`VerifiedSigner` for ``identity`` at ``now``; raises
        :class:`SignatureRejected` if it is unknown, of a form section 6.3.4
        does not allow, or its certificate is not valid at ``now`` (section
        7.1)."""
        kind = identity.identity_type
        if kind not in (SignerIdentityType.CERT_HASH, SignerIdentityType.CERT_HASH_NODE_ID):
            raise SignatureRejected(f"signer identity type {kind} cannot sign (section 6.3.4)")
        if identity.hash_algorithm not in _IDENTITY_HASHES:
            raise SignatureRejected(
                f"signer identity hash algorithm {identity.hash_algorithm} is not accepted"
            )
        found = self.lookup(identity)
        if found is None:
            reason = f"unknown signer {identity.value.hex()}"
            if bucketRejections:
                first = next(iter(bucketRejections.values()))
                reason += f" (a certificate of the message was rejected: {first.reason})"
            raise SignatureRejected(reason)
        peer, nodeId = found
        if nodeId is None:
            if len(peer.nodeIds) != 1:
                raise SignatureRejected(
                    f"cert_hash names a certificate with {len(peer.nodeIds)} Node-IDs;"
                    " section 6.3.4 requires cert_hash_node_id"
                )
            nodeId = peer.nodeIds[0]
        if not peer.isValidAt(now):
            raise SignatureRejected(
                "the signer's certificate is not valid now (section 7.1), valid"
                f" {peer.validFrom} to {peer.validUntil}"
            )
        return VerifiedSigner(peer, nodeId, identity)


def _isCa(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
    except ValueError:
        return False


# -- messages (section 6.3.4) -------------------------------------------------


def makeMessageSignature(
    overlay: int,
    transactionId: int,
    contents: MessageContents,
    identity: PeerIdentity,
    nodeId: bytes | None = None,
) -> Signature:
    """The Signature over ``overlay || transaction_id || MessageContents ||
    SignerIdentity`` (section 6.3.4) by ``identity`` as ``nodeId``."""
    signerIdentity = signerIdentityFor(identity, nodeId)
    data = message_signature_input(overlay, transactionId, contents.encode(), signerIdentity)
    return _signature(identity, signerIdentity, data)


def signMessage(
    header: ForwardingHeader,
    contents: MessageContents,
    identity: PeerIdentity,
    *,
    nodeId: bytes | None = None,
    certificates: Iterable[x509.Certificate | bytes] = (),
) -> Message:
    """The message ``header`` + ``contents`` signed by ``identity``.

    The security block carries the signer's certificate, its chain (not the
    root, which every node has from the configuration) and
    ``certificates`` -- e.g. the certificates of the stored values a
    FetchAns returns (section 6.3.4: "all the certificates necessary to
    verify every signature").
    """
    signature = makeMessageSignature(
        header.overlay, header.transaction_id, contents, identity, nodeId
    )
    ders: dict[bytes, None] = {}
    for cert in (identity.certificate, *identity.chain, *certificates):
        ders.setdefault(cert if isinstance(cert, bytes) else _der(cert))
    block = SecurityBlock(
        tuple(GenericCertificate(CertificateType.X509, der) for der in ders), signature
    )
    return Message(header, contents, block)


class MessageSigner:
    """Signs every message of one node (section 6.3.4) with what all its
    signatures share worked out once: the signature algorithm of its key,
    its SignerIdentity (the certificate hash), and the certificates of its
    security block (its own, its chain, ``certificates``).

    :func:`signMessage` does the same for a single message; a node that
    signs every message it originates keeps one of these instead of
    hashing and encoding its certificate for each.
    """

    __slots__ = ("_bucket", "_ders", "_key", "algorithm", "identity", "signerIdentity")

    def __init__(
        self,
        identity: PeerIdentity,
        nodeId: bytes | None = None,
        certificates: Iterable[x509.Certificate | bytes] = (),
    ) -> None:
        self.identity = identity
        self.signerIdentity = signerIdentityFor(identity, nodeId)
        self.algorithm = signatureAlgorithmFor(identity.privateKey)
        self._key = identity.privateKey
        ders: dict[bytes, None] = {}
        for cert in (identity.certificate, *identity.chain, *certificates):
            ders.setdefault(cert if isinstance(cert, bytes) else _der(cert))
        self._ders = ders
        self._bucket = tuple(GenericCertificate(CertificateType.X509, der) for der in ders)

    def sign(
        self, header: ForwardingHeader, contents: MessageContents, carried: Iterable[bytes] = ()
    ) -> Message:
        """``header`` + ``contents`` signed; the DER certificates
        ``carried`` (a FetchAns's value signers) join the bucket."""
        data = message_signature_input(
            header.overlay, header.transaction_id, contents.encode(), self.signerIdentity
        )
        signature = Signature(
            self.algorithm, self.signerIdentity, signBytes(self._key, self.algorithm, data)
        )
        bucket = self._bucket
        extra = [der for der in dict.fromkeys(carried) if der not in self._ders]
        if extra:
            bucket = (*bucket, *(GenericCertificate(CertificateType.X509, der) for der in extra))
        return Message(header, contents, SecurityBlock(bucket, signature))


def messageSourceNodeId(header: ForwardingHeader, senderNodeId: bytes | None) -> bytes | None:
    """The Node-ID a message comes from: the first via-list entry if the
    message was forwarded (section 6.3.2: each peer appends the node it
    received the message from), else the link peer that sent it.  None
    when that cannot be told (the first via entry is an opaque,
    compressed id, section 6.3.2.2, or no link peer is given)."""
    if header.via_list:
        first = header.via_list[0]
        if first.type == DestinationType.NODE and not first.compressed:
            return first.value
        return None
    return senderNodeId


def verifyMessage(
    message: Message,
    certificates: CertificateCache,
    now: datetime.datetime,
    *,
    senderNodeId: bytes | None = None,
    sourceNodeId: bytes | None = None,
    checkSource: bool = True,
) -> VerifiedSigner:
    """Check a received message's signature (section 6.3.4: the
    destination "MUST verify the signature and the authorizing
    certificate").

    The certificates of its security block are learned first.  The signer
    must be known and trusted at ``now``, the signature must verify, and
    the signer must be the node the message comes from: ``sourceNodeId``
    if given (a response to a request sent to a Node-ID MUST come from
    that Node-ID, section 6.3.4), else :func:`messageSourceNodeId` with
    ``senderNodeId``, the verified Node-ID of the link peer.  A peer that
    forwarded with per-transaction state instead of the via list hides the
    originator; the caller must then pass ``sourceNodeId``, or
    ``checkSource=False`` and check the signer itself (e.g. section 6.3.4
    rule 2 for responses to a Resource-ID).  Raises
    :class:`SignatureRejected`.
    """
    try:
        block = message.security_block
        signature = block.signature
        if signature.is_anonymous:
            raise SignatureRejected("the message is not signed (section 6.3.4)")
        rejections = certificates.learn(block.certificates, now)
        signer = certificates.signer(signature.identity, now, rejections)
        if checkSource:
            source = sourceNodeId
            if source is None:
                source = messageSourceNodeId(message.header, senderNodeId)
            if source is None:
                raise SignatureRejected("the Node-ID the message comes from is unknown")
            if signer.nodeId != source:
                raise SignatureRejected(
                    f"the message comes from Node-ID {source.hex()} but is signed by"
                    f" {signer.nodeId.hex()}"
                )
        data = message.signature_input(signature.identity)
        verifyBytes(signer.certificate.public_key(), signature.algorithm, signature.value, data)
    except SignatureRejected:
        raise
    except Exception as exc:
        raise SignatureRejected(
            f"the signature cannot be checked: {type(exc).__name__}: {exc}"
        ) from exc
    return signer


# -- stored data (section 7.1) ------------------------------------------------


def signData(
    resourceId: bytes,
    kind: int,
    storageTime: int,
    value: StoredDataValue,
    identity: PeerIdentity,
    *,
    nodeId: bytes | None = None,
) -> Signature:
    """The Signature of a stored value (section 7.1) over ``resource_id ||
    kind || storage_time || StoredDataValue || SignerIdentity``;
    ``storageTime`` in milliseconds since the epoch, as in StoredData."""
    signerIdentity = signerIdentityFor(identity, nodeId)
    data = stored_data_signature_input(resourceId, kind, storageTime, value, signerIdentity)
    return _signature(identity, signerIdentity, data)


def verifyData(
    resourceId: bytes,
    kind: int,
    storedData: StoredData,
    certificates: CertificateCache,
    now: datetime.datetime,
) -> VerifiedSigner:
    """Check the signature of ``storedData`` stored under ``resourceId``
    and ``kind`` (section 7.1): a known signer whose certificate is valid
    at ``now`` ("signatures are not considered valid after the signing
    certificate expires").  Whether that signer may write there is the
    access policy's question (section 7.3), answered with the returned
    user name and Node-ID.  The unsigned synthetic values of section
    7.4.2.2 are rejected here; a fetcher recognises them before calling.
    """
    try:
        signature = storedData.signature
        if signature.is_anonymous:
            raise SignatureRejected("the stored value is not signed (section 7.1)")
        signer = certificates.signer(signature.identity, now)
        data = storedData.signature_input(resourceId, kind)
        verifyBytes(signer.certificate.public_key(), signature.algorithm, signature.value, data)
    except SignatureRejected:
        raise
    except Exception as exc:
        raise SignatureRejected(
            f"the signature cannot be checked: {type(exc).__name__}: {exc}"
        ) from exc
    return signer
