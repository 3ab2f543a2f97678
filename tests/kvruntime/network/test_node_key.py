"""The node key: made once under the home, readable only by its owner, never replaced."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import kvruntime
from kvruntime.kernel.node_key import NodeKeyError, load_node_key, parse_public_key


def test_the_key_is_made_on_first_use_kept_and_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    public = kvruntime.node_public_key(home)
    assert len(public) == 64
    assert int(public, 16) >= 0
    assert kvruntime.node_public_key(home) == public  # the same key, not a new one
    key_file = home / "kernel" / "node.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert kvruntime.node_public_key(tmp_path / "other") != public


def test_the_public_key_verifies_what_the_key_signs(tmp_path: Path) -> None:
    key = load_node_key(tmp_path)
    verify = parse_public_key(kvruntime.node_public_key(tmp_path))
    assert verify.verify(key.sign(b"hello")) == b"hello"


def test_a_broken_key_file_is_an_error_not_a_new_identity(tmp_path: Path) -> None:
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "node.key").write_text("not a key")
    with pytest.raises(NodeKeyError, match="not 64 hex digits: not replaced"):
        kvruntime.node_public_key(tmp_path)
    assert (tmp_path / "kernel" / "node.key").read_text() == "not a key"


@pytest.mark.parametrize("text", ["", "zz" * 32, "ab" * 31, 42, "ab" * 33])
def test_a_public_key_that_is_not_64_hex_digits_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        parse_public_key(text)
