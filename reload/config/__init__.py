"""The overlay configuration document (RFC 6940 section 11).

Read it with :func:`parseConfiguration`, write it with
:func:`writeConfiguration` (the two round-trip), compare versions with
:func:`isNewer` and take a ConfigUpdate with :func:`replace`.  A node with no
document uses :func:`defaultConfiguration`.  Signatures are carried, not
verified: :func:`signedBytes` gives the security layer the bytes they cover.
Every problem is a one-line :class:`ConfigError` naming the element.

Modules: ``document`` (reading), ``kinds`` (``<required-kinds>``),
``writer`` (writing, signed bytes), ``model`` (the dataclasses), ``values``
(XML Schema datatypes), ``usages`` (elements of the usage RFCs), ``sequence``
(section 6.3.2.1), ``xmlio`` (safe parsing, canonical XML), ``defaults``.
"""

from reload.config.defaults import BASE_KINDS, defaultConfiguration
from reload.config.document import parseConfiguration
from reload.config.elements import ACCESS_POLICIES, DATA_MODELS
from reload.config.errors import ConfigError
from reload.config.kinds import parseKindBlocks
from reload.config.model import (
    DEFAULT_PORT,
    KNOWN_KIND_IDS,
    BootstrapNode,
    Extension,
    KindConfig,
    OverlayConfiguration,
)
from reload.config.namespaces import SUPPORTED_EXTENSIONS
from reload.config.sequence import ANY_SEQUENCE, compareSequence, isNewer, replace
from reload.config.usages import (
    NamePatterns,
    diagnosticsAccess,
    redirBranchingFactor,
    selfTuningPeersToProbe,
    shareVariableResourceNames,
    sipDomainRestriction,
)
from reload.config.writer import signedBytes, writeConfiguration
from reload.config.xmlio import MAX_DOCUMENT_SIZE

__all__ = [
    "ACCESS_POLICIES",
    "ANY_SEQUENCE",
    "BASE_KINDS",
    "DATA_MODELS",
    "DEFAULT_PORT",
    "KNOWN_KIND_IDS",
    "MAX_DOCUMENT_SIZE",
    "SUPPORTED_EXTENSIONS",
    "BootstrapNode",
    "ConfigError",
    "Extension",
    "KindConfig",
    "NamePatterns",
    "OverlayConfiguration",
    "compareSequence",
    "defaultConfiguration",
    "diagnosticsAccess",
    "isNewer",
    "parseConfiguration",
    "parseKindBlocks",
    "redirBranchingFactor",
    "replace",
    "selfTuningPeersToProbe",
    "shareVariableResourceNames",
    "signedBytes",
    "sipDomainRestriction",
    "writeConfiguration",
]
