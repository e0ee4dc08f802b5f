"""Whole RELOAD messages: forwarding header, contents, security block.

RFC 6940 section 6.3: a message is a :class:`~reload.wire.header.ForwardingHeader`
(section 6.3.2), :class:`MessageContents` (section 6.3.3: the message code,
the body as bytes, extensions) and a
:class:`~reload.wire.security_block.SecurityBlock` (section 6.3.4).

The body stays bytes inside :class:`MessageContents`: the signature covers
the encoded contents, and who decodes the body (transport, storage, a
topology plug-in) depends on the code.  :func:`decode_body` turns a body into
its structure through a registry of body classes keyed by their ``CODE``;
the registry here holds the storage bodies and :class:`ErrorResponse`, and
:mod:`reload.wire.registry` adds the bodies of the other methods.
"""

from __future__ import annotations

import inspect
import struct
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Protocol, Self

from reload.wire.base import SLOTTED, WireStruct, constructor
from reload.wire.buffer import Buffer, Reader
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.header import DEFAULT_MAX_MESSAGE_SIZE, ForwardingHeader, HeaderView
from reload.wire.security_block import (
    SecurityBlock,
    SignerIdentity,
    message_signature_input,
    read_security_block_at,
)
from reload.wire.storage import DEFAULT_NODE_ID_LENGTH, STORAGE_BODIES, DataModel

__all__ = [
    "BODY_CLASSES",
    "Body",
    "ErrorCode",
    "ErrorResponse",
    "Message",
    "MessageCode",
    "MessageContents",
    "MessageExtension",
    "UnknownCriticalExtension",
    "UnknownMessageCode",
    "answer_code",
    "body_class",
    "build_registry",
    "decode_body",
    "is_request",
]

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_CODE_LENGTH = struct.Struct("!HI")  # message_code, message_body length
_EXTENSION_HEAD = struct.Struct("!HBI")  # type, critical, contents length


class MessageCode(IntEnum):
    """Section 14.8 message codes.  Requests are odd, each answer is its
    request plus one (section 6.3.3); 0x8000-0xFFFE are reserved."""

    PROBE_REQ = 0x01
    PROBE_ANS = 0x02
    ATTACH_REQ = 0x03
    ATTACH_ANS = 0x04
    STORE_REQ = 0x07
    STORE_ANS = 0x08
    FETCH_REQ = 0x09
    FETCH_ANS = 0x0A
    FIND_REQ = 0x0D
    FIND_ANS = 0x0E
    JOIN_REQ = 0x0F
    JOIN_ANS = 0x10
    LEAVE_REQ = 0x11
    LEAVE_ANS = 0x12
    UPDATE_REQ = 0x13
    UPDATE_ANS = 0x14
    ROUTE_QUERY_REQ = 0x15
    ROUTE_QUERY_ANS = 0x16
    PING_REQ = 0x17
    PING_ANS = 0x18
    STAT_REQ = 0x19
    STAT_ANS = 0x1A
    APP_ATTACH_REQ = 0x1D
    APP_ATTACH_ANS = 0x1E
    CONFIG_UPDATE_REQ = 0x21
    CONFIG_UPDATE_ANS = 0x22
    EXP_A_REQ = 0x23
    EXP_A_ANS = 0x24
    EXP_B_REQ = 0x25
    EXP_B_ANS = 0x26
    ERROR = 0xFFFF


def is_request(code: int) -> bool:
    """Section 6.3.3: requests are the odd codes of 0x1-0x7FFF."""
    return 0 < code < 0x8000 and code & 1 == 1


def answer_code(request_code: int) -> int:
    """Section 6.3.3: "the corresponding response being the request code
    plus 1"."""
    if not is_request(request_code):
        raise ValueError(f"{request_code:#x} is not a request code")
    code = request_code + 1
    return _MESSAGE_CODES.get(code, code)


class ErrorCode(IntEnum):
    """Section 14.9 error codes (meanings in section 6.3.3.1)."""

    FORBIDDEN = 0x02
    NOT_FOUND = 0x03
    REQUEST_TIMEOUT = 0x04
    GENERATION_COUNTER_TOO_LOW = 0x05
    INCOMPATIBLE_WITH_OVERLAY = 0x06
    UNSUPPORTED_FORWARDING_OPTION = 0x07
    DATA_TOO_LARGE = 0x08
    DATA_TOO_OLD = 0x09
    TTL_EXCEEDED = 0x0A
    MESSAGE_TOO_LARGE = 0x0B
    UNKNOWN_KIND = 0x0C
    UNKNOWN_EXTENSION = 0x0D
    RESPONSE_TOO_LARGE = 0x0E
    CONFIG_TOO_OLD = 0x0F
    CONFIG_TOO_NEW = 0x10
    IN_PROGRESS = 0x11
    EXP_A = 0x12
    EXP_B = 0x13
    INVALID_MESSAGE = 0x14


_MESSAGE_CODES = {c.value: c for c in MessageCode}
_ERROR_CODES = {c.value: c for c in ErrorCode}


class UnknownCriticalExtension(DecodeError):
    """A message carries a critical extension this node does not understand;
    section 6.3.3: the node "MUST generate an Error_Unknown_Extension
    error".  ``extension_type`` says which."""

    def __init__(self, extension_type: int, path: str = "MessageContents.extensions") -> None:
        self.extension_type = extension_type
        super().__init__(path, f"critical extension type {extension_type:#06x} is not understood")

    def within(self, outer: str) -> UnknownCriticalExtension:
        return UnknownCriticalExtension(self.extension_type, f"{outer}.{self.path}")


class UnknownMessageCode(DecodeError):
    """No body class is registered for ``code``."""

    def __init__(self, code: int, path: str = "MessageContents.message_code") -> None:
        self.code = code
        super().__init__(path, f"no body is known for message code {code:#06x}")

    def within(self, outer: str) -> UnknownMessageCode:
        return UnknownMessageCode(self.code, f"{outer}.{self.path}")


# -- error response (section 6.3.3.1) -----------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class ErrorResponse(WireStruct):
    """Section 6.3.3.1: the body of every message with code 0xFFFF.

    ``error_info`` is UTF-8 text unless the error defines it otherwise
    (Error_Unknown_Kind: :class:`~reload.wire.storage.UnknownKindsInfo`;
    Error_Generation_Counter_Too_Low: a :class:`~reload.wire.storage.StoreAns`).
    Codes this module has no name for are kept as integers; 0 is invalid.
    """

    error_code: int
    error_info: bytes = b""

    def __init__(self, error_code: int, error_info: bytes = b"") -> None:
        object.__setattr__(self, "error_code", error_code)
        object.__setattr__(self, "error_info", error_info)

    @classmethod
    def with_text(cls, error_code: int, text: str) -> Self:
        return cls(error_code, text.encode("utf-8"))

    @property
    def text(self) -> str:
        """``error_info`` read as UTF-8 (undecodable bytes replaced)."""
        return self.error_info.decode("utf-8", "replace")

    def encode(self) -> bytes:
        code, info = self.error_code, self.error_info
        if not 1 <= code <= 0xFFFF:
            raise EncodeError(f"error code out of range: {code}")
        if len(info) > 0xFFFF:
            raise EncodeError(f"error_info of {len(info)} bytes does not fit 2^16-1")
        return _U16.pack(code) + _U16.pack(len(info)) + info

    @classmethod
    def read(cls, r: Reader) -> Self:
        code = r.u16("error_code")
        if code == 0:
            raise r.error("error_code", "invalid error code 0")
        return cls(_ERROR_CODES.get(code, code), r.opaque(2, "error_info"))


ErrorResponse.CODE = MessageCode.ERROR


# -- message contents (section 6.3.3) -----------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class MessageExtension(WireStruct):
    """Section 6.3.3: an extension, carried opaquely.  No types are defined
    (section 14.14 registers only exp-ext, 1); 0 is invalid."""

    type: int
    critical: bool
    contents: bytes = b""

    def __init__(self, type: int, critical: bool, contents: bytes = b"") -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "critical", critical)
        object.__setattr__(self, "contents", contents)

    def encode(self) -> bytes:
        try:
            head = _EXTENSION_HEAD.pack(self.type, 1 if self.critical else 0, len(self.contents))
        except struct.error:
            raise EncodeError(
                f"extension type {self.type} or contents length out of range"
            ) from None
        if self.type == 0:
            raise EncodeError("extension type 0 is invalid")
        return head + self.contents

    @classmethod
    def read(cls, r: Reader) -> Self:
        extension_type = r.u16("type")
        if extension_type == 0:
            raise r.error("type", "invalid extension type 0")
        critical = r.boolean("critical")
        return cls(extension_type, critical, r.opaque(4, "extension_contents"))


class Body(Protocol):
    """What a message body structure offers: its code and its bytes."""

    CODE: ClassVar[int]

    def encode(self) -> bytes: ...


@dataclass(frozen=True, init=False, **SLOTTED)
class MessageContents(WireStruct):
    """Section 6.3.3: message code, body bytes and extensions.

    Extensions are kept whatever their type, so that a non-critical one this
    node does not understand survives decoding and re-encoding;
    :meth:`check_extensions` is the critical-extension rule.
    """

    message_code: int
    body: bytes
    extensions: tuple[MessageExtension, ...] = ()

    def __init__(
        self, message_code: int, body: bytes, extensions: tuple[MessageExtension, ...] = ()
    ) -> None:
        object.__setattr__(self, "message_code", message_code)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "extensions", extensions)

    @classmethod
    def of(cls, body: Body, extensions: Iterable[MessageExtension] = ()) -> Self:
        """The contents carrying ``body`` under its own code."""
        code = body.CODE
        return cls(_MESSAGE_CODES.get(code, code), body.encode(), tuple(extensions))

    @property
    def is_request(self) -> bool:
        return is_request(self.message_code)

    @property
    def is_error(self) -> bool:
        return self.message_code == MessageCode.ERROR

    def check_extensions(self, understood: Container[int]) -> None:
        """Raise :class:`UnknownCriticalExtension` for the first critical
        extension whose type is not in ``understood`` (section 6.3.3); the
        transport answers it with Error_Unknown_Extension.  Non-critical
        unknown extensions are allowed ("MAY choose to process the
        message")."""
        for index, extension in enumerate(self.extensions):
            if extension.critical and extension.type not in understood:
                raise UnknownCriticalExtension(
                    extension.type, f"MessageContents.extensions[{index}]"
                )

    def encode(self) -> bytes:
        code, body = self.message_code, self.body
        if not 1 <= code <= 0xFFFF:
            raise EncodeError(f"message code out of range: {code}")
        if len(body) > 0xFFFFFFFF:
            raise EncodeError(f"message body of {len(body)} bytes does not fit 2^32-1")
        if self.extensions:
            extensions = b"".join([e.encode() for e in self.extensions])
            if len(extensions) > 0xFFFFFFFF:
                raise EncodeError("extensions do not fit 2^32-1 bytes")
        else:
            extensions = b""
        return b"".join(
            (_CODE_LENGTH.pack(code, len(body)), body, _U32.pack(len(extensions)), extensions)
        )

    @classmethod
    def read(cls, r: Reader) -> Self:
        data = r.data if type(r.data) is bytes else bytes(r.data)
        try:
            contents, r.pos = _read_contents(data, r.pos, r.end)
        except DecodeError as exc:
            raise (exc.within(r.path) if r.path else exc) from None
        return contents  # type: ignore[return-value]


def _read_contents(data: bytes, pos: int, end: int) -> tuple[MessageContents, int]:
    if pos + 6 > end:
        if pos + 2 > end:
            raise DecodeError("message_code", f"needs 2 bytes, {max(end - pos, 0)} left")
        raise DecodeError("message_body", f"needs a 4-byte length, {end - pos - 2} left")
    code, length = _CODE_LENGTH.unpack_from(data, pos)
    if code == 0:
        raise DecodeError("message_code", "invalid message code 0")
    body_start = pos + 6
    body_end = body_start + length
    if body_end > end:
        raise DecodeError("message_body", f"{length} bytes announced, {end - body_start} left")
    if body_end + 4 > end:
        raise DecodeError("extensions", f"needs 4 bytes, {end - body_end} left")
    (ext_length,) = _U32.unpack_from(data, body_end)
    ext_start = body_end + 4
    ext_end = ext_start + ext_length
    if ext_end > end:
        raise DecodeError("extensions", f"{ext_length} bytes announced, {end - ext_start} left")
    body = data[body_start:body_end]
    if not ext_length:
        return _new_contents(_MESSAGE_CODES.get(code, code), body, ()), ext_end
    extensions: list[MessageExtension] = []
    r = Reader(data, ext_start, ext_end)
    while r.pos < ext_end:
        item = Reader(data, r.pos, ext_end, f"extensions[{len(extensions)}]")
        extensions.append(MessageExtension.read(item))
        r.pos = item.pos
    return _new_contents(_MESSAGE_CODES.get(code, code), body, tuple(extensions)), ext_end


_new_contents = constructor(MessageContents)


# -- message ------------------------------------------------------------------


@dataclass(frozen=True, init=False, **SLOTTED)
class Message:
    """Section 6.3: a whole (unfragmented) message.

    :meth:`encode` sets the header's length field to the real size;
    ``header.length`` of the dataclass is ignored there, and a decoded
    message carries the length it arrived with.
    """

    header: ForwardingHeader
    contents: MessageContents
    security_block: SecurityBlock

    def __init__(
        self, header: ForwardingHeader, contents: MessageContents, security_block: SecurityBlock
    ) -> None:
        object.__setattr__(self, "header", header)
        object.__setattr__(self, "contents", contents)
        object.__setattr__(self, "security_block", security_block)

    def encode(self) -> bytes:
        contents = self.contents.encode()
        security = self.security_block.encode()
        header = self.header.encode(len(contents) + len(security))
        return b"".join((header, contents, security))

    def signature_input(self, identity: SignerIdentity | None = None) -> bytes:
        """The bytes the message signature covers (section 6.3.4), for
        ``identity`` (default: the signer named in the security block)."""
        if identity is None:
            identity = self.security_block.signature.identity
        return message_signature_input(
            self.header.overlay, self.header.transaction_id, self.contents.encode(), identity
        )

    @classmethod
    def decode(
        cls,
        data: Buffer,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        view: HeaderView | None = None,
    ) -> Message:
        """Decode one whole message.

        The size is checked against ``max_message_size`` (the overlay's
        max-message-size, section 11.1) before anything else is looked at.
        A fragment (section 6.7) is refused: reassemble first.  ``view``
        is the :class:`HeaderView` a receiver already made of these very
        bytes (to route them), so the header is not scanned twice.
        """
        size = len(data)
        if size > max_message_size:
            raise DecodeError(
                "Message", f"{size} bytes exceed the maximum message size {max_message_size}"
            )
        if type(data) is not bytes:
            data = bytes(data)
        try:
            if view is None or view.data is not data:
                view = HeaderView(data, max_message_size)
            header, pos = _decode_header(data, max_message_size, view)
        except DecodeError as exc:
            path = exc.path.removeprefix("ForwardingHeader")
            raise DecodeError(f"Message.header{path}", exc.reason) from None
        if header.is_fragmented:
            raise DecodeError("Message.header.fragment", "is a fragment; reassemble it first")
        try:
            contents, pos = _read_contents(data, pos, size)
        except DecodeError as exc:
            raise exc.within("Message.contents") from None
        try:
            security_block, pos = read_security_block_at(data, pos, size)
        except DecodeError as exc:
            raise exc.within("Message.security_block") from None
        if pos != size:
            raise DecodeError("Message", f"{size - pos} unexpected trailing bytes")
        return _new_message(header, contents, security_block)


_new_message = constructor(Message)


_new_header = constructor(ForwardingHeader)


def _decode_header(
    data: bytes, max_message_size: int, view: HeaderView
) -> tuple[ForwardingHeader, int]:
    """:meth:`ForwardingHeader.decode_from`, reusing the destination list
    that ``view`` has already parsed when there are no forwarding options
    (the usual case; with options, decode_from does it all)."""
    if view.options_end != view.options_start:
        return ForwardingHeader.decode_from(data, max_message_size)
    header = _new_header(
        view.overlay,
        view.transaction_id,
        view.destinations,
        view.via_list if view.dest_start != view.via_start else (),
        (),
        view.configuration_sequence,
        view.ttl,
        view.fragment,
        view.length,
        view.max_response_length,
        view.version,
    )
    return header, view.options_end


# -- body registry ------------------------------------------------------------


def build_registry(classes: Iterable[type]) -> dict[int, type]:
    """Map each class's ``CODE`` to the class; a code claimed by two
    different classes is a programming error (ValueError)."""
    registry: dict[int, type] = {}
    for cls in classes:
        code = getattr(cls, "CODE", None)
        if not isinstance(code, int):
            raise TypeError(f"{cls.__name__} has no integer CODE")
        other = registry.get(code)
        if other is not None and other is not cls:
            raise ValueError(
                f"message code {code:#x} claimed by {other.__name__} and {cls.__name__}"
            )
        registry[code] = cls
    return registry


#: The bodies this module knows without importing the other method modules:
#: :class:`ErrorResponse` and the storage bodies (section 7.4).
BODY_CLASSES: dict[int, type] = build_registry((ErrorResponse, *STORAGE_BODIES))

_CONTEXT_PARAMETERS = ("models", "node_id_length")
_DECODE_PARAMETERS: dict[type, frozenset[str]] = {}


def _context_parameters(cls: type) -> frozenset[str]:
    """Which of ``models`` and ``node_id_length`` ``cls.decode`` takes."""
    wanted = _DECODE_PARAMETERS.get(cls)
    if wanted is None:
        parameters = inspect.signature(cls.decode).parameters  # type: ignore[attr-defined]
        wanted = frozenset(name for name in _CONTEXT_PARAMETERS if name in parameters)
        _DECODE_PARAMETERS[cls] = wanted
    return wanted


def body_class(code: int, registry: Mapping[int, type] = BODY_CLASSES) -> type:
    """The body class for ``code``; :class:`UnknownMessageCode` if none."""
    cls = registry.get(code)
    if cls is None:
        raise UnknownMessageCode(code)
    return cls


def decode_body(
    code: int,
    data: bytes,
    *,
    models: Mapping[int, DataModel] | None = None,
    node_id_length: int = DEFAULT_NODE_ID_LENGTH,
    registry: Mapping[int, type] = BODY_CLASSES,
) -> object:
    """Decode the message body ``data`` of a message with ``code``.

    Body classes whose ``decode`` takes ``models`` (the storage bodies that
    hold values or specifiers) get the Kind-ID -> data model mapping, and it
    is then required; those that take ``node_id_length`` get it.  Raises
    :class:`UnknownMessageCode` for a code without a body class, and
    :class:`DecodeError` (e.g. :class:`~reload.wire.storage.UnknownKind`)
    for a bad body.
    """
    cls = body_class(code, registry)
    wanted = _context_parameters(cls)
    if not wanted:
        return cls.decode(data)  # type: ignore[attr-defined]
    kwargs: dict[str, object] = {}
    if "models" in wanted:
        if models is None:
            raise TypeError(f"decoding a {cls.__name__} needs the data models of the Kinds")
        kwargs["models"] = models
    if "node_id_length" in wanted:
        kwargs["node_id_length"] = node_id_length
    return cls.decode(data, **kwargs)  # type: ignore[attr-defined]
