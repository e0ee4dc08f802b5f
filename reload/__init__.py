"""reload: the RELOAD peer-to-peer protocol (RFC 6940) on Twisted."""

__version__ = "0.1.0"
