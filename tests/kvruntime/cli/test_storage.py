"""``--storage URL`` and ``$KVRUNTIME_STORAGE`` (issue 13): every command can run on
a Redis Cluster; the home keeps only the capability store then."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvruntime.storage.localcluster import free_ports

from .conftest import APP, COMMANDS, fail, kvr, ok


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "bench"])  # bench: no home
def test_every_command_takes_storage(command: str) -> None:
    assert "--storage URL" in ok(kvr(command, "--help", home=None))


def test_commands_on_a_cluster_before_or_after_the_command_or_from_the_environment(
    home: Path, redis_storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(kvr("set", APP, "notes", "a", "1", "--create", "--storage", redis_storage, home=home))
    ok(kvr("--storage", redis_storage, "set", APP, "notes", "b", "2", home=home))
    scanned = kvr("scan", APP, "notes", "--text", "--storage", redis_storage, home=home)
    assert ok(scanned) == "a\t1\nb\t2\n"
    assert "no dbs" in ok(kvr("ls", home=home))  # LevelDB under the home holds none
    assert not (home / "kv").exists()
    monkeypatch.setenv("KVRUNTIME_STORAGE", redis_storage)
    assert ok(kvr("incr", APP, "notes", "n", "5", home=home)) == "5\n"
    assert "notes" in ok(kvr("ls", home=home))


def test_an_unreachable_or_malformed_storage_is_a_clear_error(home: Path) -> None:
    ok(kvr("set", APP, "notes", "a", "1", "--create", home=home))
    port = free_ports(1)[0]
    down = kvr(
        "get", APP, "notes", "a", "--storage", f"redis-cluster://127.0.0.1:{port}", home=home
    )
    fail(down, 3, "storage unavailable")
    fail(
        kvr("get", APP, "notes", "a", "--storage", "redis-cluster://nowhere", home=home),
        2,
        "--storage",
    )


def test_repair_refuses_a_networked_storage(home: Path) -> None:
    ok(kvr("set", APP, "notes", "a", "1", "--create", home=home))
    url = "redis-cluster://127.0.0.1:7000"
    fail(kvr("repair", APP, "notes", "--yes", "--storage", url, home=home), 2, "not on --storage")
