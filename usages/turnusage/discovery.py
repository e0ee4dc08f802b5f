"""Finding TURN servers through the overlay (RFC 6940 section 9).

"Peers MAY find other servers by selecting a random Resource-ID and then
doing a Find request for the appropriate Kind-ID with that Resource-ID
... The returned response may be empty if the peer does not know of any
servers, in which case the process gets repeated with some other random
Resource-ID."  The founding paper (Knauf et al. 2010, Listing 2) adds the
Fetch at the Resource-ID the Find names, which returns the TurnServer.

:class:`TurnDiscovery` does that, with what a client needs around it:

- a small cache of the servers found (at most ``cacheSize``), each kept
  until its value's lifetime ends;
- a liveness check (a STUN Binding request, ``check``) of every server
  before it is handed out, so a crashed server whose advertisement has not
  lapsed is never given to a caller; a server that does not answer is
  forgotten and ignored for ``deadFor`` seconds even if Fetched again;
- rotation: the servers handed out go to the back of the cache, so
  successive callers spread over the servers known;
- at most ``maxSearches`` Finds (or ReDiR lookups) per call.

With a :class:`~usages.redir.RedirClient`, the search is a ReDiR lookup in
the ``turn-server`` namespace (RFC 7374 section 10.4) for a random key
instead: it names a provider's Node-ID, and the provider's TurnServer is
Fetched at H(Node-ID || 1), where every advertising server stores it
(:class:`~usages.turnusage.advertiser.TurnAdvertiser`).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from reload.api.names import nodeMultipleResourceName
from reload.errors import ReloadError, ReloadTimeout
from reload.interfaces import INode

from .kind import TURN_SERVICE_KIND_ID, TurnServer

__all__ = [
    "REDIR_NAMESPACE",
    "Check",
    "FoundTurnServer",
    "SearchStats",
    "TurnDiscovery",
]

#: RFC 7374 section 10.4: the ReDiR namespace of TURN servers.
REDIR_NAMESPACE = "turn-server"
#: ``check(host, port)``: Deferred of the address the server saw (its
#: STUN Binding answer), or None when it did not answer.
Check = Callable[[str, int], "Deferred[tuple[str, int] | None]"]


@dataclass(frozen=True, slots=True)
class FoundTurnServer:
    """A TURN server found through the overlay and checked alive.

    ``nodeId`` is the peer that advertised it (the verified signer of its
    TurnServer), ``iteration`` its d, ``resourceId`` where it was Fetched,
    ``expires`` when its value lapses (seconds, node clock), ``mapped``
    the address the server saw this node at (STUN's XOR-MAPPED-ADDRESS)."""

    host: str
    port: int
    nodeId: bytes
    iteration: int
    resourceId: bytes
    expires: float
    mapped: tuple[str, int] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def asDict(self) -> dict[str, Any]:
        """JSON-able, for the admin API and ``reloadctl turn find``."""
        return {
            "host": self.host,
            "port": self.port,
            "nodeId": self.nodeId.hex(),
            "iteration": self.iteration,
            "resourceId": self.resourceId.hex(),
            "mapped": None if self.mapped is None else f"{self.mapped[0]}:{self.mapped[1]}",
        }


@dataclass
class SearchStats:
    """What one :meth:`TurnDiscovery.findTurnServers` call cost."""

    finds: int = 0
    fetches: int = 0
    lookups: int = 0
    checks: int = 0
    dead: int = 0
    fromCache: int = 0
    #: Find or lookup that located a server address new to the cache,
    #: numbered from 1 (so the caller can tell "found in N Finds").
    firstFoundAt: int | None = None
    errors: list[str] = field(default_factory=list)

    def asDict(self) -> dict[str, Any]:
        return {
            "finds": self.finds,
            "fetches": self.fetches,
            "lookups": self.lookups,
            "checks": self.checks,
            "dead": self.dead,
            "fromCache": self.fromCache,
            "firstFoundAt": self.firstFoundAt,
            "errors": list(self.errors),
        }


class TurnDiscovery:
    """Finds, checks, caches and rotates TURN servers for ``node``."""

    log = Logger()

    def __init__(
        self,
        node: INode,
        check: Check,
        *,
        rng: random.Random | None = None,
        cacheSize: int = 8,
        maxSearches: int = 32,
        deadFor: float = 60.0,
        redir: Any = None,
    ) -> None:
        if cacheSize < 1 or maxSearches < 1:
            raise ValueError("cacheSize and maxSearches are at least 1")
        self.node = node
        self.check = check
        self.rng = rng if rng is not None else random.SystemRandom()
        self.cacheSize = cacheSize
        self.maxSearches = maxSearches
        self.deadFor = deadFor
        #: A RedirClient: search with ReDiR (RFC 7374) instead of Find.
        self.redir = redir
        #: address -> server, least recently handed out first.
        self.cache: OrderedDict[tuple[str, int], FoundTurnServer] = OrderedDict()
        #: address -> until when it is ignored (it did not answer).
        self.dead: dict[tuple[str, int], float] = {}
        self.searches = 0
        self.handedOut = 0
        self.lastSearch: SearchStats | None = None

    @property
    def method(self) -> str:
        return "redir" if self.redir is not None else "find"

    def findTurnServers(self, count: int = 1) -> Deferred[list[FoundTurnServer]]:
        """Up to ``count`` live TURN servers, each answering a STUN Binding
        just now: from the cache first (oldest handed out first), then
        from new searches.  Fewer (maybe none) when ``maxSearches``
        searches found no more; :attr:`lastSearch` says what it cost.
        ValueError for a count below 1."""
        if count < 1:
            raise ValueError(f"count: {count} is not at least 1")
        return Deferred.fromCoroutine(self._find(count))

    async def _find(self, count: int) -> list[FoundTurnServer]:
        stats = SearchStats()
        self.lastSearch = stats
        handed: list[FoundTurnServer] = []
        now = self.node.clock.seconds()
        for address, server in list(self.cache.items()):
            if len(handed) >= count:
                break
            if server.expires <= now:
                del self.cache[address]
                continue
            alive = await self._alive(server, stats)
            if alive is not None:
                stats.fromCache += 1
                handed.append(alive)
        searches = 0
        while len(handed) < count and searches < self.maxSearches:
            searches += 1
            self.searches += 1
            for server in await self._search(stats):
                if len(handed) >= count:
                    break
                if server.address in {s.address for s in handed}:
                    continue
                alive = await self._alive(server, stats)
                if alive is not None:
                    if stats.firstFoundAt is None:
                        stats.firstFoundAt = searches
                    handed.append(alive)
        for server in handed:
            # Rotation: what was handed out now goes last.
            if server.address in self.cache:
                self.cache.move_to_end(server.address)
        self.handedOut += len(handed)
        return handed

    async def _alive(self, server: FoundTurnServer, stats: SearchStats) -> FoundTurnServer | None:
        """The server with the address it saw us at when it answers a
        Binding; else None, and it is forgotten."""
        stats.checks += 1
        try:
            mapped = await self.check(server.host, server.port)
        except Exception as exc:
            stats.errors.append(f"check {server.host}:{server.port}: {exc}")
            mapped = None
        if mapped is None:
            stats.dead += 1
            self.cache.pop(server.address, None)
            self.dead[server.address] = self.node.clock.seconds() + self.deadFor
            self.log.info(
                "TURN: {host}:{port} did not answer a STUN Binding; forgotten",
                host=server.host,
                port=server.port,
            )
            return None
        alive = FoundTurnServer(
            server.host,
            server.port,
            server.nodeId,
            server.iteration,
            server.resourceId,
            server.expires,
            (str(mapped[0]), int(mapped[1])),
        )
        if server.address in self.cache:
            self.cache[server.address] = alive
        return alive

    def _random(self) -> bytes:
        return self.rng.getrandbits(8 * len(self.node.nodeId)).to_bytes(
            len(self.node.nodeId), "big"
        )

    async def _search(self, stats: SearchStats) -> list[FoundTurnServer]:
        """One search: Find at a random Resource-ID and Fetch where it
        points (section 9), or a ReDiR lookup and a Fetch at the provider's
        H(Node-ID || 1).  The servers new to the cache (added to it); an
        overlay error is recorded and yields nothing."""
        try:
            if self.redir is not None:
                stats.lookups += 1
                result = await self.redir.lookup(REDIR_NAMESPACE, self._random())
                where = self.node.resourceId(nodeMultipleResourceName(result.nodeId, 1))
            else:
                stats.finds += 1
                found = await self.node.find(self._random(), [TURN_SERVICE_KIND_ID])
                located = found.get(TURN_SERVICE_KIND_ID)
                if located is None:
                    return []
                where = located
            stats.fetches += 1
            kinds = await self.node.fetch(where, [TURN_SERVICE_KIND_ID])
        except (ReloadError, ReloadTimeout, LookupError, ValueError, TimeoutError) as exc:
            stats.errors.append(f"{type(exc).__name__}: {exc}")
            return []
        return self._remember(where, kinds)

    def _remember(self, resourceId: bytes, kinds: list[Any]) -> list[FoundTurnServer]:
        now = self.node.clock.seconds()
        new = []
        for kind in kinds:
            if kind.kindId != TURN_SERVICE_KIND_ID:
                continue
            for value in kind.values:
                if not value.exists:
                    continue
                try:
                    record = TurnServer.decode(value.value)
                except ValueError:
                    continue  # verified by the fetch already; be safe
                address = record.address
                if address is None:
                    continue  # an address type this peer cannot use
                if self.dead.get(address, 0) > now:
                    continue
                self.dead.pop(address, None)
                expires = value.storageTime / 1000 + value.lifetime
                if expires <= now or address in self.cache:
                    continue
                server = FoundTurnServer(
                    address[0],
                    address[1],
                    value.signerNodeId,
                    record.iteration,
                    resourceId,
                    expires,
                )
                self.cache[address] = server
                new.append(server)
        while len(self.cache) > self.cacheSize:
            self.cache.popitem(last=False)
        return new

    def status(self) -> dict[str, Any]:
        """What the status page shows of discovery."""
        now = self.node.clock.seconds()
        return {
            "method": self.method,
            "cached": [f"{h}:{p}" for h, p in self.cache],
            "ignoredDead": sorted(f"{h}:{p}" for (h, p), t in self.dead.items() if t > now),
            "searches": self.searches,
            "handedOut": self.handedOut,
            "lastSearch": None if self.lastSearch is None else self.lastSearch.asDict(),
        }
