"""The Kinds this peer stores: Kind-ID -> data model, policy, limits.

Built from the overlay configuration's ``<required-kinds>`` (section 11.1)
and the policies of a :class:`~reload.storage.policies.PolicyRegistry`.
For a Kind registered with IANA, "the data-model and access-control
elements MUST match those in the Kind registration, and clients MUST ignore
them in favor of the IANA versions" (section 11.1): :data:`IANA_KINDS`
wins over what the document says.

A Kind the table does not hold is unknown: "Implementations MUST reject
requests corresponding to unknown Kinds" with Error_Unknown_Kind, whose
error_info "lists all the Kinds that were unrecognized" (section 7.4.1.2);
:func:`unknownKindError` builds it.

The Certificate Store usage's Kinds (section 8) are the base protocol's
own: CERTIFICATE_BY_NODE and CERTIFICATE_BY_USER, arrays of certificates,
under NODE-MATCH and USER-MATCH; their values are checked to be DER X.509
certificates (:func:`validateCertificate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from cryptography import x509

from reload.errors import ReloadError
from reload.storage.policies import (
    NODE_MATCH,
    NODE_MULTIPLE,
    USER_MATCH,
    USER_NODE_MATCH,
    PolicyRegistry,
)
from reload.wire.message import ErrorCode
from reload.wire.storage import DataModel, UnknownKindsInfo

__all__ = [
    "CERTIFICATE_BY_NODE",
    "CERTIFICATE_BY_USER",
    "IANA_KINDS",
    "KindEntry",
    "KindTable",
    "Validator",
    "unknownKindError",
    "validateCertificate",
]

#: Section 14.6 Kind-IDs of the Certificate Store usage (section 8).
CERTIFICATE_BY_NODE = 0x3
CERTIFICATE_BY_USER = 0x10

#: Kind-ID -> (data model, access control) of the IANA registrations:
#: RFC 6940 sections 8 and 9, RFC 7904 section 7 (SIP-REGISTRATION), RFC
#: 8076 section 7 (ACCESS-CONTROL-LIST), RFC 7374 section 5 (REDIR).
IANA_KINDS: Mapping[int, tuple[DataModel, str]] = MappingProxyType(
    {
        0x1: (DataModel.DICTIONARY, USER_NODE_MATCH),
        0x2: (DataModel.SINGLE, NODE_MULTIPLE),
        CERTIFICATE_BY_NODE: (DataModel.ARRAY, NODE_MATCH),
        0x4: (DataModel.ARRAY, "USER-CHAIN-ACL"),
        CERTIFICATE_BY_USER: (DataModel.ARRAY, USER_MATCH),
        0x104: (DataModel.DICTIONARY, "NODE-ID-MATCH"),
    }
)

#: Checks one value (the bytes of an existing DataValue) before it is
#: stored; raises ValueError with a reason (answered Error_Invalid_Message,
#: as :meth:`reload.interfaces.IKind.validate` says).
Validator = Callable[[bytes], None]
#: ``(AccessRequest, node) -> None``, ValueError to refuse (IKindStoreCheck).
StoreCheck = Callable[[Any, Any], None]

#: The largest number of Kind-IDs an Error_Unknown_Kind can list
#: (``KindId unknown_kinds<0..2^8-1>``).
_MAX_UNKNOWN = 63


def validateCertificate(value: bytes) -> None:
    """Section 8: CERTIFICATE_BY_NODE and CERTIFICATE_BY_USER hold
    certificates (DER X.509, the certificate type section 6.3.4 defines)."""
    try:
        x509.load_der_x509_certificate(value)
    except ValueError as exc:
        raise ValueError(f"not a DER X.509 certificate: {exc}") from None


_BUILTIN_VALIDATORS: Mapping[int, Validator] = MappingProxyType(
    {CERTIFICATE_BY_NODE: validateCertificate, CERTIFICATE_BY_USER: validateCertificate}
)

_MODELS = {m.name: m for m in DataModel}


@dataclass(frozen=True, slots=True)
class KindEntry:
    """One Kind as this peer enforces it.

    ``policy`` is the access-control name; ``policyAvailable`` is False
    when no policy of that name is installed (a usage missing): the Kind is
    known, its data can be fetched, but every store of it is refused.
    ``maxCount`` bounds the values per Resource-ID (for an array: its
    length, highest index + 1), ``maxSize`` the bytes of one value.
    """

    kindId: int
    name: str | None
    model: DataModel
    policy: str
    maxCount: int
    maxSize: int
    maxNodeMultiple: int | None = None
    policyAvailable: bool = True
    validator: Validator | None = None
    #: A usage Kind's :meth:`reload.interfaces.IKindStoreCheck.checkStore`.
    storeCheck: StoreCheck | None = None

    @property
    def label(self) -> str:
        return self.name if self.name else f"{self.kindId:#x}"


class _KindDefinition(Protocol):
    """What is read of a :class:`reload.config.KindConfig`."""

    @property
    def effectiveId(self) -> int | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def maxCount(self) -> int: ...
    @property
    def maxSize(self) -> int: ...
    @property
    def maxNodeMultiple(self) -> int | None: ...
    @property
    def dataModel(self) -> str: ...
    @property
    def accessControl(self) -> str: ...


class KindTable:
    """The effective Kind table: Kind-ID -> :class:`KindEntry`.

    ``skipped`` names the configured Kinds that could not be entered (a
    name with no known Kind-ID, a data model this node lacks), with why.
    """

    def __init__(self, entries: Iterable[KindEntry] = ()) -> None:
        self._entries: dict[int, KindEntry] = {}
        for entry in entries:
            if entry.kindId in self._entries:
                raise ValueError(f"Kind-ID {entry.kindId:#x} appears twice")
            self._entries[entry.kindId] = entry
        self._models: Mapping[int, DataModel] = MappingProxyType(
            {k: e.model for k, e in self._entries.items()}
        )
        self.skipped: tuple[tuple[str, str], ...] = ()

    @classmethod
    def fromConfiguration(
        cls,
        kinds: Iterable[_KindDefinition],
        registry: PolicyRegistry | None = None,
        validators: Mapping[int, Validator] | None = None,
        names: Mapping[int, str] | None = None,
        storeChecks: Mapping[int, StoreCheck] | None = None,
    ) -> KindTable:
        """The table of an overlay configuration's ``kinds``
        (:attr:`reload.config.OverlayConfiguration.kinds`).  ``validators``
        adds value checks by Kind-ID (a usage's ``IKind.validate``); the
        certificate Kinds have theirs built in.  ``names`` names the Kinds
        the configuration gives by number only (a usage's ``IKind.name``),
        for the messages that speak of them.  ``storeChecks`` adds a usage
        Kind's own store-side check (IKindStoreCheck) by Kind-ID."""
        registry = registry if registry is not None else PolicyRegistry()
        checks = dict(_BUILTIN_VALIDATORS)
        checks.update(validators or {})
        entries: list[KindEntry] = []
        skipped: list[tuple[str, str]] = []
        for kind in kinds:
            kindId = kind.effectiveId
            label = kind.name if kind.name is not None else str(kindId)
            if kindId is None:
                skipped.append((label, "the name is not a Kind this node knows the Kind-ID of"))
                continue
            registered = IANA_KINDS.get(kindId)
            if registered is not None:
                model, policy = registered
            else:
                found = _MODELS.get(kind.dataModel)
                if found is None:
                    skipped.append((label, f"data model {kind.dataModel!r} is not supported"))
                    continue
                model, policy = found, kind.accessControl
            entries.append(
                KindEntry(
                    kindId=kindId,
                    name=kind.name if kind.name is not None else (names or {}).get(kindId),
                    model=model,
                    policy=policy,
                    maxCount=kind.maxCount,
                    maxSize=kind.maxSize,
                    maxNodeMultiple=kind.maxNodeMultiple,
                    policyAvailable=policy in registry,
                    validator=checks.get(kindId),
                    storeCheck=(storeChecks or {}).get(kindId),
                )
            )
        table = cls(entries)
        table.skipped = tuple(skipped)
        return table

    def get(self, kindId: int) -> KindEntry | None:
        return self._entries.get(kindId)

    def __getitem__(self, kindId: int) -> KindEntry:
        return self._entries[kindId]

    def __contains__(self, kindId: object) -> bool:
        return kindId in self._entries

    def __iter__(self) -> Iterator[KindEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def models(self) -> Mapping[int, DataModel]:
        """Kind-ID -> data model, what the wire decoders of
        :mod:`reload.wire.storage` take."""
        return self._models

    def unknown(self, kindIds: Iterable[int]) -> tuple[int, ...]:
        """The Kind-IDs of ``kindIds`` not in the table, in order, once."""
        out: list[int] = []
        for kindId in kindIds:
            if kindId not in self._entries and kindId not in out:
                out.append(kindId)
        return tuple(out)

    def require(self, kindIds: Iterable[int]) -> None:
        """Raise Error_Unknown_Kind listing every unknown Kind-ID."""
        unknown = self.unknown(kindIds)
        if unknown:
            raise unknownKindError(unknown)


def unknownKindError(kindIds: Iterable[int]) -> ReloadError:
    """Section 7.4.1.2: Error_Unknown_Kind with ``KindId
    unknown_kinds<0..2^8-1>`` listing the unrecognised Kinds (the first 63,
    all a one-byte length can hold)."""
    kinds = tuple(kindIds)[:_MAX_UNKNOWN]
    return ReloadError(ErrorCode.UNKNOWN_KIND, UnknownKindsInfo(kinds).encode())
