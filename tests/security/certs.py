"""Test helper: certificate authorities and certificates of every bad kind.

Everything is made relative to the fixed time :data:`NOW`, so that tests
give the same time to the trust policy (directly or through a clock) and
expiry is deterministic.  :class:`Pki` is an overlay's enrollment CA;
:func:`makeLeaf` builds a node certificate with any field wrong;
:data:`BAD_KINDS` names the bad certificates the TLS matrix and the trust
policy tests go through.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet.task import Clock

from reload.security.certificates import (
    PeerIdentity,
    makeCertificateAuthority,
    makeSelfSignedCertificate,
    nodeUri,
    parseNodeUri,
    selfSignedNodeIds,
)
from reload.security.keys import PrivateKey, generateEcdsaKey, generateRsaKey
from reload.security.trust import TrustPolicy

OVERLAY = "overlay.example.org"
OTHER_OVERLAY = "other.example.org"
NOW = datetime.datetime(2031, 3, 1, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
NODE_ID_LENGTH = 16

DIGITAL_SIGNATURE = "digitalSignature"
KEY_AGREEMENT = "keyAgreement"
KEY_ENCIPHERMENT = "keyEncipherment"
KEY_CERT_SIGN = "keyCertSign"
CRL_SIGN = "cRLSign"

_DEFAULT = object()


def clockAt(when: datetime.datetime = NOW) -> Clock:
    """A clock whose ``seconds()`` is ``when``."""
    clock = Clock()
    clock.advance(when.timestamp())
    return clock


def randomNodeId(length: int = NODE_ID_LENGTH) -> bytes:
    return os.urandom(length)


def keyUsage(*usages: str) -> x509.KeyUsage:
    flags = set(usages)
    return x509.KeyUsage(
        digital_signature=DIGITAL_SIGNATURE in flags,
        content_commitment=False,
        key_encipherment=KEY_ENCIPHERMENT in flags,
        data_encipherment=False,
        key_agreement=KEY_AGREEMENT in flags,
        key_cert_sign=KEY_CERT_SIGN in flags,
        crl_sign=CRL_SIGN in flags,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class Issuer:
    key: PrivateKey
    certificate: x509.Certificate


def makeCa(
    name: str = "Test CA",
    issuer: Issuer | None = None,
    *,
    ca: bool = True,
    pathLength: int | None = None,
    usage: x509.KeyUsage | object | None = _DEFAULT,
    basicConstraints: bool = True,
    notBefore: datetime.datetime = NOW - 365 * DAY,
    notAfter: datetime.datetime = NOW + 365 * DAY,
    extraExtensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issuer:
    """A CA (a root if ``issuer`` is None, else an intermediate under it),
    wrong in whatever way the arguments say."""
    key = generateEcdsaKey()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(notBefore)
        .not_valid_after(notAfter)
    )
    if basicConstraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=pathLength if ca else None), critical=True
        )
    if usage is _DEFAULT:
        usage = keyUsage(KEY_CERT_SIGN, CRL_SIGN)
    if isinstance(usage, x509.KeyUsage):
        builder = builder.add_extension(usage, critical=True)
    for extension, critical in extraExtensions:
        builder = builder.add_extension(extension, critical=critical)
    signer = key if issuer is None else issuer.key
    return Issuer(key, builder.sign(signer, hashes.SHA256()))


def makeLeaf(
    issuer: Issuer | None,
    *,
    key: PrivateKey | None = None,
    nodeIds: Sequence[bytes] | None = None,
    userName: str | None = "alice@overlay.example.org",
    overlay: str = OVERLAY,
    uris: Sequence[str] | None = None,
    extraNames: Sequence[x509.GeneralName] = (),
    san: bool = True,
    usage: x509.KeyUsage | object | None = _DEFAULT,
    eku: Sequence[x509.ObjectIdentifier] | None = (
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ),
    notBefore: datetime.datetime = NOW - DAY,
    notAfter: datetime.datetime = NOW + 30 * DAY,
    extraExtensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    hashAlgorithm: Any = None,
) -> tuple[PrivateKey, x509.Certificate]:
    """A node certificate issued by ``issuer`` (self-signed, empty names,
    when ``issuer`` is None; its Node-ID then follows section 11.3.1 unless
    ``nodeIds`` says otherwise), with any field made wrong on request."""
    if key is None:
        key = generateEcdsaKey()
    if nodeIds is None:
        nodeIds = selfSignedNodeIds(key.public_key()) if issuer is None else (randomNodeId(),)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]) if issuer is None else issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(notBefore)
        .not_valid_after(notAfter)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if san:
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(u)
            for u in (uris if uris is not None else [nodeUri(n, overlay) for n in nodeIds])
        ]
        if userName is not None:
            names.append(x509.RFC822Name(userName))
        names.extend(extraNames)
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    if usage is _DEFAULT:
        usage = keyUsage(
            DIGITAL_SIGNATURE,
            KEY_AGREEMENT if isinstance(key, ec.EllipticCurvePrivateKey) else KEY_ENCIPHERMENT,
        )
    if isinstance(usage, x509.KeyUsage):
        builder = builder.add_extension(usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    for extension, critical in extraExtensions:
        builder = builder.add_extension(extension, critical=critical)
    signer = key if issuer is None else issuer.key
    return key, builder.sign(signer, hashAlgorithm or hashes.SHA256())


def identityOf(
    key: PrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    nodeIds: Sequence[bytes] | None = None,
) -> PeerIdentity:
    """A PeerIdentity even for certificates without readable Node-IDs or
    user name (the TLS matrix must be able to present any bad
    certificate): what can be read is, the rest is a placeholder."""
    uris: list[str] = []
    userNames: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
        userNames = names.value.get_values_for_type(x509.RFC822Name)
    if nodeIds is None:
        parsed = []
        for uri in uris:
            with contextlib.suppress(ValueError):
                parsed.append(parseNodeUri(uri)[0])
        nodeIds = tuple(parsed) or (b"\x00" * NODE_ID_LENGTH,)
    userName = userNames[0] if userNames else None
    return PeerIdentity(certificate, key, tuple(chain), tuple(nodeIds), userName)


@dataclass
class Pki:
    """An overlay's enrollment CA, and the policies that trust it."""

    overlay: str = OVERLAY
    root: Issuer = field(default_factory=lambda: makeCa("Overlay Enrollment CA"))

    @classmethod
    def fromProductionCode(cls, overlay: str = OVERLAY) -> Pki:
        key, cert = makeCertificateAuthority(overlay, now=NOW - DAY)
        return cls(overlay, Issuer(key, cert))

    def policy(self, selfSignedPermitted: bool = False, **kwargs: Any) -> TrustPolicy:
        return TrustPolicy(self.overlay, (self.root.certificate,), selfSignedPermitted, **kwargs)

    def identity(self, rsaKey: bool = False, **kwargs: Any) -> PeerIdentity:
        """A good CA-issued identity (makeLeaf arguments may spoil it)."""
        key = generateRsaKey() if rsaKey else generateEcdsaKey()
        key, cert = makeLeaf(self.root, key=key, **kwargs)
        return identityOf(key, cert)


def selfSignedIdentity(key: PrivateKey | None = None, **kwargs: Any) -> PeerIdentity:
    """A good self-signed identity (production code path)."""
    key = key or generateEcdsaKey()
    cert = makeSelfSignedCertificate(
        key, OVERLAY, "carol@overlay.example.org", now=NOW - DAY, **kwargs
    )
    return identityOf(key, cert)


# -- the bad kinds ------------------------------------------------------------

BadFactory = Callable[[Pki], PeerIdentity]


def _wrongRoot(pki: Pki) -> PeerIdentity:
    stranger = makeCa("Some Other CA")
    key, cert = makeLeaf(stranger)
    return identityOf(key, cert)


def _selfSigned(pki: Pki) -> PeerIdentity:
    return selfSignedIdentity()


def _leaf(**kwargs: Any) -> BadFactory:
    def factory(pki: Pki) -> PeerIdentity:
        return pki.identity(**kwargs)

    return factory


#: Bad certificates for the TLS matrix: kind -> (factory, words the
#: rejection reason contains).  Each is rejected by ``pki.policy()``.
BAD_KINDS: dict[str, tuple[BadFactory, str]] = {
    "expired": (_leaf(notBefore=NOW - 30 * DAY, notAfter=NOW - DAY), "expired"),
    "not yet valid": (_leaf(notBefore=NOW + DAY, notAfter=NOW + 30 * DAY), "not valid yet"),
    "wrong root": (_wrongRoot, "does not chain"),
    "self-signed where not permitted": (_selfSigned, "self-signed certificates are not"),
    "no SAN": (_leaf(san=False), "no subjectAltName"),
    "wrong overlay": (_leaf(overlay=OTHER_OVERLAY), "is for overlay"),
    "wrong key usage": (_leaf(usage=keyUsage(KEY_ENCIPHERMENT)), "digitalSignature"),
}
