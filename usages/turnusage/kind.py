"""TURN-SERVICE (RFC 6940 section 9): the Kind and its TurnServer value.

::

    struct {
      uint8                   iteration;       the d of H(Node-ID || d)
      IpAddressPort           server_address;  section 6.3.1.1
    } TurnServer;

``IpAddressPort`` (section 6.3.1.1) is ``AddressType type; uint8 length;``
followed by ``length`` bytes: ipv4_address(1) a uint32 address and uint16
port (length 6), ipv6_address(2) a uint128 and uint16 (length 18).  "This
structure can be extended": a type this code does not know is kept as its
bytes (:attr:`TurnServer.extension`) so a value from a newer peer still
validates, and discovery skips it.  invalidAddressType(0) is refused.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from zope.interface import implementer

from reload.interfaces import DataModel, IKind

__all__ = [
    "MAX_NODE_MULTIPLE",
    "TURN_SERVICE",
    "TURN_SERVICE_KIND_ID",
    "TurnServer",
    "TurnServiceKind",
]

#: Section 14.6: the IANA Kind-ID of TURN-SERVICE.
TURN_SERVICE_KIND_ID = 0x2
#: Section 9: "NODE-MULTIPLE, with a maximum iteration of counter 20".
MAX_NODE_MULTIPLE = 20
_INVALID, _IPV4, _IPV6 = 0, 1, 2
_LENGTHS = {_IPV4: 6, _IPV6: 18}


@dataclass(frozen=True, slots=True)
class TurnServer:
    """One TurnServer (section 9): ``host`` and ``port`` of a TURN server,
    advertised at H(Node-ID || ``iteration``).  For an address type this
    code does not know, ``host`` is empty and ``extension`` holds
    ``(type, bytes)``."""

    iteration: int
    host: str
    port: int
    extension: tuple[int, bytes] | None = None

    def encode(self) -> bytes:
        """The value's bytes; ValueError for a field out of range."""
        if not 1 <= self.iteration <= 0xFF:
            raise ValueError(f"iteration {self.iteration} is not 1 to 255 (section 9: d >= 1)")
        if self.extension is not None:
            kind, body = self.extension
            if kind in (_INVALID, *_LENGTHS) or not 0 <= kind <= 0xFF or len(body) > 0xFF:
                raise ValueError(f"address type {kind} with {len(body)} bytes is not an extension")
            return struct.pack("!BBB", self.iteration, kind, len(body)) + body
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} is not 0 to 65535")
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            raise ValueError(f"{self.host!r} is not an IPv4 or IPv6 address") from None
        kind = _IPV4 if address.version == 4 else _IPV6
        return (
            struct.pack("!BBB", self.iteration, kind, _LENGTHS[kind])
            + address.packed
            + struct.pack("!H", self.port)
        )

    @classmethod
    def decode(cls, data: bytes) -> TurnServer:
        """The TurnServer of ``data``, all of it; ValueError naming the
        field that is wrong."""
        data = bytes(data)
        if len(data) < 3:
            raise ValueError(f"TurnServer: {len(data)} bytes, at least 3 are needed")
        iteration, kind, length = struct.unpack_from("!BBB", data)
        if iteration == 0:
            raise ValueError("TurnServer.iteration: 0, but d counts from 1 (section 9)")
        body = data[3:]
        if len(body) != length:
            raise ValueError(
                f"TurnServer.server_address: length says {length} bytes, {len(body)} follow"
            )
        if kind == _INVALID:
            raise ValueError("TurnServer.server_address: invalidAddressType(0)")
        if kind not in _LENGTHS:
            return cls(iteration, "", 0, (kind, body))
        if length != _LENGTHS[kind]:
            name = "ipv4_address" if kind == _IPV4 else "ipv6_address"
            raise ValueError(
                f"TurnServer.server_address: {name} has length {_LENGTHS[kind]}, not {length}"
            )
        address = ipaddress.ip_address(body[:-2])
        (port,) = struct.unpack("!H", body[-2:])
        return cls(iteration, str(address), port)

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)``, or None for an address type not known here."""
        return None if self.extension is not None else (self.host, self.port)


@implementer(IKind)
class TurnServiceKind:
    """TURN-SERVICE (section 9): SINGLE, NODE-MULTIPLE, max 20.  A value is
    at most 3 + 18 = 21 bytes for the two address types of the RFC; the
    configuration's max-size (64 by default, ``reload/config/defaults.py``)
    leaves room for extensions."""

    name = "TURN-SERVICE"
    kindId = TURN_SERVICE_KIND_ID
    dataModel = DataModel.SINGLE
    accessPolicy = "NODE-MULTIPLE"
    maxCount = 1
    maxSize = 64

    def validate(self, value: bytes) -> None:
        TurnServer.decode(value)

    def encode(self, value: object) -> bytes:
        if not isinstance(value, TurnServer):
            raise TypeError(f"a TURN-SERVICE value is a TurnServer, not {type(value).__name__}")
        return value.encode()

    def decode(self, data: bytes) -> TurnServer:
        return TurnServer.decode(data)


TURN_SERVICE = TurnServiceKind()
