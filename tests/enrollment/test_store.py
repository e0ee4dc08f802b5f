"""The enrollment server's data directory and form parsing, without sockets."""

from __future__ import annotations

import json
import os
from itertools import count
from pathlib import Path

import pytest
from cryptography import x509

from reload.enrollment.server import EnrollmentRefused, parseMultipartForm
from reload.enrollment.store import (
    EnrollmentStore,
    StoreError,
    checkPassword,
    hashPassword,
    userNameFor,
    validateAccountName,
)

from .conftest import multipart

OVERLAY = "overlay.test"


def test_passwordsAreStoredAsScryptHashesOnly(tmp_path: Path) -> None:
    store = EnrollmentStore.open(tmp_path / "s", OVERLAY)
    store.setPassword("alice", b"s3cret password")
    text = (tmp_path / "s" / "users.json").read_text()
    assert "s3cret" not in text
    stored = json.loads(text)["users"]["alice"]["password"]
    assert stored.startswith("$scrypt$ln=14,r=8,p=1$")
    assert checkPassword(b"s3cret password", stored)
    assert not checkPassword(b"s3cret passworD", stored)
    assert not checkPassword(b"", None)
    assert not checkPassword(b"x", "$scrypt$garbage")
    assert hashPassword(b"x") != hashPassword(b"x")  # salted
    assert (tmp_path / "s" / "users.json").stat().st_mode & 0o777 == 0o600


def test_privateKeysAreMode0600AndNoTemporaryFilesRemain(tmp_path: Path) -> None:
    store = EnrollmentStore.open(tmp_path / "s", OVERLAY)
    store.tlsCredentials(["127.0.0.1", OVERLAY])
    store.setPassword("alice", b"pw")
    store.nodeIdsFor("alice", 1)
    directory = tmp_path / "s"
    assert directory.stat().st_mode & 0o777 == 0o700
    for name in ("ca-key.pem", "tls-key.pem"):
        assert (directory / name).stat().st_mode & 0o777 == 0o600
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]


def test_reopeningGivesTheSameCaAndNodeIds(tmp_path: Path) -> None:
    first = EnrollmentStore.open(tmp_path / "s", OVERLAY)
    ids = first.nodeIdsFor("alice", 2)
    again = EnrollmentStore.open(tmp_path / "s", OVERLAY)
    assert again.caCertificate == first.caCertificate
    assert again.nodeIdsFor("alice", 2) == ids
    assert again.nodeIdsFor("alice", 1) == ids[:1]
    assert again.nodeIdsFor("alice", 3)[:2] == ids


def test_tlsCertificateIsReusedWhileItNamesTheSameHosts(tmp_path: Path) -> None:
    store = EnrollmentStore.open(tmp_path / "s", OVERLAY)
    first = store.tlsCredentials(["127.0.0.1", OVERLAY])
    assert store.tlsCredentials(["127.0.0.1", OVERLAY]).certificate == first.certificate
    other = store.tlsCredentials(["enroll.example.org", OVERLAY])
    assert other.certificate != first.certificate
    san = other.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["enroll.example.org", OVERLAY]


def test_nodeIdsAreRandomUniqueAndNeverReserved(tmp_path: Path) -> None:
    """Section 11.3: random, chosen by the server; section 3: all 0s and all
    1s are reserved; two accounts never share one."""
    fixed = iter([bytes(16), b"\xff" * 16, b"\x01" * 16, b"\x01" * 16, b"\x02" * 16])
    store = EnrollmentStore.open(tmp_path / "s", OVERLAY, randomBytes=lambda n: next(fixed))
    assert store.nodeIdsFor("alice", 1) == (b"\x01" * 16,)
    assert store.nodeIdsFor("bob", 1) == (b"\x02" * 16,)
    counter = count()
    real = EnrollmentStore.open(tmp_path / "r", OVERLAY, randomBytes=os.urandom)
    ids = {real.nodeIdsFor(f"user{next(counter)}", 1)[0] for _ in range(50)}
    assert len(ids) == 50


def test_aStoreBelongsToOneOverlay(tmp_path: Path) -> None:
    EnrollmentStore.open(tmp_path / "s", OVERLAY)
    with pytest.raises(StoreError, match=r"not 'other\.test'"):
        EnrollmentStore.open(tmp_path / "s", "other.test")
    with pytest.raises(StoreError, match="Node-IDs of 16 bytes"):
        EnrollmentStore.open(tmp_path / "s", OVERLAY, nodeIdLength=20)


def test_aCorruptStoreIsAStoreError(tmp_path: Path) -> None:
    EnrollmentStore.open(tmp_path / "s", OVERLAY)
    (tmp_path / "s" / "node-ids.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"node-ids\.json"):
        EnrollmentStore.open(tmp_path / "s", OVERLAY)
    (tmp_path / "s" / "node-ids.json").unlink()
    (tmp_path / "s" / "ca-key.pem").unlink()
    with pytest.raises(StoreError, match="CA is incomplete"):
        EnrollmentStore.open(tmp_path / "s", OVERLAY)


@pytest.mark.parametrize("name", ["alice", "alice@example.org", "a.b+c@x-y.example"])
def test_accountNames(name: str) -> None:
    validateAccountName(name)


@pytest.mark.parametrize("name", ["", "a b", "a\x00b", "ü", "a@", "@b", "a@b@c", "a..b", "x" * 255])
def test_badAccountNames(name: str) -> None:
    with pytest.raises(ValueError):
        validateAccountName(name)


def test_userNameIsTheAccountOrAccountAtOverlay_section_11_3() -> None:
    assert userNameFor("alice", OVERLAY) == "alice@overlay.test"
    assert userNameFor("bob@example.org", OVERLAY) == "bob@example.org"


def test_multipartKeepsBinaryValuesExactly() -> None:
    value = bytes(range(256)) + b"\r\n--not-the-boundary\r\n\r\n" + b"\r\n"
    body, contentType = multipart([("csr", value, "application/pkcs10"), ("x", b"", None)])
    parts = parseMultipartForm(body, contentType)
    assert [(p.name, p.value, p.contentType) for p in parts] == [
        ("csr", value, "application/pkcs10"),
        ("x", b"", "text/plain"),
    ]


def test_multipartWithQuotedBoundaryPreambleAndBase64() -> None:
    body = (
        b"preamble\r\n--a:b\r\n"
        b'Content-Disposition: form-data; name="csr"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--a:b--\r\nepilogue"
    )
    (part,) = parseMultipartForm(body, 'multipart/form-data; boundary="a:b"')
    assert part.value == b"\x00\x01\x02"


def test_tooManyPartsIsABadRequest() -> None:
    body, contentType = multipart([(f"f{i}", b"", None) for i in range(17)])
    with pytest.raises(EnrollmentRefused) as raised:
        parseMultipartForm(body, contentType)
    assert raised.value.status == 400
