"""One request and one answer of every RFC 6940 method, as whole messages.

Shared by the Wireshark cross-check and the codec benchmark: each exchange
carries distinct transaction ids, destinations and body fields, so that a
test can check that a decoder reports exactly these values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from reload.wire.attach import (
    AppAttachAns,
    AppAttachReq,
    AttachAns,
    AttachReq,
    CandType,
    IceCandidate,
    IpAddressPort,
    OverlayLinkType,
)
from reload.wire.header import Destination, ForwardingHeader, overlay_hash
from reload.wire.message import ErrorCode, ErrorResponse, Message, MessageContents
from reload.wire.methods import (
    ConfigUpdateAns,
    ConfigUpdateReq,
    JoinAns,
    JoinReq,
    LeaveAns,
    LeaveReq,
    PingAns,
    PingReq,
    ProbeAns,
    ProbeInformation,
    ProbeInformationType,
    ProbeReq,
    RouteQueryAns,
    RouteQueryReq,
    UpdateAns,
    UpdateReq,
)
from reload.wire.security_block import (
    GenericCertificate,
    HashAlgorithm,
    SecurityBlock,
    Signature,
    SignatureAlgorithm,
    SignatureAndHashAlgorithm,
    SignerIdentity,
)
from reload.wire.storage import (
    ArrayEntry,
    ArrayRange,
    DataModel,
    DataValue,
    DictionaryEntry,
    FetchAns,
    FetchKindResponse,
    FetchReq,
    FindAns,
    FindKindData,
    FindReq,
    MetaData,
    StatAns,
    StatKindResponse,
    StatReq,
    StoreAns,
    StoredData,
    StoredDataSpecifier,
    StoredMetaData,
    StoreKindData,
    StoreKindResponse,
    StoreReq,
)
from topologies.chordreload.codec import ChordRouteQueryAns, ChordUpdate, ChordUpdateType

OVERLAY = "overlay.example.org"
#: Private Kind-IDs (section 14.6 reserves 0xf0000000 and up for private
#: use, but small ids keep the Wireshark Kind table simple), one per model.
KIND_SINGLE, KIND_ARRAY, KIND_DICTIONARY = 4000, 4001, 4002
MODELS = {
    KIND_SINGLE: DataModel.SINGLE,
    KIND_ARRAY: DataModel.ARRAY,
    KIND_DICTIONARY: DataModel.DICTIONARY,
}

ALICE = bytes(range(1, 17))
BOB = bytes(range(0x21, 0x31))
CAROL = bytes(range(0x41, 0x51))
RESOURCE = hashlib.sha1(b"alice@example.org").digest()[:16]


def _signature(seed: bytes) -> Signature:
    return Signature(
        SignatureAndHashAlgorithm(HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA),
        SignerIdentity.cert_hash(hashlib.sha256(seed).digest()),
        hashlib.sha512(seed).digest()[:64],
    )


def _stored(value: DataValue | ArrayEntry | DictionaryEntry, n: int) -> StoredData:
    return StoredData(1_700_000_000_000 + n, 3600, value, _signature(b"value%d" % n))


@dataclass(frozen=True)
class Exchange:
    """A request and its answer; ``answerCode`` is the answer's message code
    (the request code plus one, or 0xffff for an Error)."""

    method: str
    request: Message
    answer: Message

    @property
    def transactionId(self) -> int:
        return self.request.header.transaction_id


def _candidate(link: int, port: int) -> IceCandidate:
    return IceCandidate(
        IpAddressPort.of("127.0.0.2", port), link, b"fnd1", 2130706431, CandType.HOST, None, ()
    )


def _message(
    code: int,
    body: bytes,
    tid: int,
    dest: tuple[Destination, ...],
    certificates: tuple[GenericCertificate, ...] = (),
) -> Message:
    header = ForwardingHeader(
        overlay=overlay_hash(OVERLAY),
        transaction_id=tid,
        destination_list=dest,
        configuration_sequence=7,
    )
    security = SecurityBlock(certificates, _signature(b"%d" % tid))
    return Message(header, MessageContents(code, body, ()), security)


def exchanges(certificate: bytes | None = None) -> list[Exchange]:
    """Every method's request and answer.  ``certificate``, a DER X.509
    certificate, is carried in the Store request's security block."""
    certs = (GenericCertificate(0, certificate),) if certificate else ()
    toResource = (Destination.resource(RESOURCE),)
    toBob = (Destination.node(BOB),)
    toAlice = (Destination.node(ALICE),)
    single = DataValue(True, b"sip:alice@192.0.2.1")
    bodies: list[tuple[str, object, object, tuple[Destination, ...]]] = [
        (
            "probe",
            ProbeReq((ProbeInformationType.RESPONSIBLE_SET, ProbeInformationType.UPTIME)),
            ProbeAns(
                (
                    ProbeInformation(ProbeInformationType.RESPONSIBLE_SET, 0x10000000),
                    ProbeInformation(ProbeInformationType.UPTIME, 4242),
                )
            ),
            toBob,
        ),
        (
            "attach",
            AttachReq(
                b"ufragA",
                b"passwordA",
                b"active",
                (_candidate(OverlayLinkType.TLS_TCP_FH_NO_ICE, 6084),),
                True,
            ),
            AttachAns(
                b"ufragB",
                b"passwordB",
                b"passive",
                (_candidate(OverlayLinkType.TLS_TCP_FH_NO_ICE, 6085),),
                False,
            ),
            toBob,
        ),
        (
            "store",
            StoreReq(
                RESOURCE,
                0,
                (
                    StoreKindData(KIND_SINGLE, 1, (_stored(single, 1),)),
                    StoreKindData(
                        KIND_ARRAY, 2, (_stored(ArrayEntry(3, DataValue(True, b"a3")), 2),)
                    ),
                    StoreKindData(
                        KIND_DICTIONARY,
                        3,
                        (_stored(DictionaryEntry(b"key1", DataValue(True, b"d1")), 3),),
                    ),
                ),
            ),
            StoreAns(
                (
                    StoreKindResponse(KIND_SINGLE, 2, (CAROL,)),
                    StoreKindResponse(KIND_ARRAY, 3, (CAROL,)),
                    StoreKindResponse(KIND_DICTIONARY, 4, (CAROL,)),
                )
            ),
            toResource,
        ),
        (
            "fetch",
            FetchReq(
                RESOURCE,
                (
                    StoredDataSpecifier.single(KIND_SINGLE),
                    StoredDataSpecifier.array(KIND_ARRAY, (ArrayRange(0, 5),)),
                    StoredDataSpecifier.dictionary(KIND_DICTIONARY, (b"key1",)),
                ),
            ),
            FetchAns(
                (
                    FetchKindResponse(KIND_SINGLE, 2, (_stored(single, 4),)),
                    FetchKindResponse(
                        KIND_ARRAY, 3, (_stored(ArrayEntry(3, DataValue(True, b"a3")), 5),)
                    ),
                    FetchKindResponse(KIND_DICTIONARY, 4, ()),
                )
            ),
            toResource,
        ),
        (
            "stat",
            StatReq(RESOURCE, (StoredDataSpecifier.single(KIND_SINGLE),)),
            StatAns(
                (
                    StatKindResponse(
                        KIND_SINGLE,
                        2,
                        (
                            StoredMetaData(
                                1_700_000_000_004,
                                3600,
                                MetaData(
                                    True,
                                    len(single.value),
                                    HashAlgorithm.SHA256,
                                    hashlib.sha256(single.value).digest(),
                                ),
                            ),
                        ),
                    ),
                )
            ),
            toResource,
        ),
        (
            "find",
            FindReq(RESOURCE, (KIND_SINGLE, KIND_ARRAY)),
            FindAns((FindKindData(KIND_SINGLE, RESOURCE), FindKindData(KIND_ARRAY, b""))),
            toResource,
        ),
        ("join", JoinReq(ALICE, b""), JoinAns(b""), toBob),
        ("leave", LeaveReq(ALICE, b""), LeaveAns(), toBob),
        (
            "update",
            UpdateReq(
                ChordUpdate(
                    uptime=60,
                    type=ChordUpdateType.NEIGHBORS,
                    predecessors=(ALICE,),
                    successors=(CAROL,),
                ).encode()
            ),
            UpdateAns(b""),
            toBob,
        ),
        (
            "route_query",
            RouteQueryReq(False, Destination.resource(RESOURCE), b""),
            RouteQueryAns(ChordRouteQueryAns(CAROL).encode()),
            toBob,
        ),
        ("ping", PingReq(b"\0" * 8), PingAns(0x0102030405060708, 1_700_000_000_123), toBob),
        (
            "app_attach",
            AppAttachReq(
                b"ufragC",
                b"passwordC",
                5060,
                b"active",
                (_candidate(OverlayLinkType.TLS_TCP_FH_NO_ICE, 5060),),
            ),
            AppAttachAns(
                b"ufragD",
                b"passwordD",
                5060,
                b"passive",
                (_candidate(OverlayLinkType.TLS_TCP_FH_NO_ICE, 5061),),
            ),
            toBob,
        ),
        ("config_update", ConfigUpdateReq.for_config(b"<overlay/>"), ConfigUpdateAns(), toBob),
    ]
    out = []
    for n, (method, request, answer, dest) in enumerate(bodies):
        tid = 0x1000_0000_0000_0000 + n * 0x0101
        req = _message(
            request.CODE,
            request.encode(),
            tid,
            dest,  # type: ignore[attr-defined]
            certificates=certs if method == "store" else (),
        )
        ans = _message(answer.CODE, answer.encode(), tid, toAlice)  # type: ignore[attr-defined]
        out.append(Exchange(method, req, ans))
    error = ErrorResponse(ErrorCode.NOT_FOUND, b"no such resource")
    tid = 0x2000_0000_0000_0001
    out.append(
        Exchange(
            "error",
            _message(
                FetchReq.CODE,
                FetchReq(RESOURCE, (StoredDataSpecifier.single(KIND_SINGLE),)).encode(),
                tid,
                toResource,
            ),
            _message(ErrorResponse.CODE, error.encode(), tid, toAlice),
        )
    )
    return out
