"""A byte stream for an application over one DTLS link: what an AppAttach
over ICE hands the application (RFC 6940 section 6.5.2).

An AppAttach whose peers are behind NATs gets a UDP path from ICE, and the
application is a stream protocol (SIP over TLS in RFC 7904 section 5.1).
The DTLS link on that path (a :class:`~reload.link.dtls.DTLSEndpoint` with
``applicationData`` set) already retransmits unacknowledged frames (simple
reliability, section 6.6.3.1); :class:`ApplicationStream` adds what a
stream needs on top: it cuts what the application writes into chunks that
each fit one frame, numbers them, and delivers them to the protocol in
order and once (a frame retransmitted because its ACK was lost arrives
twice).  It is the protocol's ``transport`` (``ITransport``), so an
application written for the TLS path runs unchanged.

Each chunk: an 8-byte sequence number, then the application's bytes.
Chunks that arrive ahead of a missing one wait, at most
``MAX_AHEAD`` of them; beyond that the peer is misbehaving and the stream
closes.  ``peer`` is the link's verified certificate (the application
sees no connection before it was checked), ``pairType`` the type of the
ICE pair ("host", "srflx" or "relay").
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IProtocol, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer

from reload.link.errors import LinkClosed
from reload.security.trust import VerifiedPeer

__all__ = ["MAX_AHEAD", "ApplicationStream"]

_SEQUENCE = struct.Struct("!Q")
#: Chunks held while an earlier one is missing.
MAX_AHEAD = 256


def _address(host: str, port: int) -> IAddress:
    if ":" in host:
        return IPv6Address("UDP", host, port)
    return IPv4Address("UDP", host, port)


@implementer(ITransport)
class ApplicationStream:
    """``link`` is an up :class:`~reload.link.dtls.DTLSLink` (anything with
    ``send``, ``close``, ``messageMtu`` and ``address``); ``local`` our end of
    the pair.  :meth:`chunkReceived` and :meth:`linkClosed` are called by
    whoever handles the link's endpoint."""

    disconnecting = False

    def __init__(
        self,
        link: Any,
        local: tuple[str, int],
        peer: VerifiedPeer,
        pairType: str,
        onClosed: Callable[[ApplicationStream], None] | None = None,
    ) -> None:
        self.link = link
        self.local = local
        self.peer = peer
        self.pairType = pairType
        self.onClosed = onClosed
        self.protocol: IProtocol | None = None
        self._sent = 0
        self._next = 0
        self._ahead: dict[int, bytes] = {}
        self.closed = False
        #: Chunks received twice (retransmissions), for tests and metrics.
        self.duplicates = 0

    def attach(self, protocol: IProtocol) -> None:
        """Connect ``protocol`` to this stream (its ``makeConnection``)."""
        self.protocol = protocol
        protocol.makeConnection(self)

    # -- ITransport ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed or self.disconnecting or not data:
            return
        size = self.link.messageMtu - _SEQUENCE.size
        for start in range(0, len(data), size):
            chunk = _SEQUENCE.pack(self._sent) + data[start : start + size]
            self._sent += 1
            try:
                self.link.send(chunk)
            except Exception as exc:  # closed, or LinkBusy: the peer does not keep up
                self._abort(f"cannot send: {exc}")
                return

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self.closed:
            return
        self.disconnecting = True
        self.link.close()
        self._close("closed locally")

    def abortConnection(self) -> None:
        self.loseConnection()

    def getPeer(self) -> IAddress:
        return _address(*self.link.address)

    def getHost(self) -> IAddress:
        return _address(*self.local)

    # -- from the link ---------------------------------------------------------------

    def chunkReceived(self, chunk: bytes) -> None:
        if self.closed:
            return
        if len(chunk) < _SEQUENCE.size:
            self._abort("a chunk shorter than its sequence number")
            return
        (sequence,) = _SEQUENCE.unpack_from(chunk)
        if sequence < self._next or sequence in self._ahead:
            self.duplicates += 1
            return
        if sequence > self._next:
            if len(self._ahead) >= MAX_AHEAD:
                self._abort(f"more than {MAX_AHEAD} chunks ahead of a missing one")
                return
            self._ahead[sequence] = chunk[_SEQUENCE.size :]
            return
        self._deliver(chunk[_SEQUENCE.size :])
        while self._next in self._ahead and not self.closed:
            self._deliver(self._ahead.pop(self._next))

    def _deliver(self, data: bytes) -> None:
        self._next += 1
        if data and self.protocol is not None:
            self.protocol.dataReceived(data)

    def linkClosed(self, reason: str) -> None:
        self._close(reason)

    def _abort(self, reason: str) -> None:
        self.link.close()
        self._close(reason)

    def _close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._ahead.clear()
        if self.protocol is not None:
            clean = reason == "closed locally" or "close_notify" in reason
            error = ConnectionDone(reason) if clean else LinkClosed(reason)
            self.protocol.connectionLost(Failure(error))
        if self.onClosed is not None:
            self.onClosed(self)
