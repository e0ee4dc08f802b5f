"""What CHORD-RELOAD needs from the node it runs in, as typing Protocols.

:class:`reload.interfaces.INode` is a zope Interface, which a type checker
without the mypy-zope plugin cannot check calls against; these Protocols say
the same (and the one capability INode lacks, :class:`AttachFunction`) in a
form mypy understands.  A real node satisfies them structurally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred

from reload.api.topology import ErrorCode
from topologies.chordreload.ring import IdRange

__all__ = [
    "AttachFunction",
    "ChordError",
    "ChordNode",
    "Clock",
    "ResponsibilityCallback",
    "Timer",
]

ResponsibilityCallback = Callable[[tuple[IdRange, ...]], object]


class ChordError(ValueError):
    """A topology request refused, or a join that could not finish.

    ``errorCode`` is the RFC 6940 error (section 6.3.3.1) the node should
    answer with when this is raised from a ``handle*`` method.
    """

    def __init__(self, message: str, errorCode: int = ErrorCode.INVALID_MESSAGE) -> None:
        super().__init__(message)
        self.errorCode = errorCode


class AttachFunction(Protocol):
    """Open a connection to the peer at ``destination`` (section 6.5.1).

    ``destination`` is a Node-ID or a Resource-ID: an Attach routed to a
    Resource-ID reaches the peer responsible for it (section 10.5 step 2,
    finger searches of 10.5 and 10.7.4.2).  ``via`` is the peer to
    source-route the Attach through (section 10.6: a new neighbour is reached
    through the peer it was learned from).  ``sendUpdate`` sets the
    send_update flag, asking the answering peer for an Update once the
    connection is up (section 6.4.2.3; that peer's node calls
    :meth:`ChordTopology.sendUpdate`).

    Fires with the Node-ID of the peer now connected, after the node has
    called :meth:`ChordTopology.linkUp` for it; fails if no connection could
    be made.
    """

    def __call__(
        self, destination: bytes, *, via: bytes | None = None, sendUpdate: bool = False
    ) -> Deferred[bytes]: ...


class Timer(Protocol):
    """The part of IDelayedCall the topology uses."""

    def cancel(self) -> None: ...

    def active(self) -> bool: ...


class Clock(Protocol):
    """The part of IReactorTime the topology uses."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., object], *args: object) -> Timer: ...


class ChordNode(Protocol):
    """What the topology uses of :class:`reload.interfaces.INode`."""

    @property
    def nodeId(self) -> bytes: ...

    @property
    def clock(self) -> object: ...

    def request(
        self, destination: bytes, messageCode: int, body: bytes
    ) -> Deferred[tuple[int, bytes]]: ...
