"""What every overlay link offers the layers above it.

A link is one authenticated connection to one peer, whatever the link
protocol (RFC 6940 section 6.6: TLS-TCP-FH-NO-ICE, DTLS-UDP-SR-NO-ICE).  The
transport above sends whole RELOAD messages over it and is told of received
messages and of the link going away; it never sees frames, ACKs or TLS.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class ILink(Interface):
    """One authenticated overlay link to one peer."""

    peer = Attribute(
        "The reload.security.trust.VerifiedPeer of the other side: its "
        "certificate, Node-IDs and user name, checked during the handshake."
    )
    linkType = Attribute("The reload.wire.attach.OverlayLinkType of this link.")
    rto = Attribute(
        "Current retransmission timeout estimate in seconds (RFC 6298 via "
        "the framing header ACKs, section 6.6.2/6.6.5), or None before the "
        "first RTT sample."
    )

    def send(message: bytes) -> None:
        """Queue one encoded RELOAD message (forwarding header first) for the
        peer.  Never blocks; raises reload.link.errors.LinkClosed if the link
        is closed and LinkBusy if its send window is full."""

    def close() -> None:
        """Close the link; the handler's linkClosed is called once."""


class ILinkHandler(Interface):
    """The layer above the links (the transport), told of link events."""

    def linkUp(link: ILink) -> None:
        """A link finished its handshake and its peer was verified."""

    def messageReceived(link: ILink, message: bytes) -> None:
        """A whole RELOAD message arrived on ``link`` (framing removed)."""

    def linkClosed(link: ILink, reason: str) -> None:
        """``link`` is gone (closed, failed, timed out, or sent garbage)."""
