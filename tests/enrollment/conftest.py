"""Fixtures for the enrollment tests: real enrollment servers over HTTPS on
127.0.0.1, started the way ``twistd reload-enrollment`` starts them."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.internet.address import IPv4Address
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import implementer

from reload.enrollment.client import trustRootFor
from reload.enrollment.server import EnrollmentService
from reload.enrollment.store import EnrollmentStore
from reload.enrollment.tap import Options, makeService

OVERLAY = "overlay.test"
PASSWORD = "correct horse"


@dataclass
class Running:
    """One enrollment server, listening."""

    service: EnrollmentService
    port: int
    dataDir: Path

    @property
    def store(self) -> EnrollmentStore:
        return self.service.store

    @property
    def ca(self) -> x509.Certificate:
        return self.store.caCertificate

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def configUrl(self) -> str:
        return f"{self.base}/.well-known/reload-config"

    @property
    def enrollUrl(self) -> str:
        return f"{self.base}/enroll"

    def trustRoot(self) -> Any:
        """Trust for this server's HTTPS certificate: its CA only."""
        return trustRootFor([self.ca])

    async def raw(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTPS request with the standard library's client (in a
        thread), for bodies the enrollment client would never send."""
        caPem = self.ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
        result: tuple[int, dict[str, str], bytes] = await deferToThread(
            rawRequest, host, self.port, caPem, method, path, body, headers or {}
        )
        return result


def rawRequest(
    host: str,
    port: int,
    caPem: str,
    method: str,
    path: str,
    body: bytes | Iterable[bytes] | None,
    headers: dict[str, str],
) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cadata=caPem)
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=20)
    chunked = body is not None and not isinstance(body, bytes)
    try:
        connection.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def multipart(
    fields: Sequence[tuple[str, bytes, str | None]], boundary: str = "test-boundary-1234"
) -> tuple[bytes, str]:
    """A multipart/form-data body (RFC 7578) made independently of the
    client's encoder; returns the body and its Content-Type."""
    parts = []
    for name, value, contentType in fields:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
        if contentType:
            head += f"Content-Type: {contentType}\r\n"
        parts.append(head.encode("ascii") + b"\r\n" + value + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode("ascii")
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass
class Servers:
    """Starts enrollment servers and stops them all at the end."""

    tmp: Path
    running: list[EnrollmentService] = field(default_factory=list)
    count: int = 0

    def options(self, dataDir: Path | None = None, *args: str) -> Options:
        if dataDir is None:
            self.count += 1
            dataDir = self.tmp / f"server{self.count}"
        options = Options()
        options.parseOptions(
            [
                "--data-dir",
                str(dataDir),
                "--listen",
                "ssl:0:interface=127.0.0.1",
                "--hostname",
                "127.0.0.1",
                "--overlay",
                OVERLAY,
                "--add-user",
                f"alice:{PASSWORD}",
                "--add-user",
                f"bob@example.org:{PASSWORD}",
                "--node-ids-per-user",
                "3",
                *args,
            ]
        )
        return options

    async def start(self, dataDir: Path | None = None, *args: str) -> Running:
        options = self.options(dataDir, *args)
        service = makeService(options)
        assert isinstance(service, EnrollmentService)
        service.startService()
        self.running.append(service)
        address = (await service.whenListening()).getHost()
        assert isinstance(address, IPv4Address)
        return Running(service, address.port, Path(options["data-dir"]))

    async def stop(self, server: Running) -> None:
        self.running.remove(server.service)
        await server.service.stopService()

    async def stopAll(self) -> None:
        for service in self.running:
            await service.stopService()
        self.running.clear()


@pytest_twisted.async_yield_fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    made = Servers(tmp_path)
    yield made
    await made.stopAll()


@pytest_twisted.async_yield_fixture
async def server(servers: Servers) -> AsyncIterator[Running]:
    yield await servers.start()


@implementer(ILogObserver)
class FailureCollector:
    def __init__(self) -> None:
        self.failures: list[LogEvent] = []

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_failure") is not None:
            self.failures.append(event)


@pytest.fixture(autouse=True)
def noLoggedFailures() -> Iterator[FailureCollector]:
    """Whatever a client sends, the server logs no traceback."""
    collector = FailureCollector()
    globalLogPublisher.addObserver(collector)
    try:
        yield collector
    finally:
        globalLogPublisher.removeObserver(collector)
    assert not [e["log_failure"].getTraceback() for e in collector.failures]
