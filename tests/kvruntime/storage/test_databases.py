"""kvruntime.storage on a real LevelDB in tmp_path."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvruntime.storage.databases import Databases, NoSuchDb
from kvruntime.storage.leveldb import LevelDbStore
from kvruntime.storage.store import Store, StoreError
from protocol.ids import IdError, PackageId
from protocol.messages import IoError, LevelDbError

PKG = PackageId(package_name="pkg", publisher_node="pub.os")
OTHER = PackageId(package_name="other", publisher_node="pub.os")


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[Databases]:
    databases = Databases(tmp_path / "kv")
    yield databases
    databases.close_all()


@pytest.fixture
def store(dbs: Databases) -> Store:
    return dbs.open(PKG, "db", create=True)


def tree(root: Path) -> list[str]:
    """Every path under root, relative to it (empty when root is missing)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --- Store ----------------------------------------------------------------


def test_one_op_writes_set_and_delete(store: Store) -> None:
    assert store.get(b"k") is None
    store.write([(b"k", b"v")])
    store.write([(b"", b"empty key")])
    assert store.get(b"k") == b"v"
    assert store.get(b"") == b"empty key"
    store.write([(b"k", None)])
    store.write([(b"never there", None)])
    assert store.get(b"k") is None


def test_write_is_atomic_and_last_op_wins(store: Store) -> None:
    store.write([(b"gone", b"x")])
    store.write([(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"gone", None), (b"b", None)])
    assert (store.get(b"a"), store.get(b"b"), store.get(b"gone")) == (b"3", None, None)
    store.write([(b"c", b"1"), (b"c", None), (b"c", b"2")], sync=True)
    assert store.get(b"c") == b"2"

    def failing() -> Iterator[tuple[bytes, bytes | None]]:
        yield (b"x", b"staged")
        raise KeyError("producer failed")

    with pytest.raises(KeyError, match="producer failed"):
        store.write(failing())
    assert store.get(b"x") is None


def test_iterate(store: Store) -> None:
    store.write([(k, k.upper()) for k in (b"a", b"ab", b"abc", b"b", b"ba", b"c")])
    assert list(store.iterate(prefix=b"a")) == [(b"a", b"A"), (b"ab", b"AB"), (b"abc", b"ABC")]
    assert list(store.iterate(start=b"ab", stop=b"ba", include_value=False)) == [
        b"ab",
        b"abc",
        b"b",
    ]
    assert list(store.iterate(start=b"b", reverse=True, include_value=False)) == [
        b"c",
        b"ba",
        b"b",
    ]
    assert list(store.iterate(prefix=b"b", reverse=True)) == [(b"ba", b"BA"), (b"b", b"B")]
    assert list(store.iterate(prefix=b"z")) == []
    with pytest.raises(ValueError, match="not both"):
        store.iterate(prefix=b"a", start=b"a")


def test_iterate_reads_a_snapshot(store: Store) -> None:
    store.write([(b"a", b"1")])
    entries = store.iterate()
    store.write([(b"b", b"2")])
    assert list(entries) == [(b"a", b"1")]


def test_closed_store_raises_store_error(dbs: Databases, store: Store) -> None:
    store.write([(b"a", b"1")])
    entries = store.iterate()
    assert next(entries) == (b"a", b"1")
    dbs.close_all()
    assert store.closed
    for call in (
        lambda: store.get(b"a"),
        lambda: store.write([(b"a", b"2")]),
        lambda: next(entries),
    ):
        with pytest.raises(StoreError, match=r"\[pkg:pub.os, db\] store is closed") as info:
            call()
        assert isinstance(info.value.error, LevelDbError)
    store.close()  # idempotent


def test_sync_writes(tmp_path: Path) -> None:
    dbs = Databases(tmp_path / "kv", sync_writes=True)
    store = dbs.open(PKG, "db", create=True)
    store.write([(b"a", b"1")])
    store.write([(b"b", b"2")])
    store.write([(b"a", None)])
    assert list(store.iterate()) == [(b"b", b"2")]
    dbs.close_all()


def test_leveldb_store_open_without_create_touches_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"\[x\] .*does not exist"):
        LevelDbStore.open(tmp_path / "missing", label="x", create=False)
    assert tree(tmp_path) == []


# --- Databases --------------------------------------------------------------


def test_layout_and_list(dbs: Databases) -> None:
    dbs.open(PKG, "db", create=True)
    dbs.open(OTHER, "db", create=True)
    assert (dbs.root / "pkg:pub.os" / "db" / "CURRENT").is_file()
    assert dbs.path_for(PKG, "db") == dbs.root / "pkg:pub.os" / "db"
    (dbs.root / "not an id" / "db").mkdir(parents=True)
    (dbs.root / "pkg:pub.os" / "empty").mkdir()
    assert dbs.list_dbs() == [(OTHER, "db"), (PKG, "db")]


def test_list_dbs_without_root(dbs: Databases) -> None:
    assert dbs.list_dbs() == []


def test_a_capability_for_one_package_is_not_another_packages_db(dbs: Databases) -> None:
    dbs.open(PKG, "db", create=True).write([(b"k", b"pkg")])
    dbs.open(OTHER, "db", create=True).write([(b"k", b"other")])
    assert dbs.open(PKG, "db", create=False).get(b"k") == b"pkg"


def test_lru_eviction_and_reopen(tmp_path: Path) -> None:
    dbs = Databases(tmp_path / "kv", max_open=2)
    a = dbs.open(PKG, "a", create=True)
    b = dbs.open(PKG, "b", create=True)
    a.write([(b"k", b"a")])
    b.write([(b"k", b"b")])
    assert dbs.get(PKG, "a") is a  # a is now the most recently used
    c = dbs.open(PKG, "c", create=True)
    assert b.closed
    assert not a.closed
    assert not c.closed
    assert dbs.get(PKG, "b") is None
    assert dbs.exists(PKG, "b")  # closed, still on disk
    reopened = dbs.open(PKG, "b", create=False)
    assert reopened is not b
    assert reopened.get(b"k") == b"b"
    assert a.closed  # a was used less recently than c
    assert not c.closed
    assert dbs.open(PKG, "a", create=False).get(b"k") == b"a"
    dbs.close_all()
    assert reopened.closed


def test_max_open_is_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_open"):
        Databases(tmp_path, max_open=0)


def test_exists_through_open_and_remove(dbs: Databases) -> None:
    assert not dbs.exists(PKG, "db")
    store = dbs.open(PKG, "db", create=True)
    assert dbs.exists(PKG, "db")
    dbs.close_all()
    assert dbs.exists(PKG, "db")
    assert dbs.remove(PKG, "db")
    assert store.closed
    assert not dbs.exists(PKG, "db")


def test_open_missing_without_create_raises_and_creates_nothing(dbs: Databases) -> None:
    with pytest.raises(NoSuchDb, match=r"db \[pkg:pub.os, db\] does not exist"):
        dbs.open(PKG, "db", create=False)
    assert tree(dbs.root) == []
    dbs.open(PKG, "other", create=True)
    before = tree(dbs.root)
    with pytest.raises(NoSuchDb):
        dbs.open(PKG, "db", create=False)
    assert tree(dbs.root) == before


def test_remove_deletes_for_real(dbs: Databases) -> None:
    dbs.open(PKG, "a", create=True).write([(b"k", b"v")])
    dbs.open(PKG, "b", create=True)
    assert dbs.remove(PKG, "a")
    assert not (dbs.root / "pkg:pub.os" / "a").exists()
    assert dbs.get(PKG, "a") is None
    assert not dbs.remove(PKG, "a")
    assert dbs.remove(PKG, "b")
    assert tree(dbs.root) == []  # the empty package dir went too, and no trash is left
    assert dbs.open(PKG, "a", create=True).get(b"k") is None  # a new, empty db


def test_remove_sweeps_leftovers_of_an_earlier_run(dbs: Databases) -> None:
    leftover = dbs.root / ".removed-0000-0000"
    (leftover / "x").mkdir(parents=True)
    dbs.open(PKG, "db", create=True)
    assert dbs.remove(PKG, "db")
    assert tree(dbs.root) == []


@pytest.mark.parametrize("name", ["..", ".", "/", "a/b", "a\\b", "nul\0", "", "x" * 256])
def test_invalid_db_names_are_rejected_and_touch_nothing(dbs: Databases, name: str) -> None:
    with pytest.raises(IdError):
        dbs.path_for(PKG, name)
    with pytest.raises(IdError):
        dbs.open(PKG, name, create=True)
    with pytest.raises(IdError):
        dbs.exists(PKG, name)
    with pytest.raises(IdError):
        dbs.remove(PKG, name)
    assert tree(dbs.root.parent) == []


def test_a_symlink_out_of_root_is_refused(dbs: Databases, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dbs.root.mkdir()
    (dbs.root / "pkg:pub.os").symlink_to(outside)
    with pytest.raises(StoreError, match="outside the kv root"):
        dbs.open(PKG, "db", create=True)
    with pytest.raises(StoreError, match="outside the kv root"):
        dbs.remove(PKG, "db")
    assert list(outside.iterdir()) == []


def test_locked_db_gives_store_error_naming_the_db(dbs: Databases) -> None:
    path = dbs.path_for(PKG, "db")
    path.mkdir(parents=True)
    holder = plyvel.DB(str(path), create_if_missing=True)
    try:
        with pytest.raises(StoreError, match=r"\[pkg:pub.os, db\]") as info:
            dbs.open(PKG, "db", create=False)
    finally:
        holder.close()
    assert isinstance(info.value.error, IoError | LevelDbError)
    assert "LOCK" in info.value.error.message
    assert str(dbs.root) not in str(info.value)  # the file-system location stays private
    assert dbs.open(PKG, "db", create=False).get(b"k") is None  # free again


def test_corrupt_db_gives_store_error_and_others_still_work(dbs: Databases) -> None:
    dbs.open(PKG, "bad", create=True).write([(b"k", b"kept")])
    dbs.open(PKG, "good", create=True)
    dbs.close_all()
    (dbs.path_for(PKG, "bad") / "CURRENT").write_bytes(b"\xffgarbage")
    assert dbs.exists(PKG, "bad")
    with pytest.raises(StoreError, match=r"\[pkg:pub.os, bad\] Corruption") as info:
        dbs.open(PKG, "bad", create=False)
    assert isinstance(info.value.error, LevelDbError)
    assert str(info.value) == f"LevelDB internal error: {info.value.error.message}"
    good = dbs.open(PKG, "good", create=False)
    good.write([(b"k", b"v")])
    assert good.get(b"k") == b"v"
    dbs.repair(PKG, "bad")
    assert dbs.open(PKG, "bad", create=False).get(b"k") == b"kept"


def test_repair_of_missing_db(dbs: Databases) -> None:
    with pytest.raises(NoSuchDb):
        dbs.repair(PKG, "db")
    assert tree(dbs.root) == []


# --- threads ----------------------------------------------------------------


def test_concurrent_opens_share_one_store(dbs: Databases) -> None:
    opened: list[Store] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        opened.append(dbs.open(PKG, "db", create=True))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 8
    assert all(store is opened[0] for store in opened)


def test_lock_free_gets_never_break_other_threads_opens_evictions_and_discards(
    tmp_path: Path,
) -> None:
    """``get`` takes no lock (invariant 3): while one thread gets and reorders the LRU
    as fast as it can, others open past the bound (evicting) and discard stores.
    Nothing raises (had ``get`` changed the size of a dict another thread iterates,
    that thread would raise RuntimeError), and the LRU holds open stores only."""
    dbs = Databases(tmp_path / "kv", max_open=40)
    names = [f"db{i}" for i in range(48)]
    for name in names:
        dbs.open(PKG, name, create=True)
    stop = threading.Event()
    failures: list[BaseException] = []
    gets = [0]

    def getter() -> None:
        try:
            while not stop.is_set():
                for name in names:
                    if dbs.get(PKG, name) is not None:
                        gets[0] += 1
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    def churn(discarding: bool) -> None:
        try:
            for round_ in range(400):
                store = dbs.open(PKG, names[round_ % len(names)], create=False)
                if discarding and round_ % 3 == 0:
                    dbs.discard(store)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython can: races show
    try:
        reader = threading.Thread(target=getter)
        reader.start()
        churners = [threading.Thread(target=churn, args=(flag,)) for flag in (False, True)]
        for thread in churners:
            thread.start()
        for thread in churners:
            thread.join()
        stop.set()
        reader.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert gets[0] > 0
    dbs.evict(keep=())
    assert dbs.open_count <= 40
    open_now = [store for name in names if (store := dbs.get(PKG, name)) is not None]
    assert len(open_now) == dbs.open_count
    assert not any(store.closed for store in open_now)


def test_closing_from_other_threads_never_breaks_a_caller(tmp_path: Path) -> None:
    """Other threads' opens evict and close the store this thread is writing to.

    Every call either completes or raises StoreError("store is closed"): the
    keys on disk afterwards are exactly those of the writes that returned (none
    lost, none half-done), and nothing crashes (plyvel would free the DB under
    a call in flight). Every tenth round waits until the churn has closed its
    store, so the closed path is certainly taken; the other rounds race it.
    """
    dbs = Databases(tmp_path / "kv", max_open=2)
    names = [f"db{i}" for i in range(4)]
    for name in names:
        dbs.open(PKG, name, create=True)
    stop = threading.Event()
    failures: list[BaseException] = []

    def churn() -> None:
        try:
            while not stop.is_set():
                for name in names:
                    dbs.open(PKG, name, create=False)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for thread in threads:
        thread.start()
    written: dict[str, set[bytes]] = {name: set() for name in names}
    refused: list[StoreError] = []
    try:
        for i in range(200):
            name = names[i % 4]
            # Deliberately keeps the store over many calls, as invariant 3 forbids.
            store = dbs.open(PKG, name, create=False)
            if i % 10 == 0:
                deadline = time.monotonic() + 30
                while not store.closed:
                    assert time.monotonic() < deadline, "the churn never closed the store"
                    time.sleep(0.001)
            for j in range(20):
                key = b"%d-%d" % (i, j)
                try:
                    store.write([(key, b"v" * 1000)])
                except StoreError as exc:
                    refused.append(exc)
                else:
                    written[name].add(key)
                try:
                    list(store.iterate(include_value=False))
                except StoreError as exc:
                    refused.append(exc)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert len(refused) >= 20 * 20  # at least the rounds that waited for the close
    assert {exc.error for exc in refused} <= {
        LevelDbError(message=f"[pkg:pub.os, {name}] store is closed") for name in names
    }
    dbs.close_all()
    for name in names:
        stored = set(dbs.open(PKG, name, create=False).iterate(include_value=False))
        assert stored == written[name]
    dbs.close_all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["open", "get", "discard"]), st.sampled_from("abcd"))))
def test_the_open_dbs_follow_a_reference_lru(ops: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dbs = Databases(Path(tmp) / "kv", max_open=2)
        model: OrderedDict[str, None] = OrderedDict()  # open dbs, least recently used first
        try:
            for op, name in ops:
                if op == "open":
                    dbs.open(PKG, name, create=True)
                elif op == "get":
                    assert (dbs.get(PKG, name) is not None) == (name in model)
                elif name in model:
                    dbs.discard(dbs._stores[PKG, name])
                    del model[name]
                if op != "discard" and (op == "open" or name in model):
                    model[name] = None
                    model.move_to_end(name)
                    while len(model) > 2:
                        model.popitem(last=False)
                assert [db for _, db in dbs._lru()] == list(model)
        finally:
            dbs.close_all()


def test_get_never_hands_back_a_store_that_left(tmp_path: Path) -> None:
    """``get`` finds a store by the PackageId object it has seen (invariant 3): a
    store evicted, discarded or removed is gone for it too, by any equal PackageId."""
    dbs = Databases(tmp_path / "kv", max_open=1)
    twin = PackageId(package_name="pkg", publisher_node="pub.os")
    a = dbs.open(PKG, "a", create=True)
    assert dbs.get(PKG, "a") is a
    assert dbs.get(twin, "a") is a
    dbs.open(PKG, "b", create=True)  # evicts a
    assert dbs.get(PKG, "a") is None
    b = dbs.get(PKG, "b")
    assert b is not None
    dbs.discard(b)
    assert dbs.get(PKG, "b") is None
    c = dbs.open(PKG, "b", create=False)
    assert dbs.get(PKG, "b") is c
    assert dbs.remove(PKG, "b")
    assert dbs.get(PKG, "b") is None
    dbs.close_all()
