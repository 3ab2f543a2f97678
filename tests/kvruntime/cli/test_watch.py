"""``kvruntime watch``: tail a db's changes, on LevelDB.

The commands run in-process (click's runner); Ctrl-C and the terminal
through the real script, a process of its own.

A home is used by one runtime at a time (its lock), so no other process can
write to the db while a ``watch`` process holds the home. What writes while
it watches is therefore kv itself (the expiry sweeper removing a key whose
TTL runs out during the watch); the writes of other commands are seen by
``--since``, which resumes strictly after the last seq a run printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from kvruntime.cli._render import Format
from kvruntime.cli.watch import change_line

from .conftest import APP, KVRUNTIME, fail, fill, kvr, ok
from .shells import interrupt_and_go_on, on_a_terminal, read_until

#: Seconds any one watch process may take.
BOUND = 60


def _watch(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TERM="dumb", KVRUNTIME_HOME=str(home))
    return subprocess.Popen(
        [KVRUNTIME, "watch", APP, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _lines(run_stdout: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in run_stdout.splitlines()]


def test_ctrl_c_ends_a_watch_with_130_and_since_resumes_after_it(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1")])
    caps_before = ok(kvr("caps", "--all", home=home))
    with _watch(home, "notes", "--snapshot", "--json") as watching:
        try:
            assert watching.stdout is not None
            first = json.loads(watching.stdout.readline())  # the watch has started
            watching.send_signal(signal.SIGINT)
            rest, err = watching.communicate(timeout=BOUND)
        finally:
            watching.kill()
    assert first["kind"] == "snapshot"
    assert first["key"] == {"utf8": "a"}
    assert first["value"] == {"utf8": "1"}
    assert watching.returncode == 130, err.decode()
    assert err == b""  # with --json the error is on stdout
    assert json.loads(rest) == {"error": {"message": "interrupted", "exit_code": 130}}
    assert ok(kvr("caps", "--all", home=home)) == caps_before  # no grant left behind

    start = first["seq"]
    assert isinstance(start, int)
    ok(kvr("set", APP, "notes", "b", "two", home=home))
    ok(kvr("set", APP, "notes", "user:\n<x>", "0x00", home=home))
    ok(kvr("del", APP, "notes", "a", home=home))
    done = kvr("watch", APP, "notes", "--since", str(start), "--count", "3", "--json", home=home)
    changes = _lines(ok(done).encode())
    assert [(c["kind"], c["key"], c["value"]) for c in changes] == [
        ("set", {"utf8": "b"}, {"utf8": "two"}),
        ("set", {"utf8": "user:\n<x>"}, {"utf8": "0x00"}),
        ("delete", {"utf8": "a"}, None),
    ]
    seqs = [int(str(c["seq"])) for c in changes]
    assert seqs == sorted(seqs)
    assert seqs[0] > start

    # resumed after the second: exactly the third; text keeps the CLI's rules
    after_second = str(seqs[1])
    text = ok(
        kvr("watch", APP, "notes", "--since", after_second, "--count", "1", "--text", home=home)
    )
    assert text == f"{seqs[2]}\tdelete\ta\n"
    prefixed = kvr(
        "watch",
        APP,
        "notes",
        "--since",
        str(start),
        "--prefix",
        "user:",
        "--count",
        "1",
        "--text",
        home=home,
    )
    assert ok(prefixed) == f'{seqs[1]}\tset\t"user:\\n<x>"\t"0x00"\n'
    raw = kvr("watch", APP, "notes", "--since", str(start), "--count", "1", home=home)
    assert raw.stdout == f"{seqs[0]}\tset\t".encode() + b"b\ttwo\n"  # a pipe: raw bytes


def test_a_change_made_while_it_watches_appears_live(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1")])
    ok(kvr("set", APP, "notes", "session", "s", "--ttl", "1.5", home=home))
    # from now: the sweeper's removal of "session" happens while it watches
    # (which starts in-process in a small part of those 1.5 s)
    done = kvr("watch", APP, "notes", "--count", "1", "--json", home=home)
    (change,) = _lines(ok(done).encode())
    assert change["kind"] == "expire"
    assert change["key"] == {"utf8": "session"}
    assert change["value"] is None


def test_typed_ends_give_the_clis_errors(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1")])
    fail(kvr("watch", APP, "nope", "--count", "1", home=home), 1, "does not exist")
    far = kvr("watch", APP, "notes", "--since", str(2**62), "--count", "1", home=home)
    fail(far, 1, "the change log no longer holds what follows seq")
    as_json = kvr("watch", APP, "notes", "--since", str(2**62), "--json", home=home)
    assert as_json.returncode == 1
    assert "oldest change held" in json.loads(as_json.stdout)["error"]["message"]
    fail(kvr("watch", APP, "notes", "--prefix", "a", "--start", "b", home=home), 2, "not both")
    fail(kvr("watch", APP, "notes", "--snapshot", "--since", "1", home=home), 2, "--since")


def test_in_the_shell_a_watch_runs_on_the_shells_runtime(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1")])
    text = (
        f"watch {APP} notes --snapshot --json --count 1 --since 0\n"  # refused: exit 2
        f"set {APP} notes session s --ttl 1\n"  # the watch starts at once after it
        f"watch {APP} notes --json --count 1\n"
        f"get {APP} notes a --text\n"
    )
    done = kvr("shell", home=home, stdin=text.encode())
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode().splitlines()
    assert json.loads(out[0])["error"]["exit_code"] == 2  # --json: the error on stdout
    assert json.loads(out[1])["kind"] == "expire"
    assert out[2] == "1"


def test_a_change_line_in_each_format() -> None:
    assert change_line(7, "set", b"k\n", b"\xff", Format.TEXT, msgpack_values=False) == (
        b'7\tset\t"k\\n"\t0xff\n'
    )
    assert change_line(7, "expire", b"k", None, Format.HEX, msgpack_values=False) == (
        b"7\texpire\t6b\n"
    )
    assert change_line(8, "set", b"k", b"v", Format.RAW, msgpack_values=False) == b"8\tset\tk\tv\n"
    assert json.loads(
        change_line(9, "delete", b"\xff", None, Format.JSON, msgpack_values=False)
    ) == {"seq": 9, "kind": "delete", "key": {"hex": "ff"}, "value": None}


def test_ctrl_c_in_the_shell_stops_a_watch_and_the_prompt_comes_back(home: Path) -> None:
    fill(home, "notes", [(b"k", b"still-here")])
    with on_a_terminal(home) as (shell, controller, seen):
        read_until(controller, b"kvruntime>", seen)
        os.write(controller, f"watch {APP} notes --snapshot\r".encode())
        read_until(controller, b"snapshot\tk\tstill-here", seen)  # the watch is under way
        interrupt_and_go_on(shell, controller, seen)
    assert b"Traceback" not in seen
