"""A child process for the crash test: stores without end into a SQLite
store, one StoreReq of two Kinds per round, and prints the round number
after each Store returned.

Round ``n`` stores ``n`` as the single value of SINGLE_USER and as array
entry 0 of ARRAY_USER (padded, so that each transaction writes a few
pages), both at Alice's Resource-ID.  A torn write would show as the two
Kinds disagreeing, or disagreeing with their generation counters.

    python -m tests.storage.crashwriter PATH
"""

from __future__ import annotations

import sys

from reload.security.certificates import PeerIdentity
from reload.storage.sqlite import SQLiteStore
from reload.wire.storage import StoreKindData, StoreReq
from tests.storage.support import (
    ARRAY_USER,
    NOW,
    NOW_MS,
    SINGLE_USER,
    Setup,
    entry,
    h,
    makeIdentity,
    requester,
    sign,
    single,
)

USER = "alice@storage.example.org"
PAD = 800


def payload(n: int) -> bytes:
    return b"%d" % n


def roundRequest(alice: PeerIdentity, n: int) -> StoreReq:
    """The StoreReq of round ``n``."""
    rid = h(USER)
    when = NOW_MS + n
    value = single(payload(n))
    padded = entry(0, payload(n).ljust(PAD, b"."))
    return StoreReq(
        rid,
        0,
        (
            StoreKindData(SINGLE_USER, 0, (sign(alice, rid, SINGLE_USER, value, when),)),
            StoreKindData(ARRAY_USER, 0, (sign(alice, rid, ARRAY_USER, padded, when),)),
        ),
    )


def main(path: str) -> None:
    alice = makeIdentity(USER)
    setup = Setup(store=SQLiteStore(path), identities=(alice,))
    signer = requester(setup.cache, alice)
    record = setup.store.get(h(USER), SINGLE_USER)
    n = record.generation if record is not None else 0
    while True:
        n += 1
        setup.service.handleStore(roundRequest(alice, n), signer, NOW)
        sys.stdout.write(f"{n}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
