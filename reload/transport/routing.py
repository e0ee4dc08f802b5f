"""What to do with a message: deliver it here, forward it, answer it with
an Error, or drop it (RFC 6940 sections 6.1, 6.2, 6.3.2 and 13.6.5).

Sans-I/O: :meth:`Router.route` looks at a :class:`~reload.wire.header.HeaderView`
(the fixed header and the destination list; the body is never decoded) and
returns a decision; the transport acts on it.  The topology is consulted
through the ``nextHop`` callable, the connection table through
``isConnected``.

The rules, in the order they are applied:

1. Section 6.1: the overlay field of a received message must be this
   overlay's, else the message "MUST be discarded" and "the peer SHOULD
   generate an appropriate error": Error_Incompatible_with_Overlay (sent
   with the requester's overlay value, so that it gets back).
2. Section 6.3.2: a received TTL above initial-ttl: "MUST discard the
   message and send an Error_TTL_Exceeded error".
3. Section 13.6.5: "implementations SHOULD check the Destination List for
   duplicate entries and discard such records with an Error_Invalid_Message
   error".  Section 6.3.2.2: a Resource-ID "MUST appear only in the final
   location of a Destination List" (section 6.1.1: "If there are other
   entries, the message MUST be silently dropped").
4. Section 6.1.1, for the first destination entry:

   * this node's Node-ID: the entry is removed; the last one means the
     message is for this node;
   * the wildcard Node-ID (all ones): "consumed locally", never forwarded;
   * a Resource-ID this node is responsible for (``nextHop`` says None):
     for this node;
   * another Node-ID: forwarded to it when it is directly connected
     (section 6.1.2: "the peer MUST forward the message to that peer
     directly"), else to the topology's next hop; when the topology says
     this node is responsible, "the node MUST drop the message silently";
   * an opaque id (section 6.1.3): this node never compresses via lists,
     so it cannot be one of its own; dropped.

5. Forwarding a received message (section 6.1.2, 6.3.2): a TTL of 0
   "MUST NOT be propagated further, and an Error_TTL_Exceeded error should
   be generated".  A message whose via list already holds this node has
   been here before: a routing loop, answered with Error_Invalid_Message
   (the error section 13.6.5 gives for the duplicate-destination form of
   the same attack; the RFC gives none for this one).  An option with
   FORWARD_CRITICAL that this node does not understand (it understands
   none, section 6.3.2.3): Error_Unsupported_Forwarding_Option.
6. Delivering: an option with DESTINATION_CRITICAL likewise.

An Error decision (:class:`Reject`) is answered only for requests; the
transport drops a response it would reject.  :func:`responseDestinations`
is section 6.2.2 (and 6.1.2's last paragraph): the answer's destination
list is the previous hop followed by the reversed via list.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError
from reload.wire.header import (
    FRAGMENT_OFFSET_MASK,
    Destination,
    DestinationType,
    ForwardingFlags,
    ForwardingOption,
    HeaderView,
)
from reload.wire.message import ErrorCode, is_request

__all__ = [
    "Decision",
    "Deliver",
    "Drop",
    "Forward",
    "Reject",
    "Router",
    "forwardingOptions",
    "isWildcard",
    "readMessageCode",
    "responseDestinations",
    "wildcard",
]

_U16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Deliver:
    """The message is for this node.  ``pop`` leading destination entries
    named this node and were consumed."""

    pop: int = 0
    wildcard: bool = False


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the message on to the connected node ``nextHop``, after
    removing ``pop`` leading entries that named this node."""

    nextHop: bytes
    pop: int = 0


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer a request with an Error (a response is dropped)."""

    errorCode: int
    reason: str


@dataclass(frozen=True, slots=True)
class Drop:
    """Discard silently (logged)."""

    reason: str


Decision = Deliver | Forward | Reject | Drop


def wildcard(nodeIdLength: int) -> bytes:
    """The wildcard Node-ID: all ones (section 2, "Node-ID")."""
    return b"\xff" * nodeIdLength


def isWildcard(nodeId: bytes) -> bool:
    return bool(nodeId) and nodeId.count(0xFF) == len(nodeId)


def forwardingOptions(view: HeaderView) -> tuple[ForwardingOption, ...]:
    """The forwarding options of a message (section 6.3.2.3); usually none.
    Raises :class:`DecodeError` for options that do not parse."""
    if view.options_end == view.options_start:
        return ()
    r = Reader(view.data, view.options_start, view.options_end, "ForwardingHeader.options")
    options: list[ForwardingOption] = []
    while r.pos < r.end:
        options.append(ForwardingOption.read(r, f"[{len(options)}]"))
    return tuple(options)


def readMessageCode(view: HeaderView) -> int | None:
    """The message_code of a message from its raw bytes, without decoding
    the contents; None for a fragment other than the first, or when the
    bytes end too early."""
    if view.fragment & FRAGMENT_OFFSET_MASK:
        return None
    pos = view.body_offset
    if pos + 2 > len(view.data):
        return None
    code: int = _U16.unpack_from(view.data, pos)[0]
    return code


def isRequestView(view: HeaderView) -> bool:
    code = readMessageCode(view)
    return code is not None and is_request(code)


def responseDestinations(
    via: Iterable[Destination], previousHop: bytes | None
) -> tuple[Destination, ...]:
    """Section 6.2.2: the destination list of an answer, the via list
    reversed, after the node the request was received from (section 6.1.2:
    it "exits that node with a Destination List equal to the concatenation
    of the Node-ID of the node from which the request was received with
    the Via List")."""
    route = list(via)
    route.reverse()
    if previousHop is not None:
        route.insert(0, Destination.node(previousHop))
    return tuple(route)


class Router:
    """Routing decisions for one node.

    ``nextHop(id)`` is the topology's answer (section 6.1.2: the connected
    peer "most likely to be responsible", ``None`` when this node is);
    ``isConnected(nodeId)`` whether a link to that Node-ID is up.
    ``understoodOptions`` are the forwarding option types this node
    implements (RFC 6940 defines none).
    """

    def __init__(
        self,
        nodeId: bytes,
        overlay: int,
        *,
        nextHop: Callable[[bytes], bytes | None],
        isConnected: Callable[[bytes], bool],
        initialTtl: int = 100,
        understoodOptions: frozenset[int] = frozenset(),
    ) -> None:
        self.nodeId = nodeId
        self.overlay = overlay
        self.nextHop = nextHop
        self.isConnected = isConnected
        self.initialTtl = initialTtl
        self.understoodOptions = understoodOptions
        self._self = Destination.node(nodeId)

    def route(self, view: HeaderView, previousHop: bytes | None) -> Decision:
        """Decide for ``view``, received from the connected node
        ``previousHop``, or originated here when that is None."""
        received = previousHop is not None
        if received and view.overlay != self.overlay:
            return Reject(
                ErrorCode.INCOMPATIBLE_WITH_OVERLAY,
                f"overlay hash {view.overlay:#010x} is not this overlay's {self.overlay:#010x}",
            )
        if received and view.ttl > self.initialTtl:
            return Reject(
                ErrorCode.TTL_EXCEEDED,
                f"TTL {view.ttl} is above the initial-ttl {self.initialTtl} (section 6.3.2)",
            )
        destinations = view.destinations
        last = len(destinations) - 1
        if last and len(set(destinations)) != len(destinations):
            return Reject(
                ErrorCode.INVALID_MESSAGE,
                "the destination list has duplicate entries (section 13.6.5)",
            )
        for index, entry in enumerate(destinations):
            if entry.type == DestinationType.RESOURCE and index != last:
                return Drop("a Resource-ID that is not the last destination (section 6.1.1)")
        index = 0
        while True:
            entry = destinations[index]
            kind = entry.type
            if entry.compressed or kind == DestinationType.OPAQUE_ID:
                return Drop("an opaque destination this node did not make (section 6.1.3)")
            if kind == DestinationType.NODE:
                value = entry.value
                if value == self.nodeId:
                    if index == last:
                        return self._deliver(view, index, False)
                    index += 1
                    continue
                if isWildcard(value):
                    return self._deliver(view, index, True)
                hop = value if self.isConnected(value) else self.nextHop(value)
                if hop is None:
                    return Drop(
                        f"Node-ID {value.hex()} is in this node's range but not connected"
                        " (section 6.1.1)"
                    )
                return self._forward(view, hop, index, previousHop)
            if kind == DestinationType.RESOURCE:
                hop = self.nextHop(entry.value)
                if hop is None:
                    return self._deliver(view, index, False)
                return self._forward(view, hop, index, previousHop)
            return Reject(ErrorCode.INVALID_MESSAGE, f"unknown destination type {kind}")

    def _deliver(self, view: HeaderView, pop: int, isWildcard: bool) -> Decision:
        try:
            options = forwardingOptions(view)
        except DecodeError as exc:
            return Reject(ErrorCode.INVALID_MESSAGE, str(exc))
        for option in options:
            if (
                option.flags & ForwardingFlags.DESTINATION_CRITICAL
                and option.type not in self.understoodOptions
            ):
                return Reject(
                    ErrorCode.UNSUPPORTED_FORWARDING_OPTION,
                    f"forwarding option {option.type} is destination-critical (section 6.3.2.3)",
                )
        return Deliver(pop, isWildcard)

    def _forward(
        self, view: HeaderView, hop: bytes, pop: int, previousHop: bytes | None
    ) -> Decision:
        if hop == self.nodeId:
            return Drop("the topology routed the message to this node itself")
        if previousHop is not None:
            if view.ttl == 0:
                return Reject(ErrorCode.TTL_EXCEEDED, "the TTL reached 0 before the destination")
            # An answer follows the reversed via list of its request, which
            # holds this node twice when the request looped: only requests
            # are checked (else the Error for a loop is dropped on its way
            # back and the requester waits for its timeout).
            if self._self in view.via_list and isRequestView(view):
                return Reject(
                    ErrorCode.INVALID_MESSAGE,
                    "routing loop: this node is already in the via list",
                )
        try:
            options = forwardingOptions(view)
        except DecodeError as exc:
            return Reject(ErrorCode.INVALID_MESSAGE, str(exc))
        for option in options:
            if (
                option.flags & ForwardingFlags.FORWARD_CRITICAL
                and option.type not in self.understoodOptions
            ):
                return Reject(
                    ErrorCode.UNSUPPORTED_FORWARDING_OPTION,
                    f"forwarding option {option.type} is forward-critical (section 6.3.2.3)",
                )
        return Forward(hop, pop)

    def forwarded(
        self, view: HeaderView, decision: Forward, previousHop: Destination | bytes | None
    ) -> bytes:
        """The bytes to send for a :class:`Forward` decision.

        Received messages (``previousHop`` given: the Destination of the node
        it came from, or its encoding) get it appended to the via list
        (section 6.1.2) and their TTL decremented "just before transmission"
        (section 6.3.2); originated ones keep their initial TTL.
        """
        if previousHop is None:
            if not decision.pop:
                return view.data
            return view.forward(None, decision.pop, view.ttl)
        return view.forward(previousHop, decision.pop)
