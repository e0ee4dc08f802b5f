"""Who may allocate: long-term credentials (RFC 8489 section 9.2) and the
nonces that go stale (RFC 8656 section 5).

- :func:`loadUsers` reads the ``TURN:users=FILE`` file, one
  ``username:password`` per line;
- :class:`NonceIssuer` makes stateless nonces: a timestamp and an HMAC of
  it and the client's address under a secret of this process, so a nonce
  is valid only for the client it was given to and only for
  ``lifetime`` seconds, with no table of issued nonces to flood.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from usages.turnserver.stun import longTermKey


class UsersFileError(ValueError):
    """A users file that cannot be read, with the file and line."""


def loadUsers(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``username:password`` lines of ``path``.  Blank lines and lines
    starting with ``#`` are skipped; the password is everything after the
    first colon (it may hold colons).  Any other line, an empty user name,
    an empty password or a user named twice is an error naming the file and
    the line."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsersFileError(f"{source}: cannot read the TURN users file: {e}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, colon, password = stripped.partition(":")
        where = f"{source}:{number}"
        if not colon:
            raise UsersFileError(f"{where}: expected username:password")
        if not name:
            raise UsersFileError(f"{where}: empty user name")
        if not password:
            raise UsersFileError(f"{where}: empty password for user {name!r}")
        if name in users:
            raise UsersFileError(f"{where}: user {name!r} is listed twice")
        users[name] = password
    return users


class UserKeys:
    """The long-term keys MD5(username:realm:password), computed once."""

    def __init__(self, realm: str, users: Mapping[str, str]) -> None:
        self.realm = realm
        self._keys = {name: longTermKey(name, realm, pw) for name, pw in users.items()}

    def keyFor(self, username: str) -> bytes | None:
        return self._keys.get(username)

    def __len__(self) -> int:
        return len(self._keys)


class NonceIssuer:
    """Stateless nonces: ``<8 hex digits of issue time><24 hex digits of
    HMAC-SHA256(secret, time || client address)>``."""

    def __init__(self, lifetime: float, secret: bytes | None = None) -> None:
        self.lifetime = lifetime
        self._secret = secret if secret is not None else os.urandom(32)

    def _mac(self, issued: str, client: tuple[str, int]) -> str:
        text = f"{issued}|{client[0]}|{client[1]}".encode()
        return hmac.new(self._secret, text, hashlib.sha256).hexdigest()[:24]

    def issue(self, client: tuple[str, int], now: float) -> str:
        issued = f"{int(now) & 0xFFFFFFFF:08x}"
        return issued + self._mac(issued, client)

    def isFresh(self, nonce: str, client: tuple[str, int], now: float) -> bool:
        """Ours, for this client, and younger than the lifetime."""
        if len(nonce) != 32:
            return False
        issued = nonce[:8]
        try:
            at = int(issued, 16)
        except ValueError:
            return False
        if not hmac.compare_digest(nonce[8:], self._mac(issued, client)):
            return False
        age = (int(now) & 0xFFFFFFFF) - at
        return 0 <= age < self.lifetime
