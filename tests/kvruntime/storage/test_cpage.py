"""The C page builder (``storage/_cpage.c``) against its Python reference, ``fill_page_py``.

Both take the same entries (keys and values of every size from empty to
past a bin8/bin16 boundary) and the same bounds: the blob, its count, its
last key and ``more`` are identical, byte for byte; an iterator that fails,
or an entry of the wrong type, fails both alike. Many calls on a real
LevelDB hold no memory.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvruntime.storage import _cpage
from kvruntime.storage.leveldb import LevelDbStore
from kvruntime.storage.store import HAVE_C_PAGE, fill_page, fill_page_py
from protocol.blobs import decode_scan_page

sizes = st.integers(0, 300) | st.sampled_from([255, 256, 65535, 65536, 70000])
entries = st.lists(st.tuples(sizes, sizes), max_size=60).map(
    lambda lens: [(b"%04d" % i + b"k" * k, b"v" * v) for i, (k, v) in enumerate(lens)]
)


def test_the_c_twin_is_built() -> None:
    # `pip install -e .` builds it here: a silently failed build would go unnoticed.
    assert HAVE_C_PAGE


@settings(max_examples=400)
@given(
    entries,
    st.booleans(),
    st.integers(-1, 70) | st.sampled_from([1000, 2**40]),
    st.integers(-1, 200_000) | st.sampled_from([0, 4 * 1024 * 1024, 2**62]),
)
def test_the_c_page_is_the_python_page(
    page: list[tuple[bytes, bytes]], include_value: bool, limit: int, max_bytes: int
) -> None:
    source: list[object] = list(page) if include_value else [key for key, _ in page]
    got = _cpage.fill_page(iter(source), include_value, limit, max_bytes)
    assert got == fill_page_py(iter(source), include_value, limit, max_bytes)
    blob, count, last, _ = got
    taken = decode_scan_page(blob, count, keys_only=not include_value)
    assert [key for key, _ in taken] == [key for key, _ in page[:count]]
    assert last == (page[count - 1][0] if count else None)


def failing(entries: list[object], error: Exception) -> Iterator[object]:
    yield from entries
    raise error


@pytest.mark.parametrize("fill", [_cpage.fill_page, fill_page_py], ids=["c", "python"])
def test_an_iterator_that_fails_fails_the_page(fill: object) -> None:
    error = OSError("disk")
    with pytest.raises(OSError, match="disk"):
        fill(failing([(b"a", b"1")], error), True, 10, 100)  # type: ignore[operator]


@pytest.mark.parametrize("fill", [_cpage.fill_page, fill_page_py], ids=["c", "python"])
@pytest.mark.parametrize(
    ("include_value", "entry"),
    [(True, (b"a", "text")), (True, ("a", b"1")), (True, (1, b"1")), (False, "a"), (False, 1)],
)
def test_entries_not_of_bytes_are_refused(fill: object, include_value: bool, entry: object) -> None:
    with pytest.raises(TypeError):
        fill(iter([entry]), include_value, 10, 100)  # type: ignore[operator]


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_many_pages_from_leveldb_hold_no_memory(tmp_path: Path) -> None:
    store = LevelDbStore.open(tmp_path / "db", label="test:cpage, db", create=True)
    try:
        store.write((b"%05d" % i, b"v" * (i % 300)) for i in range(2000))
        where = {"start": None, "stop": None, "reverse": False, "include_value": True}

        bounds = (1 << 20, 40_000)  # a page cut by count, one cut by bytes
        expected = [fill_page_py(store.iterate(), True, 1000, b)[1:] for b in bounds]

        def pages(rounds: int) -> None:
            for i in range(rounds):
                blob, count, last, more = store.read_page(
                    **where,  # type: ignore[arg-type]
                    limit=1000,
                    max_bytes=bounds[i % 2],
                )
                assert (count, last, more) == expected[i % 2]
                assert len(decode_scan_page(blob, count, keys_only=False)) == count

        pages(50)  # warm up the allocator, LevelDB's caches
        gc.collect()
        before, objects = rss_kib(), len(gc.get_objects())
        pages(3000)  # ~450 MB of pages built and decoded
        gc.collect()
        assert rss_kib() - before < 20 * 1024
        assert len(gc.get_objects()) - objects < 100
    finally:
        store.close()


def test_the_last_key_is_held_once() -> None:
    page = [(b"%03d" % i, b"v") for i in range(10)]
    last_key = page[4][0]
    refs = sys.getrefcount(last_key)
    for _ in range(1000):
        _, _, last, _ = fill_page(iter(page), True, 5, 1000)
        assert last is last_key
        del last
    assert sys.getrefcount(last_key) == refs
