"""The same scenarios on every installed topology, side by side (issue
22): ``benchmarks/ring.py --topology all`` runs :func:`compareTopology`
once per topology plugin, each in a fresh interpreter.

Per topology, on one overlay of ``peers`` peers (joined one by one, then
``stabilise`` simulated seconds):

* hops: ``lookups`` Pings to random Resource-IDs; forwarding hops (the
  via list) and overlay links crossed (hops + 1), all checked against the
  global ring (RFC 6940 section 10.1);
* idle maintenance: link messages (every message of any kind crossing a
  link: Updates, Attaches and their answers, forwarded copies) per peer
  per second over ``window`` quiet simulated seconds;
* aged: the same overlay left alone for ``age`` more simulated seconds
  (no joins, leaves or failures), then hops and idle maintenance again:
  what a long-running overlay with low churn costs.  Topologies whose
  work depends on the overlay's history differ here: CHORD-SELF-TUNING's
  join-rate estimate (RFC 7363 section 6.4) is the overlay size over the
  median age of the peers, so it slows its stabilisation as the peers age,
  and ONE-HOP-RELOAD completes its links at its bounded rate;
* churn maintenance (on the aged overlay): the same under ``churn`` of
  the membership per minute (half joins, a quarter graceful leaves, a quarter failures) for
  ``window`` seconds, without lookups; then the success of ``lookups``
  lookups right after the churn;
* failure: 20% of the peers fail at once; after ``detection`` (their links
  close) the success of ``lookups`` lookups with no time to repair;
* memory: Python allocations per peer (``tracemalloc``) after the joins.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from reload.sim.scenarios import SimSettings, Simulation

__all__ = ["compareTopology"]


def compareTopology(
    topology: str,
    *,
    peers: int,
    lookups: int,
    seed: int = 1,
    stabilise: float = 600.0,
    window: float = 600.0,
    age: float = 0.0,
    churn: float = 0.10,
    failure: float = 0.20,
    progress: Callable[[str], object] | None = None,
) -> dict[str, Any]:
    def say(message: str) -> None:
        if progress is not None:
            progress(f"{topology}: {message}")

    started = time.perf_counter()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    sim = Simulation(SimSettings(seed=seed, topology=topology, tuneGc=False))
    join = sim.joinPeers(peers)
    sim.settle()
    gc.collect()
    memory = (tracemalloc.get_traced_memory()[0] - base) / peers
    tracemalloc.stop()
    say(f"{peers} joined; stabilising {stabilise:.0f} s")
    sim.stabilise(stabilise)
    hops = sim.lookups(lookups).summary()
    say("idle window")
    messages = sim.network.messages
    sim.stabilise(window)
    idle = (sim.network.messages - messages) / (len(sim.members) * window)
    aged: dict[str, Any] = {}
    if age > 0:
        say(f"ageing {age:.0f} s")
        sim.stabilise(age)
        aged["lookups"] = sim.lookups(lookups).summary()
        messages = sim.network.messages
        sim.stabilise(window)
        aged["idleMessagesPerPeerSecond"] = round(
            (sim.network.messages - messages) / (len(sim.members) * window), 4
        )
        aged["ageSeconds"] = age + stabilise + 2 * window
    perMinute = churn * len(sim.members) / 60.0
    say(f"churn {100 * churn:.0f}%/min for {window:.0f} s")
    messages = sim.network.messages
    churned = sim.churn(
        window,
        joinRate=perMinute / 2,
        leaveRate=perMinute / 4,
        failRate=perMinute / 4,
        lookupRate=0.0,
    ).summary()
    underChurn = (sim.network.messages - messages) / (len(sim.members) * window)
    afterChurn = sim.lookups(lookups).summary()
    say(f"{100 * failure:.0f}% fail at once")
    sim.failPeers(failure)
    sim.sched.runUntil(sim.sched.now + sim.settings.detection + 1.0)
    underFailure = sim.lookups(lookups, concurrency=lookups).summary()
    return {
        "topology": topology,
        "peers": peers,
        "join": join.summary(),
        "lookups": hops,
        "idleMessagesPerPeerSecond": round(idle, 4),
        "aged": aged,
        "churnPerMinute": churn,
        "churn": churned,
        "churnMessagesPerPeerSecond": round(underChurn, 4),
        "lookupsAfterChurn": afterChurn,
        "failedFraction": failure,
        "lookupsUnderFailure": underFailure,
        "bytesPerNode": round(memory),
        "state": sim.state(),
        "wallSeconds": round(time.perf_counter() - started, 1),
    }
