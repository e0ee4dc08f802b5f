"""AoRs, the SipRegistration record (RFC 7904 section 3.2) and GRUUs (section 6).

::

    enum { sip_registration_uri(1), sip_registration_route(2), (255) }
        SipRegistrationType;

    select (SipRegistration.type) {
      case sip_registration_uri:
          opaque      uri<0..2^16-1>;
      case sip_registration_route:
          opaque      contact_prefs<0..2^16-1>;
          Destination destination_list<3..2^16-1>;
      /* This type can be extended */
    } SipRegistrationData;

    struct {
      SipRegistrationType   type;
      uint16                length;
      SipRegistrationData   data;
    } SipRegistration;

A type this code does not know is kept as its bytes
(:attr:`SipRegistration.extension`): "This type can be extended", so a
value from a newer peer still validates, and resolution skips it.

**AoRs** (section 2) carry no scheme: ``alice@example.com``, the text a
certificate's rfc822Name holds.  :func:`normaliseAor` strips ``sip:`` or
``sips:``, %-decodes (section 7: "strip sip: and %-decode before comparing")
and lower-cases the domain (RFC 3261 section 19.1.4 compares hosts
case-insensitively, user parts exactly).

**GRUU bytes** (section 6).  The RFC says the ``gr`` parameter holds "a
base64-encoded destination list" and leaves the bytes open.  This module
base64-encodes the wire encoding of the Destination sequence without its
length prefix (:func:`reload.api.data.encodeDestinations`), the same bytes
the record's ``destination_list`` carries after its uint16, with the RFC
4648 alphabet and ``~`` in place of the ``=`` padding (section 6).  On
decode, ``=`` padding, missing padding and the URL-safe alphabet are
accepted too.
"""

from __future__ import annotations

import base64
import binascii
import struct
import urllib.parse
from dataclasses import dataclass

from reload.api.data import Destination, decodeDestinations, encodeDestinations

__all__ = [
    "ROUTE",
    "URI",
    "BadAor",
    "SipRegistration",
    "aorDomain",
    "decodeGruu",
    "encodeGruu",
    "normaliseAor",
    "splitGruu",
]

#: Section 3.2: SipRegistrationType.
URI = 1
ROUTE = 2
_UINT16 = 0xFFFF
#: An AoR longer than this is refused: RFC 3261 sets no limit, but an
#: rfc822Name (RFC 5321 section 4.5.3.1.3) is at most 254 characters.
MAX_AOR = 254


class BadAor(ValueError):
    """Text that is not an AoR of the form user@domain."""


def normaliseAor(text: str) -> str:
    """The AoR of ``text`` (section 2): no scheme, %-decoded, URI
    parameters and headers dropped, the domain lower-cased.  A GRUU's
    ``gr`` parameter is dropped too: :func:`splitGruu` reads it.
    :class:`BadAor` for anything that is not ``user@domain``."""
    if not isinstance(text, str):
        raise BadAor(f"an AoR is text, not {type(text).__name__}")
    aor = text.strip()
    if aor.startswith("<") and aor.endswith(">"):
        aor = aor[1:-1]
    lowered = aor.lower()
    for scheme in ("sips:", "sip:"):
        if lowered.startswith(scheme):
            aor = aor[len(scheme) :]
            break
    aor = aor.split(";", 1)[0].split("?", 1)[0]
    aor = urllib.parse.unquote(aor, errors="strict")
    user, at, domain = aor.rpartition("@")
    if not at or not user or not domain:
        raise BadAor(f"{text!r} is not an AoR of the form user@domain (RFC 7904 section 2)")
    if any(c.isspace() or c in '<>"@' or ord(c) < 0x20 for c in domain) or ":" in domain:
        raise BadAor(f"{text!r}: {domain!r} is not a domain (no port in an AoR)")
    if any(ord(c) < 0x20 or c.isspace() for c in user):
        raise BadAor(f"{text!r}: the user part has white space or control characters")
    normal = f"{user}@{domain.lower()}"
    if len(normal) > MAX_AOR:
        raise BadAor(f"an AoR of {len(normal)} characters is longer than {MAX_AOR}")
    return normal


def aorDomain(aor: str) -> str:
    """The domain part of a normalised AoR."""
    return aor.rpartition("@")[2]


def encodeGruu(aor: str, destinations: tuple[Destination, ...]) -> str:
    """Section 6: ``aor;gr=<base64 destination list>`` (see the module's
    documentation for the bytes)."""
    if not destinations:
        raise ValueError("a GRUU needs at least one destination")
    data = base64.b64encode(encodeDestinations(destinations)).decode("ascii")
    return f"{normaliseAor(aor)};gr={data.replace('=', '~')}"


def decodeGruu(value: str) -> tuple[Destination, ...]:
    """The destination list in a ``gr`` parameter's value; ValueError for
    anything else."""
    text = urllib.parse.unquote(value.strip()).replace("~", "=").rstrip("=")
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"gr={value!r} is not base64 (RFC 7904 section 6)") from None
    destinations = decodeDestinations(data, "gr")
    if not destinations:
        raise ValueError("gr= holds no destination")
    return destinations


def splitGruu(text: str) -> tuple[str, tuple[Destination, ...] | None]:
    """``(aor, destinations)`` of a URI: destinations is the GRUU's list
    when ``text`` carries a ``gr`` parameter with a value, else None."""
    aor = normaliseAor(text)
    body = text.strip().strip("<>")
    for parameter in body.split("?", 1)[0].split(";")[1:]:
        name, equals, value = parameter.partition("=")
        if name.strip().lower() == "gr" and equals and value.strip():
            return aor, decodeGruu(value)
    return aor, None


@dataclass(frozen=True, slots=True)
class SipRegistration:
    """One SipRegistration (section 3.2): a forwarding to ``uri`` (type
    1), a route to ``destinations`` with ``contactPrefs`` (type 2), or an
    unknown type's ``extension`` bytes."""

    type: int
    uri: str = ""
    contactPrefs: str = ""
    destinations: tuple[Destination, ...] = ()
    extension: bytes = b""

    @classmethod
    def forward(cls, aor: str) -> SipRegistration:
        """AoR -> AoR (section 3.1): calls go to ``aor``."""
        return cls(URI, uri=normaliseAor(aor))

    @classmethod
    def route(
        cls, destinations: tuple[Destination, ...], contactPrefs: str = ""
    ) -> SipRegistration:
        """AoR -> destination list (section 3.1)."""
        return cls(ROUTE, contactPrefs=contactPrefs, destinations=tuple(destinations))

    def encode(self) -> bytes:
        """The record's bytes; ValueError for a field that does not fit."""
        if not 1 <= self.type <= 0xFF:
            raise ValueError(f"SipRegistration.type {self.type} is not 1 to 255")
        if self.type == URI:
            uri = self.uri.encode("utf-8")
            if len(uri) > _UINT16:
                raise ValueError(f"uri of {len(uri)} bytes does not fit <0..2^16-1>")
            data = struct.pack("!H", len(uri)) + uri
        elif self.type == ROUTE:
            prefs = self.contactPrefs.encode("utf-8")
            destinations = encodeDestinations(self.destinations)
            if len(prefs) > _UINT16:
                raise ValueError(f"contact_prefs of {len(prefs)} bytes does not fit <0..2^16-1>")
            if not 3 <= len(destinations) <= _UINT16:
                raise ValueError(
                    f"destination_list of {len(destinations)} bytes is not 3 to 65535"
                    " (<3..2^16-1>, RFC 7904 section 3.2)"
                )
            data = (
                struct.pack("!H", len(prefs)) + prefs + struct.pack("!H", len(destinations))
            ) + destinations
        else:
            data = self.extension
        if len(data) > _UINT16:
            raise ValueError(f"SipRegistration data of {len(data)} bytes does not fit a uint16")
        return struct.pack("!BH", self.type, len(data)) + data

    @classmethod
    def decode(cls, data: bytes) -> SipRegistration:
        """The record of ``data``, all of it; ValueError naming the field
        that is wrong."""
        data = bytes(data)
        if len(data) < 3:
            raise ValueError(f"SipRegistration: {len(data)} bytes, at least 3 are needed")
        kind, length = struct.unpack_from("!BH", data)
        body = data[3:]
        if len(body) != length:
            raise ValueError(f"SipRegistration.length says {length} bytes, {len(body)} follow")
        if kind == 0:
            raise ValueError("SipRegistration.type 0 is not a SipRegistrationType")
        if kind == URI:
            uri = _opaque(body, 0, "uri")
            if 2 + len(uri) != len(body):
                raise ValueError("SipRegistration: bytes after uri")
            try:
                text = uri.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("SipRegistration.uri is not UTF-8") from None
            try:
                normaliseAor(text)
            except BadAor as exc:
                raise ValueError(f"SipRegistration.uri: {exc}") from None
            return cls(URI, uri=text)
        if kind == ROUTE:
            prefs = _opaque(body, 0, "contact_prefs")
            listed = _opaque(body, 2 + len(prefs), "destination_list")
            if 4 + len(prefs) + len(listed) != len(body):
                raise ValueError("SipRegistration: bytes after destination_list")
            if len(listed) < 3:
                raise ValueError(
                    f"SipRegistration.destination_list of {len(listed)} bytes:"
                    " at least 3 (RFC 7904 section 3.2)"
                )
            try:
                text = prefs.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("SipRegistration.contact_prefs is not UTF-8") from None
            destinations = decodeDestinations(listed, "SipRegistration.destination_list")
            return cls(ROUTE, contactPrefs=text, destinations=destinations)
        return cls(kind, extension=body)


def _opaque(data: bytes, pos: int, name: str) -> bytes:
    if pos + 2 > len(data):
        raise ValueError(f"SipRegistration.{name}: no length")
    (n,) = struct.unpack_from("!H", data, pos)
    if pos + 2 + n > len(data):
        raise ValueError(f"SipRegistration.{name}: length {n}, {len(data) - pos - 2} bytes left")
    return data[pos + 2 : pos + 2 + n]
