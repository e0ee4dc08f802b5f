"""Hypothesis strategies for whole messages: the security block (RFC 6940
section 6.3.4), message contents and error responses (section 6.3.3) and
messages (section 6.3), shared by the wire tests and by anyone who needs
valid signatures, security blocks or messages."""

from __future__ import annotations

from hypothesis import strategies as st

from reload.wire.header import Destination, ForwardingHeader, ForwardingOption
from reload.wire.message import (
    ErrorCode,
    ErrorResponse,
    Message,
    MessageCode,
    MessageContents,
    MessageExtension,
)
from reload.wire.security_block import (
    CertificateType,
    GenericCertificate,
    HashAlgorithm,
    SecurityBlock,
    Signature,
    SignatureAlgorithm,
    SignatureAndHashAlgorithm,
    SignerIdentity,
)

uint8 = st.integers(min_value=0, max_value=0xFF)
uint16 = st.integers(min_value=0, max_value=0xFFFF)
uint32 = st.integers(min_value=0, max_value=0xFFFFFFFF)
uint64 = st.integers(min_value=0, max_value=(1 << 64) - 1)

# -- security block -------------------------------------------------------------

#: Registered values (as enum members) or any other byte.
hash_algorithms = st.one_of(st.sampled_from(HashAlgorithm), uint8)
signature_algorithms = st.one_of(st.sampled_from(SignatureAlgorithm), uint8)
algorithm_pairs = st.builds(SignatureAndHashAlgorithm, hash_algorithms, signature_algorithms)

#: The three defined identity forms, and unknown types with raw bytes.
signer_identities = st.one_of(
    st.builds(SignerIdentity.cert_hash, st.binary(max_size=64), hash_algorithms),
    st.builds(SignerIdentity.cert_hash_node_id, st.binary(max_size=64), hash_algorithms),
    st.just(SignerIdentity.none()),
    st.builds(
        SignerIdentity,
        st.integers(min_value=4, max_value=0xFF),
        st.just(0),
        st.binary(max_size=64),
    ),
)
signatures = st.builds(Signature, algorithm_pairs, signer_identities, st.binary(max_size=300))
generic_certificates = st.builds(
    GenericCertificate, st.one_of(st.sampled_from(CertificateType), uint8), st.binary(max_size=300)
)
security_blocks = st.builds(
    SecurityBlock, st.lists(generic_certificates, max_size=3).map(tuple), signatures
)

# -- contents -----------------------------------------------------------------

message_codes = st.one_of(st.sampled_from(MessageCode), st.integers(min_value=1, max_value=0xFFFF))
message_extensions = st.builds(
    MessageExtension,
    st.integers(min_value=1, max_value=0xFFFF),
    st.booleans(),
    st.binary(max_size=40),
)
message_contents = st.builds(
    MessageContents,
    message_codes,
    st.binary(max_size=200),
    st.lists(message_extensions, max_size=3).map(tuple),
)
error_responses = st.builds(
    ErrorResponse,
    st.one_of(st.sampled_from(ErrorCode), st.integers(min_value=1, max_value=0xFFFF)),
    st.binary(max_size=100),
)

# -- messages -----------------------------------------------------------------

node_ids = st.binary(min_size=16, max_size=20)
destinations = st.one_of(
    st.builds(Destination.node, node_ids),
    st.builds(Destination.resource, st.binary(min_size=1, max_size=32)),
    st.builds(Destination.opaque, st.binary(min_size=1, max_size=8)),
    st.builds(Destination.compressed_id, st.integers(min_value=0x8000, max_value=0xFFFF)),
)
forwarding_options = st.builds(
    ForwardingOption, st.integers(min_value=1, max_value=0xFF), uint8, st.binary(max_size=16)
)
forwarding_headers = st.builds(
    ForwardingHeader,
    overlay=uint32,
    transaction_id=uint64,
    destination_list=st.lists(destinations, min_size=1, max_size=3).map(tuple),
    via_list=st.lists(destinations, max_size=3).map(tuple),
    options=st.lists(forwarding_options, max_size=2).map(tuple),
    configuration_sequence=uint16,
    ttl=uint8,
    max_response_length=uint32,
)
#: Unfragmented messages; their ``header.length`` is 0 (encode computes it).
messages = st.builds(Message, forwarding_headers, message_contents, security_blocks)
