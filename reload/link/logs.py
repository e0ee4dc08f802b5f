"""Log lines about refusals, rate-limited per reason and per source.

Whatever a remote party can trigger at will (a refused connection, a
malformed message, a refused Store) must not let it write the log at the
rate it sends: 10,000 garbage frames would otherwise be 10,000 warnings.
:class:`RefusalLog` writes, for each *reason* (a short fixed string such as
``"malformed message"``), at most ``perSource`` lines per source and at most
``perReason`` lines in all per ``interval`` seconds; what it holds back is
counted and reported in one summary line when the interval ends::

    refusals suppressed in the last 60 s: malformed message: 9990 more

Reasons come from the code (a fixed set), and only sources that got a line
are remembered, so its memory is bounded whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.logger import Logger, LogLevel

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_PER_REASON", "DEFAULT_PER_SOURCE", "Clock", "RefusalLog"]

#: Seconds in which the limits below apply.
DEFAULT_INTERVAL = 60.0
#: Lines per (reason, source) in an interval.
DEFAULT_PER_SOURCE = 3
#: Lines per reason, all sources together, in an interval.
DEFAULT_PER_REASON = 10


class _Call(Protocol):
    def active(self) -> bool: ...
    def cancel(self) -> None: ...


class Clock(Protocol):
    """The part of IReactorTime a :class:`RefusalLog` uses."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> Any: ...


@dataclass
class _Window:
    start: float
    lines: int = 0
    suppressed: int = 0
    perSource: dict[str, int] = field(default_factory=dict)


class RefusalLog:
    """A rate limit in front of a :class:`twisted.logger.Logger` (see the
    module docstring).  ``clock`` gives the time and runs the summary."""

    def __init__(
        self,
        log: Logger,
        clock: Clock,
        interval: float = DEFAULT_INTERVAL,
        perSource: int = DEFAULT_PER_SOURCE,
        perReason: int = DEFAULT_PER_REASON,
    ) -> None:
        if interval <= 0 or perSource < 1 or perReason < 1:
            raise ValueError("interval must be positive, perSource and perReason at least 1")
        self.log = log
        self.clock = clock
        self.interval = interval
        self.perSource = perSource
        self.perReason = perReason
        self._windows: dict[str, _Window] = {}
        self._summary: _Call | None = None
        #: Lines held back since this log was made, per reason.
        self.suppressed: dict[str, int] = {}

    def emit(
        self, level: LogLevel, reason: str, source: object, format: str, **kwargs: Any
    ) -> bool:
        """Log ``format`` (a twisted.logger format string, with ``kwargs``
        and ``reason``/``source`` available) at ``level`` unless the limits
        for ``reason`` and ``source`` are used up; True if it was logged."""
        now = self.clock.seconds()
        window = self._windows.get(reason)
        if window is None or now - window.start >= self.interval:
            if window is not None and window.suppressed:
                self._flush()
            window = self._windows[reason] = _Window(now)
        key = str(source)
        count = window.perSource.get(key, 0)
        if count >= self.perSource or window.lines >= self.perReason:
            window.suppressed += 1
            self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
            if self._summary is None:
                self._summary = self.clock.callLater(self.interval, self._flush)
            return False
        window.perSource[key] = count + 1
        window.lines += 1
        self.log.emit(level, format, reason=reason, source=key, **kwargs)
        return True

    def warn(self, reason: str, source: object, format: str, **kwargs: Any) -> bool:
        """:meth:`emit` at warning level."""
        return self.emit(LogLevel.warn, reason, source, format, **kwargs)

    def info(self, reason: str, source: object, format: str, **kwargs: Any) -> bool:
        """:meth:`emit` at info level."""
        return self.emit(LogLevel.info, reason, source, format, **kwargs)

    def _flush(self) -> None:
        """One line for everything held back, and fresh windows."""
        if self._summary is not None and self._summary.active():
            self._summary.cancel()
        self._summary = None
        held = {r: w.suppressed for r, w in self._windows.items() if w.suppressed}
        self._windows.clear()
        if held:
            self.log.warn(
                "refusals suppressed in the last {interval:g} s: {counts}",
                interval=self.interval,
                counts="; ".join(f"{r}: {n} more" for r, n in sorted(held.items())),
            )

    def stop(self) -> None:
        """Write the pending summary now and cancel its timer."""
        self._flush()
