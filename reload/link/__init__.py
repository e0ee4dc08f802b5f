"""Overlay links (RFC 6940 section 6.6): TLS over TCP and DTLS over UDP,
both carrying framed messages (section 6.6.2), and the connection table."""
