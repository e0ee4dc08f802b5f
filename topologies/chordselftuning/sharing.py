"""RFC 7363 section 6.5, estimate sharing: the SelfTuningData structure of
the self_tuning_data message extension (type 0x3, section 9.1), carried
non-critical by the Probe requests a self-tuning peer sends its fingers
and by their answers, and the 75th percentile that merges what a peer
received with its own estimates.  Sans-I/O."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from reload.api.topology import DecodeError, MessageExtension

__all__ = [
    "SELF_TUNING_DATA",
    "SelfTuningData",
    "thirdQuartile",
]

#: Section 9.1: MessageExtensionType self_tuning_data.
SELF_TUNING_DATA = 0x3
#: Section 6.5: "joins or failures per 24 hours".
DAY = 24 * 60 * 60.0

_UINT32_MAX = 0xFFFFFFFF
_LAYOUT = struct.Struct("!III")


def _perDay(ratePerSecond: float) -> int:
    """Section 6.5's example: 0.123 peers/s is "the ceiling of the value
    10627.2", 10628."""
    if not ratePerSecond > 0:
        return 0
    return min(_UINT32_MAX, math.ceil(ratePerSecond * DAY))


@dataclass(frozen=True, slots=True)
class SelfTuningData:
    """``struct { uint32 network_size; uint32 join_rate; uint32
    leave_rate; } SelfTuningData;`` (section 6.5).  The rates are per 24
    hours for the whole overlay; :attr:`joinsPerSecond` and
    :attr:`leavesPerSecond` give them per second."""

    networkSize: int
    joinRate: int
    leaveRate: int

    @classmethod
    def fromEstimates(
        cls, networkSize: float, joinsPerSecond: float, leavesPerSecond: float
    ) -> SelfTuningData:
        size = min(_UINT32_MAX, max(1, round(networkSize)))
        return cls(size, _perDay(joinsPerSecond), _perDay(leavesPerSecond))

    @property
    def joinsPerSecond(self) -> float:
        return self.joinRate / DAY

    @property
    def leavesPerSecond(self) -> float:
        return self.leaveRate / DAY

    def encode(self) -> bytes:
        return _LAYOUT.pack(self.networkSize, self.joinRate, self.leaveRate)

    @classmethod
    def decode(cls, data: bytes) -> SelfTuningData:
        """:class:`DecodeError` for contents that are not 12 bytes or that
        claim an empty overlay."""
        if len(data) != _LAYOUT.size:
            raise DecodeError("SelfTuningData", f"is {_LAYOUT.size} bytes, not {len(data)}")
        size, joins, leaves = _LAYOUT.unpack(data)
        if size == 0:
            raise DecodeError("SelfTuningData.network_size", "an overlay has at least one peer")
        return cls(size, joins, leaves)

    def extension(self) -> MessageExtension:
        """Section 6.5: "The 'critical' field of the structure MUST be set
        to False"."""
        return MessageExtension(SELF_TUNING_DATA, False, self.encode())


def thirdQuartile(values: Sequence[float]) -> float:
    """Section 6.5: "the 75th percentile (i.e., third quartile) of a data
    set containing its own estimate and the received estimates" (nearest
    rank)."""
    if not values:
        raise ValueError("no estimates")
    ordered = sorted(values)
    rank = math.ceil(0.75 * len(ordered))
    return ordered[max(rank, 1) - 1]
