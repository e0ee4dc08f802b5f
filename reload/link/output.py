"""When a link's output leaves: at the end of the work that made it.

A peer's work comes in bursts that start with bytes read from one link: a
request arrives, its ACK is due at once (RFC 6940 section 6.6.2), the
request is answered, perhaps forwarded or copied to replicas (section
10.4), all before the read returns.  Twisted would send each piece on its
own schedule: its TLS transport aggregates small writes until the *next*
reactor iteration, and its TCP transport waits for the iteration after
that to call ``send``.  Each of those iterations is a trip through the
reactor, and on a machine with many peer processes every trip is paid
again with a cold cache.

:data:`BURST` marks the burst instead.  A link that receives data enters
it (``with BURST:``); output written while it is open is held per link and
written when the outermost burst ends, one TLS write and one ``send`` per
link, ACK and answer together.  Output written outside a burst (a timer, a
Deferred fired by something else) is held until the next reactor
iteration, as Twisted's aggregation would.  Order on each link is kept:
everything a link writes goes through its one buffer.
"""

from __future__ import annotations

from typing import Protocol

from twisted.logger import Logger

__all__ = ["BURST", "Burst", "Flushable", "sendNow"]


class Flushable(Protocol):
    """Something holding output until :meth:`flush`."""

    def flush(self) -> None: ...


class Burst:
    """A reentrant scope; the links that held output in it are flushed when
    its outermost level exits."""

    log = Logger()

    def __init__(self) -> None:
        self._depth = 0
        self._due: list[Flushable] = []

    @property
    def open(self) -> bool:
        """Whether output written now would be held until the burst ends."""
        return self._depth > 0

    def hold(self, link: Flushable) -> None:
        """Flush ``link`` when the burst ends (call once per burst: when
        its first piece of output of the burst is held)."""
        self._due.append(link)

    def __enter__(self) -> Burst:
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth:
            return
        # A flush can start no new burst (it only writes), but a link's
        # flush may fail (its connection is gone): the others still go.
        while self._due:
            due, self._due = self._due, []
            for link in due:
                try:
                    link.flush()
                except Exception:
                    self.log.failure("Flushing {link} failed", link=link)


#: The process's burst: one reactor thread, one burst at a time.
BURST = Burst()


def sendNow(tcp: object) -> None:
    """Have a Twisted TCP transport send what it buffered now.  Its
    ``write`` only buffers and registers for writability; ``doWrite`` (the
    reactor's own call, IWriteDescriptor) sends and, once the buffer is
    empty, unregisters.  A failed send is left to the reactor: the
    descriptor stays registered, and its next ``doWrite`` reports the loss
    as usual.  A transport that is closing is left alone, since ``doWrite``
    would finish the close, which is the reactor's to do."""
    doWrite = getattr(tcp, "doWrite", None)
    if doWrite is None or getattr(tcp, "disconnecting", True):
        return
    if getattr(tcp, "connected", False):
        doWrite()
