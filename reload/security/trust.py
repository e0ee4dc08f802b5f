"""Deciding whether a peer's certificate is acceptable in an overlay.

RFC 6940 section 13.3: every node of an overlay holds a certificate signed by
the overlay's enrollment CA (a root-cert of the configuration, section 11.1),
or, where the configuration has self-signed-permitted (section 11.3.1), a
self-signed certificate whose Node-IDs are derived from its public key.
Section 11.3 fixes what the certificate carries: reload URIs (section 14.15)
with the Node-IDs, one rfc822Name with the user name, and nothing else in
the subjectAltName.

:meth:`TrustPolicy.verify` is the one place that decides, for TLS links
(:mod:`reload.security.tls`, both TLS and DTLS) and for the signers of
messages and stored data (:mod:`reload.security.signing`).  It fails closed:
every rule that is not met, and every exception raised while checking, is a
:class:`CertificateRejected` with a reason an operator can read.

Verification is on the hot path of signature checks, so positive results are
cached, keyed by the leaf certificate's DER, the expected Node-ID and the
purpose, and kept only while every certificate of the path is valid.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from reload.security.certificates import (
    DEFAULT_NODE_ID_LENGTH,
    parseNodeUri,
    selfSignedNodeIds,
)
from reload.security.keys import RSA_KEY_SIZE

__all__ = [
    "CLIENT_AUTH",
    "SERVER_AUTH",
    "CertificateRejected",
    "OverlayTrustSettings",
    "TrustPolicy",
    "VerifiedPeer",
]

#: Purposes for :meth:`TrustPolicy.verify`: the TLS role the peer plays.
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH

_PURPOSE_NAMES = {SERVER_AUTH: "serverAuth (TLS server)", CLIENT_AUTH: "clientAuth (TLS client)"}
_MAX_CHAIN_LENGTH = 8
_CACHE_SIZE = 4096
# Critical extensions this module understands; RFC 5280 section 4.2: a
# certificate with a critical extension the verifier does not process MUST be
# rejected.
_UNDERSTOOD_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
_WEAK_SIGNATURE_HASHES = (hashes.MD5, hashes.SHA1)
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


class CertificateRejected(Exception):
    """A certificate (chain) is not acceptable; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedPeer:
    """What a verified certificate proves: the Node-IDs (section 11.3, in
    subjectAltName order) and user name of its holder.

    ``selfSigned`` marks a self-signed certificate (section 11.3.1): its
    Node-IDs are bound to the key, but section 13.3 warns that its user name
    is not vouched for by anyone.  ``validFrom``/``validUntil`` bound the
    validity of the whole path (leaf, intermediates, root); they default to
    the leaf's own.
    """

    certificate: x509.Certificate
    nodeIds: tuple[bytes, ...]
    userName: str | None
    selfSigned: bool = False
    validFrom: datetime.datetime | None = None
    validUntil: datetime.datetime | None = None

    def __post_init__(self) -> None:
        if self.validFrom is None:
            object.__setattr__(self, "validFrom", self.certificate.not_valid_before_utc)
        if self.validUntil is None:
            object.__setattr__(self, "validUntil", self.certificate.not_valid_after_utc)

    @property
    def nodeId(self) -> bytes:
        """The first Node-ID."""
        return self.nodeIds[0]

    @functools.cached_property
    def certificateDer(self) -> bytes:
        """The certificate's DER, encoded once: every Store a storing peer
        takes names its values' signers' certificates by it (a replica
        Store carries them, section 6.3.4)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def isValidAt(self, now: datetime.datetime) -> bool:
        """Whether every certificate of the verified path is valid at
        ``now`` (section 7.1: signatures are checked against the current
        time)."""
        start = self.validFrom or self.certificate.not_valid_before_utc
        end = self.validUntil or self.certificate.not_valid_after_utc
        return start <= _aware(now) <= end


class OverlayTrustSettings(Protocol):
    """The parts of an overlay configuration (section 11.1) a
    :class:`TrustPolicy` is made from; ``reload.config``'s
    ``OverlayConfiguration`` has them."""

    @property
    def instanceName(self) -> str: ...
    @property
    def rootCerts(self) -> Sequence[bytes]: ...
    @property
    def selfSignedPermitted(self) -> bool: ...
    @property
    def selfSignedDigest(self) -> str | None: ...
    @property
    def nodeIdLength(self) -> int: ...


def _aware(now: datetime.datetime) -> datetime.datetime:
    """``now`` with a time zone; a naive time is taken as UTC."""
    return now if now.tzinfo is not None else now.replace(tzinfo=datetime.UTC)


def _describe(cert: x509.Certificate) -> str:
    subject = cert.subject.rfc4514_string()
    return f"'{subject}'" if subject else "certificate with empty subject"


def _signedBy(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name is ``cert``'s issuer and its key made
    ``cert``'s signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


_CacheKey = tuple[bytes, bytes | None, x509.ObjectIdentifier | None]


@dataclass(frozen=True)
class TrustPolicy:
    """The certificate rules of one overlay (sections 11.3, 11.3.1, 13.3).

    ``roots`` are the configuration's root-cert elements; with
    ``selfSignedPermitted`` self-signed certificates are taken too, their
    Node-IDs checked with ``selfSignedDigest`` (the self-signed-permitted
    element's digest attribute; None rejects every self-signed
    certificate).  ``nodeIdLength`` is the overlay's node-id-length.
    """

    overlayName: str
    roots: tuple[x509.Certificate, ...]
    selfSignedPermitted: bool
    selfSignedDigest: str | None = "sha1"
    nodeIdLength: int = DEFAULT_NODE_ID_LENGTH
    maxChainLength: int = _MAX_CHAIN_LENGTH
    cacheSize: int = _CACHE_SIZE
    _cache: dict[_CacheKey, VerifiedPeer] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _rootsBySubject: dict[x509.Name, tuple[x509.Certificate, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        roots = tuple(self.roots)
        for root in roots:
            if not isinstance(root, x509.Certificate):
                raise TypeError(f"a root is an x509.Certificate, not {type(root).__name__}")
        object.__setattr__(self, "roots", roots)
        for root in roots:
            same = self._rootsBySubject.get(root.subject, ())
            self._rootsBySubject[root.subject] = (*same, root)

    @classmethod
    def fromConfiguration(cls, configuration: OverlayTrustSettings) -> TrustPolicy:
        """The policy of an overlay configuration document (section 11.1):
        instance name, root-cert (DER), self-signed-permitted and its
        digest, node-id-length."""
        return cls(
            overlayName=configuration.instanceName,
            roots=tuple(x509.load_der_x509_certificate(der) for der in configuration.rootCerts),
            selfSignedPermitted=configuration.selfSignedPermitted,
            selfSignedDigest=configuration.selfSignedDigest,
            nodeIdLength=configuration.nodeIdLength,
        )

    # -- the check ------------------------------------------------------------

    def verify(
        self,
        chain: Sequence[x509.Certificate],
        now: datetime.datetime,
        expectedNodeId: bytes | None = None,
        *,
        purpose: x509.ObjectIdentifier | None = None,
    ) -> VerifiedPeer:
        """Verify the certificate ``chain[0]``, with ``chain[1:]`` as
        candidate intermediates, at time ``now``; return what it proves.

        ``expectedNodeId``, if given, must be one of its Node-IDs.
        ``purpose`` (:data:`SERVER_AUTH` or :data:`CLIENT_AUTH`) is the TLS
        role the holder plays; an extendedKeyUsage, if present, must allow
        it.  Raises :class:`CertificateRejected`, and nothing else.
        """
        try:
            if not chain:
                raise CertificateRejected("no certificate was presented")
            leaf = chain[0]
            if not isinstance(leaf, x509.Certificate):
                raise CertificateRejected(f"{type(leaf).__name__} is not a certificate")
            now = _aware(now)
            key: _CacheKey = (
                leaf.public_bytes(serialization.Encoding.DER),
                expectedNodeId,
                purpose,
            )
            cached = self._cache.get(key)
            if cached is not None and cached.isValidAt(now):
                return cached
            peer = self._verify(leaf, chain[1:], now, expectedNodeId, purpose)
        except CertificateRejected:
            raise
        except Exception as exc:
            raise CertificateRejected(
                f"certificate check failed: {type(exc).__name__}: {exc}"
            ) from exc
        self._remember(key, peer, now)
        return peer

    def _remember(self, key: _CacheKey, peer: VerifiedPeer, now: datetime.datetime) -> None:
        cache = self._cache
        if len(cache) >= self.cacheSize:
            for stale in [k for k, v in cache.items() if not v.isValidAt(now)]:
                del cache[stale]
            while len(cache) >= self.cacheSize:
                del cache[next(iter(cache))]
        cache[key] = peer

    def clearCache(self) -> None:
        self._cache.clear()

    def _verify(
        self,
        leaf: x509.Certificate,
        candidates: Sequence[x509.Certificate],
        now: datetime.datetime,
        expectedNodeId: bytes | None,
        purpose: x509.ObjectIdentifier | None,
    ) -> VerifiedPeer:
        path, selfSigned = self._path(leaf, candidates)
        for cert in path:
            self._checkCertificate(cert, now)
        nodeIds, userName = self._checkLeaf(leaf, purpose)
        if selfSigned:
            self._checkSelfSignedNodeIds(leaf, nodeIds)
        if expectedNodeId is not None and expectedNodeId not in nodeIds:
            raise CertificateRejected(
                f"the certificate does not carry the expected Node-ID {expectedNodeId.hex()}"
                f" (it has {', '.join(n.hex() for n in nodeIds)})"
            )
        return VerifiedPeer(
            leaf,
            nodeIds,
            userName,
            selfSigned,
            max(c.not_valid_before_utc for c in path),
            min(c.not_valid_after_utc for c in path),
        )

    # -- the path -------------------------------------------------------------

    def _path(
        self, leaf: x509.Certificate, candidates: Sequence[x509.Certificate]
    ) -> tuple[list[x509.Certificate], bool]:
        """The path from ``leaf`` to a root (``False``), or ``[leaf]`` for
        an acceptable self-signed certificate (``True``)."""
        path = [leaf]
        pool = [c for c in candidates if isinstance(c, x509.Certificate)]
        current = leaf
        while len(path) <= self.maxChainLength:
            for root in self._rootsBySubject.get(current.issuer, ()):
                if _signedBy(current, root):
                    path.append(root)
                    self._checkIssuer(root, len(path) - 1)
                    return path, False
            for candidate in pool:
                if candidate.subject == current.issuer and _signedBy(current, candidate):
                    # A self-issued candidate would loop; it can only be a
                    # root, and roots come from the configuration.
                    if candidate.issuer == candidate.subject:
                        continue
                    pool.remove(candidate)
                    path.append(candidate)
                    self._checkIssuer(candidate, len(path) - 1)
                    current = candidate
                    break
            else:
                break
        else:
            raise CertificateRejected(f"certificate chain longer than {self.maxChainLength}")
        if len(path) == 1 and leaf.issuer == leaf.subject and _signedBy(leaf, leaf):
            if not self.selfSignedPermitted:
                raise CertificateRejected(
                    "self-signed certificates are not permitted in this overlay (section 11.3.1)"
                )
            return path, True
        raise CertificateRejected(
            f"{_describe(current)} issued by '{current.issuer.rfc4514_string()}'"
            " does not chain to a root certificate of the overlay"
        )

    @staticmethod
    def _checkIssuer(issuer: x509.Certificate, index: int) -> None:
        """RFC 5280 section 6.1.4 for the CA at ``path[index]``: a CA by
        basicConstraints, keyCertSign if keyUsage is present, and a path
        length constraint that allows the ``index - 1`` CAs below it."""
        name = _describe(issuer)
        try:
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            raise CertificateRejected(f"issuer {name} has no basicConstraints") from None
        if not constraints.ca:
            raise CertificateRejected(f"issuer {name} is not a CA (basicConstraints)")
        try:
            usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            pass
        else:
            if not usage.key_cert_sign:
                raise CertificateRejected(f"issuer {name} may not sign certificates (keyUsage)")
        below = index - 1
        if constraints.path_length is not None and below > constraints.path_length:
            raise CertificateRejected(
                f"issuer {name} allows {constraints.path_length} intermediate CAs below it,"
                f" the chain has {below}"
            )

    # -- every certificate ----------------------------------------------------

    @staticmethod
    def _checkCertificate(cert: x509.Certificate, now: datetime.datetime) -> None:
        name = _describe(cert)
        if now < cert.not_valid_before_utc:
            raise CertificateRejected(
                f"{name} is not valid yet (valid from {cert.not_valid_before_utc.isoformat()})"
            )
        if now > cert.not_valid_after_utc:
            raise CertificateRejected(
                f"{name} has expired (valid until {cert.not_valid_after_utc.isoformat()})"
            )
        if isinstance(cert.signature_hash_algorithm, _WEAK_SIGNATURE_HASHES):
            raise CertificateRejected(
                f"{name} is signed with {cert.signature_hash_algorithm.name}, too weak"
            )
        for extension in cert.extensions:
            if extension.critical and extension.oid not in _UNDERSTOOD_CRITICAL:
                raise CertificateRejected(
                    f"{name} has a critical extension {extension.oid.dotted_string}"
                    " this node does not process"
                )

    # -- the leaf -------------------------------------------------------------

    def _checkLeaf(
        self, leaf: x509.Certificate, purpose: x509.ObjectIdentifier | None
    ) -> tuple[tuple[bytes, ...], str | None]:
        key = leaf.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < RSA_KEY_SIZE:
                raise CertificateRejected(f"RSA key of {key.key_size} bits is too short")
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, _CURVES):
                raise CertificateRejected(f"EC key on {key.curve.name} is not accepted")
        else:
            raise CertificateRejected(f"{type(key).__name__} keys cannot sign RELOAD messages")
        nodeIds, userName = self._subjectAltNames(leaf)
        try:
            usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            pass
        else:
            if not usage.digital_signature:
                raise CertificateRejected("the key usage does not allow digitalSignature")
        if purpose is not None:
            try:
                extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                pass
            else:
                if purpose not in extended and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in (
                    extended
                ):
                    raise CertificateRejected(
                        "the extended key usage does not allow"
                        f" {_PURPOSE_NAMES.get(purpose, purpose.dotted_string)}"
                    )
        return nodeIds, userName

    def _subjectAltNames(self, leaf: x509.Certificate) -> tuple[tuple[bytes, ...], str | None]:
        """Section 11.3: reload URIs for this overlay, one rfc822Name, and
        nothing else."""
        try:
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            raise CertificateRejected("the certificate has no subjectAltName") from None
        nodeIds: list[bytes] = []
        userNames: list[str] = []
        wanted = self.overlayName.lower()
        for name in names:
            if isinstance(name, x509.UniformResourceIdentifier):
                try:
                    nodeId, overlay = parseNodeUri(name.value)
                except ValueError as exc:
                    raise CertificateRejected(f"subjectAltName URI: {exc}") from None
                if overlay.lower() != wanted:
                    raise CertificateRejected(
                        f"{name.value} is for overlay {overlay!r}, not {self.overlayName!r}"
                    )
                if len(nodeId) != self.nodeIdLength:
                    raise CertificateRejected(
                        f"{name.value}: Node-ID of {len(nodeId)} bytes,"
                        f" the overlay uses {self.nodeIdLength}"
                    )
                if nodeId in nodeIds:
                    raise CertificateRejected(f"{name.value} appears twice")
                nodeIds.append(nodeId)
            elif isinstance(name, x509.RFC822Name):
                userNames.append(name.value)
            else:
                raise CertificateRejected(
                    f"subjectAltName holds a {type(name).__name__}; section 11.3 allows only"
                    " reload URIs and one rfc822Name"
                )
        if not nodeIds:
            raise CertificateRejected("the subjectAltName has no reload URI (no Node-ID)")
        if len(userNames) > 1:
            raise CertificateRejected(f"{len(userNames)} user names; section 11.3 allows one")
        return tuple(nodeIds), (userNames[0] if userNames else None)

    def _checkSelfSignedNodeIds(self, leaf: x509.Certificate, nodeIds: tuple[bytes, ...]) -> None:
        """Section 11.3.1: "nodes MUST check that the Node-ID and public
        keys match"."""
        digest = self.selfSignedDigest
        if digest is None:
            raise CertificateRejected("no self-signed digest is configured")
        key = leaf.public_key()
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise CertificateRejected(f"{type(key).__name__} keys are not accepted")
        expected = selfSignedNodeIds(key, len(nodeIds), digest, self.nodeIdLength)
        if set(expected) != set(nodeIds):
            raise CertificateRejected(
                f"self-signed certificate: Node-IDs do not match the public key ({digest},"
                " section 11.3.1)"
            )
