"""A sans-I/O ICE agent for RELOAD's Attach (RFC 6940 section 6.5.1.3,
RFC 8445), for the single UDP component RELOAD uses.

Why our own agent and not aioice: RELOAD wants the ICE checks, the STUN
server every peer is (section 6.5.1) and the DTLS links on one and the same
UDP port -- the server-reflexive address a peer learns from another peer is
then the mapping its DTLS link uses, and the selected pair is simply a
remote address on the DTLS endpoint.  aioice opens sockets of its own per
session, has no STUN server side, and runs only on asyncio (the peer would
have to switch reactors and cross futures with Deferreds).  This agent
takes bytes and time and returns bytes to send, as the rest of
:mod:`reload.wire` and the DTLS link do; :mod:`reload.link.stunport` is its
I/O.

What it does, for one session:

* Pairs: the host and server-reflexive candidates share one base (the
  DTLS port), so the check list has one pair per remote candidate
  (server-reflexive local candidates are pruned to their base, RFC 8445
  section 6.1.2.4); with a relayed candidate (``relayPriority`` set, RFC
  6940 section 6.5.1.5) every remote candidate gets a second pair whose
  checks go through the TURN relay (collected in :attr:`relayOutbox`, and
  whose datagrams come back with ``relayed=True``); pair priorities follow
  RFC 8445 section 6.1.2.3.
* Checks (RFC 8445 section 7.2): one new check every ``Ta`` (20 ms),
  triggered checks first; each retransmitted after an RTO that starts at
  100 ms and doubles, five transmissions in all.  A response counts only
  from the address the check went to, with MESSAGE-INTEGRITY under the
  remote password.  Requests need USERNAME ``local:remote`` and
  MESSAGE-INTEGRITY under the local password; anything else is ignored
  (returns False), so a stranger cannot steer the session.  A request from
  an address no candidate named adds a peer-reflexive remote candidate
  with the request's PRIORITY (section 7.3.1.3).
* Roles: section 6.5.1.9: the Attach requester is controlling, the
  answerer controlled.  Regular nomination (RFC 8445 section 8.1.1): the
  controlling agent nominates the best valid pair once no better pair can
  still succeed, or ``nominationDelay`` after the first success, by
  checking it again with USE-CANDIDATE; the controlled agent selects a
  pair when a USE-CANDIDATE check arrives on a pair that succeeded (or
  when the triggered check it causes succeeds).
* Ends: :attr:`selected` is the remote candidate of the selected pair;
  :attr:`failure` says why not, once every pair failed or ``timeout``
  passed.
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass, field

from reload.wire.errors import DecodeError
from reload.wire.stun import (
    BINDING,
    ERROR,
    REQUEST,
    SUCCESS,
    Attr,
    StunMessage,
    checkIntegrity,
    decodeXorAddress,
    encodeXorAddress,
    newTransactionId,
)

__all__ = ["Candidate", "IceAgent", "candidatePriority", "pairPriority"]

Address = tuple[str, int]

#: RFC 8445 section 5.1.2.2 recommended type preferences.
TYPE_PREFERENCE = {"host": 126, "prflx": 110, "srflx": 100, "relay": 0}
#: Pacing of new checks (RFC 8445 section 14.2) and retransmission.
TA = 0.02
FIRST_RTO = 0.1
MAX_TRANSMISSIONS = 5


def candidatePriority(kind: str, localPreference: int = 65535, component: int = 1) -> int:
    """RFC 8445 section 5.1.2.1."""
    return (TYPE_PREFERENCE[kind] << 24) | (localPreference << 8) | (256 - component)


def pairPriority(controlling: int, controlled: int) -> int:
    """RFC 8445 section 6.1.2.3, from the controlling agent's candidate
    priority and the controlled agent's."""
    g, d = controlling, controlled
    return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)


@dataclass(frozen=True)
class Candidate:
    """One ICE candidate: its type ("host", "srflx", "prflx", "relay"),
    transport address, priority and foundation; ``related`` for the
    derived types."""

    kind: str
    host: str
    port: int
    priority: int
    foundation: str
    related: Address | None = None

    @property
    def address(self) -> Address:
        return (self.host, self.port)


@dataclass
class _Pair:
    remote: Candidate
    priority: int
    #: Whether the local end is our relayed candidate.
    relayed: bool = False
    state: str = "waiting"  # waiting, in-progress, succeeded, failed
    nominatedByPeer: bool = False
    #: The transaction of the check in flight, its nominating flag, how
    #: often it went out and when it goes out again.
    transaction: bytes | None = None
    nominating: bool = False
    sent: int = 0
    due: float = 0.0
    rto: float = FIRST_RTO
    #: Our address as the peer saw it (the check's XOR-MAPPED-ADDRESS).
    mapped: Address | None = None


@dataclass
class IceAgent:
    """One ICE session (see the module docstring); outgoing datagrams
    collect in :attr:`outbox` as ``(bytes, address)``."""

    controlling: bool
    localUfrag: bytes
    localPassword: bytes
    remoteUfrag: bytes
    remotePassword: bytes
    localPriority: int
    remoteCandidates: list[Candidate]
    now: float
    timeout: float = 10.0
    nominationDelay: float = 0.3
    #: Priority of our relayed candidate; None: we have none.
    relayPriority: int | None = None
    tieBreaker: bytes = field(default_factory=lambda: os.urandom(8))
    outbox: list[tuple[bytes, Address]] = field(default_factory=list)
    #: Datagrams to send through the TURN relay, to the peer address.
    relayOutbox: list[tuple[bytes, Address]] = field(default_factory=list)
    selected: Candidate | None = None
    #: Whether the selected pair's local end is our relayed candidate.
    selectedRelayed: bool = False
    #: Our address as the other side saw it on the selected pair.
    selectedMapped: Address | None = None
    failure: str | None = None

    def __post_init__(self) -> None:
        self._pairs: dict[tuple[bool, Address], _Pair] = {}
        self._triggered: list[_Pair] = []
        self._started = self.now
        self._nextCheck = self.now
        self._firstSuccess: float | None = None
        self.nominated: _Pair | None = None
        for candidate in self.remoteCandidates:
            self._addPair(candidate, False)
            if self.relayPriority is not None:
                self._addPair(candidate, True)

    # -- inputs ------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.selected is not None or self.failure is not None

    @property
    def username(self) -> bytes:
        """USERNAME of our checks (RFC 8445 section 7.2.2)."""
        return self.remoteUfrag + b":" + self.localUfrag

    def owns(self, transactionId: bytes) -> bool:
        return any(p.transaction == transactionId for p in self._pairs.values())

    def poll(self, now: float) -> float | None:
        """Send what is due at ``now``; the time to be polled again (None
        when the session is over)."""
        self.now = now
        if self.done:
            return None
        if now - self._started >= self.timeout:
            self.failure = f"no candidate pair worked within {self.timeout:g} s"
            return None
        for pair in self._pairs.values():
            if pair.state == "in-progress" and pair.due <= now:
                if pair.sent >= MAX_TRANSMISSIONS:
                    self._failed(pair)
                else:
                    pair.rto *= 2
                    self._send(pair)
        if now >= self._nextCheck:
            chosen = self._nextPair()
            if chosen is not None:
                self._start(chosen, nominating=chosen is self.nominated)
                self._nextCheck = now + TA
        self._maybeNominate()
        self._maybeGiveUp()
        if self.done:
            return None
        deadlines = [p.due for p in self._pairs.values() if p.state == "in-progress"]
        if self._nextPairWaiting():
            deadlines.append(self._nextCheck)
        if self.controlling and self._firstSuccess is not None and self.nominated is None:
            deadlines.append(self._firstSuccess + self.nominationDelay)
        deadlines.append(self._started + self.timeout)
        return max(now, min(deadlines))

    def receive(self, data: bytes, source: Address, now: float, relayed: bool = False) -> bool:
        """A STUN message from ``source`` (through our TURN relay when
        ``relayed``); whether it belonged here."""
        self.now = now
        try:
            message = StunMessage.decode(data)
        except DecodeError:
            return False
        if message.method != BINDING:
            return False
        if message.cls == REQUEST:
            return self._request(message, data, source, relayed)
        if message.cls in (SUCCESS, ERROR):
            return self._response(message, data, source, relayed)
        return False

    # -- checks ------------------------------------------------------------------------

    def _addPair(self, remote: Candidate, relayed: bool) -> _Pair:
        existing = self._pairs.get((relayed, remote.address))
        if existing is not None:
            return existing
        local = self.relayPriority if relayed and self.relayPriority else self.localPriority
        if self.controlling:
            priority = pairPriority(local, remote.priority)
        else:
            priority = pairPriority(remote.priority, local)
        pair = _Pair(remote, priority, relayed)
        self._pairs[(relayed, remote.address)] = pair
        return pair

    def _nextPair(self) -> _Pair | None:
        while self._triggered:
            pair = self._triggered.pop(0)
            if pair.state in ("waiting", "failed", "succeeded") and (
                pair.state != "succeeded" or pair is self.nominated
            ):
                return pair
        return self._nextPairWaiting()

    def _nextPairWaiting(self) -> _Pair | None:
        waiting = [p for p in self._pairs.values() if p.state == "waiting"]
        return max(waiting, key=lambda p: p.priority, default=None)

    def _start(self, pair: _Pair, nominating: bool) -> None:
        pair.state = "in-progress"
        pair.transaction = newTransactionId()
        pair.nominating = nominating
        pair.sent = 0
        pair.rto = FIRST_RTO
        self._send(pair)

    def _send(self, pair: _Pair) -> None:
        assert pair.transaction is not None
        role = Attr.ICE_CONTROLLING if self.controlling else Attr.ICE_CONTROLLED
        # RFC 8445 section 7.2.5.1: PRIORITY is that of a peer-reflexive
        # candidate of ours.
        priority = candidatePriority("prflx", (self.localPriority >> 8) & 0xFFFF)
        attributes = [
            (Attr.USERNAME, self.username),
            (Attr.PRIORITY, struct.pack("!I", priority)),
            (role, self.tieBreaker),
        ]
        if pair.nominating:
            attributes.append((Attr.USE_CANDIDATE, b""))
        check = StunMessage(BINDING, REQUEST, pair.transaction, tuple(attributes))
        box = self.relayOutbox if pair.relayed else self.outbox
        box.append((check.encode(self.remotePassword), pair.remote.address))
        pair.sent += 1
        pair.due = self.now + pair.rto

    def _failed(self, pair: _Pair) -> None:
        pair.state = "failed"
        pair.transaction = None
        if pair is self.nominated:
            self.nominated = None

    def _response(self, message: StunMessage, data: bytes, source: Address, relayed: bool) -> bool:
        pair = next(
            (p for p in self._pairs.values() if p.transaction == message.transactionId), None
        )
        if pair is None:
            return False
        if not checkIntegrity(data, self.remotePassword):
            return True  # ours, but forged or damaged: wait for the real one
        if source != pair.remote.address or relayed != pair.relayed or message.cls == ERROR:
            # Not symmetric (RFC 8445 section 7.2.5.2.1), or refused.
            self._failed(pair)
            self._maybeGiveUp()
            return True
        mapped = message.get(Attr.XOR_MAPPED_ADDRESS)
        if mapped is not None:
            with contextlib.suppress(DecodeError):
                pair.mapped = decodeXorAddress(mapped, message.transactionId)
        nominating = pair.nominating
        pair.state = "succeeded"
        pair.transaction = None
        if self._firstSuccess is None:
            self._firstSuccess = self.now
        if (nominating and self.controlling) or (not self.controlling and pair.nominatedByPeer):
            self._select(pair)
        return True

    def _select(self, pair: _Pair) -> None:
        self.selected = pair.remote
        self.selectedMapped = pair.mapped
        self.selectedRelayed = pair.relayed

    def _request(self, message: StunMessage, data: bytes, source: Address, relayed: bool) -> bool:
        username = message.get(Attr.USERNAME)
        if username is None or username != self.localUfrag + b":" + self.remoteUfrag:
            return False
        if not checkIntegrity(data, self.localPassword):
            return False
        response = StunMessage(
            BINDING,
            SUCCESS,
            message.transactionId,
            ((Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(*source, message.transactionId)),),
        )
        box = self.relayOutbox if relayed else self.outbox
        box.append((response.encode(self.localPassword), source))
        if self.done:
            return True
        pair = self._pairs.get((relayed, source))
        if pair is None:
            raw = message.get(Attr.PRIORITY)
            priority = struct.unpack("!I", raw)[0] if raw and len(raw) == 4 else 0
            pair = self._addPair(Candidate("prflx", *source, priority, "prflx"), relayed)
        if message.has(Attr.USE_CANDIDATE) and not self.controlling:
            pair.nominatedByPeer = True
            if pair.state == "succeeded":
                self._select(pair)
                return True
        if pair.state in ("waiting", "failed"):
            # Triggered check (RFC 8445 section 7.3.1.4).
            pair.state = "waiting"
            self._triggered.append(pair)
            self._nextCheck = min(self._nextCheck, self.now)
        return True

    # -- nomination and the end ---------------------------------------------------------

    def _maybeNominate(self) -> None:
        if not self.controlling or self.nominated is not None or self._firstSuccess is None:
            return
        valid = [p for p in self._pairs.values() if p.state == "succeeded"]
        if not valid:
            return
        best = max(valid, key=lambda p: p.priority)
        better = [
            p
            for p in self._pairs.values()
            if p.state in ("waiting", "in-progress") and p.priority > best.priority
        ]
        if better and self.now < self._firstSuccess + self.nominationDelay:
            return
        self.nominated = best
        self._start(best, nominating=True)

    def _maybeGiveUp(self) -> None:
        if self.done or not self._pairs:
            if not self._pairs and not self.done and self.now - self._started >= self.timeout:
                self.failure = "no remote candidates"
            return
        # The controlled side may still hear a check from an address it
        # does not know yet (peer-reflexive): it waits for the timeout.
        if self.controlling and all(p.state == "failed" for p in self._pairs.values()):
            self.failure = "every candidate pair failed"
