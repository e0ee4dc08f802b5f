"""Registering and resolving AoRs through the overlay (RFC 7904 sections 3 and 4).

:func:`resolveWalk` is section 4.2 with the overlay seen as one function
(Fetch every SipRegistration of an AoR), so it runs without an overlay:

    "the caller MUST perform a Fetch with no dictionary keys ... for every
    non-GRUU AOR value returned, the caller repeats the process ... When
    only GRUUs and destination lists remain, the caller removes duplicate
    entries and contacts each of them."

The RFC sets no bound on the repetition; this module follows at most
:data:`MAX_DEPTH` AoR -> AoR steps and stops at an AoR it has fetched
already (a forwarding loop), so a hostile or careless forwarding cannot
make a caller fetch for ever (the fork-bomb note of section 8.2.1).
Loops and overlong chains are reported so the SIP front end answers 482.

:class:`SipClient` is the Python API: ``register``, ``forward``,
``unregister`` and ``resolve`` for this node's own AoR (the user name of
its certificate, section 3.3) through any :class:`~reload.interfaces.INode`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred

from reload.api.data import DEFAULT_LIFETIME, Destination, KindValues, Specifier
from reload.api.topology import ErrorCode
from reload.errors import ReloadError
from reload.interfaces import INode
from usages.sipusage.kind import SIP_REGISTRATION_KIND_ID
from usages.sipusage.record import (
    ROUTE,
    URI,
    BadAor,
    SipRegistration,
    normaliseAor,
    splitGruu,
)

__all__ = [
    "MAX_DEPTH",
    "NotOwnAor",
    "Resolution",
    "SipClient",
    "Target",
    "resolveWalk",
]

#: The most AoR -> AoR steps followed from the AoR called.
MAX_DEPTH = 8
#: The most distinct destinations one resolution hands out (section 8.2.1:
#: the caller throttles its forks).
MAX_TARGETS = 16

FetchRegistrations = Callable[[str], Awaitable[list[tuple[bytes, SipRegistration]]]]


class NotOwnAor(ValueError):
    """An AoR this node holds no identity for: its certificate's user name
    is another (RFC 7904 section 3.3), or it has none."""


@dataclass(frozen=True, slots=True)
class Target:
    """One destination list to AppAttach to (section 5.1), and where it
    came from: the AoR whose registration named it (or the GRUU called),
    the contact predicate, and the dictionary key (the registering
    device's Node-ID; empty for a GRUU)."""

    destinations: tuple[Destination, ...]
    aor: str
    contactPrefs: str = ""
    device: bytes = b""

    @property
    def nodeId(self) -> bytes:
        """The peer AppAttach goes to: the last destination (section 5.1)."""
        return self.destinations[-1].value

    def asDict(self) -> dict[str, Any]:
        return {
            "aor": self.aor,
            "nodeId": self.nodeId.hex(),
            "destinations": [d.value.hex() for d in self.destinations],
            "contactPrefs": self.contactPrefs,
            "device": self.device.hex(),
        }


@dataclass(slots=True)
class Resolution:
    """What section 4.2 found for ``aor``: the targets to contact, the
    AoRs it fetched in order, and whether it stopped at a loop or at
    :data:`MAX_DEPTH`."""

    aor: str
    targets: list[Target] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    loop: bool = False
    tooDeep: bool = False
    gruu: bool = False

    def asDict(self) -> dict[str, Any]:
        return {
            "aor": self.aor,
            "gruu": self.gruu,
            "targets": [t.asDict() for t in self.targets],
            "fetched": list(self.fetched),
            "loop": self.loop,
            "tooDeep": self.tooDeep,
        }


async def resolveWalk(
    called: str, fetch: FetchRegistrations, maxDepth: int = MAX_DEPTH
) -> Resolution:
    """Section 4.2 from ``called`` (an AoR or a GRUU, section 6); the
    overlay is ``fetch(aor)``, the (dictionary key, record) pairs stored
    at H(aor).  :class:`BadAor` for text that is not an AoR."""
    aor, gruu = splitGruu(called)
    result = Resolution(aor)
    if gruu is not None:
        # Section 6: "the caller decodes the destination list and
        # AppAttaches directly"; nothing is fetched for a GRUU.
        result.gruu = True
        result.targets.append(Target(gruu, aor))
        return result
    seen: set[tuple[bytes, ...]] = set()
    frontier = [aor]
    visited = {aor}
    depth = 0
    while frontier:
        if depth > maxDepth:
            result.tooDeep = True
            break
        following: list[str] = []
        for current in frontier:
            result.fetched.append(current)
            for device, record in await fetch(current):
                if record.type == ROUTE:
                    if not record.destinations:
                        continue
                    key = tuple(d.value for d in record.destinations)
                    if key in seen or len(result.targets) >= MAX_TARGETS:
                        continue
                    seen.add(key)
                    result.targets.append(
                        Target(record.destinations, current, record.contactPrefs, device)
                    )
                elif record.type == URI:
                    try:
                        nextAor, nextGruu = splitGruu(record.uri)
                    except ValueError:
                        continue
                    if nextGruu is not None:
                        key = tuple(d.value for d in nextGruu)
                        if key not in seen and len(result.targets) < MAX_TARGETS:
                            seen.add(key)
                            result.targets.append(Target(nextGruu, nextAor, "", device))
                    elif nextAor in visited:
                        result.loop = True
                    else:
                        visited.add(nextAor)
                        following.append(nextAor)
        frontier = following
        depth += 1
    return result


class SipClient:
    """Register, forward and resolve AoRs through ``node`` (sections 3, 4).

    A node registers only its own AoR, the user name of its certificate:
    USER-NODE-MATCH refuses anything else (section 3.3), and this class
    says so before asking the overlay (:class:`NotOwnAor`)."""

    def __init__(self, node: INode) -> None:
        self.node = node

    @property
    def aor(self) -> str:
        """This node's AoR; :class:`NotOwnAor` when its certificate
        carries no user name that is an AoR."""
        name = str(getattr(self.node, "userName", "") or "")
        try:
            return normaliseAor(name)
        except BadAor:
            raise NotOwnAor(
                "this peer's certificate has no user name that is an AoR (RFC 7904 section 3.3);"
                " start it with --user alice@example.com"
            ) from None

    def checkOwn(self, aor: str) -> str:
        """``aor`` normalised, when it is this node's; NotOwnAor else."""
        wanted = normaliseAor(aor)
        own = self.aor
        if wanted != own:
            raise NotOwnAor(
                f"{wanted} is not this peer's AoR ({own}): the overlay refuses a registration"
                " for another user's AoR (RFC 7904 section 3.3)"
            )
        return own

    def _resourceId(self, aor: str) -> bytes:
        return self.node.resourceId(aor.encode("utf-8"))

    def _store(self, aor: str, value: bytes | None, lifetime: int) -> Deferred[Any]:
        values: dict[bytes, bytes | None] = {self.node.nodeId: value}
        return self.node.store(
            self._resourceId(aor), SIP_REGISTRATION_KIND_ID, values, lifetime=lifetime
        )

    def register(
        self,
        aor: str | None = None,
        destinations: Sequence[Destination] | None = None,
        contactPrefs: str = "",
        lifetime: int = DEFAULT_LIFETIME,
    ) -> Deferred[SipRegistration]:
        """AoR -> destination list (section 3.1): calls for ``aor`` (this
        node's by default) come to ``destinations`` (this node by default).
        Deferred of the record stored."""
        try:
            own = self.checkOwn(aor) if aor is not None else self.aor
            record = SipRegistration.route(
                tuple(destinations or (Destination.node(self.node.nodeId),)), contactPrefs
            )
            data = record.encode()
        except (ValueError, NotOwnAor) as exc:
            return _failed(exc)
        return self._store(own, data, lifetime).addCallback(lambda _: record)

    def forward(
        self, target: str, aor: str | None = None, lifetime: int = DEFAULT_LIFETIME
    ) -> Deferred[SipRegistration]:
        """AoR -> AoR (section 3.1): calls for ``aor`` (this node's by
        default) go to ``target``."""
        try:
            own = self.checkOwn(aor) if aor is not None else self.aor
            record = SipRegistration.forward(target)
            data = record.encode()
        except (ValueError, NotOwnAor) as exc:
            return _failed(exc)
        return self._store(own, data, lifetime).addCallback(lambda _: record)

    def unregister(self, aor: str | None = None) -> Deferred[None]:
        """Remove this device's entry (stores exists = False)."""
        try:
            own = self.checkOwn(aor) if aor is not None else self.aor
        except (ValueError, NotOwnAor) as exc:
            return _failed(exc)
        return self._store(own, None, DEFAULT_LIFETIME).addCallback(lambda _: None)

    def fetchRegistrations(self, aor: str) -> Deferred[list[tuple[bytes, SipRegistration]]]:
        """Every SipRegistration stored at H(aor): a Fetch with no
        dictionary keys (section 4.2)."""
        specifier = Specifier(SIP_REGISTRATION_KIND_ID)

        def read(kinds: list[KindValues]) -> list[tuple[bytes, SipRegistration]]:
            out = []
            for kind in kinds:
                for value in kind.values:
                    if value.exists and isinstance(value.entry, bytes):
                        out.append((value.entry, SipRegistration.decode(value.value)))
            return out

        def nothing(failure: Any) -> list[tuple[bytes, SipRegistration]]:
            failure.trap(ReloadError)
            if failure.value.code == ErrorCode.NOT_FOUND:
                return []
            return failure  # type: ignore[no-any-return]

        d = self.node.fetch(self._resourceId(aor), [specifier])
        return d.addCallbacks(read, nothing)

    def resolve(self, aor: str, maxDepth: int = MAX_DEPTH) -> Deferred[Resolution]:
        """Section 4.2 for ``aor`` (or a GRUU): see :func:`resolveWalk`."""

        async def fetch(name: str) -> list[tuple[bytes, SipRegistration]]:
            return await self.fetchRegistrations(name)

        return ensureDeferred(resolveWalk(aor, fetch, maxDepth))


def _failed(exc: BaseException) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(exc)
    return d
