"""TURN over TLS to an overlay member's server (RFC 8656 section 3.1, RFC
6940 section 9), for relayed ICE candidates of the DTLS port (section
6.5.1.5).

A TURN server found in the overlay is known by the address in its
TURN-SERVICE value and by the Node-ID that signed it.  Members reach it
over TLS on TCP at the same port number as that (UDP) address -- the
convention of the TURN usage's ``TURN:tls-port=same``, documented in the
README -- with both ends presenting overlay certificates: the server
accepts members without a password, and this side requires the server's
certificate to hold the advertiser's Node-ID (checked in the handshake by
the overlay's one verify callback, and again on the verified peer once
the handshake completed).  Anything else fails closed: the connection is
dropped and the caller moves on to the next server.

On the stream, STUN messages and ChannelData follow each other with no
other framing (RFC 8489 section 6.2.2; ChannelData padded to four bytes
over streams, RFC 8656 section 12.5); :class:`StreamFrames` cuts them.
The allocation is made and used by a
:class:`~reload.link.turnclient.TurnClient` in ``overTls`` mode, which
sends through the stream and is fed every frame from it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.link.turnclient import TurnClient, TurnError
from reload.security.certificates import PeerIdentity
from reload.security.tls import clientConnectionCreator, verifiedPeerOf
from reload.security.trust import CertificateRejected, TrustPolicy

__all__ = ["StreamFrames", "allocateOverTls"]

Address = tuple[str, int]
#: RFC 8489 section 5: bytes 4 to 7 of every STUN message.
MAGIC_COOKIE = b"\x21\x12\xa4\x42"
#: Seconds the TCP connection and the TLS handshake may take together.
CONNECT_TIMEOUT = 5.0


class StreamFrames:
    """Cuts a TURN byte stream into STUN messages and ChannelData
    messages; ValueError for bytes that are neither (the first two bits
    of a STUN message are 0b00 and its magic cookie follows, of
    ChannelData 0b01: RFC 8656 section 12)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 4:
            first, length = struct.unpack_from("!BxH", self._buffer)
            if first >> 6 == 0:
                if len(self._buffer) >= 8 and self._buffer[4:8] != MAGIC_COOKIE:
                    raise ValueError("a STUN header without the magic cookie")
                size = 20 + length
            elif first >> 6 == 1:
                size = 4 + length + (-length % 4)
            else:
                raise ValueError(f"neither STUN nor ChannelData (first byte {first:#04x})")
            if len(self._buffer) < size:
                break
            frames.append(self._buffer[:size])
            self._buffer = self._buffer[size:]
        return frames


@implementer(IHandshakeListener)
class _TurnStream(Protocol):
    """The TLS stream to one TURN server: fires ``ready`` with the
    :class:`TurnClient` once the handshake showed the expected Node-ID."""

    log = Logger()

    def __init__(
        self,
        server: Address,
        nodeId: bytes,
        deliver: Callable[[bytes, Address], None],
        clock: Any,
        ready: Deferred[TurnClient],
    ) -> None:
        self.server = server
        self.nodeId = nodeId
        self.deliver = deliver
        self.clock = clock
        self.ready = ready
        self.frames = StreamFrames()
        self.client: TurnClient | None = None

    def handshakeCompleted(self) -> None:
        assert self.transport is not None
        try:
            nodeIds = verifiedPeerOf(self.transport).nodeIds
        except CertificateRejected as exc:
            self._refuse(f"certificate not verified: {exc}")
            return
        if self.nodeId not in nodeIds:
            self._refuse(f"certificate holds {[n.hex() for n in nodeIds]}, not the advertiser")
            return
        transport = self.transport
        self.client = TurnClient(
            self.server,
            "",
            "",
            lambda data, _address: transport.write(data),
            self.deliver,
            self.clock,
            overTls=True,
            closed=transport.loseConnection,
        )
        if not self.ready.called:
            self.ready.callback(self.client)

    def _refuse(self, why: str) -> None:
        assert self.transport is not None
        if not self.ready.called:
            self.ready.errback(TurnError(f"TURN over TLS to {self._where}: {why}"))
        self.transport.abortConnection()  # type: ignore[attr-defined]

    @property
    def _where(self) -> str:
        return f"{self.server[0]}:{self.server[1]}"

    def dataReceived(self, data: bytes) -> None:
        if self.client is None:
            return
        try:
            frames = self.frames.feed(data)
        except ValueError as exc:
            self.log.info("TURN over TLS to {server}: {error}; closed", server=self._where,
                          error=exc)  # fmt: skip
            assert self.transport is not None
            self.transport.abortConnection()  # type: ignore[attr-defined]
            return
        for frame in frames:
            self.client.datagramReceived(frame)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        why = reason.getErrorMessage()
        if not self.ready.called:
            self.ready.errback(TurnError(f"TURN over TLS to {self._where}: {why}"))
        if self.client is not None:
            self.client.lost(why)


class _StreamFactory(Factory):
    def __init__(self, make: Callable[[], _TurnStream]) -> None:
        self.make = make

    def buildProtocol(self, addr: Any) -> _TurnStream:
        return self.make()


async def allocateOverTls(
    reactor: Any,
    server: Address,
    nodeId: bytes,
    identity: PeerIdentity,
    trust: TrustPolicy,
    deliver: Callable[[bytes, Address], None],
) -> TurnClient:
    """A UDP relay (RFC 8656 section 7) on the TURN server at ``server``
    (TLS on TCP there) of the overlay member ``nodeId``; what peers send
    to it goes to ``deliver(data, peer)``.  :class:`TurnError` when the
    connection, the handshake, the Node-ID or the allocation fails (the
    connection is then closed)."""
    ready: Deferred[TurnClient] = Deferred()
    streams: list[_TurnStream] = []

    def stream() -> _TurnStream:
        made = _TurnStream(server, nodeId, deliver, reactor, ready)
        streams.append(made)
        return made

    creator = clientConnectionCreator(identity, trust, nodeId, reactor)
    factory = TLSMemoryBIOFactory(creator, True, _StreamFactory(stream))
    endpoint = HostnameEndpoint(reactor, server[0], server[1], timeout=CONNECT_TIMEOUT)
    connecting = endpoint.connect(factory)

    def failed(failure: Failure) -> None:
        if not ready.called:
            ready.errback(TurnError(f"TURN over TLS to {server[0]}:{server[1]}: "
                                    f"{failure.getErrorMessage() or 'no connection'}"))  # fmt: skip

    connecting.addErrback(failed)

    def giveUp() -> None:
        """The connection or the handshake did not finish in time."""
        if ready.called:
            return
        connecting.cancel()
        for made in streams:
            if made.transport is not None:
                made.transport.abortConnection()  # type: ignore[attr-defined]
        if not ready.called:
            ready.errback(TurnError(f"TURN over TLS to {server[0]}:{server[1]}: no TLS handshake"))

    timer = reactor.callLater(CONNECT_TIMEOUT, giveUp)
    try:
        client = await ready
    finally:
        if timer.active():
            timer.cancel()
    try:
        await client.allocate()
    except Exception:
        client.stop()
        raise
    return client
