"""What the enrollment server and its clients agree on (RFC 6940 sections
11.2 and 11.3): paths, content types, the 403 tokens, and the errors a
client reports.

Its own module, free of Twisted's web stack, so that a peer can name
:class:`EnrollmentError` (to report a failed start) without loading the
HTTP client and server it needs only when it enrolls.
"""

from __future__ import annotations

__all__ = [
    "BAD_CSR",
    "CERTIFICATE_CONTENT_TYPE",
    "CONFIGURATION_CONTENT_TYPE",
    "CONFIGURATION_PATH",
    "CSR_CONTENT_TYPE",
    "ENROLLMENT_PATH",
    "FAILED_AUTHENTICATION",
    "KNOWN_TOKENS",
    "NODE_IDS_NOT_AVAILABLE",
    "USERNAME_NOT_AVAILABLE",
    "ConfigurationFetchError",
    "EnrollmentError",
    "EnrollmentRejected",
]

#: Section 11.2: where the configuration document is served.
CONFIGURATION_PATH = "/.well-known/reload-config"
#: Where this project's server takes enrollment requests (the
#: enrollment-server URL).
ENROLLMENT_PATH = "/enroll"
#: Section 11.1 (and the IANA registration in section 14.16).
CONFIGURATION_CONTENT_TYPE = "application/p2p-overlay+xml"
#: Section 11.3, RFC 2585: the certificate, DER.
CERTIFICATE_CONTENT_TYPE = "application/pkix-cert"
#: Section 11.3: the content type of the csr form parameter.
CSR_CONTENT_TYPE = "application/pkcs10"

#: Section 11.3 error tokens (403, text/plain).
FAILED_AUTHENTICATION = "failed_authentication"
USERNAME_NOT_AVAILABLE = "username_not_available"
NODE_IDS_NOT_AVAILABLE = "Node-IDs_not_available"
BAD_CSR = "bad_CSR"
#: Section 11.3: the tokens a 403 answer may carry.
KNOWN_TOKENS = frozenset(
    {FAILED_AUTHENTICATION, USERNAME_NOT_AVAILABLE, NODE_IDS_NOT_AVAILABLE, BAD_CSR}
)


class EnrollmentError(Exception):
    """Fetching the configuration or enrolling failed; the message says why."""


class ConfigurationFetchError(EnrollmentError):
    """The configuration server gave no usable document (section 11.2)."""


class EnrollmentRejected(EnrollmentError):
    """The enrollment server said 403 (section 11.3).  ``token`` is what it
    sent: one of :data:`KNOWN_TOKENS`, or something else, which section
    11.3 says to treat "as a failure for an unknown reason"."""

    def __init__(self, token: str) -> None:
        known = token in KNOWN_TOKENS
        reason = token if known else f"unknown reason ({token[:80]!r})"
        super().__init__(f"the enrollment server refused: {reason}")
        self.token = token
        self.known = known
