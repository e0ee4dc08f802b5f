"""Usages that fail on purpose, installed for the tests by putting
``tests/plugins`` on a peer's PYTHONPATH (``usages/`` without an
``__init__.py``, as a third party ships one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.application.service import Service
from zope.interface import implementer

from reload.interfaces import INode, IUsage


class ExplodingService(Service):
    """A service whose start raises, as a usage with a bug does."""

    def startService(self) -> None:
        super().startService()
        raise RuntimeError("the BROKEN usage's service blew up on purpose")


@implementer(IUsage)
class BrokenUsage:
    name = "BROKEN"
    description = "a usage whose service fails at start (tests only)"
    options: Mapping[str, str] = {}

    def kinds(self) -> list[Any]:
        return []

    def accessPolicies(self) -> list[Any]:
        return []

    def checkOptions(self, options: Mapping[str, str]) -> None:
        return None

    def makeService(self, node: INode, options: dict[str, str]) -> Service:
        return ExplodingService()


broken = BrokenUsage()
