"""Keys with a TTL from the command line, in-process (click's runner) on LevelDB.

``set --ttl``, ``expire``, ``persist`` and ``ttl`` (as redis-cli's SET EX,
EXPIRE, PERSIST and TTL), ``ttl-policy`` and ``load --ttl``; the same
commands in ``kvruntime shell``. ``ttl`` tells its three answers apart by
its exit code as redis-cli does by -1 and -2: 0 and the seconds left, 4
for a key that never expires, 1 for a missing key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from kvruntime.cli._dumpformat import end_line, header_line, record_line
from kvruntime.cli.shell import completer

from .conftest import APP, fail, fill, kvr, ok, read

#: ``ttl``'s exit code for a present key that never expires.
NO_EXPIRY = 4


def test_set_with_a_ttl_then_ttl_persist_and_expire(home: Path) -> None:
    ok(kvr("set", APP, "notes", "session", "abc", "--ttl", "100", "--create", home=home))
    shown = ok(kvr("ttl", APP, "notes", "session", home=home))
    assert shown.endswith("\n")
    assert 50 < int(shown) <= 100  # whole seconds
    doc = json.loads(ok(kvr("ttl", APP, "notes", "session", "--json", home=home)))
    assert 50 < doc["ttl"] <= 100
    assert doc["key"] == {"utf8": "session"}
    ms = int(ok(kvr("ttl", APP, "notes", "session", "--ms", home=home)))
    assert 50_000 < ms <= 100_000

    ok(kvr("persist", APP, "notes", "session", home=home))
    never = kvr("ttl", APP, "notes", "session", home=home)
    fail(never, NO_EXPIRY, "key session has no expiry")
    assert never.stdout == b""
    as_json = kvr("ttl", APP, "notes", "session", "--json", home=home)
    assert as_json.returncode == NO_EXPIRY
    assert json.loads(as_json.stdout) == {"key": {"utf8": "session"}, "ttl": None}

    ok(kvr("expire", APP, "notes", "session", "0.2", home=home))
    time.sleep(0.25)  # past the TTL, counted from the write (before the command ended)
    fail(kvr("get", APP, "notes", "session", home=home), 1, "key session not found")
    assert read(home, "notes", [b"session"]) == {b"session": None}


def test_a_missing_key_and_bad_seconds(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    fail(kvr("ttl", APP, "notes", "nope", home=home), 1, "key nope not found")
    fail(kvr("expire", APP, "notes", "nope", "10", home=home), 1, "key nope not found")
    fail(kvr("persist", APP, "notes", "nope", home=home), 1, "key nope not found")
    for bad in ("0", "-1", "nan", "inf", "soon"):
        fail(kvr("expire", APP, "notes", "k", bad, home=home), 2, "SECONDS")
    fail(kvr("set", APP, "notes", "k", "v", "--ttl", "0", home=home), 2, "--ttl")
    assert read(home, "notes", [b"k"]) == {b"k": b"v"}  # nothing changed


def test_the_ttl_policy_of_a_db(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    ok(kvr("ttl-policy", APP, "notes", "--enabled", "--max-ttl", "60", home=home))
    fail(
        kvr("set", APP, "notes", "k", "v2", "--ttl", "61", home=home),
        1,
        "a TTL of 61000 ms exceeds this db's maximum of 60000 ms",
    )
    ok(kvr("expire", APP, "notes", "k", "60", home=home))
    ok(kvr("ttl-policy", APP, "notes", "--disabled", home=home))
    fail(kvr("ttl", APP, "notes", "k", home=home), NO_EXPIRY, "no expiry")  # taken off
    fail(kvr("expire", APP, "notes", "k", "5", home=home), 1, "TTL are disabled on this db")
    fail(kvr("ttl-policy", APP, "notes", home=home), 2, "--enabled or --disabled")
    fail(
        kvr("ttl-policy", APP, "notes", "--disabled", "--max-ttl", "5", home=home),
        2,
        "--max-ttl",
    )
    assert read(home, "notes", [b"k"]) == {b"k": b"v"}


def test_load_with_a_ttl_makes_every_loaded_key_expire(home: Path) -> None:
    dump = b"".join(
        [header_line(APP, "notes"), record_line(b"a", b"1"), record_line(b"b", b"2"), end_line(2)]
    )
    ok(kvr("load", APP, "copy", "--create", "--ttl", "0.5", home=home, stdin=dump))
    time.sleep(0.55)  # past the TTL, counted from the write (before the command ended)
    assert read(home, "copy", [b"a", b"b"]) == {b"a": None, b"b": None}
    ok(kvr("load", APP, "kept", "--create", home=home, stdin=dump))
    fail(kvr("ttl", APP, "kept", "a", home=home), NO_EXPIRY, "no expiry")


def test_the_ttl_commands_in_the_shell(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    text = (
        f"set {APP} notes t x --ttl 50\n"
        f"ttl {APP} notes t\n"
        f"persist {APP} notes t\n"
        f"ttl {APP} notes t\n"
        f"expire {APP} notes k 30\n"
        f"ttl {APP} notes k --json\n"
        f"ttl {APP} notes nope\n"
    )
    done = kvr("shell", home=home, stdin=text.encode())
    err = done.stderr.decode()
    assert done.returncode == 1, err  # the last command's: a missing key
    first, second = done.stdout.decode().splitlines()
    assert 25 < int(first) <= 50
    assert 15 < json.loads(second)["ttl"] <= 30
    assert "key t has no expiry" in err
    assert "key nope not found" in err
    assert "Traceback" not in err


def _completions(text: str) -> set[str]:
    found = completer(lambda: [(APP, "notes")]).get_completions(Document(text), CompleteEvent())
    return {c.text for c in found}


def test_the_shell_completes_the_ttl_commands_and_options() -> None:
    assert _completions("exp") == {"expire"}
    assert _completions("pers") == {"persist"}
    assert _completions("tt") == {"ttl", "ttl-policy"}
    assert _completions("ttl ") == {APP}
    assert _completions(f"expire {APP} ") == {"notes"}
    assert _completions(f"set {APP} notes k v --tt") == {"--ttl"}
    assert _completions(f"ttl-policy {APP} notes --") >= {"--enabled", "--disabled", "--max-ttl"}
    assert _completions(f"ttl {APP} notes k --m") == {"--ms"}
