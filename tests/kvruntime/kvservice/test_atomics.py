"""increment and compare_and_swap through the bus, with concurrent senders."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from kvruntime import ProcessContext, Runtime, kv
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

OWNER = "app:demo:alice.os"
I64_MAX = 2**63 - 1


async def test_increment_counts_from_zero_and_stores_ascii(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[int, int, bytes, int]:
        db = await kv.open(ctx, ctx.package_id, "c")
        first = await db.increment(b"hits")
        second = await db.increment(b"hits", 41)
        stored = await db.get(b"hits")
        down = await db.increment(b"hits", -50)
        return first, second, stored, down

    assert await run_as(rt, OWNER, body) == (1, 42, b"42", -8)


@pytest.mark.parametrize(
    "stored", [b"abc", b"", b"1.5", b" 1", b"+1", b"01", b"-0", b"1e3", b"9223372036854775808"]
)
async def test_increment_of_a_non_integer_changes_nothing(rt: Runtime, stored: bytes) -> None:
    async def body(ctx: ProcessContext) -> bytes:
        db = await kv.open(ctx, ctx.package_id, "c")
        await db.set(b"k", stored)
        with pytest.raises(kv.NotAnInteger):
            await db.increment(b"k")
        return await db.get(b"k")

    assert await run_as(rt, OWNER, body) == stored


async def test_increment_overflow_changes_nothing(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[bytes, bytes]:
        db = await kv.open(ctx, ctx.package_id, "c")
        await db.set(b"max", b"%d" % I64_MAX)
        await db.set(b"min", b"%d" % -(2**63))
        with pytest.raises(kv.IntegerOverflow):
            await db.increment(b"max")
        with pytest.raises(kv.IntegerOverflow):
            await db.increment(b"min", -1)
        return await db.get(b"max"), await db.get(b"min")

    assert await run_as(rt, OWNER, body) == (b"%d" % I64_MAX, b"%d" % -(2**63))


async def test_increment_sees_plain_writes_queued_before_it(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, ctx.package_id, "c")
        async with anyio.create_task_group() as tg:  # queued in one kv batch
            tg.start_soon(db.set, b"n", b"10")
            await anyio.lowlevel.checkpoint()
        return await db.increment(b"n", 5)

    assert await run_as(rt, OWNER, body) == 15


async def test_concurrent_increments_are_exact(rt: Runtime) -> None:
    """20 processes x 50 increments, all at once: the total is exact."""
    senders, each = 20, 50

    async def worker(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "c")
        async with anyio.create_task_group() as tg:  # several in flight per sender too
            for _ in range(5):
                tg.start_soon(_bump, db, each // 5)

    handles = [
        await rt.spawn(f"w{i}:demo:alice.os", worker, request_capabilities=["kv:distro:sys"])
        for i in range(senders)
    ]
    for handle in handles:
        await handle.wait()

    async def total(ctx: ProcessContext) -> bytes:
        return await (await kv.open(ctx, ctx.package_id, "c")).get(b"total")

    assert await run_as(rt, OWNER, total) == b"%d" % (senders * each)


async def _bump(db: kv.Kv[bytes, bytes], times: int) -> None:
    for _ in range(times):
        await db.increment(b"total")


async def test_compare_and_swap_semantics(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "cas")
        await db.compare_and_swap(b"k", None, b"one")  # must be absent: it is
        with pytest.raises(kv.CasMismatch) as caught:
            await db.compare_and_swap(b"k", None, b"two")
        assert caught.value.current == b"one"
        with pytest.raises(kv.CasMismatch) as caught:
            await db.compare_and_swap(b"k", b"wrong", b"two")
        assert caught.value.current == b"one"
        assert await db.get(b"k") == b"one"
        await db.compare_and_swap(b"k", b"one", b"two")
        assert await db.get(b"k") == b"two"
        await db.compare_and_swap(b"k", b"two", None)  # delete
        assert not await db.exists(b"k")
        with pytest.raises(kv.CasMismatch) as caught:
            await db.compare_and_swap(b"k", b"two", b"three")
        assert caught.value.current is None
        assert not await db.exists(b"k")

    await run_as(rt, OWNER, body)


async def test_concurrent_compare_and_swap_has_one_winner_per_round(rt: Runtime) -> None:
    senders, rounds = 8, 10
    wins: dict[int, list[str]] = {r: [] for r in range(rounds)}
    seen_by_losers: dict[int, set[bytes | None]] = {r: set() for r in range(rounds)}
    barrier = [anyio.Event() for _ in range(rounds)]
    arrived = [0] * rounds

    async def contender(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "cas")
        name = ctx.process_id.process_name
        for r in range(rounds):
            arrived[r] += 1
            if arrived[r] == senders:
                barrier[r].set()
            await barrier[r].wait()
            expected = None if r == 0 else b"round-%d" % (r - 1)
            try:
                await db.compare_and_swap(b"lock", expected, b"round-%d" % r)
            except kv.CasMismatch as refused:
                seen_by_losers[r].add(refused.current)
            else:
                wins[r].append(name)

    handles = [
        await rt.spawn(f"c{i}:demo:alice.os", contender, request_capabilities=["kv:distro:sys"])
        for i in range(senders)
    ]
    for handle in handles:
        await handle.wait()
    assert all(len(winners) == 1 for winners in wins.values()), wins
    # Every loser saw the winner's value.
    assert seen_by_losers == {r: {b"round-%d" % r} for r in range(rounds)}


async def test_atomics_need_write_capability(rt: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "c")
        await db.set(b"n", b"1")
        await db.share("reader:guest:bob.os")

    await run_as(rt, OWNER, owner)

    async def reader(ctx: ProcessContext) -> bytes:
        db = kv.handle(ctx, "demo:alice.os", "c")
        with pytest.raises(kv.NoWriteCap):
            await db.increment(b"n")
        with pytest.raises(kv.NoWriteCap):
            await db.compare_and_swap(b"n", b"1", b"2")
        return await db.get(b"n")

    assert await run_as(rt, "reader:guest:bob.os", reader) == b"1"

    async def outsider(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "c")
        with pytest.raises(kv.NoWriteCap):
            await db.increment(b"n")
        with pytest.raises(kv.NoWriteCap):
            await db.compare_and_swap(b"n", b"1", b"2")

    await run_as(rt, "eve:other:eve.os", outsider)
