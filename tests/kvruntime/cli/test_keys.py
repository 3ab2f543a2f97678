"""get, set, del and scan through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack

from .conftest import APP, fail, fill, kvr, ok


def test_set_needs_create_for_a_new_db_and_a_missing_home_is_an_error(home: Path) -> None:
    fail(kvr("get", APP, "notes", "k", home=home), 3, f"home {home} does not exist")
    fail(kvr("set", APP, "notes", "k", "v", home=home), 3, "does not exist")
    assert not home.exists()  # a reading or refused command creates nothing
    ok(kvr("set", APP, "notes", "hello", "world", "--create", home=home))
    fail(kvr("set", APP, "other", "k", "v", home=home), 1, "(use --create to create it)")
    assert not (home / "kv" / APP / "other").exists()


def test_get_in_every_format_and_del(home: Path) -> None:
    fill(home, "notes", [(b"hello", b"world"), (b"\x00\xff", b"\x01\x02\xff"), (b"e", b"")])
    assert ok(kvr("get", APP, "notes", "hello", "--text", home=home)) == "world\n"
    assert ok(kvr("get", APP, "notes", "hello", home=home)) == "world"  # raw into a pipe
    assert ok(kvr("get", APP, "notes", "hello", "--hex", home=home)) == "776f726c64\n"
    doc = json.loads(ok(kvr("get", APP, "notes", "hello", "--json", home=home)))
    assert doc == {"key": {"utf8": "hello"}, "value": {"utf8": "world"}}
    # binary: hex where it does not decode; --raw gives the bytes exactly
    assert ok(kvr("get", APP, "notes", "00ff", "--key-hex", "--text", home=home)) == "0x0102ff\n"
    raw = kvr("get", APP, "notes", "00ff", "--key-hex", "--raw", home=home)
    assert raw.returncode == 0
    assert raw.stdout == b"\x01\x02\xff"
    doc = json.loads(ok(kvr("get", APP, "notes", "00ff", "--key-hex", "--json", home=home)))
    assert doc == {"key": {"hex": "00ff"}, "value": {"hex": "0102ff"}}
    assert kvr("get", APP, "notes", "e", "--raw", home=home).stdout == b""
    ok(kvr("del", APP, "notes", "hello", home=home))
    fail(kvr("get", APP, "notes", "hello", home=home), 1, "key hello not found")


def test_set_from_a_file_and_msgpack_values(home: Path, tmp_path: Path) -> None:
    packed = msgpack.packb({"name": "ada", "tags": [1, 2], "raw": b"\x00"}, use_bin_type=True)
    value_file = tmp_path / "value.bin"
    value_file.write_bytes(packed)
    ok(kvr("set", APP, "docs", "ada", "--value-file", str(value_file), "--create", home=home))
    out = kvr("get", APP, "docs", "ada", "--raw", home=home).stdout
    assert out == packed
    shown = json.loads(ok(kvr("get", APP, "docs", "ada", "--msgpack", home=home)))
    assert shown == {"name": "ada", "tags": [1, 2], "raw": {"hex": "00"}}
    ok(kvr("set", APP, "docs", "bin", "--value-file", "-", home=home, stdin=b"\xfe\x00"))
    assert kvr("get", APP, "docs", "bin", "--raw", home=home).stdout == b"\xfe\x00"


def test_user_mistakes_exit_non_zero_without_traceback(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    fail(kvr("get", "Not-A-Package", "notes", "k", home=home), 2, "bad package id")
    fail(kvr("get", APP, "a/b", "k", home=home), 2, "bad db name")
    fail(kvr("get", APP, "notes", "zz", "--key-hex", home=home), 2, "KEY is not hex")
    fail(kvr("get", APP, "missing", "k", home=home), 1, f"db [{APP}, missing] does not exist")
    assert not (home / "kv" / APP / "missing").exists()  # reading never creates a db
    fail(kvr("set", APP, "notes", "k", home=home), 2, "give either VALUE or --value-file")
    fail(kvr("get", APP, "notes", home=home), 2, "Missing argument")


def test_scan_with_prefix_limit_and_formats(home: Path) -> None:
    fill(
        home, "notes", [(b"user:1", b"ada"), (b"user:2", b"bob"), (b"x", b"\xff"), (b"user:3", b"")]
    )
    assert ok(kvr("scan", APP, "notes", "--text", home=home)).splitlines() == [
        "user:1\tada",
        "user:2\tbob",
        "user:3\t",
        "x\t0xff",
    ]
    out = ok(kvr("scan", APP, "notes", "--prefix", "user:", "--limit", "2", "--text", home=home))
    assert out.splitlines() == ["user:1\tada", "user:2\tbob"]
    lines = ok(kvr("scan", APP, "notes", "--prefix", "78", "--key-hex", "--json", home=home))
    assert [json.loads(line) for line in lines.splitlines()] == [
        {"key": {"utf8": "x"}, "value": {"hex": "ff"}}
    ]
    keys = ok(kvr("scan", APP, "notes", "--keys-only", "--hex", home=home)).split()
    assert keys == [b"user:1".hex(), b"user:2".hex(), b"user:3".hex(), b"x".hex()]
    fail(kvr("scan", APP, "nope", home=home), 1, "does not exist")


def test_odd_keys_and_limits(home: Path) -> None:
    fill(home, "notes", [(b"", b"empty key"), (b"a", b"1"), (b"b", b"2")])
    assert ok(kvr("get", APP, "notes", "", home=home)) == "empty key"
    ok(kvr("del", APP, "notes", "", "--key-hex", home=home))
    fail(kvr("get", APP, "notes", "", home=home), 1, 'key "" not found')
    fail(kvr("get", APP, "notes", "0", "--key-hex", home=home), 2, "KEY is not hex: '0'")
    # a text KEY that is not UTF-8 (surrogate-escaped by Python from the argv bytes)
    fail(kvr("set", APP, "notes", "\udcff", "v", home=home), 2, "KEY is not valid UTF-8")
    # a --limit past what the wire carries is just "all of them"
    for limit in ("99999999999999999999", str(2**64 - 1)):
        assert (
            ok(kvr("scan", APP, "notes", "--limit", limit, "--text", home=home)) == "a\t1\nb\t2\n"
        )
    for limit in ("0", "-1", "many"):
        fail(
            kvr("scan", APP, "notes", "--limit", limit, home=home), 2, "Invalid value for '--limit'"
        )
    rows = ok(kvr("ls", "--json", "--max-count", "99999999999999999999", home=home))
    assert json.loads(rows)["keys"] == 2
