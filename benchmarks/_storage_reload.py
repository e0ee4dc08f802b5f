"""A RELOAD load driver for ``benchmarks/storage.py``: clients that store and
fetch through a running overlay.

Not run by hand: ``storage.py`` starts one or more of these with
``sys.executable`` once its lab of peers has converged.  The driver makes
``--identities`` self-signed identities for the lab's overlay (RFC 6940
section 11.3.1).  Each is a RELOAD *client* (section 4.2): it has its own
:class:`~reload.transport.TransportNode` with
:class:`~reload.transport.SigningSecurity` (every message signed, every
message verified), a TLS listener on 127.0.0.1 for the links peers open to
it after an Attach, and a TLS link (TLS-TCP-FH-NO-ICE, mutual certificate
authentication) to an admitting peer; the admitting peers go round the
lab's peers.  Each client stores with
:class:`~reload.storageclient.StorageClient` (values signed, section 7.1)
and fetches with it (every value's signature and access policy verified,
section 7.4.2.2).

Routing (``--routing``): ``direct`` is what ``twistd reload --client``
does in a CHORD-RELOAD overlay, :class:`topologies.chordreload.direct.DirectClientTopology`:
requests go to the admitting peer, which routes them through the ring,
until the peer that answered for a Resource-ID has been Attached (with
send_update) and has sent its Update; from then on requests for its range
go straight to it (section 6.5.1).  ``overlay`` hands every request to the
admitting peer (:class:`AdmittingPeerTopology`), so every operation pays
the forwarding hops.

Keys: the Kind ``BENCH_KIND`` that storage.py adds to the lab's overlay
(SINGLE, NODE-MULTIPLE with max-node-multiple ``KEYS_PER_IDENTITY``) at
the Resource-IDs H(Node-ID || i), i = 1..KEYS_PER_IDENTITY, of each
identity (section 7.3.4): SHA-1 outputs, spread uniformly over the ring.
See storage.py for why.

Protocol (see ``_common``): ``{"ready": true, "names": [hex...]}``
once every link is up; then commands ``warmup`` (fetch every key, whatever
the answer), ``store``, ``fetch`` (each answered with the phase's
figures), ``profile-start``, ``profile-stop PATH`` (cProfile, CPU time),
``counters``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    BENCH_KIND,
    KEYS_PER_IDENTITY,
    VALUE_SIZE,
    Phase,
    childArguments,
    dieWithParent,
    logWarningsToStderr,
    say,
)
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred  # noqa: E402

from topologies.chordreload.ring import hashResource  # noqa: E402

if TYPE_CHECKING:
    from reload.storageclient import StorageClient

HOST = "127.0.0.1"
#: TLS handshakes in flight while the clients connect (a peer refuses
#: inbound connections beyond its handshake limit).
CONNECTING = 8


class AdmittingPeerTopology:
    """``--routing overlay``: the plainest client routing (section 4.2):
    everything goes to the one peer it is connected to, which routes it on;
    answers come back to the client's Node-ID over the same link.  The
    round-robin choice of admitting peers spreads the first hops over the
    ring."""

    def __init__(self, admitting: bytes, length: int) -> None:
        self.admitting = admitting
        self.length = length

    def nextHop(self, destination: bytes) -> bytes | None:
        return self.admitting

    def linkUp(self, nodeId: bytes) -> None:
        pass

    def linkDown(self, nodeId: bytes) -> None:
        pass

    def hashResource(self, name: bytes) -> bytes:
        return hashResource(name, self.length)


class Client:
    """One identity: its node, its link and its StorageClient."""

    def __init__(
        self, reactor: Any, configuration: Any, trust: Any, certificates: Any, peerCount: int
    ) -> None:
        from reload.link.listener import LinkListener
        from reload.link.tls import LinkSettings
        from reload.security.certificates import makeSelfSignedIdentity
        from reload.transport.attach import NoIceAttachHandler
        from reload.transport.node_api import TransportNode
        from reload.transport.security import SigningSecurity

        self.identity = makeSelfSignedIdentity(
            configuration.instanceName,
            None,
            digest=configuration.selfSignedDigest or "sha1",
            nodeIdLength=configuration.nodeIdLength,
        )
        now = datetime.datetime.fromtimestamp(reactor.seconds(), datetime.UTC)
        certificates.add(trust.verify([self.identity.certificate], now))
        security = SigningSecurity(self.identity, certificates, reactor)
        #: Where peers reach this client's listener after an Attach.
        self.address: tuple[str, int] | None = None
        self.node = TransportNode(
            self.identity.nodeId,
            security,
            reactor,
            configuration=configuration,
            attachHandler=NoIceAttachHandler(self._connect, self._candidates),
            reactor=reactor,
        )
        self.listener = LinkListener(
            reactor,
            self.identity,
            trust,
            self.node.transport,
            # Every peer of the lab connects from 127.0.0.1, and in the
            # warm-up nearly all of them Attach to each client at once: the
            # per-source limits (8 handshakes, 16 unproven links by default)
            # would abort most of those links, and the operations they were
            # for would go through the ring.  A client whose peers have
            # addresses of their own never meets those limits.
            settings=LinkSettings(
                maxMessageSize=configuration.maxMessageSize,
                maxHandshakesPerSource=peerCount + 8,
                maxUnprovenLinksPerSource=peerCount + 8,
            ),
        )
        self.listener.startService()
        self.storage: StorageClient | None = None

    def _candidates(self) -> list[Any]:
        from reload.transport.attach import hostCandidate

        return [] if self.address is None else [hostCandidate(*self.address)]

    def _connect(self, host: str, port: int, nodeId: bytes) -> Deferred[Any]:
        return self.listener.connect(host, port, nodeId)

    async def connect(
        self, peer: dict[str, Any], service: Any, reactor: Any, routing: str, peerCount: int
    ) -> None:
        from reload.storageclient import StorageClient
        from topologies.chordreload.direct import DirectClientTopology

        listening = await self.listener.listen(f"tcp:0:interface={HOST}")
        self.address = (HOST, listening.getHost().port)
        nodeId = bytes.fromhex(peer["nodeId"])
        for attempt in range(5):
            try:
                await self.listener.connect(peer["host"], int(peer["port"]), nodeId)
                break
            except Exception:
                if attempt == 4:
                    raise
                await sleep(reactor, 0.5 * (attempt + 1))
        if routing == "direct":
            # Room for a direct link to every peer, as a client of this
            # overlay size would configure (--direct-links).
            topology = DirectClientTopology(self.node, reactor, maxLinks=peerCount + 8)
            self.node.useTopology(topology)
            await topology.join(nodeId)
        else:
            self.node.transport.setTopology(AdmittingPeerTopology(nodeId, len(nodeId)))
        self.storage = StorageClient(self.node, self.identity, service, reactor)

    def names(self) -> list[bytes]:
        """Section 7.3.4: the Resource Names Node-ID || i this identity may
        write BENCH_KIND values at."""
        from reload.storage.policies import nodeMultipleResourceName

        return [
            nodeMultipleResourceName(self.identity.nodeId, i)
            for i in range(1, KEYS_PER_IDENTITY + 1)
        ]


def sleep(reactor: Any, seconds: float) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


def runOps(
    reactor: Any, ops: list[Callable[[], Deferred[Any]]], concurrency: int, timeout: float
) -> Deferred[Phase]:
    """Run ``ops`` with at most ``concurrency`` outstanding; fire with the
    phase's latencies.  An op's Deferred fails for an error; it fires with
    False for a wrong answer (a mismatch)."""
    phase = Phase()
    done: Deferred[Phase] = Deferred()
    queue = list(reversed(ops))
    state = {"running": 0}
    cpu0 = time.process_time()

    def issue() -> None:
        op = queue.pop()
        state["running"] += 1
        t0 = time.monotonic()
        d = maybeDeferred(op)
        d.addCallbacks(succeeded, failed, callbackArgs=(t0,), errbackArgs=(t0,))

    def succeeded(ok: object, t0: float) -> None:
        if ok is False:
            phase.mismatches += 1
        phase.latencies.append(time.monotonic() - t0)
        finished()

    def failed(reason: Any, t0: float) -> None:
        phase.errors.append(f"{reason.type.__name__}: {reason.getErrorMessage()}"[:200])
        finished()

    def finished() -> None:
        state["running"] -= 1
        if done.called:
            return
        if queue:
            issue()
        elif state["running"] == 0:
            end()

    def end() -> None:
        if guard.active():
            guard.cancel()
        phase.ended = time.monotonic()
        phase.cpu = time.process_time() - cpu0
        done.callback(phase)

    def abandon() -> None:
        phase.errors.extend(["no answer before the phase timed out"] * state["running"])
        end()

    guard = reactor.callLater(timeout, abandon)
    phase.began = time.monotonic()
    if not ops:
        end()
    for _ in range(min(concurrency, len(ops))):
        issue()
    return done


async def main(reactor: Any, args: argparse.Namespace) -> None:
    from reload.config import parseConfiguration
    from reload.security.signing import CertificateCache
    from reload.security.trust import TrustPolicy
    from reload.storage.kinds import KindTable
    from reload.storage.policies import PolicyRegistry
    from reload.storage.service import StorageService
    from reload.storage.sqlite import MemoryStore
    from reload.wire.storage import DataValue, StoredDataSpecifier

    configuration = parseConfiguration(Path(args.config).read_bytes())
    peers: list[dict[str, Any]] = json.loads(Path(args.peers).read_text())
    trust = TrustPolicy.fromConfiguration(configuration)
    certificates = CertificateCache(trust)
    length = configuration.nodeIdLength
    topology = AdmittingPeerTopology(b"", length)
    # The kind table and access policies that judge what a Fetch returns.
    service = StorageService(
        KindTable.fromConfiguration(configuration.kinds, PolicyRegistry()),
        MemoryStore(),
        certificates,
        topology.hashResource,
        lambda resourceId: False,
    )
    if service.kinds.get(BENCH_KIND) is None:
        raise RuntimeError(f"the overlay configuration has no Kind {BENCH_KIND:#x}")
    clients = [
        Client(reactor, configuration, trust, certificates, len(peers))
        for _ in range(args.identities)
    ]
    pending = list(range(len(clients)))

    async def connectSome() -> None:
        while pending:
            i = pending.pop()
            peer = peers[(args.offset + i) % len(peers)]
            await clients[i].connect(peer, service, reactor, args.routing, len(peers))

    await gatherResults(
        [Deferred.fromCoroutine(connectSome()) for _ in range(CONNECTING)], consumeErrors=True
    )

    rng = random.Random(args.seed)
    keys: list[tuple[Client, bytes, bytes, bytes]] = []  # client, name, Resource-ID, value
    for client in clients:
        for name in client.names():
            keys.append((client, name, topology.hashResource(name), rng.randbytes(VALUE_SIZE)))
    replicas: dict[int, int] = {}

    def store(client: Client, resourceId: bytes, value: bytes) -> Callable[[], Deferred[Any]]:
        def op() -> Deferred[Any]:
            assert client.storage is not None
            d: Deferred[Any] = client.storage.store(
                resourceId, BENCH_KIND, [DataValue(True, value)]
            )

            def answered(answer: Any) -> bool:
                for kind in answer.kind_responses:
                    replicas[len(kind.replicas)] = replicas.get(len(kind.replicas), 0) + 1
                return True

            return d.addCallback(answered)

        return op

    def fetch(client: Client, resourceId: bytes, value: bytes) -> Callable[[], Deferred[Any]]:
        specifier = StoredDataSpecifier.single(BENCH_KIND)

        def op() -> Deferred[Any]:
            assert client.storage is not None
            d: Deferred[Any] = client.storage.fetch(resourceId, [specifier])

            def check(kinds: Any) -> bool:
                for kind in kinds:
                    for data in kind.values:
                        stored = data.value
                        if getattr(stored, "exists", False) and stored.value == value:
                            return True
                return False

            return d.addCallback(check)

        return op

    def warm(op: Callable[[], Deferred[Any]]) -> Callable[[], Deferred[Any]]:
        return lambda: op().addBoth(lambda _: True)

    say(
        {
            "ready": True,
            "names": [name.hex() for _, name, _, _ in keys],
            "links": sum(len(c.node.transport.connected) for c in clients),
        }
    )
    profiler: list[cProfile.Profile] = []
    commands: list[str] = []
    wake: list[Deferred[None]] = []

    def reader() -> None:
        for line in sys.stdin:
            reactor.callFromThread(arrived, line.strip())
        reactor.callFromThread(arrived, "")

    def arrived(line: str) -> None:
        commands.append(line)
        if wake:
            wake.pop().callback(None)

    threading.Thread(target=reader, daemon=True).start()
    while True:
        if not commands:
            d: Deferred[None] = Deferred()
            wake.append(d)
            await d
        word, _, rest = commands.pop(0).partition(" ")
        if word == "":
            break
        if word == "store":
            ops = [store(c, r, v) for c, _, r, v in keys]
            phase = await runOps(reactor, ops, args.concurrency, args.phase_timeout)
            say({"phase": "store", **phase.toJson(), "replicas": replicas})
        elif word == "warmup":
            # Fetch every key before anything is stored, whatever comes back.
            ops = [warm(fetch(c, r, v)) for c, _, r, v in keys]
            phase = await runOps(reactor, ops, args.concurrency, args.phase_timeout)
            say({"phase": "warmup", **phase.toJson()})
        elif word == "fetch":
            ops = [fetch(c, r, v) for c, _, r, v in keys]
            rng.shuffle(ops)
            phase = await runOps(reactor, ops, args.concurrency, args.phase_timeout)
            say({"phase": "fetch", **phase.toJson()})
        elif word == "profile-start":
            # CPU time, not wall-clock time (see _common.PEER_PROFILER).
            profiler.append(cProfile.Profile(time.process_time))
            profiler[-1].enable()
            say({"profiling": True})
        elif word == "profile-stop" and profiler:
            profile = profiler.pop()
            profile.disable()
            profile.dump_stats(rest)
            say({"profile": rest})
        elif word == "counters":
            total: dict[str, int] = {}
            for client in clients:
                for key, count in client.node.transport.counters.items():
                    total[key] = total.get(key, 0) + count
            say({"counters": total})
        else:
            say({"unknown": word})
    for client in clients:
        client.node.stop()
    await gatherResults([c.listener.stopService() for c in clients], consumeErrors=True)


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RELOAD load driver of benchmarks/storage.py")
    parser.add_argument("--config", required=True, help="the lab's overlay.xml")
    parser.add_argument("--peers", required=True, help="JSON file: [{host, port, nodeId}]")
    parser.add_argument("--identities", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--offset", type=int, default=0, help="first admitting peer's index")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--routing", choices=("direct", "overlay"), default="direct")
    parser.add_argument("--phase-timeout", type=float, default=300.0)
    childArguments(parser)
    args = parser.parse_args(argv)
    dieWithParent(args.parent)

    from twisted.internet import reactor as installed

    logWarningsToStderr()
    reactor: Any = installed

    def finished(result: object) -> None:
        if reactor.running:
            reactor.stop()

    def failed(failure: Any) -> None:
        say({"fatal": f"{failure.type.__name__}: {failure.getErrorMessage()}"})
        failure.printTraceback(file=sys.stderr)
        finished(None)

    def start() -> None:
        Deferred.fromCoroutine(main(reactor, args)).addCallbacks(finished, failed)

    reactor.callWhenRunning(start)
    reactor.callLater(args.lifetime, finished, None)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(run())
