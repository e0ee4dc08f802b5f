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

from reload.config import KindConfig

__all__ = ["OneLineUsageErrors", "checkDataDirectory", "checkHostName", "oneLine", "parseKind"]

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


#: ``--kind`` data models and access policies (RFC 6940 sections 7.2, 7.3).
_MODELS = ("SINGLE", "ARRAY", "DICTIONARY")
_POLICIES = ("USER-MATCH", "NODE-MATCH", "USER-NODE-MATCH", "NODE-MULTIPLE")
#: Limits a ``--kind`` gets: room for a person's notes, not for files.
KIND_MAX_COUNT = 64
KIND_MAX_SIZE = 4096


def parseKind(option: str, text: str) -> KindConfig:
    """``--kind ID[:MODEL[:POLICY]]``: a Kind a new overlay lists, e.g.
    ``0xf0000001`` (an ARRAY under USER-MATCH: the peer's user stores
    under the hash of its user name) or ``0xf0000002:dictionary:node-match``.
    IDs come from the private range 0xF0000001-0xFFFFFFFE (section 14.6)."""
    parts = text.strip().split(":")
    if len(parts) > 3 or not parts[0]:
        raise usage.UsageError(f"{option} {text!r}: expected ID[:MODEL[:POLICY]]")
    try:
        kindId = int(parts[0], 0)
    except ValueError:
        raise usage.UsageError(f"{option} {text!r}: {parts[0]!r} is not a Kind-ID") from None
    if not 0xF0000001 <= kindId <= 0xFFFFFFFE:
        raise usage.UsageError(
            f"{option} {text!r}: use a private Kind-ID, 0xf0000001 to 0xfffffffe "
            "(RFC 6940 section 14.6)"
        )
    model = (parts[1] if len(parts) > 1 else "array").upper()
    policy = (parts[2] if len(parts) > 2 else "user-match").upper()
    if model not in _MODELS:
        raise usage.UsageError(f"{option} {text!r}: data model {model.lower()!r} is not "
                               "single, array or dictionary")  # fmt: skip
    if policy not in _POLICIES:
        raise usage.UsageError(
            f"{option} {text!r}: access policy {policy.lower()!r} is not one of "
            + ", ".join(p.lower() for p in _POLICIES)
        )
    return KindConfig(
        kindId=kindId, maxCount=KIND_MAX_COUNT, maxSize=KIND_MAX_SIZE,
        dataModel=model, accessControl=policy,
    )  # fmt: skip
