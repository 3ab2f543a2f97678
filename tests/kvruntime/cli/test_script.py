"""Smoke tests of the installed ``kvruntime`` script, each command in a process of its own.

The other CLI tests run the commands in-process; these check what only the
real script shows, one process each, few of them (each costs an interpreter
start): its entry point, its exit codes as a process sees them, bytes on a
real stdout, stdin from a pipe, and a home locked by a runtime in another
process.
"""

from __future__ import annotations

from pathlib import Path

from anyio.from_thread import start_blocking_portal

from kvruntime import Runtime

from .conftest import APP, COMMANDS, fail, fill, ok, read, script


def test_help_names_every_command_with_an_example() -> None:
    out = ok(script("--help", home=None))
    assert "Example:" in out
    for command in COMMANDS:
        assert f"  {command} " in out, out


def test_a_write_then_a_read(home: Path) -> None:
    value_file_stdin = ("--value-file", "-", "--create")
    ok(script("set", APP, "notes", "bin", *value_file_stdin, home=home, stdin=b"\x00\xff"))
    assert read(home, "notes", [b"bin"]) == {b"bin": b"\x00\xff"}
    raw = script("get", APP, "notes", "bin", "--raw", home=home)
    assert raw.returncode == 0, raw.stderr.decode()
    assert raw.stdout == b"\x00\xff"  # the bytes exactly, no newline
    piped = script("get", APP, "notes", "bin", home=home)
    assert piped.stdout == b"\x00\xff"  # into a pipe, raw without being asked (as redis-cli)


def test_exit_codes_of_a_usage_mistake_a_kv_error_and_a_missing_home(home: Path) -> None:
    fail(script("get", APP, "notes", "k", home=home), 3, f"home {home} does not exist")
    fill(home, "notes", [(b"k", b"v")])
    fail(script("get", "BAD", "notes", "k", home=home), 2, "bad package id")
    fail(script("get", APP, "notes", "nope", home=home), 1, "key nope not found")


def test_a_home_held_by_a_runtime_in_another_process_exits_3(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1")])
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(Runtime(home=home)),
    ):
        result = script("get", APP, "notes", "a", "--home", str(home), home=None)
        fail(result, 3, f"home {home} is in use by another runtime")
    assert read(home, "notes", [b"a"]) == {b"a": b"1"}
