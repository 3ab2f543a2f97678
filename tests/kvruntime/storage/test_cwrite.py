"""``storage/_cwrite.c``: a batch's ops handed to a write batch in C, as the Python loop does.

``apply`` is the loop of ``LevelDbStore.write``: the same calls in the same
order, the same exception stopping it, and a write batch that raised writes
nothing (the store is checked on a real LevelDB).
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvruntime.storage import _cwrite
from kvruntime.storage import leveldb as leveldb_module
from kvruntime.storage.leveldb import LevelDbStore


def test_the_extension_is_built_and_used() -> None:
    used = vars(leveldb_module)["_apply"]  # what LevelDbStore.write calls
    assert used is _cwrite.apply, "kvruntime.storage._cwrite is not built"


class _Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_at = fail_at

    def _record(self, call: tuple[Any, ...]) -> None:
        if len(self.calls) == self.fail_at:
            raise ValueError(f"refused call {self.fail_at}")
        self.calls.append(call)

    def put(self, key: bytes, value: bytes) -> None:
        self._record(("put", key, value))

    def delete(self, key: bytes) -> None:
        self._record(("delete", key))


def _python_loop(ops: list[tuple[bytes, bytes | None]], rec: _Recorder) -> None:
    for key, value in ops:
        if value is None:
            rec.delete(key)
        else:
            rec.put(key, value)


_ops = st.lists(st.tuples(st.binary(max_size=8), st.none() | st.binary(max_size=8)), max_size=30)


@given(_ops, st.none() | st.integers(0, 30))
def test_apply_makes_the_python_loops_calls(
    ops: list[tuple[bytes, bytes | None]], fail_at: int | None
) -> None:
    c, py = _Recorder(fail_at), _Recorder(fail_at)
    c_error = py_error = None
    try:
        _cwrite.apply(ops, c.put, c.delete)
    except ValueError as exc:
        c_error = str(exc)
    try:
        _python_loop(ops, py)
    except ValueError as exc:
        py_error = str(exc)
    assert (c.calls, c_error) == (py.calls, py_error)


def test_apply_refuses_what_is_no_list_of_pairs() -> None:
    rec = _Recorder()
    with pytest.raises(TypeError, match="op 1 is not a"):
        _cwrite.apply([(b"k", b"v"), (b"k",)], rec.put, rec.delete)  # type: ignore[list-item]
    assert rec.calls == [("put", b"k", b"v")]
    with pytest.raises(TypeError, match="must be a list"):
        _cwrite.apply(((b"k", b"v"),), rec.put, rec.delete)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="3 arguments"):
        _cwrite.apply([])  # type: ignore[call-arg]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LevelDbStore]:
    db = LevelDbStore.open(tmp_path / "db", label="test:cwrite, db", create=True)
    yield db
    db.close()


def test_a_batch_that_raises_midway_writes_nothing(store: LevelDbStore) -> None:
    store.write([(b"a", b"old"), (b"b", b"old")])
    bad: list[Any] = [(b"a", b"new"), (b"c", b"new"), ("b", b"new")]  # plyvel refuses a str
    with pytest.raises(TypeError):
        store.write(bad)
    assert list(store.iterate()) == [(b"a", b"old"), (b"b", b"old")]
    store.write([(b"a", None), (b"c", b"1"), (b"c", b"2")])  # later ops win
    assert list(store.iterate()) == [(b"b", b"old"), (b"c", b"2")]


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_hundred_thousand_applies_leak_nothing() -> None:
    ops: list[tuple[bytes, bytes | None]] = [
        (b"k%d" % i, b"v" if i % 2 else None) for i in range(8)
    ]
    sink: list[object] = []

    def put(key: bytes, value: bytes) -> object:
        return key + value  # a new object per call, which apply must release

    def failing(key: bytes) -> None:
        raise KeyError(key)

    def once() -> None:
        _cwrite.apply(ops, put, sink.append)
        sink.clear()
        with pytest.raises(KeyError):
            _cwrite.apply(ops, put, failing)

    for _ in range(1000):
        once()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(10_000):
            once()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024
    rss = _rss_kb()
    for _ in range(100_000):
        _cwrite.apply(ops, put, sink.append)
        sink.clear()
    assert _rss_kb() - rss < 8 * 1024
