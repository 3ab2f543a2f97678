"""The in-memory engine's stores beside LevelDB's: the same Store answers, snapshots included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvruntime import Runtime
from kvruntime.storage.databases import Databases
from kvruntime.storage.engine import Engine, NoSuchDb
from kvruntime.storage.memory import MemoryEngine
from kvruntime.storage.store import StoreError
from protocol.blobs import decode_scan_page
from protocol.ids import IdError, PackageId
from protocol.messages import LevelDbError

PKG = PackageId(package_name="pkg", publisher_node="pub.os")


@pytest.fixture(params=["leveldb", "memory"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    made: Engine = Databases(tmp_path / "kv") if request.param == "leveldb" else MemoryEngine()
    yield made
    made.close_all()


def test_iterate_and_read_page_read_one_snapshot(engine: Engine) -> None:
    store = engine.open(PKG, "db", create=True)
    store.write([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    entries = store.iterate()
    assert next(entries) == (b"a", b"1")
    store.write([(b"b", None), (b"bb", b"new"), (b"c", b"changed")])
    assert list(entries) == [(b"b", b"2"), (b"c", b"3")]  # the snapshot of the call
    blob, count, last, more = store.read_page(
        start=b"b", stop=None, reverse=True, include_value=True, limit=5, max_bytes=99
    )
    assert (count, last, more) == (2, b"bb", False)
    assert decode_scan_page(blob, count, keys_only=False) == [(b"c", b"changed"), (b"bb", b"new")]
    assert list(store.iterate(prefix=b"b", include_value=False)) == [b"bb"]


def test_a_batch_whose_ops_raise_writes_nothing(engine: Engine) -> None:
    store = engine.open(PKG, "db", create=True)

    def ops() -> Iterator[tuple[bytes, bytes | None]]:
        yield b"a", b"1"
        raise ValueError("bad op")

    with pytest.raises(ValueError, match="bad op"):
        store.write(ops())
    assert store.get(b"a") is None


def test_dbs_exist_from_create_until_remove(engine: Engine) -> None:
    with pytest.raises(NoSuchDb):
        engine.open(PKG, "db", create=False)
    with pytest.raises(IdError):
        engine.open(PKG, "bad/name", create=True)
    assert not engine.exists(PKG, "db")
    store = engine.open(PKG, "db", create=True)
    store.write([(b"k", b"v")])
    engine.discard(store)  # the data stays; the next open serves it
    assert engine.open(PKG, "db", create=False).get(b"k") == b"v"
    assert engine.list_dbs() == [(PKG, "db")]
    assert engine.remove(PKG, "db") is True
    assert engine.remove(PKG, "db") is False
    assert engine.list_dbs() == []
    assert engine.open(PKG, "db", create=True).get(b"k") is None


def test_a_closed_memory_store_refuses_every_call() -> None:
    engine = MemoryEngine()
    store = engine.open(PKG, "db", create=True)
    entries = store.iterate()
    engine.close_all()
    closed = LevelDbError(message="[pkg:pub.os, db] store is closed")
    for call in (
        lambda: store.get(b"a"),
        lambda: store.write([(b"a", b"2")]),
        lambda: next(entries),
    ):
        with pytest.raises(StoreError) as caught:
            call()
        assert caught.value.error == closed
    assert engine.list_dbs() == []


def test_an_unknown_storage_is_a_value_error(tmp_path: Path) -> None:
    for bad in ("rocksdb", "memcached://127.0.0.1:11211", ""):
        with pytest.raises(ValueError, match="unknown storage"):
            Runtime(home=tmp_path, storage=bad)
    assert Runtime(home=tmp_path).storage is None  # LevelDB under home


@pytest.mark.anyio
async def test_db_path_is_a_value_error_on_the_memory_engine(tmp_path: Path) -> None:
    async with Runtime(home=tmp_path, storage="memory") as rt:
        with pytest.raises(ValueError, match="keeps no files"):
            rt.db_path(PKG, "db")
    async with Runtime(home=tmp_path / "l", storage="leveldb") as rt:
        assert rt.db_path(PKG, "db") == (tmp_path / "l" / "kv" / "pkg:pub.os" / "db").resolve()
