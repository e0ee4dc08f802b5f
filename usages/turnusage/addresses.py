"""Which addresses a TURN server may be advertised at (RFC 6940 section 9).

"If the peer's IP address is in the private address space range as
defined by [RFC1918], then it is also SHOULD NOT be a candidate for a TURN
server."  Other peers cannot reach the shared address space of carrier-grade
NAT (RFC 6598, 100.64.0.0/10), loopback, link-local, unique-local,
documentation or unspecified addresses either, so this module counts as
public exactly the addresses IANA's special-purpose registries mark
globally reachable (``ipaddress``'s ``is_global``), and never a multicast
one.  An IPv4-mapped IPv6 address is judged by its IPv4 address.

Section 9 also excludes a peer behind a NAT, which ICE tells; this peer
does no ICE yet, so ``advertise=auto`` judges the address alone.
"""

from __future__ import annotations

import ipaddress

__all__ = ["isPublicAddress", "whyNotPublic"]


def whyNotPublic(host: str) -> str | None:
    """None when ``host`` is a public IP address, else why it is not (one
    phrase for the status page and the log)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{host!r} is not an IP address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_unspecified:
        return f"{address} is the unspecified address"
    if address in ipaddress.ip_network("100.64.0.0/10"):
        return f"{address} is in the shared address space of RFC 6598"
    if not address.is_global:
        return f"{address} is a private or reserved address (RFC 1918 and the like)"
    return None


def isPublicAddress(host: str) -> bool:
    """Whether ``host`` is an IP address other peers on the Internet reach."""
    return whyNotPublic(host) is None
