"""The reserved keyspace (``kvservice/reserved.py``), on every engine, through the client.

Keys starting with eight 0xff bytes are kv's own records: no user write may
make one, no user read or range sees or deletes one.
"""

from __future__ import annotations

import pytest

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.kvservice.reserved import DEADLINE, RESERVED, SETTINGS
from protocol.ids import PackageId
from tests.conftest import run_as
from tests.internals import in_store

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")

#: Reserved keys (the region's first key, one record of each owner's shape) and
#: user keys just below the region.
INSIDE = [RESERVED, SETTINGS, DEADLINE + b"k", RESERVED + b"\xff\xff"]
BELOW = [b"\xff" * 7, b"\xff" * 7 + b"\xfe\xff", b"\xff" * 7 + b"\xfe"]


async def test_every_write_path_refuses_a_reserved_key(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        for key in INSIDE:
            with pytest.raises(kv.KeyReserved, match="reserved for kv"):
                await db.set(key, b"v")
            with pytest.raises(kv.KeyReserved):
                await db.delete(key)
            with pytest.raises(kv.KeyReserved):
                await db.set_many([(b"fine", b"1"), (key, b"v")])
            with pytest.raises(kv.KeyReserved):
                await db.delete_many([b"fine", key])
            with pytest.raises(kv.KeyReserved):
                await db.write_batch([(b"fine", b"1"), (key, None)])
            with pytest.raises(kv.KeyReserved):
                await db.increment(key)
            with pytest.raises(kv.KeyReserved):
                await db.compare_and_swap(key, None, b"v")
            tx_id = await db.begin_tx()
            with pytest.raises(kv.KeyReserved):
                await db.set(key, b"v", tx_id=tx_id)
            with pytest.raises(kv.KeyReserved):
                await db.delete(key, tx_id=tx_id)
            await db.commit_tx(tx_id)  # the refused writes staged nothing
            with pytest.raises(kv.KeyReserved):  # its buffered writes, sent at the end
                await _transaction_writing(db, key)
        # A refused batch wrote none of its items; the keys just below are users'.
        assert not await db.exists(b"fine")
        for key in BELOW:
            await db.set(key, b"user")
            assert await db.get(key) == b"user"

    await run_as(runtime, APP, body)


async def _transaction_writing(db: kv.Kv[bytes, bytes], key: bytes) -> None:
    async with db.transaction() as tx:
        tx.set(b"fine", b"1")
        tx.set(key, b"v")


@pytest.mark.usefixtures("scan_path")
async def test_reads_ranges_and_delete_range_leave_kv_records_alone(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set_many([(key, b"user") for key in BELOW] + [(b"a", b"1")])
        own = [(key, b"kv's own") for key in INSIDE]
        await in_store(runtime, PKG, "main", lambda s: s.write(own, sync=False))
        for key in INSIDE:  # a reserved key reads as absent
            with pytest.raises(kv.KeyNotFound):
                await db.get(key)
            assert await db.exists(key) is False
            tx_id = await db.begin_tx()
            assert await db.exists(key, tx_id=tx_id) is False
            with pytest.raises(kv.KeyNotFound):
                await db.get(key, tx_id=tx_id)
            assert await db.get_many([key, b"a"], tx_id=tx_id) == [None, b"1"]
            await db.rollback_tx(tx_id)
        assert await db.get_many([*INSIDE[:3], b"a"]) == [None, None, None, b"1"]
        users = sorted([b"a", *BELOW])
        assert [k async for k, _ in db.scan()] == users
        assert [k async for k, _ in db.scan(reverse=True)] == users[::-1]
        assert [k async for k, _ in db.scan(prefix=b"\xff")] == sorted(BELOW)
        assert [k async for k, _ in db.scan(prefix=RESERVED)] == []
        assert [k async for k, _ in db.scan(start=b"\xff" * 7 + b"\xfe")] == sorted(BELOW)[1:]
        assert [k async for k, _ in db.scan(start=RESERVED)] == []
        page = await db.list_page(reverse=True, limit=1)  # a reverse page from the top
        assert [k for k, _ in page.items] == [users[-1]]
        tx_id = await db.begin_tx()  # a page inside a transaction, over its own write
        await db.set(b"b", b"2", tx_id=tx_id)
        keys = await db.list_page(tx_id=tx_id, reverse=True, keys_only=True)
        assert [k for k, _ in keys.items] == sorted([b"b", *users], reverse=True)[:3]
        await db.rollback_tx(tx_id)
        assert await db.delete_range(prefix=RESERVED) == 0
        assert await db.delete_range(start=RESERVED + b"\x00", end=None) == 0
        assert await db.delete_range(prefix=b"\xff") == len(BELOW)
        assert await db.delete_range() == 1  # the whole db: b"a", and no record of kv's
        assert [k async for k, _ in db.scan()] == []

    await run_as(runtime, APP, body)
    stored = await in_store(runtime, PKG, "main", lambda s: [s.get(key) for key in INSIDE])
    assert stored == [b"kv's own"] * len(INSIDE)
