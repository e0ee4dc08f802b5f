"""A RELOAD peer as a tree of Twisted services.

:class:`Node` is the root ``MultiService`` that ``twistd reload`` runs.  It
owns the data directory, holds the selected topology and usage plugins and
runs the admin API; the overlay link listener, transport and storage hang
below it as they are built (see DESIGN.md, "Layers and layout").
"""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from reload import __version__
from reload.config import writeConfiguration
from reload.peer import OverlayPeer
from reload.settings import DEFAULT_CONFIGURATION_FILE, PeerSettings
from reload.transport.node_api import TransportNode


class Node(MultiService):
    """The root service of one peer."""

    log = Logger()

    def __init__(self, settings: PeerSettings, reactor: IReactorTime) -> None:
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        self.startedAt: float | None = None
        self.peer = OverlayPeer(settings, reactor)
        self.peer.setServiceParent(self)
        if settings.admin is not None:
            self._addAdmin(settings.admin, reactor)

    def _addAdmin(self, endpoint: str, reactor: IReactorTime) -> None:
        """The HTTP admin API on ``endpoint`` (``--admin``).  Imported here:
        Twisted's web server costs a peer without ``--admin`` (the default)
        a few megabytes for nothing."""
        from twisted.web.server import Site

        from reload.admin import storage as adminStorage
        from reload.admin.overlay import OverlayOperation, ping, routeQuery
        from reload.admin.status import adminRoot

        settings = self.settings
        operations = {
            b"ping": OverlayOperation(self._joinedNode, ping(reactor)),
            b"route-query": OverlayOperation(
                self._joinedNode, routeQuery(lambda: settings.topology.name)
            ),
        }
        storage = lambda: self.peer.storage  # noqa: E731 - read when called
        for name, make in (
            (b"store", adminStorage.store),
            (b"fetch", adminStorage.fetch),
            (b"stat", adminStorage.stat),
            (b"find", adminStorage.find),
            (b"held", adminStorage.held),
        ):
            operations[name] = OverlayOperation(self._joinedNode, make(storage))
        site = Site(adminRoot(self.status, operations))
        site.displayTracebacks = False
        strports.service(endpoint, site).setServiceParent(self)

    def startService(self) -> None:
        settings = self.settings
        settings.dataDir.makedirs(ignoreExistingDirectory=True)
        stored = settings.dataDir.child(DEFAULT_CONFIGURATION_FILE)
        if not stored.exists():
            # The overlay this directory belongs to, kept for later starts
            # (and for peers an operator points at it with --config).
            stored.setContent(writeConfiguration(settings.configuration))
        self.startedAt = self.reactor.seconds()
        self.log.info(
            "RELOAD peer {version} starting: overlay {overlay} ({topology}), "
            "usages {usages}, data in {dataDir}",
            version=__version__,
            overlay=settings.configuration.instanceName,
            topology=settings.topology.name,
            usages=", ".join(u.name for u in settings.usages) or "none",
            dataDir=settings.dataDir.path,
        )
        super().startService()

    def stopService(self) -> Any:
        self.log.info("RELOAD peer stopping")
        return super().stopService()

    def _joinedNode(self) -> TransportNode | None:
        return self.peer.node if self.peer.state == "joined" else None

    def status(self) -> dict[str, Any]:
        """The peer's state for the admin API and ``reloadctl status``."""
        settings = self.settings
        uptime = None if self.startedAt is None else self.reactor.seconds() - self.startedAt
        return {
            "version": __version__,
            "overlay": settings.configuration.instanceName,
            "configurationSequence": settings.configuration.sequence,
            "topology": settings.topology.name,
            "dataDir": settings.dataDir.path,
            "listen": settings.listen,
            "bootstrap": [str(b) for b in settings.bootstrap],
            "running": bool(self.running),
            "uptime": uptime,
            **self.peer.status(),
        }
