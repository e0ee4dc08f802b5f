"""Structural checks shared by the configuration and kind parsers.

The schema of section 11.1.1 is strict about what may appear where: base and
Chord elements are a closed set, text only appears inside value elements,
and only ``<configuration>`` may carry foreign attributes.  These helpers
turn every deviation into a ConfigError naming the element, so that a typo
(``<max-mesage-size>``) is reported instead of silently using a default.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from reload.config.errors import configError
from reload.config.namespaces import BASE, CHORD, displayName, splitTag
from reload.config.values import quote

__all__ = [
    "ACCESS_POLICIES",
    "DATA_MODELS",
    "ParseOptions",
    "attribute",
    "checkAttributes",
    "isForeign",
    "structuralChildren",
    "valueText",
]

#: Data models of RFC 6940 section 7.2 (EXP-DATA is for experiments only).
DATA_MODELS: frozenset[str] = frozenset({"SINGLE", "ARRAY", "DICTIONARY"})
#: Access control policies a node can enforce: RFC 6940 section 7.3, plus
#: NODE-ID-MATCH (RFC 7374, ReDiR) and USER-CHAIN-ACL (RFC 8076, ShaRe).  A
#: policy the node does not know cannot be enforced, so it is refused.
ACCESS_POLICIES: frozenset[str] = frozenset(
    {
        "USER-MATCH",
        "NODE-MATCH",
        "USER-NODE-MATCH",
        "NODE-MULTIPLE",
        "NODE-ID-MATCH",
        "USER-CHAIN-ACL",
    }
)


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """What the node running the parser supports."""

    supportedExtensions: frozenset[str]
    dataModels: frozenset[str] = DATA_MODELS
    accessPolicies: frozenset[str] = ACCESS_POLICIES


def isForeign(tag: str) -> bool:
    """An element or attribute name outside base, Chord and no namespace."""
    namespace, _ = splitTag(tag)
    return namespace not in ("", BASE, CHORD)


def checkAttributes(
    element: ET.Element, path: str, allowed: Collection[str] = (), foreign: bool = False
) -> None:
    """Refuse attributes other than ``allowed`` (and foreign ones if allowed)."""
    for key in element.attrib:
        if key in allowed or (foreign and isForeign(key)):
            continue
        raise configError(f"{path}@{displayName(key)}", "unexpected attribute")


def attribute(element: ET.Element, name: str, path: str) -> str:
    """A required attribute."""
    value = element.get(name)
    if value is None:
        raise configError(f"{path}@{name}", "required attribute is missing")
    return value


def valueText(element: ET.Element, path: str, allowed: Collection[str] = ()) -> str:
    """The text of an element that holds one value and no child elements."""
    checkAttributes(element, path, allowed)
    if len(element):
        raise configError(f"{path}/{displayName(element[0].tag)}", "unexpected element")
    return element.text or ""


def structuralChildren(element: ET.Element, path: str) -> Iterator[ET.Element]:
    """The children of an element that holds only elements (no text)."""
    if element.text and element.text.strip():
        raise configError(path, f"unexpected text {quote(element.text.strip())}")
    for child in element:
        yield child
        if child.tail and child.tail.strip():
            raise configError(path, f"unexpected text {quote(child.tail.strip())}")
