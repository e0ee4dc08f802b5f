"""Link throughput: signed Pings between two processes, TLS and DTLS handshakes.

Signed Pings go over one TLS link between two peer processes; handshakes
are counted per second.

Run by hand, not by the test suite:

    python3 benchmarks/links.py [--count 5000] [--seconds 60] [--json links.json]
    python3 benchmarks/links.py --quick            # a smoke run of a few seconds

Two real peers on 127.0.0.1.  This process starts the other one
(``benchmarks/_linkpeer.py``, with ``sys.executable``): a
:class:`~reload.link.listener.LinkListener` (TLS-TCP-FH-NO-ICE) and a DTLS
endpoint, with a :class:`~reload.transport.TransportNode` and
:class:`~reload.transport.SigningSecurity` behind them that answers Pings
through the transport's dispatcher.  This process is a peer too, with its
own self-signed identity and node: it opens one TLS link and sends Pings
addressed to the other peer's Node-ID through its own transport, so every
request and answer is signed by its sender and verified by its receiver,
framed and ACKed on the link, and matched to its transaction.

Measured for ECDSA P-256 identities and for RSA-2048 identities (both peers
the same key type):

* signed Ping, sequential: each Ping waits for its answer;
* signed Ping, 32 outstanding;
* TLS handshakes: a new link each time (TCP connect, TLS with mutual
  certificate authentication, the Node-ID check), closed once up;
* DTLS handshakes (cookie exchange included), likewise.

With ECDSA, diagnostic rows show the same round trips with less on the path:
Pings through transports that sign nothing (``TrustingSecurity``), and a
message of a signed Ping's size echoed by the link layer alone (framing,
ACKs, TLS, Twisted, the kernel), so that the cost of each layer can be read
off by difference.  ``--no-diagnostics`` skips them.

Rates are completed operations over the wall time of the loop (closing the
links included for handshakes); latencies are per operation; the CPU column
is the CPU time (user + system) each process spent per operation.  The crypto
rows measure this process's raw sign and verify rates and the ceiling they
set: a sequential Ping costs two signatures and two verifications one after
the other, and with Pings outstanding each process does one of each per
Ping, on its own core.  Target: 5,000 signed Pings/s sequential with ECDSA.

Every loop is bounded by ``--count`` and by ``--seconds``.  The other peer
exits when its stdin closes (this process closes it, or dies), and is killed
if it has not exited shortly after.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import Child, killChildren, logWarningsToStderr  # noqa: E402
from _linkpeer import OVERLAY, NullHandler, makeNode, newIdentity, trustPolicy  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402

from reload.security.signing import signatureAlgorithmFor, signBytes, verifyBytes  # noqa: E402
from reload.transport import TransportSettings  # noqa: E402

TARGET_SEQUENTIAL_ECDSA = 5000
OUTSTANDING = 32
#: Seconds after a loop's time limit that its unanswered requests are given
#: (a Ping is retransmitted for 5 x 3 s before it fails on its own).
ABANDON_AFTER = 20.0
KEY_NAMES = {"ecdsa": "ECDSA P-256", "rsa": "RSA-2048"}


@dataclass
class Row:
    operation: str
    keyType: str
    count: int
    perSecond: float
    p50Ms: float | None = None
    p99Ms: float | None = None
    target: int | None = None
    errors: int = 0
    seconds: float = 0.0
    #: CPU time (user + system) per operation in this process and in the other peer's.
    cpuThisUs: float | None = None
    cpuOtherUs: float | None = None
    security: dict[str, float] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.perSecond >= self.target


@dataclass
class Loop:
    """The outcome of one bounded load loop."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    cpuThis: float = 0.0
    cpuOther: float = 0.0
    #: Microseconds per sign and verify call inside each peer (signed Pings).
    security: dict[str, float] = field(default_factory=dict)

    def row(self, operation: str, keyType: str, target: int | None = None) -> Row:
        ordered = sorted(self.latencies)
        count = len(ordered)
        return Row(
            operation,
            keyType,
            count,
            count / self.elapsed if self.elapsed > 0 else 0.0,
            _percentile(ordered, 0.50),
            _percentile(ordered, 0.99),
            target,
            len(self.errors),
            round(self.elapsed, 3),
            self.cpuThis / count * 1e6 if count else None,
            self.cpuOther / count * 1e6 if count else None,
            dict(self.security),
        )


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
    return ordered[index] * 1000.0


# -- the other process ----------------------------------------------------------------


class Peer(Child):
    """The other peer, in a child process (``_linkpeer.py``)."""

    def __init__(self, keyType: str, lifetime: float) -> None:
        super().__init__(
            [str(HERE / "_linkpeer.py"), "--key", keyType, "--lifetime", str(lifetime)],
            "the peer process",
        )
        try:
            hello = self.read(60.0)
            self.nodeId = bytes.fromhex(hello["nodeId"])
            self.tcpPort = int(hello["tcpPort"])
            self.udpPort = int(hello["udpPort"])
            self.echoPort = int(hello["echoPort"])
            self.plainPort = int(hello["plainPort"])
        except BaseException:
            self.close()
            raise

    def cpu(self, node: Any = None) -> tuple[float, float, dict[str, list[float]]]:
        """CPU seconds (user + system) used so far by this process and by the
        peer, and the sign and verify totals of ``node`` and of the peer's
        signing node."""
        self.tell("times")
        other = self.read(30.0)
        security = {f"{k} other": v for k, v in other["security"].items()}
        if node is not None:
            security.update({f"{k} this": v for k, v in node.transport.security.totals().items()})
        return time.process_time(), float(other["cpu"]), security

    async def timed(self, loop: Callable[[], Deferred[Loop]], node: Any = None) -> Loop:
        """Run a load loop and note the CPU time both processes spent on it
        (and, with the signing ``node``, the time its and the peer's
        ``sign`` and ``verify`` calls took)."""
        before = self.cpu(node)
        result = await loop()
        after = self.cpu(node)
        result.cpuThis, result.cpuOther = after[0] - before[0], after[1] - before[1]
        if node is not None:
            for key, (calls, seconds) in after[2].items():
                calls -= before[2][key][0]
                seconds -= before[2][key][1]
                if calls:
                    result.security[key] = round(seconds / calls * 1e6, 1)
        return result


# -- load loops ---------------------------------------------------------------------


def run(
    start: Callable[[], Deferred[Any]],
    count: int,
    seconds: float,
    outstanding: int = 1,
) -> Deferred[Loop]:
    """Call ``start`` ``count`` times (fewer if ``seconds`` run out) with at
    most ``outstanding`` results pending; fire with the latencies."""
    from time import perf_counter

    loop = Loop()
    done: Deferred[Loop] = Deferred()
    began = perf_counter()
    deadline = began + seconds
    state = {"issued": 0, "finished": 0}

    def issue() -> None:
        state["issued"] += 1
        t0 = perf_counter()
        d = start()
        d.addCallbacks(succeeded, failed, callbackArgs=(t0,), errbackArgs=(t0,))

    def succeeded(_: object, t0: float) -> None:
        now = perf_counter()
        loop.latencies.append(now - t0)
        finished(now)

    def failed(reason: Any, t0: float) -> None:
        loop.errors.append(reason.getErrorMessage())
        finished(perf_counter())

    def finished(now: float) -> None:
        state["finished"] += 1
        if done.called:
            return
        if state["issued"] < count and now < deadline:
            issue()
        elif state["finished"] == state["issued"]:
            end(now)

    def end(now: float) -> None:
        if guard.active():
            guard.cancel()
        loop.elapsed = now - began
        done.callback(loop)

    def abandon() -> None:
        # Answers that never come (a link that died): give up on them.
        missing = state["issued"] - state["finished"]
        loop.errors.extend(["no answer"] * missing)
        end(perf_counter())

    from twisted.internet import reactor as installed

    reactor: Any = installed
    guard = reactor.callLater(seconds + ABANDON_AFTER, abandon)
    for _ in range(max(1, min(outstanding, count))):
        issue()
    return done


def handshakes(
    connect: Callable[[], Deferred[Any]],
    close: Callable[[Any], Deferred[Any]],
    count: int,
    seconds: float,
) -> Deferred[Loop]:
    """Sequential connect-then-close, ``count`` times or for ``seconds``;
    latencies are connect to up, the rate counts the closes too."""

    async def loop() -> Loop:
        result = Loop()
        began = time.perf_counter()
        deadline = began + seconds
        while len(result.latencies) + len(result.errors) < count:
            t0 = time.perf_counter()
            try:
                link = await connect()
            except Exception as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                result.latencies.append(time.perf_counter() - t0)
                await close(link)
            if time.perf_counter() >= deadline:
                break
        result.elapsed = time.perf_counter() - began
        return result

    return ensureDeferred(loop())


# -- one key type ---------------------------------------------------------------------


class EchoClient(NullHandler):
    """The sending end of the echo diagnostic: echoes come back in order."""

    def __init__(self) -> None:
        self.waiting: deque[Deferred[None]] = deque()

    def messageReceived(self, link: Any, message: bytes) -> None:
        if self.waiting:
            self.waiting.popleft().callback(None)


async def measureKeyType(reactor: Any, keyType: str, args: argparse.Namespace) -> list[Row]:
    """Every measurement with identities of ``keyType``, against a new peer."""
    name = KEY_NAMES[keyType]
    measured: list[tuple[Loop, Row]] = []

    def note(loop: Loop, operation: str, target: int | None = None) -> None:
        measured.append((loop, loop.row(operation, name, target)))

    peer = Peer(keyType, lifetime=args.seconds * 12 + 120)
    try:
        trust = trustPolicy()
        identity = newIdentity(keyType)
        await measurePings(reactor, peer, identity, trust, keyType, args, note)
        if args.diagnostics and keyType == "ecdsa":
            await measureDiagnostics(reactor, peer, identity, trust, args, note)
        await measureHandshakes(reactor, peer, newIdentity(keyType), trust, args, note)
    finally:
        peer.close()
    for loop, row in measured:
        if loop.errors:
            print(f"{row.operation}, {name}: {loop.errors[0]}", file=sys.stderr)
    return [row for _, row in measured]


async def measurePings(
    reactor: Any,
    peer: Peer,
    identity: Any,
    trust: Any,
    keyType: str,
    args: argparse.Namespace,
    note: Callable[..., None],
) -> None:
    """Signed Pings through both transports over one TLS link."""
    from reload.link.listener import LinkListener

    node = makeNode(reactor, identity, trust)
    listener = LinkListener(reactor, identity, trust, node.transport)
    listener.startService()
    try:
        await listener.connect("127.0.0.1", peer.tcpPort, peer.nodeId)
        assert node.transport.isConnected(peer.nodeId)

        def ping() -> Deferred[Any]:
            return node.ping(peer.nodeId)

        # Warm up: the first message teaches each side the other's certificate.
        await run(ping, min(200, args.count), args.seconds)
        target = TARGET_SEQUENTIAL_ECDSA if keyType == "ecdsa" else None
        note(
            await peer.timed(lambda: run(ping, args.count, args.seconds), node),
            "signed Ping, sequential",
            target,
        )
        note(
            await peer.timed(lambda: run(ping, args.count, args.seconds, OUTSTANDING), node),
            f"signed Ping, {OUTSTANDING} outstanding",
        )
        if args.profile is not None and keyType in args.profile_keys:
            await profileSequential(reactor, peer, ping, keyType, args)
        counters = dict(node.transport.counters)
        if counters.get("badSignature") or counters.get("internalErrors"):
            raise RuntimeError(f"messages were rejected: {counters}")
        peer.tell("counters")
        args.counters[keyType] = {"this peer": counters, "other peer": peer.read(30.0)["counters"]}
    finally:
        await listener.stopService()
        node.stop()


async def profileSequential(
    reactor: Any, peer: Peer, ping: Callable[[], Deferred[Any]], keyType: str, args: Any
) -> None:
    """The sequential Pings again, under cProfile in both processes."""
    args.profile.mkdir(parents=True, exist_ok=True)
    childFile = args.profile / f"child-{keyType}-sequential.prof"
    parentFile = args.profile / f"parent-{keyType}-sequential.prof"
    peer.tell("profile-start")
    await _sleep(reactor, 0.3)
    profile = cProfile.Profile()
    profile.enable()
    profiled = await run(ping, args.count, args.seconds)
    profile.disable()
    peer.tell(f"profile-stop {childFile}")
    profile.dump_stats(parentFile)
    peer.read(30.0)
    print(
        f"profiled {len(profiled.latencies)} sequential Pings: {parentFile}, {childFile}",
        file=sys.stderr,
    )


async def measureDiagnostics(
    reactor: Any,
    peer: Peer,
    identity: Any,
    trust: Any,
    args: argparse.Namespace,
    note: Callable[..., None],
) -> None:
    """The same round trips with less on the path: Pings that nobody signs
    (TrustingSecurity), and a message of a signed Ping's size echoed by the
    link layer (framing, ACKs, TLS, Twisted; no RELOAD message handling)."""
    from reload.link.listener import LinkListener
    from reload.transport.security import UNSIGNED
    from reload.wire.header import Destination, ForwardingHeader
    from reload.wire.message import Message, MessageContents
    from reload.wire.methods import PingReq

    plainNode = makeNode(reactor, identity, trust, signing=False)
    plain = LinkListener(reactor, identity, trust, plainNode.transport)
    plain.startService()
    try:
        await plain.connect("127.0.0.1", peer.plainPort, peer.nodeId)

        def unsignedPing() -> Deferred[Any]:
            return plainNode.ping(peer.nodeId)

        await run(unsignedPing, min(200, args.count), args.seconds)
        note(
            await peer.timed(lambda: run(unsignedPing, args.count, args.seconds)),
            "diagnostic: unsigned Ping, sequential",
        )
        note(
            await peer.timed(lambda: run(unsignedPing, args.count, args.seconds, OUTSTANDING)),
            f"diagnostic: unsigned Ping, {OUTSTANDING} outstanding",
        )
    finally:
        await plain.stopService()
        plainNode.stop()

    signing = makeNode(reactor, identity, trust).transport.security
    header = ForwardingHeader(
        overlay=TransportSettings(overlayName=OVERLAY).overlay,
        transaction_id=1,
        destination_list=(Destination.node(peer.nodeId),),
    )
    request = signing.sign(
        Message(header, MessageContents(PingReq.CODE, PingReq().encode()), UNSIGNED)
    )
    payload = request.encode()
    client = EchoClient()
    echo = LinkListener(reactor, identity, trust, client)
    echo.startService()
    try:
        link = await echo.connect("127.0.0.1", peer.echoPort, peer.nodeId)

        def roundTrip() -> Deferred[None]:
            d: Deferred[None] = Deferred()
            client.waiting.append(d)
            link.send(payload)
            return d

        await run(roundTrip, min(200, args.count), args.seconds)
        note(
            await peer.timed(lambda: run(roundTrip, args.count, args.seconds)),
            f"diagnostic: link echo {len(payload)} B, sequential",
        )
        note(
            await peer.timed(lambda: run(roundTrip, args.count, args.seconds, OUTSTANDING)),
            f"diagnostic: link echo {len(payload)} B, {OUTSTANDING} outstanding",
        )
    finally:
        await echo.stopService()


async def measureHandshakes(
    reactor: Any,
    peer: Peer,
    identity: Any,
    trust: Any,
    args: argparse.Namespace,
    note: Callable[..., None],
) -> None:
    """New TLS and DTLS links, one after the other, each closed once up;
    with an identity of their own so that the Ping link is not replaced."""
    from reload.link.dtls import listenDTLS
    from reload.link.listener import LinkListener

    connector = LinkListener(reactor, identity, trust, NullHandler())
    connector.startService()

    def tlsConnect() -> Deferred[Any]:
        return connector.connect("127.0.0.1", peer.tcpPort, peer.nodeId)

    def tlsClose(link: Any) -> Deferred[Any]:
        link.close()
        lost: Deferred[Any] = link.whenLost()
        return lost

    try:
        note(
            await peer.timed(
                lambda: handshakes(tlsConnect, tlsClose, args.handshakes, args.seconds)
            ),
            "TLS handshake, sequential",
        )
    finally:
        await connector.stopService()

    endpoint = listenDTLS(reactor, 0, identity, trust, NullHandler(), interface="127.0.0.1")

    def dtlsConnect() -> Deferred[Any]:
        return endpoint.connect("127.0.0.1", peer.udpPort, peer.nodeId)

    def dtlsClose(link: Any) -> Deferred[Any]:
        link.close()
        return _sleep(reactor, 0)

    try:
        note(
            await peer.timed(
                lambda: handshakes(dtlsConnect, dtlsClose, args.handshakes, args.seconds)
            ),
            "DTLS handshake, sequential",
        )
    finally:
        await endpoint.stop()


def _sleep(reactor: Any, seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


# -- crypto alone -----------------------------------------------------------------------


def _rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second, best of three runs of about ``seconds``."""
    count = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds / 10:
        operation()
        count += 1
    per = max(1, count * 10 // 3)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(per):
            operation()
        best = max(best, per / (time.perf_counter() - t0))
    return best


def cryptoRows(seconds: float) -> tuple[list[Row], dict[str, dict[str, float]]]:
    """Raw sign and verify rates with the project's helpers, and the Ping
    ceilings they imply."""
    rows: list[Row] = []
    rates: dict[str, dict[str, float]] = {}
    data = os.urandom(180)  # about a Ping's signature input
    for keyType, name in KEY_NAMES.items():
        key = newIdentity(keyType).privateKey
        algorithm = signatureAlgorithmFor(key)
        signature = signBytes(key, algorithm, data)
        public = key.public_key()

        def signing(key: Any = key, algorithm: Any = algorithm) -> object:
            return signBytes(key, algorithm, data)

        def verifying(
            public: Any = public, algorithm: Any = algorithm, s: bytes = signature
        ) -> None:
            verifyBytes(public, algorithm, s, data)

        sign = _rate(signing, seconds)
        verify = _rate(verifying, seconds)
        sequentialCeiling = 1.0 / (2.0 / sign + 2.0 / verify)
        pipelinedCeiling = 1.0 / (1.0 / sign + 1.0 / verify)
        rates[keyType] = {
            "sign_per_second": round(sign),
            "verify_per_second": round(verify),
            "sequential_ping_ceiling": round(sequentialCeiling),
            "pipelined_ping_ceiling": round(pipelinedCeiling),
        }
        rows += [
            Row("crypto: sign", name, 1, sign, 1000.0 / sign),
            Row("crypto: verify", name, 1, verify, 1000.0 / verify),
            Row("ceiling: Ping, sequential (2 sign+2 verify)", name, 1, sequentialCeiling),
            Row("ceiling: Ping, outstanding (1+1 per process)", name, 1, pipelinedCeiling),
        ]
    return rows, rates


# -- output -----------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cpu(row: Row) -> str:
    if row.cpuThisUs is None or row.cpuOtherUs is None:
        return "-"
    return f"{row.cpuThisUs:.0f}+{row.cpuOtherUs:.0f}"


def printTable(rows: list[Row]) -> None:
    header = (
        f"{'operation':46} {'key type':12} {'count':>6} {'per second':>11}"
        f" {'p50 ms':>8} {'p99 ms':>8} {'target':>7} {'met':>4} {'errors':>6}"
        f" {'CPU us/op this+other':>21}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        met = row.met
        print(
            f"{row.operation:46} {row.keyType:12} {row.count:6d} {row.perSecond:11,.0f}"
            f" {_ms(row.p50Ms):>8} {_ms(row.p99Ms):>8}"
            f" {'-' if row.target is None else f'{row.target:,d}':>7}"
            f" {'-' if met is None else ('yes' if met else 'NO'):>4} {row.errors:6d}"
            f" {_cpu(row):>21}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="Pings per loop")
    parser.add_argument("--handshakes", type=int, default=500, help="handshakes per loop")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit of one loop")
    parser.add_argument("--crypto-seconds", type=float, default=1.0, help="per raw crypto rate")
    parser.add_argument("--keys", default="ecdsa,rsa", help="key types, comma-separated")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="also run the sequential Pings again under cProfile in both processes"
        " and write the stats to this directory",
    )
    parser.add_argument("--profile-keys", default="ecdsa", help="key types to profile")
    parser.add_argument(
        "--no-diagnostics",
        dest="diagnostics",
        action="store_false",
        help="skip the unsigned Ping and link echo rows",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.handshakes = min(args.count, 300), min(args.handshakes, 20)
        args.seconds, args.crypto_seconds = min(args.seconds, 10.0), 0.2
    keyTypes = [k.strip() for k in args.keys.split(",") if k.strip()]
    for keyType in keyTypes:
        if keyType not in KEY_NAMES:
            parser.error(f"unknown key type {keyType!r}: ecdsa or rsa")
    args.profile_keys = {k.strip() for k in args.profile_keys.split(",")}
    args.counters = {}

    logWarningsToStderr()

    loadBefore = os.getloadavg()
    crypto, rates = cryptoRows(args.crypto_seconds)
    measured: list[Row] = []

    async def everything(reactor: Any) -> None:
        for keyType in keyTypes:
            measured.extend(await measureKeyType(reactor, keyType, args))

    from twisted.internet import task

    try:
        task.react(lambda reactor: ensureDeferred(everything(reactor)))
    except SystemExit as exit:
        if exit.code:
            killChildren()
            raise

    rows = measured + crypto
    loadAfter = os.getloadavg()
    printTable(rows)
    for row in measured:
        if row.security:
            sec = row.security
            print(
                f"{row.operation}, {row.keyType}: SigningSecurity.sign"
                f" {sec.get('sign this', 0):.0f}/{sec.get('sign other', 0):.0f} us per call,"
                f" .verify {sec.get('verify this', 0):.0f}/{sec.get('verify other', 0):.0f} us"
                " per call (this/other process)"
            )
    print(
        f"load average (1 min) {loadBefore[0]:.2f} before, {loadAfter[0]:.2f} after,"
        f" on {os.cpu_count()} CPUs: the two peers need a core each"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "implementation": platform.python_implementation(),
                    "machine": platform.machine(),
                    "cpus": os.cpu_count(),
                    "load_average_before": loadBefore[0],
                    "load_average_after": loadAfter[0],
                    "openssl": _openssl(),
                    "settings": {
                        "count": args.count,
                        "handshakes": args.handshakes,
                        "seconds": args.seconds,
                        "outstanding": OUTSTANDING,
                    },
                    "crypto": rates,
                    "counters": args.counters,
                    "results": [
                        {
                            "operation": r.operation,
                            "key_type": r.keyType,
                            "count": r.count,
                            "per_second": round(r.perSecond),
                            "p50_ms": None if r.p50Ms is None else round(r.p50Ms, 4),
                            "p99_ms": None if r.p99Ms is None else round(r.p99Ms, 4),
                            "target": r.target,
                            "met": r.met,
                            "errors": r.errors,
                            "seconds": r.seconds,
                            "cpu_us_per_op_this": _round(r.cpuThisUs),
                            "cpu_us_per_op_other": _round(r.cpuOtherUs),
                            "security_us_per_call": r.security or None,
                        }
                        for r in rows
                    ],
                },
                indent=2,
            )
            + "\n"
        )
    failed = any(r.errors for r in measured) or len(measured) < 4 * len(keyTypes)
    return 1 if failed else 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _openssl() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        return str(backend.openssl_version_text())
    except Exception:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
