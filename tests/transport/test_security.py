"""The transport with real signatures (RFC 6940 section 6.3.4) through the
:class:`~reload.transport.security.SigningSecurity` adapter to
:mod:`reload.security.signing`."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from reload.errors import ReloadError, ReloadTimeout
from reload.security.certificates import PeerIdentity
from reload.security.signing import CertificateCache, VerifiedSigner
from reload.transport.dispatcher import Reply, Request
from reload.transport.security import UNSIGNED, SigningSecurity, TrustingSecurity
from reload.transport.transport import Response
from reload.wire.header import Destination, ForwardingHeader, overlay_hash
from reload.wire.message import ErrorCode, Message, MessageCode, MessageContents
from reload.wire.methods import PingReq
from tests.security.certs import Pki, clockAt

from .chain import Chain
from .memlinks import Recorder


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


@pytest.fixture(scope="module")
def identities(pki: Pki) -> list[PeerIdentity]:
    return [pki.identity(userName=f"node{i}@overlay.example.org") for i in range(4)]


def signedChain(pki: Pki, identities: list[PeerIdentity]) -> Chain:
    byNodeId = {identity.nodeId: identity for identity in identities}
    clock = clockAt()

    def security(nodeId: bytes) -> SigningSecurity:
        return SigningSecurity(byNodeId[nodeId], CertificateCache(pki.policy()), clock)

    return Chain(ids=[i.nodeId for i in identities[:3]], security=security, clock=clock)


def outcome(d: Deferred[Any]) -> list[Any]:
    box: list[Any] = []
    d.addBoth(box.append)
    return box


def test_signed_requests_and_answers_through_an_intermediate(
    pki: Pki, identities: list[PeerIdentity]
) -> None:
    chain = signedChain(pki, identities)
    c = chain.ids[2]
    box = outcome(chain[0].ping(c))
    chain.settle()
    (response,) = box
    assert isinstance(response, Response)
    signer = response.signer
    assert isinstance(signer, VerifiedSigner)
    assert signer.nodeId == c and signer.userName == "node2@overlay.example.org"
    assert chain[2].transport.counters["badSignature"] == 0


def test_a_tampered_message_is_dropped(pki: Pki, identities: list[PeerIdentity]) -> None:
    """Section 6.3.4: "If the signature fails, the implementation SHOULD
    simply drop the message and MUST NOT process it"."""
    chain = signedChain(pki, identities)
    b = chain.ids[1]
    intruder = identities[3]
    recorder = Recorder(intruder.nodeId)
    chain.net.add(intruder.nodeId, recorder)
    link = chain.net.link(intruder.nodeId, b)
    security = SigningSecurity(intruder, CertificateCache(pki.policy()), chain.net.clock)
    header = ForwardingHeader(overlay_hash("reload.local"), 5, (Destination.node(b),))
    signed = security.sign(Message(header, MessageContents.of(PingReq()), UNSIGNED))
    tampered = Message(header, MessageContents.of(PingReq(b"x")), signed.security_block)
    link.send(tampered.encode())
    # Good signature, good certificate: answered.
    link.send(signed.encode())
    chain.settle()
    assert chain[1].transport.counters["badSignature"] == 1
    assert len(recorder.received) == 1


def test_signatures_that_are_not_real_are_refused(pki: Pki, identities: list[PeerIdentity]) -> None:
    """Security fails closed: a node using real signatures accepts nothing
    the test-only TrustingSecurity signs."""
    chain = signedChain(pki, identities)
    a, b = chain.ids[:2]
    chain[0].transport.security = TrustingSecurity(a)
    box = outcome(chain[0].ping(b))
    chain.settle()
    assert isinstance(box[0], Failure) and box[0].check(ReloadTimeout)
    assert chain[1].transport.counters["badSignature"] == 5


def test_an_answer_whose_certificates_cannot_be_carried_is_answered_response_too_large(
    pki: Pki, identities: list[PeerIdentity]
) -> None:
    """Section 6.3.4: the security block carries at most 2^16-1 bytes of
    certificates.  An answer whose signers' certificates do not fit (a
    FetchAns of many values, each signed by another node) cannot be
    encoded: the requester gets Error_Response_Too_Large (section 6.3.3.1),
    not silence and a timeout."""
    chain = signedChain(pki, identities)
    c = chain.ids[2]
    code = MessageCode.EXP_A_REQ

    def manySigners(request: Request) -> Reply:
        return Reply(code + 1, b"answer", certificates=tuple(bytes([i]) * 1000 for i in range(70)))

    chain[2].dispatcher.register(code, manySigners, decoder=bytes)
    box = outcome(chain[0].transport.request([Destination.node(c)], code, b"x"))
    chain.settle()
    (error,) = box
    assert isinstance(error, Failure) and isinstance(error.value, ReloadError)
    assert (error.value.code, error.value.nodeId) == (ErrorCode.RESPONSE_TOO_LARGE, c)
    assert "cannot be encoded" in error.value.text
