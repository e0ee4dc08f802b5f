"""The built-in TURN server (RFC 8656) of the TURN usage.

A plain package, not a plugin: ``usages/turn.py`` (the ``TURN`` usage)
runs :class:`usages.turnserver.service.TurnServerService` beside the node.

- :mod:`usages.turnserver.stun`: the STUN/TURN message codec, sans-I/O;
- :mod:`usages.turnserver.probe`: a STUN Binding liveness check.
"""
