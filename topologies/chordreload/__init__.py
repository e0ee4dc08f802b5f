"""CHORD-RELOAD, the default overlay algorithm of RFC 6940 (section 10).

:mod:`~topologies.chordreload.ring` is the sans-I/O ring arithmetic and
Routing Table, :mod:`~topologies.chordreload.topology` the
:class:`~reload.interfaces.ITopology` that drives it through a node,
:mod:`~topologies.chordreload.node` what it needs from that node (typing
Protocols), :mod:`~topologies.chordreload.settings` the configuration
parameters, :mod:`~topologies.chordreload.codec` its Update, Leave and
RouteQuery data (sections 10.7 to 10.9), :mod:`~topologies.chordreload.client`
and :mod:`~topologies.chordreload.direct` its clients (section 4.2) and their
direct links.  The plugin object that ``topology-plugin`` CHORD-RELOAD names
lives in :mod:`topologies.chord`.

Like every plugin, this package imports only :mod:`reload.interfaces`,
:mod:`reload.errors` and the public API (:mod:`reload.api.topology`).
"""
