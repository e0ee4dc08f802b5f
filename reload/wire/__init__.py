"""Sans-I/O codec for RFC 6940 messages: bytes in, frozen dataclasses out.

Nothing in this package imports Twisted or does I/O; see ``header`` for the
forwarding header and fast path, ``message`` for whole messages, and the
per-area modules for method bodies.
"""
