"""Run as a script by tests/test_turnserver.py: aioice's TURN client (an
implementation nobody here wrote) allocates on the server given on the
command line, relays "ping" to a plain UDP peer and receives the peer's
"pong" back through the relay; prints what happened as JSON.

    python3 turn_aioice_client.py HOST PORT USER PASSWORD udp|tcp
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aioice.turn


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait((data, addr))


async def main(host: str, port: int, user: str, password: str, transport: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    turn, client = await aioice.turn.create_turn_endpoint(
        _Collect, (host, port), user, password, transport=transport
    )
    relayed = turn.get_extra_info("sockname")
    peerTransport, peer = await loop.create_datagram_endpoint(_Collect, local_addr=("127.0.0.1", 0))
    peerAddress = peerTransport.get_extra_info("sockname")
    turn.sendto(b"ping", peerAddress)
    data, source = await asyncio.wait_for(peer.received.get(), 5)
    peerTransport.sendto(b"pong", source)
    answer, origin = await asyncio.wait_for(client.received.get(), 5)
    turn.close()
    peerTransport.close()
    await asyncio.sleep(0.2)
    return {
        "relayed": list(relayed),
        "peerGot": data.decode(),
        "peerSawFrom": list(source),
        "clientGot": answer.decode(),
        "clientSawFrom": list(origin),
        "peer": list(peerAddress),
    }


if __name__ == "__main__":
    host, port, user, password, transport = sys.argv[1:6]
    print(json.dumps(asyncio.run(main(host, int(port), user, password, transport))))
