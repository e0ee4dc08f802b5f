"""SIP through the overlay beside Kamailio, with sipp as the phones.

Run by hand, not by the test suite:

    python3 benchmarks/sip.py [--peers 20] [--calls 200] [--registers 500] [--json sip.json]

Needs sipp (Debian ``sip-tester``) and, for the comparison, Kamailio
(Debian ``kamailio``).  Everything runs on 127.0.0.1.

reload: a lab of ``--peers`` peers, each ``--usage SIP`` with a user
``userN@example.com`` and a front end of its own.  The callee phone (a
sipp UAS, ``tests/sip/uas.xml``) registers at peer 2's front end; callers
are sipp UACs (``tests/sip/uac.xml``) at the other peers' front ends.

* **REGISTER/s**: ``--registers`` REGISTERs for peer 2's AoR (a phone
  refreshing, new Call-ID each), at most 20 outstanding, from one sipp: each
  is a Store of the SipRegistration in the overlay before the 200.
* **call setup, new connection**: the first call from each other peer to
  the callee (so each opens its AppAttach connection to the callee's peer):
  INVITE sent to 200 received, as sipp's response-time counter measures it
  (``-trace_rtt``), p50 and p99 over the peers.  Every call is also
  resolved in the overlay (a Fetch).
* **call setup, reused connection**: ``--calls`` calls from peer 1 (whose
  connection is open by then) at 10 calls/s; p50 and p99.

Kamailio: one ``kamailio`` (``benchmarks/_kamailio.cfg``: usrloc in memory,
record_route, t_relay) as registrar and proxy, with the same sipp
scenarios: the same REGISTER load, and ``--calls`` calls from a UAC to the
UAS registered there.  A call through reload crosses two proxies (the
caller's peer and the callee's) and a TLS connection between them, and
looks the callee up in a DHT; through Kamailio it crosses one proxy with
its location table in memory.

sipp measures response times with its scheduler's resolution (a few
milliseconds), so small values come in steps.  The front end makes one
Store per AoR at a time and lets REGISTERs that arrive meanwhile share the
next one (RFC 6940 section 7 refuses two Stores of one value in one
millisecond), so REGISTER/s counts REGISTERs answered, not Stores.

Targets on loopback (issue 20): call setup p99 <= 50 ms with a reused
connection and <= 150 ms with a new one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reload.lab import Lab, freeListenPort  # noqa: E402

SCENARIOS = REPO / "tests" / "sip"
DOMAIN = "example.com"


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def sipp(
    directory: Path, scenario: str, target: int, keys: dict[str, str], *extra: str
) -> list[str]:
    args = [
        "sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
        "-timeout", "120", "-timeout_error", "-nostdin",
        "-p", str(freeListenPort()), *extra,
    ]  # fmt: skip
    for key, value in keys.items():
        args += ["-key", key, value]
    return [*args, f"127.0.0.1:{target}"]


def run(args: list[str], directory: Path) -> float:
    """Run sipp in ``directory``; its wall time.  SystemExit when it fails."""
    started = time.monotonic()
    result = subprocess.run(args, cwd=directory, capture_output=True, timeout=600)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"sipp failed ({result.returncode}): {' '.join(args)}")
    return elapsed


def registerRate(directory: Path, port: int, user: str, count: int) -> float:
    keys = {
        "aor": f"{user}@{DOMAIN}", "domain": DOMAIN,
        "contact": f"{user}@127.0.0.1:9", "expires": "300",
    }  # fmt: skip
    elapsed = run(
        sipp(directory, "register.xml", port, keys, "-m", str(count), "-r", "2000", "-l", "20"),
        directory,
    )
    return count / elapsed


class Callee:
    """A sipp UAS registered as ``user`` at the front end on ``port``."""

    def __init__(self, directory: Path, port: int, user: str) -> None:
        self.directory = directory
        self.port = freeListenPort()
        keys = {
            "aor": f"{user}@{DOMAIN}", "domain": DOMAIN,
            "contact": f"{user}@127.0.0.1:{self.port}", "expires": "3000",
        }  # fmt: skip
        run(sipp(directory, "register.xml", port, keys, "-m", "1"), directory)
        args = ["sipp", "-sf", str(SCENARIOS / "uas.xml"), "-i", "127.0.0.1",
                "-p", str(self.port), "-nostdin", "-bg"]  # fmt: skip
        self.process = subprocess.Popen(
            args[:-1], cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(0.5)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def callTimes(directory: Path, port: int, callee: str, count: int, rate: int) -> list[float]:
    """``count`` calls from a UAC at the front end on ``port``: each
    call's INVITE -> 200 time in milliseconds."""
    work = Path(tempfile.mkdtemp(dir=directory))
    keys = {"caller": f"caller@{DOMAIN}", "callee": f"{callee}@{DOMAIN}"}
    args = sipp(work, "uac.xml", port, keys, "-m", str(count), "-r", str(rate),
                "-trace_rtt", "-rtt_freq", "1")  # fmt: skip
    run(args, work)
    times: list[float] = []
    for csv in work.glob("*_rtt.csv"):
        for line in csv.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                times.append(float(parts[1]))
    if len(times) != count:
        raise SystemExit(f"sipp reported {len(times)} response times for {count} calls")
    return times


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted milliseconds."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def summary(times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "calls": len(ordered),
        "p50_ms": percentile(ordered, 0.50),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] if ordered else None,
    }


def reloadRun(directory: Path, peers: int, calls: int, registers: int) -> dict[str, Any]:
    lab = Lab(directory / "lab", basePort=None, adminBasePort=None, environment=environment())
    lab.create()
    ports: list[int] = []
    try:
        for index in range(1, peers + 1):
            ports.append(freeListenPort())
            lab.extraArgs = [
                "--usage", "SIP", "--user", f"user{index}@{DOMAIN}",
                "--usage-option", f"SIP:listen=127.0.0.1:{ports[-1]}",
            ]  # fmt: skip
            lab.startPeer()
            print(f"reload: {index}/{peers} peers", file=sys.stderr)
        lab.waitConverged(180)
        rate = registerRate(directory, ports[1], "user2", registers)
        callee = Callee(directory, ports[1], "user2")
        try:
            fresh: list[float] = []
            for index, port in enumerate(ports):
                if index != 1:
                    fresh += callTimes(directory, port, "user2", 1, 1)
            reused = callTimes(directory, ports[0], "user2", calls, 10)
        finally:
            callee.stop()
    finally:
        lab.stop()
    return {
        "peers": peers,
        "register_per_s": rate,
        "new_connection": summary(fresh),
        "reused_connection": summary(reused),
    }


def kamailioRun(directory: Path, calls: int, registers: int) -> dict[str, Any] | None:
    binary = shutil.which("kamailio")
    if binary is None:
        print("kamailio is not installed (Debian package kamailio): skipped", file=sys.stderr)
        return None
    port = freeListenPort()
    config = (REPO / "benchmarks" / "_kamailio.cfg").read_text()
    config = config.replace(
        "\n@LISTEN@\n",
        f'\nlisten=udp:127.0.0.1:{port}\nlisten=tcp:127.0.0.1:{port}\nalias="{DOMAIN}"\n',
    )
    path = directory / "kamailio.cfg"
    path.write_text(config)
    with open(directory / "kamailio.log", "wb") as log:
        process = subprocess.Popen(
            [binary, "-f", str(path), "-DD", "-E", "-w", str(directory), "-Y", str(directory),
             "-P", str(directory / "kamailio.pid"), "-m", "64", "-M", "8"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        time.sleep(1.5)
        if process.poll() is not None:
            raise SystemExit(f"kamailio exited; see {directory / 'kamailio.log'}")
        rate = registerRate(directory, port, "user2", registers)
        callee = Callee(directory, port, "user2")
        try:
            times = callTimes(directory, port, "user2", calls, 10)
        finally:
            callee.stop()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {"register_per_s": rate, "calls": summary(times)}


def table(result: dict[str, Any]) -> str:
    reload_ = result["reload"]
    kamailio = result.get("kamailio")

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    width = 44
    lines = [
        f"{'':{width}} {'reload':>10} {'kamailio':>10}",
        f"{'REGISTER/s':{width}} {reload_['register_per_s']:10.0f} "
        f"{kamailio['register_per_s'] if kamailio else float('nan'):10.0f}",
    ]
    kam = kamailio["calls"] if kamailio else {}
    for label, key, other in (
        ("new AppAttach connection", "new_connection", {}),
        ("reused AppAttach connection", "reused_connection", kam),
    ):
        part = reload_[key]
        for q in ("p50", "p99"):
            lines.append(
                f"{f'call setup {q} ms, {label}':{width}} {ms(part[q + '_ms']):>10}"
                f" {ms(other.get(q + '_ms')):>10}"
            )
    lines.append(
        f"({reload_['peers']} peers; {reload_['new_connection']['calls']} first calls,"
        f" {reload_['reused_connection']['calls']} calls on a reused connection)"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--registers", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as name:
        directory = Path(name)
        result: dict[str, Any] = {
            "reload": reloadRun(directory, args.peers, args.calls, args.registers)
        }
        kamailio = kamailioRun(directory, args.calls, args.registers)
        if kamailio is not None:
            result["kamailio"] = kamailio
            result["ratios"] = {
                "register_per_s": result["reload"]["register_per_s"] / kamailio["register_per_s"],
                "p99_reused_over_kamailio": (
                    result["reload"]["reused_connection"]["p99_ms"] / kamailio["calls"]["p99_ms"]
                    if kamailio["calls"]["p99_ms"]
                    else None
                ),
            }
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
