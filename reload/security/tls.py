"""TLS (and DTLS) contexts for overlay links, with one verify callback.

RFC 6940 section 13.6.3: peers authenticate each other on every link with
certificate-based mutual TLS; section 11.3 fixes what the certificates carry.
OpenSSL's own verification knows nothing of reload URIs, Node-IDs or
self-signed Node-IDs (section 11.3.1), and Twisted's helpers would accept a
CA-signed certificate without any subjectAltName (DESIGN.md, known pitfalls).
So the context built here has ONE verify callback that ignores OpenSSL's
verdict and asks :meth:`reload.security.trust.TrustPolicy.verify` about the
whole peer chain, on the client and on the server side alike:

- at depth > 0 it only records the certificate and says yes, so that
  OpenSSL goes on to depth 0;
- at depth 0 it verifies the chain (the peer's chain as sent, or the
  certificates recorded at the other depths) at the injected clock's time,
  with the Node-ID the client expects to reach, and stores the resulting
  :class:`~reload.security.trust.VerifiedPeer` for :func:`verifiedPeerOf`.

Per-connection facts (clock, role, expected Node-ID, result) are registered
with :func:`prepareConnection`.  They cannot live in the Connection's app
data as one would like: Twisted's ``TLSMemoryBIOFactory`` calls
``set_app_data(protocol)`` after the connection creator returns, so they are
kept in a weak map keyed by the Connection.  A connection nobody prepared is
rejected.

:func:`makeContext` takes the SSL method, so the DTLS link uses the same
context and callback with ``SSL.DTLS_METHOD``: create the Connection, call
:func:`prepareConnection`, and read :func:`verifiedPeerOf` after the
handshake.

With TLS 1.3 the client finishes its handshake before the server has looked
at the client certificate; a rejected client learns it only when the
connection breaks.  Protocols should start work only after
``IHandshakeListener.handshakeCompleted`` (which the side that rejects never
sees) and read the peer with :func:`verifiedPeerOf`.
"""

from __future__ import annotations

import datetime
import hashlib
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger
from zope.interface import implementer

from reload.security.certificates import PeerIdentity
from reload.security.keylog import KeyLog, keyLogFile
from reload.security.trust import (
    CLIENT_AUTH,
    SERVER_AUTH,
    CertificateRejected,
    TrustPolicy,
    VerifiedPeer,
)

__all__ = [
    "DTLS1_2_VERSION",
    "Clock",
    "LinkVerification",
    "clientConnectionCreator",
    "makeContext",
    "prepareConnection",
    "rejectionOf",
    "serverConnectionCreator",
    "verificationOf",
    "verifiedPeerOf",
]

log = Logger()

#: OpenSSL's DTLS 1.2 version number (pyOpenSSL has no constant for it).
DTLS1_2_VERSION = 0xFEFD
_DTLS_METHODS = frozenset({SSL.DTLS_METHOD, SSL.DTLS_SERVER_METHOD, SSL.DTLS_CLIENT_METHOD})
# TLS 1.2 suites: ephemeral ECDH key exchange with AEAD ciphers only (TLS 1.3
# suites are all ephemeral and AEAD already).
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!PSK:!SRP"
_VERIFY_MODE = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT


class Clock(Protocol):
    """What the verify callback needs of ``IReactorTime``: the time (a
    reactor, or ``twisted.internet.task.Clock`` in tests)."""

    def seconds(self) -> float: ...


@dataclass
class LinkVerification:
    """What the verify callback knows about one connection, and what it
    found: ``verifiedPeer`` after a successful check, ``rejection`` after a
    failed one."""

    clock: Clock
    isClient: bool
    expectedNodeId: bytes | None = None
    verifiedPeer: VerifiedPeer | None = None
    rejection: CertificateRejected | None = None
    _issuers: dict[int, x509.Certificate] = field(default_factory=dict, repr=False)

    @property
    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)

    @property
    def purpose(self) -> x509.ObjectIdentifier:
        """The TLS role of the *peer*: a client verifies a server."""
        return SERVER_AUTH if self.isClient else CLIENT_AUTH


# Keyed by the SSL.Connection and, for Twisted transports, also by the TLS
# protocol: Twisted drops its Connection when the link is lost, and the
# outcome should stay readable after that.
_links: weakref.WeakKeyDictionary[object, LinkVerification] = weakref.WeakKeyDictionary()


def prepareConnection(
    connection: SSL.Connection,
    clock: Clock,
    *,
    isClient: bool,
    expectedNodeId: bytes | None = None,
    transport: object | None = None,
) -> LinkVerification:
    """Register what the verify callback needs for ``connection``: the
    clock it reads the time from, its role, and (for a client) the Node-ID
    it expects the server to hold, None for any (e.g. a bootstrap node,
    section 11.4, whose Node-ID is not known yet).  ``transport`` (the
    object a protocol sees as its transport) is registered as well, so
    that :func:`verifiedPeerOf` works on it even after the link is lost."""
    state = LinkVerification(clock, isClient, expectedNodeId)
    _links[connection] = state
    if transport is not None:
        _links[transport] = state
    return state


def verificationOf(transportOrConnection: object) -> LinkVerification | None:
    """The verification state of an ``SSL.Connection`` or of a transport
    registered with :func:`prepareConnection` (or whose ``getHandle()`` is
    a prepared Connection); None if it was never prepared."""
    try:
        state = _links.get(transportOrConnection)
    except TypeError:  # not weakly referenceable
        state = None
    if state is None and not isinstance(transportOrConnection, SSL.Connection):
        getHandle = getattr(transportOrConnection, "getHandle", None)
        handle = getHandle() if getHandle is not None else None
        if isinstance(handle, SSL.Connection):
            state = _links.get(handle)
    return state


def verifiedPeerOf(transportOrConnection: object) -> VerifiedPeer:
    """The peer the verify callback accepted on this connection (an
    ``SSL.Connection``, or the transport of a protocol above Twisted's TLS
    layer).  Raises :class:`CertificateRejected` if the peer was rejected,
    not verified (yet), or the connection was never prepared."""
    state = verificationOf(transportOrConnection)
    if state is None:
        raise CertificateRejected("the connection was not prepared for RELOAD verification")
    if state.rejection is not None:
        raise state.rejection
    if state.verifiedPeer is None:
        raise CertificateRejected("the peer's certificate has not been verified")
    return state.verifiedPeer


def rejectionOf(transportOrConnection: object) -> CertificateRejected | None:
    """The rejection the verify callback recorded on this connection."""
    state = verificationOf(transportOrConnection)
    return None if state is None else state.rejection


def _peerChain(
    connection: SSL.Connection, leaf: x509.Certificate, state: LinkVerification
) -> list[x509.Certificate]:
    """The peer's certificates, leaf first.

    The client side sees the chain as the server sent it; on the server
    side OpenSSL stores the client's chain only after verification, so the
    certificates recorded at depths > 0 stand in for it.
    """
    sent = connection.get_peer_cert_chain(as_cryptography=True)
    if sent and sent[0] == leaf:
        return list(sent)
    return [leaf, *(state._issuers[d] for d in sorted(state._issuers))]


def _makeVerifyCallback(trust: TrustPolicy) -> Any:
    def verifyCallback(
        connection: SSL.Connection, certificate: Any, errno: int, depth: int, preverifyOk: int
    ) -> bool:
        # OpenSSL's verdict (preverifyOk, errno) is ignored on purpose: it
        # knows neither the overlay's rules nor self-signed Node-IDs.
        state = _links.get(connection)
        if state is None:
            log.warn("TLS connection without RELOAD verification state: rejected")
            return False
        try:
            cert = certificate.to_cryptography()
            if depth > 0:
                state._issuers[depth] = cert
                return True
            if state.verifiedPeer is not None:
                # OpenSSL may call again at depth 0; a different leaf (a
                # renegotiation to another identity) is refused.
                if state.verifiedPeer.certificate == cert:
                    return True
                raise CertificateRejected("the peer changed its certificate on this connection")
            chain = _peerChain(connection, cert, state)
            state.verifiedPeer = trust.verify(
                chain, state.now, state.expectedNodeId, purpose=state.purpose
            )
            return True
        except CertificateRejected as exc:
            rejection = exc
        except Exception as exc:
            rejection = CertificateRejected(f"verify callback failed: {type(exc).__name__}: {exc}")
        state.verifiedPeer = None
        state.rejection = rejection
        log.warn(
            "TLS peer certificate rejected ({role} side): {reason}",
            role="client" if state.isClient else "server",
            reason=rejection.reason,
        )
        return False

    return verifyCallback


def makeContext(
    identity: PeerIdentity, trust: TrustPolicy, method: int = SSL.TLS_METHOD
) -> SSL.Context:
    """A context for overlay links with ``identity``'s certificate (and
    chain) and the one verify callback checking peers against ``trust``.

    With ``SSLKEYLOGFILE`` set, the session secrets are appended to that
    file (:mod:`reload.security.keylog`).  Mutual authentication is required (VERIFY_PEER |
    VERIFY_FAIL_IF_NO_PEER_CERT) whatever the role; at least TLS 1.2 (DTLS
    1.2 for the DTLS methods); ECDHE key exchange only; no session
    resumption, so that every connection's peer is verified.  Connections
    made from it must be registered with :func:`prepareConnection`.
    """
    context = SSL.Context(method)
    if method in _DTLS_METHODS:
        context.set_min_proto_version(DTLS1_2_VERSION)
    else:
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(
        SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_NO_TICKET
        | SSL.OP_NO_RENEGOTIATION
    )
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    context.set_cipher_list(_TLS12_CIPHERS)
    context.use_certificate(identity.certificate)
    context.use_privatekey(identity.privateKey)
    context.check_privatekey()
    for certificate in identity.chain:
        context.add_extra_chain_cert(certificate)
    context.set_verify(_VERIFY_MODE, _makeVerifyCallback(trust))
    context.set_verify_depth(trust.maxChainLength + 1)
    # A server asks for client certificates; a session id context is needed
    # with client verification even when the cache is off.
    identityDer = identity.certificate.public_bytes(serialization.Encoding.DER)
    context.set_session_id(hashlib.sha256(identityDer).digest())
    path = keyLogFile()
    if path is not None:
        KeyLog(path).install(context)
    return context


@implementer(IOpenSSLServerConnectionCreator)
class _ServerConnectionCreator:
    def __init__(self, identity: PeerIdentity, trust: TrustPolicy, clock: Clock) -> None:
        self._context = makeContext(identity, trust)
        self._clock = clock

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        prepareConnection(connection, self._clock, isClient=False, transport=tlsProtocol)
        return connection


@implementer(IOpenSSLClientConnectionCreator)
class _ClientConnectionCreator:
    def __init__(
        self,
        identity: PeerIdentity,
        trust: TrustPolicy,
        expectedNodeId: bytes | None,
        clock: Clock,
    ) -> None:
        self._context = makeContext(identity, trust)
        self._expectedNodeId = expectedNodeId
        self._clock = clock

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        prepareConnection(
            connection,
            self._clock,
            isClient=True,
            expectedNodeId=self._expectedNodeId,
            transport=tlsProtocol,
        )
        return connection


def serverConnectionCreator(
    identity: PeerIdentity, trust: TrustPolicy, clock: Clock
) -> IOpenSSLServerConnectionCreator:
    """For ``TLSMemoryBIOFactory(creator, False, factory)``: the server side
    of overlay links, requiring and verifying a client certificate."""
    return cast(IOpenSSLServerConnectionCreator, _ServerConnectionCreator(identity, trust, clock))


def clientConnectionCreator(
    identity: PeerIdentity,
    trust: TrustPolicy,
    expectedNodeId: bytes | None,
    clock: Clock,
) -> IOpenSSLClientConnectionCreator:
    """For ``wrapClientTLS(creator, endpoint)`` or ``TLSMemoryBIOFactory(
    creator, True, factory)``: the client side of an overlay link to the
    node ``expectedNodeId`` (None: any Node-ID the trust policy accepts)."""
    creator = _ClientConnectionCreator(identity, trust, expectedNodeId, clock)
    return cast(IOpenSSLClientConnectionCreator, creator)
