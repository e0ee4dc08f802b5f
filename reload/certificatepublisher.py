"""Keeping this peer's certificate in the overlay for as long as it runs.

RFC 6940 section 11.3.1: a peer stores its certificate at its Node-ID
(CERTIFICATE_BY_NODE) and at its user name (CERTIFICATE_BY_USER), so that
whoever meets its signature without the certificate can fetch it (section
8).  A Store is soft state (section 7.4.1.1: it expires after its lifetime)
and can fail (the ring is still settling just after the join, the
responsible peer is gone), so storing once is not enough for a peer that
runs for months:

- a failed Store is retried after RETRY_DELAYS (the last one repeats);
- a stored certificate is stored again at REFRESH_FRACTION of its lifetime,
  before the responsible peer drops it;
- :meth:`CertificatePublisher.stop` cancels what is pending (the peer is
  leaving).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["REFRESH_FRACTION", "RETRY_DELAYS", "CertificatePublisher"]

#: Seconds before the 1st, 2nd... retry of a failed Store; the last repeats.
RETRY_DELAYS = (2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 300.0)
#: Stored again when this share of the lifetime has passed.
REFRESH_FRACTION = 0.9

#: ``store(kindId, resourceName, lifetime)``: store the certificate at the
#: Resource-ID of ``resourceName`` under ``kindId``; fires when stored.
StoreCertificate = Callable[[int, bytes, int], Deferred[Any]]


class CertificatePublisher:
    """Stores the certificate under each of ``targets`` ((Kind-ID, Resource
    Name) pairs) with ``store`` and keeps it stored: retried on failure,
    refreshed before ``lifetime`` seconds pass."""

    log = Logger()

    def __init__(
        self,
        store: StoreCertificate,
        targets: Sequence[tuple[int, bytes]],
        clock: IReactorTime,
        lifetime: int,
    ) -> None:
        if lifetime < 1:
            raise ValueError(f"lifetime {lifetime} is not a positive number of seconds")
        self._store = store
        self.targets = tuple(targets)
        self._clock = clock
        self.lifetime = lifetime
        self._timers: dict[tuple[int, bytes], IDelayedCall] = {}
        self._failures: dict[tuple[int, bytes], int] = {}
        self._stopped = False
        #: Stores that succeeded, and the last failure's reason per Kind.
        self.stored = 0
        self.lastFailure: dict[int, str] = {}

    def start(self) -> None:
        """Store under every target now."""
        self._stopped = False
        for target in self.targets:
            self._publish(target)

    def stop(self) -> None:
        """Store nothing more."""
        self._stopped = True
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    @property
    def pending(self) -> int:
        """Targets whose last Store failed and waits for its retry."""
        return len(self._failures)

    def _publish(self, target: tuple[int, bytes]) -> None:
        self._timers.pop(target, None)
        if self._stopped:
            return
        kindId, name = target
        try:
            stored = self._store(kindId, name, self.lifetime)
        except Exception:
            self._failed(Failure(), target)
            return
        stored.addCallbacks(
            lambda _: self._stored(target),
            lambda failure: self._failed(failure, target),
        )

    def _stored(self, target: tuple[int, bytes]) -> None:
        self.stored += 1
        self._failures.pop(target, None)
        self.lastFailure.pop(target[0], None)
        self._schedule(target, self.lifetime * REFRESH_FRACTION)

    def _failed(self, failure: Failure, target: tuple[int, bytes]) -> None:
        attempt = self._failures.get(target, 0)
        self._failures[target] = attempt + 1
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
        reason = failure.getErrorMessage() or repr(failure.value)
        self.lastFailure[target[0]] = reason
        self.log.warn(
            "Cannot store this peer's certificate (Kind {kind}): {error}; again in {delay:g} s",
            kind=target[0],
            error=reason,
            delay=delay,
        )
        self._schedule(target, delay)

    def _schedule(self, target: tuple[int, bytes], delay: float) -> None:
        if self._stopped:
            return
        self._timers[target] = self._clock.callLater(delay, self._publish, target)
