"""Typed values of the configuration document (XML Schema datatypes).

RFC 6940 section 11.1 types its elements with XML Schema datatypes
(xsd:boolean, xsd:int, xsd:unsignedInt, xsd:dateTime, xsd:base64Binary...)
and says that whitespace processing follows XML Schema: surrounding
whitespace is not part of a value (the RFC's own example has
``<topology-plugin> CHORD-RELOAD </topology-plugin>``).  Each parser takes the
raw text and the path used in the error message, and either returns the value
or raises a one-line :class:`~reload.config.errors.ConfigError`.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from reload.config.errors import configError

__all__ = [
    "formatBoolean",
    "formatDateTime",
    "parseAddress",
    "parseBase64",
    "parseBoolean",
    "parseDateTime",
    "parseDnsName",
    "parseHex",
    "parseHttpsUrl",
    "parseInteger",
    "parseToken",
    "quote",
]

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DATETIME = re.compile(
    r"(-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def quote(text: str, limit: int = 60) -> str:
    """A value as shown in an error: quoted, escaped, cut to ``limit`` chars."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def parseToken(text: str, path: str) -> str:
    """A non-empty string with surrounding whitespace removed."""
    value = text.strip()
    if not value:
        raise configError(path, "is empty")
    return value


def parseBoolean(text: str, path: str) -> bool:
    """xsd:boolean: ``true``, ``false``, ``1`` or ``0`` (case matters, as in XSD)."""
    value = text.strip()
    try:
        return _BOOLEANS[value]
    except KeyError:
        raise configError(path, f"{quote(value)} is not a boolean (true, false, 1 or 0)") from None


def formatBoolean(value: bool) -> str:
    return "true" if value else "false"


def parseInteger(
    text: str, path: str, low: int, high: int, what: str = "an integer", why: str = ""
) -> int:
    """An integer in ``low..high``; ``what`` names the type in the error.

    Python's ``int()`` would also take ``1_000`` and non-ASCII digits, which
    XML Schema does not: the lexical form is checked first.
    """
    value = text.strip()
    if not _INTEGER.fullmatch(value):
        raise configError(path, f"{quote(value)} is not {what}")
    number = int(value)
    if not low <= number <= high:
        reason = f"{number} is out of range {low}..{high}"
        raise configError(path, f"{reason} ({why})" if why else reason)
    return number


def parseDateTime(text: str, path: str) -> datetime:
    """xsd:dateTime in UTC (section 11.1: RFC 3339 format, specified in UTC).

    A time without a zone is refused rather than guessed; an explicit offset
    is converted to UTC.  Fractions beyond microseconds are truncated.
    """
    value = text.strip()
    match = _DATETIME.fullmatch(value)
    if not match:
        raise configError(path, f"{quote(value)} is not a date and time (YYYY-MM-DDThh:mm:ssZ)")
    whole, fraction, zone = match.groups()
    if zone is None:
        raise configError(path, f"{quote(value)} has no time zone (section 11.1 requires UTC)")
    micro = (fraction or ".")[1:7].ljust(6, "0")
    iso = f"{whole}.{micro}{'+00:00' if zone == 'Z' else zone}"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC)
    except (ValueError, OverflowError):
        raise configError(path, f"{quote(value)} is not a valid date and time") from None


def formatDateTime(value: datetime) -> str:
    """The RFC 3339 form, in UTC, with a ``Z`` and microseconds only if any."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc:%H:%M:%S}"
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def parseBase64(text: str, path: str) -> bytes:
    """xsd:base64Binary; whitespace (line breaks in certificates) is ignored."""
    value = "".join(text.split())
    if not value:
        raise configError(path, "is empty (expected base64)")
    if not _BASE64.fullmatch(value) or len(value) % 4:
        raise configError(path, f"{quote(value)} is not valid base64")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error:
        raise configError(path, f"{quote(value)} is not valid base64") from None


def parseHex(text: str, path: str) -> str:
    """A Node-ID in hexadecimal (kind-signer, configuration-signer, bad-node).

    The RFC's example uses 8-byte values, so the length is not checked
    against node-id-length; it must be whole bytes.
    """
    value = text.strip()
    if not _HEX.fullmatch(value):
        raise configError(path, f"{quote(value)} is not a hexadecimal Node-ID")
    return value


def parseDnsName(text: str, path: str) -> str:
    """A DNS name (RFC 1035 section 2.3.1, digits first allowed per RFC 1123).

    Section 6.3.2: the overlay name "MUST consist of a sequence of characters
    that would be allowable as a DNS name", since it is looked up in the DNS
    (section 11.2) and hashed into every forwarding header.
    """
    value = text.strip()
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise configError(path, f"{quote(value)} is not a DNS name")
    return value


def parseAddress(text: str, path: str) -> str:
    """A bootstrap address: IPv4, IPv6 (RFC 5952 text) or a host name."""
    value = text.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if ":" in value or not re.search(r"[A-Za-z-]", value):
            raise configError(path, f"{quote(value)} is not an IP address") from None
        try:
            parseDnsName(value, path)
        except ValueError:
            raise configError(path, f"{quote(value)} is not an IP address or host name") from None
    return value


def parseHttpsUrl(text: str, path: str) -> str:
    """An enrollment server URL, which section 11.1 says MUST be ``https:``."""
    value = text.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise configError(path, f"{quote(value)} is not a URL") from None
    if parts.scheme.lower() != "https" or not parts.hostname or any(c.isspace() for c in value):
        raise configError(path, f"{quote(value)} is not an https: URL (section 11.1)")
    return value
