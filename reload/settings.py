"""What a peer is started with, gathered and checked by :mod:`reload.tap`."""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.python.filepath import FilePath

from reload.config import OverlayConfiguration
from reload.interfaces import ITopologyPlugin, IUsage
from reload.link.table import DEFAULT_MAX_LINKS
from reload.link.tls import LinkSettings

#: Direct links a CHORD-RELOAD client keeps (``ITopologyPlugin.makeClientTopology``) when none
#: is configured: a few dozen covers a small overlay whole and the busy
#: part of a large one.
DEFAULT_DIRECT_LINKS = 32

#: Where a data directory keeps the configuration of its overlay (the
#: embedded default, or the --config document it was first started with).
DEFAULT_CONFIGURATION_FILE = "overlay.xml"


@dataclass(frozen=True)
class BootstrapAddress:
    """A peer to join through (``--bootstrap``), section 11.1 bootstrap-node."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PeerSettings:
    """Everything ``twistd reload`` was told, validated."""

    configuration: OverlayConfiguration
    dataDir: FilePath  # type: ignore[type-arg]
    listen: str
    topology: ITopologyPlugin
    admin: str | None = None
    #: Host names (besides IP literals and localhost) the admin API answers to.
    adminHosts: tuple[str, ...] = ()
    bootstrap: tuple[BootstrapAddress, ...] = ()
    usages: tuple[IUsage, ...] = ()
    usageOptions: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Enrollment credentials (section 11.3) or, for self-signed
    #: certificates, the user name to put in them.
    userName: str | None = None
    password: str | None = field(default=None, repr=False)
    #: The address other peers are told to reach this one at.
    advertise: str | None = None
    #: The link protocol this peer prefers in its Attach candidates:
    #: "tls" (TLS-TCP-FH-NO-ICE) or "dtls" (DTLS-UDP-SR-NO-ICE).
    linkProtocol: str = "tls"
    #: A TURN server (IPv4 address, port) and its long-term credential:
    #: the relayed ICE candidate's allocation (RFC 6940 section 6.5.1.5).
    turnServer: tuple[str, int] | None = None
    turnUser: str | None = None
    turnPassword: str | None = field(default=None, repr=False)
    #: Log one event per message sent, received and forwarded.
    traceMessages: bool = False
    #: Bytes of values one signer may store here (section 13.5); None: no bound.
    storageQuota: int | None = 64 << 20
    #: SQLite's synchronous mode for the stored data: NORMAL or FULL.
    storageSync: str = "NORMAL"
    #: A CHORD-RELOAD client's direct links to responsible peers (0: none).
    directLinks: int = DEFAULT_DIRECT_LINKS
    #: Use the overlay as a client (section 4.2): attach, never join.
    client: bool = False
    #: TLS link limits (handshakes, per-source limits, timeouts, malformed
    #: input); the overlay's max-message-size replaces its maxMessageSize.
    linkSettings: LinkSettings = field(default_factory=LinkSettings)
    #: Size of the connection table (links to distinct Node-IDs).
    maxLinks: int = DEFAULT_MAX_LINKS
    #: Rotated twistd log files kept beside the current one (None: twistd's
    #: default, all of them).
    logKeep: int | None = 5
    #: ``--log-level`` and ``--log-format`` (reload.logoptions); twistd's own
    #: ``--logfile`` and ``-n``, where a custom observer writes.
    logLevel: str = "info"
    logFormat: str = "text"
    logFile: str | None = None
    noDaemon: bool = False
