"""Pipelined transactions (``db.transaction()``), WriteBatch and CommitBatch through the bus."""

from __future__ import annotations

import random

import anyio
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from kvruntime.client import JSON, Utf8Codec
from kvruntime.client._exchange import request
from kvruntime.client._transaction import Transaction
from protocol.blobs import encode_writes
from protocol.ids import PackageId
from protocol.messages import CommitBatch, KvAction, KvResponse, WriteBatch
from tests.conftest import run_as
from tests.internals import kv_of

# Every test here runs with a transaction's ``set`` in C and in Python (issue 12).
pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("staging_path")]

OWNER = "app:demo:alice.os"
OTHER = "other:demo:alice.os"
PACKAGE = PackageId.parse("demo:alice.os")


@pytest.fixture
def config() -> KvConfig:
    """Small bounds, so that the tests cross them."""
    return KvConfig(max_batch_items=50, max_value_bytes=1000, max_transaction_bytes=5000)


def _spied(
    db: kv.Kv[bytes, bytes], calls: list[str], max_batch_items: int = 50
) -> Transaction[bytes, bytes]:
    """A transaction on ``db`` that records the tag of every request it sends."""

    async def call(action: KvAction, blob: bytes | None = None) -> tuple[KvResponse, bytes | None]:
        calls.append(action.TAG)
        return await db._call(action, blob)

    return Transaction(
        call,
        kv.BYTES,
        kv.BYTES,
        max_batch_items=max_batch_items,
        max_key_bytes=KvConfig().max_key_bytes,
        max_value_bytes=KvConfig().max_value_bytes,
    )


# --- the one-request paths -------------------------------------------------------------------


async def test_writes_only_is_one_atomic_write_batch(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set_many({b"gone": b"x", b"kept": b"y"})
        calls: list[str] = []
        async with _spied(db, calls) as tx:
            tx.set(b"a", b"1")
            tx.set(b"b", b"2")
            tx.delete(b"gone")
            # Buffered: nothing reached the server yet.
            assert await db.get(b"a", None) is None
            assert await db.exists(b"gone")
        assert calls == ["WriteBatch"]
        assert tx.tx_id is None
        assert [i async for i in db.scan()] == [(b"a", b"1"), (b"b", b"2"), (b"kept", b"y")]

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0


async def test_a_read_makes_the_exit_one_commit_batch(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"n", b"41")
        calls: list[str] = []
        async with _spied(db, calls) as tx:
            n = int(await tx.get(b"n"))
            tx.set(b"n", b"%d" % (n + 1))
            tx.set(b"log", b"incremented")
            assert tx.tx_id is not None
        assert calls == ["BeginTx", "TxGet", "CommitBatch"]
        assert await db.get_many([b"n", b"log"]) == [b"42", b"incremented"]

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0


async def test_an_empty_block_sends_nothing_and_a_read_only_one_commits_empty(
    rt: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        calls: list[str] = []
        async with _spied(db, calls):
            pass
        assert calls == []
        async with _spied(db, calls) as tx:
            assert not await tx.exists(b"k")
        assert calls == ["BeginTx", "TxExists", "CommitBatch"]

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0


# --- reads -----------------------------------------------------------------------------------


async def test_reads_see_the_buffer_first(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set_many({b"a": b"old", b"b": b"keep", b"c": b"gone"})
        async with db.transaction() as tx:
            tx.set(b"a", b"first")
            tx.set(b"a", b"new")  # a later write of a key wins
            tx.delete(b"c")
            tx.set(b"d", b"added")
            assert len(tx) == 3
            assert await tx.get(b"a") == b"new"
            assert await tx.get(b"b") == b"keep"  # read through the server
            assert await tx.get(b"c", None) is None
            with pytest.raises(kv.KeyNotFound):
                await tx.get(b"c")
            with pytest.raises(kv.KeyNotFound):
                await tx.get(b"never")
            assert await tx.get(b"never", b"dflt") == b"dflt"
            assert not await tx.exists(b"c")
            assert await tx.exists(b"d")
            assert await tx.exists(b"b")
        assert [i async for i in db.scan()] == [(b"a", b"new"), (b"b", b"keep"), (b"d", b"added")]

    await run_as(rt, OWNER, body)


async def test_typed_codecs_go_through_the_transaction(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = (await kv.open(ctx, ctx.package_id, "t")).typed(Utf8Codec(), JSON)
        await db.set("alice", {"balance": 10})
        async with db.transaction() as tx:
            alice = await tx.get("alice")
            tx.set("alice", {"balance": alice["balance"] - 3})
            tx.set("bob", {"balance": 3})
            assert await tx.get("bob") == {"balance": 3}
        assert await db.get("alice") == {"balance": 7}
        assert await db.get("bob") == {"balance": 3}

    await run_as(rt, OWNER, body)


# --- atomicity and rollback ------------------------------------------------------------------


@pytest.mark.parametrize("with_read", [False, True])
async def test_a_refused_write_applies_nothing(rt: Runtime, with_read: bool) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"k", b"before")

        async def block() -> None:
            async with db.transaction() as tx:
                if with_read:
                    await tx.get(b"k")
                tx.set(b"k", b"after")
                tx.set(b"big", b"x" * 1001)
                tx.set(b"z", b"z")

        with pytest.raises(kv.ValueTooLarge):
            await block()
        assert [i async for i in db.scan()] == [(b"k", b"before")]

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0  # the server transaction was rolled back


async def test_an_exception_in_the_block_applies_nothing_and_rolls_back(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"k", b"v")
        tx = db.transaction()

        async def block() -> None:
            async with tx:
                assert await tx.get(b"k") == b"v"
                assert tx.tx_id is not None
                tx.set(b"k", b"w")
                tx.set(b"other", b"x")
                raise ValueError("changed my mind")

        with pytest.raises(ValueError, match="changed my mind"):
            await block()
        assert kv_of(rt).open_transactions == 0
        assert [i async for i in db.scan()] == [(b"k", b"v")]
        with pytest.raises(RuntimeError, match="has ended"):
            tx.set(b"k", b"late")
        with pytest.raises(RuntimeError, match="has ended"):
            await tx.get(b"k")

    await run_as(rt, OWNER, body)


# --- the conflict check ----------------------------------------------------------------------


async def test_a_conflicting_commit_batch_applies_nothing(rt: Runtime) -> None:
    """A reads k in its transaction; B changes k; A's exit raises and applies nothing."""
    read_done, changed = anyio.Event(), anyio.Event()

    async def a(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"k", b"1")

        async def block() -> None:
            async with db.transaction() as tx:
                seen = int(await tx.get(b"k"))
                tx.set(b"k", b"%d" % (seen + 1))
                tx.set(b"side", b"effect")
                read_done.set()
                await changed.wait()

        with pytest.raises(kv.TransactionConflict, match="conflicts"):
            await block()
        assert await db.get(b"k") == b"100"
        assert not await db.exists(b"side")

    async def b(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await read_done.wait()
        await db.set(b"k", b"100")
        changed.set()

    handle = await rt.spawn(OTHER, b, request_capabilities=["kv:distro:sys"])
    await run_as(rt, OWNER, a)
    await handle.wait()
    assert kv_of(rt).open_transactions == 0


async def test_a_write_batch_is_seen_by_the_conflict_check(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"k", b"1")

        async def block() -> None:
            async with db.transaction() as tx:
                await tx.get(b"k")
                tx.set(b"out", b"x")
                await db.write_batch({b"k": None, b"j": b"2"})  # another writer's batch

        with pytest.raises(kv.TransactionConflict):
            await block()
        assert not await db.exists(b"out")

    await run_as(rt, OWNER, body)


async def test_blind_writes_never_conflict(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        async with db.transaction() as tx:
            assert await tx.get(b"read", None) is None
            tx.set(b"k", b"mine")
            await db.set(b"k", b"theirs")  # k was written, never read: no conflict
        assert await db.get(b"k") == b"mine"

    await run_as(rt, OWNER, body)


async def test_transact_batched_retries_a_conflict(rt: Runtime) -> None:
    attempts = 0

    async def body(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"n", b"1")

        async def bump(tx: Transaction[bytes, bytes]) -> int:
            nonlocal attempts
            attempts += 1
            n = int(await tx.get(b"n"))
            if attempts == 1:
                await db.set(b"n", b"10")  # a concurrent writer, on the first attempt only
            tx.set(b"n", b"%d" % (n + 1))
            return n + 1

        result = await db.transact_batched(bump)
        assert await db.get(b"n") == b"11"
        return result

    assert await run_as(rt, OWNER, body) == 11
    assert attempts == 2


async def test_transact_batched_gives_up_after_its_retries(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, ctx.package_id, "t")
        tries = 0

        async def always_raced(tx: Transaction[bytes, bytes]) -> None:
            nonlocal tries
            tries += 1
            await tx.get(b"n", None)
            await db.set(b"n", b"%d" % tries)
            tx.set(b"n", b"never")

        with pytest.raises(kv.TransactionConflict):
            await db.transact_batched(always_raced, retries=2)
        assert await db.get(b"n") == b"3"
        return tries

    assert await run_as(rt, OWNER, body) == 3


# --- capabilities ----------------------------------------------------------------------------


async def test_pipelined_writes_need_the_write_capability(rt: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set(b"k", b"v")
        await db.share("reader:guest:bob.os")

    await run_as(rt, OWNER, owner)

    async def refused(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "t")
        with pytest.raises(kv.NoWriteCap):
            async with db.transaction() as tx:
                tx.set(b"k", b"w")
        with pytest.raises(kv.NoWriteCap):  # a read begins a server transaction: write cap
            async with db.transaction() as tx:
                await tx.get(b"k")
        with pytest.raises(kv.NoWriteCap):
            await db.write_batch([(b"k", None)])
        for action in (WriteBatch(tx_id=None, count=1), CommitBatch(tx_id=1, count=1)):
            with pytest.raises(kv.NoWriteCap):
                await request(
                    ctx, PACKAGE, "t", action, blob=encode_writes([(b"k", b"w")]), timeout=5
                )

    await run_as(rt, "reader:guest:bob.os", refused)
    await run_as(rt, "eve:other:eve.os", refused)

    async def check(ctx: ProcessContext) -> list[tuple[bytes, bytes]]:
        return [i async for i in (await kv.open(ctx, ctx.package_id, "t")).scan()]

    assert await run_as(rt, OWNER, check) == [(b"k", b"v")]


# --- limits ----------------------------------------------------------------------------------


async def test_write_batch_mixes_sets_and_deletes_and_the_last_op_wins(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        await db.set_many({b"a": b"1", b"b": b"2"})
        await db.write_batch([(b"a", None), (b"c", b"3"), (b"b", None), (b"b", b"back")])
        await db.write_batch([])
        assert [i async for i in db.scan()] == [(b"b", b"back"), (b"c", b"3")]

    await run_as(rt, OWNER, body)


async def test_a_batch_over_the_item_bound_is_refused(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        with pytest.raises(kv.BatchTooLarge, match="51 items exceeds the limit of 50"):
            await db.write_batch((b"%d" % i, b"v") for i in range(51))

        async def block(with_read: bool) -> None:
            async with db.transaction(max_batch_items=100) as tx:  # told a larger bound
                if with_read:
                    await tx.get(b"x", None)
                for i in range(51):
                    tx.set(b"%d" % i, b"v")

        for with_read in (False, True):
            with pytest.raises(kv.BatchTooLarge):
                await block(with_read)
        assert [k async for k in db.keys()] == []

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0


async def test_a_transaction_larger_than_one_batch_is_sent_in_chunks_and_commits_whole(
    rt: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        calls: list[str] = []
        async with _spied(db, calls, max_batch_items=50) as tx:
            for i in range(120):
                tx.set(b"%03d" % i, b"v")
        assert calls == ["BeginTx", "WriteBatch", "WriteBatch", "CommitBatch"]
        assert len([k async for k in db.keys()]) == 120

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0


async def test_transaction_too_large_applies_nothing(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        # One blob over the transaction bound.
        with pytest.raises(kv.TransactionTooLarge):
            await db.write_batch((b"%d" % i, b"v" * 900) for i in range(6))

        # Chunks that pass one by one but add up past it, staged in the server transaction.
        async def block() -> None:
            async with db.transaction(max_batch_items=2) as tx:
                for i in range(12):
                    tx.set(b"%02d" % i, b"v" * 500)

        with pytest.raises(kv.TransactionTooLarge, match="exceeds the limit of 5000"):
            await block()
        assert [k async for k in db.keys()] == []

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0


async def test_a_staging_refusal_keeps_the_transaction_open_and_unchanged(rt: Runtime) -> None:
    """WriteBatch / CommitBatch with a tx_id stage all their writes or none (as Set)."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        tx = await db.begin_tx()
        await db.set(b"staged", b"v" * 900, tx_id=tx)
        big = encode_writes([(b"%d" % i, b"v" * 900) for i in range(5)])
        for action in (WriteBatch(tx_id=tx, count=5), CommitBatch(tx_id=tx, count=5)):
            with pytest.raises(kv.TransactionTooLarge):
                await request(ctx, PACKAGE, "t", action, blob=big, timeout=5)
        ok = encode_writes([(b"b", b"2"), (b"gone", None)])
        await request(ctx, PACKAGE, "t", WriteBatch(tx_id=tx, count=2), blob=ok, timeout=5)
        assert await db.get(b"b", tx_id=tx) == b"2"
        await request(
            ctx,
            PACKAGE,
            "t",
            CommitBatch(tx_id=tx, count=1),
            blob=encode_writes([(b"c", b"3")]),
            timeout=5,
        )
        assert [k async for k in db.keys()] == [b"b", b"c", b"staged"]
        with pytest.raises(kv.NoTx):  # the commit ended it
            await db.commit_tx(tx)

    await run_as(rt, OWNER, body)
    assert kv_of(rt).open_transactions == 0


async def test_an_unknown_transaction_is_no_tx(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        blob = encode_writes([(b"k", b"v")])
        for action in (WriteBatch(tx_id=12345, count=1), CommitBatch(tx_id=12345, count=1)):
            with pytest.raises(kv.NoTx):
                await request(ctx, PACKAGE, "t", action, blob=blob, timeout=5)
        assert not await db.exists(b"k")

    await run_as(rt, OWNER, body)


# --- malformed requests ----------------------------------------------------------------------

_BAD_BLOBS = [
    None,  # the blob is required
    b"\xc1",  # not msgpack
    b"\x91\x92\xc4\x01k\xc4\x01v",  # one entry, count says two
    b"\x92\x92\xc4\x01k\xc4\x01v\x92\xa1k\xc4\x01v",  # a str key
    b"\x92\x92\xc4\x01k\xc4\x01v\x92\xc4\x01j\x01",  # an int value
    b"\x92\x92\xc4\x01k\xc4\x01v\x91\xc4\x01j",  # an entry of one
    b"\x92\x92\xc4\x01k\xc4\x01v\x92\xc4\x01j\xc0\x00",  # trailing bytes
]


@pytest.mark.parametrize("blob", _BAD_BLOBS)
async def test_a_malformed_writes_blob_is_malformed_request(
    rt: Runtime, blob: bytes | None
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        with pytest.raises(kv.MalformedRequest):
            await request(ctx, PACKAGE, "t", WriteBatch(tx_id=None, count=2), blob=blob, timeout=5)
        tx = await db.begin_tx()
        for action in (WriteBatch(tx_id=tx, count=2), CommitBatch(tx_id=tx, count=2)):
            with pytest.raises(kv.MalformedRequest):
                await request(ctx, PACKAGE, "t", action, blob=blob, timeout=5)
        await db.commit_tx(tx)  # still open, with nothing staged
        assert [k async for k in db.keys()] == []

    await run_as(rt, OWNER, body)


async def test_oversized_writes_are_refused_before_anything_is_sent(rt: Runtime) -> None:
    """write_batch and the pipelined transaction hold keys and values to the
    handle's limits, as every other write of the client does: nothing is sent."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "limits", max_key_bytes=4, max_value_bytes=8)
        ids_before = ctx._bus.next_id()
        with pytest.raises(kv.KeyTooLarge):
            await db.write_batch([(b"ok", b"1"), (b"too-long", None)])
        with pytest.raises(kv.ValueTooLarge):
            await db.write_batch([(b"ok", b"123456789")])

        async def transaction(writes: list[tuple[bytes, bytes | None]]) -> None:
            async with db.transaction() as tx:
                for key, value in writes:
                    if value is None:
                        tx.delete(key)
                    else:
                        tx.set(key, value)

        with pytest.raises(kv.ValueTooLarge):
            await transaction([(b"a", b"1"), (b"b", b"123456789")])
        with pytest.raises(kv.KeyTooLarge):
            await transaction([(b"too-long", None)])
        assert ctx._bus.next_id() == ids_before + 1  # no request in between
        assert await db.get_many([b"ok", b"a"]) == [None, None]

    await run_as(rt, "app:limits:pub.os", body)


# --- a model of the buffer: random stagings, committed, read back -------------------------------


@pytest.mark.parametrize("seed", range(6))
async def test_random_stagings_commit_as_a_model_of_the_buffer(rt: Runtime, seed: int) -> None:
    """Random sets, deletes and TTL sets over a few keys (with repeats, so the last
    write of a key wins), sometimes a read of the buffer or of the server on the
    way: what the db holds after each commit is what a dict model says, and each
    read saw the model's value at that point. Guards any change of how the
    transaction stages its writes (issue 12, stop 24)."""
    rng = random.Random(seed)
    keys = [b"k%d" % i for i in range(12)]

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "t")
        model: dict[bytes, bytes] = {}
        expiring: set[bytes] = set()
        for round_ in range(8):
            staged = dict(model)
            staged_ttl = set(expiring)
            async with db.transaction(max_batch_items=rng.choice((5, 50))) as tx:
                for step in range(rng.randrange(0, 70)):
                    key = rng.choice(keys)
                    roll = rng.random()
                    if roll < 0.2:
                        tx.delete(key)
                        staged.pop(key, None)
                        staged_ttl.discard(key)
                    elif roll < 0.3:
                        value = b"t%d.%d" % (round_, step)
                        tx.set(key, value, ttl=1000)
                        staged[key] = value
                        staged_ttl.add(key)
                    elif roll < 0.35:
                        assert await tx.get(key, None) == staged.get(key)
                    else:
                        value = b"v%d.%d" % (round_, step) * rng.randrange(1, 4)
                        tx.set(key, value)
                        staged[key] = value
                        staged_ttl.discard(key)
            model, expiring = staged, staged_ttl
            assert dict([i async for i in db.scan()]) == model
            for key in keys:
                ttl = await db.ttl(key) if key in model else None
                assert (ttl is not None) == (key in expiring), key

    await run_as(rt, OWNER, body)
