"""Enrollment for RELOAD overlays (RFC 6940 sections 11.2 and 11.3).

The server (``twistd reload-enrollment``, :mod:`~reload.enrollment.tap`)
serves the overlay configuration document at ``/.well-known/reload-config``
and issues node certificates at ``/enroll``, over HTTPS, from a CA it keeps
in its data directory (:mod:`~reload.enrollment.store`); the web side is
:mod:`~reload.enrollment.server`.

A peer uses :mod:`~reload.enrollment.client`: :func:`fetchConfiguration`
to get the configuration, :func:`obtainIdentity` (or :func:`enroll`) to get
a certificate that chains to the configuration's root-cert.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "ConfigurationFetchError",
    "EnrollmentError",
    "EnrollmentRejected",
    "configurationUrl",
    "enroll",
    "fetchConfiguration",
    "makeCsr",
    "obtainIdentity",
    "trustRootFor",
]


def __getattr__(name: str) -> Any:
    """The client's names, imported on first use: importing this package
    (as every peer does, for :mod:`~reload.enrollment.protocol`) should not
    load Twisted's HTTP client, which only an enrolling peer needs."""
    if name in __all__:
        return getattr(import_module("reload.enrollment.client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
