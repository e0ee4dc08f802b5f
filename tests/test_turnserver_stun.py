"""The STUN/TURN codec (usages/turnserver/stun.py): the RFC 5769 test
vectors, round trips, and Hypothesis on hostile bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usages.turnserver.stun import (
    Attr,
    ChannelData,
    Message,
    MessageClass,
    Method,
    StreamFramer,
    StunDecodeError,
    channelNumberValue,
    decodeChannelData,
    decodeDatagram,
    decodeMessage,
    decodeMessageType,
    encodeChannelData,
    encodeMessage,
    encodeMessageType,
    errorCodeValue,
    evenPortValue,
    integrityAlgorithm,
    longTermKey,
    requestedTransportValue,
    uint32Value,
    verifyIntegrity,
    xorAddressValue,
)

# RFC 5769 section 2, typed in from the RFC's hex dumps.
SHORT_TERM_PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

SAMPLE_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "80220010" "5354554e207465737420636c69656e74"
    "00240004" "6e0001ff"
    "80290008" "932ff9b151263b36"
    "00060009" "6576746a3a68367659202020"
    "00080014" "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004" "e57a3bcf"
)  # fmt: skip
SAMPLE_IPV4_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b" "7465737420766563746f7220"
    "00200008" "0001a147e112a643"
    "00080014" "2b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004" "c07d4c96"
)  # fmt: skip
SAMPLE_IPV6_RESPONSE = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b" "7465737420766563746f7220"
    "00200014" "0002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014" "a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004" "c8fb0b4c"
)  # fmt: skip
SAMPLE_LONG_TERM_REQUEST = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e"
    "00060012" "e3839ee38388e383aae38383e382afe382b90000"
    "0015001c" "662f2f3439396b39353464364f4c33346f4c394653547679363473"
    "41"
    "0014000b" "6578616d706c652e6f726700"
    "00080014" "f67024656dd64a3e02b8e0712e85c9a28ca89666"
)  # fmt: skip


def test_rfc5769SampleRequestDecodesAndVerifies() -> None:
    message = decodeMessage(SAMPLE_REQUEST)
    assert (message.method, message.messageClass) == (Method.BINDING, MessageClass.REQUEST)
    assert message.transactionId == TRANSACTION_ID
    assert message.text(Attr.SOFTWARE) == "STUN test client"
    assert message.text(Attr.USERNAME) == "evtj:h6vY"
    assert message.get(0x0024) == bytes.fromhex("6e0001ff")  # PRIORITY
    assert integrityAlgorithm(message) == "sha1"
    assert verifyIntegrity(message, SHORT_TERM_PASSWORD)
    assert not verifyIntegrity(message, b"VOkJxbRl1RmTxUk/WvJxBu")


def test_rfc5769SampleRequestEncodesByteForByte() -> None:
    """Our encoder, with the RFC's space padding, writes the same bytes,
    MESSAGE-INTEGRITY and FINGERPRINT included (RFC 5769 section 2.1)."""
    encoded = encodeMessage(
        Method.BINDING,
        MessageClass.REQUEST,
        TRANSACTION_ID,
        [
            (Attr.SOFTWARE, b"STUN test client"),
            (0x0024, bytes.fromhex("6e0001ff")),
            (0x8029, bytes.fromhex("932ff9b151263b36")),
            (Attr.USERNAME, b"evtj:h6vY"),
        ],
        integrityKey=SHORT_TERM_PASSWORD,
        fingerprint=True,
        padding=b" ",
    )
    assert encoded == SAMPLE_REQUEST


@pytest.mark.parametrize(
    ("sample", "address"),
    [
        (SAMPLE_IPV4_RESPONSE, ("192.0.2.1", 32853)),
        (SAMPLE_IPV6_RESPONSE, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_rfc5769ResponsesGiveTheXorMappedAddress(sample: bytes, address: tuple[str, int]) -> None:
    message = decodeMessage(sample)
    assert (message.method, message.messageClass) == (Method.BINDING, MessageClass.SUCCESS)
    assert message.text(Attr.SOFTWARE) == "test vector"
    assert message.xorAddress(Attr.XOR_MAPPED_ADDRESS) == address
    assert verifyIntegrity(message, SHORT_TERM_PASSWORD)
    # And our encoder writes the same attribute value back.
    assert xorAddressValue(*address, TRANSACTION_ID) == message.get(Attr.XOR_MAPPED_ADDRESS)


def test_rfc5769LongTermCredentials() -> None:
    """RFC 5769 section 2.4: the key is MD5(username:realm:password); the
    password "The<U+00AD>M<U+00AA>tr<U+2168>" is "TheMatrIX" once prepared."""
    message = decodeMessage(SAMPLE_LONG_TERM_REQUEST)
    username = message.text(Attr.USERNAME)
    realm = message.text(Attr.REALM)
    assert username == "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
    assert realm == "example.org"
    assert message.text(Attr.NONCE) == "f//499k954d6OL34oL9FSTvy64sA"
    assert verifyIntegrity(message, longTermKey(username, realm, "TheMatrIX"))
    assert not verifyIntegrity(message, longTermKey(username, realm, "TheMatrix"))


def test_fingerprintMismatchIsRefused() -> None:
    broken = SAMPLE_REQUEST[:-1] + bytes([SAMPLE_REQUEST[-1] ^ 1])
    with pytest.raises(StunDecodeError, match="FINGERPRINT"):
        decodeMessage(broken)


def test_messageIntegritySha256RoundTrip() -> None:
    """RFC 8489 section 14.6: MESSAGE-INTEGRITY-SHA256, preferred when a
    message carries both."""
    key = longTermKey("alice", "reload", "secret")
    tid = bytes(range(12))
    for algorithm in ("sha256", "both"):
        data = encodeMessage(
            Method.ALLOCATE,
            MessageClass.REQUEST,
            tid,
            [(Attr.REQUESTED_TRANSPORT, requestedTransportValue())],
            integrityKey=key,
            integrity=algorithm,
            fingerprint=True,
        )
        message = decodeMessage(data)
        assert integrityAlgorithm(message) == "sha256"
        assert verifyIntegrity(message, key)
        assert not verifyIntegrity(message, longTermKey("alice", "reload", "wrong"))


def test_attributesAfterMessageIntegrityAreIgnored() -> None:
    """RFC 8489 section 14.5: only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
    may follow MESSAGE-INTEGRITY; anything else is ignored."""
    key = b"k"
    data = encodeMessage(Method.BINDING, MessageClass.REQUEST, bytes(12), integrityKey=key)
    extra = bytes.fromhex("80220004") + b"evil"
    length = int.from_bytes(data[2:4], "big") + len(extra)
    tampered = data[:2] + length.to_bytes(2, "big") + data[4:] + extra
    message = decodeMessage(tampered)
    assert message.get(Attr.SOFTWARE) is None
    assert verifyIntegrity(message, key)


def test_messageTypeEncodingRfc8489Section5() -> None:
    assert encodeMessageType(Method.BINDING, MessageClass.REQUEST) == 0x0001
    assert encodeMessageType(Method.BINDING, MessageClass.SUCCESS) == 0x0101
    assert encodeMessageType(Method.BINDING, MessageClass.ERROR) == 0x0111
    assert encodeMessageType(Method.SEND, MessageClass.INDICATION) == 0x0016
    assert encodeMessageType(Method.DATA, MessageClass.INDICATION) == 0x0017
    assert encodeMessageType(Method.ALLOCATE, MessageClass.SUCCESS) == 0x0103
    for method in range(0x1000):
        for messageClass in range(4):
            assert decodeMessageType(encodeMessageType(method, messageClass)) == (
                method,
                messageClass,
            )


def test_typedAttributes() -> None:
    tid = bytes(range(12))
    data = encodeMessage(
        Method.CHANNEL_BIND,
        MessageClass.REQUEST,
        tid,
        [
            (Attr.CHANNEL_NUMBER, channelNumberValue(0x4001)),
            (Attr.XOR_PEER_ADDRESS, xorAddressValue("10.1.2.3", 5000, tid)),
            (Attr.XOR_PEER_ADDRESS, xorAddressValue("::1", 6000, tid)),
            (Attr.LIFETIME, uint32Value(600)),
            (Attr.EVEN_PORT, evenPortValue(True)),
            (Attr.ERROR_CODE, errorCodeValue(438, "Stale Nonce")),
            (Attr.RESERVATION_TOKEN, b"12345678"),
        ],
    )
    message = decodeMessage(data)
    assert message.channelNumber() == 0x4001
    assert message.xorAddresses(Attr.XOR_PEER_ADDRESS) == [("10.1.2.3", 5000), ("::1", 6000)]
    assert message.uint32(Attr.LIFETIME) == 600
    assert message.evenPort() is True
    assert message.errorCode() == (438, "Stale Nonce")
    assert message.reservationToken() == b"12345678"
    assert message.requestedTransport() is None


def test_channelDataFraming() -> None:
    """RFC 8656 section 12.5: padded to 4 over streams, either way over UDP."""
    assert encodeChannelData(0x4000, b"abcde", pad=True) == b"\x40\x00\x00\x05abcde\x00\x00\x00"
    assert decodeChannelData(b"\x40\x00\x00\x05abcde\x00\x00\x00") == ChannelData(0x4000, b"abcde")
    assert decodeChannelData(b"\x7f\xff\x00\x01z") == ChannelData(0x7FFF, b"z")
    with pytest.raises(StunDecodeError):
        decodeChannelData(b"\x40\x00\x00\x09abcde")


def test_streamFramerSplitsMixedFrames() -> None:
    framer = StreamFramer()
    stun = encodeMessage(Method.BINDING, MessageClass.REQUEST, bytes(12), fingerprint=True)
    stream = encodeChannelData(0x4001, b"xyz", pad=True) + stun + encodeChannelData(0x4002, b"")
    frames: list[object] = []
    for i in range(len(stream)):
        frames += framer.feed(stream[i : i + 1])
    assert frames[0] == ChannelData(0x4001, b"xyz")
    assert isinstance(frames[1], Message) and frames[1].method == Method.BINDING
    assert frames[2] == ChannelData(0x4002, b"")
    assert framer.pending == 0


@pytest.mark.parametrize(
    "garbage",
    [
        bytes.fromhex("160301020001") + b"\x00" * 40,  # a TLS ClientHello on a TCP port
        b"\x80\x00\x00\x00",  # neither STUN (00) nor ChannelData (01)
        b"\x00\x01\x00\x02" + bytes(16),  # a STUN header with a length not a multiple of 4
    ],
)
def test_streamFramerRefusesGarbage(garbage: bytes) -> None:
    with pytest.raises(StunDecodeError):
        StreamFramer().feed(garbage)


# -- Hypothesis ---------------------------------------------------------------

attributeTypes = st.sampled_from([int(a) for a in Attr]) | st.integers(0, 0xFFFF)
attributes = st.lists(st.tuples(attributeTypes, st.binary(max_size=40)), max_size=8).map(
    lambda pairs: [
        (t, v)
        for t, v in pairs
        if t not in (Attr.MESSAGE_INTEGRITY, Attr.MESSAGE_INTEGRITY_SHA256, Attr.FINGERPRINT)
    ]
)
messages = st.builds(
    lambda method, cls, tid, attrs, fp: encodeMessage(method, cls, tid, attrs, fingerprint=fp),
    st.integers(0, 0xFFF),
    st.integers(0, 3),
    st.binary(min_size=12, max_size=12),
    attributes,
    st.booleans(),
)


def _exerciseAccessors(message: Message) -> None:
    """Every typed view either answers or raises StunDecodeError."""
    views = [
        lambda: message.text(Attr.USERNAME),
        lambda: message.text(Attr.NONCE),
        lambda: message.xorAddress(Attr.XOR_PEER_ADDRESS),
        lambda: message.xorAddresses(Attr.XOR_PEER_ADDRESS),
        lambda: message.xorAddress(Attr.XOR_MAPPED_ADDRESS),
        lambda: message.address(Attr.MAPPED_ADDRESS),
        lambda: message.uint32(Attr.LIFETIME),
        lambda: message.channelNumber(),
        lambda: message.requestedTransport(),
        lambda: message.requestedAddressFamily(),
        lambda: message.evenPort(),
        lambda: message.reservationToken(),
        lambda: message.errorCode(),
        lambda: message.unknownAttributes(),
        lambda: verifyIntegrity(message, b"key"),
    ]
    for view in views:
        with contextlib.suppress(StunDecodeError):
            view()


@given(messages)
def test_roundTrip(data: bytes) -> None:
    message = decodeMessage(data)
    again = encodeMessage(
        message.method,
        message.messageClass,
        message.transactionId,
        [(a.type, a.value) for a in message.attributes if a.type != Attr.FINGERPRINT],
        fingerprint=message.has(Attr.FINGERPRINT),
    )
    assert again == data
    _exerciseAccessors(message)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitraryBytesRaiseOnlyStunDecodeError(data: bytes) -> None:
    try:
        decoded = decodeDatagram(data)
    except StunDecodeError:
        return
    if isinstance(decoded, Message):
        _exerciseAccessors(decoded)


@settings(max_examples=300)
@given(messages, st.data())
def test_mutatedMessagesRaiseOnlyStunDecodeError(data: bytes, draw: st.DataObject) -> None:
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        index = draw.draw(st.integers(0, len(mutated) - 1))
        mutated[index] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(mutated)))
    for candidate in (bytes(mutated), bytes(mutated[:cut])):
        try:
            decoded = decodeDatagram(candidate)
        except StunDecodeError:
            continue
        if isinstance(decoded, Message):
            _exerciseAccessors(decoded)


@given(st.lists(messages, min_size=1, max_size=4), st.lists(st.integers(1, 64), min_size=1))
def test_streamFramerAnyChunking(frames: list[bytes], chunks: list[int]) -> None:
    stream = b"".join(frames)
    framer = StreamFramer()
    out: list[object] = []
    position = 0
    i = 0
    while position < len(stream):
        size = chunks[i % len(chunks)]
        out += framer.feed(stream[position : position + size])
        position += size
        i += 1
    assert [m.raw for m in out if isinstance(m, Message)] == frames


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_streamFramerArbitraryBytesRaiseOnlyStunDecodeError(data: bytes) -> None:
    with contextlib.suppress(StunDecodeError):
        StreamFramer().feed(data)
