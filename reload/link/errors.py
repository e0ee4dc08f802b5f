"""Errors raised to senders on a link."""


class LinkClosed(Exception):
    """The link is closed; nothing more can be sent on it."""


class LinkBusy(Exception):
    """The link's send window is full; try later or another route."""
