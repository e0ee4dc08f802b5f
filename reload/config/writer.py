"""Writing the overlay configuration document, and the bytes signatures cover.

RFC 6940 section 11.1: a ``<signature>`` covers its ``<configuration>``
element "starting from, and including, the first < at the start of
<configuration> up to and including the > in </configuration>", as a binary
blob in which not even whitespace may change; a ``<kind-signature>`` covers
its ``<kind>`` element the same way.  So the writer produces each of those
elements as a fixed string - the same bytes whatever document it is put in -
and :func:`signedBytes` gives exactly those bytes (or, for something parsed,
the bytes as received).  To sign: ``sign(signedBytes(config))``, then write
``dataclasses.replace(config, signature=...)``; the signature does not
change the configuration element, so it still verifies.

Every document written is read back before it is returned: what cannot be
read back to an equal object (a value with surrounding whitespace, a
character XML cannot carry, an invalid value) is a ConfigError, not a file
that fails on the next start.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from dataclasses import fields

from reload.config.document import parseConfiguration
from reload.config.elements import ACCESS_POLICIES, DATA_MODELS
from reload.config.errors import ConfigError, configError
from reload.config.model import KindConfig, OverlayConfiguration
from reload.config.namespaces import BASE, CHORD, PREFERRED_PREFIXES, SUPPORTED_EXTENSIONS, splitTag
from reload.config.values import formatBoolean, formatDateTime, quote
from reload.config.xmlio import escapeAttribute, escapeText

__all__ = ["signedBytes", "writeConfiguration"]

_INDENT = "  "
_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
#: Depth of <configuration> (in <overlay>) and of <kind> (in
#: overlay/configuration/required-kinds/kind-block): fixed, so that the
#: bytes of these signed elements never depend on where they are written.
_CONFIGURATION_DEPTH = 1
_KIND_DEPTH = 4


def _leaf(depth: int, name: str, text: str, attributes: str = "") -> str:
    body = escapeText(text, name)
    return f"{_INDENT * depth}<{name}{attributes}>{body}</{name}>"


def _base64(depth: int, name: str, data: bytes, attributes: str = "") -> str:
    """A base64 element; long values (certificates) in 64-column lines, as PEM."""
    encoded = base64.b64encode(data).decode()
    if len(encoded) <= 76:
        return _leaf(depth, name, encoded, attributes)
    pad = "\n" + _INDENT * (depth + 1)
    lines = pad.join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    return f"{_INDENT * depth}<{name}{attributes}>{pad}{lines}\n{_INDENT * depth}</{name}>"


def _attr(name: str, value: str) -> str:
    return f' {name}="{escapeAttribute(value, name)}"'


def _kindLines(kind: KindConfig, depth: int) -> Iterator[str]:
    inner = depth + 1
    yield _leaf(inner, "data-model", kind.dataModel)
    yield _leaf(inner, "access-control", kind.accessControl)
    yield _leaf(inner, "max-count", str(kind.maxCount))
    yield _leaf(inner, "max-size", str(kind.maxSize))
    if kind.maxNodeMultiple is not None:
        yield _leaf(inner, "max-node-multiple", str(kind.maxNodeMultiple))
    for extension in kind.extensions:
        yield _INDENT * inner + extension.xml


def _kindXml(kind: KindConfig, depth: int = _KIND_DEPTH) -> str:
    identity = _attr("name", kind.name) if kind.name is not None else _attr("id", str(kind.kindId))
    lines = [f"<kind{identity}>", *_kindLines(kind, depth), f"{_INDENT * depth}</kind>"]
    return "\n".join(lines)


def _kindBlock(kind: KindConfig, depth: int) -> Iterator[str]:
    yield f"{_INDENT * depth}<kind-block>"
    yield _INDENT * (depth + 1) + _kindXml(kind, depth + 1)
    if kind.kindSignature is not None:
        algorithm = kind.kindSignatureAlgorithm
        attributes = _attr("algorithm", algorithm) if algorithm is not None else ""
        yield _base64(depth + 1, "kind-signature", kind.kindSignature, attributes)
    elif kind.kindSignatureAlgorithm is not None:
        raise configError(
            f"kind[{kind.label}]/kind-signature@algorithm", "is set but there is no kind-signature"
        )
    yield f"{_INDENT * depth}</kind-block>"


def _prefixes(config: OverlayConfiguration) -> dict[str, str]:
    """Prefixes declared on <configuration>: Chord and foreign attributes'."""
    chord = (config.chordPingInterval, config.chordUpdateInterval, config.chordReactive)
    prefixes = {CHORD: "chord"} if any(value is not None for value in chord) else {}
    prefixes[_XML_NAMESPACE] = "xml"  # bound by XML itself, never declared
    for key, _ in config.extensionAttributes:
        namespace, _ = splitTag(key)
        if namespace in prefixes or namespace in ("", BASE):
            continue
        preferred = PREFERRED_PREFIXES.get(namespace)
        taken = {"chord", "xml", *prefixes.values()}
        n = 1
        while preferred is None or preferred in taken:
            preferred, n = f"ext{n}", n + 1
        prefixes[namespace] = preferred
    return prefixes


def _startTag(config: OverlayConfiguration, prefixes: dict[str, str]) -> str:
    attributes = [
        _attr(f"xmlns:{p}", namespace)
        for namespace, p in prefixes.items()
        if namespace != _XML_NAMESPACE
    ]
    attributes.append(_attr("instance-name", config.instanceName))
    attributes.append(_attr("sequence", str(config.sequence)))
    if config.expiration is not None:
        attributes.append(_attr("expiration", formatDateTime(config.expiration)))
    for key, value in config.extensionAttributes:
        namespace, local = splitTag(key)
        if namespace in ("", BASE, CHORD):
            raise configError(f"configuration@{key}", "is not a foreign attribute")
        attributes.append(_attr(f"{prefixes[namespace]}:{local}", value))
    return f"<configuration{''.join(attributes)}>"


def _scalars(config: OverlayConfiguration, depth: int) -> Iterator[str]:
    yield _leaf(depth, "topology-plugin", config.topologyPlugin)
    yield _leaf(depth, "node-id-length", str(config.nodeIdLength))
    yield _leaf(depth, "max-message-size", str(config.maxMessageSize))
    yield _leaf(depth, "initial-ttl", str(config.initialTtl))
    if config.overlayReliabilityTimer is not None:
        yield _leaf(depth, "overlay-reliability-timer", str(config.overlayReliabilityTimer))
    for cert in config.rootCerts:
        yield _base64(depth, "root-cert", cert)
    for url in config.enrollmentServers:
        yield _leaf(depth, "enrollment-server", url)
    if config.selfSignedDigest is not None:
        digest = _attr("digest", config.selfSignedDigest)
        yield _leaf(
            depth, "self-signed-permitted", formatBoolean(config.selfSignedPermitted), digest
        )
    elif config.selfSignedPermitted:
        raise configError("configuration/self-signed-permitted@digest", "is needed when permitted")
    for node in config.bootstrapNodes:
        address = _attr("address", node.address) + _attr("port", str(node.port))
        yield f"{_INDENT * depth}<bootstrap-node{address}/>"
    if config.turnDensity is not None:
        yield _leaf(depth, "turn-density", str(config.turnDensity))
    yield _leaf(depth, "clients-permitted", formatBoolean(config.clientsPermitted))
    yield _leaf(depth, "no-ice", formatBoolean(config.noIce))
    if config.sharedSecret is not None:
        yield _leaf(depth, "shared-secret", config.sharedSecret)


def _chordAndLists(config: OverlayConfiguration, depth: int) -> Iterator[str]:
    chord = (
        ("chord:chord-ping-interval", config.chordPingInterval),
        ("chord:chord-update-interval", config.chordUpdateInterval),
        ("chord:chord-reactive", config.chordReactive),
    )
    for name, value in chord:
        if isinstance(value, bool):
            yield _leaf(depth, name, formatBoolean(value))
        elif value is not None:
            yield _leaf(depth, name, str(value))
    lists = (
        ("overlay-link-protocol", config.overlayLinkProtocols),
        ("configuration-signer", config.configurationSigners),
        ("kind-signer", config.kindSigners),
        ("bad-node", config.badNodes),
        ("mandatory-extension", config.mandatoryExtensions),
    )
    for name, texts in lists:
        for text in texts:
            yield _leaf(depth, name, text)


def _configurationXml(config: OverlayConfiguration) -> str:
    depth = _CONFIGURATION_DEPTH + 1
    lines = [_startTag(config, _prefixes(config))]
    lines.extend(_scalars(config, depth))
    lines.extend(_chordAndLists(config, depth))
    lines.extend(_INDENT * depth + extension.xml for extension in config.extensions)
    if config.kinds:
        lines.append(f"{_INDENT * depth}<required-kinds>")
        for kind in config.kinds:
            lines.extend(_kindBlock(kind, depth + 1))
        lines.append(f"{_INDENT * depth}</required-kinds>")
    lines.append(f"{_INDENT * _CONFIGURATION_DEPTH}</configuration>")
    return "\n".join(lines)


def signedBytes(item: OverlayConfiguration | KindConfig) -> bytes:
    """The bytes a ``<signature>`` (or a ``<kind-signature>``) covers, section 11.1.

    For something parsed, the element exactly as received (``rawElement``);
    otherwise the element exactly as :func:`writeConfiguration` writes it.
    Verifying is the security layer's job: it checks ``item.signature``
    (a base64-decoded SecurityBlock, section 6.3.4) over these bytes, made
    by a configuration-signer (kind-signer) of the current configuration.
    """
    if item.rawElement is not None:
        return item.rawElement
    if isinstance(item, KindConfig):
        return _kindXml(item).encode("utf-8")
    return _configurationXml(item).encode("utf-8")


def _fieldPath(name: str) -> str:
    element = re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()
    return f"configuration/{'chord:' if element.startswith('chord') else ''}{element}"


def _readBack(data: bytes, config: OverlayConfiguration, supported: frozenset[str]) -> None:
    """Refuse to return a document that does not read back to ``config``."""
    again = parseConfiguration(
        data,
        config.instanceName,
        supportedExtensions=supported | frozenset(config.mandatoryExtensions),
        dataModels=DATA_MODELS | {kind.dataModel for kind in config.kinds},
        accessPolicies=ACCESS_POLICIES | {kind.accessControl for kind in config.kinds},
        maxSize=max(len(data), 1),
    )
    for field in fields(OverlayConfiguration):
        mine, theirs = getattr(config, field.name), getattr(again, field.name)
        if field.compare and mine != theirs:
            shown = quote(repr(mine)) if not isinstance(mine, str) else quote(mine)
            raise configError(_fieldPath(field.name), f"{shown} would not be read back as written")


def writeConfiguration(
    config: OverlayConfiguration | Iterable[OverlayConfiguration],
    *,
    supportedExtensions: frozenset[str] = SUPPORTED_EXTENSIONS,
) -> bytes:
    """A UTF-8 configuration document holding ``config`` (one or several).

    :func:`~reload.config.parseConfiguration` reads it back to equal
    objects, foreign elements and attributes, kinds and signatures included.
    The usage elements of ``supportedExtensions`` are checked as the reader
    checks them, so that a node supporting them will not refuse the file.
    """
    configs = (config,) if isinstance(config, OverlayConfiguration) else tuple(config)
    if not configs:
        raise configError("overlay", "needs at least one configuration")
    names = [c.instanceName for c in configs]
    for name in names:
        if names.count(name) > 1:
            raise configError("overlay", f"has {names.count(name)} configurations for {name!r}")
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', f'<overlay xmlns="{BASE}">']
    for c in configs:
        parts.append(_INDENT + _configurationXml(c))
        if c.signature is not None:
            algorithm = c.signatureAlgorithm
            attributes = _attr("algorithm", algorithm) if algorithm is not None else ""
            parts.append(_base64(_CONFIGURATION_DEPTH, "signature", c.signature, attributes))
        elif c.signatureAlgorithm is not None:
            raise configError("signature@algorithm", "is set but there is no signature")
    data = ("\n".join(parts) + "\n</overlay>\n").encode("utf-8")
    try:
        for c in configs:
            _readBack(data, c, supportedExtensions)
    except ConfigError as e:
        raise ConfigError(f"cannot write: {e}", e.path) from None
    return data
