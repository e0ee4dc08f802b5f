"""Digest authentication of phones (RFC 3261 section 22, RFC 2617): the
front end's checks, against responses computed here the way a phone does."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from usages.sipusage.digest import NONCE_LIFETIME, DigestAuthenticator, loadPasswords, parseDigest

AOR = "alice@example.com"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def answer(challenge: str, password: str, user: str = "alice", qop: bool = True) -> str:
    params = parseDigest(challenge)
    ha1 = md5(f"{user}:{params['realm']}:{password}")
    ha2 = md5("REGISTER:sip:example.com")
    if qop:
        response = md5(f"{ha1}:{params['nonce']}:00000001:abc:auth:{ha2}")
        extra = ', qop=auth, nc=00000001, cnonce="abc"'
    else:
        response = md5(f"{ha1}:{params['nonce']}:{ha2}")
        extra = ""
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}",'
        f' uri="sip:example.com", response="{response}", algorithm=MD5{extra}'
    )


def test_a_right_password_passes_a_wrong_one_does_not() -> None:
    auth = DigestAuthenticator({AOR: "secret"})
    challenge = auth.challenge(AOR, 1000.0)
    assert parseDigest(challenge)["realm"] == "example.com"
    assert auth.check(AOR, "REGISTER", answer(challenge, "secret"), 1001.0) == "ok"
    assert auth.check(AOR, "REGISTER", answer(challenge, "secret", qop=False), 1001.0) == "ok"
    assert auth.check(AOR, "REGISTER", answer(challenge, "wrong"), 1001.0) == "no"
    # The credentials are for REGISTER's uri and method only.
    assert auth.check(AOR, "INVITE", answer(challenge, "secret"), 1001.0) == "no"
    # Another AoR, no credentials, no password known.
    assert auth.check("bob@example.com", "REGISTER", answer(challenge, "secret"), 1001.0) == "no"
    assert auth.check(AOR, "REGISTER", None, 1001.0) == "no"


def test_old_and_foreign_nonces() -> None:
    auth = DigestAuthenticator({AOR: "secret"})
    challenge = auth.challenge(AOR, 1000.0)
    late = 1000.0 + NONCE_LIFETIME + 1
    assert auth.check(AOR, "REGISTER", answer(challenge, "secret"), late) == "stale"
    assert "stale=true" in auth.challenge(AOR, late, stale=True)
    other = DigestAuthenticator({AOR: "secret"})
    assert other.check(AOR, "REGISTER", answer(challenge, "secret"), 1001.0) == "no"


def test_the_passwords_file(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text("# comment\nsip:Alice@EXAMPLE.com:pa:ss\n\n")
    assert loadPasswords(str(good)) == {"Alice@example.com": "pa:ss"}
    bad = tmp_path / "bad"
    bad.write_text("nobody\n")
    with pytest.raises(ValueError, match="bad:1"):
        loadPasswords(str(bad))
