"""A peer keeps its certificate in the overlay while it runs (RFC 6940
section 11.3.1): a failed Store is retried, a stored one is stored again
before its lifetime ends, and nothing is sent after stop()."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from reload.certificatepublisher import REFRESH_FRACTION, RETRY_DELAYS, CertificatePublisher
from reload.errors import ReloadError
from reload.wire.message import ErrorCode

TARGETS = [(3, b"node-id"), (16, b"alice@example.org")]


class Overlay:
    """Answers Stores as told: a list of outcomes per Kind, then success."""

    def __init__(self, failures: dict[int, int] | None = None) -> None:
        self.failures = dict(failures or {})
        self.calls: list[tuple[float, int, bytes, int]] = []
        self.clock = Clock()

    def store(self, kindId: int, name: bytes, lifetime: int) -> Deferred[Any]:
        self.calls.append((self.clock.seconds(), kindId, name, lifetime))
        if self.failures.get(kindId, 0) > 0:
            self.failures[kindId] -= 1
            return fail(ReloadError(ErrorCode.FORBIDDEN, "not responsible"))
        return succeed(None)


def test_a_failed_store_is_retried_with_growing_delays_until_it_succeeds() -> None:
    overlay = Overlay({3: 3})
    publisher = CertificatePublisher(overlay.store, TARGETS, overlay.clock, lifetime=86400)
    publisher.start()
    assert [(t, k) for t, k, _, _ in overlay.calls] == [(0, 3), (0, 16)]
    assert publisher.pending == 1 and "not responsible" in publisher.lastFailure[3]
    overlay.clock.advance(RETRY_DELAYS[0])
    overlay.clock.advance(RETRY_DELAYS[1])
    overlay.clock.advance(RETRY_DELAYS[2])
    times = [t for t, k, _, _ in overlay.calls if k == 3]
    assert times == [0, 2, 6, 14]
    assert publisher.pending == 0 and publisher.lastFailure == {}
    assert publisher.stored == 2


def test_a_stored_certificate_is_stored_again_before_it_expires() -> None:
    overlay = Overlay()
    publisher = CertificatePublisher(overlay.store, TARGETS[:1], overlay.clock, lifetime=1000)
    publisher.start()
    overlay.clock.advance(1000 * REFRESH_FRACTION - 1)
    assert len(overlay.calls) == 1
    overlay.clock.advance(1)
    assert [(t, lifetime) for t, _, _, lifetime in overlay.calls] == [(0, 1000), (900, 1000)]
    overlay.clock.advance(900)
    assert len(overlay.calls) == 3


def test_the_last_retry_delay_repeats_and_stop_ends_it_all() -> None:
    overlay = Overlay({3: 100})
    publisher = CertificatePublisher(overlay.store, TARGETS[:1], overlay.clock, lifetime=86400)
    publisher.start()
    for delay in RETRY_DELAYS:
        overlay.clock.advance(delay)
    overlay.clock.advance(RETRY_DELAYS[-1])
    assert len(overlay.calls) == len(RETRY_DELAYS) + 2
    publisher.stop()
    overlay.clock.advance(86400)
    assert len(overlay.calls) == len(RETRY_DELAYS) + 2
    assert not overlay.clock.getDelayedCalls()


def test_a_store_that_raises_is_retried_like_a_failed_one() -> None:
    clock = Clock()
    calls: list[int] = []

    def store(kindId: int, name: bytes, lifetime: int) -> Deferred[Any]:
        calls.append(kindId)
        if len(calls) == 1:
            raise RuntimeError("the storage stack is not ready")
        return succeed(None)

    publisher = CertificatePublisher(store, TARGETS[:1], clock, lifetime=60)
    publisher.start()
    assert publisher.lastFailure == {3: "the storage stack is not ready"}
    clock.advance(RETRY_DELAYS[0])
    assert calls == [3, 3] and publisher.pending == 0
