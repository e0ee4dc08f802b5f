"""Argument checks shared by the ``reloadctl`` commands: every count and
duration is checked against its range when the command line is parsed, and
a bad one is reported in one line (no usage dump, no traceback)."""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from collections.abc import Callable
from typing import NoReturn

__all__ = ["OneLineParser", "adminAddress", "intRange", "seconds"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on standard error
    (``reloadctl lab: error: ... (see 'reloadctl lab --help')``) and exit
    status 2 (argparse makes its subcommands' parsers of the same class)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def intRange(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    parse.__name__ = "count"
    return parse


def seconds(high: float) -> Callable[[str], float]:
    """An argparse ``type``: a number of seconds above 0 and at most ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not 0 < value <= high:
            raise argparse.ArgumentTypeError(f"must be above 0 and at most {high:g}, got {text}")
        return value

    parse.__name__ = "seconds"
    return parse


def adminAddress(text: str) -> str:
    """``--admin``: HOST:PORT or an http(s) URL with a host and a port
    from 1 to 65535 (``twistd reload --admin`` takes an endpoint such as
    ``tcp:8084``; reloadctl takes where that endpoint listens)."""
    url = text if "://" in text else "http://" + text
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT or a URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"{text!r}: the admin API speaks http or https")
    if not parsed.hostname or port is None or port == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT or a URL with a port")
    return text
