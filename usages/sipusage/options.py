"""``--usage-option SIP:KEY=VALUE``: what each key means and its parser.

======================  ================================================
``listen``              the front end's address, ``HOST:PORT`` (UDP and
                        TCP), default ``127.0.0.1:5060``; ``none`` runs
                        no front end (the Python API and reloadctl only)
``tls-listen``          ``HOST:PORT`` of a TLS listener for phones (same
                        host as ``listen``; default none)
``tls-certificate``     PEM file with the TLS listener's certificate and
                        key (default: a self-signed one made at start)
``passwords``           a file of ``AOR:PASSWORD`` lines: phones must prove
                        the password with digest authentication (default:
                        none asked)
``max-depth``           AoR -> AoR steps resolution follows (default 8)
``lifetime``            seconds a registration made with ``reloadctl sip
                        register`` lives (default 3600)
``max-expires``         the most seconds a phone's REGISTER is granted
                        (default 3600; RFC 3261 section 10.2.1.1)
======================  ================================================
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from usages.sipusage.digest import loadPasswords
from usages.sipusage.resolver import MAX_DEPTH

__all__ = ["DEFAULT_LISTEN", "OPTIONS", "SipOptions", "parseEndpoint", "parseOptions"]

DEFAULT_LISTEN = "127.0.0.1:5060"

OPTIONS = {
    "listen": (
        "the SIP front end's HOST:PORT, UDP and TCP (default 127.0.0.1:5060); none: no front end"
    ),
    "tls-listen": "HOST:PORT of a TLS listener for phones, on the listen host (default none)",
    "tls-certificate": "PEM file: the TLS listener's certificate and key (default self-signed)",
    "passwords": "file of AOR:PASSWORD lines; phones must authenticate (default: none asked)",
    "max-depth": f"AoR -> AoR steps a resolution follows (default {MAX_DEPTH})",
    "lifetime": "seconds a registration made with reloadctl sip register lives (default 3600)",
    "max-expires": "the most seconds a phone's REGISTER is granted (default 3600)",
}


@dataclass(frozen=True, slots=True)
class SipOptions:
    listen: tuple[str, int] | None = ("127.0.0.1", 5060)
    tlsListen: tuple[str, int] | None = None
    tlsCertificate: str | None = None
    passwords: dict[str, str] | None = None
    maxDepth: int = MAX_DEPTH
    lifetime: int = 3600
    maxExpires: int = 3600


def parseEndpoint(text: str, key: str = "listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6); ValueError naming what is wrong."""
    host, colon, port = text.strip().rpartition(":")
    if not colon or not host:
        raise ValueError(f"{key}: {text!r} is not HOST:PORT")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{key}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{key}: {port!r} is not a port (0 to 65535)")
    return host, int(port)


def _integer(options: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{key}: {value} is not between {low} and {high}")
    return value


def parseOptions(options: Mapping[str, str]) -> SipOptions:
    """The options of ``--usage-option SIP:...``; ValueError("KEY: why")."""
    for key in options:
        if key not in OPTIONS:
            raise ValueError(f"{key}: not an option of SIP (one of {', '.join(OPTIONS)})")
    raw = options.get("listen", DEFAULT_LISTEN)
    listen = None if raw.strip().lower() == "none" else parseEndpoint(raw)
    tlsListen = None
    if options.get("tls-listen", "none").strip().lower() != "none":
        tlsListen = parseEndpoint(options["tls-listen"], "tls-listen")
        if listen is None or tlsListen[0] != listen[0]:
            raise ValueError("tls-listen: needs listen, on the same host")
    certificate = options.get("tls-certificate") or None
    if certificate is not None:
        try:
            with open(certificate, "rb") as pem:
                text = pem.read()
        except OSError as exc:
            raise ValueError(f"tls-certificate: {certificate}: {exc.strerror}") from None
        if b"PRIVATE KEY" not in text or b"CERTIFICATE" not in text:
            raise ValueError(f"tls-certificate: {certificate} lacks a certificate or a key")
    passwords = None
    if options.get("passwords"):
        try:
            passwords = loadPasswords(options["passwords"])
        except OSError as exc:
            raise ValueError(f"passwords: {options['passwords']}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"passwords: {exc}") from None
    return SipOptions(
        listen=listen,
        passwords=passwords,
        tlsListen=tlsListen,
        tlsCertificate=certificate,
        maxDepth=_integer(options, "max-depth", MAX_DEPTH, 0, 64),
        lifetime=_integer(options, "lifetime", 3600, 10, 86400 * 7),
        maxExpires=_integer(options, "max-expires", 3600, 10, 86400),
    )
