"""Digest authentication of phones (RFC 3261 section 22, RFC 2617 MD5).

With ``SIP:passwords=FILE`` the front end challenges a phone's REGISTER
(401, WWW-Authenticate) and its out-of-dialog requests (407,
Proxy-Authenticate), and lets through only those whose ``response``
proves the password of the AoR they act for.  The file has one
``AOR:PASSWORD`` a line (``alice@example.com:secret``; ``#`` comments).
The realm is the AoR's domain.  Nonces carry their time and an HMAC with a
secret made at start, so nothing is kept per challenge; one older than
:data:`NONCE_LIFETIME` seconds is refused as stale.  MD5 and qop=auth (or
none), as phones speak it (RFC 8760's SHA-256 is not offered).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from usages.sipusage.message import splitValues
from usages.sipusage.record import BadAor, normaliseAor

__all__ = ["NONCE_LIFETIME", "DigestAuthenticator", "loadPasswords", "parseDigest"]

#: Seconds a nonce is good for.
NONCE_LIFETIME = 300


def loadPasswords(path: str) -> dict[str, str]:
    """AoR -> password from ``path``; ValueError naming the line that is wrong."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            for scheme in ("sips:", "sip:"):
                if line.lower().startswith(scheme):
                    line = line[len(scheme) :]
            # An AoR has no colon (no port, section 2); a password may.
            aor, colon, password = line.partition(":")
            if not colon or not password:
                raise ValueError(f"{path}:{number}: expected AOR:PASSWORD")
            try:
                out[normaliseAor(aor)] = password
            except BadAor as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    return out


def parseDigest(value: str) -> dict[str, str]:
    """The parameters of ``Digest a="b", c=d``; {} when not Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params: dict[str, str] = {}
    for part in splitValues(rest):
        name, equals, raw = part.partition("=")
        if equals:
            params[name.strip().lower()] = raw.strip().strip('"')
    return params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class DigestAuthenticator:
    """Challenges and checks for the AoRs of ``passwords``."""

    def __init__(self, passwords: Mapping[str, str], secret: bytes | None = None) -> None:
        self.passwords = dict(passwords)
        self.secret = secret or os.urandom(32)

    def _mac(self, stamp: str) -> str:
        return hmac.new(self.secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def nonce(self, now: float) -> str:
        stamp = str(int(now))
        return f"{stamp}.{self._mac(stamp)}"

    def challenge(self, aor: str, now: float, stale: bool = False) -> str:
        """A WWW-Authenticate / Proxy-Authenticate value for ``aor``."""
        realm = aor.rpartition("@")[2]
        extra = ", stale=true" if stale else ""
        return (
            f'Digest realm="{realm}", nonce="{self.nonce(now)}", algorithm=MD5, qop="auth"{extra}'
        )

    def check(self, aor: str, method: str, header: str | None, now: float) -> str:
        """``"ok"``, ``"stale"`` (a good answer to an old nonce) or
        ``"no"`` for the credentials in ``header`` acting for ``aor``."""
        password = self.passwords.get(aor)
        if header is None or password is None:
            return "no"
        params = parseDigest(header)
        user, realm = params.get("username", ""), params.get("realm", "")
        if not params or realm != aor.rpartition("@")[2]:
            return "no"
        if user not in (aor, aor.rpartition("@")[0]):
            return "no"
        if params.get("algorithm", "MD5").upper() != "MD5":
            return "no"
        nonce, uri = params.get("nonce", ""), params.get("uri", "")
        stamp, _, mac = nonce.partition(".")
        if not stamp.isdigit() or not hmac.compare_digest(mac, self._mac(stamp)):
            return "no"  # not a nonce of this front end
        ha1 = _md5(f"{user}:{realm}:{password}")
        ha2 = _md5(f"{method}:{uri}")
        qop = params.get("qop", "")
        if qop == "auth":
            expected = _md5(
                f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}"
            )
        elif not qop:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        else:
            return "no"
        if not hmac.compare_digest(expected, params.get("response", "").lower()):
            return "no"
        return "ok" if 0 <= now - int(stamp) <= NONCE_LIFETIME else "stale"
