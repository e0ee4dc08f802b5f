"""The STUN codec (reload.wire.stun) against aioice's, an independent
implementation: what one encodes the other decodes, integrity and
fingerprint included (RFC 5389 sections 15.4, 15.5)."""

from __future__ import annotations

import struct

import pytest
from aioice import stun as aiostun

from reload.wire.errors import DecodeError
from reload.wire.stun import (
    BINDING,
    REQUEST,
    SUCCESS,
    Attr,
    StunMessage,
    checkIntegrity,
    decodeXorAddress,
    encodeXorAddress,
    looksLikeStun,
    newTransactionId,
)

PASSWORD = b"0123456789abcdef01234567"


def test_aCheckWeEncodeIsOneAioiceAccepts() -> None:
    tid = newTransactionId()
    message = StunMessage(
        BINDING,
        REQUEST,
        tid,
        (
            (Attr.USERNAME, b"abcd:efgh"),
            (Attr.PRIORITY, struct.pack("!I", 1862270975)),
            (Attr.ICE_CONTROLLING, b"\1" * 8),
            (Attr.USE_CANDIDATE, b""),
        ),
    )
    data = message.encode(PASSWORD)
    parsed = aiostun.parse_message(data)  # checks FINGERPRINT
    assert parsed.check_message_integrity(PASSWORD)
    assert not parsed.check_message_integrity(b"wrong password")
    assert parsed.message_method == aiostun.Method.BINDING
    assert parsed.message_class == aiostun.Class.REQUEST
    assert parsed.transaction_id == tid
    assert parsed.attributes["USERNAME"] == "abcd:efgh"
    assert parsed.attributes["PRIORITY"] == 1862270975
    assert "USE-CANDIDATE" in parsed.attributes
    with pytest.raises(ValueError):
        aiostun.parse_message(data[:-1] + bytes([data[-1] ^ 1]))


def test_aResponseAioiceEncodesDecodesHere() -> None:
    tid = newTransactionId()
    response = aiostun.Message(
        message_method=aiostun.Method.BINDING,
        message_class=aiostun.Class.RESPONSE,
        transaction_id=tid,
    )
    response.attributes["XOR-MAPPED-ADDRESS"] = ("198.18.0.11", 40000)
    response.add_message_integrity(PASSWORD)
    response.add_fingerprint()
    data = bytes(response)
    assert looksLikeStun(data)
    decoded = StunMessage.decode(data)
    assert (decoded.method, decoded.cls, decoded.transactionId) == (BINDING, SUCCESS, tid)
    mapped = decoded.get(Attr.XOR_MAPPED_ADDRESS)
    assert mapped is not None
    assert decodeXorAddress(mapped, tid) == ("198.18.0.11", 40000)
    assert checkIntegrity(data, PASSWORD)
    assert not checkIntegrity(data, b"another")


@pytest.mark.parametrize("host", ["10.1.0.2", "2001:db8::7"])
def test_xorAddressRoundTrips(host: str) -> None:
    tid = newTransactionId()
    assert decodeXorAddress(encodeXorAddress(host, 6084, tid), tid) == (host, 6084)


def test_damagedMessagesAreDecodeErrors() -> None:
    data = StunMessage(BINDING, REQUEST, newTransactionId()).encode()
    corrupt = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(DecodeError, match="FINGERPRINT"):
        StunMessage.decode(corrupt)
    with pytest.raises(DecodeError):
        StunMessage.decode(data[:-4])
    with pytest.raises(DecodeError):
        StunMessage.decode(b"\x16\xfe\xfd" + data[3:])
    assert not looksLikeStun(b"\x16\xfe\xfd" + data[3:])  # a DTLS record
    # An attribute whose length runs past the end.
    header = struct.pack("!HHI12s", BINDING, 8, 0x2112A442, b"t" * 12)
    with pytest.raises(DecodeError, match="overruns"):
        StunMessage.decode(header + struct.pack("!HH", Attr.USERNAME, 50) + b"abcd")
