"""The peer's side of enrollment: fetch the configuration, get a certificate.

A node that joins an overlay with an enrollment server does, at first start
(RFC 6940 sections 11.2 and 11.3)::

    configuration = await fetchConfiguration(reactor, url, overlayName)
    identity = await obtainIdentity(reactor, configuration, dataDir, user, password)

:func:`fetchConfiguration` GETs the document over HTTPS, checking the
server certificate against the URL's host (section 11.2, RFC 2818), and
keeps it only if it is valid and for the overlay asked for.
:func:`enroll` makes a key and a PKCS#10 request, POSTs it as
``multipart/form-data`` with the user name and password, and checks that
the certificate it gets chains to a root-cert of the configuration,
carries the Node-IDs asked for and is for this key (section 11.3: "The
client MUST check that the returned certificate chains back to one of the
certificates received in the 'root-cert' list").  :func:`obtainIdentity`
does that only when the data directory has no identity that is still good.

Both HTTPS requests use Twisted's ``Agent``; the trust root for the server
certificate is the platform's CAs unless one is passed (see
:func:`trustRootFor`).  For enrollment, the configuration's root-certs are
trusted as well, since an enrollment server usually has its HTTPS
certificate from its own CA.  Every failure is an :class:`EnrollmentError`;
a refusal of the server with a section 11.3 token is an
:class:`EnrollmentRejected` carrying the token.
"""

from __future__ import annotations

import datetime
import io
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from OpenSSL import SSL, crypto

# IOpenSSLTrustRoot is what optionsForClientTLS takes as trustRoot; Twisted
# only defines it in this module (stable since Twisted 14.0).
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, FileBodyProducer, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse
from zope.interface import implementer

from reload.config import ConfigError, OverlayConfiguration, parseConfiguration
from reload.config.xmlio import MAX_DOCUMENT_SIZE
from reload.enrollment.protocol import (
    CERTIFICATE_CONTENT_TYPE,
    CONFIGURATION_CONTENT_TYPE,
    CONFIGURATION_PATH,
    CSR_CONTENT_TYPE,
    ConfigurationFetchError,
    EnrollmentError,
    EnrollmentRejected,
)
from reload.security.certificates import (
    PeerIdentity,
    loadPeerIdentity,
    savePeerIdentity,
)
from reload.security.keys import PrivateKey, generateEcdsaKey
from reload.security.trust import CertificateRejected, TrustPolicy

__all__ = [
    "ConfigurationFetchError",
    "EnrollmentError",
    "EnrollmentRejected",
    "configurationUrl",
    "enroll",
    "fetchConfiguration",
    "makeCsr",
    "obtainIdentity",
    "trustRootFor",
]

#: An answer to an enrollment request is one certificate (or a token).
MAX_CERTIFICATE_SIZE = 64 * 1024
DEFAULT_TIMEOUT = 30.0
#: :func:`obtainIdentity` enrolls again when the stored certificate has
#: less than this left.
DEFAULT_RENEW_BEFORE = datetime.timedelta(days=7)


# -- TLS trust ------------------------------------------------------------------


@implementer(IOpenSSLTrustRoot)
class _TrustRoot:
    def __init__(self, certificates: Sequence[x509.Certificate], platform: bool) -> None:
        self.certificates = tuple(certificates)
        self.platform = platform

    def _addCACertsToContext(self, context: SSL.Context) -> None:
        if self.platform:
            context.set_default_verify_paths()
        store = context.get_cert_store()
        assert store is not None
        for certificate in self.certificates:
            store.add_cert(crypto.X509.from_cryptography(certificate))


def trustRootFor(
    certificates: Sequence[x509.Certificate] = (), platform: bool = False
) -> IOpenSSLTrustRoot:
    """A trust root for HTTPS server certificates: ``certificates``, and
    the platform's CAs too if ``platform``."""
    if not certificates and not platform:
        raise ValueError("a trust root needs certificates or the platform's CAs")
    return _TrustRoot(certificates, platform)


def _configurationRoots(configuration: OverlayConfiguration) -> list[x509.Certificate]:
    roots = []
    for der in configuration.rootCerts:
        try:
            roots.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise EnrollmentError(
                f"a root-cert of the configuration is unreadable: {exc}"
            ) from None
    return roots


# -- HTTP -----------------------------------------------------------------------


class _BodyReader(Protocol):
    """Collects a response body, at most ``limit`` bytes; cancelling
    ``finished`` (a timeout) stops the transfer."""

    def __init__(self, limit: int, url: str) -> None:
        self.finished: Deferred[bytes] = Deferred(lambda _: self._stop())
        self.limit = limit
        self.url = url
        self.chunks: list[bytes] = []
        self.size = 0

    def _stop(self) -> None:
        stopProducing = getattr(self.transport, "stopProducing", None)
        if stopProducing is not None:
            stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.finished.errback(
                EnrollmentError(f"{self.url}: the answer is larger than {self.limit} bytes")
            )
            self._stop()
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        if self.finished.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.finished.callback(b"".join(self.chunks))
        else:
            self.finished.errback(
                EnrollmentError(f"{self.url}: the answer was cut off: {reason.getErrorMessage()}")
            )


async def _readBody(
    reactor: Any, response: IResponse, limit: int, url: str, timeout: float
) -> bytes:
    length = response.length
    if isinstance(length, int) and length > limit:
        raise EnrollmentError(f"{url}: the answer is larger than {limit} bytes")
    reader = _BodyReader(limit, url)
    response.deliverBody(reader)
    reader.finished.addTimeout(timeout, reactor)
    try:
        return await reader.finished
    except TimeoutError:
        raise EnrollmentError(f"{url}: no complete answer within {timeout} s") from None


def _checkHttpsUrl(url: str, what: str) -> bytes:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise EnrollmentError(f"{what} {url!r} is not a URL") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise EnrollmentError(f"{what} {url!r} is not an https: URL (sections 11.2, 11.3)")
    try:
        return url.encode("ascii")
    except UnicodeEncodeError:
        raise EnrollmentError(f"{what} {url!r}: write non-ASCII host names as A-labels") from None


async def _request(
    reactor: Any,
    method: bytes,
    url: str,
    headers: Headers,
    body: bytes | None,
    trustRoot: IOpenSSLTrustRoot,
    timeout: float,
) -> IResponse:
    # BrowserLikePolicyForHTTPS checks the certificate against the URL's
    # host (RFC 2818, via service_identity; iPAddress for an IP literal).
    agent = Agent(reactor, BrowserLikePolicyForHTTPS(trustRoot), connectTimeout=timeout)
    producer = None if body is None else FileBodyProducer(io.BytesIO(body))
    d = agent.request(method, url.encode("ascii"), headers, producer)
    d.addTimeout(timeout, reactor)
    try:
        response: IResponse = await d
    except Exception as exc:
        raise EnrollmentError(f"{url}: {_describe(exc)}") from exc
    return response


def _describe(exc: BaseException) -> str:
    reasons = getattr(exc, "reasons", None)
    if reasons:
        return "; ".join(r.getErrorMessage() if isinstance(r, Failure) else str(r) for r in reasons)
    return str(exc) or type(exc).__name__


def _now(reactor: Any) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(reactor.seconds(), datetime.UTC)


# -- section 11.2 -----------------------------------------------------------------


def configurationUrl(overlayName: str) -> str:
    """Section 11.2: ``https://`` + overlay name + ``/.well-known/reload-config``.

    (The RFC first looks up an SRV record ``_reload-config._tcp`` for the
    address to connect to; this URL is the one fetched either way.)
    """
    return f"https://{overlayName}{CONFIGURATION_PATH}"


def fetchConfiguration(
    reactor: Any,
    url: str,
    overlayName: str | None = None,
    *,
    trustRoot: IOpenSSLTrustRoot | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Deferred[OverlayConfiguration]:
    """GET the configuration document at ``url`` (section 11.2).

    The server certificate must match the URL's host and chain to
    ``trustRoot`` (default: the platform's CAs).  The document is parsed
    and validated; with ``overlayName`` its configuration for that
    instance-name is returned, and a document without one is refused
    ("SHOULD be discarded").  Fails with :class:`ConfigurationFetchError`.
    """
    return Deferred.fromCoroutine(
        _fetchConfiguration(reactor, url, overlayName, trustRoot, timeout)
    )


async def _fetchConfiguration(
    reactor: Any,
    url: str,
    overlayName: str | None,
    trustRoot: IOpenSSLTrustRoot | None,
    timeout: float,
) -> OverlayConfiguration:
    try:
        _checkHttpsUrl(url, "configuration URL")
        headers = Headers({b"accept": [CONFIGURATION_CONTENT_TYPE.encode("ascii")]})
        root = trustRoot if trustRoot is not None else trustRootFor(platform=True)
        response = await _request(reactor, b"GET", url, headers, None, root, timeout)
        data = await _readBody(reactor, response, MAX_DOCUMENT_SIZE, url, timeout)
    except ConfigurationFetchError:
        raise
    except EnrollmentError as exc:
        raise ConfigurationFetchError(str(exc)) from exc
    if response.code != 200:
        raise ConfigurationFetchError(f"{url}: HTTP {response.code} {response.phrase!r}")
    try:
        return parseConfiguration(data, overlayName)
    except ConfigError as exc:
        raise ConfigurationFetchError(f"{url}: {exc}") from exc


# -- section 11.3 -----------------------------------------------------------------


def makeCsr(key: PrivateKey, userName: str | None = None) -> bytes:
    """A PKCS#10 request (DER) for ``key``: empty subject, and an rfc822Name
    ``userName`` if one is asked for (section 11.3: "the requested user
    name in the CSR").  The Node-IDs are the server's choice, so none are
    asked for."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if userName is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(userName)]), critical=False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _multipart(fields: Sequence[tuple[str, bytes, str | None]]) -> tuple[bytes, bytes]:
    """A ``multipart/form-data`` body (RFC 7578) and its Content-Type."""
    while True:
        boundary = b"reload-" + secrets.token_hex(16).encode("ascii")
        if not any(boundary in value for _, value, _ in fields):
            break
    out = io.BytesIO()
    for name, value, contentType in fields:
        out.write(b"--" + boundary + b"\r\n")
        out.write(f'Content-Disposition: form-data; name="{name}"\r\n'.encode("ascii"))
        if contentType is not None:
            out.write(f"Content-Type: {contentType}\r\n".encode("ascii"))
        out.write(b"\r\n" + value + b"\r\n")
    out.write(b"--" + boundary + b"--\r\n")
    return out.getvalue(), b"multipart/form-data; boundary=" + boundary


def _parseCertificate(data: bytes, url: str) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise EnrollmentError(f"{url}: the answer is not a certificate: {exc}") from None


def enroll(
    reactor: Any,
    configuration: OverlayConfiguration,
    username: str,
    password: str | bytes,
    *,
    key: PrivateKey | None = None,
    nodeIds: int = 1,
    userName: str | None = None,
    enrollmentUrl: str | None = None,
    trustRoot: IOpenSSLTrustRoot | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Deferred[PeerIdentity]:
    """Get a certificate from the configuration's enrollment server
    (section 11.3) and return the identity it makes with ``key``.

    ``key`` defaults to a new ECDSA P-256 key; ``nodeIds`` is the number
    of Node-IDs asked for; ``userName`` an rfc822Name to ask for (default:
    whatever the server gives the account).  ``enrollmentUrl`` defaults to
    the configuration's first enrollment-server.  The HTTPS server
    certificate must match the URL's host and chain to ``trustRoot``
    (default: the configuration's root-certs and the platform's CAs).

    The certificate must chain to a root-cert of the configuration
    (self-signed is not accepted here, whatever the configuration says),
    be valid now, carry exactly ``nodeIds`` Node-IDs of the overlay's
    length, and be for ``key``.  Fails with :class:`EnrollmentRejected`
    (a 403 token) or :class:`EnrollmentError`.
    """
    return Deferred.fromCoroutine(
        _enroll(
            reactor,
            configuration,
            username,
            password,
            key,
            nodeIds,
            userName,
            enrollmentUrl,
            trustRoot,
            timeout,
        )
    )


async def _enroll(
    reactor: Any,
    configuration: OverlayConfiguration,
    username: str,
    password: str | bytes,
    key: PrivateKey | None,
    nodeIds: int,
    userName: str | None,
    enrollmentUrl: str | None,
    trustRoot: IOpenSSLTrustRoot | None,
    timeout: float,
) -> PeerIdentity:
    if nodeIds < 1:
        raise EnrollmentError("at least one Node-ID must be asked for")
    if enrollmentUrl is None:
        if not configuration.enrollmentServers:
            raise EnrollmentError(
                f"the configuration of {configuration.instanceName} names no enrollment-server"
            )
        enrollmentUrl = configuration.enrollmentServers[0]
    _checkHttpsUrl(enrollmentUrl, "enrollment-server")
    roots = _configurationRoots(configuration)
    if not roots:
        # Section 11.3: the certificate is checked against the root-certs;
        # with none, nothing could be accepted.
        raise EnrollmentError(
            f"the configuration of {configuration.instanceName} has no root-cert to check"
            " an enrolled certificate against"
        )
    if key is None:
        key = generateEcdsaKey()
    passwordBytes = password.encode("utf-8") if isinstance(password, str) else password
    fields: list[tuple[str, bytes, str | None]] = [
        ("username", username.encode("utf-8"), "text/plain; charset=utf-8"),
        ("password", passwordBytes, "text/plain; charset=utf-8"),
    ]
    if nodeIds > 1:
        fields.append(("nodeids", str(nodeIds).encode("ascii"), None))
    fields.append(("csr", makeCsr(key, userName), CSR_CONTENT_TYPE))
    body, contentType = _multipart(fields)
    headers = Headers(
        {
            b"content-type": [contentType],
            b"accept": [CERTIFICATE_CONTENT_TYPE.encode("ascii")],
        }
    )
    root = trustRoot if trustRoot is not None else trustRootFor(roots, platform=True)
    response = await _request(reactor, b"POST", enrollmentUrl, headers, body, root, timeout)
    data = await _readBody(reactor, response, MAX_CERTIFICATE_SIZE, enrollmentUrl, timeout)
    if response.code == 403:
        raise EnrollmentRejected(data.decode("utf-8", "replace").strip())
    if response.code != 200:
        raise EnrollmentError(
            f"{enrollmentUrl}: HTTP {response.code} {response.phrase!r}: "
            f"{data[:200].decode('utf-8', 'replace').strip()}"
        )
    certificate = _parseCertificate(data, enrollmentUrl)
    return _checkIssued(configuration, roots, certificate, key, nodeIds, _now(reactor))


def _checkIssued(
    configuration: OverlayConfiguration,
    roots: Sequence[x509.Certificate],
    certificate: x509.Certificate,
    key: PrivateKey,
    nodeIds: int,
    now: datetime.datetime,
) -> PeerIdentity:
    """Section 11.3: the returned certificate "chains back to one of the
    certificates received in the 'root-cert' list ... (including PKIX
    BasicConstraints checks)"; then "reads the certificate to find the
    Node-ID it can use"."""
    policy = TrustPolicy(
        overlayName=configuration.instanceName,
        roots=tuple(roots),
        selfSignedPermitted=False,
        selfSignedDigest=None,
        nodeIdLength=configuration.nodeIdLength,
    )
    try:
        verified = policy.verify([certificate], now)
    except CertificateRejected as exc:
        raise EnrollmentError(f"the enrolled certificate is not acceptable: {exc.reason}") from exc
    try:
        identity = PeerIdentity.fromCertificate(certificate, key, configuration.instanceName)
    except ValueError as exc:
        raise EnrollmentError(f"the enrolled certificate is not acceptable: {exc}") from exc
    if len(verified.nodeIds) != nodeIds:
        raise EnrollmentError(
            f"the enrolled certificate has {len(verified.nodeIds)} Node-IDs, {nodeIds} were"
            " asked for"
        )
    return identity


def obtainIdentity(
    reactor: Any,
    configuration: OverlayConfiguration,
    directory: str | os.PathLike[str],
    username: str,
    password: str | bytes,
    *,
    renewBefore: datetime.timedelta = DEFAULT_RENEW_BEFORE,
    **enrollOptions: Any,
) -> Deferred[PeerIdentity]:
    """The node's identity for ``configuration``: the one saved in
    ``directory`` if it is acceptable to the overlay (chains to a
    root-cert) and valid for more than ``renewBefore``; otherwise a new one
    from :func:`enroll` (``enrollOptions`` are passed on), saved there
    (:func:`~reload.security.certificates.savePeerIdentity`; the key with
    mode 0600).  The server gives the same Node-IDs again (section 11.3),
    so stored data stays where it is."""
    return Deferred.fromCoroutine(
        _obtainIdentity(
            reactor, configuration, directory, username, password, renewBefore, enrollOptions
        )
    )


async def _obtainIdentity(
    reactor: Any,
    configuration: OverlayConfiguration,
    directory: str | os.PathLike[str],
    username: str,
    password: str | bytes,
    renewBefore: datetime.timedelta,
    enrollOptions: dict[str, Any],
) -> PeerIdentity:
    now = _now(reactor)
    existing = _usableIdentity(configuration, Path(directory), now, renewBefore)
    if existing is not None:
        return existing
    identity = await enroll(reactor, configuration, username, password, **enrollOptions)
    savePeerIdentity(identity, directory)
    return identity


def _usableIdentity(
    configuration: OverlayConfiguration,
    directory: Path,
    now: datetime.datetime,
    renewBefore: datetime.timedelta,
) -> PeerIdentity | None:
    """The identity saved in ``directory``, if the overlay accepts it now
    and still will in ``renewBefore``."""
    try:
        identity = loadPeerIdentity(directory, configuration.instanceName)
        roots = _configurationRoots(configuration)
    except (OSError, ValueError, EnrollmentError):
        return None
    if not roots:
        return None
    policy = TrustPolicy(
        overlayName=configuration.instanceName,
        roots=tuple(roots),
        selfSignedPermitted=False,
        selfSignedDigest=None,
        nodeIdLength=configuration.nodeIdLength,
    )
    try:
        policy.verify([identity.certificate, *identity.chain], now)
        policy.verify([identity.certificate, *identity.chain], now + renewBefore)
    except CertificateRejected:
        return None
    return identity
