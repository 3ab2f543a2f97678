"""ls, caps, repair, and a home in use by a running runtime."""

from __future__ import annotations

import json
from pathlib import Path

from anyio.from_thread import start_blocking_portal

from kvruntime import Runtime

from .conftest import APP, fail, fill, kvr, ok, read


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
    # The runtime runs on an event loop in another thread, as another program would.
    with (
        start_blocking_portal(backend="asyncio") as portal,
        portal.wrap_async_context_manager(Runtime(home=home)),
    ):
        for args in (["get", APP, "notes", "a"], ["repair", APP, "notes", "--yes"], ["caps"]):
            result = kvr(*args, "--home", str(home), home=None)
            fail(result, 3, f"home {home} is in use by another runtime")
    assert read(home, "notes", [b"a"]) == {b"a": b"1"}


def _db_dir(home: Path, db: str) -> Path:
    return home / "kv" / APP / db


ENTRIES = {b"key:%04d" % i: b"value %04d " % i * 10 for i in range(300)}


def test_repair_recovers_a_db_whose_manifest_is_garbled(home: Path) -> None:
    fill(home, "notes", ENTRIES.items())
    fill(home, "other", [(b"k", b"v")])
    (manifest,) = _db_dir(home, "notes").glob("MANIFEST-*")
    manifest.write_bytes(b"not a LevelDB manifest\n")
    for args in (["get", APP, "notes", "key:0001"], ["scan", APP, "notes"], ["dump", APP, "notes"]):
        broken = kvr(*args, home=home)
        fail(broken, 1, f"kv:distro:sys answered LevelDbError: [{APP}, notes] Corruption:")
        assert "kvruntime repair PACKAGE DB" in broken.stderr.decode()
        assert broken.stdout == b""
    listed = kvr("ls", home=home)  # the other dbs are still listed
    assert "other" in ok(listed)
    assert "unreadable" in listed.stdout.decode()
    assert f"unreadable: LevelDbError: [{APP}, notes] Corruption:" in listed.stderr.decode()
    (row,) = [
        r
        for r in map(json.loads, ok(kvr("ls", "--json", home=home)).splitlines())
        if r["keys"] is None
    ]
    assert row["db"] == "notes"
    assert row["error"].startswith(f"LevelDbError: [{APP}, notes] Corruption:")
    assert f"repaired [{APP}, notes]: 300 keys readable" in ok(
        kvr("repair", APP, "notes", "--yes", home=home)
    )
    assert read(home, "notes", ENTRIES) == ENTRIES  # the log and tables held everything
    assert (
        ok(kvr("get", APP, "notes", "key:0299", "--text", home=home))
        == ENTRIES[b"key:0299"].decode() + "\n"
    )


def test_repair_keeps_what_a_garbled_table_still_holds(home: Path) -> None:
    fill(home, "notes", ENTRIES.items())
    read(home, "notes", [])  # reopening turns the log into a table file
    (table,) = _db_dir(home, "notes").glob("*.ldb")
    data = bytearray(table.read_bytes())
    data[100:400] = bytes(b ^ 0xFF for b in data[100:400])  # inside the first data block
    table.write_bytes(bytes(data))
    broken = kvr("scan", APP, "notes", home=home)
    fail(broken, 1, f"kv:distro:sys answered LevelDbError: [{APP}, notes] Corruption:")
    fail(kvr("get", APP, "notes", "key:0000", home=home), 1, "Corruption:")
    repaired = ok(kvr("repair", APP, "notes", "--yes", home=home))
    scanned = ok(kvr("scan", APP, "notes", "--text", home=home))
    survivors = [line.split("\t") for line in scanned.splitlines()]
    assert f"repaired [{APP}, notes]: {len(survivors)} keys readable" in repaired
    assert 0 < len(survivors) < len(ENTRIES)  # the damaged block's entries are gone
    for key, value in survivors:  # and every other entry reads back unchanged
        assert ENTRIES[key.encode()] == value.encode()
    fail(kvr("get", APP, "notes", "key:0000", home=home), 1, "key key:0000 not found")
