"""The security block, signatures and signer identities (RFC 6940 section
6.3.4) and what a message signature covers."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given

from reload.wire import security_block as sb
from reload.wire.base import COMPILED, WireStruct, constructor, fast_constructor
from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.header import Destination, ForwardingHeader
from reload.wire.security_block import (
    ANONYMOUS_NONE,
    RSA_SHA256,
    CertificateType,
    GenericCertificate,
    HashAlgorithm,
    SecurityBlock,
    Signature,
    SignatureAlgorithm,
    SignatureAndHashAlgorithm,
    SignerIdentity,
    SignerIdentityType,
    message_signature_input,
)
from tests.wire import strategies_message as s
from tests.wire.fuzzing import fuzz_decoder

#: A stand-in DER certificate: SEQUENCE { NULL }.
CERT = bytes.fromhex("30020500")
#: SHA-256 of CERT.
CERT_SHA256 = bytes.fromhex("c8934613942f57430f48b51b0130d9923c4bfe36e6166babcddb7befc6468f08")

#: Section 6.3.4, worked by hand: one X.509 certificate and an RSA/SHA-256
#: signature by the holder of that certificate (cert_hash identity).
SECURITY_BLOCK = bytes.fromhex(
    "0007"  # certificates<0..2^16-1>: 7 bytes
    "00"  # GenericCertificate.type: X.509 (RFC 6091)
    "0004"
    + CERT.hex()  # certificate<0..2^16-1>: the DER bytes
    + "04"  # Signature.algorithm.hash: sha256 (TLS HashAlgorithm)
    "01"  # Signature.algorithm.signature: rsa (TLS SignatureAlgorithm)
    "01"  # SignerIdentity.identity_type: cert_hash
    "0022"  # SignerIdentity.length: 34
    "04"  # SignerIdentityValue.hash_alg: sha256
    "20"
    + CERT_SHA256.hex()  # certificate_hash<0..2^8-1>: SHA-256 of CERT
    + "0008"  # signature_value<0..2^16-1>: 8 bytes
    "5a5a5a5a5a5a5a5a"
)

#: Section 7.4.2.2: the synthetic signature of a value that does not exist.
EMPTY_SIGNATURE = bytes.fromhex(
    "00"  # hash: none
    "00"  # signature: anonymous
    "03"  # identity_type: none
    "0000"  # length: 0
    "0000"  # signature_value: empty
)


def test_security_block_example_encodes_byte_exact_section_6_3_4() -> None:
    identity = SignerIdentity.for_certificate(CERT)
    block = SecurityBlock(
        (GenericCertificate(CertificateType.X509, CERT),),
        Signature(RSA_SHA256, identity, b"Z" * 8),
    )
    assert identity == SignerIdentity(
        SignerIdentityType.CERT_HASH, HashAlgorithm.SHA256, CERT_SHA256
    )
    assert block.encode() == SECURITY_BLOCK
    assert SecurityBlock.decode(SECURITY_BLOCK) == block


def test_empty_signature_is_anonymous_and_encodes_byte_exact_section_7_4_2_2() -> None:
    empty = Signature.empty()
    assert empty.encode() == EMPTY_SIGNATURE
    assert Signature.decode(EMPTY_SIGNATURE) == empty
    assert empty.is_anonymous
    assert empty.algorithm == ANONYMOUS_NONE
    assert not Signature(RSA_SHA256, SignerIdentity.cert_hash(b"h"), b"v").is_anonymous


def test_either_anonymous_marker_counts_section_7_4_1_1() -> None:
    identity = SignerIdentity.cert_hash(b"h")
    assert Signature(ANONYMOUS_NONE, identity, b"v").is_anonymous
    assert Signature(RSA_SHA256, SignerIdentity.none(), b"v").is_anonymous


def test_cert_hash_node_id_hashes_node_id_then_certificate_section_6_3_4() -> None:
    node_id = bytes(range(16))
    identity = SignerIdentity.for_certificate(CERT, node_id=node_id)
    assert identity.identity_type == SignerIdentityType.CERT_HASH_NODE_ID
    assert identity.value == hashlib.sha256(node_id + CERT).digest()
    sha1 = SignerIdentity.for_certificate(CERT, HashAlgorithm.SHA1)
    assert sha1 == SignerIdentity.cert_hash(hashlib.sha1(CERT).digest(), HashAlgorithm.SHA1)


def test_identity_for_unhashable_algorithm_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        SignerIdentity.for_certificate(CERT, HashAlgorithm.NONE)


def test_message_signature_input_is_overlay_transaction_contents_identity_section_6_3_4() -> None:
    identity = SignerIdentity.cert_hash(b"\xaa\xbb", HashAlgorithm.SHA256)
    contents = b"\x00\x17\x00\x00\x00\x00\x00\x00\x00\x00"
    expected = bytes.fromhex(
        "4e38fc3f"  # overlay
        "0102030405060708"  # transaction_id
        "00170000000000000000"  # MessageContents, as encoded
        "01"
        "0004"
        "04"
        "02"
        "aabb"  # SignerIdentity: type, length, hash_alg, hash
    )
    assert message_signature_input(0x4E38FC3F, 0x0102030405060708, contents, identity) == expected
    with pytest.raises(EncodeError):
        message_signature_input(1 << 32, 0, b"", identity)


# -- identities: the value forms ---------------------------------------------


def test_unknown_identity_type_keeps_raw_bytes_section_6_3_4() -> None:
    """ "This structure may be extended with new types": keep them."""
    data = bytes.fromhex("070003010203")
    identity = SignerIdentity.decode(data)
    assert identity == SignerIdentity(7, 0, b"\x01\x02\x03")
    assert identity.encode() == data


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ("000000", "SignerIdentity.identity_type"),  # type 0 is invalid
        ("03000100", "SignerIdentity.identity"),  # 'none' with a value
        ("010003040500", "SignerIdentity.identity"),  # hash longer than length
        ("01000404010000", "SignerIdentity.identity"),  # bytes after the hash
        ("01000104", "SignerIdentity.identity"),  # no hash length
        ("01000504", "SignerIdentity.length"),  # length beyond the data
        ("01", "SignerIdentity.length"),
    ],
)
def test_malformed_identity_is_rejected_with_its_path(data: str, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        SignerIdentity.decode(bytes.fromhex(data))
    assert info.value.path == path


@pytest.mark.parametrize(
    "identity",
    [
        SignerIdentity(0),
        SignerIdentity(256),
        SignerIdentity(SignerIdentityType.NONE, 0, b"x"),
        SignerIdentity(SignerIdentityType.NONE, 4),
        SignerIdentity(9, 4, b"x"),
        SignerIdentity(SignerIdentityType.CERT_HASH, 256, b"x"),
        SignerIdentity(SignerIdentityType.CERT_HASH, 4, bytes(256)),
        SignerIdentity(9, 0, bytes(0x10000)),
    ],
)
def test_identity_that_does_not_fit_raises_encode_error(identity: SignerIdentity) -> None:
    with pytest.raises(EncodeError):
        identity.encode()


@pytest.mark.parametrize(
    "value",
    [
        Signature(SignatureAndHashAlgorithm(256, 1), SignerIdentity.none(), b""),
        Signature(RSA_SHA256, SignerIdentity.none(), bytes(0x10000)),
        GenericCertificate(256, b""),
        GenericCertificate(0, bytes(0x10000)),
        SignatureAndHashAlgorithm(0, -1),
        SecurityBlock((GenericCertificate(0, bytes(0xFFF0)),) * 2, Signature.empty()),
    ],
)
def test_value_that_does_not_fit_raises_encode_error(value: WireStruct) -> None:
    with pytest.raises(EncodeError):
        value.encode()


def test_unknown_algorithms_and_certificate_types_round_trip_as_integers() -> None:
    """The TLS registries grow: values without a name are kept."""
    data = bytes.fromhex("fefd0300000000")
    signature = Signature.decode(data)
    assert signature.algorithm == SignatureAndHashAlgorithm(0xFE, 0xFD)
    assert signature.encode() == data
    assert SignatureAndHashAlgorithm.decode(b"\x04\x03") == SignatureAndHashAlgorithm(
        HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA
    )
    cert = GenericCertificate.decode(bytes.fromhex("09000100"))
    assert cert == GenericCertificate(9, b"\x00")


def test_decoded_identities_are_shared_and_the_cache_stays_bounded() -> None:
    first = Signature.decode(SECURITY_BLOCK[9:])
    second = Signature.decode(SECURITY_BLOCK[9:])
    assert first.identity is second.identity
    for n in range(2000):
        SignerIdentity.decode(bytes((1, 0, 4, 4, 2)) + n.to_bytes(2, "big"))
    assert len(sb._IDENTITY_CACHE) <= sb._IDENTITY_CACHE_SIZE


def test_constructor_builds_the_same_frozen_object() -> None:
    make = constructor(GenericCertificate)
    cert = make(CertificateType.X509, CERT)
    assert cert == GenericCertificate(CertificateType.X509, CERT)
    with pytest.raises(AttributeError):
        cert.type = 1  # type: ignore[misc]


def test_fast_constructor_is_for_slotted_pure_python_classes_only() -> None:
    """Compiled, a class has no slot descriptors and ``constructor`` gives
    the class itself; in pure Python an ``init=False`` field is refused."""
    if COMPILED:
        assert constructor(GenericCertificate) is GenericCertificate
        with pytest.raises(TypeError, match="not a slotted dataclass"):
            fast_constructor(GenericCertificate)
    else:
        assert constructor(GenericCertificate) is not GenericCertificate
        with pytest.raises(TypeError, match="needs its __init__"):
            fast_constructor(SignerIdentity)  # has an init=False field


def test_constructor_sets_every_field_of_a_large_structure() -> None:
    """Eleven fields: each value lands in its own slot, in field order."""
    values = (7, 9, (Destination.node(b"n" * 16),), (), (), 3, 50, 0x8000_0000, 123, 456, 10)
    header = constructor(ForwardingHeader)(*values)
    assert header == ForwardingHeader(*values)
    assert [getattr(header, f.name) for f in dataclasses.fields(header)] == list(values)
    if not COMPILED:  # compiled, constructor() is the class, whose fields have defaults
        with pytest.raises(TypeError):
            constructor(ForwardingHeader)(*values[:-1])


# -- errors name their field ----------------------------------------------------


@pytest.mark.parametrize(
    ("cut", "path"),
    [
        (1, "SecurityBlock.certificates"),
        (5, "SecurityBlock.certificates"),
        (8, "SecurityBlock.certificates"),
        (10, "SecurityBlock.signature.algorithm"),
        (12, "SecurityBlock.signature.identity.length"),
        (30, "SecurityBlock.signature.identity.length"),
        (49, "SecurityBlock.signature.value"),
        (52, "SecurityBlock.signature.value"),
    ],
)
def test_truncated_security_block_names_the_field(cut: int, path: str) -> None:
    with pytest.raises(DecodeError) as info:
        SecurityBlock.decode(SECURITY_BLOCK[:cut])
    assert info.value.path == path


def test_bad_identity_inside_a_signature_names_the_identity_field() -> None:
    with pytest.raises(DecodeError) as info:
        Signature.decode(bytes.fromhex("04010000000000"))
    assert info.value.path == "Signature.identity.identity_type"


def test_certificate_longer_than_its_vector_is_rejected() -> None:
    data = bytearray(SECURITY_BLOCK)
    data[4] = 0x09  # certificate length 9 in a 7-byte vector
    with pytest.raises(DecodeError) as info:
        SecurityBlock.decode(bytes(data))
    assert info.value.path == "SecurityBlock.certificates[0].certificate"


def test_read_from_an_outer_reader_prefixes_the_outer_path() -> None:
    r = Reader(b"\x00\x00\x01\x00\x05", path="Outer.signature")
    with pytest.raises(DecodeError) as info:
        Signature.read(r)
    assert info.value.path == "Outer.signature.identity.length"


def test_read_accepts_bytearray_and_memoryview() -> None:
    for buffer in (bytearray(SECURITY_BLOCK), memoryview(SECURITY_BLOCK)):
        r = Reader(buffer)  # type: ignore[arg-type]
        block = SecurityBlock.read(r)
        assert r.pos == len(SECURITY_BLOCK)
        assert type(block.signature.value) is bytes


# -- round trips --------------------------------------------------------------


@given(s.algorithm_pairs)
def test_algorithm_pair_round_trips(value: SignatureAndHashAlgorithm) -> None:
    assert SignatureAndHashAlgorithm.decode(value.encode()) == value


@given(s.generic_certificates)
def test_generic_certificate_round_trips(value: GenericCertificate) -> None:
    assert GenericCertificate.decode(value.encode()) == value


@given(s.signer_identities)
def test_signer_identity_round_trips(value: SignerIdentity) -> None:
    assert SignerIdentity.decode(value.encode()) == value


@given(s.signatures)
def test_signature_round_trips(value: Signature) -> None:
    assert Signature.decode(value.encode()) == value


@given(s.security_blocks)
def test_security_block_round_trips(value: SecurityBlock) -> None:
    data = value.encode()
    decoded = SecurityBlock.decode(data)
    assert decoded == value
    assert decoded.encode() == data


# -- fuzzing ------------------------------------------------------------------

_SEEDS = [
    SECURITY_BLOCK,
    bytes.fromhex("0000") + EMPTY_SIGNATURE,
    bytes.fromhex("000e05000301020300000430020500") + EMPTY_SIGNATURE,
    bytes.fromhex("000002010200040402abcd0001ff"),
]


@pytest.mark.parametrize(
    ("decode", "seeds"),
    [
        (SecurityBlock.decode, _SEEDS),
        (Signature.decode, [seed[2 + int.from_bytes(seed[:2], "big") :] for seed in _SEEDS]),
        (SignerIdentity.decode, [bytes.fromhex("01002204") + CERT_SHA256, b"\x03\x00\x00"]),
        (GenericCertificate.decode, [bytes.fromhex("000004") + CERT]),
        (SignatureAndHashAlgorithm.decode, [b"\x04\x01"]),
    ],
    ids=["SecurityBlock", "Signature", "SignerIdentity", "GenericCertificate", "Algorithm"],
)
def test_decoders_survive_fuzzing(decode: Callable[[bytes], object], seeds: list[bytes]) -> None:
    assert fuzz_decoder(decode, seeds) > 0
