"""The message layer of a RELOAD node (RFC 6940 sections 6.1 to 6.5).

- :mod:`~reload.transport.routing`: sans-I/O routing decisions (deliver,
  forward, answer with an Error, drop) on the forwarding header alone;
- :mod:`~reload.transport.transactions`: pending requests and their
  end-to-end retransmission (section 6.2.1) on an injected clock;
- :mod:`~reload.transport.transport`: :class:`Transport`, the
  :class:`~reload.link.interfaces.ILinkHandler` that forwards, delivers,
  answers and originates;
- :mod:`~reload.transport.dispatcher`: local delivery of requests to the
  handler of their method (Ping, Probe, the topology's Join, Leave, Update,
  RouteQuery);
- :mod:`~reload.transport.attach`: the Attach method (No-ICE link types);
- :mod:`~reload.transport.security`: the signing interface the transport
  uses, and its adapter to :mod:`reload.security.signing`;
- :mod:`~reload.transport.node_api`: :class:`TransportNode`, the routing
  half of :class:`reload.interfaces.INode`;
- :mod:`reload.errors` (re-exported here): :class:`ReloadError` and the timeouts.
"""

from reload.errors import LinkTimeout, ReloadError, ReloadTimeout
from reload.transport.attach import AttachHandler, AttachService, NoIceAttachHandler
from reload.transport.dispatcher import Dispatcher, Reply, Request
from reload.transport.node_api import TransportNode
from reload.transport.security import MessageSecurity, SigningSecurity, TrustingSecurity
from reload.transport.transport import Response, Transport, TransportSettings

__all__ = [
    "AttachHandler",
    "AttachService",
    "Dispatcher",
    "LinkTimeout",
    "MessageSecurity",
    "NoIceAttachHandler",
    "ReloadError",
    "ReloadTimeout",
    "Reply",
    "Request",
    "Response",
    "SigningSecurity",
    "Transport",
    "TransportNode",
    "TransportSettings",
    "TrustingSecurity",
]
