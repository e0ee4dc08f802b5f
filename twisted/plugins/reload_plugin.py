"""``twistd reload``: a RELOAD peer.  The service lives in :mod:`reload.tap`."""

from twisted.application.service import ServiceMaker

reloadPeer = ServiceMaker(
    "RELOAD peer",
    "reload.tap",
    "A RELOAD (RFC 6940) overlay peer.",
    "reload",
)
