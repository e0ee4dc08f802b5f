"""Message signatures as the transport sees them (RFC 6940 section 6.3.4).

"All RELOAD messages MUST be signed" and "the destination node MUST verify
the signature and the authorizing certificate" (section 6.3.4); intermediate
nodes do not verify.  The transport signs every message it originates and
verifies every message delivered to it through a :class:`MessageSecurity`,
so that it can be tested with a trivial implementation:

* :class:`SigningSecurity` is the real one, an adapter to
  :mod:`reload.security.signing` (certificates, RSA/ECDSA signatures);
* :class:`TrustingSecurity` signs with nothing but the claimed Node-ID and
  believes it.  It is for tests and the in-process simulator only: a node
  using :class:`SigningSecurity` rejects everything it signs (its signer
  identity uses hash algorithm "none" and an anonymous algorithm, which
  section 6.3.4 does not accept), so the two can never be mixed by mistake.

A verifier raises any exception to reject a message; the transport then
drops it ("If the signature fails, the implementation SHOULD simply drop the
message and MUST NOT process it", section 6.3.4).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from reload.wire.header import DestinationType
from reload.wire.message import Message
from reload.wire.security_block import (
    ANONYMOUS_NONE,
    HashAlgorithm,
    SecurityBlock,
    Signature,
    SignerIdentity,
    SignerIdentityType,
)

if TYPE_CHECKING:
    from cryptography import x509

    from reload.security.certificates import PeerIdentity
    from reload.security.signing import CertificateCache

__all__ = [
    "UNSIGNED",
    "MessageSecurity",
    "Signer",
    "SigningSecurity",
    "TrustedSigner",
    "TrustingSecurity",
    "sourceNodeId",
]

#: The security block of a message before :meth:`MessageSecurity.sign`.
UNSIGNED = SecurityBlock((), Signature.empty())


class Signer(Protocol):
    """Who signed a verified message: at least the Node-ID it signed as
    (:class:`reload.security.signing.VerifiedSigner` has this and the
    certificate, user name and the other Node-IDs)."""

    @property
    def nodeId(self) -> bytes: ...


class MessageSecurity(Protocol):
    """Signs outgoing and verifies incoming messages (section 6.3.4)."""

    def sign(self, message: Message) -> Message:
        """``message`` with its security block filled in: the signature over
        ``overlay || transaction_id || MessageContents || SignerIdentity``
        and the certificates needed to check it, with any certificates
        already in ``message``'s (unsigned) security block."""
        ...

    def verify(self, message: Message, previousHop: bytes | None) -> Signer:
        """Check the signature of a message delivered to this node.

        ``previousHop`` is the verified Node-ID of the link it arrived on.
        For a request, the signer must be the node the message comes from
        (the first via-list entry, else ``previousHop``).  For an answer the
        transport checks the signer itself (section 6.3.4 rules 1 and 2),
        because a peer on the way back may have forwarded it without
        touching the via list (section 6.1.2).  Raise any exception to
        reject the message.
        """
        ...


def sourceNodeId(message: Message, previousHop: bytes | None) -> bytes | None:
    """The Node-ID a message comes from: the first via-list entry when it
    was forwarded (each forwarding peer appends the node it received it
    from, section 6.1.2), else the link peer."""
    via = message.header.via_list
    if via:
        first = via[0]
        if first.type == DestinationType.NODE and not first.compressed:
            return first.value
        return None
    return previousHop


# -- for tests and the simulator ---------------------------------------------


class TrustedSigner:
    """A signer known only by the Node-ID it claims."""

    __slots__ = ("nodeId",)

    def __init__(self, nodeId: bytes) -> None:
        self.nodeId = nodeId

    def __repr__(self) -> str:
        return f"TrustedSigner({self.nodeId.hex()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrustedSigner) and other.nodeId == self.nodeId

    def __hash__(self) -> int:
        return hash(self.nodeId)


class TrustingSecurity:
    """No cryptography: the "signature" is the signer's Node-ID, and it is
    believed.  For unit tests and simulations, never for a real overlay.

    It still applies the rule a real verifier applies to requests (the
    signer is the node the request comes from), so tests of forwarding see
    a forged or lost via list as a rejection.
    """

    def __init__(self, nodeId: bytes) -> None:
        self.nodeId = nodeId
        self._identity = SignerIdentity(
            SignerIdentityType.CERT_HASH_NODE_ID, HashAlgorithm.NONE, nodeId
        )

    def sign(self, message: Message) -> Message:
        signature = Signature(ANONYMOUS_NONE, self._identity, b"")
        return Message(message.header, message.contents, SecurityBlock((), signature))

    def verify(self, message: Message, previousHop: bytes | None) -> Signer:
        identity = message.security_block.signature.identity
        if (
            identity.identity_type != SignerIdentityType.CERT_HASH_NODE_ID
            or identity.hash_algorithm != HashAlgorithm.NONE
            or not identity.value
        ):
            raise ValueError("not signed by a TrustingSecurity")
        if message.contents.is_request:
            source = sourceNodeId(message, previousHop)
            if source != identity.value:
                raise ValueError(
                    f"a request from {source.hex() if source else 'an unknown node'} "
                    f"signed as {identity.value.hex()}"
                )
        return TrustedSigner(identity.value)


# -- the real thing -----------------------------------------------------------


class _Clock(Protocol):
    def seconds(self) -> float: ...


class SigningSecurity:
    """:class:`MessageSecurity` on :mod:`reload.security.signing`.

    ``identity`` signs (as ``nodeId``, default its first Node-ID);
    ``certificates`` finds and trusts signers; ``clock`` gives the time
    certificates must be valid at.  ``extraCertificates`` are added to the
    bucket of every message (section 6.3.4).
    """

    def __init__(
        self,
        identity: PeerIdentity,
        certificates: CertificateCache,
        clock: _Clock,
        nodeId: bytes | None = None,
        extraCertificates: Iterable[x509.Certificate] = (),
    ) -> None:
        self.identity = identity
        self.certificates = certificates
        self.clock = clock
        self.nodeId = nodeId if nodeId is not None else identity.nodeId
        self.extraCertificates = tuple(extraCertificates)
        from reload.security.signing import MessageSigner

        self._signer = MessageSigner(identity, self.nodeId, self.extraCertificates)

    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)

    def sign(self, message: Message) -> Message:
        # Certificates the caller put in the unsigned block (a FetchAns's
        # value signers) travel with ours.
        return self._signer.sign(
            message.header,
            message.contents,
            [c.certificate for c in message.security_block.certificates],
        )

    def verify(self, message: Message, previousHop: bytes | None) -> Signer:
        from reload.security.signing import verifyMessage

        return verifyMessage(
            message,
            self.certificates,
            self.now(),
            senderNodeId=previousHop,
            checkSource=message.contents.is_request,
        )
