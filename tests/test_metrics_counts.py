"""The message counters of :class:`reload.admin.metrics.PeerMetrics`: the
transport reports every message, the counts reach whatever reads the
registry, exactly once."""

from __future__ import annotations

from prometheus_client import generate_latest
from twisted.internet.task import Clock

from reload.admin.metrics import PeerMetrics
from reload.transport.security import UNSIGNED
from reload.wire.header import Destination, ForwardingHeader
from reload.wire.message import Message, MessageCode, MessageContents


def _message(code: int, body: bytes = b"") -> bytes:
    header = ForwardingHeader(0x01020304, 9, (Destination.node(b"\x01" * 16),))
    return Message(header, MessageContents(code, body), UNSIGNED).encode()


def _value(metrics: PeerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_messages_and_bytes_are_counted_by_method_and_direction() -> None:
    metrics = PeerMetrics(Clock())
    store = _message(MessageCode.STORE_REQ, b"x" * 10)
    fetch = _message(MessageCode.FETCH_ANS)
    metrics.message("received", store)
    metrics.message("received", store)
    metrics.message("sent", fetch)
    assert _value(metrics, "reload_messages_total", method="store_req", direction="received") == 2
    assert _value(metrics, "reload_messages_total", method="fetch_ans", direction="sent") == 1
    assert _value(metrics, "reload_message_bytes_total", direction="received") == 2 * len(store)
    assert _value(metrics, "reload_message_bytes_total", direction="sent") == len(fetch)


def test_counts_are_not_added_twice_by_two_scrapes() -> None:
    metrics = PeerMetrics(Clock())
    metrics.message("sent", _message(MessageCode.PING_REQ))
    first = generate_latest(metrics.registry)
    second = generate_latest(metrics.registry)
    line = b'reload_messages_total{direction="sent",method="ping_req"} 1.0'
    assert line in first.splitlines() and line in second.splitlines()
    metrics.message("sent", _message(MessageCode.PING_REQ))
    assert b'reload_messages_total{direction="sent",method="ping_req"} 2.0' in metrics.exposition()


def test_many_distinct_codes_are_all_counted() -> None:
    """A peer may receive any 16-bit message code: the counts waiting for a
    scrape stay bounded and none is lost."""
    metrics = PeerMetrics(Clock())
    for code in range(0x1000, 0x1000 + 3000):
        metrics.message("received", _message(code))
    assert len(metrics._tallies) <= 1024
    total = sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "reload_messages"
        for sample in family.samples
        if sample.name == "reload_messages_total"
    )
    assert total == 3000
