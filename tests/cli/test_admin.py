"""ls, caps, repair, and a home in use by a running runtime."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from kvruntime import Runtime

from .conftest import APP, KVRUNTIME, fail, fill, kvr, ok, read


def test_caps_lists_holders_per_db(home: Path) -> None:
    fill(home, "notes", [(b"k", b"v")], process=f"writer:{APP}")
    fill(home, "other", [], process=f"second:{APP}")
    rows = [json.loads(line) for line in ok(kvr("caps", "--json", home=home)).splitlines()]
    assert {
        "process": f"writer:{APP}",
        "package": APP,
        "db": "notes",
        "rights": ["read", "write"],
    } in rows
    assert {
        "process": f"second:{APP}",
        "package": APP,
        "db": "other",
        "rights": ["read", "write"],
    } in rows
    assert all(row["db"] for row in rows)  # messaging capabilities only with --all
    table = ok(kvr("caps", "--all", home=home))
    assert f"writer:{APP}" in table
    assert "our.os@kv:distro:sys" in table
    assert "message" in table
    assert ok(kvr("caps", "--package", "nobody:x.os", home=home)) == "no capabilities held\n"
    fail(kvr("caps", "--package", "BAD", home=home), 2, "bad package id")


def test_ls_lists_dbs_with_sizes_and_key_counts(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    fill(home, "empty", [])
    rows = [json.loads(line) for line in ok(kvr("ls", "--json", home=home)).splitlines()]
    assert [(r["package"], r["db"], r["keys"]) for r in rows] == [
        (APP, "empty", 0),
        (APP, "notes", 3),
    ]
    assert all(r["bytes"] > 0 for r in rows)
    table = ok(kvr("ls", "--max-count", "2", home=home))
    assert "notes" in table
    assert ">= 2" in table


def test_repair_warns_asks_and_keeps_a_healthy_db(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1"), (b"b", b"2")])
    refused = kvr("repair", APP, "notes", home=home)
    fail(refused, 2, "refusing to repair without --yes")
    assert "entries in damaged" in refused.stderr.decode()
    assert "repaired" in ok(kvr("repair", APP, "notes", "--yes", home=home))
    assert read(home, "notes", [b"a", b"b"]) == {b"a": b"1", b"b": b"2"}
    fail(kvr("repair", APP, "nope", "--yes", home=home), 1, "does not exist")


def test_a_home_in_use_by_a_running_runtime_is_refused(home: Path) -> None:
    fill(home, "notes", [(b"a", b"1")])

    async def while_running() -> None:
        async with Runtime(home=home):
            for args in (["get", APP, "notes", "a"], ["repair", APP, "notes", "--yes"], ["caps"]):
                result = await anyio.run_process(
                    [KVRUNTIME, *args, "--home", str(home)], check=False
                )
                err = result.stderr.decode()
                assert result.returncode == 3, err
                assert f"home {home} is in use by another runtime" in err
                assert "Traceback" not in err

    anyio.run(while_running, backend="asyncio")
    assert read(home, "notes", [b"a"]) == {b"a": b"1"}
