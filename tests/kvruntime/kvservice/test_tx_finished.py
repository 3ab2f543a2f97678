"""Transactions finished: rollback, reads of one's own writes, the conflict check, transact."""

from __future__ import annotations

import anyio
import pytest

from kvruntime import ProcessContext, Runtime, kv
from tests.conftest import run_as
from tests.internals import kv_of

pytestmark = pytest.mark.anyio

OWNER = "app:demo:alice.os"
OTHER = "other:demo:alice.os"


async def test_rollback_applies_nothing_and_ends_the_transaction(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        tx = await db.begin_tx()
        await db.set(b"k", b"v", tx_id=tx)
        await db.rollback_tx(tx)
        assert not await db.exists(b"k")
        with pytest.raises(kv.NoTx):
            await db.commit_tx(tx)
        with pytest.raises(kv.NoTx):
            await db.rollback_tx(tx)

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0


@pytest.mark.usefixtures("scan_path")
async def test_reads_inside_a_transaction_see_its_own_writes(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set_many({b"a": b"old", b"b": b"keep", b"c": b"gone"})
        tx = await db.begin_tx()
        await db.set(b"a", b"new", tx_id=tx)
        await db.set(b"d", b"added", tx_id=tx)
        await db.delete(b"c", tx_id=tx)
        assert await db.get(b"a", tx_id=tx) == b"new"
        assert await db.get(b"b", tx_id=tx) == b"keep"
        assert await db.get(b"c", None, tx_id=tx) is None
        assert not await db.exists(b"c", tx_id=tx)
        assert await db.exists(b"d", tx_id=tx)
        assert [i async for i in db.scan(tx_id=tx)] == [
            (b"a", b"new"),
            (b"b", b"keep"),
            (b"d", b"added"),
        ]
        assert [k async for k in db.keys(tx_id=tx, reverse=True, page_size=1)] == [b"d", b"b", b"a"]
        # Outside the transaction nothing changed yet.
        assert [i async for i in db.scan()] == [(b"a", b"old"), (b"b", b"keep"), (b"c", b"gone")]
        await db.commit_tx(tx)
        assert [k async for k in db.keys()] == [b"a", b"b", b"d"]

    await run_as(rt, OWNER, body)


async def test_a_conflicting_commit_applies_nothing(rt: Runtime) -> None:
    """Process A reads k in a tx; process B changes k; A's commit fails and writes nothing."""
    read_done, changed = anyio.Event(), anyio.Event()

    async def a(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"k", b"1")
        tx = await db.begin_tx()
        seen = int(await db.get(b"k", tx_id=tx))
        await db.set(b"k", b"%d" % (seen + 1), tx_id=tx)
        await db.set(b"side", b"effect", tx_id=tx)
        read_done.set()
        await changed.wait()
        with pytest.raises(kv.TransactionConflict, match="conflicts"):
            await db.commit_tx(tx)
        assert await db.get(b"k") == b"100"
        assert not await db.exists(b"side")
        with pytest.raises(kv.NoTx):  # a failed commit ends the transaction
            await db.commit_tx(tx)

    async def b(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await read_done.wait()
        await db.set(b"k", b"100")
        changed.set()

    handle = await rt.spawn(OTHER, b, request_capabilities=["kv:distro:sys"])
    await run_as(rt, OWNER, a)
    await handle.wait()


@pytest.mark.parametrize("how", ["set", "increment", "cas", "set_many", "delete_range", "commit"])
async def test_every_kind_of_write_is_seen_by_the_conflict_check(rt: Runtime, how: str) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"k", b"1")
        tx = await db.begin_tx()
        await db.get(b"k", tx_id=tx)
        await db.set(b"out", b"x", tx_id=tx)
        match how:
            case "set":
                await db.set(b"k", b"2")
            case "increment":
                await db.increment(b"k")
            case "cas":
                await db.compare_and_swap(b"k", b"1", b"2")
            case "set_many":
                await db.set_many({b"k": b"2"})
            case "delete_range":
                await db.delete_range(prefix=b"k")
            case "commit":
                other = await db.begin_tx()
                await db.set(b"k", b"2", tx_id=other)
                await db.commit_tx(other)
        with pytest.raises(kv.TransactionConflict):
            await db.commit_tx(tx)
        assert not await db.exists(b"out")

    await run_as(rt, OWNER, body)


@pytest.mark.usefixtures("scan_path")
async def test_a_scan_in_a_transaction_conflicts_with_an_insert_in_its_range(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set_many({b"u:1": b"x", b"v:1": b"y"})
        tx = await db.begin_tx()
        assert [k async for k in db.keys(prefix=b"u:", tx_id=tx)] == [b"u:1"]
        await db.set(b"count", b"1", tx_id=tx)
        await db.set(b"v:2", b"outside the scanned range")
        tx2 = await db.begin_tx()
        assert [k async for k in db.keys(prefix=b"u:", tx_id=tx2)] == [b"u:1"]
        await db.set(b"count", b"1", tx_id=tx2)
        await db.commit_tx(tx2)  # only v:2 and count changed: no conflict for tx2's reads
        await db.set(b"u:2", b"phantom")
        with pytest.raises(kv.TransactionConflict):
            await db.commit_tx(tx)

    await run_as(rt, OWNER, body)


async def test_non_conflicting_commits_of_two_processes_both_succeed(rt: Runtime) -> None:
    both_read = anyio.Event()
    reads = [0]

    async def worker(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        mine = ctx.process_id.process_name.encode()
        tx = await db.begin_tx()
        await db.get(mine, None, tx_id=tx)
        await db.set(mine, b"done", tx_id=tx)
        await db.set(b"blind", mine, tx_id=tx)  # a blind write (not read) never conflicts
        reads[0] += 1
        if reads[0] == 2:
            both_read.set()
        await both_read.wait()
        await db.commit_tx(tx)

    handles = [
        await rt.spawn(p, worker, request_capabilities=["kv:distro:sys"])
        for p in ("x:demo:alice.os", "y:demo:alice.os")
    ]
    for handle in handles:
        await handle.wait()

    async def check(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "t")
        return await db.get_many([b"x", b"y"])

    assert await run_as(rt, OWNER, check) == [b"done", b"done"]


async def test_transact_retries_conflicts_until_it_commits(rt: Runtime) -> None:
    """Concurrent read-modify-write transactions on one key, retried: no lost update."""
    senders, each = 5, 6

    async def worker(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")

        async def add_one(tx: int) -> int:
            value = int(await db.get(b"n", b"0", tx_id=tx))
            await anyio.sleep(0.001)  # let the others interleave
            await db.set(b"n", b"%d" % (value + 1), tx_id=tx)
            return value + 1

        for _ in range(each):
            await db.transact(add_one, retries=1000)

    handles = [
        await rt.spawn(f"t{i}:demo:alice.os", worker, request_capabilities=["kv:distro:sys"])
        for i in range(senders)
    ]
    for handle in handles:
        await handle.wait()

    async def total(ctx: ProcessContext) -> bytes:
        return await (await kv.open(ctx, ctx.package_id, "t")).get(b"n")

    assert await run_as(rt, OWNER, total) == b"%d" % (senders * each)
    assert kv_of(rt).open_transactions == 0


async def test_transact_gives_up_after_its_retries_and_rolls_back_on_error(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, ctx.package_id, "t")
        attempts = 0

        async def always_conflicts(tx: int) -> None:
            nonlocal attempts
            attempts += 1
            await db.get(b"k", None, tx_id=tx)
            await db.set(b"k", b"%d" % attempts)  # a plain write under our feet

        with pytest.raises(kv.TransactionConflict):
            await db.transact(always_conflicts, retries=2)

        async def fails(tx: int) -> None:
            await db.set(b"never", b"x", tx_id=tx)
            raise LookupError("boom")

        with pytest.raises(LookupError, match="boom"):
            await db.transact(fails)
        assert not await db.exists(b"never")
        return attempts

    assert await run_as(rt, OWNER, body) == 3
    assert kv_of(rt).open_transactions == 0


async def test_tx_reads_and_rollback_check_ownership_and_capability(rt: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.share("reader:guest:bob.os")
        return await db.begin_tx()

    tx = await run_as(rt, OWNER, owner)

    async def reader(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "t")
        with pytest.raises(kv.NoTx):  # read cap, but not its transaction
            await db.get(b"k", tx_id=tx)
        with pytest.raises(kv.NoWriteCap):
            await db.rollback_tx(tx)

    await run_as(rt, "reader:guest:bob.os", reader)

    async def outsider(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "t")
        with pytest.raises(kv.NoReadCap):
            await db.get(b"k", tx_id=tx)
        with pytest.raises(kv.NoReadCap):
            await db.exists(b"k", tx_id=tx)
        with pytest.raises(kv.NoWriteCap):
            await db.rollback_tx(tx)

    await run_as(rt, "eve:other:eve.os", outsider)


# --- GetMany inside a transaction (TxGetMany) ---------------------------------------


async def test_get_many_inside_a_transaction_sees_its_own_writes(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[list[bytes | None], list[bytes | None]]:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set_many({b"a": b"old", b"b": b"keep", b"c": b"gone"})
        tx = await db.begin_tx()
        await db.set(b"a", b"new", tx_id=tx)
        await db.set(b"d", b"added", tx_id=tx)
        await db.delete(b"c", tx_id=tx)
        keys = [b"a", b"b", b"c", b"d", b"missing", b"a"]
        inside = await db.get_many(keys, tx_id=tx)
        outside = await db.get_many(keys)
        await db.rollback_tx(tx)
        return inside, outside

    inside, outside = await run_as(rt, OWNER, body)
    assert inside == [b"new", b"keep", None, b"added", None, b"new"]
    assert outside == [b"old", b"keep", b"gone", None, None, b"old"]


@pytest.mark.parametrize("read", ["committed", "absent", "own write"])
async def test_get_many_inside_a_transaction_is_checked_for_conflicts(
    rt: Runtime, read: str
) -> None:
    """A key it read from the committed data (present or absent) that another writer
    changes makes the commit fail; a key it wrote itself is no read and never conflicts."""

    async def body(ctx: ProcessContext) -> str:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set_many({b"committed": b"1", b"other": b"x"})
        tx = await db.begin_tx()
        if read == "own write":
            await db.set(b"own write", b"mine", tx_id=tx)
        await db.get_many([b"other", b"%s" % read.encode()], tx_id=tx)
        await db.set(b"out", b"x", tx_id=tx)
        await db.set(read.encode(), b"changed by a plain write")
        try:
            await db.commit_tx(tx)
        except kv.TransactionConflict:
            return "conflict" if not await db.exists(b"out") else "conflict, yet applied"
        return "committed"

    expected = "committed" if read == "own write" else "conflict"
    assert await run_as(rt, OWNER, body) == expected


async def test_get_many_inside_a_transaction_checks_ownership_limits_and_capability(
    rt: Runtime,
) -> None:
    async def owner(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.share("reader:guest:bob.os")
        tx = await db.begin_tx()
        other_db = await kv.open(ctx, ctx.package_id, "u")
        with pytest.raises(kv.NoTx):  # a transaction belongs to its db
            await other_db.get_many([b"k"], tx_id=tx)
        with pytest.raises(kv.NoTx):
            await db.get_many([b"k"], tx_id=tx + 1)
        return tx

    tx = await run_as(rt, OWNER, owner)

    async def reader(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "t")
        with pytest.raises(kv.NoTx):  # read cap, but not its transaction
            await db.get_many([b"k"], tx_id=tx)

    await run_as(rt, "reader:guest:bob.os", reader)

    async def outsider(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, "demo:alice.os", "t").get_many([b"k"], tx_id=tx)

    await run_as(rt, "eve:other:eve.os", outsider)
