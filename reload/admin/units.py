"""Durations and sizes as a person reads them, for ``reloadctl`` and the
status page alike (standard library only: the command-line client imports
it without the web server)."""

from __future__ import annotations

__all__ = ["duration", "size"]


def duration(seconds: float | None) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``12 min 3 s``, ``4.2 s``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def size(count: float | None) -> str:
    """Bytes as a person reads them: ``512 bytes``, ``64 MiB``."""
    if count is None:
        return "no bound"
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return (
                f"{value:.0f} {unit}"
                if unit == "bytes" or value.is_integer()
                else (f"{value:.1f} {unit}")
            )
        value /= 1024
    return f"{count} bytes"
