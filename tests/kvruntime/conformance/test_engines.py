"""One conformance suite, run on every storage engine through the bus and the client.

Each test is what a user's process does; the ``runtime`` fixture
(``conftest.py``) runs it once per engine. Nothing reaches into the kv
process or the engine.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from protocol.ids import PackageId
from tests.conftest import run_as

from .conftest import PERSISTS

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")


async def test_open_set_get_exists_delete_remove(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"k", b"v")
        assert await db.get(b"k") == b"v"
        assert await db.exists(b"k")
        await db.delete(b"k")
        assert not await db.exists(b"k")
        with pytest.raises(kv.KeyNotFound):
            await db.get(b"k")
        await db.delete(b"never there")
        await db.set(b"k", b"again")
        await kv.remove_db(ctx, PKG, "main")
        with pytest.raises(kv.NoDb):
            await kv.handle(ctx, PKG, "main").get(b"k")
        fresh = await kv.open(ctx, PKG, "main")
        assert await fresh.exists(b"k") is False  # RemoveDb removed every key

    await run_as(runtime, APP, body)
    assert runtime.list_dbs() == [(PKG, "main")]


@pytest.mark.usefixtures("scan_path")
async def test_scans_in_byte_order_with_cursor_reverse_prefix_range_and_page_bound(
    runtime: Runtime,
) -> None:
    keys = [b"a", b"a\x00", b"ab", b"b", b"ba", b"b\xff", b"c"]

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        for k in reversed(keys):
            await db.set(k, k.upper())
        assert [k async for k, _ in db.scan()] == keys
        assert [k async for k, _ in db.scan(reverse=True)] == keys[::-1]
        assert [k async for k, _ in db.scan(prefix=b"b")] == [b"b", b"ba", b"b\xff"]
        assert [k async for k, _ in db.scan(start=b"a\x00", end=b"b\xff")] == keys[1:5]
        page = await db.list_page(limit=100)  # the server bounds a page at 3
        assert page.items == [(k, k.upper()) for k in keys[:3]]
        assert page.cursor == b"ab"
        rest = await db.list_page(cursor=page.cursor, keys_only=True)
        assert rest.items == [(k, None) for k in keys[3:6]]
        back = await db.list_page(cursor=b"b", reverse=True)
        assert [k for k, _ in back.items] == [b"ab", b"a\x00", b"a"]
        assert await db.delete_range(prefix=b"b") == 3
        assert await db.delete_range(start=b"a\x00", end=b"b") == 2
        assert [k async for k, _ in db.scan()] == [b"a", b"c"]

    await run_as(runtime, APP, body)


async def test_batches_are_atomic_and_later_ops_win(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set_many({b"a": b"1", b"b": b"2"})
        await db.write_batch([(b"a", None), (b"c", b"3"), (b"c", b"4")])
        assert await db.get_many([b"a", b"b", b"c", b"d"]) == [None, b"2", b"4", None]
        with pytest.raises(kv.ValueTooLarge):  # one op too large: none of them lands
            await db.write_batch([(b"x", b"1"), (b"y", b"v" * 129)])
        with pytest.raises(kv.BatchTooLarge):
            await db.set_many([(b"%d" % i, b"v") for i in range(5)])
        await db.delete_many([b"b", b"c"])
        assert [k async for k, _ in db.scan()] == []

    await run_as(runtime, APP, body)


async def test_increment_and_compare_and_swap(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        assert await db.increment(b"n") == 1
        assert await db.increment(b"n", 41) == 42
        await db.set(b"s", b"text")
        with pytest.raises(kv.NotAnInteger):
            await db.increment(b"s")
        await db.set(b"big", str(2**63 - 1).encode())
        with pytest.raises(kv.IntegerOverflow):
            await db.increment(b"big")
        await db.compare_and_swap(b"c", None, b"1")
        await db.compare_and_swap(b"c", b"1", b"2")
        with pytest.raises(kv.CasMismatch):
            await db.compare_and_swap(b"c", b"1", b"3")
        await db.compare_and_swap(b"c", b"2", None)
        assert not await db.exists(b"c")

    await run_as(runtime, APP, body)


async def test_transactions_commit_roll_back_and_conflict(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"k", b"0")
        tx = await db.begin_tx()
        await db.set(b"k", b"1", tx_id=tx)
        await db.delete(b"gone", tx_id=tx)
        assert await db.get(b"k") == b"0"  # staged, not applied
        await db.commit_tx(tx)
        assert await db.get(b"k") == b"1"
        tx = await db.begin_tx()
        await db.set(b"k", b"never", tx_id=tx)
        await db.rollback_tx(tx)
        with pytest.raises(kv.NoTx):
            await db.commit_tx(tx)
        tx = await db.begin_tx()
        assert await db.get(b"k", tx_id=tx) == b"1"
        await db.set(b"k", b"other writer")  # changes a key the transaction read
        await db.set(b"k", b"mine", tx_id=tx)
        with pytest.raises(kv.TransactionConflict):
            await db.commit_tx(tx)
        assert await db.get(b"k") == b"other writer"

    await run_as(runtime, APP, body)


async def test_capabilities_share_and_revoke(runtime: Runtime) -> None:
    reader = "reader:other:pub.os"

    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"k", b"v")
        assert await db.capabilities() == ["read", "write"]
        await db.share(reader)

    async def read(ctx: ProcessContext) -> bytes:
        db = kv.handle(ctx, PKG, "main")
        with pytest.raises(kv.NoWriteCap):
            await db.set(b"k", b"x")
        return await db.get(b"k")

    async def refused(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, PKG, "main").get(b"k")

    async def revoke(ctx: ProcessContext) -> None:
        await kv.handle(ctx, PKG, "main").revoke(reader)

    await run_as(runtime, reader, refused)
    await run_as(runtime, APP, owner)
    assert await run_as(runtime, reader, read) == b"v"
    await run_as(runtime, APP, revoke)
    await run_as(runtime, reader, refused)


async def test_size_and_name_errors(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoDb):
            await kv.handle(ctx, PKG, "never-opened").get(b"k")
        db = await kv.open(ctx, PKG, "main")
        with pytest.raises(kv.KeyTooLarge):
            await db.set(b"k" * 33, b"v")
        with pytest.raises(kv.ValueTooLarge):
            await db.set(b"k", b"v" * 129)
        with pytest.raises(kv.MismatchingPackageId):
            await kv.open(ctx, PackageId.parse("other:pub.os"), "main")

    await run_as(runtime, APP, body)


async def test_concurrent_senders_each_see_their_own_order(runtime: Runtime) -> None:
    async def writer(ctx: ProcessContext) -> list[bytes]:
        db = await kv.open(ctx, PKG, "main")
        name = str(ctx.process_id).encode()
        seen = []
        for i in range(30):
            await db.set(name, b"%d" % i)
            seen.append(await db.get(name))
            await db.increment(b"total")
        return seen

    results: list[list[bytes]] = []

    async def one(process: str) -> None:
        results.append(await run_as(runtime, process, writer))

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(one, f"w{n}:app:pub.os")
    assert results == [[b"%d" % i for i in range(30)]] * 4

    async def total(ctx: ProcessContext) -> bytes:
        return await kv.handle(ctx, PKG, "main").get(b"total")

    assert await run_as(runtime, "w0:app:pub.os", total) == b"120"


async def test_a_restart_keeps_the_data_only_where_the_engine_persists(
    home: Path, config: KvConfig, storage: str
) -> None:
    async def write(ctx: ProcessContext) -> None:
        await (await kv.open(ctx, PKG, "main")).set(b"k", b"v")

    async def read(ctx: ProcessContext) -> bytes | None:
        db = kv.handle(ctx, PKG, "main")
        try:
            return await db.get(b"k")
        except kv.NoDb:
            return None

    async with Runtime(home=home, config=config, storage=storage) as rt:
        await run_as(rt, APP, write)
    persists = PERSISTS[storage.split("://")[0]]
    async with Runtime(home=home, config=config, storage=storage) as rt:
        assert await run_as(rt, APP, read) == (b"v" if persists else None)
        assert rt.list_dbs() == ([(PKG, "main")] if persists else [])
        # The capability store stays under home whatever the engine.
        assert (home / "kernel" / "capabilities").is_dir()
        assert any(str(holder.process) == APP for holder, _ in rt.capability_holders())
