"""Issue 15's commands: scan ranges and globs, several keys, incr, cas, share, revoke, rm-db;
options before the command, --json errors, and text that tells bytes from text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import APP, COMMANDS, fail, fill, kvr, ok, read

KEYS = [(b"user:1:name", b"ada"), (b"user:1:age", b"36"), (b"user:2:name", b"bob"), (b"x", b"1")]


def test_scan_ranges_reverse_count_and_match(home: Path) -> None:
    fill(home, "notes", KEYS)

    def keys(*args: str) -> list[str]:
        return ok(kvr("scan", APP, "notes", "--keys-only", "--text", *args, home=home)).split()

    assert keys("--start", "user:1:b", "--end", "user:2:zzz") == ["user:1:name", "user:2:name"]
    assert keys("--reverse") == ["x", "user:2:name", "user:1:name", "user:1:age"]
    assert keys("--match", "user:*:name") == ["user:1:name", "user:2:name"]
    assert keys("--match", "*e", "--limit", "1") == ["user:1:age"]
    assert keys("--match", "user:?:a*", "--reverse") == ["user:1:age"]
    assert keys("--prefix", "user:2", "--match", "*name") == ["user:2:name"]
    assert ok(kvr("scan", APP, "notes", "--count", "--match", "user:*", home=home)) == "3\n"
    counted = kvr("scan", APP, "notes", "--count", "--json", home=home)
    assert json.loads(ok(counted)) == {"count": 4}
    fail(kvr("scan", APP, "notes", "--prefix", "a", "--start", "b", home=home), 2, "not both")


def test_get_and_del_several_keys(home: Path) -> None:
    fill(home, "notes", KEYS)
    out = ok(kvr("get", APP, "notes", "x", "user:2:name", "--text", home=home))
    assert out == "x\t1\nuser:2:name\tbob\n"
    missing = kvr("get", APP, "notes", "x", "nope", "--json", home=home)
    assert missing.returncode == 1
    assert [json.loads(line) for line in missing.stdout.splitlines()] == [
        {"key": {"utf8": "x"}, "value": {"utf8": "1"}},
        {"key": {"utf8": "nope"}, "value": None},
    ]
    fail(kvr("get", APP, "notes", "x", "nope", home=home), 1, "not found in db")
    ok(kvr("del", APP, "notes", "x", "user:1:age", home=home))
    assert read(home, "notes", [b"x", b"user:1:age", b"user:1:name"]) == {
        b"x": None,
        b"user:1:age": None,
        b"user:1:name": b"ada",
    }


def test_incr_and_cas(home: Path) -> None:
    fill(home, "counters", [(b"word", b"hello")])
    assert ok(kvr("incr", APP, "counters", "visits", home=home)) == "1\n"
    assert ok(kvr("incr", APP, "counters", "visits", "41", home=home)) == "42\n"
    assert json.loads(ok(kvr("incr", APP, "counters", "visits", "--json", "--", "-2", home=home)))
    fail(kvr("incr", APP, "counters", "word", home=home), 1, "kv:distro:sys answered")
    ok(kvr("cas", APP, "counters", "lock", "--expect-absent", "--new", "me", home=home))
    fail(
        kvr("cas", APP, "counters", "lock", "--expect-absent", "--new", "you", home=home),
        1,
        "cas mismatch: key lock holds me",
    )
    lost = kvr("cas", APP, "counters", "lock", "--expect", "you", "--delete", "--json", home=home)
    assert lost.returncode == 1
    assert json.loads(lost.stdout) == {"ok": False, "current": {"utf8": "me"}}
    ok(kvr("cas", APP, "counters", "lock", "--expect", "me", "--delete", home=home))
    assert read(home, "counters", [b"lock", b"visits"]) == {b"lock": None, b"visits": b"40"}
    fail(kvr("cas", APP, "counters", "lock", "--new", "x", home=home), 2, "--expect")


def test_share_revoke_and_rm_db(home: Path) -> None:
    fill(home, "notes", KEYS)
    reader = "reader:other:pub.os"

    def rights() -> list[list[str]]:
        rows = map(json.loads, ok(kvr("caps", "--json", home=home)).splitlines())
        return [r["rights"] for r in rows if r["process"] == reader]

    assert "may now read and write" in ok(kvr("share", APP, "notes", reader, "--write", home=home))
    assert rights() == [["read", "write"]]
    ok(kvr("revoke", APP, "notes", reader, home=home))
    assert rights() == []
    fail(kvr("share", APP, "notes", "bad", home=home), 2, "bad process id")
    fail(kvr("rm-db", APP, "notes", home=home), 2, "without --yes")
    assert ok(kvr("rm-db", APP, "notes", "--yes", home=home)) == f"removed [{APP}, notes]\n"
    assert not (home / "kv" / APP / "notes").exists()
    fail(kvr("rm-db", APP, "notes", "--yes", home=home), 1, "does not exist")


def test_home_and_verbose_before_the_command(home: Path, tmp_path: Path) -> None:
    fill(home, "notes", KEYS)
    out = kvr("--home", str(home), "get", APP, "notes", "x", "--text", home=tmp_path / "nowhere")
    assert ok(out) == "1\n"
    loud = kvr("-v", "--home", str(home), "get", APP, "notes", "x", "-v", home=None)
    assert "DEBUG" in loud.stderr.decode()  # -v before and -v after: -vv


def test_json_errors_on_stdout_with_the_exit_code(home: Path) -> None:
    fill(home, "notes", KEYS)
    missing = kvr("get", APP, "notes", "nope", "--json", home=home)
    assert missing.returncode == 1
    assert missing.stderr == b""
    assert json.loads(missing.stdout) == {
        "error": {"message": f"key nope not found in db [{APP}, notes]", "exit_code": 1}
    }
    usage = kvr("get", "BAD", "notes", "k", "--json", home=home)
    assert usage.returncode == 2
    assert json.loads(usage.stdout)["error"]["exit_code"] == 2
    no_home = kvr("caps", "--json", home=home / "nope")
    assert no_home.returncode == 3
    assert "does not exist" in json.loads(no_home.stdout)["error"]["message"]
    for args in (["set", APP, "notes", "k"], ["del", APP, "zz/", "k"], ["load", APP, "notes"]):
        result = kvr(*args, "--json", home=home)
        assert result.returncode == 2, result
        assert "error" in json.loads(result.stdout)


def test_text_tells_bytes_from_text_and_shows_a_newline_alike(home: Path) -> None:
    fill(home, "notes", [(b"0x00ff", b"text"), (b"\x00\xff", b"bytes"), (b"nl", b"a\nb")])
    assert ok(kvr("scan", APP, "notes", "--text", home=home)).splitlines() == [
        "0x00ff\tbytes",
        '"0x00ff"\ttext',
        'nl\t"a\\nb"',
    ]
    got = ok(kvr("get", APP, "notes", "nl", "--text", home=home))
    assert got == '"a\\nb"\n'  # as scan shows it
    quoted = ok(kvr("get", APP, "notes", "00ff", "--key-hex", "--text", home=home))
    assert quoted == "bytes\n"


def test_msgpack_on_a_value_that_is_not_msgpack_says_so(home: Path) -> None:
    fill(home, "notes", [(b"k", b"hello world")])
    fail(kvr("get", APP, "notes", "k", "--msgpack", home=home), 1, "not MessagePack")
    fail(kvr("scan", APP, "notes", "--msgpack", "--text", home=home), 1, "not MessagePack")


def test_the_cli_imports_no_runtime_rich_or_msgpack_for_help() -> None:
    code = (
        "import sys, kvruntime.cli\n"
        "print(sorted(m for m in ('anyio', 'plyvel', 'rich', 'msgpack', 'asyncio')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert done.stdout == b"[]\n"


# run, bench, serve and shell host programs (a shell's commands take --json themselves).
@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"run", "bench", "serve", "shell"}))
def test_every_data_command_takes_json_and_answers_an_error_in_json(
    command: str, home: Path
) -> None:
    assert "--json" in ok(kvr(command, "--help", home=None))
    result = kvr(command, "--json", home=home / "missing")  # no home, or missing arguments
    assert result.returncode in (2, 3), result
    assert result.stderr == b""
    assert set(json.loads(result.stdout)["error"]) == {"message", "exit_code"}
