"""Configuration elements the usages add, in their own XML namespaces.

Each usage RFC extends the configuration document (see the namespace table
of ``usage-specs-digest.md``):

============================================  ===========  ==========================
element                                       where        RFC
============================================  ===========  ==========================
``redir:branching-factor`` (unsignedInt, 10)  REDIR kind   7374 section 8
``sip:domain-restriction`` (``enable``,       kind         7904 section 3.4
``sip:pattern``\\*)
``self-tuning:number-of-peers-to-probe``      config       7363 section 7
(unsignedInt, 4)
``diagnostics:diagnostic-kind`` (``kind``,    config       7851 section 7
``diagnostics:access-node``\\+)
``share:variable-resource-names``             kind         8076 section 5
(``enable``, ``share:pattern``\\*)
============================================  ===========  ==========================

They are kept as :class:`~reload.config.model.Extension` values; this module
checks them while the document is read (so a bad one is refused with a
one-line error, like any other element) and gives the usages typed
accessors.  RFC 7374's ReDiR starting level (Lstart, RECOMMENDED 2, section
4.2) is a constant of the algorithm, not a configuration element.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reload.config.errors import configError
from reload.config.model import Extension, KindConfig, OverlayConfiguration
from reload.config.namespaces import (
    DIAGNOSTICS,
    REDIR,
    SELF_TUNING,
    SHARE,
    SIP,
    displayName,
    splitTag,
)
from reload.config.values import parseBoolean, parseInteger, quote

__all__ = [
    "DEFAULT_BRANCHING_FACTOR",
    "DEFAULT_PEERS_TO_PROBE",
    "NamePatterns",
    "diagnosticsAccess",
    "redirBranchingFactor",
    "selfTuningPeersToProbe",
    "shareVariableResourceNames",
    "sipDomainRestriction",
    "validateUsageExtensions",
]

#: RFC 7374 section 8: branching factor of the ReDiR tree when not configured.
DEFAULT_BRANCHING_FACTOR = 10
#: RFC 7363 section 7: fingers probed per stabilization when not configured.
DEFAULT_PEERS_TO_PROBE = 4

_UINT_MAX = 2**32 - 1
_HEX_KIND = re.compile(r"(0[xX])?([0-9A-Fa-f]{1,4})")
_HEX_NODE = re.compile(r"(0[xX])?((?:[0-9A-Fa-f]{2})+)")


@dataclass(frozen=True, slots=True)
class NamePatterns:
    """``sip:domain-restriction`` or ``share:variable-resource-names``.

    ``enable`` and the POSIX extended regular expressions in ``patterns``;
    what "disabled" means is each usage's rule (RFC 7904 section 3.4: only
    the overlay's own domain; RFC 8076 section 5: only the user's own name).
    """

    enable: bool
    patterns: tuple[str, ...]


def _text(element: ET.Element, path: str) -> str:
    if len(element) or element.attrib:
        raise configError(path, "expected only text")
    return (element.text or "").strip()


def _branchingFactor(element: ET.Element, path: str, nodeIdLength: int) -> int:
    # b = 1 gives a tree with one node per level and b = 0 none at all.
    return parseInteger(_text(element, path), path, 2, _UINT_MAX, "an unsigned integer")


def _peersToProbe(element: ET.Element, path: str, nodeIdLength: int) -> int:
    return parseInteger(_text(element, path), path, 0, _UINT_MAX, "an unsigned integer")


def _namePatterns(element: ET.Element, path: str, namespace: str, needsUser: bool) -> NamePatterns:
    for key in element.attrib:
        if key != "enable":
            raise configError(f"{path}@{displayName(key)}", "unexpected attribute")
    enable = parseBoolean(element.get("enable", "false"), f"{path}@enable")
    patterns: list[str] = []
    for child in element:
        childPath = f"{path}/{displayName(child.tag)}"
        if child.tag != f"{{{namespace}}}pattern":
            raise configError(childPath, "unexpected element")
        pattern = _text(child, childPath)
        if needsUser and ("$USER" not in pattern or "$DOMAIN" not in pattern):
            raise configError(childPath, f"{quote(pattern)} lacks $USER and $DOMAIN (RFC 8076 5)")
        try:
            re.compile(pattern.replace("$USER", "u").replace("$DOMAIN", "d"))
        except re.error as e:
            reason = f"{quote(pattern)} is not a regular expression: {e}"
            raise configError(childPath, reason) from None
        patterns.append(pattern)
    return NamePatterns(enable, tuple(patterns))


def _domainRestriction(element: ET.Element, path: str, nodeIdLength: int) -> NamePatterns:
    return _namePatterns(element, path, SIP, needsUser=False)


def _variableNames(element: ET.Element, path: str, nodeIdLength: int) -> NamePatterns:
    return _namePatterns(element, path, SHARE, needsUser=True)


def _diagnosticKind(
    element: ET.Element, path: str, nodeIdLength: int
) -> tuple[int, frozenset[bytes]]:
    """RFC 7851 section 7: a hex diagnostic Kind and the Node-IDs allowed it."""
    for key in element.attrib:
        if key != "kind":
            raise configError(f"{path}@{displayName(key)}", "unexpected attribute")
    raw = element.get("kind")
    if raw is None:
        raise configError(f"{path}@kind", "required attribute is missing")
    match = _HEX_KIND.fullmatch(raw.strip())
    kind = int(match.group(2), 16) if match else 0
    if not 1 <= kind <= 0xFFFE:
        raise configError(f"{path}@kind", f"{quote(raw)} is not a diagnostic Kind (0x1..0xfffe)")
    nodes: set[bytes] = set()
    for child in element:
        childPath = f"{path}/{displayName(child.tag)}"
        if child.tag != f"{{{DIAGNOSTICS}}}access-node":
            raise configError(childPath, "unexpected element")
        text = _text(child, childPath)
        node = _HEX_NODE.fullmatch(text)
        if not node or len(node.group(2)) != 2 * nodeIdLength:
            raise configError(childPath, f"{quote(text)} is not a {nodeIdLength}-byte hex Node-ID")
        nodes.add(bytes.fromhex(node.group(2)))
    if not nodes:
        raise configError(f"{path}/diagnostics:access-node", "at least one is required (7851 7)")
    return kind, frozenset(nodes)


_Parser = Callable[[ET.Element, str, int], object]
#: (namespace, local name) -> (parser, allowed at configuration level, in a kind)
_ELEMENTS: dict[tuple[str, str], tuple[_Parser, bool, bool]] = {
    (REDIR, "branching-factor"): (_branchingFactor, True, True),
    (SIP, "domain-restriction"): (_domainRestriction, False, True),
    (SIP, "domain-restrictions"): (_domainRestriction, False, True),  # RFC 7904 prose
    (SELF_TUNING, "number-of-peers-to-probe"): (_peersToProbe, True, False),
    (DIAGNOSTICS, "diagnostic-kind"): (_diagnosticKind, True, False),
    (SHARE, "variable-resource-names"): (_variableNames, False, True),
}
_KNOWN_NAMESPACES = frozenset(namespace for namespace, _ in _ELEMENTS)


def _check(
    extensions: Iterable[Extension], path: str, inKind: bool, supported: frozenset[str], n: int
) -> None:
    seen: set[_Parser] = set()
    diagnosticKinds: set[int] = set()
    for extension in extensions:
        element = extension.element()
        namespace, local = splitTag(element.tag)
        if namespace not in _KNOWN_NAMESPACES or namespace not in supported:
            continue  # not ours to judge: kept and written back as it is
        childPath = f"{path}/{displayName(element.tag)}"
        entry = _ELEMENTS.get((namespace, local))
        if entry is None:
            raise configError(childPath, "unknown element in a namespace this node implements")
        parse, atConfiguration, atKind = entry
        if not (atKind if inKind else atConfiguration):
            raise configError(
                childPath, f"not allowed in {'a kind' if inKind else 'configuration'}"
            )
        value = parse(element, childPath, n)
        if parse is _diagnosticKind and isinstance(value, tuple):
            if value[0] in diagnosticKinds:
                raise configError(childPath, f"kind {value[0]:#x} appears more than once")
            diagnosticKinds.add(value[0])
        elif parse in seen:
            raise configError(childPath, "appears more than once")
        seen.add(parse)


def validateUsageExtensions(config: OverlayConfiguration, supported: frozenset[str]) -> None:
    """Check the usage elements of the namespaces in ``supported``."""
    n = config.nodeIdLength
    _check(config.extensions, "configuration", False, supported, n)
    for kind in config.kinds:
        kindPath = f"configuration/required-kinds/kind-block/kind[{kind.label}]"
        _check(kind.extensions, kindPath, True, supported, n)


def _find(extensions: Iterable[Extension], namespace: str, *locals_: str) -> ET.Element | None:
    for extension in extensions:
        if extension.namespace == namespace and extension.localName in locals_:
            return extension.element()
    return None


def redirBranchingFactor(config: OverlayConfiguration) -> int:
    """ReDiR's ``b``: from the REDIR kind, else the configuration, else 10."""
    kind = config.kind("REDIR")
    for extensions in ((kind.extensions if kind else ()), config.extensions):
        element = _find(extensions, REDIR, "branching-factor")
        if element is not None:
            return _branchingFactor(element, "redir:branching-factor", config.nodeIdLength)
    return DEFAULT_BRANCHING_FACTOR


def selfTuningPeersToProbe(config: OverlayConfiguration) -> int:
    """RFC 7363: how many fingers to Probe each stabilization (default 4)."""
    element = _find(config.extensions, SELF_TUNING, "number-of-peers-to-probe")
    if element is None:
        return DEFAULT_PEERS_TO_PROBE
    return _peersToProbe(element, "self-tuning:number-of-peers-to-probe", config.nodeIdLength)


def sipDomainRestriction(kind: KindConfig | None) -> NamePatterns | None:
    """RFC 7904 section 3.4 for the SIP-REGISTRATION kind; ``None``: accept any AOR."""
    element = _find(
        kind.extensions if kind else (), SIP, "domain-restriction", "domain-restrictions"
    )
    return None if element is None else _domainRestriction(element, "sip:domain-restriction", 0)


def shareVariableResourceNames(kind: KindConfig | None) -> NamePatterns | None:
    """RFC 8076 section 5 for a shared kind; ``None`` means disabled."""
    element = _find(kind.extensions if kind else (), SHARE, "variable-resource-names")
    return None if element is None else _variableNames(element, "share:variable-resource-names", 0)


def diagnosticsAccess(config: OverlayConfiguration) -> dict[int, frozenset[bytes]]:
    """RFC 7851 section 7: diagnostic Kind -> Node-IDs allowed to read it.

    A kind absent from the mapping is readable by nobody: the RFC's default
    policy is to deny.
    """
    access: dict[int, frozenset[bytes]] = {}
    for extension in config.extensions:
        if (extension.namespace, extension.localName) == (DIAGNOSTICS, "diagnostic-kind"):
            path = "diagnostics:diagnostic-kind"
            kind, nodes = _diagnosticKind(extension.element(), path, config.nodeIdLength)
            access[kind] = nodes
    return access
