"""Running usage plugins beside a peer (RFC 6940 section 5.2).

A usage brings Kinds and, optionally, a service.  Before the peer starts,
:func:`usageKinds` checks that the overlay configuration lists every Kind of
every selected usage with the same data model and access policy (section
11.1: the configuration is what every node of the overlay enforces), and
:func:`checkUsageOptions` lets each usage refuse a bad option; both fail
with one line for the operator.  :class:`UsageRunner` starts the usages'
services once the peer has joined and stops them before it leaves; a
usage whose service fails is logged, stopped and marked failed, and the
peer and the other usages go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from reload.config import KindConfig
from reload.interfaces import (
    IKind,
    IKindStoreCheck,
    INode,
    IUsage,
    IUsageMetrics,
    IUsageOperations,
    IUsageStatus,
)
from reload.plugins import brokenReason
from reload.storage.kinds import KindTable
from reload.storage.policies import PolicyRegistry

__all__ = [
    "UsageError",
    "UsageRunner",
    "checkUsageOptions",
    "kindElement",
    "kindTable",
    "usageKindConfigs",
    "usageKinds",
]


class UsageError(ValueError):
    """A usage that cannot run in this overlay: one line for the operator."""


def kindElement(kind: Any) -> str:
    """The ``<kind-block>`` (section 11.1) the configuration needs for
    ``kind``, as an operator pastes it into ``<required-kinds>``."""
    return (
        f'<kind-block><kind id="{kind.kindId}"><data-model>{kind.dataModel.name}</data-model>'
        f"<access-control>{kind.accessPolicy}</access-control>"
        f"<max-count>{kind.maxCount}</max-count><max-size>{kind.maxSize}</max-size>"
        "</kind></kind-block>"
    )


def _kindsOf(usage: Any) -> list[Any]:
    kinds = list(usage.kinds())
    for kind in kinds:
        reason = brokenReason(IKind, kind)
        if reason is not None:
            raise UsageError(f"usage {usage.name}: a Kind is broken: {reason}")
    return kinds


def usageKinds(configuration: Any, usages: Iterable[Any]) -> dict[int, Any]:
    """Kind-ID -> IKind of every Kind the ``usages`` define, each checked
    against ``configuration``: listed, with the same data model and access
    control.  Raises :class:`UsageError` naming the first that is not, and
    the element to add."""
    found: dict[int, Any] = {}
    for usage in usages:
        for kind in _kindsOf(usage):
            other = found.get(kind.kindId)
            if other is not None and other is not kind:
                raise UsageError(
                    f"usage {usage.name}: Kind {kind.name} has Kind-ID {kind.kindId:#x}, "
                    f"which Kind {other.name} of another usage uses too"
                )
            configured = configuration.kind(kind.kindId)
            if configured is None:
                raise UsageError(
                    f"usage {usage.name}: Kind {kind.name} ({kind.kindId:#x}) is not in the "
                    f"overlay configuration; add {kindElement(kind)} to its <required-kinds>"
                )
            for what, theirs, ours in (
                ("data-model", configured.dataModel, kind.dataModel.name),
                ("access-control", configured.accessControl, kind.accessPolicy),
            ):
                if theirs.upper() != str(ours).upper():
                    raise UsageError(
                        f"usage {usage.name}: Kind {kind.name} ({kind.kindId:#x}) has "
                        f"{what} {ours}, the overlay configuration says {theirs}"
                    )
            found[kind.kindId] = kind
    return found


def kindTable(
    configuration: Any, usages: Sequence[Any], usageKindsById: Mapping[int, Any]
) -> tuple[KindTable, PolicyRegistry]:
    """The Kind table a node enforces (section 7.4.1.2): the
    configuration's Kinds, with the usages' access policies, and each
    usage Kind's ``validate`` and name (:func:`usageKinds` gives them)."""
    registry = PolicyRegistry([p for usage in usages for p in usage.accessPolicies()])
    table = KindTable.fromConfiguration(
        configuration.kinds,
        registry,
        validators={kindId: kind.validate for kindId, kind in usageKindsById.items()},
        names={kindId: kind.name for kindId, kind in usageKindsById.items()},
        storeChecks={
            kindId: kind.checkStore
            for kindId, kind in usageKindsById.items()
            if IKindStoreCheck.providedBy(kind)
        },
    )
    return table, registry


def usageKindConfigs(usages: Iterable[Any]) -> tuple[KindConfig, ...]:
    """The ``<kind>`` entries for the Kinds of ``usages``, with their
    default limits: what a new overlay this node creates lists."""
    return tuple(
        KindConfig(
            kindId=kind.kindId,
            maxCount=kind.maxCount,
            maxSize=kind.maxSize,
            dataModel=kind.dataModel.name,
            accessControl=kind.accessPolicy,
        )
        for usage in usages
        for kind in _kindsOf(usage)
    )


def checkUsageOptions(usages: Sequence[Any], options: Mapping[str, Mapping[str, str]]) -> None:
    """Let each usage refuse its options before anything starts
    (:meth:`IUsage.checkOptions`); :class:`UsageError` with its reason."""
    for usage in usages:
        given = dict(options.get(usage.name, {}))
        try:
            usage.checkOptions(given)
        except ValueError as exc:
            raise UsageError(f"--usage-option {usage.name}: {exc}") from None


@dataclass
class _Running:
    """One usage beside the node: its service and how it fares."""

    usage: Any
    service: Any = None
    #: "waiting" (for the join), "running", "kinds only" (no service),
    #: "failed", "stopped".
    state: str = "waiting"
    error: str | None = None


class UsageRunner:
    """The services of ``usages`` (each given its ``options``) beside one
    node."""

    log = Logger()

    def __init__(self, usages: Sequence[Any], options: Mapping[str, Mapping[str, str]]) -> None:
        self._options = {name: dict(values) for name, values in options.items()}
        self._running = [_Running(usage) for usage in usages]

    def start(self, node: INode) -> None:
        """Section 5.2: make and start each usage's service for ``node``,
        which has joined.  A usage that fails is logged and marked; the
        others still start."""
        for entry in self._running:
            if entry.state != "waiting":
                continue
            usage = entry.usage
            try:
                service = IUsage(usage).makeService(node, dict(self._options.get(usage.name, {})))
            except Exception:
                self._failed(entry, Failure())
                continue
            if service is None:
                entry.state = "kinds only"
                continue
            entry.service = service
            entry.state = "running"
            started = maybeDeferred(service.startService)
            started.addErrback(self._startFailed, entry)
            if entry.state == "running":
                self.log.info("Usage {usage} started", usage=usage.name)

    def _startFailed(self, failure: Failure, entry: _Running) -> None:
        self._failed(entry, failure)
        service = entry.service
        if service is not None and getattr(service, "running", False):
            maybeDeferred(service.stopService).addErrback(
                lambda f: self.log.failure(
                    "Stopping usage {usage} failed", f, usage=entry.usage.name
                )
            )

    def _failed(self, entry: _Running, failure: Failure) -> None:
        entry.state = "failed"
        entry.error = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
        self.log.failure(
            "Usage {usage} failed and is stopped; the peer goes on",
            failure,
            usage=entry.usage.name,
        )

    def _stopFailed(self, failure: Failure, name: str) -> None:
        self.log.failure("Stopping usage {usage} failed", failure, usage=name)

    def stop(self) -> Deferred[Any]:
        """Stop every running service (before the node leaves); fires when
        all have stopped, whatever each did."""
        stopping = []
        for entry in self._running:
            if entry.state == "running" and entry.service is not None:
                d = maybeDeferred(entry.service.stopService)
                stopping.append(d.addErrback(self._stopFailed, entry.usage.name))
                entry.state = "stopped"
            elif entry.state == "waiting":
                entry.state = "stopped"
        return DeferredList(stopping, consumeErrors=True)

    def service(self, name: str) -> Any:
        """The service usage ``name`` made (None when it made none or has
        not started); KeyError for a usage this runner does not run."""
        for entry in self._running:
            if entry.usage.name == name:
                return entry.service
        raise KeyError(f"no usage {name!r} here")

    def operations(self, name: str) -> Mapping[str, Any]:
        """The operator operations of usage ``name``'s running service
        (:class:`IUsageOperations`); KeyError when the usage is not run here
        or its service is not running or offers none."""
        for entry in self._running:
            if entry.usage.name != name:
                continue
            service = entry.service
            if entry.state != "running" or not IUsageOperations.providedBy(service):
                raise KeyError(f"usage {name} is {entry.state} and offers no operations")
            return dict(IUsageOperations(service).operations())
        raise KeyError(f"usage {name} is not run by this peer")

    def _serviceStatus(self, entry: _Running) -> dict[str, Any]:
        """The service's own status (:class:`IUsageStatus`); a service whose
        ``status`` raises shows the error instead of breaking the page."""
        try:
            return dict(IUsageStatus(entry.service).status())
        except Exception:
            failure = Failure()
            self.log.failure("Status of usage {usage} failed", failure, usage=entry.usage.name)
            return {"error": f"{type(failure.value).__name__}: {failure.getErrorMessage()}"}

    def metricSources(self) -> list[tuple[str, Any]]:
        """(usage name, service) of each running service that adds metrics
        (:class:`IUsageMetrics`)."""
        return [
            (entry.usage.name, IUsageMetrics(entry.service))
            for entry in self._running
            if entry.state == "running" and IUsageMetrics.providedBy(entry.service)
        ]

    def status(self) -> list[dict[str, Any]]:
        """Each usage and its state (and its service's own status,
        :class:`IUsageStatus`), for the admin API and ``reloadctl
        status``."""
        out = []
        for entry in self._running:
            item: dict[str, Any] = {
                "name": entry.usage.name,
                "state": entry.state,
                "kinds": [f"{k.name} ({k.kindId:#x})" for k in entry.usage.kinds()],
            }
            if entry.error:
                item["error"] = entry.error
            if entry.state == "running" and IUsageStatus.providedBy(entry.service):
                item["status"] = self._serviceStatus(entry)
            out.append(item)
        return out
