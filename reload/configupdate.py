"""ConfigUpdate (RFC 6940 sections 6.5.4 and 11.1): accepting a newer
overlay configuration, or new kinds, from another peer.

A ``config`` update is applied only when its sequence is newer than the one
in force (section 6.3.2.1 arithmetic) and its ``<signature>`` -- a base64
SecurityBlock over the ``<configuration>`` element exactly as received --
verifies with the certificate of a Node-ID listed as configuration-signer
in the configuration in force.  A ``kind`` update needs every kind-block
signed by a kind-signer of the configuration in force.  Everything else is
refused with an Error: an overlay whose configuration names no signer can
not be reconfigured through the overlay (fail closed).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from typing import Any

from reload.config import (
    ConfigError,
    KindConfig,
    OverlayConfiguration,
    isNewer,
    parseConfiguration,
    parseKindBlocks,
    signedBytes,
    writeConfiguration,
)
from reload.errors import ReloadError
from reload.security.signing import CertificateCache, SignatureRejected, verifyBytes
from reload.transport.dispatcher import Request
from reload.wire.errors import DecodeError
from reload.wire.message import ErrorCode
from reload.wire.methods import ConfigUpdateAns, ConfigUpdateReq, ConfigUpdateType
from reload.wire.security_block import SecurityBlock

__all__ = ["ConfigurationUpdater", "verifySignedBlob"]


def verifySignedBlob(
    signature: bytes | None,
    data: bytes,
    signers: Sequence[str],
    certificates: CertificateCache,
    now: datetime.datetime,
    what: str,
) -> None:
    """Check ``signature`` (a SecurityBlock, section 6.3.4) over ``data``
    against the Node-IDs (hex) in ``signers``; raise :class:`ReloadError`
    Error_Forbidden saying why not."""
    if not signers:
        raise ReloadError(ErrorCode.FORBIDDEN, f"the configuration in force names no {what} signer")
    if not signature:
        raise ReloadError(ErrorCode.FORBIDDEN, f"the {what} is not signed")
    try:
        block = SecurityBlock.decode(signature)
    except DecodeError as exc:
        raise ReloadError(
            ErrorCode.FORBIDDEN, f"the {what} signature is malformed: {exc}"
        ) from None
    rejected = certificates.learn(block.certificates, now)
    try:
        signer = certificates.signer(block.signature.identity, now, rejected)
    except SignatureRejected as exc:
        raise ReloadError(ErrorCode.FORBIDDEN, f"{what} signer: {exc.reason}") from None
    allowed = {s.strip().lower() for s in signers}
    if signer.nodeId.hex() not in allowed:
        raise ReloadError(
            ErrorCode.FORBIDDEN, f"{signer.nodeId.hex()} is not a {what} signer (section 11.1)"
        )
    try:
        verifyBytes(
            signer.certificate.public_key(), block.signature.algorithm, block.signature.value, data
        )
    except SignatureRejected as exc:
        raise ReloadError(ErrorCode.FORBIDDEN, f"{what} signature: {exc.reason}") from None


class ConfigurationUpdater:
    """The ConfigUpdate handler of one node.

    ``current()`` gives the configuration in force; ``apply(new, document)``
    makes ``new`` the one in force (the node persists ``document``, the
    bytes as signed, and re-reads what depends on it).  ``certificates``
    finds and trusts signers, ``clock`` gives the time certificates must be
    valid at.
    """

    def __init__(
        self,
        current: Callable[[], OverlayConfiguration],
        apply: Callable[[OverlayConfiguration, bytes], None],
        certificates: CertificateCache,
        clock: Any,
    ) -> None:
        self.current = current
        self.apply = apply
        self.certificates = certificates
        self.clock = clock

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.UTC)

    def __call__(self, request: Request) -> ConfigUpdateAns:
        body = request.body
        assert isinstance(body, ConfigUpdateReq)
        if body.type == ConfigUpdateType.CONFIG:
            self.apply(self._newConfiguration(body.config_data), body.config_data)
        elif body.type == ConfigUpdateType.KIND:
            updated = self._withKinds(body.kinds)
            self.apply(updated, writeConfiguration(updated))
        else:
            raise ReloadError(
                ErrorCode.INVALID_MESSAGE, f"unknown ConfigUpdate type {body.type} (6.5.4.1)"
            )
        return ConfigUpdateAns()

    def _newConfiguration(self, document: bytes) -> OverlayConfiguration:
        current = self.current()
        try:
            candidate = parseConfiguration(document, current.instanceName)
        except ConfigError as exc:
            raise ReloadError(ErrorCode.INVALID_MESSAGE, f"configuration: {exc}") from None
        if not isNewer(candidate, current):
            # Section 6.5.4.2: processed only if the sequence is greater.
            raise ReloadError(
                ErrorCode.CONFIG_TOO_OLD,
                f"sequence {candidate.sequence} is not newer than {current.sequence}",
            )
        verifySignedBlob(
            candidate.signature,
            signedBytes(candidate),
            current.configurationSigners,
            self.certificates,
            self._now(),
            "configuration",
        )
        return candidate

    def _withKinds(self, blocks: Sequence[bytes]) -> OverlayConfiguration:
        current = self.current()
        kinds: list[KindConfig] = []
        for block in blocks:
            try:
                kinds.extend(parseKindBlocks(block))
            except ConfigError as exc:
                raise ReloadError(ErrorCode.INVALID_MESSAGE, f"kind-block: {exc}") from None
        for kind in kinds:
            verifySignedBlob(
                kind.kindSignature,
                signedBytes(kind),
                current.kindSigners,
                self.certificates,
                self._now(),
                "kind",
            )
        replaced = {k.effectiveId for k in kinds}
        merged = tuple(k for k in current.kinds if k.effectiveId not in replaced) + tuple(kinds)
        return dataclasses.replace(current, kinds=merged)
