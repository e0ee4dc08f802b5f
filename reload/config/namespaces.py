"""XML namespaces of the overlay configuration document and its extensions.

RFC 6940 section 11.1 defines the base and Chord namespaces; each usage that
adds configuration elements registers its own (see the table in
``usage-specs-digest.md``).  A configuration lists in ``<mandatory-extension>``
the namespaces a node must understand to join, so the set a node supports is
data, not code: :data:`SUPPORTED_EXTENSIONS` is only the default.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "BASE",
    "CHORD",
    "DIAGNOSTICS",
    "PREFERRED_PREFIXES",
    "REDIR",
    "SELF_TUNING",
    "SHARE",
    "SIP",
    "SUPPORTED_EXTENSIONS",
    "displayName",
    "splitTag",
]

#: RFC 6940 section 11.1: elements of the base schema.
BASE = "urn:ietf:params:xml:ns:p2p:config-base"
#: RFC 6940 section 11.1: Chord topology parameters.
CHORD = "urn:ietf:params:xml:ns:p2p:config-chord"
#: RFC 7904 section 9.2: SIP usage (domain restrictions).
SIP = "urn:ietf:params:xml:ns:p2p:config-base:sip"
#: RFC 7374 section 10.2: ReDiR service discovery (branching factor).
REDIR = "urn:ietf:params:xml:ns:p2p:redir"
#: RFC 7363 section 9.3: self-tuning Chord (number of peers to probe).
SELF_TUNING = "urn:ietf:params:xml:ns:p2p:self-tuning"
#: RFC 7851 section 9.6: overlay diagnostics (who may read which kind).
DIAGNOSTICS = "urn:ietf:params:xml:ns:p2p:config-diagnostics"
#: RFC 8076 section 9.3: shared resources (variable resource names).
SHARE = "urn:ietf:params:xml:ns:p2p:config-base:share"

#: The namespaces whose ``<mandatory-extension>`` this implementation accepts
#: by default: the base and Chord schemas and the usages shipped with it.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {BASE, CHORD, SIP, REDIR, SELF_TUNING, DIAGNOSTICS, SHARE}
)

#: Prefixes used when writing a document, so that a written file reads like the
#: RFC examples; any other namespace gets ``ext1``, ``ext2``...
PREFERRED_PREFIXES: Mapping[str, str] = {
    CHORD: "chord",
    SIP: "sip",
    REDIR: "redir",
    SELF_TUNING: "self-tuning",
    DIAGNOSTICS: "diagnostics",
    SHARE: "share",
}


def splitTag(tag: str) -> tuple[str, str]:
    """Split ElementTree's ``{namespace}local`` form; no namespace gives ``''``."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def displayName(tag: str) -> str:
    """The name an operator recognises in an error: ``redir:branching-factor``.

    Base-namespace elements are shown bare, well-known namespaces with their
    usual prefix and anything else in full ``{namespace}local`` form.
    """
    namespace, local = splitTag(tag)
    if namespace in ("", BASE):
        return local
    prefix = PREFERRED_PREFIXES.get(namespace)
    return f"{prefix}:{local}" if prefix else tag
