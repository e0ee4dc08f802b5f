"""Command-line errors for people: one line that names the option and the
reason, and where to read more -- never the whole usage text, never a
traceback (issue 23).

twistd prints its entire usage (forty-odd lines) before a subcommand's
:class:`~twisted.python.usage.UsageError`; :class:`OneLineUsageErrors`
reports the error itself when its options run as a twistd subcommand, and
raises as usual when they are parsed by code (the tests, a Python caller).
The checks shared by ``twistd reload`` and ``twistd reload-enrollment``
live here too.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from typing import Any

from twisted.python import usage

__all__ = ["OneLineUsageErrors", "checkDataDirectory", "checkHostName", "oneLine"]

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def oneLine(command: str, message: str) -> str:
    """What a person reads for a bad command line."""
    text = " ".join(message.split())
    return f"{command}: error: {text} (see '{command} --help')"


class OneLineUsageErrors:
    """Mix into a :class:`usage.Options` of a twistd plugin, before it;
    ``commandName`` is what the user typed (``twistd reload``)."""

    commandName = "twistd"

    def parseOptions(self, options: Any = None) -> None:
        try:
            super().parseOptions(options)  # type: ignore[misc]
        except usage.UsageError as exc:
            if getattr(self, "parent", None) is None:
                raise  # parsed by code, not by twistd: the caller reports it
            sys.stderr.write(oneLine(self.commandName, str(exc)) + "\n")
            sys.stderr.flush()
            raise SystemExit(1) from None


def checkDataDirectory(option: str, path: str) -> None:
    """``path`` is, or can be made, a directory this process may write:
    a :class:`usage.UsageError` naming ``option`` otherwise (made here, so
    that a bad one fails before any service starts)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise usage.UsageError(f"{option} {path}: exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise usage.UsageError(
            f"{option} {path}: cannot create it ({exc.strerror or exc})"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise usage.UsageError(f"{option} {path}: not writable by this user")


def checkHostName(option: str, value: str) -> str:
    """An IP address or a DNS host name (RFC 1123), else a
    :class:`usage.UsageError` naming ``option``."""
    host = value.strip()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.rstrip(".")
    labels = name.split(".")
    if (
        name
        and len(name) <= 253
        and all(_LABEL.match(label) for label in labels)
        and not name.replace(".", "").isdigit()
    ):
        return name
    raise usage.UsageError(f"{option} {value!r}: not an IP address or a host name")
