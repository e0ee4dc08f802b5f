"""Reading the overlay configuration document (RFC 6940 section 11.1).

The document is an ``<overlay>`` holding one ``<configuration>`` per overlay
instance, each optionally followed by the ``<signature>`` over it.  A node
belongs to one instance, so :func:`parseConfiguration` selects one and
validates it completely: every element it knows, every typed value, and the
``<mandatory-extension>`` namespaces against those the node supports.
Configurations of other instances are only looked at for their names.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from reload.config.elements import (
    ACCESS_POLICIES,
    DATA_MODELS,
    ParseOptions,
    attribute,
    checkAttributes,
    isForeign,
    structuralChildren,
    valueText,
)
from reload.config.errors import configError
from reload.config.kinds import parseRequiredKinds
from reload.config.model import BootstrapNode, Extension, OverlayConfiguration
from reload.config.namespaces import BASE, CHORD, SUPPORTED_EXTENSIONS, displayName, splitTag
from reload.config.usages import validateUsageExtensions
from reload.config.values import (
    parseAddress,
    parseBase64,
    parseBoolean,
    parseDateTime,
    parseDnsName,
    parseHex,
    parseHttpsUrl,
    parseInteger,
    parseToken,
    quote,
)
from reload.config.xmlio import MAX_DOCUMENT_SIZE, ParsedDocument, parseXml
from reload.wire.header import FIXED_HEADER_SIZE

__all__ = ["parseConfiguration"]

_INT_MAX = 2**31 - 1
_UINT_MAX = 2**32 - 1
_DIGESTS = frozenset({"sha1", "sha256"})  # section 11.1: both MUST be supported

_Parse = Callable[[str, str], Any]


def _unsigned(text: str, path: str) -> int:
    return parseInteger(text, path, 0, _UINT_MAX, "an unsigned integer")


def _positive(text: str, path: str) -> int:
    return parseInteger(text, path, 1, _INT_MAX, "a positive integer")


def _maxMessageSize(text: str, path: str) -> int:
    size = parseInteger(text, path, 0, _UINT_MAX, "an unsigned integer")
    if size <= FIXED_HEADER_SIZE:
        # Every message carries the fixed forwarding header (section 6.3.2).
        raise configError(path, f"{size} is not more than the {FIXED_HEADER_SIZE}-byte header")
    return size


def _initialTtl(text: str, path: str) -> int:
    # The forwarding header's ttl is a uint8 (section 6.3.2); 0 reaches no one.
    return parseInteger(text, path, 1, 255, "an integer", "the header TTL is 1..255")


def _nodeIdLength(text: str, path: str) -> int:
    return parseInteger(text, path, 16, 20, "an integer", "16 to 20 bytes, section 11.1")


def _reliabilityTimer(text: str, path: str) -> int:
    return parseInteger(text, path, 200, _INT_MAX, "an integer", "at least 200 ms, section 11.1")


def _string(text: str, path: str) -> str:
    return text.strip()


#: Elements that occur at most once: local name -> (field, parser).
_SINGLE: dict[str, tuple[str, _Parse]] = {
    "topology-plugin": ("topologyPlugin", parseToken),
    "max-message-size": ("maxMessageSize", _maxMessageSize),
    "initial-ttl": ("initialTtl", _initialTtl),
    "node-id-length": ("nodeIdLength", _nodeIdLength),
    "no-ice": ("noIce", parseBoolean),
    "shared-secret": ("sharedSecret", _string),
    "clients-permitted": ("clientsPermitted", parseBoolean),
    "turn-density": ("turnDensity", lambda t, p: parseInteger(t, p, 0, 255, "an unsigned byte")),
    "overlay-reliability-timer": ("overlayReliabilityTimer", _reliabilityTimer),
}
#: Elements that may repeat: local name -> (field, parser of one value).
_MULTIPLE: dict[str, tuple[str, _Parse]] = {
    "root-cert": ("rootCerts", parseBase64),
    "enrollment-server": ("enrollmentServers", parseHttpsUrl),
    "kind-signer": ("kindSigners", parseHex),
    "configuration-signer": ("configurationSigners", parseHex),
    "bad-node": ("badNodes", parseHex),
    "overlay-link-protocol": ("overlayLinkProtocols", parseToken),
    "mandatory-extension": ("mandatoryExtensions", parseToken),
}
#: Chord parameters (section 11.1.1, namespace config-chord).
_CHORD: dict[str, tuple[str, _Parse]] = {
    "chord-ping-interval": ("chordPingInterval", _positive),
    "chord-update-interval": ("chordUpdateInterval", _positive),
    "chord-reactive": ("chordReactive", parseBoolean),
}


def _selfSigned(element: ET.Element, path: str) -> dict[str, Any]:
    permitted = parseBoolean(valueText(element, path, ("digest",)), path)
    digest = attribute(element, "digest", path).strip()
    if digest not in _DIGESTS:
        raise configError(f"{path}@digest", f"{quote(digest)} is not sha1 or sha256 (section 11.1)")
    return {"selfSignedPermitted": permitted, "selfSignedDigest": digest}


def _bootstrapNode(element: ET.Element, path: str) -> BootstrapNode:
    valueText(element, path, ("address", "port"))
    if (element.text or "").strip():
        raise configError(path, "expected no text (address and port are attributes)")
    address = parseAddress(attribute(element, "address", path), f"{path}@address")
    port = element.get("port")
    if port is None:
        return BootstrapNode(address)
    return BootstrapNode(address, parseInteger(port, f"{path}@port", 1, 65535, "a port number"))


class _Reader:
    """Collects the keyword arguments of one OverlayConfiguration."""

    def __init__(self, document: ParsedDocument, options: ParseOptions) -> None:
        self.document = document
        self.options = options
        self.values: dict[str, Any] = {}
        self.lists: dict[str, list[Any]] = {}
        self.extensions: list[Extension] = []

    def once(self, name: str, value: Any, path: str) -> None:
        if name in self.values:
            raise configError(path, "appears more than once")
        self.values[name] = value

    def child(self, child: ET.Element, path: str) -> None:
        if isForeign(child.tag):
            self.extensions.append(Extension.fromElement(child))
            return
        namespace, local = splitTag(child.tag)
        if namespace == BASE and local not in _SINGLE and local not in _MULTIPLE:
            self.special(child, local, path)
            return
        table = _CHORD if namespace == CHORD else _SINGLE if local in _SINGLE else _MULTIPLE
        if namespace == "" or local not in table:
            raise configError(path, "unexpected element")
        name, parse = table[local]
        value = parse(valueText(child, path), path)
        if table is _MULTIPLE:
            self.lists.setdefault(name, []).append(value)
        else:
            self.once(name, value, path)

    def special(self, child: ET.Element, local: str, path: str) -> None:
        if local == "bootstrap-node":
            self.lists.setdefault("bootstrapNodes", []).append(_bootstrapNode(child, path))
        elif local == "self-signed-permitted":
            for name, value in _selfSigned(child, path).items():
                self.once(name, value, path)
        elif local == "required-kinds":
            kinds = parseRequiredKinds(child, path, self.document, self.options)
            self.once("kinds", kinds, path)
        else:
            raise configError(path, "unexpected element")


def _attributes(element: ET.Element, path: str) -> dict[str, Any]:
    checkAttributes(element, path, ("instance-name", "sequence", "expiration"), foreign=True)
    name = parseDnsName(attribute(element, "instance-name", path), f"{path}@instance-name")
    values: dict[str, Any] = {"instanceName": name}
    if (sequence := element.get("sequence")) is not None:
        why = "0..65534, section 11.1; 65535 is reserved (6.3.2.1)"
        values["sequence"] = parseInteger(sequence, f"{path}@sequence", 0, 65534, "an integer", why)
    if (expiration := element.get("expiration")) is not None:
        values["expiration"] = parseDateTime(expiration, f"{path}@expiration")
    values["extensionAttributes"] = tuple(
        (key, value) for key, value in element.attrib.items() if isForeign(key)
    )
    return values


def _parseOne(
    element: ET.Element,
    signature: ET.Element | None,
    document: ParsedDocument,
    options: ParseOptions,
) -> OverlayConfiguration:
    path = "configuration"
    reader = _Reader(document, options)
    reader.values.update(_attributes(element, path))
    for child in structuralChildren(element, path):
        reader.child(child, f"{path}/{displayName(child.tag)}")
    values = reader.values
    values.update({name: tuple(items) for name, items in reader.lists.items()})
    values["extensions"] = tuple(reader.extensions)
    if signature is not None:
        values.update(_signature(signature, "signature"))
    for namespace in values.get("mandatoryExtensions", ()):
        if namespace not in options.supportedExtensions:
            raise configError(
                f"{path}/mandatory-extension", f"{namespace!r} is not supported by this node"
            )
    config = OverlayConfiguration(**values, rawElement=document.rawBytes(element))
    validateUsageExtensions(config, options.supportedExtensions)
    return config


def _signature(element: ET.Element, path: str) -> dict[str, Any]:
    signature = parseBase64(valueText(element, path, ("algorithm",)), path)
    algorithm = element.get("algorithm")
    if algorithm is not None:
        algorithm = parseToken(algorithm, f"{path}@algorithm")
    return {"signature": signature, "signatureAlgorithm": algorithm}


def _pairs(root: ET.Element) -> list[tuple[ET.Element, ET.Element | None]]:
    """Each configuration with the signature that follows it (section 11.1)."""
    pairs: list[tuple[ET.Element, ET.Element | None]] = []
    for child in structuralChildren(root, "overlay"):
        path = f"overlay/{displayName(child.tag)}"
        if child.tag == f"{{{BASE}}}configuration":
            pairs.append((child, None))
        elif child.tag == f"{{{BASE}}}signature":
            if not pairs:
                raise configError(path, "comes before any configuration (it signs the one before)")
            if pairs[-1][1] is not None:
                raise configError(path, "a configuration has more than one signature")
            pairs[-1] = (pairs[-1][0], child)
        else:
            raise configError(path, "unexpected element")
    if not pairs:
        raise configError("overlay", "has no configuration element")
    return pairs


def _select(
    pairs: list[tuple[ET.Element, ET.Element | None]], instanceName: str | None
) -> tuple[ET.Element, ET.Element | None]:
    names = [attribute(element, "instance-name", "configuration").strip() for element, _ in pairs]
    listed = ", ".join(names)
    if instanceName is None:
        if len(pairs) > 1:
            raise configError(
                "overlay", f"has {len(pairs)} configurations ({listed}): choose an instance name"
            )
        return pairs[0]
    chosen = [pair for pair, name in zip(pairs, names, strict=True) if name == instanceName]
    if not chosen:
        raise configError("overlay", f"has no configuration for {instanceName!r} (found {listed})")
    if len(chosen) > 1:
        raise configError("overlay", f"has {len(chosen)} configurations for {instanceName!r}")
    return chosen[0]


def parseConfiguration(
    data: bytes,
    instanceName: str | None = None,
    *,
    supportedExtensions: frozenset[str] = SUPPORTED_EXTENSIONS,
    dataModels: frozenset[str] = DATA_MODELS,
    accessPolicies: frozenset[str] = ACCESS_POLICIES,
    maxSize: int = MAX_DOCUMENT_SIZE,
) -> OverlayConfiguration:
    """Read and validate the configuration of one overlay instance.

    ``instanceName`` selects among several ``<configuration>`` elements; it
    may be left out when there is exactly one.  ``supportedExtensions`` are
    the XML namespaces this node implements: a ``<mandatory-extension>``
    outside it means the node cannot join (section 11.1), a ConfigError.
    ``dataModels`` and ``accessPolicies`` are those the storage layer can
    handle (usages that register more pass a larger set).  Every problem is
    one :class:`~reload.config.errors.ConfigError`; nothing is half-read.
    """
    document = parseXml(data, maxSize)
    root = document.root
    if root.tag != f"{{{BASE}}}overlay":
        raise configError(
            displayName(root.tag), f"the root element must be overlay in namespace {BASE}"
        )
    checkAttributes(root, "overlay")
    options = ParseOptions(frozenset(supportedExtensions), dataModels, accessPolicies)
    element, signature = _select(_pairs(root), instanceName)
    return _parseOne(element, signature, document, options)
