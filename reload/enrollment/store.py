"""The enrollment server's data directory (RFC 6940 section 11.3).

Everything the server must remember between runs lives in one directory:

==================  ==========================================================
``store.json``      the overlay this directory serves and its node-id-length
``ca-key.pem``      the CA's private key (mode 0600)
``ca-cert.pem``     the CA's certificate: the configuration's ``root-cert``
``tls-key.pem``     the HTTPS server's private key (mode 0600)
``tls-cert.pem``    the HTTPS server's certificate, issued by the CA
``users.json``      account name -> password hash (scrypt; mode 0600)
``node-ids.json``   account name -> Node-IDs, hex (section 11.3: "the same
                    user ... should [get] the same Node-IDs")
``issued/``         every certificate issued, ``<serial>.pem``
``overlay-config``  the configuration document last served, when the server
``.xml``            generates it (so that a changed one gets a new sequence)
==================  ==========================================================

Every file is written to a temporary file in the same directory, flushed,
and renamed over the old one, so a crash leaves the old file or the new one,
never half of either.  The directory is created with mode 0700.

The store belongs to one overlay: a directory made for ``a.example`` refuses
to serve ``b.example``, since its CA is named after the overlay and its
Node-IDs are only unique within it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from reload.config import ConfigError, OverlayConfiguration, parseConfiguration, writeConfiguration
from reload.config.sequence import SEQUENCE_MODULUS
from reload.files import writeAtomically
from reload.security.certificates import (
    certificatesFromPem,
    certificatesToPem,
    makeCertificateAuthority,
)
from reload.security.keys import (
    PrivateKey,
    generateEcdsaKey,
    loadPrivateKey,
    privateKeyToPem,
)

__all__ = [
    "CA_CERTIFICATE_FILE",
    "CA_KEY_FILE",
    "EnrollmentStore",
    "StoreError",
    "TlsCredentials",
    "checkPassword",
    "hashPassword",
    "userNameFor",
    "validateAccountName",
]

STORE_FILE = "store.json"
CA_KEY_FILE = "ca-key.pem"
CA_CERTIFICATE_FILE = "ca-cert.pem"
TLS_KEY_FILE = "tls-key.pem"
TLS_CERTIFICATE_FILE = "tls-cert.pem"
USERS_FILE = "users.json"
NODE_IDS_FILE = "node-ids.json"
ISSUED_DIRECTORY = "issued"
CONFIGURATION_FILE = "overlay-config.xml"

_FORMAT_VERSION = 1
_PRIVATE = 0o600
_PUBLIC = 0o644
#: A TLS certificate this close to its end is replaced at start.
_TLS_RENEW_BEFORE = datetime.timedelta(days=30)
_TLS_VALIDITY = datetime.timedelta(days=365)
_BACKDATE = datetime.timedelta(minutes=5)

# scrypt (RFC 7914) with N=2^14, r=8, p=1: 16 MiB and some 50 ms per check.
_SCRYPT_LOG_N = 14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_LENGTH = 32
_SALT_LENGTH = 16
_HASH = re.compile(
    r"\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)"
)

# Section 11.3: "Enrollment servers SHOULD take care to allow only legal
# characters in the name (e.g., no embedded NULs)".  An rfc822Name is an
# ASCII addr-spec (RFC 5280 section 4.2.1.6): dot-atom local part, host name.
_LOCAL_PART = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_ACCOUNT = re.compile(rf"{_LOCAL_PART}(?:@{_DOMAIN})?", re.ASCII)
_MAX_ACCOUNT_LENGTH = 254


class StoreError(Exception):
    """The data directory cannot be used; the message says why."""


# -- passwords ----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: bytes, salt: bytes, logN: int, r: int, p: int) -> bytes:
    n = 1 << logN
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=_SCRYPT_LENGTH, maxmem=256 * n * r + (1 << 20)
    )


def hashPassword(password: bytes, salt: bytes | None = None) -> str:
    """``$scrypt$ln=14,r=8,p=1$SALT$HASH`` (PHC string format) of ``password``.

    Section 11.3: the password comes "in the clear" over HTTPS and is
    compared "as binary objects"; it is stored only as this hash.
    """
    if salt is None:
        salt = secrets.token_bytes(_SALT_LENGTH)
    digest = _scrypt(password, salt, _SCRYPT_LOG_N, _SCRYPT_R, _SCRYPT_P)
    return f"$scrypt$ln={_SCRYPT_LOG_N},r={_SCRYPT_R},p={_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


_DUMMY_SALT = b"\0" * _SALT_LENGTH


def checkPassword(password: bytes, stored: str | None) -> bool:
    """Whether ``password`` matches the hash ``stored`` (constant time).
    ``None`` (no such account) or a hash that cannot be read never matches,
    but costs as much time as a real check, so that unknown accounts cannot
    be told from wrong passwords by timing."""
    match = _HASH.fullmatch(stored) if stored else None
    parsed: tuple[int, int, int, bytes, bytes] | None = None
    if match is not None:
        logN, r, p = int(match["ln"]), int(match["r"]), int(match["p"])
        try:
            salt, expected = _unb64(match["salt"]), _unb64(match["hash"])
        except ValueError:
            salt = expected = b""
        if 10 <= logN <= 20 and 1 <= r <= 16 and 1 <= p <= 4 and salt and expected:
            parsed = (logN, r, p, salt, expected)
    if parsed is None:
        _scrypt(password, _DUMMY_SALT, _SCRYPT_LOG_N, _SCRYPT_R, _SCRYPT_P)
        return False
    logN, r, p, salt, expected = parsed
    return hmac.compare_digest(_scrypt(password, salt, logN, r, p), expected)


# -- account and user names -----------------------------------------------------


def validateAccountName(name: str) -> None:
    """Raise ValueError unless ``name`` can be an account: an e-mail style
    ``local@domain`` or a bare ``local`` part, ASCII, no spaces or
    control characters (section 11.3)."""
    if not name:
        raise ValueError("an account name is not empty")
    if len(name) > _MAX_ACCOUNT_LENGTH:
        raise ValueError(f"account name longer than {_MAX_ACCOUNT_LENGTH} characters")
    if not _ACCOUNT.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an account name: use letters, digits and !#$%&'*+-/=?^_`{{|}}~. "
            "optionally followed by @domain"
        )


def userNameFor(account: str, overlayName: str) -> str:
    """The user name (rfc822Name, section 11.3) the account gets in its
    certificate: the account itself when it has an ``@domain``, otherwise
    ``account@overlayName``."""
    return account if "@" in account else f"{account}@{overlayName}"


# -- files --------------------------------------------------------------------


def _readJson(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: cannot read the {what}: {exc}") from None
    if not isinstance(value, dict) or value.get("version") != _FORMAT_VERSION:
        raise StoreError(f"{path}: not a version {_FORMAT_VERSION} {what} file")
    return value


def _writeJson(path: Path, value: dict[str, Any], mode: int) -> None:
    data = json.dumps({"version": _FORMAT_VERSION, **value}, indent=2, sort_keys=True)
    writeAtomically(path, (data + "\n").encode("utf-8"), mode)


# -- the HTTPS server certificate -------------------------------------------------


class TlsCredentials:
    """A TLS server key, its certificate and the chain to send after it."""

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
    ) -> None:
        self.key = key
        self.certificate = certificate
        self.chain = tuple(chain)

    @classmethod
    def fromFiles(cls, certificatePath: str | Path, keyPath: str | Path) -> TlsCredentials:
        """Load ``--tls-cert`` (PEM: the certificate, then its chain) and
        ``--tls-key``; ValueError if they cannot be read or do not match."""
        try:
            certificates = certificatesFromPem(Path(certificatePath).read_bytes())
        except OSError as exc:
            raise ValueError(f"{certificatePath}: {exc.strerror or exc}") from None
        except ValueError:
            raise ValueError(f"{certificatePath}: no PEM certificate in it") from None
        try:
            key = loadPrivateKey(keyPath)
        except OSError as exc:
            raise ValueError(f"{keyPath}: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{keyPath}: not a usable private key ({exc})") from None
        if _spki(certificates[0]) != key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise ValueError(f"{keyPath} is not the key of the certificate in {certificatePath}")
        return cls(key, certificates[0], certificates[1:])


def _spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _hostNames(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hostnames):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _issueServerCertificate(
    caKey: PrivateKey,
    caCert: x509.Certificate,
    key: PrivateKey,
    hostnames: Sequence[str],
    now: datetime.datetime,
) -> x509.Certificate:
    """An ordinary web server certificate (RFC 2818: the host names in the
    subjectAltName as dNSName or iPAddress) for the HTTPS side of the
    enrollment server, sections 11.2 and 11.3.  Not a RELOAD certificate:
    it carries no reload URI, so no peer would accept it on an overlay link.
    """
    start = now - _BACKDATE
    end = min(start + _TLS_VALIDITY, caCert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(caCert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(_hostNames(hostnames)), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()), critical=False
        )
        .sign(caKey, hashes.SHA256())
    )


def _servesHosts(certificate: x509.Certificate, hostnames: Sequence[str]) -> bool:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(san) == set(_hostNames(hostnames))


# -- the store ----------------------------------------------------------------


def _utcNow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class EnrollmentStore:
    """The persistent state of one enrollment server.

    Open it with :meth:`open`; it creates what is missing (a new CA the
    first time).  All methods run in the reactor thread; they read nothing
    from disk after opening, and write through at once.
    """

    def __init__(
        self,
        directory: Path,
        overlayName: str,
        nodeIdLength: int,
        caKey: PrivateKey,
        caCertificate: x509.Certificate,
        users: dict[str, str],
        nodeIds: dict[str, list[bytes]],
        randomBytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.directory = directory
        self.overlayName = overlayName
        self.nodeIdLength = nodeIdLength
        self.caKey = caKey
        self.caCertificate = caCertificate
        self._users = users
        self._nodeIds = nodeIds
        self._assigned = {nodeId for ids in nodeIds.values() for nodeId in ids}
        self._randomBytes = randomBytes

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        overlayName: str,
        nodeIdLength: int = 16,
        *,
        randomBytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> EnrollmentStore:
        """Open (or create) the store in ``directory`` for ``overlayName``.

        Raises :class:`StoreError` if the directory cannot be created or
        read, belongs to another overlay or node-id-length, or holds a CA
        key that does not match its certificate.
        """
        path = Path(directory)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            (path / ISSUED_DIRECTORY).mkdir(mode=0o700, exist_ok=True)
            return cls._open(path, overlayName, nodeIdLength, randomBytes)
        except OSError as exc:
            raise StoreError(f"{exc.filename or path}: {exc.strerror or exc}") from None

    @classmethod
    def _open(
        cls,
        path: Path,
        overlayName: str,
        nodeIdLength: int,
        randomBytes: Callable[[int], bytes],
    ) -> EnrollmentStore:
        meta = _readJson(path / STORE_FILE, "store")
        if meta:
            if meta.get("overlay") != overlayName:
                raise StoreError(
                    f"{path} is the enrollment store of overlay {meta.get('overlay')!r},"
                    f" not {overlayName!r}"
                )
            if meta.get("nodeIdLength") != nodeIdLength:
                raise StoreError(
                    f"{path} assigns Node-IDs of {meta.get('nodeIdLength')} bytes, the"
                    f" configuration asks for {nodeIdLength}"
                )
        else:
            _writeJson(
                path / STORE_FILE, {"overlay": overlayName, "nodeIdLength": nodeIdLength}, _PUBLIC
            )
        caKey, caCert = cls._loadOrMakeCa(path, overlayName)
        usersJson = _readJson(path / USERS_FILE, "users")
        users: dict[str, str] = {}
        for name, entry in usersJson.get("users", {}).items():
            if not (isinstance(entry, dict) and isinstance(entry.get("password"), str)):
                raise StoreError(f"{path / USERS_FILE}: bad entry for {name!r}")
            users[name] = entry["password"]
        idsJson = _readJson(path / NODE_IDS_FILE, "Node-ID")
        nodeIds: dict[str, list[bytes]] = {}
        for name, hexIds in idsJson.get("nodeIds", {}).items():
            try:
                ids = [bytes.fromhex(h) for h in hexIds]
            except (TypeError, ValueError):
                raise StoreError(f"{path / NODE_IDS_FILE}: bad Node-ID of {name!r}") from None
            if any(len(i) != nodeIdLength for i in ids):
                raise StoreError(f"{path / NODE_IDS_FILE}: Node-ID of {name!r} has a wrong length")
            nodeIds[name] = ids
        return cls(path, overlayName, nodeIdLength, caKey, caCert, users, nodeIds, randomBytes)

    @staticmethod
    def _loadOrMakeCa(path: Path, overlayName: str) -> tuple[PrivateKey, x509.Certificate]:
        keyPath, certPath = path / CA_KEY_FILE, path / CA_CERTIFICATE_FILE
        if keyPath.exists() != certPath.exists():
            missing = certPath if keyPath.exists() else keyPath
            raise StoreError(f"{missing} is missing; the CA is incomplete, restore it from backup")
        if keyPath.exists():
            try:
                key = loadPrivateKey(keyPath)
                (cert,) = certificatesFromPem(certPath.read_bytes())[:1]
            except (ValueError, TypeError) as exc:
                raise StoreError(f"{path}: cannot read the CA: {exc}") from None
            if _spki(cert) != key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ):
                raise StoreError(f"{keyPath} is not the key of {certPath}")
            return key, cert
        key, cert = makeCertificateAuthority(overlayName)
        # The key first: a certificate without its key would be unusable.
        writeAtomically(keyPath, privateKeyToPem(key), _PRIVATE)
        writeAtomically(certPath, certificatesToPem([cert]), _PUBLIC)
        return key, cert

    # -- accounts -------------------------------------------------------------

    def setPassword(self, account: str, password: bytes) -> None:
        """Create ``account`` or change its password (only a hash is kept)."""
        validateAccountName(account)
        current = self._users.get(account)
        if current is not None and checkPassword(password, current):
            return
        self._users[account] = hashPassword(password)
        self._saveUsers()

    def passwordHash(self, account: str) -> str | None:
        """The stored hash, ``None`` if there is no such account."""
        return self._users.get(account)

    def accounts(self) -> list[str]:
        return sorted(self._users)

    def _saveUsers(self) -> None:
        users = {name: {"password": h} for name, h in self._users.items()}
        _writeJson(self.directory / USERS_FILE, {"users": users}, _PRIVATE)

    # -- Node-IDs -------------------------------------------------------------

    def nodeIdsFor(self, account: str, count: int) -> tuple[bytes, ...]:
        """The first ``count`` Node-IDs of ``account``, drawing new ones as
        needed.

        Section 11.3: each "MUST be cryptographically random" and chosen by
        the server; the same user gets the same Node-IDs again.  Section 3:
        all 0s and all 1s are reserved; no two accounts share a Node-ID.
        """
        if count < 1:
            raise ValueError("at least one Node-ID")
        ids = list(self._nodeIds.get(account, ()))
        reserved = (bytes(self.nodeIdLength), b"\xff" * self.nodeIdLength)
        while len(ids) < count:
            candidate = self._randomBytes(self.nodeIdLength)
            if len(candidate) != self.nodeIdLength:
                raise RuntimeError("the random source returned a short Node-ID")
            if candidate in reserved or candidate in self._assigned:
                continue
            ids.append(candidate)
            self._assigned.add(candidate)
        if ids != self._nodeIds.get(account):
            self._nodeIds[account] = ids
            self._saveNodeIds()
        return tuple(ids[:count])

    def knownNodeIds(self, account: str) -> tuple[bytes, ...]:
        return tuple(self._nodeIds.get(account, ()))

    def _saveNodeIds(self) -> None:
        mapping = {name: [i.hex() for i in ids] for name, ids in self._nodeIds.items()}
        _writeJson(self.directory / NODE_IDS_FILE, {"nodeIds": mapping}, _PUBLIC)

    # -- certificates ---------------------------------------------------------

    def recordIssued(self, certificate: x509.Certificate) -> Path:
        """Keep a copy of an issued certificate; returns its file."""
        path = self.directory / ISSUED_DIRECTORY / f"{certificate.serial_number:x}.pem"
        writeAtomically(path, certificatesToPem([certificate]), _PUBLIC)
        return path

    def issuedCertificates(self) -> list[x509.Certificate]:
        found: list[x509.Certificate] = []
        for path in sorted((self.directory / ISSUED_DIRECTORY).glob("*.pem")):
            found.extend(certificatesFromPem(path.read_bytes()))
        return found

    def publishConfiguration(self, candidate: OverlayConfiguration) -> bytes:
        """The document to serve for ``candidate`` (section 11.1), whose
        sequence is ignored: the last published document if it says the
        same, otherwise ``candidate`` with the next sequence number
        (section 6.3.2.1: "monotonically increasing mod 65535"; the first
        is 1), saved for the next start.  ConfigError if it cannot be
        written."""
        path = self.directory / CONFIGURATION_FILE
        previous: OverlayConfiguration | None = None
        try:
            previousBytes = path.read_bytes()
            previous = parseConfiguration(previousBytes, self.overlayName)
        except (OSError, ConfigError):
            previous = None
        if previous is not None:
            same = dataclasses.replace(candidate, sequence=previous.sequence)
            if same == previous:
                return previousBytes
            sequence = (previous.sequence + 1) % SEQUENCE_MODULUS
        else:
            sequence = 1
        data = writeConfiguration(dataclasses.replace(candidate, sequence=sequence))
        try:
            writeAtomically(path, data, _PUBLIC)
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror or exc}") from None
        return data

    def tlsCredentials(
        self, hostnames: Sequence[str], now: datetime.datetime | None = None
    ) -> TlsCredentials:
        """The HTTPS server's key and certificate for ``hostnames``, issued
        by this store's CA: the stored one while it names exactly these
        hosts, is the CA's, and has more than 30 days left; otherwise a new
        one (with a new key), stored for the next start."""
        if not hostnames:
            raise ValueError("the server certificate needs at least one host name")
        now = now or _utcNow()
        keyPath, certPath = self.directory / TLS_KEY_FILE, self.directory / TLS_CERTIFICATE_FILE
        try:
            key = loadPrivateKey(keyPath)
            cert = certificatesFromPem(certPath.read_bytes())[0]
        except (OSError, ValueError, TypeError, IndexError):
            pass
        else:
            if (
                _spki(cert) == _keySpki(key)
                and cert.issuer == self.caCertificate.subject
                and _signedBy(cert, self.caCertificate)
                and cert.not_valid_before_utc <= now
                and now + _TLS_RENEW_BEFORE < cert.not_valid_after_utc
                and _servesHosts(cert, hostnames)
            ):
                return TlsCredentials(key, cert, (self.caCertificate,))
        key = generateEcdsaKey()
        cert = _issueServerCertificate(self.caKey, self.caCertificate, key, hostnames, now)
        try:
            writeAtomically(keyPath, privateKeyToPem(key), _PRIVATE)
            writeAtomically(certPath, certificatesToPem([cert]), _PUBLIC)
        except OSError as exc:
            raise StoreError(f"{exc.filename or self.directory}: {exc.strerror or exc}") from None
        return TlsCredentials(key, cert, (self.caCertificate,))


def _keySpki(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signedBy(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True
