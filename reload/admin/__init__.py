"""The operator's view of a peer: HTTP status API (and later metrics)."""
