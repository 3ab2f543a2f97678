"""Scan pages at their boundaries, on every engine, through the client.

Keys and values of varied sizes, empty values and the largest key and value
allowed among them: every scan form reads every entry once, in order, and
every page is cut where the rule says (at most ``max_scan_items`` entries;
before the entry that would take it past ``max_scan_bytes``, a first entry
whatever its size).
"""

from __future__ import annotations

import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from protocol.ids import PackageId
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")
MAX_KEY, MAX_VALUE, ITEMS, PAGE_BYTES = 64, 4096, 7, 5000


@pytest.fixture
def config() -> KvConfig:
    return KvConfig(
        max_key_bytes=MAX_KEY,
        max_value_bytes=MAX_VALUE,
        max_scan_items=ITEMS,
        max_scan_bytes=PAGE_BYTES,
        max_batch_items=100,
    )


def entries() -> dict[bytes, bytes]:
    made: dict[bytes, bytes] = {}
    for i in range(60):
        key = b"k%02d" % i + b"x" * (MAX_KEY - 3 if i % 13 == 5 else i % 4)
        size = [0, 1, 255, 256, MAX_VALUE, 1000, 0, 17][i % 8]
        made[key] = bytes([i]) * size
    return made


def expected_pages(ordered: list[tuple[bytes, bytes]], keys_only: bool) -> list[list[bytes]]:
    """The keys of each page, by the rule, one entry at a time."""
    pages: list[list[bytes]] = []
    page: list[bytes] = []
    size = 0
    for key, value in ordered:
        entry = len(key) + (0 if keys_only else len(value))
        if len(page) == ITEMS or (page and size + entry > PAGE_BYTES):
            pages.append(page)
            page, size = [], 0
        page.append(key)
        size += entry
    if page:
        pages.append(page)
    return pages


@pytest.mark.usefixtures("scan_path")
async def test_pages_of_varied_sizes_are_cut_by_the_rule(runtime: Runtime) -> None:
    data = entries()
    ordered = sorted(data.items())

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set_many(list(data.items()))
        assert [item async for item in db.scan()] == ordered
        assert [item async for item in db.scan(reverse=True)] == ordered[::-1]
        assert [key async for key in db.keys()] == [key for key, _ in ordered]
        pages = [page async for page in db.scan_pages()]
        assert [[k for k, _ in p.items] for p in pages] == expected_pages(ordered, False)
        assert [item for page in pages for item in page.items] == ordered
        assert [p.cursor for p in pages] == [p.items[-1][0] for p in pages[:-1]] + [None]
        # keys only: the same rule on the keys' bytes alone
        cursor: bytes | None = None
        keys_pages: list[list[bytes]] = []
        while True:
            page = await db.list_page(keys_only=True, cursor=cursor)
            assert all(value is None for _, value in page.items)
            keys_pages.append([key for key, _ in page.items])
            if page.cursor is None:
                break
            cursor = page.cursor
        assert keys_pages == expected_pages(ordered, True)
        # a prefix holding only the largest entries: one entry per page when two overflow
        big = [(k, v) for k, v in ordered if len(v) == MAX_VALUE]
        await db.delete_range(prefix=b"k")
        await db.set_many([(b"z" + k[1:], v) for k, v in big])
        pages = [page async for page in db.scan_pages(prefix=b"z")]
        assert [len(p.items) for p in pages] == [1] * len(big)
        assert [item for p in pages for item in p.items] == [(b"z" + k[1:], v) for k, v in big]

    await run_as(runtime, APP, body)
