"""ONE-HOP-RELOAD: a one-hop overlay algorithm for RELOAD (a private
``topology-plugin`` name, not an IANA registration; RFC 6940 section 3.2.1
leaves the overlay algorithm open).

Every peer keeps the whole membership, so a request crosses one overlay
link, from its sender to the peer responsible for its destination.
Responsibility and replication follow the ring order of CHORD-RELOAD
(RFC 6940 sections 10.1 and 10.4), so storage works unchanged.

:mod:`~topologies.onehopreload.membership` is the sans-I/O membership
table (versions, tombstones, segment digests),
:mod:`~topologies.onehopreload.codec` the Update, Join and Leave data,
:mod:`~topologies.onehopreload.settings` the parameters,
:mod:`~topologies.onehopreload.topology` the :class:`~reload.interfaces.ITopology`
that disseminates membership events with bounded bandwidth.  The plugin
object lives in :mod:`topologies.onehop`.
"""
