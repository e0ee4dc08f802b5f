"""Cross-check of the codec against Wireshark's RELOAD dissector (issue 4).

Every method's request and answer, encoded by :mod:`reload.wire`, framed
(section 6.6.2) and written into a capture as TLS-less TCP on port 6084 and
as UDP datagrams, must be decoded by tshark with the same method codes,
transaction ids, destinations and body fields, and with no malformed packet
or expert warning.  The dissector is told the data models of the test's
Kind-IDs through its Kind-ID table, as DESIGN.md says.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reload.wire.header import DestinationType, overlay_hash
from reload.wire.message import Message

from ..conftest import requireTool
from .capture import CaptureWriter, dataFrame, tsharkFields
from .samples import (
    ALICE,
    KIND_ARRAY,
    KIND_DICTIONARY,
    KIND_SINGLE,
    OVERLAY,
    Exchange,
    exchanges,
)

Row = dict[str, list[str]]
Decoded = dict[str, list[Row]]

KIND_TABLE = [
    "-o",
    f'uat:reload_kindids:"{KIND_SINGLE}","EXAMPLE-SINGLE","SINGLE"',
    "-o",
    f'uat:reload_kindids:"{KIND_ARRAY}","EXAMPLE-ARRAY","ARRAY"',
    "-o",
    f'uat:reload_kindids:"{KIND_DICTIONARY}","EXAMPLE-DICTIONARY","DICTIONARY"',
]
FIELDS = [
    "frame.number",
    "tcp.stream",
    "udp.stream",
    "reload.message.code",
    "reload.forwarding.trans_id",
    "reload.forwarding.overlay",
    "reload.destination.data.nodeid",
    "reload.opaque.data",
    "reload.kinddata.kind",
    "reload.kindid",
    "reload.generation_counter",
    "reload.arrayentry.index",
    "reload.ping.response_id",
    "reload.application",
    "reload.port",
    "reload.ipv4addr",
    "reload.error_response.code",
    "reload.uptime",
    "reload.storeddata.lifetime",
    "reload.certificate.type",
]


def _certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wireshark test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def samples() -> list[Exchange]:
    return exchanges(certificate=_certificate())


@pytest.fixture(scope="module")
def capture(samples: list[Exchange], tmp_path_factory: pytest.TempPathFactory) -> Path:
    requireTool("tshark", "tshark")
    writer = CaptureWriter()
    segments = []
    for n, exchange in enumerate(samples):
        segments.append((True, dataFrame(n, exchange.request.encode())))
        segments.append((False, dataFrame(n, exchange.answer.encode())))
    writer.tcpConnection(segments)
    for n, exchange in enumerate(samples):
        writer.udp(dataFrame(n, exchange.request.encode()), fromClient=True)
        writer.udp(dataFrame(n, exchange.answer.encode()), fromClient=False)
    path = tmp_path_factory.mktemp("wireshark") / "reload.pcap"
    writer.write(path)
    return path


@pytest.fixture(scope="module")
def decoded(capture: Path) -> Decoded:
    rows = tsharkFields(capture, FIELDS, extra=KIND_TABLE)
    return {
        "tcp": [row for row in rows if row["tcp.stream"]],
        "udp": [row for row in rows if row["udp.stream"]],
    }


def test_wireshark_reports_no_malformed_packet_or_warning(capture: Path) -> None:
    bad = tsharkFields(
        capture,
        ["frame.number", "_ws.expert.message"],
        displayFilter="_ws.malformed || _ws.expert.severity >= 6291456",
        extra=KIND_TABLE,
    )
    assert bad == []


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_every_message_is_decoded_in_order(
    decoded: Decoded, samples: list[Exchange], transport: str
) -> None:
    rows = decoded[transport]
    expected = [m for e in samples for m in (e.request, e.answer)]
    assert len(rows) == len(expected)
    for row, message in zip(rows, expected, strict=True):
        assert row["reload.message.code"] == [str(message.contents.message_code)]
        assert row["reload.forwarding.trans_id"] == [f"{message.header.transaction_id:#018x}"]
        assert row["reload.forwarding.overlay"] == [f"{overlay_hash(OVERLAY):#010x}"]
        _checkDestination(row, message)


def _checkDestination(row: Row, message: Message) -> None:
    [destination] = message.header.destination_list
    if destination.type == DestinationType.NODE:
        assert row["reload.destination.data.nodeid"] == [destination.value.hex()]
    else:
        assert destination.type == DestinationType.RESOURCE
        assert row["reload.opaque.data"][0] == destination.value.hex()


def _rows(decoded: Decoded, samples: list[Exchange], method: str) -> Iterator[tuple[Row, Row]]:
    """(request row, answer row) of ``method`` over TCP and over UDP."""
    index = [e.method for e in samples].index(method)
    for transport in ("tcp", "udp"):
        rows = decoded[transport]
        yield rows[2 * index], rows[2 * index + 1]


def test_store_kinds_generations_and_certificate(decoded: Decoded, samples: list[Exchange]) -> None:
    kinds = [str(KIND_SINGLE), str(KIND_ARRAY), str(KIND_DICTIONARY)]
    for request, answer in _rows(decoded, samples, "store"):
        assert request["reload.kinddata.kind"] == kinds
        assert request["reload.generation_counter"] == ["1", "2", "3"]
        assert request["reload.arrayentry.index"] == ["3"]
        assert request["reload.storeddata.lifetime"] == ["3600"] * 3
        assert request["reload.certificate.type"] == ["0"]
        assert answer["reload.kinddata.kind"] == kinds
        assert answer["reload.generation_counter"] == ["2", "3", "4"]


def test_fetch_stat_and_find_bodies(decoded: Decoded, samples: list[Exchange]) -> None:
    for request, answer in _rows(decoded, samples, "fetch"):
        assert request["reload.kinddata.kind"] == [
            str(KIND_SINGLE),
            str(KIND_ARRAY),
            str(KIND_DICTIONARY),
        ]
        assert answer["reload.arrayentry.index"] == ["3"]
        assert answer["reload.generation_counter"] == ["2", "3", "4"]
    for request, answer in _rows(decoded, samples, "stat"):
        assert request["reload.kinddata.kind"] == [str(KIND_SINGLE)]
        assert answer["reload.storeddata.lifetime"] == ["3600"]
    for request, answer in _rows(decoded, samples, "find"):
        assert request["reload.kindid"] == [str(KIND_SINGLE), str(KIND_ARRAY)]
        assert answer["reload.kinddata.kind"] == [str(KIND_SINGLE), str(KIND_ARRAY)]


def test_attach_and_appattach_candidates(decoded: Decoded, samples: list[Exchange]) -> None:
    for request, answer in _rows(decoded, samples, "attach"):
        assert (request["reload.ipv4addr"], request["reload.port"]) == (["127.0.0.2"], ["6084"])
        assert answer["reload.port"] == ["6085"]
    for request, answer in _rows(decoded, samples, "app_attach"):
        assert request["reload.application"] == ["5060"]
        assert answer["reload.application"] == ["5060"]
        assert answer["reload.port"] == ["5061"]


def test_ping_probe_update_and_error_bodies(decoded: Decoded, samples: list[Exchange]) -> None:
    for _, answer in _rows(decoded, samples, "ping"):
        assert answer["reload.ping.response_id"] == [str(0x0102030405060708)]
    for _, answer in _rows(decoded, samples, "probe"):
        assert answer["reload.uptime"] == ["4242"]
    for request, _ in _rows(decoded, samples, "update"):
        assert request["reload.uptime"] == ["60"]
    for _, answer in _rows(decoded, samples, "error"):
        assert answer["reload.error_response.code"] == ["3"]  # Error_Not_Found, 14.9
        assert answer["reload.destination.data.nodeid"] == [ALICE.hex()]
