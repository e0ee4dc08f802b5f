"""SIP-REGISTRATION (RFC 7904 section 7): the Kind and its store-side checks.

Kind-ID 0x1, a DICTIONARY whose key is the Node-ID of the registering
device, under USER-NODE-MATCH (RFC 6940 section 7.3.3): the signer's user
name hashes to the Resource-ID, the key is the signer's Node-ID.  That is
checks (2) and (3) of section 3.3; check (1), "the domain in the AOR is
admissible" under the overlay's ``sip:domain-restriction`` (section 3.4),
is :meth:`SipRegistrationKind.checkStore`, which every storing peer runs
after the policy (:class:`reload.interfaces.IKindStoreCheck`).  A value is
refused with Error_Forbidden when any of them fails.

Because USER-NODE-MATCH ties the Resource-ID to the signer's user name, the
AoR checked is the signer's user name (normalised, section 2): Alice may
forward her calls to Bob, but cannot write Bob's AoR (section 3.3).
"""

from __future__ import annotations

import re
from typing import Any

from zope.interface import implementer

from reload.api.config import NamePatterns, sipDomainRestriction
from reload.interfaces import AccessRequest, DataModel, IKind, IKindStoreCheck, INode
from usages.sipusage.record import BadAor, SipRegistration, aorDomain, normaliseAor

__all__ = [
    "SIP_REGISTRATION",
    "SIP_REGISTRATION_KIND_ID",
    "SipRegistrationKind",
    "domainAdmissible",
]

#: Section 9.1: the IANA Kind-ID of SIP-REGISTRATION.
SIP_REGISTRATION_KIND_ID = 0x1


def domainAdmissible(domain: str, restriction: NamePatterns | None, overlayName: str) -> bool:
    """Section 3.4: no ``domain-restriction`` -- every domain; present but
    not enabled -- only the overlay's own domain; enabled -- a domain one
    of the patterns matches whole (POSIX EREs, read with Python's ``re``,
    which agrees with them on the patterns the RFC shows)."""
    if restriction is None:
        return True
    domain = domain.lower()
    if not restriction.enable:
        return domain == overlayName.lower()
    for pattern in restriction.patterns:
        try:
            if re.fullmatch(pattern, domain, flags=re.IGNORECASE):
                return True
        except re.error:
            continue
    return False


@implementer(IKind, IKindStoreCheck)
class SipRegistrationKind:
    """SIP-REGISTRATION: DICTIONARY, USER-NODE-MATCH; the limits a new
    overlay gets match the embedded default configuration."""

    name = "SIP-REGISTRATION"
    kindId = SIP_REGISTRATION_KIND_ID
    dataModel = DataModel.DICTIONARY
    accessPolicy = "USER-NODE-MATCH"
    maxCount = 32
    maxSize = 512

    def validate(self, value: bytes) -> None:
        SipRegistration.decode(value)

    def encode(self, value: object) -> bytes:
        if not isinstance(value, SipRegistration):
            raise TypeError(f"a SIP-REGISTRATION value is a SipRegistration, not {type(value)}")
        return value.encode()

    def decode(self, data: bytes) -> SipRegistration:
        return SipRegistration.decode(data)

    def checkStore(self, request: AccessRequest, node: INode) -> None:
        """Section 3.3 (1) and (2): the signer's user name is an AoR and
        its domain is admissible (section 3.4)."""
        try:
            aor = normaliseAor(request.signerUserName)
        except BadAor as exc:
            raise ValueError(f"the signer's user name is not a SIP AoR: {exc}") from None
        configuration: Any = node.configuration
        restriction = sipDomainRestriction(configuration, self.kindId)
        overlayName = str(getattr(configuration, "instanceName", ""))
        if not domainAdmissible(aorDomain(aor), restriction, overlayName):
            raise ValueError(
                f"the domain of {aor} is not admissible in this overlay"
                " (sip:domain-restriction, RFC 7904 section 3.4)"
            )


SIP_REGISTRATION = SipRegistrationKind()
