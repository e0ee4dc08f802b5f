"""Whole messages, message contents, extensions, error responses and the
body registry (RFC 6940 sections 6.3, 6.3.3, 6.3.3.1, 14.8, 14.9)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given

from reload.wire import registry
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.header import Destination, ForwardingHeader, ForwardingOption
from reload.wire.message import (
    BODY_CLASSES,
    ErrorCode,
    ErrorResponse,
    Message,
    MessageCode,
    MessageContents,
    MessageExtension,
    UnknownCriticalExtension,
    UnknownMessageCode,
    answer_code,
    body_class,
    build_registry,
    decode_body,
    is_request,
)
from reload.wire.security_block import (
    RSA_SHA256,
    CertificateType,
    GenericCertificate,
    SecurityBlock,
    Signature,
    SignerIdentity,
    message_signature_input,
)
from reload.wire.storage import (
    STORAGE_BODIES,
    DataModel,
    FetchReq,
    FindReq,
    StoredDataSpecifier,
    UnknownKind,
    UnknownKindsInfo,
)
from tests.wire import strategies_message as s
from tests.wire.fuzzing import fuzz_decoder, mutate
from tests.wire.test_security_block import CERT, SECURITY_BLOCK

RESOURCE = bytes(range(0x10, 0x20))

#: Section 6.3, worked by hand: a FindReq for Kind 0x10 at a Resource-ID,
#: routed to that Resource-ID, signed by the holder of one certificate.
MESSAGE = (
    bytes.fromhex(
        # ForwardingHeader (section 6.3.2)
        "d2454c4f"  # relo_token: "RELO" with the high bit set
        "4e38fc3f"  # overlay: low 32 bits of SHA-1("example.org")
        "0007"  # configuration_sequence
        "0a"  # version: 1.0
        "64"  # ttl: 100
        "c0000000"  # fragment: high bit, last fragment, offset 0 (whole message)
        "00000093"  # length: 147 bytes in all
        "0102030405060708"  # transaction_id
        "00000000"  # max_response_length: no limit
        "0000"  # via_list_length
        "0013"  # destination_list_length: 19
        "0000"  # options_length
        "02"  # Destination.type: resource
        "11"  # Destination.length: 17
        "10"
        + RESOURCE.hex()  # ResourceId<0..2^8-1>
        +
        # MessageContents (section 6.3.3)
        "000d"  # message_code: find_req
        "00000016"  # message_body<0..2^32-1>: 22 bytes
        "10"
        + RESOURCE.hex()  # FindReq.resource
        + "04"
        "00000010"  # FindReq.kinds<0..2^8-1>: Kind 0x10
        "00000000"  # extensions<0..2^32-1>: none
    )
    + SECURITY_BLOCK
)  # SecurityBlock (section 6.3.4): one certificate, a signature
FIND_REQ = FindReq(RESOURCE, (0x10,))
HEADER = ForwardingHeader(
    overlay=0x4E38FC3F,
    transaction_id=0x0102030405060708,
    destination_list=(Destination.resource(RESOURCE),),
    configuration_sequence=7,
)
SIGNATURE = Signature(RSA_SHA256, SignerIdentity.for_certificate(CERT), b"Z" * 8)
SECURITY = SecurityBlock((GenericCertificate(CertificateType.X509, CERT),), SIGNATURE)
MESSAGE_VALUE = Message(HEADER, MessageContents.of(FIND_REQ), SECURITY)
MODELS = {0x10: DataModel.ARRAY}

#: Section 6.3.3.1, worked by hand: Error_Unknown_Kind, whose error_info is
#: the list of unknown Kinds (section 7.4.1.2).
ERROR_UNKNOWN_KIND = bytes.fromhex(
    "000c"  # error_code: Error_Unknown_Kind
    "0009"  # error_info<0..2^16-1>: 9 bytes
    "08"  # unknown_kinds<0..2^8-1>: 8 bytes
    "00000063"  # Kind-ID 99
    "f0000002"  # Kind-ID 0xf0000002
)

#: Section 6.3.3, worked by hand: a ping_req whose contents carry one
#: non-critical extension of a type nobody has registered.
CONTENTS_WITH_EXTENSION = bytes.fromhex(
    "0017"  # message_code: ping_req
    "00000002"
    "0000"  # message_body: PingReq with no padding
    "0000000b"  # extensions<0..2^32-1>: 11 bytes
    "7777"  # MessageExtension.type
    "00"  # critical: False
    "00000004"
    "01020304"  # extension_contents<0..2^32-1>
)


def test_message_encodes_byte_exact_section_6_3() -> None:
    assert MESSAGE_VALUE.encode() == MESSAGE
    decoded = Message.decode(MESSAGE)
    assert decoded == dataclasses.replace(
        MESSAGE_VALUE, header=dataclasses.replace(HEADER, length=len(MESSAGE))
    )
    assert decode_body(decoded.contents.message_code, decoded.contents.body) == FIND_REQ


def test_error_response_encodes_byte_exact_section_6_3_3_1() -> None:
    error = ErrorResponse(ErrorCode.UNKNOWN_KIND, UnknownKindsInfo((99, 0xF0000002)).encode())
    assert error.encode() == ERROR_UNKNOWN_KIND
    decoded = ErrorResponse.decode(ERROR_UNKNOWN_KIND)
    assert decoded == error
    assert decoded.error_code == ErrorCode.UNKNOWN_KIND
    assert UnknownKindsInfo.decode(decoded.error_info).kinds == (99, 0xF0000002)
    assert decode_body(MessageCode.ERROR, ERROR_UNKNOWN_KIND) == error


def test_error_response_text_is_utf8_section_6_3_3_1() -> None:
    error = ErrorResponse.with_text(ErrorCode.NOT_FOUND, "no such résource")
    assert error.encode() == bytes.fromhex("00030011") + "no such résource".encode()
    assert ErrorResponse.decode(error.encode()).text == "no such résource"
    assert ErrorResponse(ErrorCode.INVALID_MESSAGE, b"\xff").text == "\ufffd"


def test_error_code_zero_is_invalid_and_unknown_codes_are_kept_section_14_9() -> None:
    with pytest.raises(DecodeError) as info:
        ErrorResponse.decode(bytes.fromhex("00000000"))
    assert info.value.path == "ErrorResponse.error_code"
    assert ErrorResponse.decode(bytes.fromhex("80010000")) == ErrorResponse(0x8001)
    with pytest.raises(EncodeError):
        ErrorResponse(0).encode()
    with pytest.raises(EncodeError):
        ErrorResponse(2, bytes(0x10000)).encode()


def test_message_codes_are_the_registry_of_section_14_8() -> None:
    expected = {
        "PROBE": 0x01, "ATTACH": 0x03, "STORE": 0x07, "FETCH": 0x09, "FIND": 0x0D,
        "JOIN": 0x0F, "LEAVE": 0x11, "UPDATE": 0x13, "ROUTE_QUERY": 0x15, "PING": 0x17,
        "STAT": 0x19, "APP_ATTACH": 0x1D, "CONFIG_UPDATE": 0x21, "EXP_A": 0x23, "EXP_B": 0x25,
    }  # fmt: skip
    codes = {c.name: c.value for c in MessageCode}
    for name, request in expected.items():
        assert codes.pop(f"{name}_REQ") == request
        assert codes.pop(f"{name}_ANS") == request + 1
        assert is_request(request) and not is_request(request + 1)
        assert answer_code(request) == MessageCode[f"{name}_ANS"]
    assert codes == {"ERROR": 0xFFFF}
    assert not is_request(0xFFFF) and not is_request(0) and not is_request(0x8001)
    with pytest.raises(ValueError):
        answer_code(MessageCode.PING_ANS)


def test_error_codes_are_the_registry_of_section_14_9() -> None:
    names = [
        "FORBIDDEN", "NOT_FOUND", "REQUEST_TIMEOUT", "GENERATION_COUNTER_TOO_LOW",
        "INCOMPATIBLE_WITH_OVERLAY", "UNSUPPORTED_FORWARDING_OPTION", "DATA_TOO_LARGE",
        "DATA_TOO_OLD", "TTL_EXCEEDED", "MESSAGE_TOO_LARGE", "UNKNOWN_KIND",
        "UNKNOWN_EXTENSION", "RESPONSE_TOO_LARGE", "CONFIG_TOO_OLD", "CONFIG_TOO_NEW",
        "IN_PROGRESS", "EXP_A", "EXP_B", "INVALID_MESSAGE",
    ]  # fmt: skip
    assert {c.name: c.value for c in ErrorCode} == {n: i + 2 for i, n in enumerate(names)}


# -- the message as a whole ---------------------------------------------------


def test_size_is_checked_before_anything_else_section_6_3_2() -> None:
    """Not even the RELO token is looked at in a message that is too big."""
    with pytest.raises(DecodeError) as info:
        Message.decode(b"\xff" * 5001)
    assert info.value.path == "Message"
    assert "maximum message size" in info.value.reason
    with pytest.raises(DecodeError) as info:
        Message.decode(MESSAGE, max_message_size=len(MESSAGE) - 1)
    assert "maximum message size" in info.value.reason
    assert Message.decode(MESSAGE, max_message_size=len(MESSAGE)).header.length == len(MESSAGE)


def test_message_decodes_from_bytearray_and_memoryview() -> None:
    for buffer in (bytearray(MESSAGE), memoryview(MESSAGE)):
        decoded = Message.decode(buffer)  # type: ignore[arg-type]
        assert decoded.encode() == MESSAGE
        assert type(decoded.contents.body) is bytes


def test_a_fragment_is_not_decoded_section_6_7() -> None:
    fragment = bytearray(MESSAGE)
    fragment[12] = 0x80  # fragmented, not the last fragment
    with pytest.raises(DecodeError) as info:
        Message.decode(bytes(fragment))
    assert info.value.path == "Message.header.fragment"


@pytest.mark.parametrize(
    ("cut", "path"),
    [
        (10, "Message.header"),
        (58, "Message.contents.message_code"),
        (60, "Message.contents.message_body"),
        (70, "Message.contents.message_body"),
        (86, "Message.contents.extensions"),
        (90, "Message.security_block.certificates"),
        (120, "Message.security_block.signature.identity.length"),
    ],
)
def test_a_short_message_names_the_missing_field(cut: int, path: str) -> None:
    data = bytearray(MESSAGE[:cut])
    data[16:20] = cut.to_bytes(4, "big")  # keep the header's length consistent
    with pytest.raises(DecodeError) as info:
        Message.decode(bytes(data))
    assert info.value.path == path


def test_trailing_bytes_after_the_security_block_are_rejected() -> None:
    data = bytearray(MESSAGE + b"\x00")
    data[16:20] = len(data).to_bytes(4, "big")
    with pytest.raises(DecodeError) as info:
        Message.decode(bytes(data))
    assert info.value.path == "Message"
    assert "trailing" in info.value.reason


def test_message_code_zero_is_invalid_section_6_3_3() -> None:
    with pytest.raises(DecodeError) as info:
        MessageContents.decode(bytes.fromhex("00000000000000000000"))
    assert info.value.path == "MessageContents.message_code"
    with pytest.raises(EncodeError):
        MessageContents(0, b"").encode()


def test_header_with_forwarding_options_round_trips() -> None:
    header = dataclasses.replace(HEADER, options=(ForwardingOption(1, 0x01, b"\x05"),))
    message = Message(header, MESSAGE_VALUE.contents, SECURITY)
    data = message.encode()
    decoded = Message.decode(data)
    assert decoded.header.options == header.options
    assert decoded.encode() == data


def test_signature_input_covers_overlay_transaction_contents_and_signer_section_6_3_4() -> None:
    contents = MESSAGE[57:89]
    assert MessageContents.decode(contents) == MESSAGE_VALUE.contents
    expected = message_signature_input(0x4E38FC3F, 0x0102030405060708, contents, SIGNATURE.identity)
    assert expected[:12] == bytes.fromhex("4e38fc3f0102030405060708")
    assert Message.decode(MESSAGE).signature_input() == expected
    other = SignerIdentity.none()
    assert MESSAGE_VALUE.signature_input(other) == expected[:-37] + other.encode()


# -- extensions (section 6.3.3) -------------------------------------------------


def test_unknown_non_critical_extension_round_trips_section_6_3_3() -> None:
    contents = MessageContents.decode(CONTENTS_WITH_EXTENSION)
    assert contents.extensions == (MessageExtension(0x7777, False, b"\x01\x02\x03\x04"),)
    contents.check_extensions(understood=frozenset())  # may be processed
    assert contents.encode() == CONTENTS_WITH_EXTENSION
    message = Message(HEADER, contents, SECURITY)
    decoded = Message.decode(message.encode())
    assert decoded.contents == contents
    assert decoded.encode() == message.encode()


def test_unknown_critical_extension_is_rejected_section_6_3_3() -> None:
    data = bytearray(CONTENTS_WITH_EXTENSION)
    data[14] = 0x01  # critical: True
    contents = MessageContents.decode(bytes(data))
    with pytest.raises(UnknownCriticalExtension) as info:
        contents.check_extensions(understood={0x0001})
    assert info.value.extension_type == 0x7777
    assert info.value.path == "MessageContents.extensions[0]"
    assert isinstance(info.value, DecodeError)
    contents.check_extensions(understood={0x7777})
    moved = info.value.within("Message")
    assert isinstance(moved, UnknownCriticalExtension)
    assert moved.extension_type == 0x7777


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ("00000000000000", "MessageExtension.type"),
        ("00010200000000", "MessageExtension.critical"),
        ("00010100000001", "MessageExtension.extension_contents"),
    ],
)
def test_malformed_extension_is_rejected(data: str, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        MessageExtension.decode(bytes.fromhex(data))
    assert info.value.path == path


def test_extension_that_does_not_fit_raises_encode_error() -> None:
    for extension in (MessageExtension(0, False), MessageExtension(0x10000, True)):
        with pytest.raises(EncodeError):
            extension.encode()


# -- the body registry ----------------------------------------------------------


def test_storage_bodies_need_the_kind_models() -> None:
    fetch = FetchReq(RESOURCE, (StoredDataSpecifier.array(0x10, []),))
    with pytest.raises(TypeError):
        decode_body(MessageCode.FETCH_REQ, fetch.encode())
    assert decode_body(MessageCode.FETCH_REQ, fetch.encode(), models=MODELS) == fetch
    with pytest.raises(UnknownKind):
        decode_body(MessageCode.FETCH_REQ, fetch.encode(), models={})


def test_unknown_message_code_has_no_body_class() -> None:
    with pytest.raises(UnknownMessageCode) as info:
        body_class(0x7FFF)
    assert info.value.code == 0x7FFF
    assert isinstance(info.value, DecodeError)
    with pytest.raises(UnknownMessageCode):
        decode_body(MessageCode.PING_REQ, b"\x00\x00")  # not in message.py's registry


def test_message_module_registers_error_and_storage_bodies() -> None:
    assert set(BODY_CLASSES.values()) == {ErrorResponse, *STORAGE_BODIES}
    assert body_class(MessageCode.STORE_REQ).__name__ == "StoreReq"


def test_build_registry_refuses_two_classes_for_one_code() -> None:
    class Other:
        CODE = MessageCode.ERROR

    with pytest.raises(ValueError):
        build_registry([ErrorResponse, Other])
    with pytest.raises(TypeError):
        build_registry([object])


def test_full_registry_has_a_body_for_every_method_section_14_8() -> None:
    bodies = registry.all_bodies()
    experimental = {c for c in MessageCode if c.name.startswith("EXP_")}
    assert set(bodies) == set(MessageCode) - experimental
    assert bodies[MessageCode.PING_REQ].__module__ == "reload.wire.methods"
    assert bodies[MessageCode.ATTACH_REQ].__module__ == "reload.wire.attach"
    assert all(cls.__module__ != "topologies.chordreload.codec" for cls in bodies.values())
    assert registry.collect_bodies(["reload.wire.storage"]) == BODY_CLASSES


def test_full_registry_passes_each_body_what_its_decoder_needs() -> None:
    ping: Any = registry.body_class(MessageCode.PING_REQ)
    padded = ping(b"\x00").encode()
    assert registry.decode_body(MessageCode.PING_REQ, padded) == ping(b"\x00")
    join = registry.body_class(MessageCode.JOIN_REQ)
    node_id = bytes(range(20))
    body = join(node_id, b"").encode()
    assert registry.decode_body(MessageCode.JOIN_REQ, body, node_id_length=20) == join(node_id, b"")
    find = registry.decode_body(MessageCode.FIND_REQ, FIND_REQ.encode())
    assert find == FIND_REQ
    with pytest.raises(UnknownMessageCode):
        registry.decode_body(MessageCode.EXP_A_REQ, b"")


# -- round trips --------------------------------------------------------------


@given(s.messages)
def test_message_round_trips(message: Message) -> None:
    data = message.encode()
    decoded = Message.decode(data, max_message_size=1 << 20)
    assert decoded == dataclasses.replace(
        message, header=dataclasses.replace(message.header, length=len(data))
    )
    assert decoded.encode() == data


@given(s.message_contents)
def test_message_contents_round_trip(contents: MessageContents) -> None:
    assert MessageContents.decode(contents.encode()) == contents


@given(s.error_responses)
def test_error_response_round_trips(error: ErrorResponse) -> None:
    assert ErrorResponse.decode(error.encode()) == error


@given(s.message_extensions)
def test_message_extension_round_trips(extension: MessageExtension) -> None:
    assert MessageExtension.decode(extension.encode()) == extension


# -- fuzzing ------------------------------------------------------------------

_MESSAGE_SEEDS = [
    MESSAGE,
    Message(HEADER, MessageContents.decode(CONTENTS_WITH_EXTENSION), SECURITY).encode(),
    Message(
        dataclasses.replace(HEADER, via_list=(Destination.node(bytes(16)),)),
        MessageContents.of(ErrorResponse(ErrorCode.FORBIDDEN, b"no")),
        SecurityBlock((), Signature.empty()),
    ).encode(),
]


def test_decoded_messages_re_encode_to_the_same_bytes() -> None:
    """The codec is canonical, so a receiver can verify a signature over
    re-encoded contents: whatever decodes, encodes back to its input."""
    rng = random.Random(6940)
    decoded = 0
    for _ in range(5000):
        data = mutate(rng, rng.choice(_MESSAGE_SEEDS))
        try:
            message = Message.decode(data)
        except DecodeError:
            continue
        decoded += 1
        assert message.encode() == data, data.hex()
    assert decoded > 0


@pytest.mark.parametrize(
    ("decode", "seeds"),
    [
        (Message.decode, _MESSAGE_SEEDS),
        (MessageContents.decode, [MESSAGE[57:89], CONTENTS_WITH_EXTENSION]),
        (MessageExtension.decode, [CONTENTS_WITH_EXTENSION[12:]]),
        (ErrorResponse.decode, [ERROR_UNKNOWN_KIND]),
    ],
    ids=["Message", "MessageContents", "MessageExtension", "ErrorResponse"],
)
def test_decoders_survive_fuzzing(decode: Callable[[bytes], object], seeds: list[bytes]) -> None:
    assert fuzz_decoder(decode, seeds) > 0
