"""The peer's own credentials (RFC 6940 section 11.3).

On first start a peer makes a self-signed certificate where the overlay
permits it (section 11.3.1) or enrolls with the configuration's enrollment
server; either way the result is kept in the data directory and used again
on every later start.  A stored identity the overlay would not accept (the
wrong overlay, expired) is replaced the same way, except that a self-signed
one keeps its key, and so its Node-ID, when only its validity ran out.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed

from reload.config import OverlayConfiguration
from reload.security.certificates import (
    PeerIdentity,
    loadPeerIdentity,
    makeSelfSignedIdentity,
    savePeerIdentity,
)
from reload.security.trust import CertificateRejected, TrustPolicy

__all__ = ["IDENTITY_DIRECTORY", "CredentialsError", "peerIdentity"]

#: Where, inside the data directory, the certificate and key live.
IDENTITY_DIRECTORY = "identity"


class CredentialsError(Exception):
    """The peer cannot get credentials for the overlay; the message says
    what the operator must do."""


def _stored(directory: Path, configuration: OverlayConfiguration) -> PeerIdentity | None:
    try:
        return loadPeerIdentity(directory, configuration.instanceName)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise CredentialsError(
            f"the identity in {directory} does not fit overlay "
            f"{configuration.instanceName}: {exc}; move it away to make a new one"
        ) from None


def _selfSigned(
    directory: Path,
    configuration: OverlayConfiguration,
    userName: str | None,
    now: datetime.datetime,
) -> PeerIdentity:
    trust = TrustPolicy.fromConfiguration(configuration)
    stored = _stored(directory, configuration)
    if stored is not None:
        try:
            trust.verify([stored.certificate], now)
            return stored
        except CertificateRejected as exc:
            if stored.certificate.not_valid_after_utc > now:
                raise CredentialsError(
                    f"the certificate in {directory} is not accepted by overlay "
                    f"{configuration.instanceName}: {exc.reason}"
                ) from None
    identity = makeSelfSignedIdentity(
        configuration.instanceName,
        userName if userName is not None else (stored.userName if stored else None),
        key=stored.privateKey if stored is not None else None,
        digest=configuration.selfSignedDigest or "sha1",
        nodeIdLength=configuration.nodeIdLength,
    )
    savePeerIdentity(identity, directory)
    return identity


def peerIdentity(
    reactor: Any,
    configuration: OverlayConfiguration,
    dataDir: Path,
    userName: str | None = None,
    password: str | None = None,
) -> Deferred[PeerIdentity]:
    """This peer's identity for ``configuration``, from ``dataDir`` or made
    now: self-signed when the overlay permits it, otherwise enrolled with
    ``userName`` and ``password``."""
    directory = dataDir / IDENTITY_DIRECTORY
    if configuration.selfSignedPermitted:
        now = datetime.datetime.fromtimestamp(reactor.seconds(), datetime.UTC)
        return succeed(_selfSigned(directory, configuration, userName, now))
    if not configuration.enrollmentServers:
        raise CredentialsError(
            f"overlay {configuration.instanceName} permits no self-signed certificates "
            "and names no enrollment server"
        )
    if userName is None or password is None:
        stored = _stored(directory, configuration)
        if stored is not None:
            return succeed(stored)
        raise CredentialsError(
            f"overlay {configuration.instanceName} needs enrollment at "
            f"{configuration.enrollmentServers[0]}: give --user and --password-file"
        )
    from reload.enrollment.client import obtainIdentity

    return obtainIdentity(reactor, configuration, directory, userName, password)
