"""Issue 15's defects, each as a new user met it: grants left behind, loads that write before
they refuse, a quick bench over the committed results, run on a home in use, Ctrl-C, ..."""

from __future__ import annotations

import json
from pathlib import Path

from anyio.from_thread import start_blocking_portal

from kvruntime import Runtime
from kvruntime.cli._dumpformat import end_line, header_line, record_line

from .conftest import APP, fail, fill, kvr, ok, read, script

CHECKOUT = Path(__file__).resolve().parents[3]


def _grants(home: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for line in ok(kvr("caps", "--all", "--json", home=home)).split("\n")
        if line
    ]


def test_commands_leave_no_grant_behind(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    before = _grants(home)
    for args in (
        ["get", APP, "notes", "k"],
        ["get", "nobody:nowhere.os", "notes", "k"],
        ["scan", APP, "notes"],
        ["set", APP, "notes", "k2", "v2"],
        ["set", APP, "fresh", "k", "v", "--create"],
        ["dump", APP, "notes"],
        ["ls"],
        [
            "send",
            json.dumps({"package_id": APP, "db": "notes", "action": {"Get": "6b"}}),
            "--as",
            f"spy:{APP}",
        ],
    ):
        kvr(*args, home=home)
        assert _grants(home) == before, args


def test_send_keeps_what_its_request_granted(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")])
    opened = json.dumps({"package_id": APP, "db": "notes", "action": "Open"})
    ok(kvr("send", opened, "--as", f"app2:{APP}", home=home))
    rows = [r for r in _grants(home) if r["process"] == f"app2:{APP}"]
    assert rows == [
        {"process": f"app2:{APP}", "package": APP, "db": "notes", "rights": ["read", "write"]}
    ]  # no "message" right on kv left


def test_a_refused_load_creates_and_writes_nothing(home: Path) -> None:
    good = header_line(APP, "x") + b"".join(record_line(b"k%d" % i, b"v") for i in range(3))
    v2 = header_line(APP, "x").replace(b'"version":1', b'"version":2')
    for data, why in [
        (b"", "line 1: the input is empty"),
        (b'{"format": "other"}\n', "line 1:"),
        (v2, "version 2 is not supported"),
        (b"garbage\n", "line 1: not JSON"),
        (good, "line 5: the dump ends without its trailer"),
        (good + end_line(3) + record_line(b"late", b"v"), "line 6: data after the trailer"),
    ]:
        fail(kvr("load", APP, "dst", "--create", home=home, stdin=data), 2, why)
        assert not home.exists(), why  # not even the home
    fill(home, "dst", [(b"keep", b"me")])
    late = good + end_line(3) + record_line(b"late", b"v")
    fail(kvr("load", APP, "dst", home=home, stdin=late), 2, "data after the trailer")
    assert read(home, "dst", [b"k0", b"keep"]) == {b"k0": None, b"keep": b"me"}


def test_one_entry_is_one_chunk(home: Path) -> None:
    data = header_line(APP, "x") + record_line(b"a", b"1") + end_line(1)
    out = ok(kvr("load", APP, "dst", "--create", home=home, stdin=data))
    assert out == f"loaded 1 entry into [{APP}, dst] in 1 chunk\n"
    assert f"dumped 1 entry of [{APP}, dst]" in kvr("dump", APP, "dst", home=home).stderr.decode()


def test_set_create_refuses_a_folder_that_is_no_home(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8")
    fail(kvr("set", APP, "n", "k", "v", "--create", home=folder), 3, "not a kvruntime home")
    assert sorted(p.name for p in folder.iterdir()) == ["cat.jpg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(kvr("set", APP, "n", "k", "v", "--create", home=empty))
    ok(kvr("set", APP, "n", "k", "v", "--create", home=empty))  # a home now: fine


def test_send_dash_reads_the_json_from_stdin(home: Path) -> None:
    opened = json.dumps({"package_id": APP, "db": "notes", "action": "Open"})
    assert ok(kvr("send", "-", "--text", home=home, stdin=opened.encode())) == '"Ok"\n'


def test_bench_help_shows_the_benchmarks_options() -> None:
    out = ok(script("bench", "--help", home=None, cwd=CHECKOUT))
    assert "kvruntime bench --quick" in out
    assert "--only" in out  # python -m benchmarks's own options
    assert "--loop" in out


def test_run_on_a_home_in_use_exits_3_before_the_demo(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1")])
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(Runtime(home=home)),
    ):
        result = script("run", "--home", str(home), home=None, cwd=CHECKOUT)
    fail(result, 3, f"home {home} is in use by another runtime")
    assert result.stdout == b""  # no introduction
