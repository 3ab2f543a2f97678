"""Scans through the bus: ranges, order, bounded pages, cursors under concurrent writes."""

from __future__ import annotations

from typing import assert_type

import anyio
import anyio.lowlevel
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from kvruntime.client import Page
from tests.conftest import run_as

# Every scan here runs through both of the client's iterators (tests/conftest.py).
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("scan_path")]

OWNER = "app:demo:alice.os"


@pytest.fixture
def config() -> KvConfig:
    """Small page bounds so that a test crosses them quickly."""
    return KvConfig(max_scan_items=7, max_scan_bytes=300)


async def _filled(ctx: ProcessContext) -> kv.Kv[bytes, bytes]:
    db = await kv.open(ctx, ctx.package_id, "scan")
    await db.set_many({b"user:%02d" % i: b"v%d" % i for i in range(20)})
    await db.set_many({b"a": b"1", b"zz": b"2", b"user;": b"3", b"user": b"4"})
    return db


async def test_prefix_scan_is_ordered_and_exact(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[tuple[bytes, bytes]]:
        db = await _filled(ctx)
        return [item async for item in db.scan(prefix=b"user:")]

    items = await run_as(rt, OWNER, body)
    assert items == [(b"user:%02d" % i, b"v%d" % i) for i in range(20)]


async def test_range_reverse_and_keys_only(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[list[bytes], list[bytes], list[bytes]]:
        db = await _filled(ctx)
        forward = [k async for k in db.keys(start=b"user:05", end=b"user:09")]
        backward = [k async for k in db.keys(start=b"user:05", end=b"user:09", reverse=True)]
        everything = [k async for k in db.keys()]
        return forward, backward, everything

    forward, backward, everything = await run_as(rt, OWNER, body)
    assert forward == [b"user:05", b"user:06", b"user:07", b"user:08"]
    assert backward == forward[::-1]
    assert everything == sorted(everything)
    assert len(everything) == 24


async def test_prefix_of_ff_bytes_and_text_prefix(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[list[bytes], list[bytes]]:
        db = await kv.open(ctx, ctx.package_id, "ff")
        await db.set_many([(b"\xff\xff", b"x"), (b"\xff\xff\x00", b"y"), (b"\xfe", b"z")])
        text = await kv.open(
            ctx, ctx.package_id, "text", key_codec=kv.Utf8Codec(), value_codec=kv.BYTES
        )
        await text.set_many({"été:1": b"a", "étéx": b"b", "ét": b"c"})
        ff = [k async for k in db.keys(prefix=b"\xff\xff")]
        return ff, [k.encode() async for k in text.keys(prefix="été")]

    ff, text = await run_as(rt, OWNER, body)
    assert ff == [b"\xff\xff", b"\xff\xff\x00"]
    assert text == ["été:1".encode(), "étéx".encode()]


async def test_server_bounds_page_size_whatever_the_client_asks(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[int, int, int]:
        db = await _filled(ctx)
        asked_many = await db.list_page(prefix=b"user:", limit=10_000)
        asked_none = await db.list_page(prefix=b"user:")
        await db.set(b"big:1", b"x" * 200)
        await db.set(b"big:2", b"x" * 200)
        big = await db.list_page(prefix=b"big:")
        return len(asked_many.items), len(asked_none.items), len(big.items)

    many, none, big = await run_as(rt, OWNER, body)
    assert many == 7  # max_scan_items
    assert none == 7
    assert big == 1  # two 205-byte entries pass max_scan_bytes=300


async def test_a_single_value_over_the_byte_bound_still_makes_a_page(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[tuple[bytes, bytes]]:
        db = await kv.open(ctx, ctx.package_id, "huge")
        await db.set(b"k", b"x" * 1000)
        return [item async for item in db.scan()]

    assert await run_as(rt, OWNER, body) == [(b"k", b"x" * 1000)]


async def test_cursor_is_the_last_key_and_none_when_done(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[kv.Page[bytes, bytes]]:
        db = await _filled(ctx)
        pages = [await db.list_page(prefix=b"user:", limit=8)]
        while pages[-1].cursor is not None:
            pages.append(await db.list_page(prefix=b"user:", limit=8, cursor=pages[-1].cursor))
        return pages

    pages = await run_as(rt, OWNER, body)
    assert [len(p.items) for p in pages] == [7, 7, 6]
    assert pages[0].cursor == b"user:06"
    assert pages[-1].cursor is None


async def test_empty_and_inverted_ranges(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[int, bytes | None, int]:
        db = await _filled(ctx)
        empty = await db.list_page(prefix=b"nothing")
        inverted = await db.list_page(start=b"z", end=b"a")
        return len(empty.items), empty.cursor, len(inverted.items)

    assert await run_as(rt, OWNER, body) == (0, None, 0)


async def test_prefix_with_start_is_refused_locally(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "scan")
        with pytest.raises(ValueError, match="not both"):
            await db.list_page(prefix=b"a", start=b"b")

    await run_as(rt, OWNER, body)


@pytest.mark.parametrize("reverse", [False, True])
async def test_cursor_resumed_across_interleaved_writes(rt: Runtime, reverse: bool) -> None:
    """Keys present throughout are seen exactly once; writes and deletes elsewhere interleave."""
    stable = [b"k%04d" % i for i in range(0, 400, 2)]

    async def setup(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "moving")
        await db.set_many((k, b"stable") for k in stable)

    await run_as(rt, OWNER, setup)
    done = anyio.Event()

    async def writer(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "moving")
        i = 1
        while not done.is_set():
            odd = b"k%04d" % (i % 400)
            await db.set(odd, b"churn")
            await db.delete(b"k%04d" % ((i + 200) % 400 | 1))
            await db.set(b"k%04d" % ((i * 7) % 400 - (i * 7) % 400 % 2), b"rewritten")
            i += 2

    async def reader(ctx: ProcessContext) -> list[bytes]:
        db = await kv.open(ctx, ctx.package_id, "moving")
        seen: list[bytes] = []
        cursor = None
        while True:
            page = await db.list_page(keys_only=True, limit=5, cursor=cursor, reverse=reverse)
            seen.extend(k for k, _ in page.items)
            await anyio.lowlevel.checkpoint()
            if page.cursor is None:
                break
            cursor = page.cursor
        done.set()
        return seen

    handle = await rt.spawn("writer:demo:alice.os", writer, request_capabilities=["kv:distro:sys"])
    seen = await run_as(rt, "reader:demo:alice.os", reader)
    await handle.wait()
    assert len(seen) == len(set(seen)), "a key was repeated"
    assert seen == sorted(seen, reverse=reverse)
    assert set(stable) <= set(seen), "a key present throughout was skipped"


async def test_scan_needs_read_capability(rt: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        await _filled(ctx)

    await run_as(rt, OWNER, owner)

    async def outsider(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "scan")
        with pytest.raises(kv.NoReadCap):
            await db.list_page()
        with pytest.raises(kv.NoReadCap):
            await db.list_page(keys_only=True)

    await run_as(rt, "eve:other:eve.os", outsider)


async def test_a_page_is_typed_by_what_it_was_asked_for(rt: Runtime) -> None:
    """``list_page`` and ``scan_pages`` give ``Page[K, V]`` (no None value to narrow);
    ``keys_only=True`` gives ``Page[K, None]``. ``assert_type`` is checked by mypy
    (``make check``); the asserts check the values that go with those types."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "typed")
        await db.set_many({b"k1": b"v1", b"k2": b"v2"})
        page = assert_type(await db.list_page(), Page[bytes, bytes])
        assert page.items == [(b"k1", b"v1"), (b"k2", b"v2")]
        keys = assert_type(await db.list_page(keys_only=True), Page[bytes, None])
        assert keys.items == [(b"k1", None), (b"k2", None)]
        maybe = assert_type(await db.list_page(keys_only=bool(page)), Page[bytes, bytes | None])
        assert maybe.items == keys.items
        pages = [assert_type(p, Page[bytes, bytes]) async for p in db.scan_pages(page_size=1)]
        assert [p.items for p in pages] == [[(b"k1", b"v1")], [(b"k2", b"v2")]]
        text = await kv.open(
            ctx, ctx.package_id, "typed-text", key_codec=kv.BYTES, value_codec=kv.Utf8Codec()
        )
        await text.set(b"k", "é")
        assert assert_type(await text.list_page(), Page[bytes, str]).items == [(b"k", "é")]

    await run_as(rt, OWNER, body)
