"""Codec throughput (issue 4): forwarding fast path and full encode+decode.

Run by hand, not by the test suite:

    python3 benchmarks/codec.py [--seconds 1.0] [--json codec.json] [--codec both]

``--codec both`` (the default) measures the mypyc-compiled codec and the
pure-Python one, each in a process of its own: compiled from this
checkout's in-tree build (``RELOAD_COMPILE=1 python3 setup.py build_ext
--inplace`` first), pure from a copy of ``reload/wire``'s sources.

Each figure is the best of five runs of about ``--seconds`` of this
process's CPU time each, on one core (the codec is single-threaded).  Targets: forwarding
>= 300,000 messages/s; signed FetchReq and StoreReq with ten values
>= 50,000 encode+decode/s each.  "Encode+decode" starts from the body's
structures and ends with them: the body is encoded, wrapped in the message
and encoded, then the message and its body are decoded.

The floor rows measure what any encode+decode of the StoreReq has to do
with this object model, taken apart: build the 40 frozen dataclasses that
the ten decoded values are (StoredData, ArrayEntry, DataValue, Signature;
from already-parsed fields, with the decoder's own constructors), encode
the ten values, and encode and decode the message around an empty body.
Their sum, with no parsing of the body at all, bounds the rate from above.
"""

# The codec is imported after choosing where it comes from (_codecPath).
# ruff: noqa: E402

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _codecPath() -> str:
    """Where ``reload`` comes from: this checkout, or (``--codec pure``) a
    copy of its codec sources alone, which no compiled module shadows."""
    if "--codec" in sys.argv and sys.argv[sys.argv.index("--codec") + 1 :][:1] == ["pure"]:
        copy = Path(tempfile.mkdtemp(prefix="reload-pure-codec-"))
        (copy / "reload" / "wire").mkdir(parents=True)
        shutil.copy(REPO / "reload" / "__init__.py", copy / "reload")
        for source in (REPO / "reload" / "wire").glob("*.py"):
            shutil.copy(source, copy / "reload" / "wire")
        return str(copy)
    return str(REPO)


sys.path.insert(0, _codecPath())

from reload.wire import CODEC
from reload.wire.base import constructor
from reload.wire.header import Destination, ForwardingHeader, HeaderView, overlay_hash
from reload.wire.message import Message, MessageContents, decode_body
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
    FetchReq,
    StoredData,
    StoredDataSpecifier,
    StoreKindData,
    StoreReq,
)

OVERLAY = overlay_hash("bench.example.org")
NODE = [hashlib.sha1(b"node%d" % i).digest()[:16] for i in range(4)]
RESOURCE = hashlib.sha1(b"resource").digest()[:16]
KIND_SINGLE, KIND_ARRAY = 4000, 4001
MODELS = {KIND_SINGLE: DataModel.SINGLE, KIND_ARRAY: DataModel.ARRAY}


def _signature(seed: bytes) -> Signature:
    """An ECDSA P-256 / SHA-256 signature's shape: 64-byte value, cert hash."""
    return Signature(
        SignatureAndHashAlgorithm(HashAlgorithm.SHA256, SignatureAlgorithm.ECDSA),
        SignerIdentity.cert_hash(hashlib.sha256(seed).digest()),
        hashlib.sha512(seed).digest(),
    )


def _message(body: object, certificate: bytes = b"") -> Message:
    header = ForwardingHeader(
        overlay=OVERLAY,
        transaction_id=0x0123456789ABCDEF,
        destination_list=(Destination.resource(RESOURCE),),
        via_list=(Destination.node(NODE[0]), Destination.node(NODE[1])),
    )
    certs = (GenericCertificate(0, certificate),) if certificate else ()
    return Message(header, MessageContents.of(body), SecurityBlock(certs, _signature(b"message")))  # type: ignore[arg-type]


def fetchRequest() -> FetchReq:
    return FetchReq(
        RESOURCE,
        (
            StoredDataSpecifier.single(KIND_SINGLE),
            StoredDataSpecifier.array(KIND_ARRAY, (ArrayRange(0, 9),)),
        ),
    )


def storeRequest() -> StoreReq:
    values = tuple(
        StoredData(
            1_700_000_000_000 + i,
            3600,
            ArrayEntry(i, DataValue(True, b"value %02d " % i + bytes(40))),
            _signature(b"v%d" % i),
        )
        for i in range(10)
    )
    return StoreReq(RESOURCE, 0, (StoreKindData(KIND_ARRAY, 1, values),))


def signedFetch() -> Message:
    return _message(fetchRequest())


def storeOfTen() -> Message:
    return _message(storeRequest())


def roundTrip(body: FetchReq | StoreReq) -> Callable[[], object]:
    """Encode ``body`` and the signed message around it, then decode both."""
    template = _message(body)
    header, block = template.header, template.security_block

    def run() -> object:
        wire = Message(header, MessageContents.of(body), block).encode()
        decoded = Message.decode(wire)
        return decode_body(decoded.contents.message_code, decoded.contents.body, models=MODELS)

    return run


def storeFloors(seconds: float) -> list[tuple[str, float]]:
    """Microseconds of the parts every encode+decode of the ten-value
    StoreReq contains with this object model (see the module docstring)."""
    request = storeRequest()
    values = request.kind_data[0].values
    newStored = constructor(StoredData)
    newEntry = constructor(ArrayEntry)
    newValue = constructor(DataValue)
    newSignature = constructor(Signature)
    fields = [
        (
            v.storage_time,
            v.lifetime,
            v.value.index,  # type: ignore[union-attr]
            v.value.value.exists,  # type: ignore[union-attr]
            v.value.value.value,  # type: ignore[union-attr]
            v.signature.algorithm,
            v.signature.identity,
            v.signature.value,
        )
        for v in values
    ]

    def build() -> object:
        return tuple(
            [
                newStored(t, life, newEntry(i, newValue(e, b)), newSignature(a, who, sig))
                for t, life, i, e, b, a, who, sig in fields
            ]
        )

    def encodeValues() -> object:
        return [v.encode() for v in values]

    envelope = _message(StoreReq(RESOURCE, 0, ()))
    empty = MessageContents(envelope.contents.message_code, b"", ())
    header, block = envelope.header, envelope.security_block

    def encodeDecodeEnvelope() -> object:
        return Message.decode(Message(header, empty, block).encode())

    assert build() == values
    return [
        ("floor: build the 40 decoded objects (no parsing)", 1e6 / rate(build, seconds)),
        ("floor: encode the ten values", 1e6 / rate(encodeValues, seconds)),
        ("floor: message encode+decode, empty body", 1e6 / rate(encodeDecodeEnvelope, seconds)),
    ]


def rate(operation: Callable[[], object], seconds: float) -> float:
    """Operations per second of this process's CPU time, best of five runs
    (CPU time, so that other work on a shared machine does not count)."""
    batch = 1
    while True:
        start = time.process_time()
        for _ in range(batch):
            operation()
        elapsed = time.process_time() - start
        if elapsed > seconds / 10:
            break
        batch *= 2
    per = max(1, int(batch * seconds / max(elapsed, 1e-9)))
    best = 0.0
    for _ in range(5):
        start = time.process_time()
        for _ in range(per):
            operation()
        best = max(best, per / (time.process_time() - start))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one run")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--codec", choices=("both", "compiled", "pure"), default="both", help="which codec"
    )
    args = parser.parse_args(argv)
    if args.codec == "both":
        return bothCodecs(args.seconds, args.json)
    if args.codec != CODEC:
        sys.exit(
            f"this process imported the {CODEC} codec, not the {args.codec} one: "
            "build it first (RELOAD_COMPILE=1 python3 setup.py build_ext --inplace)"
        )
    print(f"codec: {CODEC}")

    fetch = signedFetch()
    fetchBytes, storeBytes = fetch.encode(), storeOfTen().encode()
    previousHop = Destination.node(NODE[2]).encode()

    def forward() -> bytes:
        return HeaderView(fetchBytes).forward(previousHop)

    fetchRoundTrip = roundTrip(fetchRequest())
    storeRoundTrip = roundTrip(storeRequest())

    # Sanity: the measured operations really do what they claim.
    forwarded = ForwardingHeader.decode_from(forward())[0]
    assert forwarded.via_list[-1].value == NODE[2] and forwarded.ttl == 99
    assert fetchRoundTrip() == fetchRequest()
    assert storeRoundTrip() == storeRequest()

    rows = [
        (
            "forwarding fast path (header view + new via entry)",
            len(fetchBytes),
            rate(forward, args.seconds),
            300_000,
        ),
        (
            "signed FetchReq encode+decode",
            len(fetchBytes),
            rate(fetchRoundTrip, args.seconds),
            50_000,
        ),
        (
            "StoreReq, ten values, encode+decode",
            len(storeBytes),
            rate(storeRoundTrip, args.seconds),
            50_000,
        ),
    ]
    floors = storeFloors(args.seconds)
    ceiling = 1e6 / sum(us for _, us in floors)
    print(f"{'operation':52} {'bytes':>6} {'per second':>12} {'target':>9}  ok")
    for name, size, value, target in rows:
        print(
            f"{name:52} {size:6d} {value:12,.0f} {target:9,d}  {'yes' if value >= target else 'NO'}"
        )
    print()
    print("what every StoreReq encode+decode above contains, measured apart:")
    for name, us in floors:
        print(f"  {name:50} {us:7.2f} us")
    print(
        f"  {'ceiling: their sum, parsing the body for free':50} {ceiling:7,.0f} /s"
        f"  ({'above' if ceiling >= 50_000 else 'below'} the 50,000 target)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "codec": CODEC,
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "results": [
                        {
                            "operation": n,
                            "bytes": s,
                            "per_second": round(v),
                            "target": t,
                            "met": v >= t,
                        }
                        for n, s, v, t in rows
                    ],
                    "store_floors_us": {n: round(us, 3) for n, us in floors},
                    "store_ceiling_per_second": round(ceiling),
                },
                indent=2,
            )
            + "\n"
        )
    return 0


def bothCodecs(seconds: float, jsonPath: Path | None) -> int:
    """Run this script once per codec; print both tables, then the
    StoreReq row side by side, and write both results."""
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for codec in ("compiled", "pure"):
            out = Path(scratch) / f"{codec}.json"
            command = [sys.executable, __file__, "--codec", codec, "--seconds", str(seconds)]
            done = subprocess.run([*command, "--json", str(out)], check=False)
            if done.returncode:
                return done.returncode
            results[codec] = json.loads(out.read_text())
            print()
    print(f"{'operation':52} {'compiled/s':>11} {'pure/s':>9} {'ratio':>6}")
    for row, other in zip(results["compiled"]["results"], results["pure"]["results"], strict=True):
        ratio = row["per_second"] / other["per_second"]
        print(
            f"{row['operation']:52} {row['per_second']:11,d} {other['per_second']:9,d} "
            f"{ratio:5.2f}x"
        )
    if jsonPath:
        jsonPath.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
