"""A RELOAD peer as a tree of Twisted services.

:class:`Node` is the root ``MultiService`` that ``twistd reload`` runs.  It
owns the data directory, holds the selected topology and usage plugins and
runs the admin API; the overlay link listener, transport and storage hang
below it as they are built (see DESIGN.md, "Layers and layout").
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import sys
from typing import IO, Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, globalLogPublisher

from reload import __version__
from reload.config import writeConfiguration
from reload.peer import OverlayPeer
from reload.settings import DEFAULT_CONFIGURATION_FILE, PeerSettings
from reload.transport.node_api import TransportNode
from reload.wire import CODEC

#: The file in a data directory that one running peer holds locked.
LOCK_FILE = "peer.lock"

#: The exit status ``twistd reload`` ends with: 0 unless start-up failed.
_exitStatus: list[int] = []


def _exitWithStatus() -> None:
    """At interpreter exit, after twistd removed its pid file and flushed
    its log: end with the status a failed start-up recorded (twistd itself
    always exits 0 when its reactor stops)."""
    if _exitStatus:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(_exitStatus[0])


def failStartup(message: str, reactor: Any, status: int = 1) -> None:
    """Start-up failed: ``message`` as one line on the process's real
    standard error (twistd may have redirected ``sys.stderr`` to the log),
    then stop the reactor and exit with ``status``."""
    if not _exitStatus:
        _exitStatus.append(status)
        atexit.register(_exitWithStatus)
    with contextlib.suppress(OSError):  # no standard error (a daemon): the log has it
        os.write(2, f"twistd reload: {message}\n".encode(errors="replace"))
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


def capRotatedLogs(keep: int | None) -> list[str]:
    """Keep at most ``keep`` rotated files of twistd's ``--logfile``.

    twistd rotates its log file at 1 MB and keeps every rotated file; it
    has no option to bound them.  The file it writes is a
    :class:`twisted.python.logfile.LogFile` behind a FileLogObserver on the
    global log publisher: give it ``maxRotatedFiles`` (which its rotation
    honours) and remove the files already beyond.  Returns the log file
    paths capped (none when not logging to a file)."""
    if keep is None:
        return []
    from twisted.logger import globalLogPublisher
    from twisted.python.logfile import LogFile

    capped = []
    for observer in list(getattr(globalLogPublisher, "_observers", [])):
        logFile = getattr(observer, "_outFile", None)
        if not isinstance(logFile, LogFile):
            continue
        logFile.maxRotatedFiles = keep
        for number in logFile.listLogs():
            if number > keep:
                with contextlib.suppress(OSError):
                    os.remove(f"{logFile.path}.{number}")
        capped.append(logFile.path)
    return capped


class DataDirectoryLocked(Exception):
    """Another running peer holds the data directory."""


class DataDirectoryLock:
    """One peer per data directory: an exclusive ``flock`` on
    ``peer.lock``, which holds the pid of the peer that has it.  The kernel
    drops the lock when the process ends, however it ends, so a stale file
    from a killed peer locks nothing."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCK_FILE)
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid, or raise
        :class:`DataDirectoryLocked` naming the holder's pid."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        lockFile = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(lockFile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lockFile.seek(0)
            holder = lockFile.read().strip() or "unknown"
            lockFile.close()
            raise DataDirectoryLocked(
                f"--data-dir {os.path.dirname(self.path)}: in use by the peer with pid {holder}"
            ) from None
        lockFile.seek(0)
        lockFile.truncate()
        lockFile.write(f"{os.getpid()}\n")
        lockFile.flush()
        self._file = lockFile

    @property
    def held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        """Empty the file and drop the lock."""
        lockFile, self._file = self._file, None
        if lockFile is not None:
            lockFile.truncate(0)
            fcntl.flock(lockFile, fcntl.LOCK_UN)
            lockFile.close()


class Node(MultiService):
    """The root service of one peer."""

    log = Logger()

    def __init__(self, settings: PeerSettings, reactor: IReactorTime) -> None:
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        self.startedAt: float | None = None
        #: The admin API's bearer token and its file (made on start-up).
        self.adminToken: str | None = None
        self.adminTokenFile: str | None = None
        #: The Prometheus metrics (with --admin; reload.admin.metrics).
        self.metrics: Any = None
        #: The recent warnings of the log, for the status page (with --admin).
        self.warnings: Any = None
        self.lock = DataDirectoryLock(settings.dataDir.path)
        self.peer = OverlayPeer(settings, reactor)
        self.peer.onFatal = lambda error: failStartup(error, reactor)
        self.peer.setServiceParent(self)
        if settings.admin is not None:
            self._addAdmin(settings.admin, reactor)

    def setServiceParent(self, parent: Any) -> Any:
        """Under twistd ``parent`` is the application: with ``--log-level``
        or ``--log-format`` given, its log observer component is ours,
        which twistd then uses (:mod:`reload.logoptions`)."""
        result = super().setServiceParent(parent)
        settings = self.settings
        if (settings.logLevel, settings.logFormat) != ("info", "text") and hasattr(
            parent, "setComponent"
        ):
            from twisted.logger import ILogObserver

            from reload.logoptions import LogError, logObserver

            try:
                observer = logObserver(
                    settings.logLevel,
                    settings.logFormat,
                    settings.logFile,
                    settings.noDaemon,
                    settings.logKeep,
                )
            except LogError as exc:
                failStartup(str(exc), self.reactor)
            else:
                parent.setComponent(ILogObserver, observer)
        return result

    def _addAdmin(self, endpoint: str, reactor: IReactorTime) -> None:
        """The HTTP admin API on ``endpoint`` (``--admin``).  Imported here:
        Twisted's web server costs a peer without ``--admin`` (the default)
        a few megabytes for nothing."""
        from twisted.web.resource import Resource

        from reload.admin import storage as adminStorage
        from reload.admin.access import AccessPolicy, GuardedSite
        from reload.admin.metrics import MetricsResource, PeerMetrics, linksOf, storedByKind
        from reload.admin.overlay import OverlayOperation, ping, routeQuery
        from reload.admin.page import RecentWarnings, StatusPage
        from reload.admin.status import adminRoot
        from reload.admin.usages import UsageOperationsResource

        settings = self.settings
        operations: dict[bytes, Resource] = {
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
        self.metrics = PeerMetrics(reactor)
        self.metrics.watch(self.peer, settings, lambda: self.peer.state == "joined")
        operations[b"metrics"] = MetricsResource(self.metrics)
        operations[b"usage"] = UsageOperationsResource(
            lambda: self.peer.state == "joined", self.peer.usages.operations
        )
        policy = AccessPolicy(lambda: self.adminToken, settings.adminHosts)
        self.warnings = RecentWarnings()
        page = StatusPage(
            self.status,
            lambda: linksOf(self.peer),
            lambda: storedByKind(self.peer),
            self.warnings,
            reactor.seconds,
        )
        site = GuardedSite(adminRoot(self.status, operations, page), policy)
        strports.service(endpoint, site).setServiceParent(self)

    def startService(self) -> None:
        settings = self.settings
        # Before anything else touches the directory: one peer per Node-ID
        # and SQLite file.
        try:
            self.lock.acquire()
        except (DataDirectoryLocked, OSError) as exc:
            self.log.critical("Cannot start the peer: {error}", error=str(exc))
            failStartup(str(exc), self.reactor)
            return
        capRotatedLogs(settings.logKeep)
        if settings.admin is not None and not self._makeAdminToken():
            return
        stored = settings.dataDir.child(DEFAULT_CONFIGURATION_FILE)
        if not stored.exists():
            # The overlay this directory belongs to, kept for later starts
            # (and for peers an operator points at it with --config).
            stored.setContent(writeConfiguration(settings.configuration))
        self.startedAt = self.reactor.seconds()
        if self.warnings is not None:
            globalLogPublisher.addObserver(self.warnings)
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
        if not self.lock.held:
            return None  # never started: the directory belongs to another peer
        self.log.info("RELOAD peer stopping")
        if self.warnings is not None:
            globalLogPublisher.removeObserver(self.warnings)
        stopping = super().stopService()
        if stopping is None:
            self.lock.release()
            return None

        def release(result: object) -> object:
            self.lock.release()
            return result

        return stopping.addBoth(release)

    def _makeAdminToken(self) -> bool:
        """Read, or make on the first start, the admin API's token
        (:mod:`reload.admin.token`); False when start-up failed on it."""
        from reload.admin.token import TokenFileError, loadOrCreate

        try:
            self.adminToken, self.adminTokenFile = loadOrCreate(self.settings.dataDir.path)
        except (TokenFileError, OSError) as exc:
            self.log.critical("Cannot start the peer: {error}", error=str(exc))
            failStartup(str(exc), self.reactor)
            return False
        return True

    def _joinedNode(self) -> TransportNode | None:
        return self.peer.node if self.peer.state == "joined" else None

    def status(self) -> dict[str, Any]:
        """The peer's state for the admin API and ``reloadctl status``."""
        settings = self.settings
        uptime = None if self.startedAt is None else self.reactor.seconds() - self.startedAt
        return {
            "version": __version__,
            # "compiled" or "pure": which wire codec this process runs.
            "codec": CODEC,
            "overlay": settings.configuration.instanceName,
            "configurationSequence": settings.configuration.sequence,
            "topology": settings.topology.name,
            "dataDir": os.path.abspath(settings.dataDir.path),
            # Where reloadctl finds the token (readable by the peer's user only).
            "adminTokenFile": self.adminTokenFile,
            "recentWarnings": self.warnings.recent() if self.warnings is not None else [],
            "listen": settings.listen,
            "bootstrap": [str(b) for b in settings.bootstrap],
            "running": bool(self.running),
            "uptime": uptime,
            **self.peer.status(),
        }
