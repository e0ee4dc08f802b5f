"""The overlay configuration as frozen dataclasses (RFC 6940 section 11.1).

Field names follow the XML element names in camelCase (Twisted style);
defaults are the ones section 11.1 gives for an absent element, except where
the RFC's default is better left visible as "not configured" (``None``): the
``effective*`` properties give the value a node must then use.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

from reload.config.errors import ConfigError, configError
from reload.config.namespaces import BASE, CHORD, splitTag
from reload.config.xmlio import canonicalXml, parseXml
from reload.wire.header import DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_TTL, overlay_hash
from reload.wire.nodeid import DEFAULT_NODE_ID_LENGTH

__all__ = [
    "DEFAULT_CHORD_REACTIVE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_NODE_ID_LENGTH",
    "DEFAULT_OVERLAY_RELIABILITY_TIMER",
    "DEFAULT_PORT",
    "DEFAULT_TOPOLOGY",
    "DEFAULT_TTL",
    "DEFAULT_TURN_DENSITY",
    "KNOWN_KIND_IDS",
    "BootstrapNode",
    "Extension",
    "KindConfig",
    "OverlayConfiguration",
]

#: Section 11.1 defaults for absent elements.
DEFAULT_TOPOLOGY = "CHORD-RELOAD"
DEFAULT_PORT = 6084
DEFAULT_TURN_DENSITY = 1
DEFAULT_CHORD_REACTIVE = True
DEFAULT_OVERLAY_RELIABILITY_TIMER = 3000
DEFAULT_LINK_PROTOCOLS = ("TLS",)

#: Kind names registered with IANA (RFC 6940 section 14.6 and the usage RFCs),
#: so that a ``<kind name="...">`` and a ``<kind id="...">`` can be matched.
KNOWN_KIND_IDS: dict[str, int] = {
    "SIP-REGISTRATION": 0x1,  # RFC 7904 section 9.1
    "TURN-SERVICE": 0x2,
    "CERTIFICATE_BY_NODE": 0x3,
    "ACCESS-CONTROL-LIST": 0x4,  # RFC 8076 section 9.2
    "CERTIFICATE_BY_USER": 0x10,
    "REDIR": 0x104,  # RFC 7374 section 10.3
}


@dataclass(frozen=True, slots=True)
class Extension:
    """A foreign element (another namespace) kept so a written file keeps it.

    Section 11.1's schema lets any namespace other than the base and Chord
    ones add elements; a node must carry those it does not understand, and
    usages read those they define (see :mod:`reload.config.usages`).  The
    element is held as canonical XML text, so two extensions are equal when
    a parser could not tell them apart, and the value is hashable.
    """

    xml: str

    def __post_init__(self) -> None:
        element = parseXml(self.xml.encode("utf-8")).root
        namespace, _ = splitTag(element.tag)
        if namespace in ("", BASE, CHORD):
            raise configError(
                "extension", f"{element.tag!r} is not in a foreign namespace (section 11.1)"
            )
        object.__setattr__(self, "xml", canonicalXml(element))

    @classmethod
    def fromElement(cls, element: ET.Element) -> Extension:
        """Keep ``element`` (without its tail)."""
        return cls(canonicalXml(element))

    def element(self) -> ET.Element:
        """A fresh element tree; changing it does not change the extension."""
        return parseXml(self.xml.encode("utf-8")).root

    @property
    def tag(self) -> str:
        """ElementTree's ``{namespace}local`` name of the element."""
        return self.element().tag

    @property
    def namespace(self) -> str:
        return splitTag(self.tag)[0]

    @property
    def localName(self) -> str:
        return splitTag(self.tag)[1]


@dataclass(frozen=True, slots=True)
class BootstrapNode:
    """A ``<bootstrap-node>``: where a joining node first connects (11.4)."""

    address: str
    port: int = DEFAULT_PORT


@dataclass(frozen=True, slots=True, kw_only=True)
class KindConfig:
    """One ``<kind>`` of ``<required-kinds>`` and its ``<kind-signature>``.

    Exactly one of ``kindId`` (a number, usually from the private range) and
    ``name`` (an IANA-registered name) identifies the kind.  For a registered
    kind, section 11.1 says the IANA data model and access control win over
    the ones written here; they are kept as written, the storage layer decides.
    ``rawElement`` is the ``<kind>`` element exactly as received, which is
    what ``kindSignature`` signs; it is not part of equality.
    """

    kindId: int | None = None
    name: str | None = None
    maxCount: int
    maxSize: int
    maxNodeMultiple: int | None = None
    dataModel: str
    accessControl: str
    kindSignature: bytes | None = None
    kindSignatureAlgorithm: str | None = None
    extensions: tuple[Extension, ...] = ()
    rawElement: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.kindId is None) == (self.name is None):
            raise ConfigError("kind: needs exactly one of an id and a name (section 11.1)", "kind")
        object.__setattr__(self, "extensions", tuple(self.extensions))

    @property
    def effectiveId(self) -> int | None:
        """The Kind-ID, looked up for a named kind; ``None`` if unregistered."""
        if self.kindId is not None:
            return self.kindId
        return KNOWN_KIND_IDS.get(self.name or "")

    @property
    def label(self) -> str:
        """How the kind is named in messages: its name, else its id."""
        return self.name if self.name is not None else str(self.kindId)

    def matches(self, kindIdOrName: int | str) -> bool:
        """Whether this is the kind ``kindIdOrName`` (by id or by name)."""
        if isinstance(kindIdOrName, str):
            return self.name == kindIdOrName or (
                self.kindId is not None and KNOWN_KIND_IDS.get(kindIdOrName) == self.kindId
            )
        return self.effectiveId == kindIdOrName


@dataclass(frozen=True, slots=True, kw_only=True)
class OverlayConfiguration:
    """One ``<configuration>`` element, with the ``<signature>`` after it.

    ``rawElement`` is the configuration exactly as received (what
    ``signature`` signs, see :func:`reload.config.signedBytes`); it is not
    part of equality, so a configuration equals its written-and-re-read copy.
    """

    instanceName: str
    sequence: int = 0
    expiration: datetime | None = None
    topologyPlugin: str = DEFAULT_TOPOLOGY
    nodeIdLength: int = DEFAULT_NODE_ID_LENGTH
    maxMessageSize: int = DEFAULT_MAX_MESSAGE_SIZE
    initialTtl: int = DEFAULT_TTL
    rootCerts: tuple[bytes, ...] = ()
    enrollmentServers: tuple[str, ...] = ()
    selfSignedPermitted: bool = False
    selfSignedDigest: str | None = None
    bootstrapNodes: tuple[BootstrapNode, ...] = ()
    noIce: bool = False
    sharedSecret: str | None = None
    overlayLinkProtocols: tuple[str, ...] = DEFAULT_LINK_PROTOCOLS
    clientsPermitted: bool = True
    turnDensity: int | None = None
    mandatoryExtensions: tuple[str, ...] = ()
    kinds: tuple[KindConfig, ...] = ()
    kindSigners: tuple[str, ...] = ()
    configurationSigners: tuple[str, ...] = ()
    badNodes: tuple[str, ...] = ()
    chordPingInterval: int | None = None
    chordUpdateInterval: int | None = None
    chordReactive: bool | None = None
    overlayReliabilityTimer: int | None = None
    extensions: tuple[Extension, ...] = ()
    extensionAttributes: tuple[tuple[str, str], ...] = ()
    signature: bytes | None = None
    signatureAlgorithm: str | None = None
    rawElement: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Lists become tuples (hashable, immutable); no link protocol means
        # the default "TLS" (section 11.1), which is what a re-read gives.
        for name in (
            "rootCerts",
            "enrollmentServers",
            "bootstrapNodes",
            "mandatoryExtensions",
            "kinds",
            "kindSigners",
            "configurationSigners",
            "badNodes",
            "extensions",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        protocols = tuple(self.overlayLinkProtocols) or DEFAULT_LINK_PROTOCOLS
        object.__setattr__(self, "overlayLinkProtocols", protocols)
        # Foreign attributes are unordered in XML: keep them sorted by name.
        object.__setattr__(self, "extensionAttributes", tuple(sorted(self.extensionAttributes)))

    def kind(self, kindIdOrName: int | str) -> KindConfig | None:
        """The required kind with this Kind-ID or name, or ``None``."""
        for candidate in self.kinds:
            if candidate.matches(kindIdOrName):
                return candidate
        return None

    def overlayHash(self) -> int:
        """The ``overlay`` field of the forwarding header (section 6.3.2)."""
        return overlay_hash(self.instanceName)

    @property
    def effectiveTurnDensity(self) -> int:
        """``turn-density``, or 1 when absent (section 11.1)."""
        return DEFAULT_TURN_DENSITY if self.turnDensity is None else self.turnDensity

    @property
    def effectiveChordReactive(self) -> bool:
        """``chord:chord-reactive``, or true when absent (section 11.1)."""
        return DEFAULT_CHORD_REACTIVE if self.chordReactive is None else self.chordReactive

    @property
    def effectiveOverlayReliabilityTimer(self) -> int:
        """``overlay-reliability-timer`` in ms, or 3000 when absent (section 11.1)."""
        if self.overlayReliabilityTimer is None:
            return DEFAULT_OVERLAY_RELIABILITY_TIMER
        return self.overlayReliabilityTimer
