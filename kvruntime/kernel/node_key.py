"""A node's Ed25519 key, kept under its home, and its public half as peers know it.

Invariants:
1. The key is made on first use and kept at ``{home}/kernel/node.key``
   (the 32-byte seed, hex), created with mode 0600 in one exclusive create,
   so two first uses agree on one key and no other user can read it.
2. A key file that is not 64 hex digits is ``NodeKeyError``, never replaced:
   a node's identity is not silently changed.
3. The public key a peer is given is 64 hex digits (``public_key_text``);
   ``parse_public_key`` accepts exactly that, else ValueError.
"""

from __future__ import annotations

import os
from pathlib import Path

import nacl.signing

__all__ = [
    "NodeKeyError",
    "load_node_key",
    "node_public_key",
    "parse_public_key",
    "public_key_text",
]


class NodeKeyError(OSError):
    """The node key under a home could not be made or read."""


def _key_path(home: Path) -> Path:
    return Path(home) / "kernel" / "node.key"


def load_node_key(home: str | os.PathLike[str]) -> nacl.signing.SigningKey:
    """This home's node key, made (mode 0600) on first use."""
    path = _key_path(Path(home))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(bytes(nacl.signing.SigningKey.generate()).hex())
                out.flush()
                os.fsync(out.fileno())
        text = path.read_text().strip()
    except OSError as exc:
        raise NodeKeyError(f"node key {path}: {exc.strerror or exc}") from exc
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise NodeKeyError(f"node key {path} is not 64 hex digits: not replaced")
    return nacl.signing.SigningKey(seed)


def public_key_text(key: nacl.signing.SigningKey) -> str:
    """The public half of ``key`` as peers are given it."""
    return bytes(key.verify_key).hex()


def node_public_key(home: str | os.PathLike[str]) -> str:
    """This home's node public key (64 hex digits), to hand to the peers."""
    return public_key_text(load_node_key(home))


def parse_public_key(text: object) -> nacl.signing.VerifyKey:
    """The verify key a peer's public key text names; ValueError if it is not one."""
    if not isinstance(text, str) or len(text) != 64:
        raise ValueError(f"a node public key is 64 hex digits, got {text!r:.80}")
    try:
        return nacl.signing.VerifyKey(bytes.fromhex(text))
    except ValueError as exc:
        raise ValueError(f"a node public key is 64 hex digits, got {text!r:.80}") from exc
