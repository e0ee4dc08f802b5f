"""The ``kademlia`` package (PyPI, asyncio over UDP with rpcudp) for
``benchmarks/storage.py``: a DHT node, or a load driver.

Not run by hand.  ``node`` runs one :class:`kademlia.network.Server` on
127.0.0.1 (k = 20, alpha = 3, the package's defaults), bootstrapped to
``--bootstrap`` when given, and says ``{"ready": true, "port": P}``.
``client`` is a driver: a node of its own, bootstrapped to the first node,
that ``set``s and ``get``s the keys of ``--workload`` (a JSON list of [key
hex, value hex]) with ``--concurrency`` outstanding, on the commands
``warmup`` (a ``get`` of every key, whatever it finds), ``store`` and
``fetch`` (protocol in ``_common``).

The driver's node keeps nothing it is asked to store (its storage forgets at
once): ``Server.get`` answers from the local store without asking anyone
when it holds the key, and a driver that is among the k closest nodes of
many keys would otherwise measure dictionary lookups, not fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Phase, dhtChildArguments, say


async def runOps(
    ops: list[Callable[[], Awaitable[bool]]], concurrency: int, timeout: float
) -> Phase:
    """``ops`` with at most ``concurrency`` running; an op returns False
    for a wrong answer and raises for an error."""
    phase = Phase()
    queue = list(reversed(ops))
    cpu0 = time.process_time()

    async def worker() -> None:
        while queue:
            op = queue.pop()
            t0 = time.monotonic()
            try:
                ok = await op()
            except Exception as exc:
                phase.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            if not ok:
                phase.mismatches += 1
            phase.latencies.append(time.monotonic() - t0)

    phase.began = time.monotonic()
    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, concurrency))]
    _, running = await asyncio.wait(workers, timeout=timeout)
    for task in running:
        task.cancel()
    if running:
        phase.errors.append("the phase timed out")
    phase.ended = time.monotonic()
    phase.cpu = time.process_time() - cpu0
    return phase


def commandReader(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """Lines of stdin as a queue ("" at its end)."""
    queue: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=read, daemon=True).start()
    return queue


def forgetful() -> Any:
    """A kademlia storage that keeps nothing (for the driver's own node)."""
    ForgetfulStorage: Any = importlib.import_module("kademlia.storage").ForgetfulStorage

    class Forget(ForgetfulStorage):  # type: ignore[misc]
        def __setitem__(self, key: bytes, value: Any) -> None:
            pass

    return Forget()


async def node(args: argparse.Namespace) -> None:
    Server: Any = importlib.import_module("kademlia.network").Server

    server = Server()
    await server.listen(0, interface="127.0.0.1")
    if args.bootstrap:
        host, _, port = args.bootstrap.rpartition(":")
        await server.bootstrap([(host, int(port))])
    assert server.transport is not None
    port = server.transport.get_extra_info("sockname")[1]
    say({"ready": True, "port": port, "pid": os.getpid()})
    commands = commandReader(asyncio.get_running_loop())
    while (await commands.get()) != "":
        say({"neighbours": len(server.bootstrappable_neighbors())})
    server.stop()


async def client(args: argparse.Namespace) -> None:
    Server: Any = importlib.import_module("kademlia.network").Server

    pairs = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in json.loads(args.workload_json)]
    server = Server(storage=forgetful())
    await server.listen(0, interface="127.0.0.1")
    host, _, port = args.bootstrap.rpartition(":")
    found = await server.bootstrap([(host, int(port))])
    say({"ready": True, "known": len(found), "pid": os.getpid()})

    def store(key: bytes, value: bytes) -> Callable[[], Awaitable[bool]]:
        async def op() -> bool:
            stored = await server.set(key, value)
            if not stored:
                raise RuntimeError("set: no node stored the value")
            return True

        return op

    def fetch(key: bytes, value: bytes) -> Callable[[], Awaitable[bool]]:
        async def op() -> bool:
            return bool(await server.get(key) == value)

        return op

    def warm(key: bytes) -> Callable[[], Awaitable[bool]]:
        async def op() -> bool:
            await server.get(key)
            return True

        return op

    rng = random.Random(args.seed)
    commands = commandReader(asyncio.get_running_loop())
    while (line := await commands.get()) != "":
        if line == "store":
            phase = await runOps(
                [store(k, v) for k, v in pairs], args.concurrency, args.phase_timeout
            )
            say({"phase": "store", **phase.toJson()})
        elif line == "warmup":
            phase = await runOps([warm(k) for k, _ in pairs], args.concurrency, args.phase_timeout)
            say({"phase": "warmup", **phase.toJson()})
        elif line == "fetch":
            ops = [fetch(k, v) for k, v in pairs]
            rng.shuffle(ops)
            phase = await runOps(ops, args.concurrency, args.phase_timeout)
            say({"phase": "fetch", **phase.toJson()})
        else:
            say({"unknown": line})
    server.stop()


def main(argv: list[str] | None = None) -> int:
    args = dhtChildArguments("kademlia node or driver of storage.py", argv)

    async def bounded() -> None:
        job = node(args) if args.mode == "node" else client(args)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job, args.lifetime)

    try:
        asyncio.run(bounded())
    except Exception as exc:
        say({"fatal": f"{type(exc).__name__}: {exc}"})
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
