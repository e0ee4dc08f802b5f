"""Real processes (issue 6): convergence, idle maintenance traffic, memory.

Run by hand, not by the test suite:

    python3 benchmarks/lab.py [--peers 50] [--idle 120] [--json lab.json]

Starts ``--peers`` real ``twistd reload`` processes on 127.0.0.1 with
:class:`reload.lab.Lab` (free ports, a fresh self-signed overlay in a
temporary directory), the first alone and the others joining through it
(:meth:`Lab.start` launches them as cores free up: at most one starting
peer per core), and measures:

* convergence: seconds from the last process start until every peer has
  joined and every first successor and predecessor is right
  (:meth:`Lab.waitConverged`), and from the first start to the same point;
* maintenance traffic of the idle ring: the increase of the transport's
  ``sent`` counter (every message a peer puts on a link: requests, answers,
  forwards) summed over the peers during ``--idle`` seconds, per peer and
  second.  Also the steady-state figure the CHORD-RELOAD timers imply
  (section 10.7.4): every ``chord-update-interval`` an Update to each
  neighbour and an answer to each neighbour's Update, every
  ``chord-ping-interval`` a peer_ready to each other peer in the Routing
  Table and its answer.  The first timer runs 0.5 to 1.5 intervals after a
  peer joins, so an idle window shorter than half the update interval
  (300 s with the RFC's 600 s) sees none of it: only that estimate, or
  ``--idle 1200``, says what the ring does in the long run.
  The link idle timeout (7200 s) is twice ``chord-ping-interval`` (3600 s),
  so links to fingers, which only the pings use, stay open;
* CPU: the peers' CPU seconds until converged, against the cores there are
  (start-up of N interpreters on few cores bounds the convergence time);
* memory: each peer process's resident set (``VmRSS`` in
  ``/proc/PID/status``) after the idle window, its peak (``VmHWM``), its
  proportional and private shares (``/proc/PID/smaps_rollup``: libraries
  are shared between the peers), and for comparison the RSS of a bare
  interpreter that imported Twisted, and the peer's modules.

Targets: converged within 10 s of the last start; at most 0.05 messages/s
per peer when idle; at most 40 MB RSS per idle peer.  Every peer is stopped
on the way out, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import procMegabytes, procStatus, procTimes

from reload.lab import Lab, ringErrors
from topologies.chordreload.settings import DEFAULT_PING_INTERVAL, DEFAULT_UPDATE_INTERVAL

CONVERGE_TARGET = 10.0  # seconds after the last start
TRAFFIC_TARGET = 0.05  # messages per second per peer
RSS_TARGET = 40.0  # MB per idle peer process


def procPrivate(pid: int | None) -> dict[str, float]:
    """``Pss`` and private (unshared) memory of a process from
    ``/proc/PID/smaps_rollup``, in MB: what it costs beyond the pages of
    the interpreter and libraries that every peer process shares."""
    fields = procMegabytes(pid, "smaps_rollup", ("Pss", "Private_Clean", "Private_Dirty"))
    if "Pss" not in fields:
        return {}
    return {"Pss": fields["Pss"], "Private": fields.get("Private_Clean", 0.0)
            + fields.get("Private_Dirty", 0.0)}  # fmt: skip


BASELINE = (
    "import sys, {modules}\n"
    "print(next(int(l.split()[1]) for l in open('/proc/self/status')"
    " if l.startswith('VmRSS')) / 1024)"
)


def baselineRss(modules: str) -> float | None:
    """VmRSS in MB of a bare interpreter that imported ``modules``: the floor
    under a peer process's RSS that no code of this project changes."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", BASELINE.format(modules=modules)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return float(out.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


SERIES = ("sent", "forwarded", "linksUp", "linksDown")


def procCpu(pid: int | None) -> float | None:
    """User plus system CPU seconds a process has used so far."""
    times = procTimes(pid)
    return None if times is None else sum(times)


def sentCounters(lab: Lab) -> tuple[float, dict[str, dict[str, int]]]:
    """(time, the counters in :data:`SERIES` by Node-ID) over every
    reachable peer."""
    start = time.monotonic()
    counts = {}
    for status in lab.statuses():
        if "nodeId" in status:
            counters = status.get("counters", {})
            counts[status["nodeId"]] = {name: int(counters.get(name, 0)) for name in SERIES}
    return (start + time.monotonic()) / 2, counts


def expectedRate(statuses: list[dict[str, Any]], update: float, ping: float) -> float:
    """Messages per second per peer that the periodic CHORD-RELOAD timers
    send in a steady ring (section 10.7.4), from the tables peers report.

    Each tick of chord-update-interval sends an Update to every neighbour;
    by symmetry each neighbour's tick makes this peer answer one: two
    messages per neighbour per interval.  chord-ping-interval does the same
    for the other peers of the Routing Table (peer_ready and its answer)."""
    total = 0.0
    for status in statuses:
        table = status.get("neighbours", {})
        neighbours = set(table.get("predecessors", [])) | set(table.get("successors", []))
        others = set(table.get("fingers", [])) - neighbours
        total += 2 * len(neighbours) / update + 2 * len(others) / ping
    return total / max(1, len(statuses))


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    lab = Lab(directory, basePort=None, adminBasePort=None)
    result: dict[str, Any] = {"peers": args.peers, "idle_seconds": args.idle}

    def progress(message: str) -> None:
        if args.verbose:
            print(f"  {time.monotonic() - began:6.1f} s  {message}", file=sys.stderr)

    try:
        began = time.monotonic()
        lab.start(args.peers, progress)
        allJoined: float | None = time.monotonic()
        assert lab.lastStarted is not None
        lastStart = lab.lastStarted
        pollerCpu = time.process_time()
        try:
            lab.waitConverged(args.converge_timeout, progress)
            converged: float | None = time.monotonic()
        except TimeoutError:
            # Measure the rest anyway: a ring that never converges is a
            # result, and so are its traffic and memory.
            converged = None
            result["ring_errors_at_timeout"] = ringErrors(lab.statuses())[:10]
        # On few cores CPU bounds convergence: the peers' CPU until now
        # (start-up, imports, key generation, TLS, joining) per core.
        pollerCpu = time.process_time() - pollerCpu
        cpu = [c for c in (procCpu(p.pid) for p in lab.peers) if c is not None]
        result.update(
            cores=os.cpu_count(),
            peer_cpu_seconds_total=sum(cpu),
            peer_cpu_seconds_mean=sum(cpu) / max(1, len(cpu)),
            poller_cpu_seconds=pollerCpu,
        )
        result.update(
            converge_timeout=args.converge_timeout,
            first_start_to_last_start=lastStart - began,
            converged_after_last_start=None if converged is None else converged - lastStart,
            first_start_to_converged=None if converged is None else converged - began,
            all_joined_after_last_start=None if allJoined is None else allJoined - lastStart,
        )
        print(
            "not converged" if converged is None else f"converged {converged - lastStart:.1f} s",
            f"after the last start; idling {args.idle:.0f} s",
            file=sys.stderr,
        )

        samples = [sentCounters(lab)]
        end = samples[0][0] + args.idle
        while (now := time.monotonic()) < end:
            time.sleep(min(args.sample, end - now))
            samples.append(sentCounters(lab))
        (t0, before), (t1, after) = samples[0], samples[-1]
        common = before.keys() & after.keys()
        deltas = {n: after[n]["sent"] - before[n]["sent"] for n in common}
        seconds = t1 - t0
        statuses = lab.statuses()
        result.update(
            idle_measured_seconds=seconds,
            idle_messages_sent=sum(deltas.values()),
            idle_rate_per_peer=sum(deltas.values()) / (max(1, len(common)) * seconds),
            idle_max_peer_sent=max(deltas.values(), default=0),
            idle_series=[
                {"t": round(t - t0, 1)}
                | {name: sum(c[n][name] for n in common if n in c) for name in SERIES}
                for t, c in samples
            ],
            # The lab's configuration sets no chord elements: RFC defaults.
            steady_rate_per_peer_from_timers=expectedRate(
                statuses, DEFAULT_UPDATE_INTERVAL, DEFAULT_PING_INTERVAL
            ),
            links_per_peer_mean=sum(len(s.get("links", [])) for s in statuses)
            / max(1, len(statuses)),
            links_per_peer_max=max((len(s.get("links", [])) for s in statuses), default=0),
            chord_update_interval=DEFAULT_UPDATE_INTERVAL,
            chord_ping_interval=DEFAULT_PING_INTERVAL,
            ring_errors_after_idle=ringErrors(statuses)[:5],
        )

        memory = [procStatus(p.pid) | procPrivate(p.pid) for p in lab.peers]
        rss = [m["VmRSS"] for m in memory if "VmRSS" in m]
        hwm = [m["VmHWM"] for m in memory if "VmHWM" in m]
        result.update(
            rss_mb_max=max(rss, default=0.0),
            rss_mb_mean=sum(rss) / max(1, len(rss)),
            rss_mb_min=min(rss, default=0.0),
            hwm_mb_max=max(hwm, default=0.0),
            pss_mb_max=max((m["Pss"] for m in memory if "Pss" in m), default=0.0),
            private_mb_max=max((m["Private"] for m in memory if "Private" in m), default=0.0),
            processes_measured=len(rss),
        )
    finally:
        lab.stop()
    result.update(
        baseline_rss_mb_python=baselineRss("os"),
        baseline_rss_mb_twisted=baselineRss("twisted.internet.reactor, twisted.web.server"),
        baseline_rss_mb_reload=baselineRss("twisted.internet.reactor, reload.tap, reload.peer"),
    )
    return result


def table(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(metric, value, target, met) rows."""
    n = result["peers"]

    def seconds(key: str) -> str:
        value = result.get(key)
        return "-" if value is None else f"{value:.1f} s"

    converged = result["converged_after_last_start"]
    convergedText = (
        f"> {result['converge_timeout']:.0f} s" if converged is None else f"{converged:.1f} s"
    )

    def mb(key: str) -> str:
        value = result.get(key)
        return "-" if value is None else f"{value:.1f} MB"

    rate = result["idle_rate_per_peer"]
    steady = result["steady_rate_per_peer_from_timers"]
    return [
        (f"{n} peers: converged after last start", convergedText,
         f"<= {CONVERGE_TARGET:.0f} s", converged is not None and converged <= CONVERGE_TARGET),
        ("  all joined after last start", seconds("all_joined_after_last_start"), "", None),
        ("  first start to last start", seconds("first_start_to_last_start"), "", None),
        (f"{n} peers: first start to converged", seconds("first_start_to_converged"), "", None),
        ("  peer CPU until converged, mean per peer", seconds("peer_cpu_seconds_mean"), "", None),
        (f"  peer CPU until converged, total / {result['cores']} cores",
         f"{result['peer_cpu_seconds_total'] / (result['cores'] or 1):.1f} s", "", None),
        ("  status polling's own CPU (this process)", seconds("poller_cpu_seconds"), "", None),
        (f"idle traffic, measured over {result['idle_measured_seconds']:.0f} s",
         f"{rate:.4f} msg/s/peer", f"<= {TRAFFIC_TARGET}", rate <= TRAFFIC_TARGET),
        ("  messages sent by all peers in the window", f"{result['idle_messages_sent']}", "",
         None),
        ("  links per peer (mean / max)",
         f"{result['links_per_peer_mean']:.1f} / {result['links_per_peer_max']}", "", None),
        (f"idle traffic, steady state from timers (update "
         f"{result['chord_update_interval']:.0f} s, ping {result['chord_ping_interval']:.0f} s)",
         f"{steady:.4f} msg/s/peer", f"<= {TRAFFIC_TARGET}", steady <= TRAFFIC_TARGET),
        ("idle peer RSS, max", f"{result['rss_mb_max']:.1f} MB", f"<= {RSS_TARGET:.0f} MB",
         result["rss_mb_max"] <= RSS_TARGET),
        ("idle peer RSS, mean", f"{result['rss_mb_mean']:.1f} MB", "", None),
        ("  peak RSS (VmHWM), max", mb("hwm_mb_max"), "", None),
        ("  proportional set size (Pss), max", mb("pss_mb_max"), "", None),
        ("  private (unshared) memory, max", mb("private_mb_max"), "", None),
        ("  floor: python alone", mb("baseline_rss_mb_python"), "", None),
        ("  floor: python + twisted reactor + web", mb("baseline_rss_mb_twisted"), "", None),
        ("  floor: + reload.tap, reload.peer imported", mb("baseline_rss_mb_reload"), "", None),
        ("ring errors after idle", str(len(result["ring_errors_after_idle"])), "0",
         not result["ring_errors_after_idle"]),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=50, help="number of peer processes")
    parser.add_argument("--idle", type=float, default=120.0, help="seconds of idle ring")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--converge-timeout", type=float, default=180.0, help="give up converging after this"
    )
    parser.add_argument("--dir", type=Path, help="lab directory (kept); default a temporary one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary lab directory")
    parser.add_argument("--verbose", action="store_true", help="print convergence progress")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.peers < 2:
        parser.error("--peers must be at least 2")

    # SIGTERM and SIGHUP unwind through the finally that stops the peers.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, f: sys.exit(128 + s))
    directory = args.dir or Path(tempfile.mkdtemp(prefix="reload-lab-bench-"))
    print(f"lab directory: {directory}", file=sys.stderr)
    try:
        result = run(args, directory)
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(directory, ignore_errors=True)

    rows = table(result)
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':{width}} {'value':>18} {'target':>10}  met")
    for name, value, target, met in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name:{width}} {value:>18} {target:>10}  {mark}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    **result,
                    "results": [
                        {"metric": n, "value": v, "target": t, "met": m}
                        for n, v, t, m in rows
                        if m is not None
                    ],
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
