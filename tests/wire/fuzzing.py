"""Decoder fuzzing shared by the wire tests.

:func:`fuzz_decoder` feeds a decoder random byte strings and mutations of
valid encodings (bit flips, truncation, extension, byte overwrites with the
boundary values that length fields trip over, spliced duplicates) and fails
the test on any exception other than :class:`DecodeError`.  It is seeded, so
a failure reproduces; the seed and the input are in the assertion message.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from reload.wire.errors import DecodeError

#: Inputs per decoder; issue 4 asks for at least 10,000 in CI.
FUZZ_COUNT = 10_000

_BOUNDARY = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    choice = rng.randrange(7)
    if choice == 0 or not data:
        return rng.randbytes(rng.randrange(0, 96))
    if choice == 1:
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif choice == 2:
        del data[rng.randrange(len(data)) :]
    elif choice == 3:
        data += rng.randbytes(rng.randrange(1, 32))
    elif choice == 4:
        for _ in range(rng.randrange(1, 3)):
            data[rng.randrange(len(data))] = rng.choice(_BOUNDARY)
    elif choice == 5:
        i = rng.randrange(len(data))
        j = rng.randrange(i, len(data) + 1)
        data[i:i] = data[i:j]
    else:
        i = rng.randrange(len(data))
        data[i : i + 4] = rng.randbytes(4)
    return bytes(data)


def fuzz_decoder(
    decode: Callable[[bytes], object],
    seeds: Sequence[bytes],
    count: int = FUZZ_COUNT,
    seed: int = 6940,
) -> int:
    """Run ``count`` inputs through ``decode``; return how many decoded.

    Only :class:`DecodeError` may escape ``decode``.  The return value lets a
    test check that the mutations were not all trivially rejected.
    """
    rng = random.Random(seed)
    decoded = 0
    for n in range(count):
        data = (
            mutate(rng, rng.choice(seeds))
            if seeds and n % 8
            else rng.randbytes(rng.randrange(0, 64))
        )
        try:
            decode(data)
        except DecodeError:
            continue
        except Exception as exc:  # pragma: no cover - this is the failure path
            raise AssertionError(
                f"decoder raised {exc!r} on input #{n} (seed {seed}): {data.hex()}"
            ) from exc
        decoded += 1
    return decoded
