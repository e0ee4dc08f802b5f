"""What a request to the overlay fails with: the typed errors of the public API.

Usages and topologies catch these (DESIGN.md: plugins import only
:mod:`reload.interfaces`, this module and the public API).

:class:`ReloadError` is an RFC 6940 Error response (section 6.3.3.1): the
overlay, or this node on its behalf, refused the request with an error code.
:class:`ReloadTimeout` is the end of the end-to-end retransmission of section
6.2.1: no answer after the fifth transmission.  It is a
:class:`twisted.internet.defer.TimeoutError`, as :class:`reload.interfaces.INode`
promises.
"""

from __future__ import annotations

from twisted.internet import defer

from reload.wire.message import ErrorCode, ErrorResponse

__all__ = [
    "ERROR_NAMES",
    "AppAttachFailed",
    "AppAttachRefused",
    "LinkTimeout",
    "ReloadError",
    "ReloadTimeout",
    "errorName",
]

#: The names section 6.3.3.1 gives the codes of section 14.9.
ERROR_NAMES: dict[int, str] = {
    ErrorCode.FORBIDDEN: "Error_Forbidden",
    ErrorCode.NOT_FOUND: "Error_Not_Found",
    ErrorCode.REQUEST_TIMEOUT: "Error_Request_Timeout",
    ErrorCode.GENERATION_COUNTER_TOO_LOW: "Error_Generation_Counter_Too_Low",
    ErrorCode.INCOMPATIBLE_WITH_OVERLAY: "Error_Incompatible_with_Overlay",
    ErrorCode.UNSUPPORTED_FORWARDING_OPTION: "Error_Unsupported_Forwarding_Option",
    ErrorCode.DATA_TOO_LARGE: "Error_Data_Too_Large",
    ErrorCode.DATA_TOO_OLD: "Error_Data_Too_Old",
    ErrorCode.TTL_EXCEEDED: "Error_TTL_Exceeded",
    ErrorCode.MESSAGE_TOO_LARGE: "Error_Message_Too_Large",
    ErrorCode.UNKNOWN_KIND: "Error_Unknown_Kind",
    ErrorCode.UNKNOWN_EXTENSION: "Error_Unknown_Extension",
    ErrorCode.RESPONSE_TOO_LARGE: "Error_Response_Too_Large",
    ErrorCode.CONFIG_TOO_OLD: "Error_Config_Too_Old",
    ErrorCode.CONFIG_TOO_NEW: "Error_Config_Too_New",
    ErrorCode.IN_PROGRESS: "Error_In_Progress",
    ErrorCode.EXP_A: "Error_Exp_A",
    ErrorCode.EXP_B: "Error_Exp_B",
    ErrorCode.INVALID_MESSAGE: "Error_Invalid_Message",
}


def errorName(code: int) -> str:
    """The RFC name of an error code, or ``Error_0x....`` for one it lacks."""
    return ERROR_NAMES.get(code, f"Error_{code:#06x}")


class ReloadError(Exception):
    """An RFC 6940 Error response (section 6.3.3.1).

    ``code`` is the error code (an :class:`ErrorCode` when known), ``info``
    the ``error_info`` bytes (UTF-8 text unless the error defines otherwise,
    e.g. Error_Unknown_Kind), ``nodeId`` the verified signer of the Error
    when it came over the overlay (``None`` when this node raised it).

    Raised by a request handler, it becomes the Error answer to that
    request; received, it is how the request's Deferred fails.
    """

    def __init__(self, code: int, info: bytes | str = b"", nodeId: bytes | None = None) -> None:
        if isinstance(info, str):
            info = info.encode("utf-8")
        self.code: int = _code(code)
        self.info: bytes = info
        self.nodeId = nodeId
        super().__init__(self.code, info)

    @property
    def text(self) -> str:
        """``info`` read as UTF-8 (undecodable bytes replaced)."""
        return self.info.decode("utf-8", "replace")

    @property
    def name(self) -> str:
        """The RFC name, e.g. ``Error_TTL_Exceeded``."""
        return errorName(self.code)

    @classmethod
    def fromResponse(cls, response: ErrorResponse, nodeId: bytes | None = None) -> ReloadError:
        return cls(response.error_code, response.error_info, nodeId)

    def toResponse(self) -> ErrorResponse:
        """The ErrorResponse body answering with this error."""
        return ErrorResponse(self.code, self.info[:0xFFFF])

    def __str__(self) -> str:
        where = f" from {self.nodeId.hex()}" if self.nodeId is not None else ""
        text = f": {self.text}" if self.info else ""
        return f"{self.name} ({self.code:#04x}){where}{text}"

    def __repr__(self) -> str:
        return f"ReloadError({self})"


def _code(code: int) -> int:
    try:
        return ErrorCode(code)
    except ValueError:
        return code


class ReloadTimeout(defer.TimeoutError):
    """No answer to a request after its last retransmission (section 6.2.1:
    "After the timer for the fifth transmission fires, the message MUST be
    considered to have failed")."""

    def __init__(
        self, transactionId: int, transmissions: int, elapsed: float, what: str = "request"
    ) -> None:
        self.transactionId = transactionId
        self.transmissions = transmissions
        self.elapsed = elapsed
        super().__init__(
            f"no answer to {what} (transaction {transactionId:#018x}) after "
            f"{transmissions} transmissions in {elapsed:g} s"
        )


class LinkTimeout(defer.TimeoutError):
    """A link to a peer was expected (after an Attach, section 6.5.1) and
    did not come up in time."""

    def __init__(self, nodeId: bytes, seconds: float) -> None:
        self.nodeId = nodeId
        super().__init__(f"no link to {nodeId.hex()} came up within {seconds:g} s")


class AppAttachFailed(Exception):
    """An AppAttach (RFC 6940 section 6.5.2) gave no connection: no answer
    in time, no candidate reachable, too many in progress, the node
    stopping.  An Error answer from the overlay fails it with
    :class:`ReloadError` instead."""


class AppAttachRefused(AppAttachFailed):
    """The node that connected for an AppAttach presented a certificate
    this node refused: not one the overlay trusts, or not for the Node-ID
    expected (section 6.5.1.11; RFC 7904 section 5.1 relies on it).  The
    connection was closed before the application saw it."""
