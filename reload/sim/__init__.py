"""A deterministic in-process simulator for large RELOAD overlays.

Thousands of peers run in one process: each is the real
:class:`~reload.transport.TransportNode` with a real topology plugin
(CHORD-RELOAD by default) (:mod:`reload.node` builds a deployed peer from the same parts),
connected by in-memory links with latency, on one simulated clock.  Runs are
seeded and reproducible; signatures (:class:`~reload.transport
.SigningSecurity` with real certificates) and TLS links are switches, off by
default because they cost the most.

- :mod:`reload.sim.clock`: the discrete-event scheduler (``IReactorTime``);
- :mod:`reload.sim.network`: hosts and in-memory links, failures;
- :mod:`reload.sim.tls`: real TLS links over simulated TCP (the ``tls``
  switch);
- :mod:`reload.sim.node`: a simulated peer and the signing switch;
- :mod:`reload.sim.scenarios`: joins, lookups, churn, mass failure;
- :mod:`reload.sim.report`: histograms, percentiles, tables, JSON;
- ``python -m reload.sim``: the command line (:mod:`reload.sim.__main__`).
"""

from reload.sim.clock import NodeClock, Scheduler
from reload.sim.network import SimLink, SimNetwork
from reload.sim.node import Security, SimNode, SimPki
from reload.sim.report import Histogram
from reload.sim.scenarios import (
    LookupStats,
    SimSettings,
    Simulation,
    churnScenario,
    joinScenario,
    massFailureScenario,
)

__all__ = [
    "Histogram",
    "LookupStats",
    "NodeClock",
    "Scheduler",
    "Security",
    "SimLink",
    "SimNetwork",
    "SimNode",
    "SimPki",
    "SimSettings",
    "Simulation",
    "churnScenario",
    "joinScenario",
    "massFailureScenario",
]
