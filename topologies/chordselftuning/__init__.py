"""CHORD-SELF-TUNING (RFC 7363): CHORD-RELOAD whose stabilisation interval
and routing-table sizes follow estimates of the overlay's size, failure
rate and join rate.

:mod:`~topologies.chordselftuning.estimator` is the sans-I/O arithmetic of
RFC 7363 section 6; :mod:`~topologies.chordselftuning.topology` extends
:class:`topologies.chordreload.topology.ChordTopology` (everything else is
CHORD-RELOAD's code).  The plugin object lives in
:mod:`topologies.selftuning`.
"""
