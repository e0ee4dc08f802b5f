"""The enrollment server's web side: configuration and certificates over HTTPS.

RFC 6940 section 11.2: a node fetches the overlay configuration document
with a GET of ``/.well-known/reload-config`` over HTTPS; it is served as
``application/p2p-overlay+xml`` (section 11.1).

Section 11.3: a node without credentials POSTs a ``multipart/form-data``
form (RFC 2388, now RFC 7578) to the configuration's enrollment-server URL
(here ``/enroll``) with ``username``, ``password``, optionally ``nodeids``
and ``csr`` (``application/pkcs10``).  The answer is 200 with the bare
certificate, ``application/pkix-cert`` (DER, RFC 2585), or 403 with a
``text/plain`` token: ``failed_authentication``, ``username_not_available``,
``Node-IDs_not_available`` or ``bad_CSR``.  A request that is not such a
form at all is a 400, a body over :data:`MAX_REQUEST_SIZE` a 413.  Nothing a
client sends produces a traceback or a 500: every failure is one of these.

The server, not the request, decides what the certificate says: the
account's Node-IDs (cryptographically random, the same ones every time the
account enrolls again), its user name as rfc822Name, nothing else, and an
empty subject (section 11.3).  Whatever else the CSR asks for - other
subjectAltNames, a reload URI of the requester's choosing, a subject - is
ignored; only its public key and its proof of possession are used.

:class:`EnrollmentAuthority` decides (no I/O except the store);
:class:`EnrollmentResource` and :class:`ConfigurationResource` are the
``twisted.web`` side; :func:`makeSite` puts them together.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import email.message
import email.parser
import email.utils
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLServerConnectionCreator,
    IReactorThreads,
    IReactorTime,
)
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import Resource
from zope.interface import implementer

from reload.config import BootstrapNode, ConfigError, OverlayConfiguration, defaultConfiguration
from reload.enrollment.protocol import (
    BAD_CSR,
    CERTIFICATE_CONTENT_TYPE,
    CONFIGURATION_CONTENT_TYPE,
    ENROLLMENT_PATH,
    FAILED_AUTHENTICATION,
    NODE_IDS_NOT_AVAILABLE,
    USERNAME_NOT_AVAILABLE,
)
from reload.enrollment.store import (
    CA_CERTIFICATE_FILE,
    EnrollmentStore,
    StoreError,
    TlsCredentials,
    checkPassword,
    userNameFor,
)
from reload.security.certificates import issueCertificate
from reload.security.keys import RSA_KEY_SIZE

__all__ = [
    "MAX_REQUEST_SIZE",
    "ConfigurationResource",
    "EnrollmentAuthority",
    "EnrollmentForm",
    "EnrollmentRefused",
    "EnrollmentResource",
    "EnrollmentService",
    "FormPart",
    "LimitedRequest",
    "enrollmentUrl",
    "generateConfiguration",
    "makeSite",
    "parseCsr",
    "parseEnrollmentForm",
    "parseMultipartForm",
    "serverContextFactory",
]

#: A CSR is one or two kilobytes; the whole form is refused beyond this.
MAX_REQUEST_SIZE = 64 * 1024
#: More form parts than this is not an enrollment request.
MAX_FORM_PARTS = 16
#: Idle HTTP connections are closed after this many seconds.
IDLE_TIMEOUT = 30

_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20"
_log = Logger()


class EnrollmentRefused(Exception):
    """The answer to a request that gets no certificate: ``status`` 403
    with one of the section 11.3 tokens as ``body``, or 400/413 for a
    request that is not an enrollment form.  ``detail`` is for the log."""

    def __init__(self, status: int, body: str, detail: str = "") -> None:
        super().__init__(f"{status} {body}" + (f": {detail}" if detail else ""))
        self.status = status
        self.body = body
        self.detail = detail


def _forbidden(token: str, detail: str = "") -> EnrollmentRefused:
    return EnrollmentRefused(http.FORBIDDEN, token, detail)


def _badRequest(detail: str) -> EnrollmentRefused:
    return EnrollmentRefused(http.BAD_REQUEST, f"bad request: {detail}", detail)


# -- multipart/form-data (RFC 7578) ----------------------------------------------


@dataclass(frozen=True)
class FormPart:
    """One part of a multipart/form-data body."""

    name: str
    value: bytes
    contentType: str


def _headerMessage(raw: bytes) -> email.message.Message:
    return email.parser.BytesHeaderParser().parsebytes(raw + b"\r\n\r\n")


def _param(message: email.message.Message, name: str, header: str) -> str | None:
    value = message.get_param(name, header=header)
    if value is None or isinstance(value, str):
        return value
    return email.utils.collapse_rfc2231_value(value)


def parseMultipartForm(body: bytes, contentType: str) -> list[FormPart]:
    """The parts of a ``multipart/form-data`` body (RFC 7578), values byte
    for byte as sent (binary DER included).  Raises
    :class:`EnrollmentRefused` (400) for anything that is not one."""
    headers = _headerMessage(f"Content-Type: {contentType}".encode("latin-1", "replace"))
    if headers.get_content_type() != "multipart/form-data":
        raise _badRequest("the body must be multipart/form-data (section 11.3)")
    boundary = _param(headers, "boundary", "content-type")
    if not boundary or len(boundary) > 70 or not boundary.isascii():
        raise _badRequest("multipart/form-data without a usable boundary")
    delimiter = b"\r\n--" + boundary.encode("ascii")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 2:
        raise _badRequest("no part in the multipart body")
    parts: list[FormPart] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return parts
        if len(parts) >= MAX_FORM_PARTS:
            raise _badRequest(f"more than {MAX_FORM_PARTS} form parts")
        parts.append(_formPart(chunk))
    raise _badRequest("the multipart body has no closing boundary")


_PADDING = re.compile(rb"[ \t]*\r\n")


def _formPart(chunk: bytes) -> FormPart:
    padding = _PADDING.match(chunk)
    if padding is None:
        raise _badRequest("malformed multipart boundary line")
    rest = chunk[padding.end() :]
    if rest.startswith(b"\r\n"):
        rawHeaders, value = b"", rest[2:]
    else:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            raise _badRequest("a form part has no end of headers")
        rawHeaders, value = rest[:end], rest[end + 4 :]
    try:
        message = _headerMessage(rawHeaders)
    except (ValueError, UnicodeError):
        raise _badRequest("unreadable form part headers") from None
    disposition = message.get("content-disposition")
    if disposition is None or message.get_content_disposition() != "form-data":
        raise _badRequest("a form part without Content-Disposition: form-data")
    name = _param(message, "name", "content-disposition")
    if not name:
        raise _badRequest("a form part without a name")
    encoding = (message.get("content-transfer-encoding") or "binary").strip().lower()
    if encoding == "base64":
        try:
            value = base64.b64decode(b"".join(value.split()), validate=True)
        except ValueError:
            raise _badRequest(f"form part {name!r}: bad base64") from None
    elif encoding not in ("binary", "8bit", "7bit"):
        raise _badRequest(f"form part {name!r}: unknown transfer encoding {encoding!r}")
    return FormPart(name, value, message.get_content_type())


@dataclass(frozen=True)
class EnrollmentForm:
    """The parameters of a section 11.3 request, not yet checked."""

    username: bytes | None
    password: bytes | None
    nodeIds: bytes | None
    csr: bytes | None
    csrContentType: str | None


def parseEnrollmentForm(body: bytes, contentType: str | None) -> EnrollmentForm:
    """The enrollment parameters of a request body; 400 if it is not a form
    or names a parameter twice.  Unknown parameters are ignored."""
    if contentType is None:
        raise _badRequest("no Content-Type; the body must be multipart/form-data")
    fields: dict[str, FormPart] = {}
    for part in parseMultipartForm(body, contentType):
        if part.name in fields:
            raise _badRequest(f"the form parameter {part.name!r} appears twice")
        fields[part.name] = part

    def value(name: str) -> bytes | None:
        part = fields.get(name)
        return None if part is None else part.value

    csr = fields.get("csr")
    return EnrollmentForm(
        value("username"),
        value("password"),
        value("nodeids"),
        None if csr is None else csr.value,
        None if csr is None else csr.contentType,
    )


# -- the decision -------------------------------------------------------------


def parseCsr(data: bytes) -> x509.CertificateSigningRequest:
    """A PKCS#10 request, DER (what ``application/pkcs10`` carries) or PEM,
    whose signature verifies and whose key a RELOAD node may hold (ECDSA on
    P-256/384/521, RSA of 2048 bits or more).  403 ``bad_CSR`` otherwise."""
    if not data:
        raise _forbidden(BAD_CSR, "empty csr")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise _forbidden(BAD_CSR, f"not a PKCS#10 request: {exc}") from None
    try:
        valid = csr.is_signature_valid
        key = csr.public_key()
    except Exception as exc:
        raise _forbidden(BAD_CSR, f"unusable request: {exc}") from None
    if not valid:
        raise _forbidden(BAD_CSR, "the request's signature does not verify")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < RSA_KEY_SIZE:
            raise _forbidden(BAD_CSR, f"RSA key of {key.key_size} bits")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise _forbidden(BAD_CSR, f"EC key on {key.curve.name}")
    else:
        raise _forbidden(BAD_CSR, f"{type(key).__name__} keys cannot sign RELOAD messages")
    return csr


def _requestedUserNames(csr: x509.CertificateSigningRequest) -> set[str]:
    """The user names a CSR asks for: rfc822Names of its subjectAltName
    request and emailAddress attributes of its subject."""
    names: set[str] = set()
    try:
        extensions = csr.extensions
    except Exception as exc:
        raise _forbidden(BAD_CSR, f"unreadable requested extensions: {exc}") from None
    for extension in extensions:
        if isinstance(extension.value, x509.SubjectAlternativeName):
            names.update(extension.value.get_values_for_type(x509.RFC822Name))
    for attribute in csr.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        names.add(str(attribute.value))
    return names


class EnrollmentAuthority:
    """Decides section 11.3 requests and issues the certificates.

    ``maxNodeIds`` is the most Node-IDs one request may ask for;
    ``validity`` the lifetime of issued certificates; ``passwordChecker``
    runs :func:`~reload.enrollment.store.checkPassword` (in a thread, by
    default, since scrypt takes some 50 ms); ``clock`` gives the time.
    """

    def __init__(
        self,
        store: EnrollmentStore,
        clock: IReactorTime,
        passwordChecker: Callable[[bytes, str | None], Deferred[bool]],
        *,
        maxNodeIds: int = 1,
        validity: datetime.timedelta = datetime.timedelta(days=365),
    ) -> None:
        if maxNodeIds < 1:
            raise ValueError("maxNodeIds is at least 1")
        self.store = store
        self.overlayName = store.overlayName
        self.clock = clock
        self.passwordChecker = passwordChecker
        self.maxNodeIds = maxNodeIds
        self.validity = validity

    @classmethod
    def inThreads(cls, store: EnrollmentStore, reactor: Any, **kwargs: Any) -> EnrollmentAuthority:
        """An authority that checks passwords in ``reactor``'s thread pool."""
        threads: IReactorThreads = reactor

        def checker(password: bytes, stored: str | None) -> Deferred[bool]:
            return deferToThreadPool(
                reactor, threads.getThreadPool(), checkPassword, password, stored
            )

        return cls(store, reactor, checker, **kwargs)

    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)

    async def enroll(self, form: EnrollmentForm) -> x509.Certificate:
        """The certificate for ``form``, or :class:`EnrollmentRefused`.

        The account is authenticated first; until then the requester learns
        nothing, not even whether its CSR is any good (section 11.3: no
        Node-ID "prior to authenticating").
        """
        account = await self._authenticate(form.username, form.password)
        count = self._nodeIdCount(form.nodeIds)
        if form.csr is None:
            raise _forbidden(BAD_CSR, "no csr parameter")
        csr = parseCsr(form.csr)
        userName = userNameFor(account, self.overlayName)
        requested = _requestedUserNames(csr)
        if requested - {userName}:
            raise _forbidden(
                USERNAME_NOT_AVAILABLE,
                f"{account!r} asked for {', '.join(sorted(requested))}, may have {userName}",
            )
        nodeIds = self.store.nodeIdsFor(account, count)
        key = csr.public_key()
        assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        certificate = issueCertificate(
            self.store.caKey,
            self.store.caCertificate,
            key,
            nodeIds,
            userName,
            self.overlayName,
            validity=self.validity,
            now=self.now(),
        )
        self.store.recordIssued(certificate)
        _log.info(
            "enrolled {account} as {userName}, Node-IDs {nodeIds}, serial {serial:x}",
            account=account,
            userName=userName,
            nodeIds=", ".join(n.hex() for n in nodeIds),
            serial=certificate.serial_number,
        )
        return certificate

    async def _authenticate(self, username: bytes | None, password: bytes | None) -> str:
        # Section 11.3: UTF-8 strings "compared as binary objects".
        if username is None or password is None:
            raise _forbidden(FAILED_AUTHENTICATION, "username or password missing")
        try:
            account: str | None = username.decode("utf-8")
        except UnicodeDecodeError:
            account = None
        stored = None if account is None else self.store.passwordHash(account)
        if not await self.passwordChecker(password, stored) or account is None:
            raise _forbidden(FAILED_AUTHENTICATION, f"for {username!r}")
        return account

    def _nodeIdCount(self, value: bytes | None) -> int:
        if value is None:
            return 1
        text = value.strip()
        if not text.isdigit() or len(text) > 9:
            raise _badRequest("nodeids is not a number")
        count = int(text)
        if not 1 <= count <= self.maxNodeIds:
            raise _forbidden(
                NODE_IDS_NOT_AVAILABLE, f"{count} asked, 1 to {self.maxNodeIds} allowed"
            )
        return count


# -- twisted.web ----------------------------------------------------------------


class LimitedRequest(server.Request):
    """A request whose body may not exceed :data:`MAX_REQUEST_SIZE`.

    A larger Content-Length is answered with 413 as soon as the headers are
    in, a chunked body as soon as it grows too large; the connection is
    closed and nothing more is read or kept.  The body is never parsed as a
    form by twisted.web itself (its parser answers a malformed form with a
    bare 400 and a disconnect): :func:`parseEnrollmentForm` does that.
    """

    maxSize = MAX_REQUEST_SIZE

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)
        self._received = 0
        self._tooLarge = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.maxSize:
            # No "100 Continue" after the refusal.
            self.requestHeaders.removeHeader(b"expect")
            self._refuseTooLarge()
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._tooLarge:
            return
        self._received += len(data)
        if self._received > self.maxSize:
            self._refuseTooLarge()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._tooLarge:
            return
        super().requestReceived(command, path, version)

    def _refuseTooLarge(self) -> None:
        self._tooLarge = True
        _log.info(
            "refused a request body over {limit} bytes from {client}",
            limit=self.maxSize,
            client=self.getClientAddress(),
        )
        channel = self.channel
        assert channel.transport is not None
        channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\n"
            b"request body too large"
        )
        channel.loseConnection()


def _send(request: server.Request, status: int, contentType: str, body: bytes) -> None:
    request.setResponseCode(status)
    request.setHeader(b"content-type", contentType.encode("ascii"))
    request.setHeader(b"content-length", str(len(body)).encode("ascii"))
    request.setHeader(b"cache-control", b"no-store")
    request.write(body)
    request.finish()


class _Resource(Resource):
    """A resource with no children (404) that answers the methods it has a
    ``render_`` method for and 405 to the others, in plain text (Twisted's
    own error pages are HTML and partly deprecated)."""

    def getChild(self, path: bytes, request: server.Request) -> Resource:
        return _NotFound()

    #: The methods answered; HEAD is GET without the body (twisted.web).
    methods: tuple[str, ...] = ()

    def render(self, request: server.Request) -> bytes | int:
        method = request.method.decode("ascii", "replace")
        if method not in self.methods:
            request.setResponseCode(http.NOT_ALLOWED)
            request.setHeader(b"allow", ", ".join(self.methods).encode("ascii"))
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return f"method {method} not allowed".encode()
        handler = getattr(self, "render_" + ("GET" if method == "HEAD" else method))
        result: bytes | int = handler(request)
        return result


class _NotFound(_Resource):
    def render(self, request: server.Request) -> bytes:
        request.setResponseCode(http.NOT_FOUND)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"not found"


class _Directory(_Resource):
    """A path segment with children, itself 404."""

    def render(self, request: server.Request) -> bytes:
        return _NotFound().render(request)


class ConfigurationResource(_Resource):
    """``GET /.well-known/reload-config`` (section 11.2): the document
    ``document()`` returns, or 503 while there is none yet."""

    methods = ("GET", "HEAD")

    def __init__(self, document: Callable[[], bytes | None]) -> None:
        super().__init__()
        self.document = document

    def render_GET(self, request: server.Request) -> bytes:
        data = self.document()
        if data is None:
            request.setResponseCode(http.SERVICE_UNAVAILABLE)
            request.setHeader(b"content-type", b"text/plain")
            return b"the configuration is not ready yet"
        request.setHeader(b"content-type", CONFIGURATION_CONTENT_TYPE.encode("ascii"))
        return data


class EnrollmentResource(_Resource):
    """``POST /enroll`` (section 11.3)."""

    methods = ("POST",)

    def __init__(self, authority: EnrollmentAuthority) -> None:
        super().__init__()
        self.authority = authority

    def render_POST(self, request: server.Request) -> int:
        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)
        contentType = request.getHeader(b"content-type")
        content = request.content
        assert content is not None
        content.seek(0)
        body = content.read()

        async def answer() -> x509.Certificate:
            form = parseEnrollmentForm(
                body, None if contentType is None else contentType.decode("latin-1")
            )
            return await self.authority.enroll(form)

        def issued(certificate: x509.Certificate) -> None:
            if not gone:
                der = certificate.public_bytes(serialization.Encoding.DER)
                _send(request, http.OK, CERTIFICATE_CONTENT_TYPE, der)

        def refused(failure: Failure) -> None:
            if failure.check(EnrollmentRefused):
                refusal = failure.value
                assert isinstance(refusal, EnrollmentRefused)
                _log.info(
                    "enrollment refused to {client}: {status} {token} ({detail})",
                    client=request.getClientAddress(),
                    status=refusal.status,
                    token=refusal.body,
                    detail=refusal.detail,
                )
                status, text = refusal.status, refusal.body
            else:
                _log.failure("enrollment request failed", failure)
                status, text = http.INTERNAL_SERVER_ERROR, "internal error"
            if not gone:
                _send(request, status, "text/plain; charset=utf-8", text.encode("utf-8"))

        d = Deferred.fromCoroutine(answer())
        d.addCallbacks(issued, refused)
        d.addErrback(lambda f: _log.failure("answering an enrollment request failed", f))
        return server.NOT_DONE_YET


def makeSite(authority: EnrollmentAuthority, document: Callable[[], bytes | None]) -> server.Site:
    """The web site: the configuration (section 11.2) and enrollment
    (section 11.3); everything else is 404, other methods 405."""
    root = _Directory()
    wellKnown = _Directory()
    wellKnown.putChild(b"reload-config", ConfigurationResource(document))
    root.putChild(b".well-known", wellKnown)
    root.putChild(ENROLLMENT_PATH.lstrip("/").encode("ascii"), EnrollmentResource(authority))
    site = server.Site(root, requestFactory=LimitedRequest)
    site.displayTracebacks = False
    site.timeOut = IDLE_TIMEOUT
    return site


@implementer(IOpenSSLServerConnectionCreator)
class _ServerTls:
    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self._context, None)


def serverContextFactory(credentials: TlsCredentials) -> IOpenSSLServerConnectionCreator:
    """The TLS server side of HTTPS (sections 11.2, 11.3: "MUST be
    performed over HTTPS"), for ``TLSMemoryBIOFactory(creator, False,
    site)``: the server certificate and its chain; TLS 1.2 or later, with
    ECDHE and AEAD ciphers only on TLS 1.2; no compression or
    renegotiation.  Clients are not asked for a certificate."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(
        SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_RENEGOTIATION
    )
    context.set_cipher_list(_TLS12_CIPHERS)
    context.use_certificate(credentials.certificate)
    context.use_privatekey(credentials.key)
    context.check_privatekey()
    for certificate in credentials.chain:
        context.add_extra_chain_cert(certificate)
    return cast(IOpenSSLServerConnectionCreator, _ServerTls(context))


# -- the service ----------------------------------------------------------------


def enrollmentUrl(hostname: str, port: int) -> str:
    """``https://HOST[:PORT]/enroll``; IPv6 literals in brackets."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"https://{host}{'' if port == 443 else f':{port}'}{ENROLLMENT_PATH}"


def generateConfiguration(
    store: EnrollmentStore,
    enrollmentServer: str,
    bootstrapNodes: Sequence[BootstrapNode] = (),
) -> OverlayConfiguration:
    """The configuration this server serves when it is given none: the
    embedded default (:func:`reload.config.defaultConfiguration`) for the
    store's overlay, but with enrollment instead of self-signed
    certificates (section 11.1): self-signed-permitted false, the CA as the
    only root-cert, this server as the enrollment-server."""
    base = defaultConfiguration(store.overlayName)
    return dataclasses.replace(
        base,
        nodeIdLength=store.nodeIdLength,
        selfSignedPermitted=False,
        selfSignedDigest=None,
        rootCerts=(store.caCertificate.public_bytes(serialization.Encoding.DER),),
        enrollmentServers=(enrollmentServer,),
        bootstrapNodes=tuple(bootstrapNodes),
    )


class EnrollmentService(Service):
    """Listens on ``listen`` (a stream endpoint; TLS is added here, with
    ``credentials``) and serves :func:`makeSite`.

    ``configuration`` is the document to serve; ``None`` means generate it
    with :func:`generateConfiguration` once the port is known (the
    enrollment URL names it), published through the store so that a
    changed document gets a new sequence number.  :meth:`whenListening`
    gives the listening port.
    """

    name = "enrollment"

    def __init__(
        self,
        reactor: Any,
        store: EnrollmentStore,
        credentials: TlsCredentials,
        listen: str,
        hostname: str,
        *,
        configuration: bytes | None = None,
        bootstrapNodes: Sequence[BootstrapNode] = (),
        maxNodeIds: int = 1,
        validity: datetime.timedelta = datetime.timedelta(days=365),
    ) -> None:
        self.reactor = reactor
        self.store = store
        self.credentials = credentials
        self.listen = listen
        self.hostname = hostname
        self.bootstrapNodes = tuple(bootstrapNodes)
        self.document: bytes | None = configuration
        self._generate = configuration is None
        self.authority = EnrollmentAuthority.inThreads(
            store, reactor, maxNodeIds=maxNodeIds, validity=validity
        )
        self.site = makeSite(self.authority, lambda: self.document)
        self.port: IListeningPort | None = None
        self._waiting: list[Deferred[IListeningPort]] = []

    def whenListening(self) -> Deferred[IListeningPort]:
        """Fires with the listening port (at once if already listening)."""
        if self.port is not None:
            return succeed(self.port)
        d: Deferred[IListeningPort] = Deferred()
        self._waiting.append(d)
        return d

    def startService(self) -> None:
        super().startService()
        endpoint = serverFromString(self.reactor, self.listen)
        factory = TLSMemoryBIOFactory(serverContextFactory(self.credentials), False, self.site)
        failures: list[Failure] = []
        d = endpoint.listen(factory)
        d.addCallbacks(self._listening, failures.append)
        if failures:
            # Like StreamServerEndpointService under twistd: a port that
            # cannot be bound stops the start.
            failures[0].raiseException()

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        if self._generate:
            url = enrollmentUrl(self.hostname, getattr(address, "port", 443))
            try:
                candidate = generateConfiguration(self.store, url, self.bootstrapNodes)
                self.document = self.store.publishConfiguration(candidate)
            except (ConfigError, StoreError):
                # Checked by the options already; should it fail anyway, the
                # configuration is answered with 503, enrollment still works.
                _log.failure("cannot generate the overlay configuration")
        _log.info(
            "RELOAD enrollment server for {overlay} listening on {address}, CA {ca}",
            overlay=self.store.overlayName,
            address=address,
            ca=str(self.store.directory / CA_CERTIFICATE_FILE),
        )
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(port)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        stopped: Deferred[None] | None = port.stopListening()
        return stopped if stopped is not None else succeed(None)
