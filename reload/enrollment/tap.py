"""``twistd reload-enrollment``: the configuration and enrollment server.

RFC 6940 section 11.2 (the configuration document at
``/.well-known/reload-config``) and section 11.3 (certificates for
``POST /enroll``), over HTTPS only.  Every option is checked in
:meth:`Options.postOptions`, which also opens (or creates) the data
directory, so that any problem is a one-line usage error before the reactor
runs.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import Path
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from reload.config import BootstrapNode, ConfigError, parseConfiguration, writeConfiguration
from reload.config.values import parseDnsName
from reload.config.xmlio import MAX_DOCUMENT_SIZE
from reload.endpoints import EndpointSyntaxError, checkServerEndpoint
from reload.enrollment.server import (
    EnrollmentService,
    enrollmentUrl,
    generateConfiguration,
)
from reload.enrollment.store import (
    CA_CERTIFICATE_FILE,
    EnrollmentStore,
    StoreError,
    TlsCredentials,
    validateAccountName,
)
from reload.options import OneLineUsageErrors, checkDataDirectory
from reload.security.certificates import nodeUri
from reload.tap import parseBootstrap

__all__ = ["Options", "makeService"]

DEFAULT_LISTEN = "ssl:8443"
DEFAULT_OVERLAY = "reload.local"
MAX_NODE_IDS_PER_USER = 64
MAX_VALIDITY_DAYS = 3650
# Arguments of Twisted's ssl: endpoint that would bring their own TLS setup.
_TLS_ARGUMENTS = frozenset(
    {"privateKey", "certKey", "extraCertChain", "caCertsDir", "dhParameters", "sslmethod"}
)


def plainEndpoint(description: str) -> str:
    """The stream endpoint under the TLS this server adds itself.

    ``ssl:PORT[:interface=...]`` becomes ``tcp:...`` (the certificate comes
    from the CA or --tls-cert, not from endpoint arguments); ``tcp:``,
    ``tcp6:``, ``unix:`` and other stream endpoints are used as they are,
    still with TLS on top: the server speaks HTTPS only (section 11.3).
    """
    kind, colon, rest = description.partition(":")
    if kind.lower() == "ssl":
        for argument in re.split(r"(?<!\\):", rest):
            name = argument.partition("=")[0]
            if name in _TLS_ARGUMENTS:
                raise usage.UsageError(
                    f"--listen {description!r}: {name}= is not taken here; the server"
                    " certificate comes from its CA, or from --tls-cert and --tls-key"
                )
        description = "tcp" + colon + rest
    try:
        checkServerEndpoint(description)
    except EndpointSyntaxError as exc:
        raise usage.UsageError(f"--listen {description!r}: {exc}") from None
    return description


def _checkHostname(value: str) -> str:
    if not value or value != value.strip():
        raise usage.UsageError(f"--hostname {value!r}: not a host name or IP address")
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    try:
        parseDnsName(value, "hostname")
    except (ValueError, ConfigError):
        raise usage.UsageError(f"--hostname {value!r}: not a host name or IP address") from None
    return value


def _isDnsName(value: str) -> bool:
    try:
        parseDnsName(value, "overlay")
    except (ValueError, ConfigError):
        return False
    return True


def _positive(option: str, value: str, maximum: int) -> int:
    if not value.isdigit() or not 1 <= int(value) <= maximum:
        raise usage.UsageError(f"--{option} {value!r}: expected a number from 1 to {maximum}")
    return int(value)


class Options(OneLineUsageErrors, usage.Options):
    """``twistd reload-enrollment`` options."""

    commandName = "twistd reload-enrollment"

    synopsis = "[options]"
    longdesc = (
        "Serve a RELOAD (RFC 6940) overlay configuration at /.well-known/reload-config "
        "(section 11.2) and issue node certificates at /enroll (section 11.3), over HTTPS. "
        "The data directory holds the overlay's CA (its certificate is the configuration's "
        "root-cert), the accounts, the Node-IDs given to each account and every certificate "
        "issued.  Without --config the served configuration is the default overlay with "
        "enrollment: self-signed-permitted false, this CA as root-cert, this server as "
        "enrollment-server.  An account NAME gets the user name NAME in its certificates, "
        "or NAME@OVERLAY when NAME has no @; the same account always gets the same Node-IDs."
    )

    optParameters = [
        [
            "data-dir",
            "d",
            "reload-enrollment-data",
            "Directory for the CA, the accounts and the issued certificates (created, mode 0700).",
        ],
        [
            "listen",
            "l",
            DEFAULT_LISTEN,
            "Twisted endpoint to serve HTTPS on, e.g. ssl:8443:interface=127.0.0.1; "
            "tcp:... endpoints get TLS as well.",
        ],
        [
            "hostname",
            None,
            None,
            "Host name (or IP address) clients reach this server by: put in the HTTPS "
            "certificate (beside the overlay name) and in the enrollment-server URL. "
            "Default: the overlay name.",
        ],
        [
            "overlay",
            "o",
            None,
            f"Overlay instance name (default {DEFAULT_OVERLAY}, or the --config document's).",
        ],
        [
            "config",
            "c",
            None,
            "Overlay configuration document to serve as it is (its root-cert must include "
            "this server's CA certificate, DATA-DIR/ca-cert.pem). Default: generate one.",
        ],
        [
            "node-ids-per-user",
            None,
            "1",
            "Most Node-IDs one account may ask for (the nodeids form parameter).",
        ],
        ["validity-days", None, "365", "Lifetime of issued certificates, in days."],
        [
            "tls-cert",
            None,
            None,
            "PEM certificate (and chain) for HTTPS instead of one from the CA; needs --tls-key.",
        ],
        ["tls-key", None, None, "PEM private key of --tls-cert."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["bootstrap"] = []
        self["add-user"] = []

    def opt_bootstrap(self, value: str) -> None:
        """HOST:PORT ([IPv6]:PORT; port 6084 if left out) of a bootstrap peer (repeatable)."""
        address = parseBootstrap(value)
        self["bootstrap"].append(BootstrapNode(address.host, address.port))

    opt_b = opt_bootstrap

    def opt_add_user(self, value: str) -> None:
        """NAME:PASSWORD: add the account NAME or set its password (repeatable; kept hashed)."""
        name, colon, password = value.partition(":")
        if not colon or not password:
            raise usage.UsageError(f"--add-user {name!r}: expected NAME:PASSWORD")
        try:
            validateAccountName(name)
        except ValueError as exc:
            raise usage.UsageError(f"--add-user: {exc}") from None
        self["add-user"].append((name, password))

    def postOptions(self) -> None:
        self["plain-listen"] = plainEndpoint(self["listen"])
        maxNodeIds = _positive(
            "node-ids-per-user", self["node-ids-per-user"], MAX_NODE_IDS_PER_USER
        )
        validityDays = _positive("validity-days", self["validity-days"], MAX_VALIDITY_DAYS)
        document, overlay, nodeIdLength = self._configuration()
        if not _isDnsName(overlay):
            raise usage.UsageError(
                f"overlay {overlay!r}: the enrollment server needs an overlay name that is a"
                " host name (it is the domain of user names and in the HTTPS certificate)"
            )
        try:
            nodeUri(b"\x01", overlay)
        except ValueError as exc:
            raise usage.UsageError(f"overlay {overlay!r}: {exc}") from None
        hostname = _checkHostname(self["hostname"] or overlay)
        dataDir = Path(self["data-dir"])
        if dataDir.exists() and not dataDir.is_dir():
            raise usage.UsageError(f"--data-dir {dataDir}: exists and is not a directory")
        if bool(self["tls-cert"]) != bool(self["tls-key"]):
            raise usage.UsageError("--tls-cert and --tls-key go together")
        credentials = None
        if self["tls-cert"]:
            try:
                credentials = TlsCredentials.fromFiles(self["tls-cert"], self["tls-key"])
            except ValueError as exc:
                raise usage.UsageError(f"--tls-cert/--tls-key: {exc}") from None
        checkDataDirectory("--data-dir", str(dataDir))
        try:
            store = EnrollmentStore.open(dataDir, overlay, nodeIdLength)
            for name, password in self["add-user"]:
                store.setPassword(name, password.encode("utf-8"))
            if credentials is None:
                credentials = store.tlsCredentials(list(dict.fromkeys([hostname, overlay])))
        except StoreError as exc:
            raise usage.UsageError(f"--data-dir: {exc}") from None
        if document is not None:
            self._checkServedConfiguration(store)
        else:
            try:
                writeConfiguration(
                    generateConfiguration(store, enrollmentUrl(hostname, 443), self["bootstrap"])
                )
            except ConfigError as exc:
                raise usage.UsageError(f"the generated configuration: {exc}") from None
        self["settings"] = {
            "store": store,
            "credentials": credentials,
            "listen": self["plain-listen"],
            "hostname": hostname,
            "configuration": document,
            "bootstrapNodes": tuple(self["bootstrap"]),
            "maxNodeIds": maxNodeIds,
            "validity": datetime.timedelta(days=validityDays),
        }

    def _configuration(self) -> tuple[bytes | None, str, int]:
        """The --config document (as given), the overlay name and the
        node-id-length."""
        if not self["config"]:
            return None, self["overlay"] or DEFAULT_OVERLAY, 16
        if self["bootstrap"]:
            raise usage.UsageError(
                "--bootstrap is for the generated configuration; with --config the"
                " document lists the bootstrap-node elements"
            )
        path = Path(self["config"])
        try:
            if path.stat().st_size > MAX_DOCUMENT_SIZE:
                raise usage.UsageError(f"--config {path}: larger than {MAX_DOCUMENT_SIZE} bytes")
            data = path.read_bytes()
        except OSError as exc:
            raise usage.UsageError(f"--config {path}: {exc.strerror or exc}") from None
        try:
            configuration = parseConfiguration(data, self["overlay"])
        except ConfigError as exc:
            raise usage.UsageError(f"--config {path}: {exc}") from None
        if not configuration.enrollmentServers:
            raise usage.UsageError(
                f"--config {path}: no enrollment-server; peers would not enroll here"
            )
        self["parsed-config"] = configuration
        return data, configuration.instanceName, configuration.nodeIdLength

    def _checkServedConfiguration(self, store: EnrollmentStore) -> None:
        from cryptography.hazmat.primitives.serialization import Encoding

        configuration = self["parsed-config"]
        ca = store.caCertificate.public_bytes(Encoding.DER)
        if ca not in configuration.rootCerts:
            raise usage.UsageError(
                f"--config {self['config']}: its root-cert does not include this server's CA"
                f" ({store.directory / CA_CERTIFICATE_FILE}); enrolled peers could not check"
                " their certificates (section 11.3)"
            )


def makeService(options: dict[str, Any]) -> IService:
    """The enrollment server's service from parsed :class:`Options`."""
    from twisted.internet import reactor

    settings = options["settings"]
    return EnrollmentService(
        reactor,
        settings["store"],
        settings["credentials"],
        settings["listen"],
        settings["hostname"],
        configuration=settings["configuration"],
        bootstrapNodes=settings["bootstrapNodes"],
        maxNodeIds=settings["maxNodeIds"],
        validity=settings["validity"],
    )
