"""Hypothesis strategies for the non-storage method bodies (RFC 6940
sections 6.4.2, 6.5 and 10), shared by the wire tests and by anyone who needs
valid Attach, Probe, Ping, ConfigUpdate, topology or CHORD-RELOAD values."""

from __future__ import annotations

from hypothesis import strategies as st

from reload.wire.attach import (
    AddressType,
    AppAttachAns,
    AppAttachReq,
    AttachAns,
    AttachReq,
    CandType,
    IceCandidate,
    IceExtension,
    IpAddressPort,
)
from reload.wire.header import Destination
from reload.wire.methods import (
    ConfigUpdateAns,
    ConfigUpdateReq,
    JoinAns,
    JoinReq,
    LeaveAns,
    LeaveReq,
    PingAns,
    PingReq,
    ProbeAns,
    ProbeInformation,
    ProbeReq,
    RouteQueryAns,
    RouteQueryReq,
    UpdateAns,
    UpdateReq,
)
from topologies.chordreload.codec import (
    ChordLeaveData,
    ChordLeaveType,
    ChordRouteQueryAns,
    ChordUpdate,
    ChordUpdateType,
)

uint16 = st.integers(0, 0xFFFF)
uint32 = st.integers(0, 0xFFFFFFFF)
uint64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
#: Section 6.3.1.1: NodeIdLength is 16-20 bytes.
node_id_lengths = st.integers(16, 20)


def node_ids(length: int = 16) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=length, max_size=length)


def node_id_lists(length: int = 16, max_size: int = 6) -> st.SearchStrategy[tuple[bytes, ...]]:
    return st.lists(node_ids(length), max_size=max_size).map(tuple)


def small_opaque(max_size: int = 40) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size)


# -- addresses and candidates (sections 6.3.1.1, 6.5.1.1) --------------------

ipv4_address_ports = st.builds(
    IpAddressPort, st.just(AddressType.IPV4_ADDRESS), st.binary(min_size=4, max_size=4), uint16
)
ipv6_address_ports = st.builds(
    IpAddressPort, st.just(AddressType.IPV6_ADDRESS), st.binary(min_size=16, max_size=16), uint16
)
#: "This structure can be extended": unknown address types kept raw.
unknown_address_ports = st.builds(IpAddressPort, st.integers(3, 255), small_opaque(30))
ip_address_ports = st.one_of(ipv4_address_ports, ipv6_address_ports, unknown_address_ports)

ice_extensions = st.builds(IceExtension, small_opaque(20), small_opaque(20))


@st.composite
def ice_candidates(draw: st.DrawFn) -> IceCandidate:
    cand_type = draw(st.sampled_from(CandType))
    rel = None if cand_type is CandType.HOST else draw(ip_address_ports)
    return IceCandidate(
        addr_port=draw(ip_address_ports),
        overlay_link=draw(st.integers(1, 255)),  # registered or not (section 14.10)
        foundation=draw(small_opaque(32)),
        priority=draw(uint32),
        type=cand_type,
        rel_addr_port=rel,
        extensions=tuple(draw(st.lists(ice_extensions, max_size=3))),
    )


candidate_lists = st.lists(ice_candidates(), max_size=4).map(tuple)


def _attach(cls: type[AttachReq] | type[AttachAns]) -> st.SearchStrategy[AttachReq | AttachAns]:
    return st.builds(
        cls, small_opaque(), small_opaque(), small_opaque(10), candidate_lists, st.booleans()
    )


attach_reqs = _attach(AttachReq)
attach_anss = _attach(AttachAns)


def _app_attach(
    cls: type[AppAttachReq] | type[AppAttachAns],
) -> st.SearchStrategy[AppAttachReq | AppAttachAns]:
    return st.builds(cls, small_opaque(), small_opaque(), uint16, small_opaque(10), candidate_lists)


app_attach_reqs = _app_attach(AppAttachReq)
app_attach_anss = _app_attach(AppAttachAns)

# -- Probe, Ping, ConfigUpdate -----------------------------------------------

probe_reqs = st.builds(ProbeReq, st.lists(st.integers(1, 255), max_size=10).map(tuple))

probe_informations = st.one_of(
    st.builds(ProbeInformation, st.integers(1, 3), uint32),
    st.builds(ProbeInformation, st.integers(4, 255), small_opaque(20)),
)
probe_anss = st.builds(ProbeAns, st.lists(probe_informations, max_size=6).map(tuple))

ping_reqs = st.builds(PingReq, small_opaque(100))
ping_anss = st.builds(PingAns, uint64, uint64)

config_update_reqs = st.one_of(
    st.builds(ConfigUpdateReq.for_config, small_opaque(200)),
    st.builds(ConfigUpdateReq.for_kinds, st.lists(small_opaque(60), max_size=4).map(tuple)),
    st.builds(lambda t, raw: ConfigUpdateReq(t, raw=raw), st.integers(3, 255), small_opaque(40)),
)
config_update_anss = st.just(ConfigUpdateAns())

# -- topology bodies (section 6.4.2) -----------------------------------------

destinations = st.one_of(
    st.builds(Destination.node, st.integers(16, 20).flatmap(node_ids)),
    st.builds(Destination.resource, small_opaque(40)),
    st.builds(Destination.opaque, small_opaque(40)),
    st.builds(Destination.compressed_id, st.integers(0x8000, 0xFFFF)),
)


@st.composite
def join_reqs(draw: st.DrawFn, length: int | None = None) -> JoinReq:
    n = length if length is not None else draw(node_id_lengths)
    return JoinReq(draw(node_ids(n)), draw(small_opaque()))


@st.composite
def leave_reqs(draw: st.DrawFn, length: int | None = None) -> LeaveReq:
    n = length if length is not None else draw(node_id_lengths)
    return LeaveReq(draw(node_ids(n)), draw(small_opaque()))


join_anss = st.builds(JoinAns, small_opaque())
leave_anss = st.just(LeaveAns())
update_reqs = st.builds(UpdateReq, small_opaque(80))
update_anss = st.builds(UpdateAns, small_opaque())
route_query_reqs = st.builds(RouteQueryReq, st.booleans(), destinations, small_opaque())
route_query_anss = st.builds(RouteQueryAns, small_opaque())

# -- CHORD-RELOAD (section 10) -----------------------------------------------


@st.composite
def chord_updates(draw: st.DrawFn, length: int = 16) -> ChordUpdate:
    t = draw(st.sampled_from(ChordUpdateType))
    uptime = draw(uint32)
    if t is ChordUpdateType.PEER_READY:
        return ChordUpdate(uptime, t)
    preds = draw(node_id_lists(length))
    succs = draw(node_id_lists(length))
    if t is ChordUpdateType.NEIGHBORS:
        return ChordUpdate(uptime, t, preds, succs)
    return ChordUpdate(uptime, t, preds, succs, draw(node_id_lists(length, 16)))


def chord_leave_datas(length: int = 16) -> st.SearchStrategy[ChordLeaveData]:
    return st.builds(ChordLeaveData, st.sampled_from(ChordLeaveType), node_id_lists(length))


def chord_route_query_anss(length: int = 16) -> st.SearchStrategy[ChordRouteQueryAns]:
    return st.builds(ChordRouteQueryAns, node_ids(length))
