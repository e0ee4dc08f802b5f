"""The CHORD-RELOAD parameters of the overlay configuration (RFC 6940
sections 10.7.4 and 11.1), with the RFC's defaults.

Read by attribute from whatever :attr:`INode.configuration` is (the
``chordUpdateInterval``, ``chordPingInterval`` and ``chordReactive`` fields
of :class:`reload.config.OverlayConfiguration`, ``None`` when the document
omits them), so the topology does not import the configuration module and
works with any object that has those attributes, or none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_PING_INTERVAL",
    "DEFAULT_UPDATE_INTERVAL",
    "SUCCESSOR_HOLD_DOWN",
    "ChordSettings",
]

#: Section 10.7.4.1: "The default time is about every ten minutes".
DEFAULT_UPDATE_INTERVAL = 600.0
#: Section 10.7.4.2: chord-ping-interval "defaults to 3600 seconds".
DEFAULT_PING_INTERVAL = 3600.0
#: Section 10.7.1: "the successor replacement hold-down time (30 seconds)".
SUCCESSOR_HOLD_DOWN = 30.0


@dataclass(frozen=True, slots=True)
class ChordSettings:
    """Timers and recovery mode of one CHORD-RELOAD node."""

    #: chord-update-interval: seconds between Updates to the Neighbor Table.
    updateInterval: float = DEFAULT_UPDATE_INTERVAL
    #: chord-ping-interval: at most one finger search per this many seconds.
    pingInterval: float = DEFAULT_PING_INTERVAL
    #: chord-reactive: Update the neighbours at once on every change
    #: (section 10, "reactive recovery"); default true (section 11.1).
    reactive: bool = True
    #: Section 10.7.1: delay new replicas after losing a successor.
    successorHoldDown: float = SUCCESSOR_HOLD_DOWN

    def __post_init__(self) -> None:
        for name in ("updateInterval", "pingInterval", "successorHoldDown"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")

    @classmethod
    def fromConfiguration(cls, configuration: object) -> ChordSettings:
        """The settings an overlay configuration gives, RFC defaults for the
        elements it leaves out."""
        update = getattr(configuration, "chordUpdateInterval", None)
        ping = getattr(configuration, "chordPingInterval", None)
        reactive = getattr(configuration, "chordReactive", None)
        return cls(
            updateInterval=DEFAULT_UPDATE_INTERVAL if update is None else float(update),
            pingInterval=DEFAULT_PING_INTERVAL if ping is None else float(ping),
            reactive=True if reactive is None else bool(reactive),
        )
