"""Argument checks shared by the ``reloadctl`` commands: every count and
duration is checked against its range when the command line is parsed, and
a bad one is reported in one line (no usage dump, no traceback)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

__all__ = ["OneLineParser", "intRange", "seconds"]


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
