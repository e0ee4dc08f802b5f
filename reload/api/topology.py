"""The public API for topology plugins (RFC 6940 sections 6.4.2 and 4.2).

A topology (an :class:`reload.interfaces.ITopologyPlugin`) builds on these
and on :mod:`reload.interfaces` and :mod:`reload.errors`, nothing else of
``reload``:

- the bodies of the topology's own requests and answers, whose
  ``overlay_specific_data`` the topology fills and reads (section 6.4.2):
  :class:`JoinReq`/:class:`JoinAns` (6.4.2.1), :class:`LeaveReq`/
  :class:`LeaveAns` (6.4.2.2), :class:`UpdateReq`/:class:`UpdateAns`
  (6.4.2.3), :class:`RouteQueryReq`/:class:`RouteQueryAns` (6.4.2.4);
- :class:`ErrorCode`, the error codes of section 6.3.3.1 to answer with
  (an exception with an ``errorCode`` attribute raised from a ``handle*``
  method becomes that Error response);
- the codec building blocks for the topology's own structures (section 3.3
  presentation language): :class:`Reader` over received bytes,
  :class:`WireStruct` and :class:`NodeIdStruct` (structures whose Node-IDs
  have the overlay's length, :data:`DEFAULT_NODE_ID_LENGTH` unless told),
  :func:`encode_node_id`, and the :class:`EncodeError` and
  :class:`DecodeError` they raise;
- message extensions (section 6.3.3): :class:`MessageExtension`, which
  ``INode.request(..., extensions=...)`` sends and an
  :class:`reload.interfaces.ITopologyExtensions` topology reads and
  answers with, and the Probe bodies (section 6.4.2.5:
  :class:`ProbeReq`, :class:`ProbeAns`, :class:`ProbeInformation`,
  :class:`ProbeInformationType`) a topology may send them on (RFC 7363
  section 6.5);
- the client role (section 4.2): :class:`ClientTopology`, which
  ``ITopologyPlugin.makeClientTopology`` returns or subclasses, and
  :data:`DEFAULT_DIRECT_LINKS`, the direct links a client keeps unless
  configured otherwise (section 6.5.1).
"""

from reload.client import ClientError, ClientTopology
from reload.settings import DEFAULT_DIRECT_LINKS
from reload.wire.base import WireStruct
from reload.wire.buffer import Reader
from reload.wire.errors import DecodeError, EncodeError
from reload.wire.message import ErrorCode, MessageExtension
from reload.wire.methods import (
    DEFAULT_NODE_ID_LENGTH,
    JoinAns,
    JoinReq,
    LeaveAns,
    LeaveReq,
    NodeIdStruct,
    ProbeAns,
    ProbeInformation,
    ProbeInformationType,
    ProbeReq,
    RouteQueryAns,
    RouteQueryReq,
    UpdateAns,
    UpdateReq,
    encode_node_id,
)

__all__ = [
    "DEFAULT_DIRECT_LINKS",
    "DEFAULT_NODE_ID_LENGTH",
    "ClientError",
    "ClientTopology",
    "DecodeError",
    "EncodeError",
    "ErrorCode",
    "JoinAns",
    "JoinReq",
    "LeaveAns",
    "LeaveReq",
    "MessageExtension",
    "NodeIdStruct",
    "ProbeAns",
    "ProbeInformation",
    "ProbeInformationType",
    "ProbeReq",
    "Reader",
    "RouteQueryAns",
    "RouteQueryReq",
    "UpdateAns",
    "UpdateReq",
    "WireStruct",
    "encode_node_id",
]
