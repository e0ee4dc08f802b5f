"""AppAttach over ICE in process, on 127.0.0.1 (RFC 6940 section 6.5.2):
both nodes think they are behind a NAT (``behindNat`` says so), so the
caller offers ICE candidates only and the answering node answers with
ICE; the pair is host.  The NAT lab test (tests/test_ice_appattach_lab.py)
covers srflx and relayed pairs."""

from __future__ import annotations

import pytest
import pytest_twisted  # type: ignore[import-untyped, unused-ignore]

from reload.errors import AppAttachFailed, AppAttachRefused
from reload.link.appstream import ApplicationStream
from reload.security.certificates import PeerIdentity, makeSelfSignedIdentity
from reload.transport.iceappattach import IceAppAttach

from .test_appattach import (  # the harness and its fixture
    OVERLAY,
    SIP,
    Node,
    Overlay,
    Recording,
    RecordingFactory,
    noState,
    overlay,
    until,
)

__all__ = ["overlay"]


async def _iceNode(overlay: Overlay, appIdentity: PeerIdentity | None = None) -> Node:
    from twisted.internet import reactor

    made = await overlay.make(appIdentity=appIdentity)
    made.applications.ice = IceAppAttach(
        reactor,
        appIdentity or made.identity,
        overlay.trust,
        "127.0.0.1",
        interface="127.0.0.1",
        behindNat=lambda: True,
    )
    return made


@pytest_twisted.ensureDeferred
async def test_appAttachOverIceCarriesBytesBothWaysAuthenticated_6_5_2(overlay: Overlay) -> None:
    caller, callee = await _iceNode(overlay), await _iceNode(overlay)
    await overlay.link(caller, callee)
    server = RecordingFactory()
    callee.applications.listenApplication(SIP, server)
    protocol = await caller.applications.appAttach(callee.nodeId, SIP, RecordingFactory())
    assert isinstance(protocol, Recording)
    transport = protocol.transport
    assert isinstance(transport, ApplicationStream)
    assert transport.pairType == "host"
    assert callee.nodeId in transport.peer.nodeIds
    message = b"INVITE sip:callee SIP/2.0\r\n\r\n" * 200  # many chunks
    transport.write(message)
    await until(lambda: server.built and server.built[0].received == message)
    answering = server.built[0]
    assert isinstance(answering.transport, ApplicationStream)
    assert caller.nodeId in answering.transport.peer.nodeIds
    answering.transport.write(b"SIP/2.0 200 OK\r\n\r\n")
    await until(lambda: protocol.received == b"SIP/2.0 200 OK\r\n\r\n")
    assert noState(caller.applications) and noState(callee.applications)
    transport.loseConnection()
    await until(lambda: answering.lost and protocol.lost)
    # The AppAttach's ports are closed with the connection.
    assert transport.link.closeReason is not None


@pytest_twisted.ensureDeferred
async def test_callerRefusesADtlsCertificateOfAnotherNode_6_5_1_11(overlay: Overlay) -> None:
    """The answering node opens DTLS with another node's certificate: the
    caller (DTLS server) closes it and fails the AppAttach with
    AppAttachRefused; its application sees nothing."""
    impostor = makeSelfSignedIdentity(OVERLAY, None)
    caller, callee = await _iceNode(overlay), await _iceNode(overlay, appIdentity=impostor)
    await overlay.link(caller, callee)
    callee.applications.listenApplication(SIP, RecordingFactory())
    client = RecordingFactory()
    with pytest.raises(AppAttachRefused):
        await caller.applications.appAttach(callee.nodeId, SIP, client)
    assert client.built == [] and caller.applications.refused == 1
    assert noState(caller.applications)


@pytest_twisted.ensureDeferred
async def test_answererRefusesACallerDtlsCertificateNotOfTheRequester_6_5_1_11(
    overlay: Overlay,
) -> None:
    """The caller's ICE port presents another node's certificate: the
    answering node (DTLS client, told the requester's Node-ID) fails the
    handshake; neither application sees a connection."""
    impostor = makeSelfSignedIdentity(OVERLAY, None)
    caller, callee = await _iceNode(overlay, appIdentity=impostor), await _iceNode(overlay)
    await overlay.link(caller, callee)
    server = RecordingFactory()
    callee.applications.listenApplication(SIP, server)
    client = RecordingFactory()
    caller.applications.settings = type(caller.applications.settings)(timeout=5.0)
    with pytest.raises(AppAttachFailed):
        await caller.applications.appAttach(callee.nodeId, SIP, client)
    await until(lambda: noState(callee.applications))
    assert server.built == [] and client.built == []
