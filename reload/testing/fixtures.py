"""The ``memoryOverlay`` pytest fixture: load it with
``pytest_plugins = ["reload.testing.fixtures"]`` in a ``conftest.py``.

``memoryOverlay(size, **options)`` makes a :class:`~reload.testing.MemoryOverlay`
(the same arguments) and stops every overlay it made when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reload.testing import MemoryOverlay

__all__ = ["memoryOverlay"]


@pytest.fixture
def memoryOverlay() -> Iterator[Callable[..., MemoryOverlay]]:
    made: list[MemoryOverlay] = []

    def make(size: int = 0, **options: Any) -> MemoryOverlay:
        overlay = MemoryOverlay(size, **options)
        made.append(overlay)
        return overlay

    yield make
    for overlay in made:
        overlay.stop()
