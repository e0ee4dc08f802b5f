"""Key generation and PEM files (reload.security.keys)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from reload.security.certificates import subjectPublicKeyInfo
from reload.security.keys import (
    generateEcdsaKey,
    generateKey,
    generateRsaKey,
    loadPrivateKey,
    loadPublicKey,
    privateKeyFromPem,
    privateKeyToPem,
    savePrivateKey,
    savePublicKey,
)


def test_ecdsaKeysAreP256() -> None:
    key = generateEcdsaKey()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)


def test_rsaKeysAre2048Bits() -> None:
    """Section 6.3.4: RSA with SHA-256 is the mandatory algorithm."""
    key = generateRsaKey()
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    with pytest.raises(ValueError):
        generateRsaKey(1024)


def test_generateKeyByName() -> None:
    assert isinstance(generateKey("ecdsa"), ec.EllipticCurvePrivateKey)
    with pytest.raises(ValueError):
        generateKey("dsa")  # type: ignore[arg-type]


@pytest.mark.parametrize("keyType", ["ecdsa", "rsa"])
def test_privateKeyFileIsOwnerOnlyAndRoundTrips(tmp_path: Path, keyType: str) -> None:
    key = generateKey(keyType)  # type: ignore[arg-type]
    path = tmp_path / "key.pem"
    savePrivateKey(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = loadPrivateKey(path)
    assert privateKeyToPem(loaded) == privateKeyToPem(key)
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_overwrittenKeyFileStaysOwnerOnly(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    savePrivateKey(generateEcdsaKey(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_publicKeyRoundTrips(tmp_path: Path) -> None:
    key = generateEcdsaKey()
    savePublicKey(key.public_key(), tmp_path / "pub.pem")
    loaded = loadPublicKey(tmp_path / "pub.pem")
    assert subjectPublicKeyInfo(loaded) == subjectPublicKeyInfo(key.public_key())


def test_otherKeyTypesAreRefused() -> None:
    from cryptography.hazmat.primitives import serialization

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="not an ECDSA or RSA"):
        privateKeyFromPem(pem)
