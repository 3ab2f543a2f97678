"""Transactions of kv:distro:sys: isolation, atomic commit, ownership, limits and expiry."""

from __future__ import annotations

from pathlib import Path

import anyio
import attrs
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import (
    BeginTx,
    BeginTxResponse,
    Commit,
    ErrResponse,
    KvRequest,
    NoTx,
    Set,
    TooManyTransactions,
    TransactionTooLarge,
)
from tests.conftest import FakeClock, run_as
from tests.internals import kv_of, set_tx_clock

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")
MAX_TXS = 3
MAX_TX_BYTES = 256


@pytest.fixture
def config() -> KvConfig:
    """Few transactions per sender and a small staging budget."""
    return KvConfig(max_transactions_per_sender=MAX_TXS, max_transaction_bytes=MAX_TX_BYTES)


async def test_staged_writes_are_invisible_until_an_atomic_commit(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        await db.set(b"doomed", b"here")
        await db.set(b"kept", b"old")
        tx = await db.begin_tx()
        for i in range(20):
            await db.set(b"key%d" % i, b"%d" % i, tx_id=tx)
        await db.set(b"kept", b"new", tx_id=tx)
        await db.delete(b"doomed", tx_id=tx)
        await db.set(b"twice", b"first", tx_id=tx)
        await db.set(b"twice", b"second", tx_id=tx)
        assert not await db.exists(b"key0")
        assert await db.get(b"key19", None) is None
        assert await db.get(b"kept") == b"old"
        assert await db.get(b"doomed") == b"here"
        await db.commit_tx(tx)
        for i in range(20):
            assert await db.get(b"key%d" % i) == b"%d" % i
        assert await db.get(b"kept") == b"new"
        assert await db.get(b"twice") == b"second"
        assert not await db.exists(b"doomed")
        with pytest.raises(kv.NoTx, match=f"no transaction {tx} found"):
            await db.commit_tx(tx)  # a commit ends the transaction
        with pytest.raises(kv.NoTx):
            await db.set(b"late", b"x", tx_id=tx)
        assert not await db.exists(b"late")

    await run_as(rt, APP, body)


async def test_plain_writes_accepted_before_a_commit_land_before_it(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        tx = await db.begin_tx()
        await db.set(b"k", b"from tx", tx_id=tx)
        await db.set(b"other", b"plain")
        await db.set(b"k", b"plain")  # accepted before the commit, so the commit wins
        await db.commit_tx(tx)
        assert await db.get(b"k") == b"from tx"
        assert await db.get(b"other") == b"plain"

    await run_as(rt, APP, body)


async def test_a_transaction_belongs_to_its_sender_and_db(rt: Runtime) -> None:
    tx_ids: list[int] = []

    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        other = await kv.open(ctx, PKG, "other")
        tx = await db.begin_tx()
        tx_ids.append(tx)
        await db.set(b"k", b"staged", tx_id=tx)
        await db.share("thief:app:pub.os", write=True)
        for attempt in (other.set(b"k", b"x", tx_id=tx), other.commit_tx(tx)):
            with pytest.raises(kv.NoTx) as caught:
                await attempt
            assert caught.value.error == NoTx(tx_id=tx)

    async def thief(ctx: ProcessContext) -> None:  # same package, write access, not the owner
        db = kv.handle(ctx, PKG, "db")
        for attempt in (db.set(b"k", b"stolen", tx_id=tx_ids[0]), db.commit_tx(tx_ids[0])):
            with pytest.raises(kv.NoTx):
                await attempt
        await db.set(b"plain", b"thief was here")

    async def owner_again(ctx: ProcessContext) -> bytes:
        db = kv.handle(ctx, PKG, "db")
        assert not await db.exists(b"k")
        await db.commit_tx(tx_ids[0])  # the failed attempts did not consume it
        return await db.get(b"k")

    await run_as(rt, APP, owner)
    await run_as(rt, "thief:app:pub.os", thief)
    assert await run_as(rt, APP, owner_again) == b"staged"


async def test_unknown_transaction_ids_are_notx(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        real = await db.begin_tx()
        for tx_id in (0, 1, 2**64 - 1, real ^ 1):
            with pytest.raises(kv.NoTx) as caught:
                await db.set(b"k", b"v", tx_id=tx_id)
            assert caught.value.error == NoTx(tx_id=tx_id)
            with pytest.raises(kv.NoTx):
                await db.delete(b"k", tx_id=tx_id)
            with pytest.raises(kv.NoTx):
                await db.commit_tx(tx_id)
        assert not await db.exists(b"k")

    await run_as(rt, APP, body)


async def test_open_transactions_per_sender_are_bounded(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[int]:
        one, two = await kv.open(ctx, PKG, "one"), await kv.open(ctx, PKG, "two")
        txs = [await one.begin_tx(), await two.begin_tx(), await one.begin_tx()]
        assert len(set(txs)) == MAX_TXS
        for db in (one, two):  # the bound is per sender, across dbs
            with pytest.raises(kv.TooManyTransactions, match="limit 3") as caught:
                await db.begin_tx()
            assert caught.value.error == TooManyTransactions(max=MAX_TXS)
        # raw: the error carries no metadata
        request = KvRequest(package_id=PKG, db="one", action=BeginTx())
        message = await ctx.send_and_await_response(
            KV_PROCESS_ID, encode_request(request), metadata="m"
        )
        assert decode_response(message.body) == ErrResponse(error=TooManyTransactions(max=MAX_TXS))
        assert message.metadata is None
        await one.commit_tx(txs[0])
        txs.append(await one.begin_tx())  # a commit frees a slot
        return txs

    async def sibling(ctx: ProcessContext) -> None:  # another sender has its own budget
        db = await kv.open(ctx, PKG, "one")
        for _ in range(MAX_TXS):
            await db.begin_tx()

    await run_as(rt, APP, body)
    await run_as(rt, "sibling:app:pub.os", sibling)


async def test_a_transaction_cannot_stage_more_than_its_budget(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        tx = await db.begin_tx()
        await db.set(b"a", b"x" * 199, tx_id=tx)  # 200 bytes staged
        with pytest.raises(kv.TransactionTooLarge) as caught:
            await db.set(b"b", b"y" * 59, tx_id=tx)  # would be 260
        assert caught.value.error == TransactionTooLarge(size=260, max=MAX_TX_BYTES)
        assert str(caught.value) == "transaction of 260 bytes exceeds the limit of 256"
        request = KvRequest(package_id=PKG, db="db", action=Set(key=b"b", tx_id=tx))
        message = await ctx.send_and_await_response(
            KV_PROCESS_ID, encode_request(request), blob=b"y" * 59, metadata="m"
        )
        assert decode_response(message.body) == ErrResponse(
            error=TransactionTooLarge(size=260, max=MAX_TX_BYTES)
        )
        assert message.metadata is None
        await db.set(b"a", b"x" * 99, tx_id=tx)  # replacing a staged write frees its bytes
        await db.set(b"b", b"y" * 59, tx_id=tx)  # 100 + 60 = 160
        await db.set(b"c", b"z" * 95, tx_id=tx)  # 256: exactly the limit
        await db.commit_tx(tx)
        assert [await db.get(k) for k in (b"a", b"b", b"c")] == [b"x" * 99, b"y" * 59, b"z" * 95]

    await run_as(rt, APP, body)


async def test_idle_transactions_expire(home: Path) -> None:
    idle = 30.0
    clock = FakeClock()
    config = attrs.evolve(KvConfig(), transaction_idle_seconds=idle, max_transactions_per_sender=2)

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        stale, kept = await db.begin_tx(), await db.begin_tx()
        await db.set(b"stale", b"x", tx_id=stale)
        with pytest.raises(kv.TooManyTransactions):
            await db.begin_tx()
        for _ in range(6):  # use keeps a transaction alive: 3 x idle in all
            clock.advance(idle / 2)
            await db.set(b"kept", b"y", tx_id=kept)
        await db.commit_tx(kept)
        assert await db.get(b"kept") == b"y"
        with pytest.raises(kv.NoTx):
            await db.commit_tx(stale)
        assert not await db.exists(b"stale")
        late = await db.begin_tx()
        clock.advance(1.2 * idle)  # expired, whether or not the sweeper has run
        with pytest.raises(kv.NoTx):
            await db.set(b"late", b"x", tx_id=late)
        # expired transactions free their slots
        await db.begin_tx()
        await db.begin_tx()

    async with Runtime(home=home, config=config) as rt:
        set_tx_clock(rt, clock)
        await run_as(rt, APP, body)


async def test_an_expired_transaction_no_longer_counts_against_the_limit(home: Path) -> None:
    # The sweeper runs every idle/2 seconds (here: 15 s of real time, so never
    # within this test); a BeginTx arriving between a transaction's expiry and
    # the next sweep must not be refused for it.
    idle = 30.0
    clock = FakeClock()
    config = attrs.evolve(KvConfig(), transaction_idle_seconds=idle, max_transactions_per_sender=1)

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        for _ in range(3):
            await db.begin_tx()
            clock.advance(idle * 1.2)

    async with Runtime(home=home, config=config) as rt:
        set_tx_clock(rt, clock)
        await run_as(rt, APP, body)


async def test_the_sweeper_expires_transactions_nobody_looks_up(home: Path) -> None:
    config = attrs.evolve(KvConfig(), transaction_idle_seconds=0.2)

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        for _ in range(5):
            await db.begin_tx()

    async with Runtime(home=home, config=config) as rt:
        await run_as(rt, APP, body)
        assert kv_of(rt).open_transactions == 5
        for _ in range(100):  # the sweeper runs every 0.1 s here; allow 5 s on a loaded machine
            if not kv_of(rt).open_transactions:
                break
            await anyio.sleep(0.05)
        assert kv_of(rt).open_transactions == 0


async def test_begin_tx_answers_a_fresh_unguessable_id(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[int]:
        ids = []
        for db in ("a", "b", "c"):
            request = KvRequest(package_id=PKG, db=db, action=BeginTx())
            await kv.open(ctx, PKG, db)
            response = decode_response(
                (
                    await ctx.send_and_await_response(
                        KV_PROCESS_ID, encode_request(request), metadata="m"
                    )
                ).body
            )
            assert isinstance(response, BeginTxResponse)
            ids.append(response.tx_id)
            commit = KvRequest(package_id=PKG, db=db, action=Commit(tx_id=response.tx_id))
            await ctx.send_and_await_response(KV_PROCESS_ID, encode_request(commit))
        return ids

    ids = await run_as(rt, APP, body)
    assert len(set(ids)) == 3
    assert all(0 <= i < 2**64 for i in ids)
    assert max(ids) >= 2**32  # 64 random bits, not a counter (fails with odds 2**-96)
