"""SIP messages (RFC 3261 section 7): a small sans-I/O parser, serialiser
and stream framer.

**Why not a library.**  ``twisted.protocols.sip`` parses RFC 2543-era
messages, is UDP-only and frames a stream by a Content-Length it does not
find in its compact form (``l:``).  ``sipmessage`` (PyPI, BSD-2, pure
Python) parses and serialises RFC 3261 messages, but frames no streams, so
TCP and the AppAttach connections would still need the framing here, and
it turns header values into objects where a proxy must pass most of them
on untouched.  A proxy needs exactly: the start line, the header fields in
order with their raw values (compact names expanded, RFC 3261 section
7.3.3), the comma lists of Via, Route, Record-Route and Contact split
outside quotes and angle brackets (section 7.3.1), URI parameters, and the
body cut at Content-Length; and on streams the section 18.3 framing
(Content-Length required) with RFC 5626 section 3.5.1 CRLF keepalives.
That is this module, ~300 lines with no dependency, each rule tested.

Everything malformed raises :class:`SipParseError` with a reason; the
front end answers it with 400 where it can (section 21.4.1) and never
crashes.  Sizes are bounded (:data:`MAX_MESSAGE`, :data:`MAX_HEADERS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_HEADERS",
    "MAX_MESSAGE",
    "SipMessage",
    "SipParseError",
    "StreamFramer",
    "Uri",
    "parseDatagram",
    "parseMessage",
    "parseParams",
    "splitValues",
]

#: The largest message accepted (RFC 3261 leaves it open; a datagram is
#: at most 65,535 bytes, and no phone sends more than a few kilobytes).
MAX_MESSAGE = 65535
#: The most header fields of one message.
MAX_HEADERS = 128
#: Section 7.3.3: compact forms (and those of later RFCs phones use).
COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
}
#: Canonical spellings of the header names this code reads or writes.
_CANONICAL = {
    name.lower(): name
    for name in (
        *COMPACT.values(),
        "CSeq",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Expires",
        "Allow",
        "Date",
        "Server",
        "User-Agent",
        "WWW-Authenticate",
        "Authorization",
        "Warning",
    )
}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_STATUS = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")
_REQUEST = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/2\.0$")


class SipParseError(ValueError):
    """Bytes that are not a SIP message (or one too large); the reason
    says what is wrong."""


def canonicalName(name: str) -> str:
    """The long, canonical spelling of a header name."""
    lowered = name.lower()
    if lowered in COMPACT:
        return COMPACT[lowered]
    found = _CANONICAL.get(lowered)
    if found is not None:
        return found
    return "-".join(part.capitalize() for part in name.split("-"))


def splitValues(value: str) -> list[str]:
    """A comma-separated header value split into its values, outside
    quoted strings and angle brackets (section 7.3.1)."""
    out: list[str] = []
    current: list[str] = []
    quoted = angle = False
    escaped = False
    for c in value:
        if escaped:
            escaped = False
        elif quoted and c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif not quoted and c == "<":
            angle = True
        elif not quoted and c == ">":
            angle = False
        elif c == "," and not quoted and not angle:
            out.append("".join(current).strip())
            current = []
            continue
        current.append(c)
    last = "".join(current).strip()
    if last or out:
        out.append(last)
    return [v for v in out if v]


def parseParams(text: str) -> dict[str, str]:
    """``;name=value;flag`` parameters (lower-cased names, flag -> '')."""
    params: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return params


@dataclass(slots=True)
class Uri:
    """A SIP URI (section 19.1): ``scheme:user@host:port;params``; headers
    (``?...``) are kept as text."""

    scheme: str
    user: str
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)
    headers: str = ""

    @classmethod
    def parse(cls, text: str) -> Uri:
        text = text.strip()
        if text.startswith("<") or "<" in text:
            start, end = text.find("<"), text.find(">")
            if start < 0 or end < start:
                raise SipParseError(f"unbalanced <> in {text!r}")
            text = text[start + 1 : end]
        scheme, colon, rest = text.partition(":")
        if not colon or scheme.lower() not in ("sip", "sips"):
            raise SipParseError(f"{text!r} is not a sip: or sips: URI")
        rest, _, headers = rest.partition("?")
        rest, _, params = rest.partition(";")
        user, at, hostport = rest.rpartition("@")
        if not at:
            user, hostport = "", rest
        if hostport.startswith("["):
            close = hostport.find("]")
            if close < 0:
                raise SipParseError(f"unbalanced [] in {text!r}")
            host, portText = hostport[1:close], hostport[close + 1 :].lstrip(":")
        else:
            host, _, portText = hostport.partition(":")
        if not host:
            raise SipParseError(f"{text!r} has no host")
        port = None
        if portText:
            if not portText.isdigit() or not 0 < int(portText) <= 65535:
                raise SipParseError(f"{text!r} has a bad port")
            port = int(portText)
        return cls(scheme.lower(), user, host, port, parseParams(params), headers)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}:{self.user + '@' if self.user else ''}{host}"
        if self.port is not None:
            text += f":{self.port}"
        for name, value in self.params.items():
            text += f";{name}={value}" if value else f";{name}"
        if self.headers:
            text += "?" + self.headers
        return text


@dataclass(slots=True)
class SipMessage:
    """A request (``method`` and ``uri`` set) or a response (``status``
    set); header fields in order with canonical names and raw values."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def isRequest(self) -> bool:
        return bool(self.method)

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (whole field), or None."""
        name = canonicalName(name)
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def values(self, name: str) -> list[str]:
        """Every value of ``name``, comma lists split (section 7.3.1)."""
        name = canonicalName(name)
        out: list[str] = []
        for key, value in self.headers:
            if key == name:
                out.extend(splitValues(value))
        return out

    def setValues(self, name: str, values: list[str]) -> None:
        """Replace every ``name`` field by one field per value, where the
        first one was (or at the end)."""
        name = canonicalName(name)
        at = next((i for i, (k, _) in enumerate(self.headers) if k == name), len(self.headers))
        kept = [(k, v) for k, v in self.headers[:at] if k != name]
        rest = [(k, v) for k, v in self.headers[at:] if k != name]
        self.headers = kept + [(name, v) for v in values] + rest

    def set(self, name: str, value: str) -> None:
        self.setValues(name, [value])

    def remove(self, name: str) -> None:
        self.setValues(name, [])

    def prepend(self, name: str, value: str) -> None:
        """Add ``value`` as the first of ``name`` (a Via, a Record-Route)."""
        self.setValues(name, [value, *self.values(name)])

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of CSeq; SipParseError when malformed."""
        raw = self.get("CSeq") or ""
        number, _, method = raw.strip().partition(" ")
        if not number.isdigit() or not _TOKEN.match(method.strip()):
            raise SipParseError(f"CSeq {raw!r} is malformed")
        return int(number), method.strip()

    def serialise(self) -> bytes:
        """The message's bytes, Content-Length set to the body's length."""
        if self.isRequest:
            lines = [f"{self.method} {self.uri} SIP/2.0"]
        else:
            lines = [f"SIP/2.0 {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def _parseHead(head: bytes) -> SipMessage:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("the header is not UTF-8") from None
    lines = text.split("\r\n")
    first = lines[0]
    message = SipMessage()
    status = _STATUS.match(first)
    if status:
        message.status, message.reason = int(status.group(1)), status.group(2)
    else:
        request = _REQUEST.match(first)
        if not request:
            raise SipParseError(f"{first[:80]!r} is not a SIP request or status line")
        message.method, message.uri = request.group(1).upper(), request.group(2)
    fields: list[list[str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            if not fields:
                raise SipParseError("a continuation line before any header")
            fields[-1][1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name or not _TOKEN.match(name):
            raise SipParseError(f"{line[:80]!r} is not a header field")
        fields.append([name, value.strip()])
        if len(fields) > MAX_HEADERS:
            raise SipParseError(f"more than {MAX_HEADERS} header fields")
    message.headers = [(canonicalName(n), v) for n, v in fields]
    return message


def _contentLength(message: SipMessage) -> int | None:
    raw = message.values("Content-Length")
    if not raw:
        return None
    if len(set(raw)) != 1 or not raw[0].isdigit():
        raise SipParseError(f"Content-Length {', '.join(raw)!r} is malformed")
    length = int(raw[0])
    if length > MAX_MESSAGE:
        raise SipParseError(f"Content-Length {length} is larger than {MAX_MESSAGE}")
    return length


def parseMessage(data: bytes) -> SipMessage:
    """One whole message (head and body) as :func:`parseDatagram` reads it."""
    return parseDatagram(data)


def parseDatagram(data: bytes) -> SipMessage:
    """The message of one UDP datagram (section 18.3): the body is what
    follows the blank line, cut at Content-Length; a Content-Length
    larger than what came is an error."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError(f"a message of {len(data)} bytes is larger than {MAX_MESSAGE}")
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        raise SipParseError("no blank line ends the header")
    message = _parseHead(head.lstrip(b"\r\n"))
    length = _contentLength(message)
    if length is None:
        message.body = rest
    elif length > len(rest):
        raise SipParseError(f"Content-Length {length} but {len(rest)} bytes of body")
    else:
        message.body = rest[:length]
    return message


class StreamFramer:
    """Section 18.3 framing over a stream (TCP, TLS): feed bytes, get
    whole messages; Content-Length is required.  A double CRLF between
    messages is an RFC 5626 keepalive ping: :attr:`pings` counts those
    the caller has to answer with one CRLF.  After an error the stream
    cannot be resynchronised: close it."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.pings = 0
        self._crlfs = 0

    def feed(self, data: bytes) -> list[SipMessage]:
        self._buffer += data
        out: list[SipMessage] = []
        while True:
            buffer = self._buffer
            # Leading CRLFs: keepalives (RFC 5626 section 3.5.1).
            skipped = 0
            while buffer[skipped : skipped + 2] == b"\r\n":
                skipped += 2
                self._crlfs += 1
                if self._crlfs == 2:  # a double CRLF: a ping
                    self.pings += 1
                    self._crlfs = 0
            if skipped:
                del buffer[:skipped]
            if bytes(buffer[:1]) not in (b"", b"\r"):
                self._crlfs = 0
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_MESSAGE:
                    raise SipParseError(f"a header longer than {MAX_MESSAGE} bytes")
                return out
            message = _parseHead(bytes(buffer[:end]))
            length = _contentLength(message)
            if length is None:
                raise SipParseError("no Content-Length on a stream (RFC 3261 section 18.3)")
            total = end + 4 + length
            if len(buffer) < total:
                if total > MAX_MESSAGE:
                    raise SipParseError(f"a message of {total} bytes is larger than {MAX_MESSAGE}")
                return out
            message.body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            out.append(message)
