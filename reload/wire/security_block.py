"""The security block, signatures and signer identities (RFC 6940 section 6.3.4).

Every RELOAD message ends with a :class:`SecurityBlock`: the certificates
needed to check the signatures in the message, and the message signature.
The same :class:`Signature` structure signs each stored value (section 7.1),
so :mod:`reload.wire.storage` reuses it.

This module only encodes and decodes; computing and checking signatures is
the security layer's job.  It gets the exact bytes to sign from
:func:`message_signature_input` (and, for stored values, from
:func:`reload.wire.storage.stored_data_signature_input`).

Algorithm numbers come from the TLS registries (section 6.3.4 says "From
TLS"), which grow over time, so values this module has no name for are kept
as plain integers and round-trip unchanged.  The same holds for certificate
types (RFC 6091) and for signer identity types ("This structure may be
extended with new types"): an unknown identity keeps its raw bytes.

Decoding a signature is on the hot path of every message and of every
stored value, so the readers work directly on ``(data, pos, end)`` with
:mod:`struct`, and they share the few distinct algorithm pairs and signer
identities a peer sees instead of building new objects for each (both are
immutable, so sharing is safe).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Self, TypeVar

from reload.wire.base import COMPILED, SLOTTED, WireStruct, constructor
from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError, EncodeError

__all__ = [
    "ANONYMOUS_NONE",
    "RSA_SHA256",
    "CertificateType",
    "GenericCertificate",
    "HashAlgorithm",
    "SecurityBlock",
    "Signature",
    "SignatureAlgorithm",
    "SignatureAndHashAlgorithm",
    "SignerIdentity",
    "SignerIdentityType",
    "message_signature_input",
    "read_security_block_at",
    "read_signature_at",
]

_U16 = struct.Struct("!H")
_TYPE_LENGTH = struct.Struct("!BH")  # SignerIdentity.identity_type, .length
_SIGNATURE_HEAD = struct.Struct("!BBBH")  # hash, signature, identity_type, length
_CERT_HEAD = struct.Struct("!BH")  # GenericCertificate.type, certificate length
_OVERLAY_TRANSACTION = struct.Struct("!IQ")
_ALGORITHM = struct.Struct("!BB")

_T = TypeVar("_T")


class CertificateType(IntEnum):
    """``CertificateType`` of RFC 6091 section 3.1, as extended by the IANA
    TLS Certificate Types registry.  RELOAD only defines X.509 (section
    6.3.4); other values are carried but not interpreted."""

    X509 = 0
    OPENPGP = 1
    RAW_PUBLIC_KEY = 2


class HashAlgorithm(IntEnum):
    """TLS ``HashAlgorithm`` (RFC 5246 section 7.4.1.4.1, IANA TLS
    HashAlgorithm registry)."""

    NONE = 0
    MD5 = 1
    SHA1 = 2
    SHA224 = 3
    SHA256 = 4
    SHA384 = 5
    SHA512 = 6
    INTRINSIC = 8


class SignatureAlgorithm(IntEnum):
    """TLS ``SignatureAlgorithm`` (RFC 5246 section 7.4.1.4.1, IANA TLS
    SignatureAlgorithm registry).  RFC 6940 section 6.3.4 requires RSA with
    SHA-256; ANONYMOUS marks the unsigned synthetic values of section
    7.4.2.2."""

    ANONYMOUS = 0
    RSA = 1
    DSA = 2
    ECDSA = 3
    ED25519 = 7
    ED448 = 8


class SignerIdentityType(IntEnum):
    """Section 6.3.4 ``SignerIdentityType``; 0 is invalid."""

    CERT_HASH = 1
    CERT_HASH_NODE_ID = 2
    NONE = 3


_HASH_ALGORITHMS = {a.value: a for a in HashAlgorithm}
_SIGNATURE_ALGORITHMS = {a.value: a for a in SignatureAlgorithm}
_CERTIFICATE_TYPES = {t.value: t for t in CertificateType}
_IDENTITY_TYPES = {t.value: t for t in SignerIdentityType}
_HASHLIB_NAMES: dict[int, str] = {
    HashAlgorithm.MD5: "md5",
    HashAlgorithm.SHA1: "sha1",
    HashAlgorithm.SHA224: "sha224",
    HashAlgorithm.SHA256: "sha256",
    HashAlgorithm.SHA384: "sha384",
    HashAlgorithm.SHA512: "sha512",
}


def _within(exc: DecodeError, path: str) -> DecodeError:
    return exc.within(path) if path else exc


def _reader_bytes(r: Reader) -> bytes:
    """The reader's buffer as ``bytes`` (slices of it become field values)."""
    data = r.data
    return data if type(data) is bytes else bytes(data)


# -- algorithms ---------------------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class SignatureAndHashAlgorithm(WireStruct):
    """TLS ``SignatureAndHashAlgorithm`` (RFC 5246 section 7.4.1.4.1): the
    hash byte comes first on the wire, then the signature byte."""

    hash_algorithm: int
    signature_algorithm: int

    def __init__(self, hash_algorithm: int, signature_algorithm: int) -> None:
        object.__setattr__(self, "hash_algorithm", hash_algorithm)
        object.__setattr__(self, "signature_algorithm", signature_algorithm)

    def encode(self) -> bytes:
        h, s = self.hash_algorithm, self.signature_algorithm
        if not (0 <= h <= 0xFF and 0 <= s <= 0xFF):
            raise EncodeError(f"hash/signature algorithm out of range: {h}, {s}")
        return bytes((h, s))

    @classmethod
    def read(cls, r: Reader) -> Self:
        h = r.u8("hash_algorithm")
        s = r.u8("signature_algorithm")
        return cls(_HASH_ALGORITHMS.get(h, h), _SIGNATURE_ALGORITHMS.get(s, s))


#: Section 6.3.4: the algorithm every implementation must support.
RSA_SHA256 = SignatureAndHashAlgorithm(HashAlgorithm.SHA256, SignatureAlgorithm.RSA)
#: Section 7.4.2.2: {0, 0}, "anonymous" and "none", for synthetic values.
ANONYMOUS_NONE = SignatureAndHashAlgorithm(HashAlgorithm.NONE, SignatureAlgorithm.ANONYMOUS)

# At most 65536 pairs exist and a peer sees a handful; decoded signatures
# share these instead of building one per signature.
_ALGORITHM_PAIRS: dict[int, SignatureAndHashAlgorithm] = {
    (RSA_SHA256.hash_algorithm << 8) | RSA_SHA256.signature_algorithm: RSA_SHA256,
    0: ANONYMOUS_NONE,
}


def _algorithm_pair(h: int, s: int) -> SignatureAndHashAlgorithm:
    key = (h << 8) | s
    pair = _ALGORITHM_PAIRS.get(key)
    if pair is None:  # at most 65536 entries
        pair = SignatureAndHashAlgorithm(
            _HASH_ALGORITHMS.get(h, h), _SIGNATURE_ALGORITHMS.get(s, s)
        )
        _ALGORITHM_PAIRS[key] = pair
    return pair


# -- certificates -------------------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class GenericCertificate(WireStruct):
    """Section 6.3.4: one certificate of the security block.  For X.509,
    ``certificate`` is the DER encoding."""

    type: int
    certificate: bytes

    def __init__(self, type: int, certificate: bytes) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "certificate", certificate)

    def encode(self) -> bytes:
        try:
            return _CERT_HEAD.pack(self.type, len(self.certificate)) + self.certificate
        except struct.error:
            raise EncodeError(
                f"certificate type {self.type} or length {len(self.certificate)} out of range"
            ) from None

    @classmethod
    def read(cls, r: Reader) -> Self:
        t = r.u8("type")
        return cls(_CERTIFICATE_TYPES.get(t, t), r.opaque(2, "certificate"))


# -- signer identity ----------------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class SignerIdentity(WireStruct):
    """Section 6.3.4 ``SignerIdentity``: who made a signature.

    The value forms, by ``identity_type``:

    * CERT_HASH: ``hash_algorithm`` and ``value`` = the hash of the signer's
      DER certificate (certificate_hash), for a certificate with one Node-ID;
    * CERT_HASH_NODE_ID: ``hash_algorithm`` and ``value`` =
      H(NodeId || certificate) (certificate_node_id_hash), for a certificate
      with several Node-IDs;
    * NONE: no value (``hash_algorithm`` 0, ``value`` empty), only in the
      synthetic values of section 7.4.2.2;
    * any other type (the structure "may be extended"): ``value`` holds the
      raw identity bytes, ``hash_algorithm`` is unused and 0.
    """

    identity_type: int
    hash_algorithm: int = HashAlgorithm.NONE
    value: bytes = b""
    # The encoding, computed on first use: an identity is encoded once per
    # signature it appears in, and a peer has few identities.
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(
        self, identity_type: int, hash_algorithm: int = HashAlgorithm.NONE, value: bytes = b""
    ) -> None:
        object.__setattr__(self, "identity_type", identity_type)
        object.__setattr__(self, "hash_algorithm", hash_algorithm)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "_wire", None)

    @classmethod
    def cert_hash(cls, digest: bytes, hash_algorithm: int = HashAlgorithm.SHA256) -> Self:
        return cls(SignerIdentityType.CERT_HASH, hash_algorithm, digest)

    @classmethod
    def cert_hash_node_id(cls, digest: bytes, hash_algorithm: int = HashAlgorithm.SHA256) -> Self:
        return cls(SignerIdentityType.CERT_HASH_NODE_ID, hash_algorithm, digest)

    @classmethod
    def none(cls) -> Self:
        return cls(SignerIdentityType.NONE)

    @classmethod
    def for_certificate(
        cls,
        certificate: bytes,
        hash_algorithm: int = HashAlgorithm.SHA256,
        node_id: bytes | None = None,
    ) -> Self:
        """The identity of the holder of the DER ``certificate``: cert_hash,
        or cert_hash_node_id when ``node_id`` says which of the certificate's
        Node-IDs signs (section 6.3.4: "H(NodeId || certificate)", the Node-ID
        as raw bytes)."""
        name = _HASHLIB_NAMES.get(hash_algorithm)
        if name is None:
            raise ValueError(f"no hash function for HashAlgorithm {hash_algorithm}")
        if node_id is None:
            return cls.cert_hash(hashlib.new(name, certificate).digest(), hash_algorithm)
        digest = hashlib.new(name, node_id + certificate).digest()
        return cls.cert_hash_node_id(digest, hash_algorithm)

    def _body(self) -> bytes:
        t, h, value = self.identity_type, self.hash_algorithm, self.value
        if t == 1 or t == 2:
            if not 0 <= h <= 0xFF or len(value) > 0xFF:
                raise EncodeError(
                    f"identity hash algorithm {h} or hash length {len(value)} too big"
                )
            return bytes((h, len(value))) + value
        if h:
            raise EncodeError(f"identity type {t} has no hash algorithm, got {h}")
        if t == 3:
            if value:
                raise EncodeError("a 'none' signer identity has no value")
            return b""
        if not 1 <= t <= 0xFF:
            raise EncodeError(f"signer identity type {t} is not allowed")
        return value

    def encode(self) -> bytes:
        wire = self._wire
        if wire is None:
            body = self._body()
            if len(body) > 0xFFFF:
                raise EncodeError(f"signer identity of {len(body)} bytes is too long")
            wire = _TYPE_LENGTH.pack(self.identity_type, len(body)) + body
            object.__setattr__(self, "_wire", wire)
        return wire

    @classmethod
    def read(cls, r: Reader) -> Self:
        try:
            identity, r.pos = _read_identity(_reader_bytes(r), r.pos, r.end)
        except DecodeError as exc:
            raise _within(exc, r.path) from None
        return identity  # type: ignore[return-value]


def _parse_identity(data: bytes, pos: int, end: int, identity_type: int) -> SignerIdentity:
    """The identity value in ``data[pos:end]`` (the ``length`` given bytes)."""
    if identity_type == 1 or identity_type == 2:
        if end - pos < 2:
            raise DecodeError("identity", f"needs a hash algorithm and length, {end - pos} bytes")
        h = data[pos]
        n = data[pos + 1]
        if pos + 2 + n != end:
            raise DecodeError(
                "identity", f"hash of {n} bytes does not fill the {end - pos - 2} bytes given"
            )
        return SignerIdentity(
            _IDENTITY_TYPES[identity_type], _HASH_ALGORITHMS.get(h, h), data[pos + 2 : end]
        )
    if identity_type == 3:
        if end != pos:
            raise DecodeError("identity", "a 'none' identity must be empty")
        return _NONE_IDENTITY
    if identity_type == 0:
        raise DecodeError("identity_type", "invalid signer identity type 0")
    return SignerIdentity(identity_type, 0, data[pos:end])


_NONE_IDENTITY = SignerIdentity(SignerIdentityType.NONE)
# Encoded identity -> decoded identity.  A peer sees few signers, so most
# lookups hit; the bound keeps hostile input from growing it.
_IDENTITY_CACHE: dict[bytes, SignerIdentity] = {}
_IDENTITY_CACHE_SIZE = 512


def _read_identity(data: bytes, pos: int, end: int) -> tuple[SignerIdentity, int]:
    if pos + 3 > end:
        field = "identity_type" if pos >= end else "length"
        raise DecodeError(field, f"needs 3 bytes, {max(end - pos, 0)} left")
    identity_type, n = _TYPE_LENGTH.unpack_from(data, pos)
    value_end = pos + 3 + n
    if value_end > end:
        raise DecodeError("length", f"{n} bytes announced, {end - pos - 3} left")
    key = data[pos:value_end]
    identity = _IDENTITY_CACHE.get(key)
    if identity is None:
        identity = _parse_identity(data, pos + 3, value_end, identity_type)
        if len(_IDENTITY_CACHE) >= _IDENTITY_CACHE_SIZE:
            _IDENTITY_CACHE.clear()
        _IDENTITY_CACHE[key] = identity
    return identity, value_end


# -- signature ----------------------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class Signature(WireStruct):
    """Section 6.3.4 ``Signature``: algorithm, signer and signature bytes.

    :meth:`empty` is the synthetic signature of section 7.4.2.2 (algorithm
    {0, 0}, identity "none", no value), which only a storing peer may put on
    values that do not exist.
    """

    algorithm: SignatureAndHashAlgorithm
    identity: SignerIdentity
    value: bytes

    def __init__(
        self, algorithm: SignatureAndHashAlgorithm, identity: SignerIdentity, value: bytes
    ) -> None:
        # Written out: compiled, a native __init__ (reload.wire.base).
        object.__setattr__(self, "algorithm", algorithm)
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "value", value)

    @classmethod
    def empty(cls) -> Self:
        return cls(ANONYMOUS_NONE, _NONE_IDENTITY, b"")

    @property
    def is_anonymous(self) -> bool:
        """True if either marker of the unsigned synthetic form of section
        7.4.2.2 is present: section 7.4.1.1 rejects a store signed "with
        identity_type set to 'none' and/or SignatureAndHashAlgorithm values
        set to {0, 0}"."""
        return (
            self.identity.identity_type == SignerIdentityType.NONE
            or self.algorithm == ANONYMOUS_NONE
        )

    def encode(self) -> bytes:
        algorithm, value = self.algorithm, self.value
        try:
            head = _ALGORITHM.pack(algorithm.hash_algorithm, algorithm.signature_algorithm)
            length = _U16.pack(len(value))
        except struct.error:
            raise EncodeError(
                f"algorithm {algorithm} or signature of {len(value)} bytes out of range"
            ) from None
        return b"".join((head, self.identity.encode(), length, value))

    @classmethod
    def read(cls, r: Reader) -> Self:
        try:
            signature, r.pos = read_signature_at(_reader_bytes(r), r.pos, r.end)
        except DecodeError as exc:
            raise _within(exc, r.path) from None
        return signature  # type: ignore[return-value]


def read_signature_at(data: bytes, pos: int, end: int) -> tuple[Signature, int]:
    """Read a :class:`Signature` at ``data[pos:end]``; return it and the
    position after it.  Error paths are relative to the signature.

    The hot path of stored values and security blocks: when everything fits
    and the signer is one already seen, it is a few unpacks and slices.
    Everything else goes to :func:`_read_signature`.
    """
    if pos + 5 <= end:
        h: int
        s: int
        n: int
        h, s, _, n = _SIGNATURE_HEAD.unpack_from(data, pos)
        id_end = pos + 5 + n
        if id_end + 2 <= end:
            length: int
            (length,) = _U16.unpack_from(data, id_end)
            value_end = id_end + 2 + length
            if value_end <= end:
                identity = _IDENTITY_CACHE.get(data[pos + 2 : id_end])
                algorithm = _ALGORITHM_PAIRS.get((h << 8) | s)
                if identity is not None and algorithm is not None:
                    value = data[id_end + 2 : value_end]
                    if COMPILED:  # the native constructor, called directly
                        return Signature(algorithm, identity, value), value_end
                    return _new_signature(algorithm, identity, value), value_end
    return _read_signature(data, pos, end)


def _read_signature(data: bytes, pos: int, end: int) -> tuple[Signature, int]:
    """The reference reader behind :func:`read_signature_at`: checks field
    by field and names the one that is wrong."""
    if pos + 2 > end:
        raise DecodeError("algorithm", f"needs 2 bytes, {max(end - pos, 0)} left")
    algorithm = _algorithm_pair(data[pos], data[pos + 1])
    try:
        identity, id_end = _read_identity(data, pos + 2, end)
    except DecodeError as exc:
        raise exc.within("identity") from None
    if id_end + 2 > end:
        raise DecodeError("value", f"needs a 2-byte length, {end - id_end} left")
    (length,) = _U16.unpack_from(data, id_end)
    value_end = id_end + 2 + length
    if value_end > end:
        raise DecodeError("value", f"{length} bytes announced, {end - id_end - 2} left")
    return _new_signature(algorithm, identity, data[id_end + 2 : value_end]), value_end


_new_signature = constructor(Signature)


# -- security block -----------------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class SecurityBlock(WireStruct):
    """Section 6.3.4: the third part of every message."""

    certificates: tuple[GenericCertificate, ...]
    signature: Signature

    def __init__(self, certificates: tuple[GenericCertificate, ...], signature: Signature) -> None:
        object.__setattr__(self, "certificates", certificates)
        object.__setattr__(self, "signature", signature)

    def encode(self) -> bytes:
        certs = b"".join(c.encode() for c in self.certificates)
        if len(certs) > 0xFFFF:
            raise EncodeError(f"certificates of {len(certs)} bytes do not fit 2^16-1")
        return b"".join((_U16.pack(len(certs)), certs, self.signature.encode()))

    @classmethod
    def read(cls, r: Reader) -> Self:
        try:
            block, r.pos = read_security_block_at(_reader_bytes(r), r.pos, r.end)
        except DecodeError as exc:
            raise _within(exc, r.path) from None
        return block  # type: ignore[return-value]


def read_security_block_at(data: bytes, pos: int, end: int) -> tuple[SecurityBlock, int]:
    """Read a :class:`SecurityBlock` at ``data[pos:end]`` (fast path, error
    paths relative to the block)."""
    if pos + 2 > end:
        raise DecodeError("certificates", f"needs a 2-byte length, {max(end - pos, 0)} left")
    (n,) = _U16.unpack_from(data, pos)
    p = pos + 2
    certs_end = p + n
    if certs_end > end:
        raise DecodeError("certificates", f"{n} bytes announced, {end - p} left")
    certificates: list[GenericCertificate] = []
    while p < certs_end:
        if p + 3 > certs_end:
            raise DecodeError(
                f"certificates[{len(certificates)}]", f"needs 3 bytes, {certs_end - p} left"
            )
        t, length = _CERT_HEAD.unpack_from(data, p)
        cert_end = p + 3 + length
        if cert_end > certs_end:
            raise DecodeError(
                f"certificates[{len(certificates)}].certificate",
                f"{length} bytes announced, {certs_end - p - 3} left",
            )
        certificates.append(_new_certificate(_CERTIFICATE_TYPES.get(t, t), data[p + 3 : cert_end]))
        p = cert_end
    try:
        signature, p = read_signature_at(data, p, end)
    except DecodeError as exc:
        raise exc.within("signature") from None
    return _new_security_block(tuple(certificates), signature), p


_new_certificate = constructor(GenericCertificate)
_new_security_block = constructor(SecurityBlock)


# -- what is signed -----------------------------------------------------------


def message_signature_input(
    overlay: int, transaction_id: int, contents: bytes, identity: SignerIdentity
) -> bytes:
    """The bytes a message signature covers (section 6.3.4):
    ``overlay || transaction_id || MessageContents || SignerIdentity``.

    ``overlay`` (uint32) and ``transaction_id`` (uint64) are the forwarding
    header fields in their wire form; ``contents`` is the encoded
    MessageContents; the SignerIdentity is encoded whole (type, length,
    value), as it appears inside the Signature.
    """
    try:
        head = _OVERLAY_TRANSACTION.pack(overlay, transaction_id)
    except struct.error:
        raise EncodeError(f"overlay {overlay} or transaction id out of range") from None
    return b"".join((head, contents, identity.encode()))
