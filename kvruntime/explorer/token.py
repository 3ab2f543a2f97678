"""The write token of ``kvruntime serve``: made at start, kept under the home (mode 0600).

A write (set, delete) carries the token in its form (field ``token``) or in
the ``X-Kvruntime-Token`` header; it is compared in constant time. A cross-site
page cannot read it, so it cannot forge a write.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

__all__ = ["TOKEN_FILE", "new_token", "token_matches"]

#: Where, under the home, the token of the running explorer is written.
TOKEN_FILE = "explorer-token"


def new_token(home: Path) -> str:
    """A fresh token, written to ``home/explorer-token`` readable by its owner only."""
    token = secrets.token_urlsafe(24)
    path = home / TOKEN_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def token_matches(expected: str, given: str | None) -> bool:
    """Whether ``given`` is the token (constant time)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
