"""A TURN client (RFC 8656) for relayed ICE candidates (RFC 6940 section
6.5.1.5), running on the peer's DTLS/STUN UDP port.

RFC 6940 section 6.5.1.5 lets a peer gather relayed candidates from a TURN
server; here the allocation is made from the very UDP port that carries
the DTLS links and the ICE checks (:class:`reload.link.stunport.StunPort`
hands this client everything that comes from the TURN server's address),
so what the server relays arrives through the same socket and is given to
the checks or the DTLS links as if it came from the peer itself.

What it does:

* Allocate (RFC 8656 section 7) of a UDP relay with long-term credentials
  (RFC 8656 section 9.2, RFC 5389 section 10.2): the first request goes
  without credentials, the 401 gives REALM and NONCE, the request goes
  again with MESSAGE-INTEGRITY; a 438 (stale nonce) retries once with the
  new nonce.  Responses are checked against the key (fail closed: a
  response without the right MESSAGE-INTEGRITY is ignored).
* Refresh (section 8) every half lifetime, and with lifetime 0 on
  :meth:`stop`.
* CreatePermission (section 10) for the IP addresses of the remote
  candidates before ICE checks run through the relay, refreshed every
  four minutes (permissions last five, section 9).
* Send indications out (section 11) and Data indications in: the payload
  goes to ``deliver(data, peer)``.  No ChannelBind: the 36 bytes of a Send
  indication are within the DTLS links' MTU margin, and one code path is
  enough for checks and links.

Requests are retransmitted over UDP (RFC 5389 section 7.2.1: RTO 0.5 s,
doubling); a server that does not answer fails the request with
:class:`TurnError`.

Over TLS (``overTls=True``, made by :mod:`reload.link.turntls` for TURN
servers found in the overlay, RFC 6940 section 9): the same messages go
through a TLS stream whose server certificate was checked to hold the
Node-ID of the overlay member that advertised the server, and which
presented this node's overlay certificate.  A request is sent once (RFC
8489 section 6.2.2: no retransmissions over a reliable transport) and
fails after ``RELIABLE_TIMEOUT``; the server knows us by our certificate,
so there are no long-term credentials and its answers carry no
MESSAGE-INTEGRITY: they are trusted because the authenticated TLS stream
is the only way they arrive.  Any error response fails the request (no
401 dance: there is no password to offer).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from ipaddress import ip_address
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from reload.wire.errors import DecodeError
from reload.wire.stun import (
    ALLOCATE,
    CREATE_PERMISSION,
    DATA,
    ERROR,
    INDICATION,
    REFRESH,
    REQUEST,
    SEND,
    SUCCESS,
    Attr,
    StunMessage,
    checkIntegrity,
    decodeErrorCode,
    decodeXorAddress,
    encodeXorAddress,
    longTermKey,
    newTransactionId,
)

__all__ = ["TurnClient", "TurnError"]

Address = tuple[str, int]
#: RFC 8656 section 18.7: REQUESTED-TRANSPORT UDP (protocol 17).
_UDP = struct.pack("!B3x", 17)
#: Permissions last 300 s (RFC 8656 section 9): refreshed before.
PERMISSION_REFRESH = 240.0
FIRST_RTO = 0.5
TRANSMISSIONS = 6
#: Seconds a request over TLS waits for its answer (RFC 8489 section 6.2.2
#: says 39.5 s; an ICE relay is no use that late).
RELIABLE_TIMEOUT = 10.0


def _ipv4(host: str) -> bool:
    try:
        return ip_address(host).version == 4
    except ValueError:
        return False


class TurnError(Exception):
    """A TURN request failed: no answer, or an error response."""


class TurnClient:
    """One allocation on the TURN server ``server`` (an IP address and
    port).  ``send(datagram, address)`` sends from the DTLS port;
    ``deliver(data, peer)`` takes what a peer sent through the relay."""

    log = Logger()

    def __init__(
        self,
        server: Address,
        username: str,
        password: str,
        send: Callable[[bytes, Address], None],
        deliver: Callable[[bytes, Address], None],
        clock: Any,
        *,
        overTls: bool = False,
        closed: Callable[[], None] | None = None,
    ) -> None:
        self.server = server
        #: Requests go once through an authenticated TLS stream (see the
        #: module docstring); ``closed()`` ends that stream on :meth:`stop`.
        self.overTls = overTls
        self._close = closed
        self.username = username
        self.password = password
        self.send = send
        self.deliver = deliver
        self.clock = clock
        self.realm: str | None = None
        self.nonce: bytes | None = None
        #: Our relayed transport address once allocated, and the server's
        #: view of this port (a server-reflexive address).
        self.relayed: Address | None = None
        self.mapped: Address | None = None
        self.lifetime = 600
        self._pending: dict[bytes, tuple[Deferred[StunMessage], Any]] = {}
        self._permitted: set[str] = set()
        self._refresher: Any = None
        self._permissions: LoopingCall | None = None
        #: Counters for the status and tests.
        self.relayedIn = 0
        self.relayedOut = 0

    @property
    def _key(self) -> bytes | None:
        if self.realm is None:
            return None
        return longTermKey(self.username, self.realm, self.password)

    # -- requests ----------------------------------------------------------------------

    async def _request(self, method: int, attributes: list[tuple[int, bytes]]) -> StunMessage:
        """One authenticated request; retried once after a 401 or 438."""
        for attempt in range(3):
            answer = await self._transact(method, attributes)
            if answer.cls == SUCCESS:
                return answer
            raw = answer.get(Attr.ERROR_CODE)
            code = decodeErrorCode(raw) if raw is not None else 0
            if self.overTls:
                break  # the certificate was not enough: nothing else to offer
            realm, nonce = answer.get(Attr.REALM), answer.get(Attr.NONCE)
            if code in (401, 438) and nonce is not None and attempt < 2:
                if code == 401 and self.realm is not None and attempt > 0:
                    break  # refused with the credentials: wrong user or password
                if realm is not None:
                    self.realm = realm.decode("utf-8", "replace")
                self.nonce = nonce
                continue
            break
        raise TurnError(f"TURN {method:#x} refused by {self._where}: error {code}")

    @property
    def _where(self) -> str:
        return f"{self.server[0]}:{self.server[1]}"

    def _transact(self, method: int, attributes: list[tuple[int, bytes]]) -> Deferred[StunMessage]:
        transactionId = newTransactionId()
        attrs = list(attributes)
        key = self._key
        if key is not None and self.nonce is not None and self.realm is not None:
            attrs += [
                (Attr.USERNAME, self.username.encode()),
                (Attr.REALM, self.realm.encode()),
                (Attr.NONCE, self.nonce),
            ]
        else:
            key = None
        datagram = StunMessage(method, REQUEST, transactionId, tuple(attrs)).encode(key)
        done: Deferred[StunMessage] = Deferred()

        if self.overTls:
            self.send(datagram, self.server)
            self._pending[transactionId] = (
                done,
                self.clock.callLater(RELIABLE_TIMEOUT, self._timedOut, transactionId),
            )
            return done

        def transmit(left: int, rto: float) -> None:
            if done.called:
                return
            if left == 0:
                self._pending.pop(transactionId, None)
                done.errback(TurnError(f"the TURN server {self._where} did not answer"))
                return
            self.send(datagram, self.server)
            self._pending[transactionId] = (
                done,
                self.clock.callLater(rto, transmit, left - 1, rto * 2),
            )

        transmit(TRANSMISSIONS, FIRST_RTO)
        return done

    def _timedOut(self, transactionId: bytes) -> None:
        pending = self._pending.pop(transactionId, None)
        if pending is not None and not pending[0].called:
            pending[0].errback(TurnError(f"the TURN server {self._where} did not answer"))

    # -- allocation ----------------------------------------------------------------------

    async def allocate(self) -> Address:
        """Allocate a UDP relay (RFC 8656 section 7.1); our relayed address."""
        answer = await self._request(ALLOCATE, [(Attr.REQUESTED_TRANSPORT, _UDP)])
        relayed = answer.get(Attr.XOR_RELAYED_ADDRESS)
        if relayed is None:
            raise TurnError(f"the TURN server {self._where} sent no XOR-RELAYED-ADDRESS")
        self.relayed = decodeXorAddress(relayed, answer.transactionId)
        mapped = answer.get(Attr.XOR_MAPPED_ADDRESS)
        if mapped is not None:
            self.mapped = decodeXorAddress(mapped, answer.transactionId)
        lifetime = answer.get(Attr.LIFETIME)
        if lifetime is not None and len(lifetime) == 4:
            self.lifetime = max(60, struct.unpack("!I", lifetime)[0])
        self._scheduleRefresh()
        self._permissions = LoopingCall(self._refreshPermissions)
        self._permissions.clock = self.clock
        self._permissions.start(PERMISSION_REFRESH, now=False)
        return self.relayed

    def _scheduleRefresh(self) -> None:
        self._refresher = self.clock.callLater(self.lifetime / 2, self._refresh)

    def _refresh(self) -> None:
        """RFC 8656 section 8: keep the allocation."""
        lifetime = struct.pack("!I", self.lifetime)
        d = Deferred.fromCoroutine(self._request(REFRESH, [(Attr.LIFETIME, lifetime)]))

        def failed(failure: Any) -> None:
            self.log.warn("TURN refresh on {server}: {error}", server=self._where,
                          error=failure.getErrorMessage())  # fmt: skip
            self.relayed = None

        d.addCallbacks(lambda _: self._scheduleRefresh(), failed)

    # -- permissions ---------------------------------------------------------------------

    async def permit(self, hosts: Iterable[str]) -> list[str]:
        """CreatePermission (RFC 8656 section 10) for each of the IP
        addresses ``hosts`` not yet permitted, one request each (a server
        may refuse some peers, section 21.2.3, and not the others); the
        addresses permitted now."""
        # IPv4 only: an IPv6 XOR-PEER-ADDRESS is masked with the request's
        # own transaction ID, which _request chooses.
        fresh = sorted({h for h in hosts if _ipv4(h) and h not in self._permitted})
        if not fresh or self.relayed is None:
            return sorted(self._permitted)
        results = await DeferredList(
            [Deferred.fromCoroutine(self._createPermission(host)) for host in fresh],
            consumeErrors=True,
        )
        for host, (ok, _) in zip(fresh, results, strict=True):
            if ok:
                self._permitted.add(host)
        return sorted(self._permitted)

    async def _createPermission(self, host: str) -> None:
        # Only the XOR mask uses this transaction ID (IPv4 ignores it).
        mask = newTransactionId()
        await self._request(
            CREATE_PERMISSION, [(Attr.XOR_PEER_ADDRESS, encodeXorAddress(host, 0, mask))]
        )

    def _refreshPermissions(self) -> None:
        if not self._permitted or self.relayed is None:
            return
        for host in sorted(self._permitted):
            d = Deferred.fromCoroutine(self._createPermission(host))
            d.addErrback(self._permissionLost, host)

    def _permissionLost(self, failure: Any, host: str) -> None:
        self.log.warn("TURN permission for {host}: {error}", host=host,
                      error=failure.getErrorMessage())  # fmt: skip
        self._permitted.discard(host)

    # -- data ----------------------------------------------------------------------------

    def sendTo(self, data: bytes, peer: Address) -> None:
        """A Send indication (RFC 8656 section 11.1): ``data`` to ``peer``
        from our relayed address."""
        if self.relayed is None:
            return
        transactionId = newTransactionId()
        indication = StunMessage(
            SEND,
            INDICATION,
            transactionId,
            (
                (Attr.XOR_PEER_ADDRESS, encodeXorAddress(*peer, transactionId)),
                (Attr.DATA, data),
            ),
        )
        self.relayedOut += 1
        self.send(indication.encode(), self.server)

    def datagramReceived(self, data: bytes) -> None:
        """A STUN datagram from the TURN server."""
        try:
            message = StunMessage.decode(data)
        except DecodeError:
            return
        if message.cls == INDICATION:
            if message.method == DATA:
                self._data(message)
            return
        pending = self._pending.get(message.transactionId)
        if pending is None or message.cls not in (SUCCESS, ERROR):
            return
        key = self._key
        if (
            message.cls == SUCCESS
            and not self.overTls
            and (key is None or not checkIntegrity(data, key))
        ):
            return  # forged or damaged: the retransmission may still get the real one
        del self._pending[message.transactionId]
        done, timer = pending
        if timer.active():
            timer.cancel()
        done.callback(message)

    def _data(self, message: StunMessage) -> None:
        """RFC 8656 section 11.4: a Data indication's payload, from its peer."""
        peer, payload = message.get(Attr.XOR_PEER_ADDRESS), message.get(Attr.DATA)
        if peer is None or payload is None:
            return
        try:
            source = decodeXorAddress(peer, message.transactionId)
        except DecodeError:
            return
        self.relayedIn += 1
        self.deliver(payload, source)

    # -- the end -------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel the timers and delete the allocation (a Refresh with
        lifetime 0, RFC 8656 section 8), without waiting for the answer."""
        if self._refresher is not None and self._refresher.active():
            self._refresher.cancel()
        if self._permissions is not None and self._permissions.running:
            self._permissions.stop()
        for done, timer in list(self._pending.values()):
            if timer.active():
                timer.cancel()
            if not done.called:
                done.errback(TurnError("the TURN client stopped"))
        self._pending.clear()
        if self.relayed is not None:
            self.relayed = None
            self._transact(REFRESH, [(Attr.LIFETIME, struct.pack("!I", 0))]).addErrback(
                lambda _: None
            )
            for _, timer in self._pending.values():
                if timer.active():
                    timer.cancel()
            self._pending.clear()
        if self._close is not None:
            self._close()

    def lost(self, why: str) -> None:
        """The TLS stream to the server ended: the allocation is gone with
        it (RFC 8656 section 3.1: it belongs to that connection)."""
        self.log.info("TURN over TLS to {server} closed: {why}", server=self._where, why=why)
        self._close = None
        if self._refresher is not None and self._refresher.active():
            self._refresher.cancel()
        if self._permissions is not None and self._permissions.running:
            self._permissions.stop()
        self.relayed = None
        self._permitted.clear()
        for done, timer in list(self._pending.values()):
            if timer.active():
                timer.cancel()
            if not done.called:
                done.errback(TurnError(f"the TLS stream to {self._where} closed: {why}"))
        self._pending.clear()
