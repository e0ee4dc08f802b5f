"""Which peers a relay may talk to (RFC 8656 section 21.2.3, "Tunnel
Amplification Attack" and section 9 permissions).

By default the server refuses loopback, unspecified and multicast peers
and its own listening addresses (so a client cannot make it relay to
itself or to services bound to localhost); ``allowLoopbackPeers`` lifts the
loopback rule for labs on one machine.  The operator adds CIDRs with
``deniedPeers``.  A peer address that does not parse is denied.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_ALWAYS_DENIED = ("0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32", "::/128", "ff00::/8")
_LOOPBACK = ("127.0.0.0/8", "::1/128")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PeerPolicy:
    def __init__(
        self,
        *,
        allowLoopbackPeers: bool,
        deniedPeers: Iterable[str] = (),
        ownAddresses: Iterable[tuple[str, int]] = (),
    ) -> None:
        cidrs = list(_ALWAYS_DENIED) + list(deniedPeers)
        if not allowLoopbackPeers:
            cidrs += _LOOPBACK
        self._networks: list[Network] = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        self._own: set[tuple[str, int]] = set()
        self._ownPorts: set[int] = set()
        for host, port in ownAddresses:
            self.addOwnAddress(host, port)
        self._cache: dict[str, bool] = {}

    def addOwnAddress(self, host: str, port: int) -> None:
        """A listening address of this server: never a peer.  A wildcard
        host stands for every address, so only the port is compared."""
        if host in ("0.0.0.0", "::", ""):
            self._ownPorts.add(port)
        else:
            self._own.add((str(ipaddress.ip_address(host)), port))

    def isDenied(self, peer: tuple[str, int]) -> bool:
        host, port = peer
        if port in self._ownPorts or (host, port) in self._own:
            return True
        denied = self._cache.get(host)
        if denied is None:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                return True
            denied = any(ip.version == n.version and ip in n for n in self._networks)
            if len(self._cache) < 4096:
                self._cache[host] = denied
        return denied
