"""``twistd reload``: command-line options and the service of a RELOAD peer.

Everything an operator can get wrong on the command line is checked in
:meth:`Options.postOptions` and reported as a one-line usage error, before any
service starts: endpoint syntax, bootstrap addresses, the configuration
document, plugin names and usage options.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from twisted.application.service import IService
from twisted.python import usage
from twisted.python.filepath import FilePath

from reload.config import (
    ConfigError,
    OverlayConfiguration,
    defaultConfiguration,
    parseConfiguration,
)
from reload.endpoints import EndpointSyntaxError, checkServerEndpoint
from reload.link.table import DEFAULT_MAX_LINKS, SLOT_COUNT
from reload.link.tls import LinkSettings
from reload.logoptions import FORMATS, LEVELS
from reload.options import OneLineUsageErrors, checkDataDirectory, checkHostName, parseKind
from reload.plugins import PluginError, loadTopology, loadUsages
from reload.settings import (
    DEFAULT_CONFIGURATION_FILE,
    DEFAULT_DIRECT_LINKS,
    BootstrapAddress,
    PeerSettings,
)
from reload.usageruntime import UsageError, checkUsageOptions, usageKindConfigs, usageKinds

__all__ = ["Options", "makeService"]

#: Section 11.1 / IANA: the RELOAD port, for TCP (TLS) and UDP (DTLS).
DEFAULT_PORT = 6084
#: Configuration documents are small; refuse anything absurd before parsing.
MAX_CONFIG_FILE_SIZE = 1024 * 1024


def parseBootstrap(value: str) -> BootstrapAddress:
    """``HOST:PORT``, ``HOST`` (port 6084) or ``[IPv6]:PORT``."""
    host, port = value, str(DEFAULT_PORT)
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise usage.UsageError(f"--bootstrap {value!r}: missing ']' after the IPv6 address")
        host, rest = value[1:end], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise usage.UsageError(f"--bootstrap {value!r}: expected ':PORT' after ']'")
            port = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise usage.UsageError(
                f"--bootstrap {value!r}: {host!r} is not an IPv6 address"
            ) from None
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    elif value.count(":") > 1:
        raise usage.UsageError(f"--bootstrap {value!r}: write IPv6 addresses as [ADDRESS]:PORT")
    if not host:
        raise usage.UsageError(f"--bootstrap {value!r}: no host")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise usage.UsageError(f"--bootstrap {value!r}: port must be a number from 1 to 65535")
    return BootstrapAddress(host, int(port))


def loadConfigurationFile(path: str) -> OverlayConfiguration:
    """Read and validate an overlay configuration document (section 11.1)."""
    if path.startswith(("http://", "https://")):
        raise usage.UsageError(
            f"--config {path}: configuration by URL is fetched by the enrollment client, "
            "which this version does not have; download the document and pass its path"
        )
    fp = FilePath(path.removeprefix("file://"))
    if not fp.isfile():
        raise usage.UsageError(f"--config {path}: no such file")
    if fp.getsize() > MAX_CONFIG_FILE_SIZE:
        raise usage.UsageError(f"--config {path}: larger than {MAX_CONFIG_FILE_SIZE} bytes")
    try:
        return parseConfiguration(fp.getContent())
    except ConfigError as exc:
        raise usage.UsageError(f"--config {path}: {exc}") from None


_SIZE_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _storageSync(value: str) -> str:
    mode = value.strip().upper()
    if mode not in ("NORMAL", "FULL"):
        raise usage.UsageError(f"--storage-sync {value!r}: expected normal or full")
    return mode


def _directLinks(value: int | str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise usage.UsageError(f"--direct-links {value!r}: expected a whole number") from None
    if count < 0:
        raise usage.UsageError(f"--direct-links must be 0 or more, got {count}")
    if count > SLOT_COUNT:
        raise usage.UsageError(f"--direct-links must be at most {SLOT_COUNT}, got {count}")
    return count


#: The defaults of the link limits (reload.link.tls.LinkSettings).
_LINKS = LinkSettings()
#: --NAME: (lowest, highest, whole number) of the limit options.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "max-links": (1, SLOT_COUNT, True),
    "max-handshakes": (1, 4096, True),
    "max-handshakes-per-source": (1, 4096, True),
    "max-unproven-links-per-source": (1, 4096, True),
    "handshake-timeout": (0, 600, False),
    "max-malformed": (1, 100000, True),
    "log-keep": (0, 1000, True),
}


def parseQuota(value: str) -> int | None:
    """``--storage-quota``: a byte count with an optional k/M/G suffix, or
    ``none``."""
    text = value.strip().lower()
    if text == "none":
        return None
    number, suffix = (text[:-1], text[-1]) if text and text[-1] in "kmg" else (text, "")
    if not number.isdigit():
        raise usage.UsageError(f"--storage-quota {value!r}: not a size such as 500k, 64M or none")
    return int(number) * _SIZE_SUFFIXES[suffix]


def loopbackByDefault(endpoint: str) -> str:
    """``--admin``: a tcp endpoint that names no interface listens on
    127.0.0.1 (or a bare port number becomes ``tcp:PORT`` there), so the
    admin API is never reachable from other hosts by accident."""
    text = endpoint.strip()
    if text.isdigit():
        text = f"tcp:{text}"
    kind, _, rest = text.partition(":")
    if kind in ("tcp", "tcp6") and "interface=" not in rest:
        loopback = "127.0.0.1" if kind == "tcp" else "\\:\\:1"
        return f"{text}:interface={loopback}"
    return text


class Options(OneLineUsageErrors, usage.Options):
    """``twistd reload`` options."""

    commandName = "twistd reload"

    synopsis = "[options]"
    longdesc = (
        "Run a RELOAD (RFC 6940) overlay peer.  With no --config the peer uses the "
        "embedded default overlay (self-signed certificates, CHORD-RELOAD), so a first "
        "peer needs no set-up and a second one joins with --bootstrap."
    )

    optFlags = [
        [
            "client",
            None,
            "Use the overlay as a client (RFC 6940 section 4.2): attach to the peer "
            "responsible for this Node-ID through --bootstrap, route nothing, store nothing.",
        ],
        [
            "trace-messages",
            None,
            "Log one event per message sent, received and forwarded: method, transaction "
            "id, source, destination, via list length, size, link.",
        ],
    ]

    optParameters = [
        [
            "config",
            "c",
            None,
            "Path of the overlay configuration document (RFC 6940 section 11.1). "
            "Default: the embedded self-signed overlay.",
        ],
        [
            "data-dir",
            "d",
            "reload-data",
            "Directory for the peer's certificate, keys and stored data.",
        ],
        [
            "listen",
            "l",
            f"tcp:{DEFAULT_PORT}",
            "Twisted endpoint the overlay link listener binds, "
            f"e.g. tcp:{DEFAULT_PORT}:interface=127.0.0.1.",
        ],
        [
            "admin",
            "a",
            None,
            "Twisted endpoint for the HTTP admin API and status page, e.g. tcp:8084 "
            "(off by default). A tcp endpoint without interface= binds 127.0.0.1 only; "
            "give interface=0.0.0.0 to serve other hosts (they then need the token).",
        ],
        [
            "topology",
            "t",
            None,
            "Topology plugin name; must agree with the configuration's "
            "topology-plugin (default: the configuration's, CHORD-RELOAD).",
        ],
        [
            "user",
            None,
            None,
            "User name: the enrollment account (RFC 6940 section 11.3), or the "
            "user name a self-signed certificate carries.",
        ],
        ["password-file", None, None, "File holding the enrollment password (its first line)."],
        [
            "link-protocol",
            None,
            "tls",
            "Link protocol this peer prefers for the links it makes through Attach: tls "
            "(TLS-TCP-FH-NO-ICE) or dtls (DTLS-UDP-SR-NO-ICE, on the same port number over UDP).",
        ],
        [
            "advertise",
            None,
            None,
            "Address other peers reach this one at (default: the --listen interface).",
        ],
        [
            "turn-server",
            None,
            None,
            "IPv4ADDRESS:PORT of a TURN server (UDP) to allocate a relayed ICE candidate on "
            "(RFC 6940 section 6.5.1.5), from the DTLS/STUN port.  Without it, a peer "
            "behind a NAT running --usage TURN takes a relay from a TURN server found in "
            "the overlay (over TLS).",
        ],
        ["turn-user", None, None, "User name of the long-term TURN credential."],
        ["turn-password", None, None, "Password of the long-term TURN credential."],
        [
            "storage-quota",
            None,
            "64M",
            "Bytes of values one signer may have on this peer, replicas included (RFC 6940 "
            "section 13.5): a Store that would go beyond is refused; replica Stores are not. "
            "E.g. 500k, 64M, 1G; 0 refuses every Store, 'none' sets no bound.",
        ],
        [
            "storage-sync",
            None,
            "normal",
            "normal: a Store is answered once it is in SQLite's write-ahead log, which "
            "survives the peer being killed (its two replicas cover a power failure); "
            "full: also flushed to disk first, one fsync per Store on every holder.",
        ],
        [
            "direct-links",
            None,
            DEFAULT_DIRECT_LINKS,
            "With --client in a CHORD-RELOAD overlay: at most this many direct links to the "
            "peers that answered for the Resource-IDs it used, so later requests for their "
            "ranges skip the forwarding hops (RFC 6940 section 6.5.1); 0 routes everything "
            "through the client's one peer.",
        ],
        [
            "max-links",
            None,
            DEFAULT_MAX_LINKS,
            "Links to distinct Node-IDs this peer keeps (1 to 4096); when full, a new link "
            "evicts an inbound one that never carried a message, else the one idle longest.",
        ],
        [
            "max-handshakes",
            None,
            _LINKS.maxHandshakes,
            "Inbound TLS handshakes in progress at once (1 to 4096); when all are taken a new "
            "connection replaces the oldest.",
        ],
        [
            "max-handshakes-per-source",
            None,
            _LINKS.maxHandshakesPerSource,
            "TLS handshakes in progress from one IP address (1 to 4096).",
        ],
        [
            "max-unproven-links-per-source",
            None,
            _LINKS.maxUnprovenLinksPerSource,
            "Inbound links from one IP address that have not carried a message yet (1 to "
            "4096); links that carry messages do not count, so many peers may share an address.",
        ],
        [
            "handshake-timeout",
            None,
            _LINKS.handshakeTimeout,
            "Seconds from TCP connection to a verified peer (above 0, at most 600).",
        ],
        [
            "max-malformed",
            None,
            _LINKS.maxMalformed,
            f"Malformed messages a link may deliver in {_LINKS.malformedInterval:g} s before it "
            "is closed (1 to 100000).",
        ],
        [
            "log-keep",
            None,
            5,
            "Rotated log files twistd --logfile keeps (0 to 1000); older ones are removed.",
        ],
        [
            "log-level",
            None,
            "info",
            "Least severe events logged: debug, info, warn, error or critical.",
        ],
        [
            "log-format",
            None,
            "text",
            "text, or json: one JSON object per line (Twisted's jsonFileLogObserver) "
            "for log shippers, to --logfile or standard output.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["bootstrap"] = []
        self["usage"] = []
        self["usage-option"] = []
        self["admin-host"] = []
        self["kind"] = []

    def opt_bootstrap(self, value: str) -> None:
        """HOST:PORT of a peer to join through (repeatable; IPv6 as [ADDR]:PORT;
        the port defaults to 6084)."""
        self["bootstrap"].append(parseBootstrap(value))

    opt_b = opt_bootstrap

    def opt_admin_host(self, value: str) -> None:
        """A host name the admin API answers to besides IP addresses and
        localhost (repeatable): requests naming another Host are refused."""
        name = value.strip().lower().rstrip(".")
        if not name or any(c in name for c in "/:@ "):
            raise usage.UsageError(f"--admin-host {value!r}: expected a host name")
        self["admin-host"].append(name)

    def opt_kind(self, value: str) -> None:
        """ID[:MODEL[:POLICY]]: a Kind a new overlay lists (repeatable), so that
        reloadctl store can store text under it, e.g. --kind 0xf0000001 (an
        array under USER-MATCH); an existing overlay must list it already."""
        self["kind"].append(parseKind("--kind", value))

    def opt_usage(self, value: str) -> None:
        """Run the usage plugin of this name (repeatable), e.g. --usage SIP."""
        self["usage"].append(value)

    opt_u = opt_usage

    def opt_usage_option(self, value: str) -> None:
        """NAME:KEY=VALUE, an option for the usage NAME (repeatable)."""
        name, colon, pair = value.partition(":")
        key, equals, optionValue = pair.partition("=")
        if not (name and colon and key and equals):
            raise usage.UsageError(f"--usage-option {value!r}: expected NAME:KEY=VALUE")
        self["usage-option"].append((name, key, optionValue))

    def postOptions(self) -> None:
        # usage.Options coerces given values only, not the default.
        quota = self["storage-quota"]
        storageQuota = parseQuota(quota) if isinstance(quota, str) else quota
        storageSync = _storageSync(self["storage-sync"])
        directLinks = _directLinks(self["direct-links"])
        limits = {name: self._number(name, *bounds) for name, bounds in _RANGES.items()}
        logOptions = self._logOptions()
        try:
            checkServerEndpoint(self["listen"])
        except EndpointSyntaxError as exc:
            raise usage.UsageError(f"--listen {self['listen']!r}: {exc}") from None
        if self["admin"] is not None:
            given = self["admin"]
            try:
                checkServerEndpoint(given)
            except EndpointSyntaxError as exc:
                raise usage.UsageError(f"--admin {given!r}: {exc}") from None
            self["admin"] = loopbackByDefault(given)
        if self["link-protocol"] not in ("tls", "dtls"):
            raise usage.UsageError(
                f"--link-protocol {self['link-protocol']!r}: expected tls or dtls"
            )
        dataDir = FilePath(self["data-dir"])
        if dataDir.exists() and not dataDir.isdir():
            raise usage.UsageError(f"--data-dir {self['data-dir']}: exists and is not a directory")
        advertise = self["advertise"]
        if advertise is not None:
            advertise = checkHostName("--advertise", advertise)
        turnServer = self._turnServer()
        try:
            usages = loadUsages(self["usage"])
        except PluginError as exc:
            raise usage.UsageError(str(exc)) from None
        configuration = self._configuration(dataDir, usages)
        topologyName = self["topology"] or configuration.topologyPlugin
        if self["topology"] and self["topology"] != configuration.topologyPlugin:
            raise usage.UsageError(
                f"--topology {self['topology']}: the overlay configuration uses "
                f"{configuration.topologyPlugin}"
            )
        try:
            topology = loadTopology(topologyName)
        except PluginError as exc:
            raise usage.UsageError(str(exc)) from None
        usageOptions: dict[str, dict[str, str]] = {u.name: {} for u in usages}
        for name, key, value in self["usage-option"]:
            if name not in usageOptions:
                raise usage.UsageError(f"--usage-option {name}:{key}: usage {name} is not selected")
            known = dict(next(u for u in usages if u.name == name).options)
            if key not in known:
                names = ", ".join(sorted(known)) or "none"
                raise usage.UsageError(
                    f"--usage-option {name}:{key}: unknown option; {name} takes: {names}"
                )
            usageOptions[name][key] = value
        try:
            checkUsageOptions(usages, usageOptions)
            usageKinds(configuration, usages)
        except UsageError as exc:
            raise usage.UsageError(str(exc)) from None
        password = None
        if self["password-file"]:
            try:
                password = FilePath(self["password-file"]).getContent().decode().splitlines()[0]
            except (OSError, UnicodeDecodeError, IndexError) as exc:
                raise usage.UsageError(f"--password-file {self['password-file']}: {exc}") from None
        if self["client"] and not self["bootstrap"] and not configuration.bootstrapNodes:
            raise usage.UsageError(
                "--client: a client joins no ring and starts none; give it --bootstrap HOST:PORT"
            )
        linkSettings = dataclasses.replace(
            _LINKS,
            maxHandshakes=int(limits["max-handshakes"]),
            maxHandshakesPerSource=int(limits["max-handshakes-per-source"]),
            maxUnprovenLinksPerSource=int(limits["max-unproven-links-per-source"]),
            handshakeTimeout=limits["handshake-timeout"],
            maxMalformed=int(limits["max-malformed"]),
        )
        # Last: made here when missing, once everything else is right.
        checkDataDirectory("--data-dir", self["data-dir"])
        self["settings"] = PeerSettings(
            configuration=configuration,
            dataDir=dataDir,
            listen=self["listen"],
            admin=self["admin"],
            adminHosts=tuple(self["admin-host"]),
            bootstrap=tuple(self["bootstrap"]),
            topology=topology,
            usages=tuple(usages),
            usageOptions=usageOptions,
            userName=self["user"],
            password=password,
            advertise=advertise,
            turnServer=turnServer,
            turnUser=self["turn-user"],
            turnPassword=self["turn-password"],
            linkProtocol=self["link-protocol"],
            traceMessages=bool(self["trace-messages"]),
            client=bool(self["client"]),
            directLinks=directLinks,
            storageSync=storageSync,
            storageQuota=storageQuota,
            linkSettings=linkSettings,
            maxLinks=int(limits["max-links"]),
            logKeep=int(limits["log-keep"]),
            **logOptions,
        )

    def _turnServer(self) -> tuple[str, int] | None:
        """``--turn-server`` checked: an IPv4 address and a port, with a
        user and a password."""
        given = self["turn-server"]
        if given is None:
            if self["turn-user"] or self["turn-password"]:
                raise usage.UsageError("--turn-user/--turn-password: give --turn-server too")
            return None
        host, _, port = given.rpartition(":")
        try:
            address = str(ipaddress.IPv4Address(host))
            number = int(port)
        except ValueError:
            raise usage.UsageError(f"--turn-server {given!r}: expected IPv4ADDRESS:PORT") from None
        if not 1 <= number <= 65535:
            raise usage.UsageError(f"--turn-server {given!r}: port out of 1..65535")
        if not self["turn-user"] or self["turn-password"] is None:
            raise usage.UsageError("--turn-server: give --turn-user and --turn-password too")
        return (address, number)

    def _logOptions(self) -> dict[str, Any]:
        """``--log-level``, ``--log-format`` and where twistd was told to log."""
        level = str(self["log-level"]).strip().lower()
        if level not in LEVELS:
            raise usage.UsageError(
                f"--log-level {self['log-level']!r}: expected one of {', '.join(LEVELS)}"
            )
        format = str(self["log-format"]).strip().lower()
        if format not in FORMATS:
            raise usage.UsageError(f"--log-format {self['log-format']!r}: expected text or json")
        twistd = getattr(self, "parent", None) or {}
        if format == "json" and twistd.get("syslog"):
            raise usage.UsageError("--log-format json: twistd --syslog writes text to syslog")
        return {
            "logLevel": level,
            "logFormat": format,
            "logFile": twistd.get("logfile") or None,
            "noDaemon": bool(twistd.get("nodaemon")),
        }

    def _number(self, name: str, low: float, high: float, integer: bool) -> float:
        """``--NAME``'s value, checked against its range (one-line error)."""
        text = str(self[name])
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise usage.UsageError(f"--{name} {text!r}: expected {kind}") from None
        if not (low <= value <= high) or (not integer and value <= 0):
            raise usage.UsageError(f"--{name} must be from {low:g} to {high:g}, got {text}")
        return value

    def _configuration(
        self,
        dataDir: FilePath,  # type: ignore[type-arg]
        usages: list[Any],
    ) -> OverlayConfiguration:
        """The overlay configuration: --config, or the one this data
        directory's overlay was started with, or the embedded default (which
        the node then writes there, so the overlay keeps it).  A new default
        overlay lists the Kinds of the usages this peer runs: the peer
        creating an overlay decides what it stores (section 11.1)."""
        stored = dataDir.child(DEFAULT_CONFIGURATION_FILE)
        if self["config"] or stored.exists():
            path = self["config"] or stored.path
            configuration = loadConfigurationFile(path)
            for kind in self["kind"]:
                if configuration.kind(kind.kindId or 0) is None:
                    raise usage.UsageError(
                        f"--kind {kind.kindId:#x}: the overlay configuration {path} does not "
                        "list it; only a peer starting a new overlay adds Kinds (add a "
                        "<kind-block> to the configuration, or start with a new --data-dir)"
                    )
            return configuration
        default = defaultConfiguration()
        try:
            wanted = (*usageKindConfigs(usages), *self["kind"])
        except UsageError as exc:
            raise usage.UsageError(str(exc)) from None
        added: dict[int, Any] = {}
        for kind in wanted:
            if default.kind(kind.kindId or 0) is None:
                added.setdefault(kind.kindId or 0, kind)
        return dataclasses.replace(default, kinds=default.kinds + tuple(added.values()))


def makeService(options: dict[str, Any]) -> IService:
    """Build the peer's service tree from parsed :class:`Options`."""
    from twisted.internet import reactor

    from reload.node import Node

    return Node(options["settings"], reactor)
