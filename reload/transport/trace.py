"""The message trace (``twistd reload --trace-messages``): one structured
``twisted.logger`` event per message a node sends, receives or forwards.

Only the forwarding header and the message code are read (the bytes are
re-read here, never the body), so tracing costs nothing when it is off
beyond the one check the transport makes before calling :func:`traceMessage`.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from reload.wire.errors import DecodeError
from reload.wire.header import FIXED_HEADER_SIZE, RELO_TOKEN, Destination, HeaderView
from reload.wire.message import MessageCode

__all__ = ["MessageObserver", "messageCodes", "traceMessage"]

_CODE = struct.Struct("!H")
_log = Logger(namespace="reload.trace")


class MessageObserver(Protocol):
    """Told of the messages a transport handles (the admin API's metrics
    count them; :mod:`reload.admin.metrics`)."""

    def message(self, direction: str, data: bytes) -> None:
        """``data`` was "sent", "received" or "forwarded"."""

    def request(self, code: int, answer: Deferred[Any]) -> None:
        """This node sent a request with message code ``code``; ``answer``
        fires with its answer or fails (the observer must pass both on)."""


#: The fixed part of the forwarding header (RFC 6940 section 6.3.2) as far
#: as it is read here: relo_token, the message length (after overlay,
#: configuration_sequence, version, ttl and fragment), then, after
#: transaction_id and max_response_length, via_list_length,
#: destination_list_length and options_length.
_LENGTHS = struct.Struct("!I12xI12xHHH")
_CONTENTS = struct.Struct("!HIH")


def messageCodes(data: bytes) -> tuple[int, int | None] | None:
    """The message code of ``data`` and, for an Error, its error code
    (RFC 6940 section 6.3.3: message_code, then the body's length, then for
    an ErrorResponse its error_code first); None when ``data`` is not a
    RELOAD message.

    Called for every message a peer sends, receives or forwards (the
    metrics count them), so it reads only the relo_token and the three list
    lengths of the forwarding header (section 6.3.2) to find where
    MessageContents begins, with one struct unpack each, instead of
    decoding the header's destination list."""
    try:
        token, length, via, destinations, options = _LENGTHS.unpack_from(data, 0)
        if token != RELO_TOKEN or length != len(data):
            return None
        start = FIXED_HEADER_SIZE + via + destinations + options
        if len(data) < start + 2:
            return None
        (code,) = _CODE.unpack_from(data, start)
        if code != int(MessageCode.ERROR):
            return code, None
        _, bodyLength, errorCode = _CONTENTS.unpack_from(data, start)
        if bodyLength < 2:
            return code, None
    except struct.error:
        return None
    return code, errorCode


def _name(code: int) -> str:
    try:
        return MessageCode(code).name.lower()
    except ValueError:
        return f"code_{code:#06x}"


def _describe(destination: Destination) -> str:
    return destination.value.hex()


def traceMessage(direction: str, data: bytes, link: Any, nodeId: bytes | None) -> None:
    """Log ``data`` going ``direction`` ("sent", "received", "forwarded")
    over ``link`` to or from ``nodeId``."""
    try:
        view = HeaderView(data, max(len(data), 38))
        (code,) = _CODE.unpack_from(data, view.body_offset)
        via = view.via_list
    except (DecodeError, struct.error):
        _log.info(
            "{direction} {size} bytes that are not a RELOAD message, link {link}",
            direction=direction, size=len(data), link=_linkName(link, nodeId),
        )  # fmt: skip
        return
    _log.info(
        "{direction} {method} tid={transactionId:016x} from {source} to {destination} "
        "via {viaLength} size {size} link {link}",
        direction=direction,
        method=_name(code),
        messageCode=code,
        transactionId=view.transaction_id,
        source=_source(direction, via, nodeId),
        destination=_describe(view.destinations[0]),
        viaLength=len(via),
        size=len(data),
        link=_linkName(link, nodeId),
        ttl=view.ttl,
    )


def _source(direction: str, via: tuple[Destination, ...], nodeId: bytes | None) -> str:
    """Who sent the message: the first via-list entry (section 6.1.2); with
    none, the link's peer for a received message, this node for its own."""
    if via:
        return _describe(via[0])
    if direction == "received" and nodeId is not None:
        return nodeId.hex()
    return "local"


def _linkName(link: Any, nodeId: bytes | None) -> str:
    kind = type(link).__name__.removesuffix("Link").lower() or "link"
    return f"{kind}:{nodeId.hex() if nodeId else '?'}"
