"""Store.read_page against a plain reference: same entries, same cut, same ``more``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvruntime.storage.leveldb import LevelDbStore
from kvruntime.storage.store import PageRead, fill_page, fill_page_py
from protocol.blobs import decode_scan_page_py


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LevelDbStore]:
    path = Path(tmp_path_factory.mktemp("pages")) / "db"
    db = LevelDbStore.open(path, label="test:pages, db", create=True)
    # Keys 000..199, values of varied sizes (0 to ~5000 bytes), some large.
    db.write((b"%03d" % i, b"v" * ((i * 37) % 97 if i % 17 else 5000)) for i in range(200))
    yield db
    db.close()


def reference(
    store: LevelDbStore,
    start: bytes | None,
    stop: bytes | None,
    reverse: bool,
    include_value: bool,
    limit: int,
    max_bytes: int,
) -> tuple[list[tuple[bytes, bytes | None]], bool]:
    """The rule, one entry at a time: stop at ``limit``, or past ``max_bytes``
    (a first entry always goes in)."""
    everything = list(store.iterate(start=start, stop=stop, reverse=reverse))
    page: list[tuple[bytes, bytes | None]] = []
    size = 0
    for key, value in everything:
        if len(page) == limit:
            return page, True
        size += len(key) + (len(value) if include_value else 0)
        if page and size > max_bytes:
            return page, True
        page.append((key, value if include_value else None))
    return page, False


def read(store: LevelDbStore, **where: object) -> tuple[list[tuple[bytes, bytes | None]], bool]:
    """``read_page``'s entries, decoded from its page blob, checked against the
    count and last key it returns."""
    include_value = bool(where["include_value"])
    blob, count, last, more = store.read_page(**where)  # type: ignore[arg-type]
    page = decode_scan_page_py(blob, count, keys_only=not include_value)
    assert last == (page[-1][0] if page else None)
    return page, more


bounds = st.none() | st.integers(0, 205).map(lambda i: b"%03d" % i)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=bounds,
    stop=bounds,
    reverse=st.booleans(),
    include_value=st.booleans(),
    limit=st.integers(1, 250),
    max_bytes=st.integers(1, 40_000),
)
def test_read_page_cuts_where_the_rule_says(
    store: LevelDbStore,
    start: bytes | None,
    stop: bytes | None,
    reverse: bool,
    include_value: bool,
    limit: int,
    max_bytes: int,
) -> None:
    got = read(
        store,
        start=start,
        stop=stop,
        reverse=reverse,
        include_value=include_value,
        limit=limit,
        max_bytes=max_bytes,
    )
    assert got == reference(store, start, stop, reverse, include_value, limit, max_bytes)


def test_a_first_entry_over_the_byte_bound_is_still_returned(store: LevelDbStore) -> None:
    page, more = read(
        store, start=b"017", stop=None, reverse=False, include_value=True, limit=10, max_bytes=10
    )
    assert page == [(b"017", b"v" * 5000)]
    assert more


def test_a_lone_oversized_last_entry_reports_no_more(store: LevelDbStore) -> None:
    page, more = read(
        store, start=b"017", stop=b"018", reverse=False, include_value=True, limit=10, max_bytes=10
    )
    assert page == [(b"017", b"v" * 5000)]
    assert not more


@pytest.mark.parametrize("fill", [fill_page, fill_page_py], ids=["c", "python"])
@pytest.mark.parametrize("include_value", [True, False])
def test_a_page_reads_at_most_one_entry_past_itself(
    tmp_path: Path, include_value: bool, fill: Callable[..., PageRead]
) -> None:
    big = LevelDbStore.open(tmp_path / "db", label="test:pages, big", create=True)
    try:
        big.write((b"%05d" % i, b"v" * (i % 7)) for i in range(1500))
        pulled = 0

        def counted() -> Iterator[object]:
            nonlocal pulled
            for entry in big.iterate(include_value=include_value):  # type: ignore[call-overload]
                pulled += 1
                yield entry

        blob, count, last, more = fill(counted(), include_value, 1200, 1 << 20)
        assert (count, last, more) == (1200, b"01199", True)
        assert len(decode_scan_page_py(blob, 1200, keys_only=not include_value)) == 1200
        if fill is fill_page:  # the C twin reads exactly one past; Python reads ahead a chunk
            assert pulled == 1201
        assert pulled <= 1200 + 256
    finally:
        big.close()
