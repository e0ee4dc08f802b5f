"""The enrollment server and client over real HTTPS on 127.0.0.1 (RFC 6940
sections 11.2 and 11.3)."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from twisted.internet import reactor

from reload.config import OverlayConfiguration, parseConfiguration
from reload.enrollment.client import (
    ConfigurationFetchError,
    EnrollmentError,
    EnrollmentRejected,
    enroll,
    fetchConfiguration,
    makeCsr,
    obtainIdentity,
)
from reload.enrollment.protocol import (
    BAD_CSR,
    CONFIGURATION_CONTENT_TYPE,
    FAILED_AUTHENTICATION,
    NODE_IDS_NOT_AVAILABLE,
    USERNAME_NOT_AVAILABLE,
)
from reload.enrollment.server import MAX_REQUEST_SIZE
from reload.security.certificates import (
    PeerIdentity,
    nodeIdsOf,
    nodeUri,
    selfSignedNodeId,
    userNameOf,
)
from reload.security.keys import generateEcdsaKey
from reload.security.trust import TrustPolicy

from .conftest import OVERLAY, PASSWORD, Running, Servers, multipart

NOW = datetime.datetime.now(datetime.UTC)


async def configurationOf(server: Running) -> OverlayConfiguration:
    return await fetchConfiguration(
        reactor, server.configUrl, OVERLAY, trustRoot=server.trustRoot()
    )


def caDer(server: Running) -> bytes:
    return server.ca.public_bytes(serialization.Encoding.DER)


def subjectAltNames(cert: x509.Certificate) -> list[x509.GeneralName]:
    return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


# -- section 11.2 -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_configurationIsServedOverHttpsAndParses_section_11_2(server: Running) -> None:
    status, headers, body = await server.raw("GET", "/.well-known/reload-config")
    assert status == 200
    assert headers["content-type"] == CONFIGURATION_CONTENT_TYPE
    assert parseConfiguration(body, OVERLAY).instanceName == OVERLAY

    configuration = await configurationOf(server)
    assert configuration.instanceName == OVERLAY
    assert configuration.selfSignedPermitted is False
    assert configuration.rootCerts == (caDer(server),)
    assert configuration.enrollmentServers == (server.enrollUrl,)
    assert configuration.sequence == 1


@pytest_twisted.ensureDeferred
async def test_configurationForAnotherOverlayIsDiscarded_section_11_2(server: Running) -> None:
    """ "If ... the instance-name ... does not match the overlay name, this
    configurations file SHOULD be discarded." """
    with pytest.raises(ConfigurationFetchError, match=r"other\.test"):
        await fetchConfiguration(
            reactor, server.configUrl, "other.test", trustRoot=server.trustRoot()
        )


@pytest_twisted.ensureDeferred
async def test_serverCertificateMustMatchTheUrlHost_section_11_2(server: Running) -> None:
    """RFC 2818 name matching: the HTTPS certificate names 127.0.0.1 and the
    overlay, not "localhost"."""
    url = f"https://localhost:{server.port}/.well-known/reload-config"
    with pytest.raises(ConfigurationFetchError):
        await fetchConfiguration(reactor, url, OVERLAY, trustRoot=server.trustRoot())


@pytest_twisted.ensureDeferred
async def test_serverCertificateMustChainToTheTrustRoot(servers: Servers, server: Running) -> None:
    other = await servers.start()
    with pytest.raises(ConfigurationFetchError):
        await fetchConfiguration(reactor, server.configUrl, OVERLAY, trustRoot=other.trustRoot())


@pytest_twisted.ensureDeferred
async def test_plainHttpUrlsAreRefused(server: Running) -> None:
    with pytest.raises(ConfigurationFetchError, match="https"):
        await fetchConfiguration(reactor, f"http://127.0.0.1:{server.port}/", OVERLAY)


# -- section 11.3: enrollment -------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_goodUserGetsARandomNodeIdChainingToTheCa_section_11_3(server: Running) -> None:
    configuration = await configurationOf(server)
    key = generateEcdsaKey()
    identity = await enroll(reactor, configuration, "alice", PASSWORD, key=key)
    assert isinstance(identity, PeerIdentity)
    cert = identity.certificate
    (nodeId,) = identity.nodeIds
    assert len(nodeId) == 16
    # Chosen by the server: not the self-signed derivation from the key.
    assert nodeId != selfSignedNodeId(key.public_key())
    assert identity.userName == "alice@" + OVERLAY
    # Section 11.3: empty subject, SAN = reload URI + rfc822Name only.
    assert cert.subject == x509.Name([])
    assert set(subjectAltNames(cert)) == {
        x509.UniformResourceIdentifier(nodeUri(nodeId, OVERLAY)),
        x509.RFC822Name("alice@" + OVERLAY),
    }
    policy = TrustPolicy.fromConfiguration(configuration)
    verified = policy.verify([cert], NOW)
    assert verified.nodeIds == (nodeId,) and not verified.selfSigned
    assert cert.issuer == server.ca.subject
    assert server.store.knownNodeIds("alice") == (nodeId,)
    assert (server.dataDir / "issued" / f"{cert.serial_number:x}.pem").exists()


@pytest_twisted.ensureDeferred
async def test_sameUserGetsTheSameNodeIdAgain_section_11_3(server: Running) -> None:
    """ "if the same user returns ... the enrollment server should return the
    same Node-IDs"; another user gets another one."""
    configuration = await configurationOf(server)
    first = await enroll(reactor, configuration, "alice", PASSWORD)
    second = await enroll(reactor, configuration, "alice", PASSWORD)
    assert first.certificate.public_key() != second.certificate.public_key()
    assert first.nodeIds == second.nodeIds
    bob = await enroll(reactor, configuration, "bob@example.org", PASSWORD)
    assert bob.nodeIds != first.nodeIds
    assert bob.userName == "bob@example.org"


@pytest_twisted.ensureDeferred
async def test_severalNodeIdsUpToTheLimit_section_11_3(server: Running) -> None:
    configuration = await configurationOf(server)
    one = await enroll(reactor, configuration, "alice", PASSWORD)
    three = await enroll(reactor, configuration, "alice", PASSWORD, nodeIds=3)
    assert len(set(three.nodeIds)) == 3
    assert three.nodeIds[0] == one.nodeIds[0]
    with pytest.raises(EnrollmentRejected) as raised:
        await enroll(reactor, configuration, "alice", PASSWORD, nodeIds=4)
    assert raised.value.token == NODE_IDS_NOT_AVAILABLE


@pytest.mark.parametrize(
    "user,password",
    [("alice", "wrong"), ("mallory", PASSWORD), ("ALICE", PASSWORD), ("", "")],
)
@pytest_twisted.ensureDeferred
async def test_wrongPasswordOrUnknownUserIsFailedAuthentication_section_11_3(
    server: Running, user: str, password: str
) -> None:
    configuration = await configurationOf(server)
    with pytest.raises(EnrollmentRejected) as raised:
        await enroll(reactor, configuration, user, password)
    assert raised.value.token == FAILED_AUTHENTICATION and raised.value.known
    assert server.store.knownNodeIds("alice") == ()


async def postForm(
    server: Running, fields: list[tuple[str, bytes, str | None]]
) -> tuple[int, dict[str, str], bytes]:
    body, contentType = multipart(fields)
    return await server.raw(
        "POST",
        "/enroll",
        body,
        {"Content-Type": contentType, "Accept": "application/pkix-cert"},
    )


def credentials(user: str = "alice") -> list[tuple[str, bytes, str | None]]:
    return [("username", user.encode(), None), ("password", PASSWORD.encode(), None)]


@pytest_twisted.ensureDeferred
async def test_forgedReloadUriInTheCsrIsIgnored_section_11_3(server: Running) -> None:
    """The Node-IDs are the server's: a CSR asking for a reload URI (and a
    DNS name) of its own choosing gets the account's Node-ID only."""
    key = generateEcdsaKey()
    forged = hashlib.sha256(b"victim").digest()[:16]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "victim")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(nodeUri(forged, OVERLAY)),
                    x509.DNSName("victim.example"),
                    x509.RFC822Name("alice@" + OVERLAY),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    status, headers, body = await postForm(
        server, [*credentials(), ("csr", csr, "application/pkcs10")]
    )
    assert status == 200, body
    assert headers["content-type"] == "application/pkix-cert"
    cert = x509.load_der_x509_certificate(body)
    assert nodeIdsOf(cert, OVERLAY) == server.store.knownNodeIds("alice")
    assert forged not in nodeIdsOf(cert, OVERLAY)
    assert userNameOf(cert) == "alice@" + OVERLAY
    assert len(subjectAltNames(cert)) == 2
    assert cert.subject == x509.Name([])


@pytest_twisted.ensureDeferred
async def test_csrAskingForAnotherUserNameIsRefused_section_11_3(server: Running) -> None:
    configuration = await configurationOf(server)
    with pytest.raises(EnrollmentRejected) as raised:
        await enroll(reactor, configuration, "alice", PASSWORD, userName="bob@example.org")
    assert raised.value.token == USERNAME_NOT_AVAILABLE
    identity = await enroll(reactor, configuration, "alice", PASSWORD, userName="alice@" + OVERLAY)
    assert identity.userName == "alice@" + OVERLAY


def _badSignatureCsr() -> bytes:
    der = bytearray(makeCsr(generateEcdsaKey()))
    der[-3] ^= 0x55  # inside the signature value
    return bytes(der)


@pytest.mark.parametrize(
    "csr",
    [
        b"garbage",
        b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n",
        b"",
        bytes(range(256)) * 4,
        _badSignatureCsr(),
    ],
    ids=["garbage", "bad-pem", "empty", "binary", "bad-signature"],
)
@pytest_twisted.ensureDeferred
async def test_badCsrIs403BadCsr_section_11_3(server: Running, csr: bytes) -> None:
    status, headers, body = await postForm(
        server, [*credentials(), ("csr", csr, "application/pkcs10")]
    )
    assert (status, body) == (403, BAD_CSR.encode())
    assert headers["content-type"].startswith("text/plain")
    assert server.store.knownNodeIds("alice") == ()


@pytest_twisted.ensureDeferred
async def test_pemCsrAndBinaryDerAreBothAccepted(server: Running) -> None:
    key = generateEcdsaKey()
    der = makeCsr(key)
    pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
    for csr in (der, pem):
        status, _, body = await postForm(server, [*credentials(), ("csr", csr, None)])
        assert status == 200, body
        assert x509.load_der_x509_certificate(body).public_key() == key.public_key()


@pytest.mark.parametrize(
    "fields,expected",
    [
        ([("csr", b"x", None)], (403, FAILED_AUTHENTICATION.encode())),
        (
            [("username", b"alice", None), ("csr", b"x", None)],
            (403, FAILED_AUTHENTICATION.encode()),
        ),
        (
            [("username", b"\xff\xfe", None), ("password", b"x", None)],
            (403, b"failed_authentication"),
        ),
        ([("username", b"alice", None), ("password", PASSWORD.encode(), None)], (403, b"bad_CSR")),
        ([*credentials(), ("nodeids", b"0", None)], (403, NODE_IDS_NOT_AVAILABLE.encode())),
        ([*credentials(), ("nodeids", b"lots", None)], (400, None)),
        ([*credentials(), ("username", b"alice", None)], (400, None)),
    ],
    ids=[
        "no-username",
        "no-password",
        "non-utf8-user",
        "no-csr",
        "zero-nodeids",
        "nodeids-not-a-number",
        "duplicate",
    ],
)
@pytest_twisted.ensureDeferred
async def test_missingOrMalformedFields(
    server: Running,
    fields: list[tuple[str, bytes, str | None]],
    expected: tuple[int, bytes | None],
) -> None:
    status, _, body = await postForm(server, fields)
    assert status == expected[0]
    if expected[1] is not None:
        assert body == expected[1]


@pytest.mark.parametrize(
    "contentType,body",
    [
        (None, b"username=alice&password=x"),
        ("application/x-www-form-urlencoded", b"username=alice&password=x"),
        ("multipart/form-data", b"--x\r\n\r\n--x--\r\n"),
        ("multipart/form-data; boundary=abc", b"no parts here"),
        ("multipart/form-data; boundary=abc", b"--abc\r\nContent-Disposition: form-data\r\n"),
        ("multipart/form-data; boundary=abc", b"--abc\r\n\r\nvalue\r\n--abc--\r\n"),
    ],
    ids=["no-type", "urlencoded", "no-boundary", "no-parts", "unterminated", "no-name"],
)
@pytest_twisted.ensureDeferred
async def test_notAFormIs400(server: Running, contentType: str | None, body: bytes) -> None:
    headers = {} if contentType is None else {"Content-Type": contentType}
    status, _, answer = await server.raw("POST", "/enroll", body, headers)
    assert status == 400, answer
    # The server goes on serving.
    assert (await server.raw("GET", "/.well-known/reload-config"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_hugeBodyIsRefusedWithoutReadingIt(server: Running) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=abc"}
    status, _, _ = await server.raw("POST", "/enroll", b"x" * (MAX_REQUEST_SIZE + 1), headers)
    assert status == 413
    status, _, _ = await server.raw(
        "POST", "/enroll", None, {**headers, "Content-Length": str(10**9)}
    )
    assert status == 413
    # Chunked, without a length: refused once it grows too large.  The
    # server may close before the client has written everything, so the
    # client sees the 413 or a broken connection.
    chunks = (b"x" * 4096 for _ in range(MAX_REQUEST_SIZE // 4096 + 8))
    try:
        status, _, _ = await server.raw("POST", "/enroll", chunks, headers)
    except OSError:
        pass
    else:
        assert status == 413
    assert (await server.raw("GET", "/.well-known/reload-config"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_otherMethodsAndPaths(server: Running) -> None:
    assert (await server.raw("GET", "/enroll"))[0] == 405
    assert (await server.raw("POST", "/.well-known/reload-config", b""))[0] == 405
    assert (await server.raw("GET", "/"))[0] == 404
    assert (await server.raw("GET", "/enroll/x"))[0] == 404
    assert (await server.raw("GET", "/.well-known/"))[0] == 404
    status, headers, _ = await server.raw("PUT", "/enroll", b"x")
    assert status == 405 and headers["allow"] == "POST"
    status, headers, body = await server.raw("HEAD", "/.well-known/reload-config")
    assert status == 200 and body == b""


# -- section 11.3: the client's checks --------------------------------------------


@pytest_twisted.ensureDeferred
async def test_clientRefusesACertificateFromAnotherCa_section_11_3(
    servers: Servers, server: Running
) -> None:
    """ "The client MUST check that the returned certificate chains back to
    one of the certificates received in the 'root-cert' list" """
    configuration = await configurationOf(server)
    impostor = await servers.start()
    with pytest.raises(EnrollmentError, match="does not chain"):
        await enroll(
            reactor,
            configuration,
            "alice",
            PASSWORD,
            enrollmentUrl=impostor.enrollUrl,
            trustRoot=impostor.trustRoot(),
        )


@pytest_twisted.ensureDeferred
async def test_clientNeedsARootCertAndAnEnrollmentServer(server: Running) -> None:
    import dataclasses

    configuration = await configurationOf(server)
    with pytest.raises(EnrollmentError, match="root-cert"):
        await enroll(reactor, dataclasses.replace(configuration, rootCerts=()), "alice", "x")
    with pytest.raises(EnrollmentError, match="enrollment-server"):
        await enroll(
            reactor, dataclasses.replace(configuration, enrollmentServers=()), "alice", "x"
        )


@pytest_twisted.ensureDeferred
async def test_obtainIdentityEnrollsOnceAndThenUsesTheSavedOne(
    servers: Servers, server: Running, tmp_path: Path
) -> None:
    configuration = await configurationOf(server)
    peerDir = tmp_path / "peer"
    first = await obtainIdentity(reactor, configuration, peerDir, "alice", PASSWORD)
    assert (peerDir / "node-key.pem").stat().st_mode & 0o777 == 0o600
    await servers.stop(server)
    again = await obtainIdentity(reactor, configuration, peerDir, "alice", PASSWORD)
    assert again.certificateDer == first.certificateDer
    assert again.nodeIds == first.nodeIds


# -- persistence --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_storeSurvivesARestart(servers: Servers, tmp_path: Path) -> None:
    """A new service on the same data directory has the same CA and gives
    alice the same Node-ID; the configuration keeps its root-cert."""
    dataDir = tmp_path / "persistent"
    first = await servers.start(dataDir)
    configuration = await configurationOf(first)
    identity = await enroll(reactor, configuration, "alice", PASSWORD)
    caBefore = caDer(first)
    await servers.stop(first)

    second = await servers.start(dataDir)
    assert caDer(second) == caBefore
    assert second.store.knownNodeIds("alice") == identity.nodeIds
    again = await configurationOf(second)
    assert again.rootCerts == configuration.rootCerts
    # The port changed, so the enrollment URL did: a new sequence number.
    assert again.sequence == configuration.sequence + 1
    renewed = await enroll(reactor, again, "alice", PASSWORD)
    assert renewed.nodeIds == identity.nodeIds
    # The old certificate still verifies against the configuration served now.
    TrustPolicy.fromConfiguration(again).verify([identity.certificate], NOW)


@pytest_twisted.ensureDeferred
async def test_givenConfigurationIsServedAsItIs(servers: Servers, tmp_path: Path) -> None:
    dataDir = tmp_path / "given"
    first = await servers.start(dataDir)
    status, _, generated = await first.raw("GET", "/.well-known/reload-config")
    assert status == 200
    await servers.stop(first)
    document = generated.replace(b'sequence="1"', b'sequence="7"')
    path = tmp_path / "overlay.xml"
    path.write_bytes(document)
    second = await servers.start(dataDir, "--config", str(path))
    status, _, served = await second.raw("GET", "/.well-known/reload-config")
    assert (status, served) == (200, document)


@pytest_twisted.ensureDeferred
async def test_tlsCertAndKeyOptionsReplaceTheCasOwn(servers: Servers, tmp_path: Path) -> None:
    from reload.enrollment.client import trustRootFor
    from reload.enrollment.store import EnrollmentStore

    elsewhere = EnrollmentStore.open(tmp_path / "elsewhere", "other.test")
    elsewhere.tlsCredentials(["127.0.0.1"])
    server = await servers.start(
        None,
        "--tls-cert",
        str(tmp_path / "elsewhere" / "tls-cert.pem"),
        "--tls-key",
        str(tmp_path / "elsewhere" / "tls-key.pem"),
    )
    configuration = await fetchConfiguration(
        reactor, server.configUrl, OVERLAY, trustRoot=trustRootFor([elsewhere.caCertificate])
    )
    # Enrollment trusts the configuration's root-certs by default; this
    # server's HTTPS certificate is from another CA, so it is refused...
    with pytest.raises(EnrollmentError):
        await enroll(reactor, configuration, "alice", PASSWORD)
    # ...unless the client is told to trust that CA.
    identity = await enroll(
        reactor,
        configuration,
        "alice",
        PASSWORD,
        trustRoot=trustRootFor([elsewhere.caCertificate]),
    )
    assert identity.certificate.issuer == server.ca.subject
