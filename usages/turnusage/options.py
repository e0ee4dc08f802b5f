"""The TURN usage's options (``--usage-option TURN:KEY=VALUE``), checked
before the peer starts: :func:`parseOptions` raises ValueError with one
line naming the option."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from .advertiser import DEFAULT_LIFETIME

__all__ = ["BUILT_IN_ONLY", "OPTIONS", "TurnOptions", "parseHostPort", "parseOptions"]

#: RFC 8656 section 4: the default port of TURN over UDP and TCP.
DEFAULT_PORT = 3478
#: RFC 8656 section 7.2 (and RFC 6335): relayed addresses come from the
#: dynamic port range unless the operator says otherwise.
DEFAULT_RELAY_PORTS = (49152, 65535)

OPTIONS = {
    "serve": "yes (default): run or stand for a TURN server; no: only find them",
    "advertise": "auto (only a public address, not behind a NAT: RFC 6940 section 9),"
    " always, or never",
    "external": "HOST:PORT of a TURN server already running (coturn) to advertise instead"
    " of running the built-in one",
    "address": "IP address the built-in server is advertised at (default: host)",
    "host": "IP address the built-in server listens on (default 0.0.0.0: then give address)",
    "udp-port": f"UDP port of the built-in server (default {DEFAULT_PORT}; 0 any free port)",
    "tcp-port": f"TCP port of the built-in server (default {DEFAULT_PORT}; 0 any; off)",
    "tls-port": "TLS port of the built-in server (default off; 0 any free port; same: the"
    " udp-port number, where overlay members look for it): overlay members allocate with"
    " their overlay certificate, no password, as user node:NODE-ID",
    "realm": "REALM of long-term credentials (default the overlay name)",
    "users": "file of USER:PASSWORD lines: the long-term credential users of standard clients",
    "relay-ports": "LO-HI: the ports relayed addresses use (default 49152-65535)",
    "relay-host": "IP address relayed addresses use (default: address)",
    "allow-loopback": "yes: relay to loopback peers too (labs only; default no)",
    "deny": "comma-separated CIDRs the built-in server never relays to (besides its own)",
    "max-allocations": "most allocations at once (default the server's)",
    "max-allocations-per-user": "most allocations of one user (486 beyond, default the server's)",
    "max-relay-rate": "most relayed bytes per second in all (default the server's)",
    "lifetime": f"seconds an advertisement lives (default {DEFAULT_LIFETIME})",
    "discovery": "find (RFC 6940 section 9) or redir (RFC 7374 turn-server namespace;"
    " needs --usage REDIR)",
    "cache": "TURN servers a peer keeps found (default 8)",
    "check-timeout": "seconds a STUN Binding check of a found server waits (default 2)",
}

#: The options that configure the built-in server, which ``external`` replaces.
BUILT_IN_ONLY = (
    "address",
    "host",
    "udp-port",
    "tcp-port",
    "tls-port",
    "realm",
    "users",
    "relay-ports",
    "relay-host",
    "allow-loopback",
    "deny",
    "max-allocations",
    "max-allocations-per-user",
    "max-relay-rate",
)


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """The options, parsed."""

    serve: bool = True
    advertise: str = "auto"
    external: tuple[str, int] | None = None
    address: str | None = None
    host: str = "0.0.0.0"
    udpPort: int = DEFAULT_PORT
    tcpPort: int | None = DEFAULT_PORT
    tlsPort: int | None = None
    realm: str | None = None
    users: str | None = None
    relayPorts: tuple[int, int] = DEFAULT_RELAY_PORTS
    relayHost: str | None = None
    allowLoopback: bool = False
    deny: tuple[str, ...] = ()
    maxAllocations: int | None = None
    maxAllocationsPerUser: int | None = None
    maxRelayRate: int | None = None
    lifetime: int = DEFAULT_LIFETIME
    discovery: str = "find"
    cache: int = 8
    checkTimeout: float = 2.0

    @property
    def advertisedHost(self) -> str | None:
        """The host the server is advertised at: external's, ``address``,
        else ``host`` unless it is a wildcard."""
        if self.external is not None:
            return self.external[0]
        if self.address is not None:
            return self.address
        return None if ipaddress.ip_address(self.host).is_unspecified else self.host


def parseHostPort(text: str, key: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` with an IP address HOST."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{key}: {text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return _ip(host, key), _int(port, key, 1, 65535, "a port")


def _ip(text: str, key: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not an IP address") from None


def _int(text: str, key: str, low: int, high: int, what: str = "a whole number") -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not {what}") from None
    if not low <= value <= high:
        raise ValueError(f"{key}: {value} is not between {low} and {high}")
    return value


def _choice(options: Mapping[str, str], key: str, choices: tuple[str, ...], default: str) -> str:
    value = options.get(key, default)
    if value not in choices:
        raise ValueError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    return value


def parseOptions(options: Mapping[str, str]) -> TurnOptions:
    """The options, or ValueError("KEY: what is wrong")."""
    get = options.get
    external = None
    if "external" in options:
        external = parseHostPort(options["external"], "external")
        for key in BUILT_IN_ONLY:
            if key in options:
                raise ValueError(f"{key}: configures the built-in server, not an external one")
    serve = _choice(options, "serve", ("yes", "no"), "yes") == "yes"
    if not serve:
        for key in (*BUILT_IN_ONLY, "external", "advertise", "lifetime"):
            if key in options:
                raise ValueError(f"{key}: configures a server, but serve=no")
    advertise = _choice(options, "advertise", ("auto", "always", "never"), "auto")
    discovery = _choice(options, "discovery", ("find", "redir"), "find")
    allow = _choice(options, "allow-loopback", ("yes", "no"), "no")
    tcpPort: int | None = DEFAULT_PORT
    if "tcp-port" in options:
        tcpPort = (
            None
            if options["tcp-port"] == "off"
            else _int(options["tcp-port"], "tcp-port", 0, 65535, "a port")
        )
    udpPort = _int(get("udp-port", str(DEFAULT_PORT)), "udp-port", 0, 65535, "a port")
    tlsPort: int | None = None
    if options.get("tls-port") == "same":
        # RFC 6940 section 9 carries one address: members find TURN over
        # TLS (RFC 8656 section 3.1) on TCP at its port number.
        if udpPort == 0:
            raise ValueError("tls-port: same needs a fixed udp-port, not 0")
        tlsPort = udpPort
        if tcpPort == tlsPort:
            if "tcp-port" in options:
                raise ValueError(
                    f"tcp-port: {tcpPort} is the TCP port of tls-port=same; choose another or off"
                )
            tcpPort = None  # the default TCP port gives way to TLS
    elif options.get("tls-port", "off") != "off":
        tlsPort = _int(options["tls-port"], "tls-port", 0, 65535, "a port, same or off")
    relayPorts = DEFAULT_RELAY_PORTS
    if "relay-ports" in options:
        low, dash, high = options["relay-ports"].partition("-")
        if not dash:
            raise ValueError(f"relay-ports: {options['relay-ports']!r} is not LO-HI")
        relayPorts = (_int(low, "relay-ports", 1, 65535, "a port"),
                      _int(high, "relay-ports", 1, 65535, "a port"))  # fmt: skip
        if relayPorts[0] > relayPorts[1]:
            raise ValueError(f"relay-ports: {relayPorts[0]} is above {relayPorts[1]}")

    def optionalInt(key: str, low: int = 1, high: int = 2**31 - 1) -> int | None:
        return None if key not in options else _int(options[key], key, low, high)

    deny = []
    for part in options.get("deny", "").split(","):
        if part.strip():
            try:
                deny.append(str(ipaddress.ip_network(part.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"deny: {part.strip()!r} is not an address or CIDR") from None
    checkTimeout = 2.0
    if "check-timeout" in options:
        try:
            checkTimeout = float(options["check-timeout"])
        except ValueError:
            raise ValueError(
                f"check-timeout: {options['check-timeout']!r} is not seconds"
            ) from None
        if not 0.05 <= checkTimeout <= 60:
            raise ValueError(f"check-timeout: {checkTimeout} is not between 0.05 and 60 seconds")
    users = get("users")
    if users is not None and not users:
        raise ValueError("users: empty file name")
    realm = get("realm")
    if realm is not None and not realm:
        raise ValueError("realm: empty")
    parsed = TurnOptions(
        serve=serve,
        advertise=advertise,
        external=external,
        address=None if "address" not in options else _ip(options["address"], "address"),
        host=_ip(get("host", "0.0.0.0"), "host"),
        udpPort=udpPort,
        tcpPort=tcpPort,
        tlsPort=tlsPort,
        realm=realm,
        users=users,
        relayPorts=relayPorts,
        relayHost=None if "relay-host" not in options else _ip(options["relay-host"], "relay-host"),
        allowLoopback=allow == "yes",
        deny=tuple(deny),
        maxAllocations=optionalInt("max-allocations"),
        maxAllocationsPerUser=optionalInt("max-allocations-per-user"),
        maxRelayRate=optionalInt("max-relay-rate"),
        lifetime=_int(get("lifetime", str(DEFAULT_LIFETIME)), "lifetime", 10, 0xFFFFFFFF),
        discovery=discovery,
        cache=_int(get("cache", "8"), "cache", 1, 1000),
        checkTimeout=checkTimeout,
    )
    if (
        serve
        and parsed.external is None
        and parsed.advertise != "never"
        and parsed.advertisedHost is None
    ):
        raise ValueError(
            f"address: the built-in server listens on {parsed.host}, so say which address"
            " it is advertised at (or advertise=never)"
        )
    return parsed
