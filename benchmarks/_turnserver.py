"""The built-in TURN server as a process of its own, for benchmarks/turn.py.

Not run by hand:  python3 benchmarks/_turnserver.py PORT RELAY_LOW RELAY_HIGH
USER:PASSWORD.  Listens on 127.0.0.1:PORT (UDP and TCP), loopback peers
allowed, no quotas in the way; stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import reactor, stdio
from twisted.internet.error import ReactorNotRunning
from twisted.protocols.basic import LineReceiver

from usages.turnserver.service import TurnServerConfig, TurnServerService


class _StopOnEof(LineReceiver):
    def connectionLost(self, reason: object = None) -> None:
        with contextlib.suppress(ReactorNotRunning):
            reactor.stop()  # type: ignore[attr-defined]


def main() -> None:
    port, low, high = (int(x) for x in sys.argv[1:4])
    user, _, password = sys.argv[4].partition(":")
    service = TurnServerService(
        TurnServerConfig(
            host="127.0.0.1",
            udpPort=port,
            tcpPort=port,
            users={user: password},
            allowLoopbackPeers=True,
            relayPorts=(low, high),
            maxAllocations=100000,
            maxAllocationsPerUser=100000,
        ),
        reactor,
    )
    service.startService()
    stdio.StandardIO(_StopOnEof())
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
