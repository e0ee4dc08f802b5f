"""What ``benchmarks/storage.py`` and its child processes share.

Not run by hand.  The parent talks to each child (a load driver, a DHT node)
over its stdin and stdout, one JSON object per line: the child says
``{"ready": ...}`` once it can take commands, answers each command with one
line, and stops when its stdin closes (the parent closed it, or died).  A
child also asks for SIGTERM when its parent dies (Linux) and bounds its own
life with ``--lifetime``, so that nothing outlives a benchmark.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

#: Bytes of every stored value: the default overlay's TURN-SERVICE Kind
#: takes at most 64 (see storage.py).
VALUE_SIZE = 48
#: The Kind the RELOAD drivers store: SINGLE, NODE-MULTIPLE with
#: max-node-multiple KEYS_PER_IDENTITY (a private-use Kind-ID, RFC 6940
#: section 14.6).  storage.py adds it to the lab's overlay configuration.
BENCH_KIND = 0xF0000020
#: Keys per RELOAD client identity: its Resource Names Node-ID || i for
#: i = 1..KEYS_PER_IDENTITY (section 7.3.4; i is one byte).
KEYS_PER_IDENTITY = 250


# -- figures ----------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
    return ordered[index] * 1000.0


@dataclass
class Phase:
    """One driver's part of a store or fetch phase: when it began and
    ended (``time.monotonic``, the same clock in every process on Linux),
    a latency per completed operation, and what went wrong."""

    began: float = 0.0
    ended: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Fetches that completed but returned something else than was stored
    #: (or nothing).
    mismatches: int = 0
    cpu: float = 0.0

    def toJson(self) -> dict[str, Any]:
        return {
            "began": self.began,
            "ended": self.ended,
            "latencies": [round(x, 7) for x in self.latencies],
            "errors": self.errors[:20],
            "errorCount": len(self.errors),
            "mismatches": self.mismatches,
            "cpu": self.cpu,
        }


def combine(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one phase from every driver's :meth:`Phase.toJson`:
    operations per second over the wall time from the first driver's start
    to the last one's end, and the percentiles of all latencies together."""
    latencies = sorted(x for p in parts for x in p["latencies"])
    began = min((p["began"] for p in parts), default=0.0)
    ended = max((p["ended"] for p in parts), default=0.0)
    seconds = ended - began
    errors = [e for p in parts for e in p["errors"]]
    return {
        "ops": len(latencies),
        "seconds": round(seconds, 3),
        "per_second": len(latencies) / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] * 1000.0 if latencies else None,
        "errors": sum(p["errorCount"] for p in parts),
        "error_examples": sorted(set(errors))[:5],
        "mismatches": sum(p["mismatches"] for p in parts),
        "driver_cpu_seconds": round(sum(p["cpu"] for p in parts), 2),
    }


def procMegabytes(pid: int | None, name: str, keys: Sequence[str]) -> dict[str, float]:
    """The ``KEY: N kB`` lines ``keys`` of ``/proc/PID/NAME``, in MB (empty
    if the process is gone)."""
    if pid is None:
        return {}
    try:
        text = Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            found[key] = int(value.split()[0]) / 1024
    return found


def procStatus(pid: int | None) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` of a process in MB (empty if it is gone)."""
    return procMegabytes(pid, "status", ("VmRSS", "VmHWM"))


def procTimes(pid: int | None) -> tuple[float, float] | None:
    """User and system CPU seconds a process has used so far."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpuTotals(pids: Sequence[int | None]) -> tuple[float, float]:
    """User and system CPU seconds of ``pids`` together."""
    times = [t for t in (procTimes(p) for p in pids) if t is not None]
    return sum(t[0] for t in times), sum(t[1] for t in times)


def udpReceiveDrops() -> int | None:
    """Datagrams the kernel dropped, machine-wide, because a UDP socket's
    receive buffer was full (``RcvbufErrors`` in ``/proc/net/snmp``)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    except OSError:
        return None
    udp = [fields for fields in lines if fields and fields[0] == "Udp:"]
    if len(udp) < 2 or "RcvbufErrors" not in udp[0]:
        return None
    return int(udp[1][udp[0].index("RcvbufErrors")])


def memory(pids: Sequence[int | None], nodesPerProcess: int = 1) -> dict[str, Any]:
    """RSS per node from the processes' ``VmRSS``: mean and max over the
    processes, divided by the nodes each process runs."""
    rss = [m["VmRSS"] for m in (procStatus(p) for p in pids) if "VmRSS" in m]
    return {
        "rss_mb_mean": sum(rss) / len(rss) / nodesPerProcess if rss else None,
        "rss_mb_max": max(rss) / nodesPerProcess if rss else None,
        "processes_measured": len(rss),
        "nodes_per_process": nodesPerProcess,
    }


# -- the parent's side --------------------------------------------------------------------

_children: set[subprocess.Popen[str]] = set()


def killChildren() -> None:
    """SIGKILL every child still running (the last resort, at exit)."""
    for child in list(_children):
        with contextlib.suppress(Exception):
            child.kill()
            child.wait(5)
        _children.discard(child)


atexit.register(killChildren)


class Child:
    """A child process speaking the JSON-lines protocol."""

    def __init__(self, argv: Sequence[str], name: str, stderr: Any = None) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, *argv, "--parent", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        _children.add(self.process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the child writes (waits up to ``timeout``)."""
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if not line:
            code = self.process.poll()
            why = f"exit code {code}" if code is not None else f"nothing for {timeout:.0f} s"
            raise RuntimeError(f"{self.name} said nothing ({why})")
        result: dict[str, Any] = json.loads(line)
        if "fatal" in result:
            raise RuntimeError(f"{self.name}: {result['fatal']}")
        return result

    def tell(self, command: str) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()

    def close(self, timeout: float = 10.0) -> None:
        """Close its stdin (it stops), SIGTERM then SIGKILL if it lingers."""
        process = self.process
        with contextlib.suppress(Exception):
            assert process.stdin is not None
            process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        finally:
            _children.discard(process)


def closeAll(children: Sequence[Child]) -> None:
    """Stop children together: stdin closed for all, then wait for each."""
    for child in children:
        with contextlib.suppress(Exception):
            assert child.process.stdin is not None
            child.process.stdin.close()
    deadline = time.monotonic() + 15
    for child in children:
        with contextlib.suppress(Exception):
            child.process.wait(max(0.1, deadline - time.monotonic()))
        child.close(timeout=0.1)


# -- the child's side ---------------------------------------------------------------------


def say(obj: object) -> None:
    """One JSON line to the parent."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def logWarningsToStderr() -> None:
    """Send Twisted's log events of level warn and above to stderr: a child
    process's stdout carries the JSON-lines protocol."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)]
            )
        ],
        redirectStandardIO=False,
    )


def dieWithParent(parentPid: int) -> None:
    """SIGTERM this process when the parent dies (Linux), and exit now if
    it already has."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except Exception:
            pass
    if os.getppid() != parentPid:
        os._exit(1)


def childArguments(parser: Any) -> None:
    """The options every child takes."""
    parser.add_argument("--parent", type=int, default=os.getppid(), help="the parent's pid")
    parser.add_argument("--lifetime", type=float, default=1800.0, help="exit after this")


def dhtChildArguments(
    description: str, argv: list[str] | None, extra: Callable[[Any], None] | None = None
) -> Any:
    """Parse the options of a DHT node or driver process (``mode`` node or
    client; a client needs ``--workload`` and ``--bootstrap``), with
    ``extra(parser)`` adding its own; dies with the parent."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("mode", choices=("node", "client"))
    parser.add_argument("--bootstrap", help="HOST:PORT of a node to join through")
    parser.add_argument("--workload", type=Path, help="client: JSON [[key hex, value hex]]")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phase-timeout", type=float, default=300.0)
    if extra is not None:
        extra(parser)
    childArguments(parser)
    args = parser.parse_args(argv)
    dieWithParent(args.parent)
    if args.mode == "client":
        if args.workload is None or args.bootstrap is None:
            parser.error("client needs --workload and --bootstrap")
        args.workload_json = args.workload.read_text()
    return args


def workload(names: Sequence[bytes], seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs: a value of :data:`VALUE_SIZE` random bytes per
    key name, the same for every system measured."""
    import random

    rng = random.Random(seed)
    return [(name, rng.randbytes(VALUE_SIZE)) for name in names]


# -- profiling peers ----------------------------------------------------------------------

#: Written as ``sitecustomize.py`` into a directory put on the peers'
#: PYTHONPATH by ``storage.py --profile``: every peer process then runs
#: cProfile between two real-time signals, and writes its statistics into
#: the directory named by the environment variable, under the phase name
#: the parent wrote into the file ``phase`` there.  The profiler's clock is
#: the process's CPU time: on a machine with fewer cores than processes,
#: wall-clock time would charge a function for the time the process was
#: preempted (a send on loopback wakes the receiver, which often runs
#: first) or blocked.
PEER_PROFILER = """\
import os
import signal

_directory = os.environ.get("RELOAD_STORAGE_BENCH_PROFILE")
if _directory:
    import cProfile
    import time

    _running = []

    def _start(signum, frame):
        if not _running:
            _running.append(cProfile.Profile(time.process_time))
            _running[0].enable()

    def _stop(signum, frame):
        if _running:
            profile = _running.pop()
            profile.disable()
            with open(os.path.join(_directory, "phase")) as f:
                name = f.read().strip()
            profile.dump_stats(os.path.join(_directory, f"peer-{name}-{os.getpid()}.prof"))

    signal.signal(signal.SIGRTMIN + 3, _start)
    signal.signal(signal.SIGRTMIN + 4, _stop)
"""
#: The signals that start and stop the peers' profilers.
PROFILE_START = signal.SIGRTMIN + 3
PROFILE_STOP = signal.SIGRTMIN + 4
PROFILE_VARIABLE = "RELOAD_STORAGE_BENCH_PROFILE"


def profiledEnvironment(directory: Path) -> dict[str, str]:
    """The environment of peers that can be profiled into ``directory``."""
    hook = directory / "hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(PEER_PROFILER)
    environment = dict(os.environ)
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = str(hook) + (os.pathsep + path if path else "")
    environment[PROFILE_VARIABLE] = str(directory)
    return environment
