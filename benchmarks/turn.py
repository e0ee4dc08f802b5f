"""The built-in TURN server beside coturn, under the same client load.

Run by hand, not by the test suite:

    python3 benchmarks/turn.py [--duration 3] [--json turn.json]

Both servers run on 127.0.0.1 in one run, one after the other, each in a
process of its own: the built-in one (``benchmarks/_turnserver.py``, one
Python process, one core at most) and coturn's ``turnserver`` (Debian
package ``coturn``) with ``--relay-threads 1`` and a temporary database, no
daemon.  The load generator is this process (Python, non-blocking sockets
and a selector), identical for both:

* **allocations/s**: 32 UDP client slots, each looping what a new client
  does: a fresh socket, Allocate (401), Allocate with long-term
  credentials, Refresh with LIFETIME 0 (delete), for ``--duration``
  seconds; the rate of successful Allocates, and the p99 of the time from
  the first Allocate to the success;
* **relay**: 8 allocations, each with a channel bound to one echoing UDP
  peer here; each keeps 8 ChannelData messages of 100 (then 1,000) bytes in
  flight: client -> server -> peer -> server -> client.  Relayed packets/s
  counts both directions (two relayed packets per round trip), Mbit/s is
  their payload; p99 relay latency is the round trip's (two relay hops,
  and the generator's own queueing); CPU per relayed packet is the server
  process's user+system time (``/proc/PID/stat``, all its threads) over the
  phase divided by the packets it relayed.

The generator shares the machine's cores with the server: when the server
is fast (coturn), the generator may be what limits packets/s, so the
server's CPU share is printed too; CPU per relayed packet is the fairer
comparison.  Targets (issue 19): at least 0.5x coturn's allocation rate and
0.25x its relayed packets/s.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from usages.turnserver.stun import (  # noqa: E402
    Attr,
    MessageClass,
    Method,
    StunDecodeError,
    channelNumberValue,
    decodeMessage,
    encodeChannelData,
    encodeMessage,
    longTermKey,
    newTransactionId,
    requestedTransportValue,
    uint32Value,
    xorAddressValue,
)

HOST = "127.0.0.1"
USER, PASSWORD = "bench", "bench-password"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpuSeconds(pid: int) -> float:
    """User + system time of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def freePort() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def waitForBinding(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            tid = newTransactionId()
            s.sendto(encodeMessage(Method.BINDING, MessageClass.REQUEST, tid), (HOST, port))
            try:
                data, _ = s.recvfrom(2048)
                if decodeMessage(data).transactionId == tid:
                    return
            except (OSError, StunDecodeError):
                pass
    raise RuntimeError(f"no TURN server answered on port {port}")


@contextmanager
def builtinServer(port: int, relayPorts: tuple[int, int]) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "_turnserver.py"), str(port),
         str(relayPorts[0]), str(relayPorts[1]), f"{USER}:{PASSWORD}"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    try:
        waitForBinding(port)
        yield process.pid
    finally:
        assert process.stdin is not None
        process.stdin.close()  # it stops when its stdin closes
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(10)


@contextmanager
def coturnServer(port: int, relayPorts: tuple[int, int]) -> Iterator[int]:
    if shutil.which("turnserver") is None:
        raise SystemExit("turnserver is not installed (Debian package coturn)")
    with tempfile.TemporaryDirectory() as work:
        process = subprocess.Popen(
            ["turnserver", "-n", "--listening-ip", HOST, "--listening-port", str(port),
             "--relay-ip", HOST, "--min-port", str(relayPorts[0]),
             "--max-port", str(relayPorts[1]), "--relay-threads", "1",
             "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
             "--lt-cred-mech", "--user", f"{USER}:{PASSWORD}", "--realm", "reload",
             "--userdb", f"{work}/turndb", "--pidfile", f"{work}/pid",
             "--log-file", f"{work}/log", "--simple-log", "--no-stdout-log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            waitForBinding(port)
            yield process.pid
        finally:
            process.terminate()
            process.wait(10)


# -- the load generator ---------------------------------------------------------


@dataclass
class Client:
    """One UDP client socket and its long-term credential state."""

    sock: socket.socket
    server: tuple[str, int]
    realm: str = "reload"
    nonce: bytes | None = None
    pending: bytes = b""  # the last request, resent on timeout
    pendingTid: bytes = b""
    sentAt: float = 0.0
    state: str = "idle"
    relayed: tuple[str, int] | None = None
    inFlight: int = 0
    lastHeard: float = 0.0
    allocated: Any = None

    @property
    def key(self) -> bytes:
        return longTermKey(USER, self.realm, PASSWORD)

    def request(self, method: int, attributes: list[tuple[int, bytes]], tid: bytes) -> None:
        attrs = list(attributes)
        key = None
        if self.nonce is not None:
            attrs += [
                (Attr.USERNAME, USER.encode()),
                (Attr.REALM, self.realm.encode()),
                (Attr.NONCE, self.nonce),
            ]
            key = self.key
        self.pending = encodeMessage(
            method, MessageClass.REQUEST, tid, attrs, integrityKey=key, fingerprint=True
        )
        self.pendingTid = tid
        self.sentAt = time.perf_counter()
        self.sock.send(self.pending)


def openClient(server: tuple[str, int]) -> Client:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((HOST, 0))
    sock.connect(server)
    sock.setblocking(False)
    return Client(sock, server)


def drain(sock: socket.socket) -> Iterator[tuple[bytes, Any]]:
    while True:
        try:
            yield sock.recvfrom(65536)
        except BlockingIOError:
            return


def transact(client: Client, method: int, attributes: list[tuple[int, bytes]]) -> Any:
    """A blocking request with the 401/438 dance (set-up only)."""
    client.sock.setblocking(True)
    client.sock.settimeout(2)
    try:
        for _ in range(4):
            tid = newTransactionId()
            client.request(method, attributes, tid)
            while True:
                data = client.sock.recv(65536)
                try:
                    message = decodeMessage(data)
                except StunDecodeError:
                    continue
                if message.transactionId == tid:
                    break
            if message.messageClass == MessageClass.SUCCESS:
                return message
            code = message.errorCode()
            if code is not None and code[0] in (401, 438):
                client.nonce = message.get(Attr.NONCE)
                client.realm = message.text(Attr.REALM) or client.realm
                continue
            raise RuntimeError(f"{Method(method).name} refused: {code}")
        raise RuntimeError("could not authenticate")
    finally:
        client.sock.setblocking(False)


@dataclass
class Figures:
    values: dict[str, float | None] = field(default_factory=dict)


def p99(samples: list[float]) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000.0


def allocatedClient(server: tuple[str, int]) -> Client:
    """A client with an allocation, on a 5-tuple the server does not
    remember (see :func:`allocationPhase`)."""
    for _ in range(20):
        c = openClient(server)
        try:
            c.allocated = transact(
                c, Method.ALLOCATE, [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())]
            )
            return c
        except RuntimeError:
            c.sock.close()
    raise RuntimeError("could not allocate")


def allocationPhase(port: int, pid: int, duration: float, clients: int = 32) -> dict[str, Any]:
    """Each of ``clients`` slots loops: a new socket (a new 5-tuple, as a
    new client would have), Allocate without credentials (401), Allocate
    with them, Refresh with LIFETIME 0, close.  A 5-tuple is not reused:
    coturn keeps a deleted allocation's 5-tuple for a while (437)."""
    server = (HOST, port)
    selector = selectors.DefaultSelector()
    allocate = [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())]
    delete = [(Attr.LIFETIME, uint32Value(0))]
    done = 0
    errors = 0
    reused = 0
    errorCodes: dict[int, int] = {}
    latencies: list[float] = []
    began: dict[int, float] = {}

    def fresh() -> None:
        c = openClient(server)
        selector.register(c.sock, selectors.EVENT_READ, c)
        c.state = "allocate"
        c.request(Method.ALLOCATE, allocate, newTransactionId())
        began[id(c)] = c.sentAt

    cpu0 = cpuSeconds(pid)
    start = time.perf_counter()
    end = start + duration
    for _ in range(clients):
        fresh()
    while (now := time.perf_counter()) < end:
        for key, _ in selector.select(0.05):
            c = key.data
            for data, _ in drain(c.sock):
                try:
                    message = decodeMessage(data)
                except StunDecodeError:
                    errors += 1
                    continue
                if message.transactionId != c.pendingTid:
                    continue
                code = message.errorCode() if message.messageClass == MessageClass.ERROR else None
                if code is not None and code[0] == 437:
                    # A 5-tuple the kernel handed out again while the server
                    # still remembers it: start over on another socket.
                    reused += 1
                    selector.unregister(c.sock)
                    c.sock.close()
                    began.pop(id(c), None)
                    fresh()
                    break
                if code is not None:
                    if code[0] in (401, 438):
                        c.nonce = message.get(Attr.NONCE)
                        c.realm = message.text(Attr.REALM) or c.realm
                    else:
                        errors += 1
                        errorCodes[code[0]] = errorCodes.get(code[0], 0) + 1
                    method = Method.ALLOCATE if c.state == "allocate" else Method.REFRESH
                    c.request(method, allocate if c.state == "allocate" else delete,
                              newTransactionId())  # fmt: skip
                elif c.state == "allocate":
                    done += 1
                    latencies.append(time.perf_counter() - began.pop(id(c)))
                    c.state = "delete"
                    c.request(Method.REFRESH, delete, newTransactionId())
                else:
                    selector.unregister(c.sock)
                    c.sock.close()
                    fresh()
                    break
        for key in list(selector.get_map().values()):  # resend what got no answer
            c = key.data
            if now - c.sentAt > 1.0:
                c.sentAt = now
                c.sock.send(c.pending)
    elapsed = time.perf_counter() - start
    cpu = cpuSeconds(pid) - cpu0
    for key in list(selector.get_map().values()):
        selector.unregister(key.fileobj)
        key.data.sock.close()
    return {
        "allocationsPerSecond": done / elapsed,
        "allocateP99Ms": p99(latencies),
        "allocations": done,
        "errors": errors,
        "reusedFiveTuples": reused,
        "errorCodes": errorCodes,
        "serverCpuShare": cpu / elapsed,
    }


def relayPhase(
    port: int, pid: int, duration: float, size: int, clients: int = 8, window: int = 8
) -> dict[str, Any]:
    server = (HOST, port)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    peer.bind((HOST, 0))
    peer.setblocking(False)
    peerAddress = peer.getsockname()
    pool = [allocatedClient(server) for _ in range(clients)]
    channels: dict[int, Client] = {}
    for i, c in enumerate(pool):
        answer = c.allocated
        assert answer is not None
        c.relayed = answer.xorAddress(Attr.XOR_RELAYED_ADDRESS)
        tid = newTransactionId()
        channel = 0x4000 + i
        attrs = [
            (Attr.CHANNEL_NUMBER, channelNumberValue(channel)),
            (Attr.XOR_PEER_ADDRESS, xorAddressValue(*peerAddress, tid)),
        ]
        c.sock.setblocking(True)
        c.request(Method.CHANNEL_BIND, attrs, tid)
        bound = decodeMessage(c.sock.recv(65536))
        c.sock.setblocking(False)
        if bound.messageClass != MessageClass.SUCCESS:
            raise RuntimeError(f"ChannelBind refused: {bound.errorCode()}")
        channels[channel] = c
    stamp = struct.Struct("!Qd")
    filler = b"x" * (size - stamp.size)
    selector = selectors.DefaultSelector()
    selector.register(peer, selectors.EVENT_READ, None)
    for c in pool:
        selector.register(c.sock, selectors.EVENT_READ, c)
    roundTrips = 0
    lost = 0
    latencies: list[float] = []
    send = [lambda ch=ch, c=c: c.sock.send(
        encodeChannelData(ch, stamp.pack(ch, time.perf_counter()) + filler))
        for ch, c in channels.items()]  # fmt: skip
    cpu0 = cpuSeconds(pid)
    start = time.perf_counter()
    end = start + duration
    for c, sender in zip(pool, send, strict=True):
        for _ in range(window):
            sender()
        c.inFlight = window
        c.lastHeard = start
    senders: dict[int, Callable[[], int]] = dict(zip(channels, send, strict=True))
    while (now := time.perf_counter()) < end:
        for key, _ in selector.select(0.05):
            if key.data is None:  # the peer: echo to the relayed address
                for data, addr in drain(peer):
                    peer.sendto(data, addr)
                continue
            c = key.data
            for data, _ in drain(c.sock):
                if len(data) < 4 + stamp.size or not 0x40 <= data[0] <= 0x7F:
                    continue
                channel, sentAt = stamp.unpack_from(data, 4)
                received = time.perf_counter()
                latencies.append(received - sentAt)
                roundTrips += 1
                c.lastHeard = received
                senders[channel]()
        for channel, c in channels.items():  # refill a window that lost packets
            if now - c.lastHeard > 0.3:
                lost += window
                c.lastHeard = now
                for _ in range(window):
                    senders[channel]()
    elapsed = time.perf_counter() - start
    cpu = cpuSeconds(pid) - cpu0
    for c in pool:
        c.sock.close()
    peer.close()
    relayed = 2 * roundTrips
    return {
        "size": size,
        "packetsPerSecond": relayed / elapsed,
        "mbitPerSecond": relayed * size * 8 / elapsed / 1e6,
        "p99RoundTripMs": p99(latencies),
        "cpuMicrosecondsPerPacket": cpu / relayed * 1e6 if relayed else None,
        "serverCpuShare": cpu / elapsed,
        "windowsLost": lost // window,
    }


def measure(name: str, runner: Any, duration: float) -> dict[str, Any]:
    port = freePort()
    relayPorts = (10000, 19999) if name == "builtin" else (20000, 29999)
    with runner(port, relayPorts) as pid:
        result: dict[str, Any] = {"allocation": allocationPhase(port, pid, duration)}
        for size in (100, 1000):
            result[f"relay{size}"] = relayPhase(port, pid, duration, size)
    return result


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def show(results: dict[str, dict[str, Any]]) -> None:
    ours, theirs = results["builtin"], results["coturn"]
    rows: list[tuple[str, float | None, float | None, bool]] = [
        ("allocations/s", ours["allocation"]["allocationsPerSecond"],
         theirs["allocation"]["allocationsPerSecond"], True),
        ("Allocate p99 ms", ours["allocation"]["allocateP99Ms"],
         theirs["allocation"]["allocateP99Ms"], False),
        ("server CPU share (alloc)", ours["allocation"]["serverCpuShare"],
         theirs["allocation"]["serverCpuShare"], False),
    ]  # fmt: skip
    for size in (100, 1000):
        a, b = ours[f"relay{size}"], theirs[f"relay{size}"]
        rows += [
            (f"relayed pkt/s, {size} B", a["packetsPerSecond"], b["packetsPerSecond"], True),
            (f"relayed Mbit/s, {size} B", a["mbitPerSecond"], b["mbitPerSecond"], True),
            (f"p99 relay RTT ms, {size} B", a["p99RoundTripMs"], b["p99RoundTripMs"], False),
            (
                f"CPU us/packet, {size} B",
                a["cpuMicrosecondsPerPacket"],
                b["cpuMicrosecondsPerPacket"],
                False,
            ),
            (f"server CPU share, {size} B", a["serverCpuShare"], b["serverCpuShare"], False),
        ]
    print(f"{'':30} {'built-in':>12} {'coturn':>12} {'ratio':>8}")
    for label, a, b, showRatio in rows:
        fa = "-" if a is None else f"{a:12.2f}"
        fb = "-" if b is None else f"{b:12.2f}"
        print(f"{label:30} {fa:>12} {fb:>12} {ratio(a, b) if showRatio else '':>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per phase")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    results = {
        "builtin": measure("builtin", builtinServer, args.duration),
        "coturn": measure("coturn", coturnServer, args.duration),
    }
    show(results)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
