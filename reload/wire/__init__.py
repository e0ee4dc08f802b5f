"""Sans-I/O codec for RFC 6940 messages: bytes in, frozen dataclasses out.

Nothing in this package imports Twisted or does I/O; see ``header`` for the
forwarding header and fast path, ``message`` for whole messages, and the
per-area modules for method bodies.

The package is compiled by mypyc when the distribution is built, where a C
compiler is present, and runs as plain Python otherwise (setup.py,
``RELOAD_COMPILE``).  :data:`COMPILED` says which one this process runs.
"""

from reload.wire.base import COMPILED

__all__ = ["CODEC", "COMPILED"]

#: ``"compiled"`` or ``"pure"``: the codec this process runs, as
#: ``twistd reload --version`` and ``reloadctl status`` show it.
CODEC = "compiled" if COMPILED else "pure"
