"""The configuration a peer uses when it is given no configuration document.

A node started without a configuration server (a test overlay, a LAN demo)
still needs every value of section 11.1.  This one is the smallest overlay
that works out of the box: self-signed certificates (no enrollment server,
no root certificates), CHORD-RELOAD, TLS links, the default sizes, and the
Kinds of the base specification's own usages, so that certificates can be
stored (section 8) and TURN servers found (section 9), and the Kinds of the
usages shipped with reload (REDIR, RFC 7374; SIP-REGISTRATION, RFC 7904).
"""

from __future__ import annotations

from reload.config.model import KindConfig, OverlayConfiguration

__all__ = ["BASE_KINDS", "defaultConfiguration"]

#: RFC 6940 section 9: TURN-SERVICE (0x2) stores a single value per
#: Resource-ID, written under NODE-MULTIPLE with "a maximum iteration of
#: counter 20".  A TurnServer is an iteration byte and an IpAddressPort (at
#: most 1 + 1 + 1 + 16 + 2 = 21 bytes); 64 leaves room for extensions.
TURN_SERVICE = KindConfig(
    name="TURN-SERVICE",
    dataModel="SINGLE",
    accessControl="NODE-MULTIPLE",
    maxNodeMultiple=20,
    maxCount=1,
    maxSize=64,
)
#: RFC 6940 section 8: certificates (0x3 by Node-ID, 0x10 by user name) are
#: arrays, so that an old and a renewed certificate can both be stored;
#: hence two values.  2048 bytes holds an RSA-2048 or ECDSA certificate and
#: keeps a Fetch of both inside the default 5000-byte max-message-size.
CERTIFICATE_BY_NODE = KindConfig(
    name="CERTIFICATE_BY_NODE",
    dataModel="ARRAY",
    accessControl="NODE-MATCH",
    maxCount=2,
    maxSize=2048,
)
CERTIFICATE_BY_USER = KindConfig(
    name="CERTIFICATE_BY_USER",
    dataModel="ARRAY",
    accessControl="USER-MATCH",
    maxCount=2,
    maxSize=2048,
)
#: RFC 7374 (ReDiR service discovery, the REDIR usage shipped in
#: ``usages/redir.py``): Kind 0x104, named as IANA registered it (section
#: 10.3), a DICTIONARY keyed by the provider's Node-ID under NODE-ID-MATCH
#: (sections 5 and 6); no ``redir:branching-factor``, so b is 10 (section 8).
#: A tree node holds the providers of its b intervals that registered there
#: (section 4.3: every provider at its starting level, the lowest and
#: highest of each interval of the level below above it): up to 2b^2 = 200
#: records at the root and at level 1 of a busy namespace -- and, until
#: they expire, the records of providers that were the lowest or highest
#: when they registered and are not any more: with 1,000 providers
#: registering at once about 600 at the root.  1,024 holds that burst; its
#: Stat answer (about 75 bytes a record) still fits 65,535 bytes.  (Listing
#: a busy tree node takes a max-message-size above the default 5,000
#: bytes: see the REDIR section of the README.)  A RedirServiceProvider
#: with one Node-ID destination is 1 + 2 + 18 + 2 + len(namespace) + 6
#: bytes; 512 takes namespaces up to 480 bytes.
REDIR = KindConfig(
    name="REDIR",
    dataModel="DICTIONARY",
    accessControl="NODE-ID-MATCH",
    maxCount=1024,
    maxSize=512,
)
#: RFC 7904 (the SIP usage shipped in ``usages/sip.py``): Kind 0x1, a
#: DICTIONARY keyed by the registering device's Node-ID under
#: USER-NODE-MATCH (section 7).  The RFC sets no limits: 32 devices per
#: AoR, and 512 bytes a value -- a forwarding holds an AoR (at most 254
#: characters) and a route a few Destinations and a contact predicate.
#: No ``sip:domain-restriction``: any AoR is admissible (section 3.4).
SIP_REGISTRATION = KindConfig(
    name="SIP-REGISTRATION",
    dataModel="DICTIONARY",
    accessControl="USER-NODE-MATCH",
    maxCount=32,
    maxSize=512,
)
BASE_KINDS = (
    TURN_SERVICE,
    CERTIFICATE_BY_NODE,
    CERTIFICATE_BY_USER,
    REDIR,
    SIP_REGISTRATION,
)


def defaultConfiguration(instanceName: str = "reload.local") -> OverlayConfiguration:
    """The configuration of an overlay with self-signed certificates.

    With self-signed certificates the Node-ID is the high-order bits of the
    digest named here over the public key (subjectPublicKeyInfo, section
    11.3.1); ``sha1`` is the value the schema lists first.  Anyone can join
    such an overlay: it is for tests and closed networks, not the Internet.
    """
    return OverlayConfiguration(
        instanceName=instanceName,
        selfSignedPermitted=True,
        selfSignedDigest="sha1",
        overlayLinkProtocols=("TLS",),
        kinds=BASE_KINDS,
    )
