"""The admin API is safe to leave on (issue 23): a bearer token for what
changes state, Host and Origin checks against cross-site requests, read-only
endpoints open to loopback only, loopback by default.

The policy's rules one by one on Twisted's request stand-in; then a real
``twistd reload`` peer refusing a missing token, a wrong token and a
cross-origin request, and ``reloadctl`` finding the token by itself."""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.web.test.requesthelper import DummyRequest

from reload.admin.access import AccessPolicy
from reload.admin.token import TOKEN_FILE, loadOrCreate, readToken
from reload.lab import Lab, LabPeer
from reload.tap import Options, loopbackByDefault

from .conftest import commandPath, sourceEnv

TOKEN = "s3cret-token"


def _request(
    method: bytes = b"GET",
    client: str = "127.0.0.1",
    headers: dict[bytes, bytes] | None = None,
) -> DummyRequest:
    request = DummyRequest([b"status"])
    request.method = method
    request.client = IPv4Address("TCP", client, 40000)
    for name, value in {b"host": b"127.0.0.1:8084", **(headers or {})}.items():
        request.requestHeaders.setRawHeaders(name, [value])
    return request


def _verdict(request: DummyRequest, hosts: tuple[str, ...] = ()) -> int | None:
    refusal = AccessPolicy(lambda: TOKEN, hosts).refusal(request)
    return None if refusal is None else refusal.status


BEARER = {b"authorization": b"Bearer " + TOKEN.encode()}


@pytest.mark.parametrize(
    ("method", "client", "headers", "hosts", "expected"),
    [
        # Read-only from loopback: open.
        (b"GET", "127.0.0.1", {}, (), None),
        (b"HEAD", "127.0.0.1", {b"host": b"localhost:8084"}, (), None),
        # Read-only from elsewhere: the token, or nothing.
        (b"GET", "192.0.2.7", {}, (), 401),
        (b"GET", "192.0.2.7", BEARER, (), None),
        # Anything that changes state: the token, from anywhere.
        (b"POST", "127.0.0.1", {}, (), 401),
        (b"POST", "127.0.0.1", {b"authorization": b"Bearer wrong"}, (), 401),
        (b"POST", "127.0.0.1", {b"authorization": b"Basic " + TOKEN.encode()}, (), 401),
        (b"POST", "127.0.0.1", BEARER, (), None),
        (b"DELETE", "127.0.0.1", {}, (), 401),
        # A foreign Host (DNS rebinding), even with the token.
        (b"POST", "127.0.0.1", {**BEARER, b"host": b"evil.example"}, (), 403),
        (b"GET", "127.0.0.1", {b"host": b"evil.example:8084"}, (), 403),
        (b"GET", "127.0.0.1", {b"host": b""}, (), 403),
        (b"GET", "127.0.0.1", {b"host": b"peer1.example.net"}, ("peer1.example.net",), None),
        (b"GET", "127.0.0.1", {b"host": b"[::1]:8084"}, (), None),
        # A foreign Origin, or a browser saying cross-site.
        (b"POST", "127.0.0.1", {**BEARER, b"origin": b"http://evil.example"}, (), 403),
        (b"GET", "127.0.0.1", {b"origin": b"null"}, (), 403),
        (b"GET", "127.0.0.1", {b"origin": b"http://127.0.0.1:8084"}, (), None),
        (b"GET", "127.0.0.1", {b"sec-fetch-site": b"cross-site"}, (), 403),
    ],
)
def test_the_policy_decides_by_method_client_token_host_and_origin(
    method: bytes,
    client: str,
    headers: dict[bytes, bytes],
    hosts: tuple[str, ...],
    expected: int | None,
) -> None:
    assert _verdict(_request(method, client, headers), hosts) == expected


def test_a_wrong_token_gets_a_bearer_challenge_naming_the_error() -> None:
    request = _request(b"POST", headers={b"authorization": b"Bearer nope"})
    refusal = AccessPolicy(lambda: TOKEN).refusal(request)
    assert refusal is not None
    assert refusal.challenge is not None and 'error="invalid_token"' in refusal.challenge


def test_nothing_needing_the_token_passes_before_the_peer_made_it() -> None:
    assert AccessPolicy(lambda: None).refusal(_request(b"POST", headers=BEARER)) is not None


def test_the_token_file_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    token, path = loadOrCreate(str(tmp_path))
    assert path == str(tmp_path / TOKEN_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(token) >= 40
    os.chmod(path, 0o644)
    again, _ = loadOrCreate(str(tmp_path))
    assert again == token == readToken(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("tcp:8084", "tcp:8084:interface=127.0.0.1"),
        ("8084", "tcp:8084:interface=127.0.0.1"),
        ("tcp:8084:interface=0.0.0.0", "tcp:8084:interface=0.0.0.0"),
        ("unix:/run/reload/admin.sock", "unix:/run/reload/admin.sock"),
    ],
)
def test_the_admin_endpoint_is_loopback_unless_an_interface_is_named(
    given: str, expected: str
) -> None:
    assert loopbackByDefault(given) == expected


def test_twistd_options_bind_the_admin_api_to_loopback(tmp_path: Path) -> None:
    options = Options()
    options.parseOptions(["--data-dir", str(tmp_path / "d"), "--admin", "tcp:0"])
    assert options["settings"].admin == "tcp:0:interface=127.0.0.1"


# -- a real peer -----------------------------------------------------------------


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPeer]:
    lab = Lab(
        tmp_path_factory.mktemp("access"),
        basePort=None,
        adminBasePort=None,
        environment=sourceEnv(),
    )
    lab.start(1)
    try:
        yield lab.peers[0]
    finally:
        lab.stop()


def _call(
    peer: LabPeer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", peer.adminPort, timeout=30)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


PING = "/ping?name=alice%40example.org"


def test_a_peer_makes_its_token_file_on_first_start(peer: LabPeer) -> None:
    assert stat.S_IMODE(peer.tokenFile.stat().st_mode) == 0o600
    status, body = _call(peer, "GET", "/status")
    assert status == 200
    assert body["adminTokenFile"] == str(peer.tokenFile)


def test_a_peer_refuses_a_post_without_the_token(peer: LabPeer) -> None:
    status, body = _call(peer, "POST", PING)
    assert status == 401
    assert "admin token" in str(body["error"])


def test_a_peer_refuses_a_post_with_a_wrong_token(peer: LabPeer) -> None:
    status, body = _call(peer, "POST", PING, {"Authorization": "Bearer not-the-token"})
    assert (status, body) == (401, {"error": "wrong admin token"})


def test_a_peer_refuses_a_cross_origin_post_even_with_the_token(peer: LabPeer) -> None:
    token = {"Authorization": f"Bearer {readToken(str(peer.tokenFile))}"}
    status, body = _call(peer, "POST", PING, {**token, "Host": "evil.example"})
    assert status == 403 and "evil.example" in str(body["error"])
    status, body = _call(peer, "POST", PING, {**token, "Origin": "http://evil.example"})
    assert status == 403 and "evil.example" in str(body["error"])
    status, body = _call(peer, "POST", PING, token)
    assert status == 200 and body["hops"] == 1


def test_reloadctl_finds_the_token_itself_or_through_token_file(
    peer: LabPeer, tmp_path: Path
) -> None:
    env = sourceEnv()
    found = subprocess.run(
        [commandPath("reloadctl"), "ping", "--admin", peer.admin, "--name", "x", "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-it\n")
    refused = subprocess.run(
        [commandPath("reloadctl"), "ping", "--admin", peer.admin, "--name", "x",
         "--token-file", str(wrong)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("wrong admin token")
