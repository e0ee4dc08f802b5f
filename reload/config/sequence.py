"""Configuration sequence numbers (RFC 6940 sections 6.3.2.1 and 6.5.4).

Sequence numbers run from 0 to 65534 and "MUST be monotonically increasing
mod 65535"; "greater than or less than are interpreted by modulo arithmetic
as in TCP".  65535 is not a sequence number: in a forwarding header it marks
a ConfigUpdate that every node accepts whatever its own sequence (see
:data:`ANY_SEQUENCE`), and a configuration after 65534 therefore has 0.

The TCP-style comparison used here: ``new`` is newer than ``old`` when going
forward from ``old`` reaches ``new`` in fewer than half of the 65535 steps,
i.e. ``1 <= (new - old) mod 65535 <= 32767``.  As 65535 is odd, of two
different numbers exactly one is the newer.
"""

from __future__ import annotations

from reload.config.errors import configError
from reload.config.model import OverlayConfiguration

__all__ = [
    "ANY_SEQUENCE",
    "MAX_SEQUENCE",
    "SEQUENCE_MODULUS",
    "compareSequence",
    "isNewer",
    "replace",
]

#: Sequence numbers are compared modulo this (section 6.3.2.1).
SEQUENCE_MODULUS = 65535
#: The largest sequence number a configuration can carry (2^16-2).
MAX_SEQUENCE = SEQUENCE_MODULUS - 1
#: In a ConfigUpdate's forwarding header: accept regardless (section 6.3.2.1).
ANY_SEQUENCE = 65535


def _number(value: int | OverlayConfiguration) -> int:
    number = value.sequence if isinstance(value, OverlayConfiguration) else value
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"a sequence number is an int, not {type(number).__name__}")
    if number == ANY_SEQUENCE:
        raise configError(
            "configuration/sequence", "65535 is reserved, not a sequence number (6.3.2.1)"
        )
    if not 0 <= number <= MAX_SEQUENCE:
        raise configError("configuration/sequence", f"{number} is out of range 0..{MAX_SEQUENCE}")
    return number


def compareSequence(a: int | OverlayConfiguration, b: int | OverlayConfiguration) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as or newer than ``b``."""
    difference = (_number(a) - _number(b)) % SEQUENCE_MODULUS
    if difference == 0:
        return 0
    return 1 if difference <= SEQUENCE_MODULUS // 2 else -1


def isNewer(new: int | OverlayConfiguration, old: int | OverlayConfiguration) -> bool:
    """Whether sequence ``new`` comes after ``old`` (so 0 is newer than 65534)."""
    return compareSequence(new, old) > 0


def replace(current: OverlayConfiguration, candidate: OverlayConfiguration) -> OverlayConfiguration:
    """The configuration to use once ``candidate`` arrives (section 6.5.4.2).

    A ConfigUpdate "MUST be processed only if" the document's sequence is
    greater than the current one (and its signature verifies, which is the
    security layer's check): return ``candidate`` if it is newer, else raise
    ConfigError.  A candidate for another overlay is refused too: a node
    that accepted it would be configured for the wrong instance.
    """
    if candidate.instanceName != current.instanceName:
        raise configError(
            "configuration@instance-name",
            f"{candidate.instanceName!r} is not this overlay ({current.instanceName!r})",
        )
    if not isNewer(candidate, current):
        raise configError(
            "configuration/sequence",
            f"{candidate.sequence} is not newer than {current.sequence}",
        )
    return candidate
