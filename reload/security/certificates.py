"""RELOAD certificates: reload URIs, Node-IDs, and the identity a node holds.

RFC 6940 section 11.3 says what a RELOAD certificate holds: in the
subjectAltName, one reload URI (section 14.15) per Node-ID, each with a
Destination List of one ``node_id`` entry, and one user name as an
rfc822Name, "and nothing else"; the subject distinguished name is empty.
Section 11.3.1 derives the Node-IDs of a self-signed certificate from its
public key.  This module builds such certificates (self-signed, or issued by
an enrollment server's CA), reads the Node-IDs and user name back, and keeps
a node's certificate and private key together as a :class:`PeerIdentity`.

Deciding whether to *trust* a certificate is :mod:`reload.security.trust`'s
job; :func:`nodeIdsOf` here only parses.

An empty subject name is legal X.509 (RFC 5280 section 4.1.2.6) provided the
subjectAltName extension is critical, which is how these certificates are
made; ``cryptography`` accepts the empty name for the issuer of a
self-signed certificate too, so nothing had to be put there.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from reload.security.keys import (
    PrivateKey,
    PublicKey,
    generateEcdsaKey,
    loadPrivateKey,
    privateKeyToPem,
    writePrivateFile,
)
from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError
from reload.wire.header import Destination, DestinationType
from reload.wire.nodeid import DEFAULT_NODE_ID_LENGTH

__all__ = [
    "CERTIFICATE_FILE",
    "DEFAULT_NODE_ID_LENGTH",
    "PRIVATE_KEY_FILE",
    "PeerIdentity",
    "certificatesFromPem",
    "certificatesToPem",
    "issueCertificate",
    "loadPeerIdentity",
    "makeCertificateAuthority",
    "makeSelfSignedCertificate",
    "makeSelfSignedIdentity",
    "nodeIdsOf",
    "nodeUri",
    "parseNodeUri",
    "reloadUrisOf",
    "savePeerIdentity",
    "selfSignedNodeId",
    "selfSignedNodeIds",
    "subjectPublicKeyInfo",
    "userNameOf",
]

#: File names of a :class:`PeerIdentity` inside its data directory.
CERTIFICATE_FILE = "node-certificate.pem"
PRIVATE_KEY_FILE = "node-key.pem"

_DEFAULT_VALIDITY = datetime.timedelta(days=365)
_CA_VALIDITY = datetime.timedelta(days=3650)
# Certificates are made this long before "now" so that peers whose clocks
# lag a little do not see a certificate that is not valid yet.
_BACKDATE = datetime.timedelta(minutes=5)

# Section 14.15: RELOAD-URI = "reload://" destination "@" overlay "/" [specifier],
# destination = 1*HEXDIG, overlay = reg-name (RFC 3986: unreserved / pct-encoded
# / sub-delims), specifier = 1*HEXDIG.
_URI = re.compile(
    r"reload://(?P<destination>[0-9A-Fa-f]+)@(?P<overlay>[A-Za-z0-9\-._~!$&'()*+,;=%]+)/"
    r"(?P<specifier>[0-9A-Fa-f]*)",
    re.ASCII,
)
_SCHEME = "reload:"


# -- reload URIs (section 14.15) ----------------------------------------------


def nodeUri(nodeId: bytes, overlayName: str) -> str:
    """The reload URI of a node (sections 11.3 and 14.15):
    ``reload://`` + hex of a Destination List holding one ``node_id``
    Destination (type 0x01, length, Node-ID) + ``@`` + overlay + ``/``."""
    if not nodeId:
        raise ValueError("a Node-ID is not empty")
    if not overlayName or not re.fullmatch(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+", overlayName):
        raise ValueError(f"{overlayName!r} is not a valid overlay name for a reload URI")
    return f"reload://{Destination.node(nodeId).encode().hex()}@{overlayName}/"


def parseNodeUri(uri: str) -> tuple[bytes, str]:
    """``(nodeId, overlayName)`` of a node's reload URI (section 14.15).

    Only the form a certificate carries is accepted (section 11.3): a
    Destination List of exactly one ``node_id`` entry and no specifier.
    The scheme is matched case-insensitively (RFC 3986 section 3.1).
    Raises ValueError for anything else.
    """
    if uri[: len(_SCHEME)].lower() != _SCHEME:
        raise ValueError(f"{uri!r} is not a reload URI")
    match = _URI.fullmatch(_SCHEME + uri[len(_SCHEME) :])
    if match is None:
        raise ValueError(f"{uri!r} is not a well-formed reload URI (section 14.15)")
    if match["specifier"]:
        raise ValueError(f"{uri!r} names a data value, not a node")
    hexDigits = match["destination"]
    if len(hexDigits) % 2:
        raise ValueError(f"{uri!r}: the destination has an odd number of hex digits")
    data = bytes.fromhex(hexDigits)
    r = Reader(data, path="destination")
    destinations: list[Destination] = []
    try:
        while not r.at_end():
            destinations.append(Destination.read(r, f"[{len(destinations)}]"))
    except DecodeError as exc:
        raise ValueError(f"{uri!r}: bad Destination List: {exc}") from None
    if len(destinations) != 1:
        raise ValueError(f"{uri!r}: {len(destinations)} destinations, a node URI has one")
    (destination,) = destinations
    if destination.compressed or destination.type != DestinationType.NODE:
        raise ValueError(f"{uri!r}: the destination is not a node_id")
    if not destination.value:
        raise ValueError(f"{uri!r}: empty Node-ID")
    return destination.value, match["overlay"]


# -- self-generated Node-IDs (section 11.3.1) ---------------------------------


def subjectPublicKeyInfo(publicKey: PublicKey) -> bytes:
    """The DER subjectPublicKeyInfo of ``publicKey``."""
    return publicKey.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def selfSignedNodeId(
    publicKey: PublicKey,
    digest: str = "sha1",
    nodeIdLength: int = DEFAULT_NODE_ID_LENGTH,
    index: int | None = None,
) -> bytes:
    """The Node-ID of a self-signed certificate (section 11.3.1).

    ``digest`` (the self-signed-permitted element's digest, a hashlib name)
    of the DER subjectPublicKeyInfo, high-order ``nodeIdLength`` bytes.  For
    a certificate with several Node-IDs, ``index`` (1 to the number of
    Node-IDs) is prepended as a 4-byte big-endian integer.
    """
    if index is not None and not 1 <= index <= 0xFFFFFFFF:
        raise ValueError(f"Node-ID index {index} is not in 1..2^32-1")
    try:
        h = hashlib.new(digest)
    except ValueError:
        raise ValueError(f"unknown digest {digest!r} for self-signed Node-IDs") from None
    if index is not None:
        h.update(index.to_bytes(4, "big"))
    h.update(subjectPublicKeyInfo(publicKey))
    value = h.digest()
    if not 1 <= nodeIdLength <= len(value):
        raise ValueError(f"{digest} gives {len(value)} bytes, a Node-ID of {nodeIdLength} asked")
    return value[:nodeIdLength]


def selfSignedNodeIds(
    publicKey: PublicKey,
    count: int = 1,
    digest: str = "sha1",
    nodeIdLength: int = DEFAULT_NODE_ID_LENGTH,
) -> tuple[bytes, ...]:
    """All Node-IDs of a self-signed certificate with ``count`` Node-IDs:
    without an index for one, indexes 1..count for several (11.3.1)."""
    if count < 1:
        raise ValueError("a certificate has at least one Node-ID")
    if count == 1:
        return (selfSignedNodeId(publicKey, digest, nodeIdLength),)
    return tuple(
        selfSignedNodeId(publicKey, digest, nodeIdLength, index) for index in range(1, count + 1)
    )


# -- building certificates ----------------------------------------------------


def _utcNow(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.UTC)
    return now if now.tzinfo is not None else now.replace(tzinfo=datetime.UTC)


def _keyUsageFor(publicKey: PublicKey) -> x509.KeyUsage:
    """digitalSignature for every node key (messages, stored data and the
    TLS handshake are signed); plus keyAgreement for an EC key and
    keyEncipherment for an RSA key, the usages that fit each key type."""
    isEc = isinstance(publicKey, ec.EllipticCurvePublicKey)
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not isEc,
        data_encipherment=False,
        key_agreement=isEc,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _sanFor(
    nodeIds: Sequence[bytes], userName: str | None, overlayName: str
) -> x509.SubjectAlternativeName:
    """Section 11.3: one reload URI per Node-ID and the user name as an
    rfc822Name, "and nothing else"."""
    if not nodeIds:
        raise ValueError("a RELOAD certificate carries at least one Node-ID")
    if len(set(nodeIds)) != len(nodeIds):
        raise ValueError("the Node-IDs of a certificate are distinct")
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(nodeUri(nodeId, overlayName)) for nodeId in nodeIds
    ]
    if userName is not None:
        if not userName or "\x00" in userName:
            raise ValueError(f"{userName!r} is not a usable user name")
        names.append(x509.RFC822Name(userName))
    return x509.SubjectAlternativeName(names)


def _leafBuilder(
    publicKey: PublicKey,
    nodeIds: Sequence[bytes],
    userName: str | None,
    overlayName: str,
    issuer: x509.Name,
    notBefore: datetime.datetime,
    notAfter: datetime.datetime,
) -> x509.CertificateBuilder:
    # Section 11.3: "The subject distinguished name in the certificate MUST
    # be empty"; RFC 5280 section 4.2.1.6 then wants the SAN critical.
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(notBefore)
        .not_valid_after(notAfter)
        .add_extension(_sanFor(nodeIds, userName, overlayName), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_keyUsageFor(publicKey), critical=True)
        # Every peer is both TLS client and TLS server on its overlay links.
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(publicKey), critical=False)
    )


def makeSelfSignedCertificate(
    key: PrivateKey,
    overlayName: str,
    userName: str | None,
    digest: str = "sha1",
    nodeIdLength: int = DEFAULT_NODE_ID_LENGTH,
    validity: datetime.timedelta = _DEFAULT_VALIDITY,
    nodeIdCount: int = 1,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """A self-signed certificate (section 11.3.1) for ``key``.

    Its Node-ID(s) come from the public key (:func:`selfSignedNodeIds`) with
    the overlay's self-signed digest; the user name may be any name
    ("MAY contain any user name of the user's choice"), or None for none.
    Subject and issuer names are both empty.
    """
    start = _utcNow(now) - _BACKDATE
    nodeIds = selfSignedNodeIds(key.public_key(), nodeIdCount, digest, nodeIdLength)
    builder = _leafBuilder(
        key.public_key(), nodeIds, userName, overlayName, x509.Name([]), start, start + validity
    )
    return builder.sign(key, hashes.SHA256())


def makeCertificateAuthority(
    overlayName: str,
    key: PrivateKey | None = None,
    validity: datetime.timedelta = _CA_VALIDITY,
    pathLength: int | None = 0,
    now: datetime.datetime | None = None,
) -> tuple[PrivateKey, x509.Certificate]:
    """A new root CA for the enrollment server of ``overlayName`` (section
    13.3: "certificates MUST be signed by a central enrollment authority").

    Returns ``(privateKey, certificate)``; its certificate is what goes in
    the configuration's root-cert element.  ``pathLength`` 0 (the default)
    lets it sign node certificates only, no intermediate CAs.
    """
    if key is None:
        key = generateEcdsaKey()
    start = _utcNow(now) - _BACKDATE
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, overlayName),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{overlayName} enrollment CA"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=pathLength), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def issueCertificate(
    caKey: PrivateKey,
    caCert: x509.Certificate,
    publicKey: PublicKey,
    nodeIds: Sequence[bytes],
    userName: str,
    overlayName: str,
    validity: datetime.timedelta = _DEFAULT_VALIDITY,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """The enrollment server's certificate for ``publicKey`` (section 11.3).

    subjectAltName: one reload URI per Node-ID (the server chooses them,
    cryptographically random) and ``userName`` as rfc822Name, nothing else;
    empty subject; keyUsage digitalSignature (+ keyAgreement for EC,
    keyEncipherment for RSA); extendedKeyUsage serverAuth and clientAuth,
    since every peer is both TLS client and server.  The validity never
    extends past the CA's own.
    """
    start = _utcNow(now) - _BACKDATE
    end = min(start + validity, caCert.not_valid_after_utc)
    builder = _leafBuilder(
        publicKey, nodeIds, userName, overlayName, caCert.subject, start, end
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()), critical=False
    )
    return builder.sign(caKey, hashes.SHA256())


# -- reading certificates -----------------------------------------------------


def _subjectAltNames(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ValueError("the certificate has no subjectAltName") from None


def reloadUrisOf(cert: x509.Certificate) -> list[str]:
    """Every URI of the certificate's subjectAltName whose scheme is
    ``reload`` (ValueError if there is no subjectAltName)."""
    uris = _subjectAltNames(cert).get_values_for_type(x509.UniformResourceIdentifier)
    return [uri for uri in uris if uri[: len(_SCHEME)].lower() == _SCHEME]


def nodeIdsOf(cert: x509.Certificate, overlayName: str) -> tuple[bytes, ...]:
    """The Node-IDs of ``cert`` in ``overlayName``, in subjectAltName order.

    Strict, as section 11.3 describes the certificate: ValueError if there
    is no subjectAltName, no reload URI, a URI that is not a node reload
    URI, a reload URI of another overlay (overlay names compare
    case-insensitively, as RFC 3986 host names do), or a Node-ID twice.
    """
    wanted = overlayName.lower()
    nodeIds: list[bytes] = []
    uris = _subjectAltNames(cert).get_values_for_type(x509.UniformResourceIdentifier)
    for uri in uris:
        nodeId, overlay = parseNodeUri(uri)
        if overlay.lower() != wanted:
            raise ValueError(f"{uri} is for overlay {overlay!r}, not {overlayName!r}")
        if nodeId in nodeIds:
            raise ValueError(f"{uri} appears twice")
        nodeIds.append(nodeId)
    if not nodeIds:
        raise ValueError("the certificate has no reload URI")
    return tuple(nodeIds)


def userNameOf(cert: x509.Certificate) -> str | None:
    """The user name (the one rfc822Name of the subjectAltName, section
    11.3), None if there is none; ValueError if there are several or no
    subjectAltName at all."""
    names = _subjectAltNames(cert).get_values_for_type(x509.RFC822Name)
    if len(names) > 1:
        raise ValueError(f"{len(names)} user names; section 11.3 allows a single one")
    return names[0] if names else None


# -- PEM files ----------------------------------------------------------------


def certificatesToPem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def certificatesFromPem(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


# -- the identity a node holds ------------------------------------------------


def _samePublicKey(a: PublicKey, b: object) -> bool:
    if not isinstance(b, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return subjectPublicKeyInfo(a) == subjectPublicKeyInfo(b)


@dataclass(frozen=True)
class PeerIdentity:
    """What a node proves itself with: its certificate, the private key of
    that certificate, the intermediate certificates up to (not including) a
    root of the overlay, and the Node-IDs and user name the certificate
    carries (section 11.3).

    Build one with :meth:`fromCertificate` to read Node-IDs and user name
    from the certificate.
    """

    certificate: x509.Certificate
    privateKey: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    nodeIds: tuple[bytes, ...] = ()
    userName: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", tuple(self.chain))
        object.__setattr__(self, "nodeIds", tuple(self.nodeIds))
        if not self.nodeIds:
            raise ValueError("a PeerIdentity has at least one Node-ID")
        if not _samePublicKey(self.privateKey.public_key(), self.certificate.public_key()):
            raise ValueError("the private key does not belong to the certificate")

    @property
    def nodeId(self) -> bytes:
        """The first Node-ID of the certificate."""
        return self.nodeIds[0]

    @property
    def certificateDer(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @classmethod
    def fromCertificate(
        cls,
        certificate: x509.Certificate,
        privateKey: PrivateKey,
        overlayName: str,
        chain: Sequence[x509.Certificate] = (),
    ) -> PeerIdentity:
        """The identity of ``certificate`` in ``overlayName``: Node-IDs and
        user name read from its subjectAltName."""
        return cls(
            certificate,
            privateKey,
            tuple(chain),
            nodeIdsOf(certificate, overlayName),
            userNameOf(certificate),
        )


def makeSelfSignedIdentity(
    overlayName: str,
    userName: str | None,
    key: PrivateKey | None = None,
    digest: str = "sha1",
    nodeIdLength: int = DEFAULT_NODE_ID_LENGTH,
    validity: datetime.timedelta = _DEFAULT_VALIDITY,
    nodeIdCount: int = 1,
) -> PeerIdentity:
    """A new key (ECDSA P-256 unless ``key`` is given) and a self-signed
    certificate for it (section 11.3.1), as a :class:`PeerIdentity`."""
    if key is None:
        key = generateEcdsaKey()
    cert = makeSelfSignedCertificate(
        key, overlayName, userName, digest, nodeIdLength, validity, nodeIdCount
    )
    return PeerIdentity.fromCertificate(cert, key, overlayName)


def savePeerIdentity(identity: PeerIdentity, directory: str | os.PathLike[str]) -> None:
    """Write ``identity`` into ``directory`` (created if missing, mode
    0700): :data:`CERTIFICATE_FILE` (the certificate, then its chain, PEM)
    and :data:`PRIVATE_KEY_FILE` (PKCS#8 PEM, mode 0600)."""
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    writePrivateFile(path / PRIVATE_KEY_FILE, privateKeyToPem(identity.privateKey))
    certs = certificatesToPem([identity.certificate, *identity.chain])
    temporary = path / f".{CERTIFICATE_FILE}.tmp"
    temporary.write_bytes(certs)
    os.replace(temporary, path / CERTIFICATE_FILE)


def loadPeerIdentity(directory: str | os.PathLike[str], overlayName: str) -> PeerIdentity:
    """Read the identity :func:`savePeerIdentity` wrote.  Raises
    FileNotFoundError if either file is missing, ValueError if they do not
    belong together or the certificate has no Node-ID in ``overlayName``."""
    path = Path(directory)
    certs = certificatesFromPem((path / CERTIFICATE_FILE).read_bytes())
    key = loadPrivateKey(path / PRIVATE_KEY_FILE)
    return PeerIdentity.fromCertificate(certs[0], key, overlayName, certs[1:])
