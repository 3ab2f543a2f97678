"""Batches and page-wise scans through the client, as a program uses them.

The checks a batch passes on its way out (its pairs, their sizes) and the
page-wise form of a scan (``scan_pages``), against what ``scan`` reads.
"""

from __future__ import annotations

import array
import ctypes
import mmap
from typing import Any

import pytest

from kvruntime import ProcessContext, Runtime, kv
from protocol import messages as m
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

APP = "app:mine:pub.os"


async def test_a_batch_whose_values_add_up_past_the_limit_is_still_written(rt: Runtime) -> None:
    # 5 values of 8 bytes under a 10-byte limit: their total (40) is past it, each fits.
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "db", max_value_bytes=10, max_key_bytes=4)
        pairs = [(b"k%d" % i, b"value-%02d" % i) for i in range(5)]
        await db.set_many(pairs)  # the keys add up past 4 bytes too
        return await db.get_many([k for k, _ in pairs])

    assert await run_as(rt, APP, body) == [b"value-%02d" % i for i in range(5)]


async def test_a_batch_with_one_value_past_the_limit_is_refused_whole(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "db", max_value_bytes=10)
        with pytest.raises(kv.ValueTooLarge) as caught:
            await db.set_many([(b"a", b"short"), (b"b", b"eleven byte"), (b"c", b"x")])
        assert caught.value.error == m.ValueTooLarge(size=11, max=10)
        return await db.get_many([b"a", b"b", b"c"])

    assert await run_as(rt, APP, body) == [None, None, None]


async def test_a_batch_takes_bytes_like_values_and_names_any_other(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "db")
        bytes_like: list[tuple[bytes, Any]] = [
            (b"a", bytearray(b"1")),
            (b"b", memoryview(b"22")),
            (b"c", b"333"),
        ]
        await db.set_many(bytes_like)
        with pytest.raises(TypeError, match="value 1 must be bytes"):
            await db.set_many([(b"x", b"ok"), (b"y", "text")])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="item 0 must be a"):
            await db.set_many([b"ab"])  # type: ignore[list-item]
        return await db.get_many([b"a", b"b", b"c", b"x"])

    assert await run_as(rt, APP, body) == [b"1", b"22", b"333", None]


@pytest.mark.parametrize(
    "other",
    [array.array("b", [1, 2]), mmap.mmap(-1, 4), ctypes.create_string_buffer(3)],
    ids=lambda other: type(other).__name__,
)
async def test_a_batch_names_a_buffer_that_is_not_bytes_like_enough(
    rt: Runtime, other: object
) -> None:
    # Other buffer objects hold bytes too, and b"".join takes them: the client
    # still refuses them by name, as it does a str, in every batch form.
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "db")
        bad: list[Any] = [(b"a", b"1"), (b"b", other)]
        with pytest.raises(TypeError, match="value 1 must be bytes.*got " + type(other).__name__):
            await db.set_many(bad)
        with pytest.raises(TypeError, match="value 1 must be bytes"):
            await db.set_many(bad, ttl=60)
        with pytest.raises(TypeError, match="value 1 must be bytes"):
            await db.write_batch(bad)
        swapped: list[Any] = [(b"a", b"1"), (other, b"2")]
        with pytest.raises(TypeError, match="key 1 must be bytes"):
            await db.set_many(swapped)
        with pytest.raises(TypeError, match="key 1 must be bytes"):
            await db.write_batch(swapped)
        with pytest.raises(TypeError, match="key 1 must be bytes"):
            await db.get_many([b"a", other])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="key 1 must be bytes"):
            await db.delete_many([b"a", other])  # type: ignore[list-item]
        return await db.get_many([b"a", b"b"])

    assert await run_as(rt, APP, body) == [None, None]


@pytest.mark.usefixtures("scan_path")
async def test_scan_pages_reads_what_scan_reads_a_page_at_a_time(rt: Runtime) -> None:
    pairs = [(b"user:%04d" % i, b"v%d" % i) for i in range(250)]

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        await db.set_many([*pairs, (b"other", b"x")])
        pages = [page async for page in db.scan_pages(prefix=b"user:", page_size=100)]
        assert [len(page.items) for page in pages] == [100, 100, 50]
        assert [item for page in pages for item in page.items] == pairs
        assert [item async for item in db.scan(prefix=b"user:")] == pairs
        assert pages[0].cursor == b"user:0099"
        assert pages[-1].cursor is None
        backwards = [page async for page in db.scan_pages(prefix=b"user:", reverse=True)]
        assert [item for page in backwards for item in page.items] == pairs[::-1]
        assert [page async for page in db.scan_pages(prefix=b"nobody:")] == []
        await db.set_many([(b"json:a", b"[1]"), (b"json:b", b'{"x": 2}')])
        typed = db.typed(kv.BYTES, kv.JSON)
        [page] = [page async for page in typed.scan_pages(prefix=b"json:")]
        assert page.items == [(b"json:a", [1]), (b"json:b", {"x": 2})]

    await run_as(rt, APP, body)
