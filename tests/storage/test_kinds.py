"""The effective Kind table (RFC 6940 sections 7.4.1.2, 8, 11.1)."""

from __future__ import annotations

import pytest

from reload.config import KindConfig, defaultConfiguration
from reload.errors import ReloadError
from reload.storage.kinds import (
    CERTIFICATE_BY_NODE,
    CERTIFICATE_BY_USER,
    KindTable,
    unknownKindError,
    validateCertificate,
)
from reload.storage.policies import PolicyRegistry
from reload.wire.message import ErrorCode
from reload.wire.storage import DataModel, UnknownKindsInfo
from tests.storage.support import KIND_CONFIGS, SINGLE_USER, makeIdentity


def test_the_default_configuration_gives_the_base_kinds_and_the_shipped_usages_kinds() -> None:
    table = KindTable.fromConfiguration(defaultConfiguration().kinds)
    assert {k.kindId for k in table} == {0x1, 0x2, CERTIFICATE_BY_NODE, CERTIFICATE_BY_USER, 0x104}
    # RFC 7374 sections 5, 6 and 10.3: REDIR, named as IANA registered it.
    redir = table[0x104]
    assert (redir.name, redir.model, redir.policy) == (
        "REDIR",
        DataModel.DICTIONARY,
        "NODE-ID-MATCH",
    )
    # No usage brought NODE-ID-MATCH to this table: stores of it are refused.
    assert not redir.policyAvailable
    node, user = table[CERTIFICATE_BY_NODE], table[CERTIFICATE_BY_USER]
    # Section 8.
    assert (node.model, node.policy) == (DataModel.ARRAY, "NODE-MATCH")
    assert (user.model, user.policy) == (DataModel.ARRAY, "USER-MATCH")
    assert node.validator is validateCertificate
    turn = table[0x2]
    assert (turn.model, turn.policy, turn.maxNodeMultiple) == (
        DataModel.SINGLE,
        "NODE-MULTIPLE",
        20,
    )
    # RFC 7904 section 7: SIP-REGISTRATION.
    assert (table[0x1].model, table[0x1].policy) == (DataModel.DICTIONARY, "USER-NODE-MATCH")
    assert table.models == {
        0x1: DataModel.DICTIONARY,
        0x2: DataModel.SINGLE,
        CERTIFICATE_BY_NODE: DataModel.ARRAY,
        CERTIFICATE_BY_USER: DataModel.ARRAY,
        0x104: DataModel.DICTIONARY,
    }


def test_the_iana_model_and_policy_win_11_1() -> None:
    """ "clients MUST ignore them in favor of the IANA versions"."""
    wrong = KindConfig(
        name="CERTIFICATE_BY_USER",
        dataModel="SINGLE",
        accessControl="NODE-MATCH",
        maxCount=1,
        maxSize=10,
    )
    entry = KindTable.fromConfiguration([wrong])[CERTIFICATE_BY_USER]
    assert (entry.model, entry.policy, entry.maxCount) == (DataModel.ARRAY, "USER-MATCH", 1)


def test_kinds_that_cannot_be_entered_are_listed() -> None:
    unnamed = KindConfig(
        name="NO-SUCH-KIND", dataModel="SINGLE", accessControl="USER-MATCH", maxCount=1, maxSize=1
    )
    table = KindTable.fromConfiguration([unnamed, *KIND_CONFIGS])
    assert [name for name, _ in table.skipped] == ["NO-SUCH-KIND"]
    assert SINGLE_USER in table


def test_a_kind_whose_policy_is_missing_is_known_but_not_writable() -> None:
    table = KindTable.fromConfiguration(KIND_CONFIGS, PolicyRegistry())
    redir = next(k for k in table if k.policy == "NODE-ID-MATCH")
    assert not redir.policyAvailable


def test_unknown_kind_error_lists_every_kind_7_4_1_2() -> None:
    table = KindTable.fromConfiguration(KIND_CONFIGS)
    assert table.unknown([SINGLE_USER, 7, 9, 7]) == (7, 9)
    with pytest.raises(ReloadError) as caught:
        table.require([7, SINGLE_USER, 9])
    assert caught.value.code == ErrorCode.UNKNOWN_KIND
    assert UnknownKindsInfo.decode(caught.value.info).kinds == (7, 9)
    # unknown_kinds<0..2^8-1> holds 63 Kind-IDs.
    many = unknownKindError(range(100))
    assert len(UnknownKindsInfo.decode(many.info).kinds) == 63


def test_certificate_values_are_certificates() -> None:
    identity = makeIdentity("carol@storage.example.org")
    validateCertificate(identity.certificateDer)
    with pytest.raises(ValueError, match=r"not a DER X\.509 certificate"):
        validateCertificate(b"not a certificate")
