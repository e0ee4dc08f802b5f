"""The admin API's bearer token: a secret in a file of the data directory.

The peer makes ``admin-token`` (mode 0600) on its first start with an admin
endpoint and keeps it across restarts; whoever can read that file may change
the peer's state through the admin API -- the same idea as Bitcoin Core's RPC
cookie file or Docker's socket permissions: the file system's access control
is the login.  ``reloadctl`` and :class:`reload.lab.Lab` read it from the
data directory (or ``--token-file``) and send it as
``Authorization: Bearer TOKEN`` (RFC 6750 section 2.1).

Standard library only: the command-line client imports this without the web
server.
"""

from __future__ import annotations

import os
import secrets
import stat

__all__ = ["TOKEN_FILE", "TokenFileError", "authorizationHeader", "loadOrCreate", "readToken"]

#: The token's file name in a peer's data directory.
TOKEN_FILE = "admin-token"
#: Bytes of randomness in a new token (256 bits, URL-safe base64 text).
TOKEN_BYTES = 32


class TokenFileError(Exception):
    """The token file cannot be read, or made, or holds no token."""


def readToken(path: str) -> str:
    """The token in ``path`` (its first line), or :class:`TokenFileError`."""
    try:
        with open(path, encoding="ascii") as tokenFile:
            token = tokenFile.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read the admin token {path}: {_reason(exc)}") from None
    if not token:
        raise TokenFileError(f"the admin token file {path} is empty")
    return token


def loadOrCreate(directory: str) -> tuple[str, str]:
    """The token of the data directory ``directory`` and its file's path,
    making the file (mode 0600, created exclusively) on the first start.
    A file that others could read is narrowed to 0600 first: a token
    readable by every local user protects nothing."""
    path = os.path.abspath(os.path.join(directory, TOKEN_FILE))
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.chmod(path, 0o600)
        return readToken(path), path
    except OSError as exc:
        raise TokenFileError(f"cannot make the admin token {path}: {_reason(exc)}") from None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with os.fdopen(descriptor, "w", encoding="ascii") as tokenFile:
        tokenFile.write(token + "\n")
    return token, path


def authorizationHeader(token: str) -> dict[str, str]:
    """The request header that carries ``token``."""
    return {"Authorization": f"Bearer {token}"}


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
