"""Store.read_page against a plain reference: same entries, same cut, same ``more``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvruntime.store import LevelDbStore


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
    got = store.read_page(
        start=start,
        stop=stop,
        reverse=reverse,
        include_value=include_value,
        limit=limit,
        max_bytes=max_bytes,
    )
    assert got == reference(store, start, stop, reverse, include_value, limit, max_bytes)


def test_a_first_entry_over_the_byte_bound_is_still_returned(store: LevelDbStore) -> None:
    page, more = store.read_page(
        start=b"017", stop=None, reverse=False, include_value=True, limit=10, max_bytes=10
    )
    assert page == [(b"017", b"v" * 5000)]
    assert more


def test_a_lone_oversized_last_entry_reports_no_more(store: LevelDbStore) -> None:
    page, more = store.read_page(
        start=b"017", stop=b"018", reverse=False, include_value=True, limit=10, max_bytes=10
    )
    assert page == [(b"017", b"v" * 5000)]
    assert not more
