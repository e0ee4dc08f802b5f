"""``twistd reload-enrollment``: the RELOAD configuration and enrollment
server.  The service lives in :mod:`reload.enrollment.tap`."""

from twisted.application.service import ServiceMaker

reloadEnrollment = ServiceMaker(
    "RELOAD enrollment server",
    "reload.enrollment.tap",
    "A RELOAD (RFC 6940) enrollment server.",
    "reload-enrollment",
)
