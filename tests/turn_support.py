"""Helpers for the TURN tests and benchmark: free ports and coturn.

coturn (Debian package ``coturn``) is the independent implementation the
built-in server is checked against: its ``turnserver`` answers the probe,
and its ``turnutils_uclient`` and ``turnutils_peer`` drive the built-in
server.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from usages.turnserver.stun import (
    Attr,
    Message,
    MessageClass,
    Method,
    StreamFramer,
    StunDecodeError,
    decodeDatagram,
    decodeMessage,
    encodeMessage,
    longTermKey,
    newTransactionId,
)

HOST = "127.0.0.1"


def freeTurnPort(low: int = 20000, high: int = 30000) -> int:
    """A port on 127.0.0.1 free for both UDP and TCP now (below the
    ephemeral range, so outbound sockets do not take it meanwhile)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((HOST, port))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((HOST, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for a TURN server")


def freePortRange(size: int, low: int = 30000, high: int = 32000) -> tuple[int, int]:
    """``size`` consecutive UDP ports free now, for relayed addresses."""
    rng = random.Random()
    for _ in range(100):
        start = rng.randrange(low, high - size) & ~1
        sockets: list[socket.socket] = []
        try:
            for port in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return start, start + size - 1
    raise RuntimeError("no free port range")


def bindingAnswers(port: int, host: str = HOST, timeout: float = 0.3) -> bool:
    """A blocking STUN Binding over UDP: does something answer there?"""
    tid = newTransactionId()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(encodeMessage(Method.BINDING, MessageClass.REQUEST, tid), (host, port))
            data, _ = s.recvfrom(2048)
        except OSError:
            return False
    try:
        return decodeMessage(data).transactionId == tid
    except StunDecodeError:
        return False


@contextmanager
def coturn(
    workdir: Path,
    port: int,
    *,
    users: Mapping[str, str] | None = None,
    realm: str = "reload",
    relayPorts: tuple[int, int] | None = None,
    extra: tuple[str, ...] = (),
    startTimeout: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run coturn's ``turnserver`` on 127.0.0.1:``port`` (UDP and TCP, no
    TLS, no CLI, no daemon, a database in ``workdir``) until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    low, high = relayPorts or freePortRange(64)
    command = [
        "turnserver", "-n",
        "--listening-ip", HOST, "--listening-port", str(port),
        "--relay-ip", HOST, "--min-port", str(low), "--max-port", str(high),
        "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
        "--realm", realm,
        "--userdb", str(workdir / "turndb"),
        "--pidfile", str(workdir / "turnserver.pid"),
        "--log-file", str(workdir / "turnserver.log"), "--simple-log",
    ]  # fmt: skip
    if users:
        command.append("--lt-cred-mech")
        for name, password in users.items():
            command += ["--user", f"{name}:{password}"]
    else:
        command.append("--no-auth")
    command += list(extra)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
    )
    try:
        deadline = time.monotonic() + startTimeout
        while not bindingAnswers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coturn did not start on port {port}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- a small TURN client on Twisted, for the server's tests -------------------


class TurnTestClient:
    """Speaks to a TURN server over UDP or TCP from the test's reactor:
    requests matched by transaction id, everything else (indications,
    ChannelData) in ``unsolicited``.  It does no retransmission: loopback."""

    def __init__(self, username: str = "", password: str = "", realm: str = "reload") -> None:
        from twisted.internet.defer import DeferredQueue

        self.username = username
        self.password = password
        self.realm = realm
        self.nonce: str | None = None
        self.pending: dict[bytes, Any] = {}
        self.unsolicited: DeferredQueue[Any] = DeferredQueue()
        self.write: Any = None
        self.closed: Any = None

    @property
    def key(self) -> bytes:
        return longTermKey(self.username, self.realm, self.password)

    def received(self, frame: Any) -> None:
        if isinstance(frame, Message) and frame.transactionId in self.pending:
            self.pending.pop(frame.transactionId).callback(frame)
        else:
            self.unsolicited.put(frame)

    def sendRaw(self, data: bytes) -> None:
        self.write(data)

    def request(
        self,
        method: int,
        attributes: list[tuple[int, bytes]] | None = None,
        *,
        authenticate: bool = True,
        integrity: str = "sha1",
        transactionId: bytes | None = None,
        tamper: bool = False,
        timeout: float = 3.0,
    ) -> Any:
        """Send a request (with credentials and the last nonce when
        ``authenticate``) and return a Deferred of the response."""
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred

        tid = transactionId or newTransactionId()
        attrs = list(attributes or [])
        key = None
        if authenticate and self.nonce is not None:
            attrs += [
                (Attr.USERNAME, self.username.encode()),
                (Attr.REALM, self.realm.encode()),
                (Attr.NONCE, self.nonce.encode()),
            ]
            key = self.key
        data = encodeMessage(
            method,
            MessageClass.REQUEST,
            tid,
            attrs,
            integrityKey=key,
            integrity=integrity,
            fingerprint=True,
        )
        if tamper:  # flip a bit of the MESSAGE-INTEGRITY value, fix the fingerprint
            message = decodeMessage(data)
            mi = message.find(Attr.MESSAGE_INTEGRITY) or message.find(Attr.MESSAGE_INTEGRITY_SHA256)
            assert mi is not None
            body = bytearray(data[: len(data) - 8])
            body[mi.offset + 4] ^= 1
            data = encodeMessage(
                method, MessageClass.REQUEST, tid,
                [(a.type, bytes(body[a.offset + 4 : a.offset + 4 + len(a.value)]))
                 for a in message.attributes if a.type != Attr.FINGERPRINT],
                fingerprint=True,
            )  # fmt: skip
        d: Deferred[Message] = Deferred()
        self.pending[tid] = d
        d.addTimeout(timeout, reactor)
        self.write(data)
        return d

    async def authenticatedRequest(
        self, method: int, attributes: list[tuple[int, bytes]] | None = None, **kw: Any
    ) -> Message:
        """A request that learns the realm and nonce from a 401 or 438 and
        tries again once."""
        response: Message = await self.request(method, attributes, **kw)
        error = response.errorCode() if response.messageClass == MessageClass.ERROR else None
        if error is not None and error[0] in (401, 438):
            self.nonce = response.text(Attr.NONCE)
            self.realm = response.text(Attr.REALM) or self.realm
            response = await self.request(method, attributes, **kw)
        return response


async def udpClient(port: int, username: str = "", password: str = "") -> TurnTestClient:
    from twisted.internet import reactor
    from twisted.internet.protocol import DatagramProtocol

    client = TurnTestClient(username, password)

    class _Udp(DatagramProtocol):
        def datagramReceived(self, data: bytes, addr: Any) -> None:
            try:
                client.received(decodeDatagram(data))
            except StunDecodeError:
                client.unsolicited.put(data)

    protocol = _Udp()
    listening = reactor.listenUDP(0, protocol, interface=HOST)  # type: ignore[attr-defined]
    client.write = lambda data: protocol.transport.write(data, (HOST, port))
    client.closed = listening.stopListening
    return client


async def tcpClient(
    port: int, username: str = "", password: str = "", tls: Any = None
) -> TurnTestClient:
    """A client over TCP, or over TLS with ``tls`` (client TLS options)."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.endpoints import (
        SSL4ClientEndpoint,
        TCP4ClientEndpoint,
        connectProtocol,
    )
    from twisted.internet.protocol import Protocol

    client = TurnTestClient(username, password)
    lost: Deferred[None] = Deferred()

    class _Tcp(Protocol):
        framer = StreamFramer()

        def dataReceived(self, data: bytes) -> None:
            for frame in self.framer.feed(data):
                client.received(frame)

        def connectionLost(self, reason: Any = None) -> None:
            lost.callback(None)

    endpoint = (
        TCP4ClientEndpoint(reactor, HOST, port)
        if tls is None
        else SSL4ClientEndpoint(reactor, HOST, port, tls)
    )
    protocol = await connectProtocol(endpoint, _Tcp())
    client.write = protocol.transport.write
    client.closed = lost
    client.transport = protocol.transport  # type: ignore[attr-defined]
    return client


# -- certificates for the TLS listener -------------------------------------------


def makeCertificate(
    name: str, issuer: tuple[Any, Any] | None = None, *, ca: bool = False
) -> tuple[Any, Any]:
    """(key, certificate) with the common name ``name``, signed by
    ``issuer`` (key, certificate) or self-signed; SAN 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signerKey, signer = issuer if issuer is not None else (key, None)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer.subject if signer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
    return key, builder.sign(signerKey, hashes.SHA256())


def twistedCertificate(key: Any, certificate: Any) -> Any:
    """A twisted.internet.ssl.PrivateCertificate of a cryptography pair."""
    from cryptography.hazmat.primitives import serialization
    from twisted.internet import ssl

    pem = certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ssl.PrivateCertificate.loadPEM(pem)
