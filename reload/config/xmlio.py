"""Reading XML safely and writing it deterministically.

Reading: a configuration document arrives from a configuration server or in a
ConfigUpdate from any peer (RFC 6940 section 6.5.4), so it is untrusted input.
:func:`parseXml` refuses what XML allows but no configuration needs - DOCTYPE
and entity declarations (entity expansion, external entities), other
encodings than the UTF-8 section 11.1 mandates, oversized or deeply nested
documents - before and while parsing.  It drives expat directly rather than
through ``xml.etree.ElementTree.fromstring`` because the signatures of section
11.1 cover the *exact bytes* of each ``<configuration>`` and ``<kind>``
element, so the byte span of every element is recorded on the way.

Writing: :func:`canonicalXml` turns an element into one fixed string (sorted
attributes, namespace declarations on the element itself, text kept
verbatim) so that foreign extension elements compare equal after a write and
re-read, and can be pasted into any document whatever its prefixes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from xml.parsers import expat

from reload.config.errors import ConfigError, configError
from reload.config.namespaces import PREFERRED_PREFIXES, splitTag

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_SIZE",
    "ParsedDocument",
    "canonicalXml",
    "escapeAttribute",
    "escapeText",
    "parseXml",
]

#: Largest document accepted: a configuration is a few KiB (the RFC example is
#: 4 KiB with a certificate); a ConfigUpdate may carry up to 2^24-1 bytes.
MAX_DOCUMENT_SIZE = 1 << 20
#: Deepest element nesting accepted; the base schema needs 5 levels and the
#: writer recurses, so an attacker's 100 000 nested elements must stop here.
MAX_DEPTH = 64

_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


@dataclass(frozen=True)
class ParsedDocument:
    """An element tree plus the byte span of each element in ``data``."""

    data: bytes
    root: ET.Element
    spans: Mapping[int, tuple[int, int]]

    def rawBytes(self, element: ET.Element) -> bytes:
        """The element exactly as received, from its ``<`` to its last ``>``."""
        start, end = self.spans[id(element)]
        return self.data[start:end]


def _refuseUnsafe(data: bytes, maxSize: int) -> None:
    """Checks on the raw bytes, before any parser sees them."""
    if len(data) > maxSize:
        raise configError("document", f"{len(data)} bytes is more than the {maxSize}-byte limit")
    if _DECLARATION.search(data):
        raise configError(
            "document", "DOCTYPE and entity declarations are refused (entity expansion attacks)"
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise configError(
            "document", f"byte {e.start} is not UTF-8 (RFC 6940 section 11.1 requires UTF-8)"
        ) from None


class _TreeBuilder:
    """Expat handlers building an ElementTree and recording byte spans."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.parser = expat.ParserCreate("UTF-8", " ")
        self.parser.buffer_text = True
        self.stack: list[ET.Element] = []
        self.root: ET.Element | None = None
        self.spans: dict[int, tuple[int, int]] = {}
        self.untouched: ET.Element | None = None  # started, nothing seen inside yet
        p = self.parser
        p.XmlDeclHandler = self.xmlDecl
        p.StartDoctypeDeclHandler = self.refuse
        p.EntityDeclHandler = self.refuse
        p.StartElementHandler = self.start
        p.EndElementHandler = self.end
        p.CharacterDataHandler = self.characters
        p.CommentHandler = self.other
        p.ProcessingInstructionHandler = self.other

    @staticmethod
    def clark(name: str) -> str:
        namespace, _, local = name.rpartition(" ")
        return f"{{{namespace}}}{local}" if namespace else local

    def xmlDecl(self, version: str | None, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise configError("document", f"encoding {encoding!r} is not UTF-8")

    def refuse(self, *args: object) -> None:
        raise configError(
            "document", "DOCTYPE and entity declarations are refused (entity expansion attacks)"
        )

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise configError("document", f"elements are nested deeper than {MAX_DEPTH}")
        attrib = {self.clark(k): v for k, v in attributes.items()}
        element = ET.Element(self.clark(name), attrib)
        if self.stack:
            self.stack[-1].append(element)
        else:
            self.root = element
        self.stack.append(element)
        self.spans[id(element)] = (self.parser.CurrentByteIndex, -1)
        self.untouched = element

    def end(self, name: str) -> None:
        element = self.stack.pop()
        start = self.spans[id(element)][0]
        index = self.parser.CurrentByteIndex
        # Expat reports an empty-element tag's end just after its "/>", and an
        # end tag at its "<"; "/>" alone cannot tell, as a child may end so.
        if element is self.untouched and self.data[index - 2 : index] == b"/>":
            end = index
        else:
            end = self.data.index(b">", index) + 1
        self.spans[id(element)] = (start, end)
        self.untouched = None

    def characters(self, text: str) -> None:
        self.untouched = None
        if not self.stack:
            return
        parent = self.stack[-1]
        if len(parent):
            last = parent[-1]
            last.tail = (last.tail or "") + text
        else:
            parent.text = (parent.text or "") + text

    def other(self, *args: object) -> None:
        self.untouched = None


def parseXml(data: bytes, maxSize: int = MAX_DOCUMENT_SIZE) -> ParsedDocument:
    """Parse untrusted XML into a tree; every problem is a :class:`ConfigError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ConfigError(f"document: expected bytes, got {type(data).__name__}", "document")
    data = bytes(data)
    _refuseUnsafe(data, maxSize)
    builder = _TreeBuilder(data)
    builder.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        builder.parser.Parse(data, True)
    except expat.ExpatError as e:
        reason = expat.ErrorString(e.code)
        raise configError("document", f"line {e.lineno}, column {e.offset}: {reason}") from None
    assert builder.root is not None  # expat refuses a document without an element
    return ParsedDocument(data, builder.root, builder.spans)


def checkXmlChars(text: str, path: str) -> None:
    """Refuse characters no XML document can carry (control characters...)."""
    bad = _NOT_XML_CHAR.search(text)
    if bad:
        raise configError(path, f"U+{ord(bad.group()):04X} cannot be written in XML")


def escapeText(text: str, path: str) -> str:
    """Escape character data; ``\\r`` as a reference so that it survives parsing."""
    checkXmlChars(text, path)
    return text.translate(_TEXT_ESCAPES)


def escapeAttribute(text: str, path: str) -> str:
    """Escape an attribute value; whitespace as references, which parsers keep."""
    checkXmlChars(text, path)
    return text.translate(_ATTRIBUTE_ESCAPES)


class _Canonicalizer:
    """Writes one element with every namespace declared on it (see module doc)."""

    def __init__(self) -> None:
        self.prefixes: dict[str, str] = {_XML_NAMESPACE: "xml"}
        self.unqualified = False

    def collect(self, element: ET.Element, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise configError("extension", f"elements are nested deeper than {MAX_DEPTH}")
        if not isinstance(element.tag, str):
            raise configError("extension", "comments and processing instructions are not kept")
        namespace, _ = splitTag(element.tag)
        if namespace:
            self.prefix(namespace)
        else:
            self.unqualified = True
        for key in sorted(element.attrib):
            attributeNamespace, _ = splitTag(key)
            if attributeNamespace:
                self.prefix(attributeNamespace)
        for child in element:
            self.collect(child, depth + 1)

    def prefix(self, namespace: str) -> str:
        if namespace not in self.prefixes:
            taken = set(self.prefixes.values())
            preferred = PREFERRED_PREFIXES.get(namespace)
            if preferred is None or preferred in taken:
                n = 1
                while f"ext{n}" in taken:
                    n += 1
                preferred = f"ext{n}"
            self.prefixes[namespace] = preferred
        return self.prefixes[namespace]

    def name(self, tag: str) -> str:
        namespace, local = splitTag(tag)
        return f"{self.prefixes[namespace]}:{local}" if namespace else local

    def declarations(self) -> str:
        parts = [
            f' xmlns:{prefix}="{escapeAttribute(namespace, "extension")}"'
            for namespace, prefix in self.prefixes.items()
            if namespace != _XML_NAMESPACE
        ]
        if self.unqualified:
            parts.append(' xmlns=""')
        return "".join(parts)

    def write(self, element: ET.Element, out: list[str], declarations: str = "") -> None:
        name = self.name(element.tag)
        path = f"extension {name}"
        out.append(f"<{name}{declarations}")
        for key in sorted(element.attrib, key=splitTag):
            out.append(f' {self.name(key)}="{escapeAttribute(element.attrib[key], path)}"')
        if not element.text and not len(element):
            out.append("/>")
            return
        out.append(">" + escapeText(element.text or "", path))
        for child in element:
            self.write(child, out)
            out.append(escapeText(child.tail or "", path))
        out.append(f"</{name}>")


def canonicalXml(element: ET.Element) -> str:
    """One fixed serialization of ``element`` (its tail is not part of it).

    Two elements that an XML parser cannot tell apart (same names,
    attributes, text, children) give the same string, whatever prefixes the
    source used: the string is a stable value for equality and hashing.
    """
    canonicalizer = _Canonicalizer()
    canonicalizer.collect(element, 0)
    out: list[str] = []
    canonicalizer.write(element, out, canonicalizer.declarations())
    return "".join(out)
