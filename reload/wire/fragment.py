"""Fragmentation and reassembly of RELOAD messages (RFC 6940 section 6.7).

Sans-I/O: :func:`fragment` turns one encoded message into the datagrams to
send, :class:`Reassembler` turns received fragments back into one message;
time is a parameter, no clock is read here.

What section 6.7 (with the ``fragment`` and ``length`` fields of section
6.3.2) says, and how it is read here:

* Every fragment carries a full copy of the forwarding header: the fixed
  part, the Via List, the Destination List and the forwarding options.
  Only "the data after the forwarding header" (the MessageContents, the
  SecurityBlock) is cut into chunks.
* The fragment offset is "the number of bytes between the end of the
  forwarding header and the start of the data": it counts bytes of the
  message *after* the forwarding header, so it does not depend on the
  header size, which differs from fragment to fragment as the Via List
  grows.  The first fragment has offset 0.
* ``length`` is the size of the fragment itself ("after fragmentation").
* The last fragment has the 0x40000000 bit; the 0x80000000 bit is always
  set; the six reserved bits are written as zero and ignored on receipt.
  An unfragmented message is offset 0 with the last bit (0xC0000000).
* Each fragment MUST carry at least 256 bytes of body; if the header leaves
  less room than that, RELOAD fragmentation is not performed (IP
  fragmentation is left to happen).  Fragments SHOULD be of equal size and
  no larger than the path MTU minus 32 bytes, room for the Via List to grow.
* Any node on the path may fragment, so a fragment may be fragmented again:
  its pieces keep the offsets relative to the whole message and only the
  last piece of a last fragment is marked last.
* Only the final destination reassembles, keyed by the transaction id
  (section 6.3.2: "Transaction IDs are also used for fragment
  reassembly").  Incomplete messages are timed out after the maximum
  request lifetime, 15 seconds, and a receiver out of buffer space MUST
  drop the message.
"""

from __future__ import annotations

import struct

from reload.wire.errors import DecodeError, EncodeError
from reload.wire.header import (
    DEFAULT_MAX_MESSAGE_SIZE,
    FRAGMENT_HIGH_BIT,
    FRAGMENT_OFFSET_MASK,
    LAST_FRAGMENT,
    LENGTH_FIELD_OFFSET,
    HeaderView,
)

__all__ = [
    "DEFAULT_MAX_REASSEMBLIES",
    "DEFAULT_REASSEMBLY_TIMEOUT",
    "FRAGMENT_HEADROOM",
    "MIN_FRAGMENT_BODY",
    "UNFRAGMENTED",
    "Reassembler",
    "fragment",
]

#: Section 6.7: fragments are no larger than the PMTU minus 32 bytes.
FRAGMENT_HEADROOM = 32
#: Section 6.7: each fragment MUST contain at least 256 bytes of the body.
MIN_FRAGMENT_BODY = 256
#: Section 6.7: time out incomplete fragments after the maximum request
#: lifetime (15 seconds).
DEFAULT_REASSEMBLY_TIMEOUT = 15.0
#: Concurrent partial messages kept by default.
DEFAULT_MAX_REASSEMBLIES = 64
#: The fragment field of a whole message (section 6.7).
UNFRAGMENTED = FRAGMENT_HIGH_BIT | LAST_FRAGMENT

# ``fragment`` is the uint32 just before ``length`` in the fixed header
# (section 6.3.2): both are rewritten in each fragment with one pack.
_FRAGMENT_FIELD_OFFSET = LENGTH_FIELD_OFFSET - 4
_FRAGMENT_AND_LENGTH = struct.Struct("!II")
_AFTER_LENGTH = LENGTH_FIELD_OFFSET + 4


def _with_fragment_field(header: bytes, fragment_field: int, length: int) -> bytes:
    """``header`` with its fragment and length fields replaced."""
    return (
        header[:_FRAGMENT_FIELD_OFFSET]
        + _FRAGMENT_AND_LENGTH.pack(fragment_field, length)
        + header[_AFTER_LENGTH:]
    )


def fragment(message: bytes, mtu: int) -> list[bytes]:
    """Split an encoded message (or a fragment) for a link of path MTU ``mtu``.

    ``mtu`` is the largest RELOAD message the next link carries in one
    datagram.  A message that fits is returned alone and unchanged.
    Otherwise it is cut into the fewest equal-sized fragments of at most
    ``mtu - 32`` bytes, each with at least 256 bytes of body; when that is
    impossible (the forwarding header leaves less room, or the body is too
    short to give every fragment 256 bytes) the message is returned
    unchanged too, as section 6.7 prescribes.

    Raises :class:`DecodeError` if ``message`` is not a RELOAD message and
    :class:`EncodeError` if an offset would not fit the 24-bit field.
    """
    if mtu <= 0:
        raise ValueError(f"mtu must be positive, got {mtu}")
    size = len(message)
    if size <= mtu:
        return [message]
    view = HeaderView(message, max_message_size=size)
    header_len = view.body_offset
    header = message[:header_len]
    body_len = size - header_len
    room = mtu - FRAGMENT_HEADROOM - header_len
    if room < MIN_FRAGMENT_BODY:
        return [message]
    count = -(-body_len // room)
    if count * MIN_FRAGMENT_BODY > body_len:
        return [message]
    base = view.fragment & FRAGMENT_OFFSET_MASK
    if base + body_len - body_len // count > FRAGMENT_OFFSET_MASK:
        raise EncodeError(f"fragment offsets up to {base + body_len} do not fit 24 bits")
    was_last = view.fragment & LAST_FRAGMENT
    chunk, bigger = divmod(body_len, count)
    out = []
    start = 0
    for index in range(count):
        n = chunk + 1 if index < bigger else chunk
        flags = FRAGMENT_HIGH_BIT | (was_last if index == count - 1 else 0)
        head = _with_fragment_field(header, flags | (base + start), header_len + n)
        out.append(head + message[header_len + start : header_len + start + n])
        start += n
    return out


class _Partial:
    """The fragments of one message received so far."""

    __slots__ = (
        "body",
        "configuration_sequence",
        "created",
        "header",
        "max_response_length",
        "ranges",
        "total",
    )

    def __init__(self, created: float, configuration_sequence: int, max_response_length: int):
        self.created = created
        self.configuration_sequence = configuration_sequence
        self.max_response_length = max_response_length
        # The forwarding header of the offset-0 fragment, once it arrived.
        self.header: bytes | None = None
        # Body bytes at their offsets; only the ``ranges`` parts are valid.
        self.body = bytearray()
        # Received [start, end) body ranges: sorted, disjoint, not adjacent.
        self.ranges: list[tuple[int, int]] = []
        # Body size, known once the last fragment arrived.
        self.total: int | None = None

    @property
    def size(self) -> int:
        """Bytes held, for the memory bound."""
        return len(self.body) + (len(self.header) if self.header is not None else 0)


class Reassembler:
    """Collects fragments (section 6.7) until a message is complete.

    :meth:`feed` returns the reassembled message (an unfragmented message
    comes back at once, untouched) or None while fragments are missing.
    Fragments of one message are matched by overlay and transaction id only:
    the Via List is not part of the key because fragments of one message
    may legitimately arrive with different Via Lists (another route, or a
    peer that keeps per-transaction state or compresses the list, section
    6.1.2).  The reassembled message keeps the forwarding header of its
    offset-0 fragment with the fragment field 0xC0000000 and the length of
    the whole.

    Memory is bounded whatever arrives: at most ``max_reassemblies``
    partial messages, each at most ``max_message_size`` bytes of body
    and header in at most ``max_fragments`` disjoint pieces.  A new message
    beyond ``max_reassemblies`` drops the oldest partial one (the one
    closest to its timeout); partial messages older than ``timeout`` seconds
    are dropped.  Duplicate and overlapping fragments are accepted when
    their bytes agree.  A fragment that contradicts earlier ones (different
    bytes for the same offsets, a second end, data past the end,
    different configuration sequence or max_response_length) or makes the
    message larger than ``max_message_size`` raises :class:`DecodeError` and
    drops the whole message.
    """

    __slots__ = (
        "_partials",
        "evicted",
        "expired",
        "max_fragments",
        "max_message_size",
        "max_reassemblies",
        "timeout",
    )

    def __init__(
        self,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_reassemblies: int = DEFAULT_MAX_REASSEMBLIES,
        timeout: float = DEFAULT_REASSEMBLY_TIMEOUT,
        max_fragments: int | None = None,
    ) -> None:
        if max_reassemblies < 1 or max_message_size < 1 or timeout <= 0:
            raise ValueError("max_reassemblies, max_message_size and timeout must be positive")
        self.max_message_size = max_message_size
        self.max_reassemblies = max_reassemblies
        # A sender obeying the 256-byte minimum never needs more pieces than this.
        self.max_fragments = (
            max(64, max_message_size // MIN_FRAGMENT_BODY + 1)
            if max_fragments is None
            else max_fragments
        )
        self.timeout = timeout
        # Insertion order is creation order: the first entry expires first.
        self._partials: dict[tuple[int, int], _Partial] = {}
        #: Partial messages dropped for their age, and to make room.
        self.expired = 0
        self.evicted = 0

    def __len__(self) -> int:
        """Partial messages held."""
        return len(self._partials)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held in partial messages."""
        return sum(p.size for p in self._partials.values())

    def next_expiry(self) -> float | None:
        """When the oldest partial message times out (for the caller's timer)."""
        for partial in self._partials.values():
            return partial.created + self.timeout
        return None

    def expire(self, now: float) -> int:
        """Drop partial messages older than the timeout; return how many."""
        partials = self._partials
        dropped = 0
        limit = now - self.timeout
        while partials:
            key = next(iter(partials))
            if partials[key].created > limit:
                break
            del partials[key]
            dropped += 1
        self.expired += dropped
        return dropped

    def feed(self, data: bytes, now: float) -> bytes | None:
        """Take one received fragment; return the whole message when complete."""
        self.expire(now)
        view = HeaderView(data, self.max_message_size)
        field = view.fragment
        offset = field & FRAGMENT_OFFSET_MASK
        last = bool(field & LAST_FRAGMENT)
        if offset == 0 and last:
            return data
        key = (view.overlay, view.transaction_id)
        partial = self._partials.get(key)
        header_len = view.body_offset
        end = offset + len(data) - header_len
        try:
            if header_len + end > self.max_message_size:
                raise DecodeError(
                    "Fragment.offset",
                    f"offset {offset} puts the message past the maximum size "
                    f"{self.max_message_size}",
                )
            if partial is None:
                partial = self._new_partial(key, now, view)
            done = self._add(partial, view, data, offset, end, last)
        except DecodeError:
            self._partials.pop(key, None)
            raise
        if done is not None:
            del self._partials[key]
        return done

    def _new_partial(self, key: tuple[int, int], now: float, view: HeaderView) -> _Partial:
        partials = self._partials
        while len(partials) >= self.max_reassemblies:
            # Out of buffer space: section 6.7 says drop a message; the
            # oldest is the one nearest to timing out anyway.
            del partials[next(iter(partials))]
            self.evicted += 1
        partial = _Partial(now, view.configuration_sequence, view.max_response_length)
        partials[key] = partial
        return partial

    def _add(
        self, p: _Partial, view: HeaderView, data: bytes, offset: int, end: int, last: bool
    ) -> bytes | None:
        if view.configuration_sequence != p.configuration_sequence:
            raise DecodeError(
                "Fragment.configuration_sequence", "differs from earlier fragments of the message"
            )
        if view.max_response_length != p.max_response_length:
            raise DecodeError(
                "Fragment.max_response_length", "differs from earlier fragments of the message"
            )
        ranges = p.ranges
        if last:
            if p.total is not None and p.total != end:
                raise DecodeError(
                    "Fragment.fragment", f"a second last fragment ends at {end}, not {p.total}"
                )
            if ranges and ranges[-1][1] > end:
                raise DecodeError(
                    "Fragment.fragment", f"last fragment ends at {end} but data reaches further"
                )
            p.total = end
        elif p.total is not None and end > p.total:
            raise DecodeError("Fragment.offset", f"data up to {end} is past the end {p.total}")
        header_len = view.body_offset
        chunk = data[header_len:]
        body = p.body
        # Bytes received twice must agree (duplicates, overlapping re-fragments).
        for a, b in ranges:
            if a >= end:
                break
            if b > offset:
                lo, hi = max(a, offset), min(b, end)
                if body[lo:hi] != chunk[lo - offset : hi - offset]:
                    raise DecodeError(
                        "Fragment.data", f"bytes {lo}..{hi} differ from an earlier fragment"
                    )
        if end > offset:
            if len(body) < end:
                body.extend(bytes(end - len(body)))
            body[offset:end] = chunk
            p.ranges = ranges = _merge(ranges, offset, end)
            if len(ranges) > self.max_fragments:
                raise DecodeError(
                    "Fragment", f"more than {self.max_fragments} separate pieces of one message"
                )
        if offset == 0 and p.header is None:
            p.header = data[:header_len]
        if p.total is None or p.header is None or ranges != [(0, p.total)]:
            return None
        whole = len(p.header) + p.total
        if whole > self.max_message_size:
            raise DecodeError(
                "Fragment.length",
                f"reassembled message of {whole} bytes exceeds the maximum {self.max_message_size}",
            )
        return _with_fragment_field(p.header, UNFRAGMENTED, whole) + bytes(body[: p.total])


def _merge(ranges: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """Insert [start, end) into sorted disjoint ranges, joining what touches."""
    out: list[tuple[int, int]] = []
    placed = False
    for a, b in ranges:
        if b < start:
            out.append((a, b))
        elif a > end:
            if not placed:
                out.append((start, end))
                placed = True
            out.append((a, b))
        else:
            start, end = min(start, a), max(end, b)
    if not placed:
        out.append((start, end))
    return out
