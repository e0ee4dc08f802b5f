"""The two exceptions of the wire codec.

Every decoder in :mod:`reload.wire` fails with :class:`DecodeError` and with
nothing else, whatever bytes it is given: callers (the link layer, the
forwarding path) catch exactly one type and answer with an RFC 6940 Error or
close one link.  The error names the field path (``"FetchReq.specifiers[1]
.indices"``) so that an operator reading a log knows which part of a hostile or
buggy message was wrong.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr


@mypyc_attr(allow_interpreted_subclasses=True)
class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the structure asked for."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason

    def within(self, outer: str) -> DecodeError:
        """Return the same error with ``outer`` prefixed to its path."""
        path = f"{outer}.{self.path}" if self.path else outer
        return DecodeError(path, self.reason)


@mypyc_attr(allow_interpreted_subclasses=True)
class EncodeError(ValueError):
    """A value that cannot be encoded (out of range, too long for its vector)."""
