"""Writing files so that a crash leaves the old or the new content, never
a torn mix: keys, certificates, the enrollment server's records."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["writeAtomically"]


def writeAtomically(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path``: temporary file with ``mode`` in the same
    directory, flushed to disk, renamed over ``path``; then the directory
    is synced, so the rename survives a crash.  The file never exists with
    wider permissions than ``mode``, nor half written."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)
