"""``--log-level`` and ``--log-format``: what the peer logs and how.

twistd picks its log observer when it starts logging, after the plugin
made its service: an ``ILogObserver`` component on the application wins
over ``--logfile`` (``twisted.application.app.AppLogger.start``).  With
either option given, the node sets that component to the observer built
here -- the same destination twistd would use (``--logfile``, standard
output with ``-n``, else ``twistd.log``), filtered to the level, written as
text or as one JSON object per line (Twisted's ``jsonFileLogObserver``, for
log shippers: journald, Vector, Fluent Bit, Filebeat).  Without them
twistd's own observer runs untouched.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, Any, cast

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    jsonFileLogObserver,
    textFileLogObserver,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer

__all__ = ["FORMATS", "LEVELS", "LogError", "logObserver"]

#: ``--log-level`` values, least to most severe.
LEVELS = {level.name: level for level in LogLevel.iterconstants()}
#: ``--log-format`` values.
FORMATS = ("text", "json")
#: twistd's own rotation size for --logfile (twisted.python.logfile.LogFile).
ROTATE_LENGTH = 1_000_000


class LogError(ValueError):
    """A log option that cannot be honoured."""


def _destination(logfile: str | None, nodaemon: bool, keep: int | None) -> IO[Any]:
    """Where twistd itself would log (twisted.scripts._twistd_unix)."""
    if logfile == "-" or (nodaemon and not logfile):
        if not nodaemon:
            raise LogError("a daemon cannot log to standard output: give --logfile")
        return sys.stdout
    path = os.path.abspath(logfile or "twistd.log")
    try:
        logFile = LogFile.fromFullPath(path, rotateLength=ROTATE_LENGTH, maxRotatedFiles=keep)
    except OSError as exc:
        raise LogError(f"--logfile {path}: {exc.strerror or exc}") from None
    if keep is not None:
        for number in logFile.listLogs():
            if number > keep:
                with contextlib.suppress(OSError):
                    os.remove(f"{path}.{number}")
    return cast(IO[Any], logFile)


@implementer(ILogObserver)
class _WithMessage:
    """Adds ``message``, the event as text, to what the JSON observer
    writes: shippers show it, and need not know Twisted's format strings."""

    def __init__(self, observer: ILogObserver) -> None:
        self._observer = observer

    def __call__(self, event: dict[str, Any]) -> None:
        self._observer({**event, "message": formatEvent(event)})


def logObserver(
    level: str, format: str, logfile: str | None, nodaemon: bool, keep: int | None
) -> ILogObserver:
    """The observer for ``--log-level level --log-format format``."""
    out = _destination(logfile, nodaemon, keep)
    base: ILogObserver
    if format == "json":
        # recordSeparator "": one JSON object per line (NDJSON), not RFC 7464.
        base = _WithMessage(jsonFileLogObserver(out, recordSeparator=""))
    else:
        base = textFileLogObserver(out)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[level])
    return FilteringLogObserver(base, [predicate])
