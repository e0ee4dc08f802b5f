"""What a usage reads of the overlay configuration (RFC 6940 section 11.1).

A usage gets the configuration in force as ``node.configuration``
(:class:`reload.interfaces.INode`) and, in an access policy, as the
``configuration`` of the node argument of ``IAccessPolicy.permits``.  The
elements the usage RFCs add in their own XML namespaces are read with the
accessors here, so a plugin never parses XML or imports the configuration
package itself:

- :func:`redirBranchingFactor`: ``redir:branching-factor`` of the REDIR
  Kind (RFC 7374 section 8), :data:`DEFAULT_BRANCHING_FACTOR` when absent;
- :func:`selfTuningPeersToProbe`: ``self-tuning:number-of-peers-to-probe``
  (RFC 7363 section 7), :data:`DEFAULT_PEERS_TO_PROBE` when absent; for
  the CHORD-SELF-TUNING topology;
- :func:`turnDensity`: the base document's ``turn-density`` (RFC 6940
  sections 9 and 11.1), 1 when absent;
- :func:`sipDomainRestriction`: ``sip:domain-restriction`` (or the
  prose's ``domain-restrictions``) of the SIP-REGISTRATION Kind (RFC 7904
  section 3.4), ``None`` when absent.
"""

from __future__ import annotations

from typing import Any

from reload.config.model import OverlayConfiguration
from reload.config.usages import DEFAULT_BRANCHING_FACTOR, DEFAULT_PEERS_TO_PROBE, NamePatterns
from reload.config.usages import redirBranchingFactor as _redirBranchingFactor
from reload.config.usages import selfTuningPeersToProbe as _selfTuningPeersToProbe
from reload.config.usages import sipDomainRestriction as _sipDomainRestriction

__all__ = [
    "DEFAULT_BRANCHING_FACTOR",
    "DEFAULT_PEERS_TO_PROBE",
    "NamePatterns",
    "redirBranchingFactor",
    "selfTuningPeersToProbe",
    "sipDomainRestriction",
    "turnDensity",
]


def redirBranchingFactor(configuration: Any) -> int:
    """ReDiR's branching factor b (RFC 7374 section 8): from the REDIR
    Kind's ``redir:branching-factor``, else the configuration's, else 10.
    :class:`reload.config.ConfigError` (a ValueError) for a bad value (a
    configuration that was read has been checked already)."""
    return _redirBranchingFactor(configuration)


def selfTuningPeersToProbe(configuration: Any) -> int:
    """RFC 7363 section 7: how many fingers a CHORD-SELF-TUNING peer Probes
    each stabilisation period (section 6.5), default 4.  Anything that is
    not an overlay configuration document (``None``, a simulator's
    settings) gives the default."""
    if not isinstance(configuration, OverlayConfiguration):
        return DEFAULT_PEERS_TO_PROBE
    return _selfTuningPeersToProbe(configuration)


def turnDensity(configuration: Any) -> int:
    """``turn-density`` (RFC 6940 section 11.1): how many times each TURN
    server records itself in the overlay (section 9), 0 to 255; 1 when the
    configuration does not say (``DEFAULT_TURN_DENSITY``).  ValueError
    for something that is not an overlay configuration."""
    density = getattr(configuration, "effectiveTurnDensity", None)
    if not isinstance(density, int) or isinstance(density, bool) or not 0 <= density <= 255:
        raise ValueError(f"no turn-density in {type(configuration).__name__}")
    return density


def sipDomainRestriction(configuration: Any, kindId: int = 0x1) -> NamePatterns | None:
    """RFC 7904 section 3.4: the ``sip:domain-restriction`` of the Kind
    ``kindId`` (SIP-REGISTRATION, 0x1): ``enable`` and the POSIX extended
    regular expressions over the AoR's domain; ``None`` when the Kind has
    none (every AoR is admissible) or ``configuration`` is not an overlay
    configuration."""
    kind = getattr(configuration, "kind", None)
    if not callable(kind):
        return None
    return _sipDomainRestriction(kind(kindId))
