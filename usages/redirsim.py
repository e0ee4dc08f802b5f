"""The REDIR usage's simulation: ReDiR (RFC 7374) in the plugin harness
(issue 18): correctness, Fetches per lookup, Stores per registration and
the records each peer holds, against the naive design that keeps every
provider under one Resource-ID.

Run it with the overlay simulator, or through the benchmark (which adds a
plot and a real-process lab)::

    python3 -m reload.sim usage REDIR [--peers 1000] [--providers 1,10,100,1000]
        [--keys 200] [--seed 1] [--max-message-size BYTES] [--max-count N]
        [--json redir.json]
    python3 benchmarks/redir.py ... [--plot docs/redir-sim.png]

One :class:`reload.testing.MemoryOverlay` of ``--peers`` real nodes
(CHORD-RELOAD, every message and value signed and verified) runs the REDIR
usage (``usages/redir.py``).  For each provider count P (capped at the
number of peers) P random peers register in a namespace of their own
(``sim-P``), one after the other, through their REDIR service
(sections 4.3 and 4.4); then lookups from a few peers (section 4.5) for keys
of every kind:

* ``random``: uniformly random keys;
* ``provider``: a provider's own Node-ID;
* ``before`` / ``after``: a provider's Node-ID minus / plus one;
* ``wrap``: keys above the highest provider (its Node-ID plus one, the
  last key of the space, random ones in between) and key 0, whose answer
  goes round the ring to the lowest provider.

Every answer is checked against the closest successor computed here from
the providers' Node-IDs, with the definition ``usages/redir.py`` documents
(``closestSuccessor``): the lowest Node-ID strictly above the key, else the
lowest of all.  ``provider``, ``before`` and ``after`` use at most
``--keys`` providers (sampled), ``random`` and ``wrap`` ``--keys`` keys.

The keys are looked up once, cold, right after the first registrations
(``correct before refresh``: a provider that registered alone in its
interval is not in the deeper tree node that later ones of that interval
stored in, until it refreshes); then every provider
registers again, as its refresh does (section 4.4: "repeat the entire
registration process", starting at the level its last one ended at); then
each key is looked up twice: *cold*, by a fresh :class:`RedirClient` whose
level cache is empty (it starts at Lstart = 2, section 4.2), and *warm*, by
a client that has made ``LOOKUP_HISTORY`` (16) lookups of random keys
first, so that it starts at the mode of the levels its last lookups ended
at.  "Fetches" is the number of tree nodes the walk fetched
(``LookupResult.fetches``, the count RFC 7374 reasons about); "requests"
counts every FetchReq and StatReq the client sent, which is more when a
tree node is too large for one answer (Error_Response_Too_Large: the
client Stats it and fetches its records a few at a time,
``RedirClient._fetchInParts``).  Stores and Fetches per registration are
the ``Registration``'s, of the first round and of the refresh.  A
registration or lookup that fails (an overlay error) is counted as failed
or wrong and reported, not retried.

Records per peer: the REDIR values (exists = True) each peer holds itself
(``INode.localData``) at the namespace's tree nodes (the Resource-IDs the
registrations stored at), replicas included, counting those the refresh
round stored: the first round's others expire one lifetime later and are
not part of the steady state.  The naive design puts all P records under
one Resource-ID, held by as many peers as each tree node has copies here
(the responsible peer and its 2 replicas): those peers hold P records
each, every other peer none.

``--max-message-size`` and ``--max-count`` replace the overlay
configuration's max-message-size (RFC 6940 default 5000 bytes) and
REDIR's max-count (1,024 in the embedded default) to show which limit a
namespace runs into.

Registrations live for a day (``--usage-option REDIR:lifetime=86400``):
no record expires and no refresh timer fires during a run; the one
refresh round is run explicitly, as above.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from reload.testing import HarnessNode, MemoryOverlay
from usages.redir import (
    LOOKUP_HISTORY,
    REDIR_KIND_ID,
    LookupResult,
    RedirClient,
    redir,
)

__all__ = ["PROVIDERS", "main", "parser", "simulate", "table"]

#: Provider counts of issue 18.
PROVIDERS = (1, 10, 100, 1000)
#: Keys of each kind looked up (providers sampled for the per-provider kinds).
KEYS_PER_KIND = 200
#: Peers the lookups are made from.
LOOKERS = 8
#: A registration's lifetime: no refresh during a run.
LIFETIME = 86400
KINDS = ("random", "provider", "before", "after", "wrap")
#: Node-IDs of CHORD-RELOAD: 128 bits.
BITS = 128


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[rank - 1])


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean of ``values`` (0 for none)."""
    return sum(values) / len(values) if values else 0.0


def successorOf(key: int, ordered: Sequence[int]) -> int:
    """The closest successor of ``key`` among the sorted provider Node-IDs
    ``ordered``: the lowest one strictly above it, else (round the ring)
    the lowest of all -- ``usages.redir.closestSuccessor``'s definition,
    computed independently."""
    at = bisect.bisect_right(ordered, key)
    return ordered[at] if at < len(ordered) else ordered[0]


def lookupKeys(providers: Sequence[int], count: int, rng: Random) -> list[tuple[str, int]]:
    """``(kind, key)`` for every kind of :data:`KINDS`: ``count`` random
    keys, up to ``count`` sampled providers' Node-IDs and their neighbours
    one below and one above, and ``count`` keys above the highest provider
    (with key 0)."""
    top = (1 << BITS) - 1
    ordered = sorted(providers)
    sample = ordered if len(ordered) <= count else sorted(rng.sample(ordered, count))
    keys = [("random", rng.getrandbits(BITS)) for _ in range(count)]
    keys += [("provider", p) for p in sample]
    keys += [("before", (p - 1) % (top + 1)) for p in sample]
    keys += [("after", (p + 1) % (top + 1)) for p in sample]
    highest = ordered[-1]
    wrap = {highest + 1, top, 0} if highest < top else {0}
    while len(wrap) < count and highest + 1 < top:
        wrap.add(rng.randint(highest + 1, top))
    keys += [("wrap", k) for k in sorted(wrap)[:count]]
    return keys


@dataclass
class Lookups:
    """What the lookups of one mode (cold or warm level cache) measured."""

    fetches: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    #: kind -> [lookups, correct].
    kinds: dict[str, list[int]] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)

    def record(self, kind: str, ok: bool) -> None:
        tally = self.kinds.setdefault(kind, [0, 0])
        tally[0] += 1
        tally[1] += int(ok)

    @property
    def total(self) -> int:
        return sum(t[0] for t in self.kinds.values())

    @property
    def correct(self) -> int:
        return sum(t[1] for t in self.kinds.values())

    def summary(self) -> dict[str, Any]:
        return {
            "lookups": self.total,
            "correct": self.correct,
            "byKind": {k: {"lookups": t[0], "correct": t[1]} for k, t in self.kinds.items()},
            "fetchesMean": round(mean(self.fetches), 3),
            "fetchesP99": percentile(self.fetches, 0.99),
            "fetchesMax": max(self.fetches, default=0),
            "requestsMean": round(mean(self.requests), 3),
            "requestsP99": percentile(self.requests, 0.99),
            "endLevels": dict(sorted(Counter(self.levels).items())),
            "wrong": self.wrong[:10],
        }


def _lookup(
    overlay: MemoryOverlay,
    client: RedirClient,
    namespace: str,
    key: int,
    ordered: Sequence[int],
) -> tuple[LookupResult | None, int, str | None]:
    """One lookup: its result (None when it failed), the requests it sent
    and, when it is wrong, why."""
    before = client.fetches + client.stats
    expected = successorOf(key, ordered)
    try:
        result: LookupResult = overlay.wait(
            client.lookup(namespace, key.to_bytes(BITS // 8, "big"))
        )
    except Exception as exc:  # a failed lookup is a wrong one
        return None, client.fetches + client.stats - before, f"{key:032x}: {exc!r}"
    sent = client.fetches + client.stats - before
    found = int.from_bytes(result.nodeId, "big")
    if found != expected:
        return result, sent, f"{key:032x}: found {found:032x}, expected {expected:032x}"
    return result, sent, None


def _measure(
    mode: Lookups, kind: str, outcome: tuple[LookupResult | None, int, str | None]
) -> None:
    result, sent, wrong = outcome
    mode.record(kind, wrong is None)
    if wrong is not None:
        mode.wrong.append(f"{kind} {wrong}")
    if result is not None:
        mode.fetches.append(result.fetches)
        mode.levels.append(result.level)
    mode.requests.append(sent)


def _client(node: HarnessNode) -> RedirClient:
    """A client with an empty level cache on ``node``."""
    return RedirClient(node.api, lifetime=LIFETIME)


def recordsPerPeer(
    overlay: MemoryOverlay, resourceIds: set[bytes], sinceMs: int = 0
) -> tuple[list[int], list[int], list[int]]:
    """The REDIR records (exists = True) each live peer holds at
    ``resourceIds``, replicas included; of them, those stored at or after
    ``sinceMs`` (milliseconds since the epoch); and how many peers hold
    each Resource-ID."""
    held: list[int] = []
    recent: list[int] = []
    copies: Counter[bytes] = Counter()
    for node in overlay.alive:
        allValues = newValues = 0
        for resourceId in node.stack.service.store.resourcesIn(resourceIds):
            values = [v for v in node.api.localData(resourceId, REDIR_KIND_ID) if v.exists]
            if values:
                copies[resourceId] += 1
                allValues += len(values)
                newValues += sum(1 for v in values if v.storageTime >= sinceMs)
        held.append(allValues)
        recent.append(newValues)
    return held, recent, [copies[r] for r in resourceIds]


@dataclass
class Registrations:
    """What one round of registrations (every provider once) measured."""

    stores: list[int] = field(default_factory=list)
    fetches: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "storesMean": round(mean(self.stores), 3),
            "storesP99": percentile(self.stores, 0.99),
            "storesMax": max(self.stores, default=0),
            "fetchesMean": round(mean(self.fetches), 3),
            "fetchesP99": percentile(self.fetches, 0.99),
            "requestsMean": round(mean(self.requests), 3),
            "failed": len(self.failures),
            "failures": self.failures[:5],
        }


def registerAll(
    overlay: MemoryOverlay, providers: Sequence[HarnessNode], namespace: str, treeIds: set[bytes]
) -> Registrations:
    """Every provider registers in ``namespace`` through its REDIR
    service, one after the other (a provider already registered walks
    again, as its refresh does, section 4.4); the tree nodes stored at
    are added to ``treeIds``."""
    out = Registrations()
    for node in providers:
        client: RedirClient = node.service("REDIR").client
        before = client.fetches + client.stats
        try:
            registration = overlay.wait(client.register(namespace))
        except Exception as exc:  # counted and reported: the provider stays a provider
            out.failures.append(f"{node.nodeId.hex()}: {exc}")
            continue
        out.requests.append(client.fetches + client.stats - before)
        out.stores.append(len(registration.stored))
        out.fetches.append(registration.fetches)
        for level, treeNode in registration.stored:
            treeIds.add(client.resourceId(namespace.encode(), level, treeNode))
    return out


def runProviders(
    overlay: MemoryOverlay,
    count: int,
    rng: Random,
    *,
    keys: int = KEYS_PER_KIND,
    lookers: int = LOOKERS,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Register ``count`` providers (capped at the overlay's size) in a
    namespace of their own; look the keys up cold; let every provider
    refresh once (section 4.4); look the keys up again cold and warm; count
    the records each peer holds."""
    started = time.perf_counter()
    peers = overlay.alive
    count = min(count, len(peers))
    namespace = f"sim-{count}"
    providers = rng.sample(peers, count)
    treeIds: set[bytes] = set()
    first = registerAll(overlay, providers, namespace, treeIds)
    progress(f"P={count}: registered in {time.perf_counter() - started:.1f} s")
    ordered = sorted(int.from_bytes(node.nodeId, "big") for node in providers)
    lookerNodes = rng.sample(peers, min(lookers, len(peers)))
    keyList = lookupKeys(ordered, keys, rng)
    # Before any refresh: a provider that registered alone in its interval
    # is not yet in the deeper tree node that later ones stored in.
    beforeRefresh = Lookups()
    for i, (kind, key) in enumerate(keyList):
        client = _client(lookerNodes[i % len(lookerNodes)])
        _measure(beforeRefresh, kind, _lookup(overlay, client, namespace, key, ordered))
    refreshedAt = int(overlay.now * 1000)
    refresh = registerAll(overlay, providers, namespace, treeIds)
    progress(f"P={count}: refreshed; {time.perf_counter() - started:.1f} s")
    cold, warm = Lookups(), Lookups()
    warmClients = []
    for node in lookerNodes:
        client = _client(node)
        for _ in range(LOOKUP_HISTORY):
            key = rng.getrandbits(BITS)
            _measure(Lookups(), "random", _lookup(overlay, client, namespace, key, ordered))
        warmClients.append(client)
    for i, (kind, key) in enumerate(keyList):
        looker = _client(lookerNodes[i % len(lookerNodes)])
        _measure(cold, kind, _lookup(overlay, looker, namespace, key, ordered))
        warmClient = warmClients[i % len(warmClients)]
        _measure(warm, kind, _lookup(overlay, warmClient, namespace, key, ordered))
    progress(f"P={count}: {cold.total} keys looked up; {time.perf_counter() - started:.1f} s")
    held, perPeer, copies = recordsPerPeer(overlay, treeIds, refreshedAt)
    holdersPerResource = Counter(copies).most_common(1)[0][0] if copies else 0
    total = sum(perPeer)
    meanRecords = total / len(perPeer)
    holding = [n for n in perPeer if n]
    naiveMean = holdersPerResource * count / len(perPeer)
    return {
        "peers": len(peers),
        "providers": count,
        "namespace": namespace,
        "registration": first.summary(),
        "beforeRefresh": beforeRefresh.summary(),
        "refresh": refresh.summary(),
        "cold": cold.summary(),
        "warm": warm.summary(),
        # Records the refresh round stored: what stays once the first
        # round's other records expire (one lifetime later).
        "records": {
            "treeNodes": len(treeIds),
            "copiesPerTreeNode": dict(sorted(Counter(copies).items())),
            "total": total,
            "meanPerPeer": round(meanRecords, 3),
            "maxPerPeer": max(perPeer),
            "maxOverMean": round(max(perPeer) / meanRecords, 2) if meanRecords else 0.0,
            "peersHolding": len(holding),
            "meanPerHoldingPeer": round(mean(holding), 3),
            "maxOverMeanHolding": round(max(perPeer) / mean(holding), 2) if holding else 0.0,
            "perPeerSorted": sorted(perPeer, reverse=True),
            "withFirstRound": {"total": sum(held), "maxPerPeer": max(held)},
        },
        "naive": {
            "peersHolding": holdersPerResource,
            "maxPerPeer": count,
            "meanPerPeer": round(naiveMean, 3),
            "maxOverMean": round(count / naiveMean, 2) if naiveMean else 0.0,
        },
        "wallSeconds": round(time.perf_counter() - started, 1),
    }


def configuration(seed: int, maxMessageSize: int | None = None, maxCount: int | None = None) -> Any:
    """The harness's default overlay configuration for REDIR (the embedded
    default plus the usage's Kinds), with another max-message-size or
    REDIR max-count when given."""
    base = MemoryOverlay(0, usages=[redir], seed=seed).configuration
    # REDIR is an IANA Kind: the configuration may name it rather than number it.
    current = base.kind(REDIR_KIND_ID)
    kinds = tuple(
        dataclasses.replace(kind, maxCount=maxCount)
        if maxCount is not None and kind is current
        else kind
        for kind in base.kinds
    )
    changed = dataclasses.replace(base, kinds=kinds)
    if maxMessageSize is not None:
        changed = dataclasses.replace(changed, maxMessageSize=maxMessageSize)
    return changed


def simulate(
    peers: int,
    providerCounts: Iterable[int] = PROVIDERS,
    *,
    seed: int = 1,
    keys: int = KEYS_PER_KIND,
    lookers: int = LOOKERS,
    maxMessageSize: int | None = None,
    maxCount: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Build an overlay of ``peers`` nodes running REDIR and run
    :func:`runProviders` for each provider count, each in its own
    namespace.  The results, with the overlay's build time."""
    started = time.perf_counter()
    rng = Random(seed)
    options = {"REDIR": {"lifetime": str(LIFETIME)}}
    config = configuration(seed, maxMessageSize, maxCount)
    redirKind = config.kind(REDIR_KIND_ID)
    with MemoryOverlay(
        peers, usages=[redir], options=options, seed=seed, configuration=config
    ) as overlay:
        built = time.perf_counter() - started
        progress(f"{peers} peers joined in {built:.1f} s")
        joined = overlay.now
        runs = [
            runProviders(overlay, count, rng, keys=keys, lookers=lookers, progress=progress)
            for count in providerCounts
        ]
        simulated = overlay.now - joined
    return {
        "peers": peers,
        "seed": seed,
        "keysPerKind": keys,
        "maxMessageSize": config.maxMessageSize,
        "redirMaxCount": redirKind.maxCount if redirKind is not None else None,
        "buildSeconds": round(built, 1),
        "wallSeconds": round(time.perf_counter() - started, 1),
        "simulatedSeconds": round(simulated, 1),
        "runs": runs,
    }


def _row(run: dict[str, Any]) -> list[str]:
    cold, warm, records, naive = run["cold"], run["warm"], run["records"], run["naive"]
    registration, refresh, early = run["registration"], run["refresh"], run["beforeRefresh"]
    correct = cold["correct"] + warm["correct"]
    lookups = cold["lookups"] + warm["lookups"]
    return [
        f"{run['providers']:,}",
        f"{registration['failed'] + refresh['failed']:,}",
        f"{early['correct']:,}/{early['lookups']:,}",
        f"{correct:,}/{lookups:,}",
        f"{cold['fetchesMean']:.2f} / {cold['fetchesP99']:.0f}",
        f"{warm['fetchesMean']:.2f} / {warm['fetchesP99']:.0f}",
        f"{warm['requestsMean']:.2f} / {warm['requestsP99']:.0f}",
        f"{registration['storesMean']:.2f} / {registration['storesP99']:.0f}",
        f"{refresh['storesMean']:.2f} / {refresh['storesP99']:.0f}",
        f"{records['meanPerPeer']:.2f} / {records['maxPerPeer']}",
        f"{records['maxOverMean']:.1f}x / {records['maxOverMeanHolding']:.1f}x",
        f"{naive['meanPerPeer']:.2f} / {naive['maxPerPeer']:,}",
    ]


HEADER = [
    "providers",
    "failed reg",
    "correct before refresh",
    "correct after",
    "Fetches cold mean/p99",
    "Fetches warm mean/p99",
    "requests warm mean/p99",
    "Stores/reg mean/p99",
    "Stores/refresh mean/p99",
    "records/peer mean/max",
    "max/mean all/holding",
    "naive mean/max",
]


def table(result: dict[str, Any]) -> str:
    """The runs as a Markdown table."""
    rows = [HEADER, ["---"] * len(HEADER)] + [_row(run) for run in result["runs"]]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    """The options of the simulation (``python -m reload.sim usage REDIR``
    and ``benchmarks/redir.py``)."""
    p = argparse.ArgumentParser(
        prog="python -m reload.sim usage REDIR",
        description="ReDiR (RFC 7374) in the in-memory overlay: correctness, Fetches"
        " and records per peer for several provider counts.",
    )
    p.add_argument("--peers", type=int, default=1000, help="overlay size (default 1000)")
    p.add_argument(
        "--providers",
        default=",".join(map(str, PROVIDERS)),
        help="provider counts, capped at --peers (default 1,10,100,1000)",
    )
    p.add_argument("--keys", type=int, default=KEYS_PER_KIND, help="keys of each kind")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--max-message-size", type=int, help="the overlay's max-message-size (default 5000)"
    )
    p.add_argument("--max-count", type=int, help="REDIR's max-count (default 1024)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Simulate as ``args`` (of :func:`parser`) say, print the table and
    write the JSON when asked; the result."""
    try:
        counts = [int(c) for c in args.providers.split(",")]
    except ValueError:
        raise SystemExit(f"--providers: {args.providers!r} is not a list of numbers") from None
    result = simulate(
        args.peers,
        counts,
        seed=args.seed,
        keys=args.keys,
        maxMessageSize=args.max_message_size,
        maxCount=args.max_count,
        progress=_progress,
    )
    print(
        f"{result['peers']:,} peers, joined in {result['buildSeconds']} s;"
        f" {result['wallSeconds']} s in all; max-message-size {result['maxMessageSize']},"
        f" REDIR max-count {result['redirMaxCount']}"
    )
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps({"redir": result}, indent=2) + "\n")
    return result


def main(arguments: Sequence[str]) -> int:
    """The simulation as a command: 0 when every lookup was correct and
    every registration stored, 1 otherwise."""
    result = run(parser().parse_args(list(arguments)))
    perfect = all(
        run_["cold"]["correct"] == run_["cold"]["lookups"]
        and run_["warm"]["correct"] == run_["warm"]["lookups"]
        and run_["registration"]["failed"] == 0
        and run_["refresh"]["failed"] == 0
        for run_ in result["runs"]
    )
    return 0 if perfect else 1
