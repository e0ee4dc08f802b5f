"""``<required-kinds>``: the Kinds every node of the overlay must support.

RFC 6940 section 11.1: each ``<kind-block>`` holds one ``<kind>`` (identified
by an IANA ``name`` or a numeric ``id``) with max-count, max-size, data-model,
access-control and, for NODE-MULTIPLE, max-node-multiple; plus the
``<kind-signature>`` computed over the ``<kind>`` element's bytes.  The same
kind-block productions travel alone in a ConfigUpdate of type ``kind``
(section 6.5.4.1), which :func:`parseKindBlocks` reads.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from reload.config.elements import (
    ACCESS_POLICIES,
    DATA_MODELS,
    ParseOptions,
    checkAttributes,
    isForeign,
    structuralChildren,
    valueText,
)
from reload.config.errors import configError
from reload.config.model import Extension, KindConfig
from reload.config.namespaces import BASE, SUPPORTED_EXTENSIONS, displayName
from reload.config.values import parseBase64, parseInteger, parseToken
from reload.config.xmlio import MAX_DOCUMENT_SIZE, ParsedDocument, parseXml

__all__ = ["parseKindBlocks", "parseRequiredKinds"]

_INT_MAX = 2**31 - 1  # xsd:int
_UINT_MAX = 2**32 - 1  # xsd:unsignedInt
#: Policies defined only for dictionaries: USER-NODE-MATCH (RFC 6940 section
#: 7.3.3) and NODE-ID-MATCH (RFC 7374 section 5).
_DICTIONARY_ONLY = frozenset({"USER-NODE-MATCH", "NODE-ID-MATCH"})
_REQUIRED = ("max-count", "max-size", "data-model", "access-control")


def _positive(text: str, path: str) -> int:
    return parseInteger(text, path, 1, _INT_MAX, "a positive integer")


def _identity(kind: ET.Element, path: str) -> tuple[dict[str, Any], str]:
    """The ``name`` or ``id`` attribute, and the kind's path for messages."""
    checkAttributes(kind, path, ("name", "id"))
    name, number = kind.get("name"), kind.get("id")
    if (name is None) == (number is None):
        raise configError(path, "needs exactly one of the attributes name and id (section 11.1)")
    if name is not None:
        value = parseToken(name, f"{path}@name")
        return {"name": value}, f"{path}[{value}]"
    kindId = parseInteger(number or "", f"{path}@id", 1, _UINT_MAX, "an unsigned integer")
    return {"kindId": kindId}, f"{path}[{kindId}]"


def _kindParameters(kind: ET.Element, path: str, options: ParseOptions) -> dict[str, Any]:
    values: dict[str, Any] = {}
    extensions: list[Extension] = []
    parsers = {
        "max-count": ("maxCount", _positive),
        "max-size": ("maxSize", _positive),
        "max-node-multiple": ("maxNodeMultiple", _positive),
        "data-model": ("dataModel", parseToken),
        "access-control": ("accessControl", parseToken),
    }
    for child in structuralChildren(kind, path):
        childPath = f"{path}/{displayName(child.tag)}"
        if isForeign(child.tag):
            extensions.append(Extension.fromElement(child))
            continue
        local = child.tag.removeprefix(f"{{{BASE}}}")
        if local not in parsers:
            raise configError(childPath, "unexpected element")
        fieldName, parse = parsers[local]
        if fieldName in values:
            raise configError(childPath, "appears more than once")
        values[fieldName] = parse(valueText(child, childPath), childPath)
    for local in _REQUIRED:
        if parsers[local][0] not in values:
            raise configError(f"{path}/{local}", "required element is missing (section 11.1)")
    values["extensions"] = tuple(extensions)
    _checkModelAndPolicy(values, path, options)
    return values


def _checkModelAndPolicy(values: dict[str, Any], path: str, options: ParseOptions) -> None:
    model, policy = values["dataModel"], values["accessControl"]
    if model not in options.dataModels:
        raise configError(f"{path}/data-model", f"{model!r} is not a data model this node supports")
    if policy not in options.accessPolicies:
        raise configError(
            f"{path}/access-control", f"{policy!r} is not an access policy this node enforces"
        )
    if policy in _DICTIONARY_ONLY and model != "DICTIONARY":
        raise configError(f"{path}/access-control", f"{policy} needs the DICTIONARY data model")
    if policy == "USER-CHAIN-ACL" and model not in ("ARRAY", "DICTIONARY"):
        raise configError(
            f"{path}/access-control", "USER-CHAIN-ACL needs ARRAY or DICTIONARY (RFC 8076 3)"
        )
    if policy == "NODE-MULTIPLE" and values.get("maxNodeMultiple") is None:
        raise configError(f"{path}/max-node-multiple", "required with NODE-MULTIPLE (section 11.1)")


def _parseKindBlock(
    block: ET.Element, path: str, document: ParsedDocument, options: ParseOptions
) -> KindConfig:
    checkAttributes(block, path)
    kind: ET.Element | None = None
    values: dict[str, Any] = {}
    for child in structuralChildren(block, path):
        childPath = f"{path}/{displayName(child.tag)}"
        if child.tag == f"{{{BASE}}}kind" and kind is None:
            kind = child
        elif child.tag == f"{{{BASE}}}kind-signature" and "kindSignature" not in values:
            text = valueText(child, childPath, ("algorithm",))
            values["kindSignature"] = parseBase64(text, childPath)
            algorithm = child.get("algorithm")
            if algorithm is not None:
                algorithm = parseToken(algorithm, f"{childPath}@algorithm")
            values["kindSignatureAlgorithm"] = algorithm
        elif child.tag in (f"{{{BASE}}}kind", f"{{{BASE}}}kind-signature"):
            raise configError(childPath, "appears more than once")
        else:
            raise configError(childPath, "unexpected element")
    if kind is None:
        raise configError(f"{path}/kind", "required element is missing (section 11.1)")
    identity, kindPath = _identity(kind, f"{path}/kind")
    values.update(identity)
    values.update(_kindParameters(kind, kindPath, options))
    return KindConfig(**values, rawElement=document.rawBytes(kind))


def _checkDuplicates(kinds: Iterable[KindConfig], path: str) -> None:
    """Section 11.1 defines each kind once; two definitions cannot both apply.

    A kind is known by its Kind-ID and, if named, by its name: ``name=
    "TURN-SERVICE"`` and ``id="2"`` are the same kind.
    """
    seen: dict[int | str, KindConfig] = {}
    for kind in kinds:
        keys = [key for key in (kind.effectiveId, kind.name) if key is not None]
        for key in keys:
            if key in seen:
                reason = f"kind {kind.label} is defined twice (also as {seen[key].label})"
                raise configError(path, reason)
        seen.update(dict.fromkeys(keys, kind))


def parseRequiredKinds(
    element: ET.Element, path: str, document: ParsedDocument, options: ParseOptions
) -> tuple[KindConfig, ...]:
    """The kinds of a ``<required-kinds>`` element."""
    checkAttributes(element, path)
    kinds: list[KindConfig] = []
    for child in structuralChildren(element, path):
        childPath = f"{path}/{displayName(child.tag)}"
        if child.tag != f"{{{BASE}}}kind-block":
            raise configError(childPath, "unexpected element")
        kinds.append(_parseKindBlock(child, childPath, document, options))
    _checkDuplicates(kinds, path)
    return tuple(kinds)


def parseKindBlocks(
    data: bytes,
    *,
    dataModels: frozenset[str] = DATA_MODELS,
    accessPolicies: frozenset[str] = ACCESS_POLICIES,
    maxSize: int = MAX_DOCUMENT_SIZE,
) -> tuple[KindConfig, ...]:
    """The kinds of a ConfigUpdate of type ``kind`` (section 6.5.4.1).

    That body is "one or more XML kind-block productions", UTF-8, in the
    default namespace config-base: a sequence of elements with no root.  It
    is wrapped in a ``<required-kinds>`` root for parsing; the kinds'
    ``rawElement`` bytes are still the received ones, for the kind-signature.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    head = f'<required-kinds xmlns="{BASE}">'.encode()
    wrapped = head + bytes(data) + b"</required-kinds>"
    document = parseXml(wrapped, maxSize + len(wrapped) - len(data))
    options = ParseOptions(SUPPORTED_EXTENSIONS, dataModels, accessPolicies)
    kinds = parseRequiredKinds(document.root, "kind-blocks", document, options)
    if not kinds:
        raise configError("kind-blocks", "no kind-block (section 6.5.4.1 needs one or more)")
    return kinds
