"""A node or the load driver of ``benchmarks/floor.py``: the work a
replicated RELOAD Store and a Fetch cannot do without, on the stack reload
requires, and nothing else.

Not run by hand: floor.py starts these with ``sys.executable``.  There is
no RELOAD here: no forwarding header, no routing, no transactions, no data
model, no access policy, no link-layer ACKs.  What is left is what any
implementation on Twisted, pyOpenSSL, ECDSA P-256 and SQLite pays:

* every message crosses a TLS link (Twisted's TLSMemoryBIOProtocol over
  TCP on 127.0.0.1, written out at once with
  :func:`reload.link.output.sendNow`, as reload's links do), framed by
  Twisted's Int32StringReceiver, and carries 400 bytes standing for the
  certificate a RELOAD security block carries (RFC 6940 section 6.3.4);
* every message is signed by its sender and verified by its receiver
  (section 6.3.4), every stored value is signed by its writer and verified
  by each node that stores it and by the fetcher (7.1, 7.4.1.1, 7.4.2.2);
* each node that stores a value commits it to its own SQLite file (WAL,
  synchronous=NORMAL, as the peers' default): one row per commit;
* a Store goes to the responsible node, which stores it and copies it to
  its two successors before it answers (section 10.4); a Fetch is answered
  by the responsible node from its file.

So a Store is 7 ECDSA signatures, 9 verifications, 3 commits and 3 round
trips; a Fetch 2 signatures, 3 verifications, one SELECT and one round
trip.  Keys are derived from fixed numbers so that every process knows
every public key without exchanging them.

Protocol with the parent (``_common``): a node says ``{"ready": true,
"port": P}``, then takes ``peers P0,P1,...`` (it links to its two
successors and says ``{"linked": true}``).  The driver takes the ports on
its command line, links to every node, says ``{"ready": true}``, then
answers ``store N`` and ``fetch N`` with the phase's figures.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import sqlite3
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    VALUE_SIZE,
    childArguments,
    dieWithParent,
    logWarningsToStderr,
    percentile,
    say,
)
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from OpenSSL import crypto  # noqa: E402
from twisted.internet import defer, endpoints, ssl  # noqa: E402
from twisted.internet.protocol import Factory  # noqa: E402
from twisted.protocols.basic import Int32StringReceiver  # noqa: E402

from reload.link.output import sendNow  # noqa: E402
from reload.link.tls import LinkTLSFactory  # noqa: E402

STORE, STORE_ANS, REPLICA, REPLICA_ANS, FETCH, FETCH_ANS = range(6)
#: A link-layer ACK: the frame type, the sequence number acknowledged and
#: the mask of the 32 before (section 6.6.2).
ACK = 0xFF
ACK_FRAME = bytes([ACK]) + bytes(8)
#: type, operation, signer index, signature length; then the signature,
#: then the body.  The signature covers the header without its length
#: field, and the body.
HEADER = struct.Struct(">BIBH")
SIGNED_HEADER = struct.Struct(">BIB")
#: Stands for the signer's certificate in a RELOAD security block.
CERTIFICATE = bytes(400)
KEY_SIZE = 20
ECDSA = ec.ECDSA(hashes.SHA256())


def privateKey(index: int) -> ec.EllipticCurvePrivateKey:
    """Node ``index``'s key; the driver is index ``count``."""
    return ec.derive_private_key(0x5EED_0000_0000 + index, ec.SECP256R1())


def certificateFor(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "floor")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


class Keys:
    """This process's key and every process's public key."""

    def __init__(self, own: int, count: int) -> None:
        self.own = own
        self.private = privateKey(own)
        self.public = [privateKey(i).public_key() for i in range(count + 1)]

    def seal(self, kind: int, op: int, body: bytes) -> bytes:
        signature = self.private.sign(SIGNED_HEADER.pack(kind, op, self.own) + body, ECDSA)
        return HEADER.pack(kind, op, self.own, len(signature)) + signature + body

    def open(self, message: bytes) -> tuple[int, int, int, bytes]:
        """(type, operation, signer, body) of a message whose signature
        verifies; raises InvalidSignature otherwise."""
        kind, op, signer, length = HEADER.unpack_from(message)
        start = HEADER.size + length
        body = message[start:]
        self.public[signer].verify(
            message[HEADER.size : start], SIGNED_HEADER.pack(kind, op, signer) + body, ECDSA
        )
        return kind, op, signer, body

    def signValue(self, key: bytes, value: bytes) -> bytes:
        """A stored value: its writer, its signature over key and value,
        the value."""
        signature = self.private.sign(key + value, ECDSA)
        return bytes([self.own]) + struct.pack(">H", len(signature)) + signature + value

    def checkValue(self, key: bytes, record: bytes) -> bytes:
        """The value of a record whose signature verifies."""
        (length,) = struct.unpack_from(">H", record, 1)
        value = record[3 + length :]
        self.public[record[0]].verify(record[3 : 3 + length], key + value, ECDSA)
        return value


class Link(Int32StringReceiver):
    """One TLS connection; messages go to ``handler(link, message)``.

    With ``acks`` every message received is acknowledged by a short frame,
    as RFC 6940 section 6.6.2 asks ("When the receiver receives a message,
    it SHOULD immediately send an ACK message"); what a read makes this
    link write (ACKs and answers) leaves in one write when the read is
    done, as reload's links do.  Received ACKs are dropped (reload's links
    take RTT samples from them)."""

    MAX_LENGTH = 1 << 20

    def __init__(self, handler: Callable[[Link, bytes], None], acks: bool) -> None:
        self.handler = handler
        self.acks = acks
        self.ready = defer.Deferred[Link]()
        self.reading = False
        self.held: list[bytes] = []

    def connectionMade(self) -> None:
        tcp = getattr(self.transport, "transport", None)
        if tcp is not None:
            tcp.setTcpNoDelay(True)
        self.ready.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.reading = True
        try:
            super().dataReceived(data)
        finally:
            self.reading = False
            self.flush()

    def stringReceived(self, string: bytes) -> None:
        if string[0] == ACK:
            return
        if self.acks:
            self.send(ACK_FRAME)
        self.handler(self, string)

    def send(self, message: bytes) -> None:
        self.held.append(struct.pack(">I", len(message)) + message)
        if not self.reading:
            self.flush()

    def flush(self) -> None:
        if self.held and self.transport is not None:
            self.transport.write(b"".join(self.held))
            self.held = []
            sendNow(getattr(self.transport, "transport", None))


class LinkFactory(Factory):
    def __init__(self, handler: Callable[[Link, bytes], None], acks: bool) -> None:
        self.handler = handler
        self.acks = acks

    def buildProtocol(self, addr: Any) -> Link:
        return Link(self.handler, self.acks)


def tlsOptions(keys: Keys) -> ssl.CertificateOptions:
    return ssl.CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(keys.private),
        certificate=crypto.X509.from_cryptography(certificateFor(keys.private)),
    )


def connect(
    reactor: Any, port: int, handler: Callable[[Link, bytes], None], acks: bool
) -> defer.Deferred:
    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    factory = LinkTLSFactory(ssl.CertificateOptions(), True, LinkFactory(handler, acks))
    link = defer.Deferred[Link]()

    def made(wrapper: Any) -> defer.Deferred:
        protocol: Link = wrapper.wrappedProtocol
        return protocol.ready

    endpoint.connect(factory).addCallback(made).chainDeferred(link)
    return link


class Node:
    """A storing node: answers Stores (after copying them to its two
    successors) and Fetches."""

    def __init__(self, keys: Keys, directory: Path) -> None:
        self.keys = keys
        self.db = sqlite3.connect(directory / f"node-{keys.own}.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, record BLOB NOT NULL)")
        self.successors: list[Link] = []
        self.waiting: dict[int, tuple[Link, int]] = {}

    def commit(self, key: bytes, record: bytes) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, record))
        db.execute("COMMIT")

    def received(self, link: Link, message: bytes) -> None:
        keys = self.keys
        kind, op, _, body = keys.open(message)
        if kind in (STORE, REPLICA):
            key, record = body[:KEY_SIZE], body[KEY_SIZE : -len(CERTIFICATE)]
            keys.checkValue(key, record)
            self.commit(key, record)
            if kind == REPLICA:
                link.send(keys.seal(REPLICA_ANS, op, bytes(16) + CERTIFICATE))
                return
            self.waiting[op] = (link, len(self.successors))
            for successor in self.successors:  # each copy signed for its own receiver
                successor.send(keys.seal(REPLICA, op, body))
        elif kind == REPLICA_ANS:
            client, left = self.waiting.pop(op)
            if left > 1:
                self.waiting[op] = (client, left - 1)
                return
            client.send(keys.seal(STORE_ANS, op, bytes(16) + CERTIFICATE))
        elif kind == FETCH:
            row = self.db.execute(
                "SELECT record FROM kv WHERE key=?", (body[:KEY_SIZE],)
            ).fetchone()
            record = bytes(row[0]) if row is not None else b""
            link.send(keys.seal(FETCH_ANS, op, record + CERTIFICATE))


class Driver:
    """Keeps ``concurrency`` operations outstanding and checks every answer."""

    def __init__(self, keys: Keys, links: list[Link], concurrency: int) -> None:
        self.keys = keys
        self.links = links
        self.concurrency = concurrency
        self.pending: dict[int, tuple[bytes, bytes, float]] = {}
        self.nextOp = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.done: defer.Deferred[None] | None = None
        self.todo: list[tuple[bytes, bytes]] = []
        self.kind = STORE

    def run(self, kind: int, pairs: list[tuple[bytes, bytes]]) -> defer.Deferred[None]:
        self.kind, self.todo, self.latencies = kind, list(reversed(pairs)), []
        self.done = defer.Deferred()
        for _ in range(min(self.concurrency, len(self.todo))):
            self.issue()
        return self.done

    def responsible(self, key: bytes) -> Link:
        return self.links[int.from_bytes(key[:4], "big") % len(self.links)]

    def issue(self) -> None:
        key, value = self.todo.pop()
        op = self.nextOp = (self.nextOp + 1) & 0xFFFFFFFF
        self.pending[op] = (key, value, time.monotonic())
        if self.kind == STORE:
            body = key + self.keys.signValue(key, value) + CERTIFICATE
        else:
            body = key + CERTIFICATE
        self.responsible(key).send(self.keys.seal(self.kind, op, body))

    def received(self, link: Link, message: bytes) -> None:
        kind, op, _, body = self.keys.open(message)
        key, value, began = self.pending.pop(op)
        if kind == FETCH_ANS:
            record = body[: -len(CERTIFICATE)]
            if not record or self.keys.checkValue(key, record) != value:
                self.errors += 1
        elif kind != STORE_ANS:
            self.errors += 1
        self.latencies.append(time.monotonic() - began)
        if self.todo:
            self.issue()
        elif not self.pending and self.done is not None:
            done, self.done = self.done, None
            done.callback(None)


def pairsFor(seed: int, count: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    return [(rng.randbytes(KEY_SIZE), rng.randbytes(VALUE_SIZE)) for _ in range(count)]


async def runNode(reactor: Any, args: argparse.Namespace) -> None:
    keys = Keys(args.index, args.count)
    node = Node(keys, Path(args.directory))
    endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    factory = LinkTLSFactory(tlsOptions(keys), False, LinkFactory(node.received, args.acks))
    port = await endpoint.listen(factory)
    say({"ready": True, "port": port.getHost().port})
    line = await readLine()
    ports = [int(p) for p in line.split()[1].split(",")]
    for step in (1, 2):
        successor = (args.index + step) % args.count
        if successor != args.index:
            node.successors.append(
                await connect(reactor, ports[successor], node.received, args.acks)
            )
    say({"linked": True})
    await readLine()  # stdin closed: stop


async def runDriver(reactor: Any, args: argparse.Namespace) -> None:
    keys = Keys(args.count, args.count)
    driver = Driver(keys, [], args.concurrency)
    ports = [int(p) for p in args.ports.split(",")]
    driver.links = [await connect(reactor, port, driver.received, args.acks) for port in ports]
    say({"ready": True})
    pairs = pairsFor(args.seed, args.ops)
    warm = pairsFor(args.seed + 1, args.warmup)
    while True:
        line = await readLine()
        if not line:
            return
        command = line.split()[0]
        if command == "warmup":
            await driver.run(STORE, warm)
            await driver.run(FETCH, warm)
            say({"warm": True})
            continue
        kind = STORE if command == "store" else FETCH
        order = list(pairs)
        if kind == FETCH:
            random.Random(args.seed + 2).shuffle(order)
        began = time.monotonic()
        await driver.run(kind, order)
        ended = time.monotonic()
        latencies = sorted(driver.latencies)
        say(
            {
                "ops": len(latencies),
                "seconds": ended - began,
                "p50_ms": percentile(latencies, 0.50),
                "p99_ms": percentile(latencies, 0.99),
                "errors": driver.errors,
            }
        )


def readLine() -> defer.Deferred[str]:
    """The next line of stdin, read in a thread ('' when it closes)."""
    from twisted.internet import threads

    return threads.deferToThread(sys.stdin.readline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--role", choices=("node", "driver"), required=True)
    parser.add_argument("--count", type=int, required=True, help="nodes")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--directory", default=".")
    parser.add_argument("--ports", default="")
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--acks", action="store_true", help="acknowledge every message")
    childArguments(parser)
    args = parser.parse_args(argv)
    dieWithParent(args.parent)
    logWarningsToStderr()
    from twisted.internet import reactor, task

    run = runNode if args.role == "node" else runDriver
    reactor.callLater(args.lifetime, os._exit, 1)  # type: ignore[attr-defined]
    task.react(lambda r: defer.ensureDeferred(run(r, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
