"""CHORD-RELOAD, the default overlay algorithm of RFC 6940 (section 10).

:mod:`reload.chord.ring` is the sans-I/O ring arithmetic and Routing Table,
:mod:`reload.chord.topology` the :class:`~reload.interfaces.ITopology` that
drives it through a node, :mod:`reload.chord.node` what it needs from that
node (typing Protocols), :mod:`reload.chord.settings` the configuration
parameters.  The plugin object that ``topology-plugin`` CHORD-RELOAD names
lives in :mod:`topologies.chord`.
"""
