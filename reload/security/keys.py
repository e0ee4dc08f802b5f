"""Key pairs for RELOAD certificates and signatures.

RFC 6940 section 6.3.4 makes RSASSA-PKCS1-v1_5 with SHA-256 mandatory for
signatures (and section 13.3 ties every node to an asymmetric key pair in a
certificate), so a node may hold an RSA key; ECDSA P-256 is the smaller and
faster alternative that the same TLS registries allow.  This module makes
such keys and moves them to and from PEM files.  Private key files are
written with mode 0600, through a temporary file in the same directory and
an atomic rename, so that no other user can read the key even for a moment
and a crash never leaves half a key behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reload.files import writeAtomically

__all__ = [
    "RSA_KEY_SIZE",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "generateEcdsaKey",
    "generateKey",
    "generateRsaKey",
    "loadPrivateKey",
    "loadPublicKey",
    "privateKeyFromPem",
    "privateKeyToPem",
    "publicKeyFromPem",
    "publicKeyToPem",
    "savePrivateKey",
    "savePublicKey",
    "writePrivateFile",
]

#: The private keys a RELOAD identity may have.
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
#: Their public halves.
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
#: Names accepted by :func:`generateKey`.
KeyType = Literal["ecdsa", "rsa"]

#: The RSA size this project makes (and the smallest the trust policy takes).
RSA_KEY_SIZE = 2048
_PRIVATE_FILE_MODE = 0o600


def generateEcdsaKey() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA key on NIST P-256 (secp256r1)."""
    return ec.generate_private_key(ec.SECP256R1())


def generateRsaKey(keySize: int = RSA_KEY_SIZE) -> rsa.RSAPrivateKey:
    """A new RSA key (public exponent 65537) of ``keySize`` bits, 2048 by
    default: the key type of the mandatory signature algorithm (section
    6.3.4)."""
    if keySize < RSA_KEY_SIZE:
        raise ValueError(f"RSA keys shorter than {RSA_KEY_SIZE} bits are not made")
    return rsa.generate_private_key(public_exponent=65537, key_size=keySize)


def generateKey(keyType: KeyType = "ecdsa") -> PrivateKey:
    """A new key of ``keyType``: ``"ecdsa"`` (P-256) or ``"rsa"`` (2048)."""
    if keyType == "ecdsa":
        return generateEcdsaKey()
    if keyType == "rsa":
        return generateRsaKey()
    raise ValueError(f"unknown key type {keyType!r}; use 'ecdsa' or 'rsa'")


def _checkedPrivateKey(key: object) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return key
    raise ValueError(f"{type(key).__name__} is not an ECDSA or RSA private key")


def _checkedPublicKey(key: object) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key
    raise ValueError(f"{type(key).__name__} is not an ECDSA or RSA public key")


def privateKeyToPem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (the file mode protects it)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def privateKeyFromPem(data: bytes, password: bytes | None = None) -> PrivateKey:
    """Parse a PEM private key (PKCS#8 or traditional); ValueError if it is
    not an ECDSA or RSA key."""
    return _checkedPrivateKey(serialization.load_pem_private_key(data, password))


def publicKeyToPem(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def publicKeyFromPem(data: bytes) -> PublicKey:
    return _checkedPublicKey(serialization.load_pem_public_key(data))


def writePrivateFile(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (mode 0600).

    The bytes go to a temporary file created with mode 0600 beside ``path``
    and are renamed over it, so the file never exists with wider
    permissions or half written.
    """
    writeAtomically(path, data, _PRIVATE_FILE_MODE)


def savePrivateKey(key: PrivateKey, path: str | os.PathLike[str]) -> None:
    """Write ``key`` as PEM to ``path`` with mode 0600."""
    writePrivateFile(path, privateKeyToPem(key))


def loadPrivateKey(path: str | os.PathLike[str], password: bytes | None = None) -> PrivateKey:
    return privateKeyFromPem(Path(path).read_bytes(), password)


def savePublicKey(key: PublicKey, path: str | os.PathLike[str]) -> None:
    Path(path).write_bytes(publicKeyToPem(key))


def loadPublicKey(path: str | os.PathLike[str]) -> PublicKey:
    return publicKeyFromPem(Path(path).read_bytes())
