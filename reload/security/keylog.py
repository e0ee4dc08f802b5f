"""TLS and DTLS session secrets in the NSS key log format, for Wireshark.

When the ``SSLKEYLOGFILE`` environment variable names a file -- the
convention curl, Firefox and Chromium follow -- every overlay link appends
its secrets there, so that a capture of the overlay can be decrypted.  It
is off by default: the secrets let anyone holding the file read the links.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from OpenSSL import SSL

__all__ = ["KEYLOG_VARIABLE", "KeyLog", "keyLogFile"]

#: The environment variable that switches key logging on.
KEYLOG_VARIABLE = "SSLKEYLOGFILE"


def keyLogFile(environ: dict[str, str] | None = None) -> str | None:
    """The key log file the environment names, or None (key logging off)."""
    value = (os.environ if environ is None else environ).get(KEYLOG_VARIABLE, "")
    return value or None


class KeyLog:
    """Appends key log lines to one file; one per process, shared by every
    context (TLS and DTLS) that logs."""

    _lock = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path

    def install(self, context: SSL.Context) -> None:
        """Make ``context`` log the secrets of every connection it makes."""
        context.set_keylog_callback(self._write)

    def _write(self, connection: Any, line: bytes) -> None:
        # Opened per line, appended and closed: several peers (a lab) may
        # share one file, and a line must never be half-written.
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line + b"\n")
            finally:
                os.close(fd)
