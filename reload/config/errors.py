"""The one exception type of :mod:`reload.config`.

DESIGN.md: "A bad config file gets one line naming the element and why."  Every
error raised while reading or writing a configuration document is a
:class:`ConfigError` whose ``str()`` is a single line of the form
``path: reason``, for example
``configuration/max-message-size: 'abc' is not an unsigned integer``.
"""

from __future__ import annotations

__all__ = ["ConfigError", "configError"]


class ConfigError(ValueError):
    """A configuration document (RFC 6940 section 11.1) that cannot be used.

    ``path`` names the offending element (``configuration/bootstrap-node``)
    and, for an attribute, the attribute after ``@``
    (``configuration/bootstrap-node@port``); it is ``None`` when the message
    was built by hand.  The message never spans lines: operators grep logs,
    and a multi-line error is read as several events.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(" ".join(message.split()))


def configError(path: str, reason: str) -> ConfigError:
    """Build the ``path: reason`` error every check in this package raises."""
    return ConfigError(f"{path}: {reason}", path)
