"""Keys with a TTL (issue 14), on every engine, through the client.

The kv process reads deadlines by an injected FakeClock (wall-clock seconds)
and its background sweeper waits an hour between steps, so a test moves
time and sweeps by hand (``tests.internals``): no sleeps, nothing racy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from kvruntime.kvservice.reserved import DEADLINE, EXPIRY_INDEX, RESERVED
from kvruntime.kvservice.ttl_actions import MAX_TTL_MS
from protocol.blobs import encode_items
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import (
    ErrResponse,
    Expire,
    KeyNotFound,
    KeyReserved,
    KvAction,
    KvRequest,
    KvResponse,
    MalformedRequest,
    Persist,
    SetExpiring,
    SetManyExpiring,
    SetTtlPolicy,
    Ttl,
    TtlResponse,
    TtlTooLarge,
)
from tests.conftest import FakeClock, run_as
from tests.internals import in_store, set_expiry_clock, sweep_expired

from .conftest import ENGINES, PERSISTS

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")


@pytest.fixture
def config() -> KvConfig:
    """The suite's small bounds; a sweeper step of 2 keys, never run on its own."""
    return KvConfig(
        max_key_bytes=32,
        max_value_bytes=128,
        max_scan_items=3,
        max_batch_items=4,
        expiry_sweep_keys=2,
        expiry_sweep_seconds=3600.0,
    )


async def records(rt: Runtime) -> list[bytes]:
    """kv's own expiry records in the db ``main`` (deadlines and the index)."""
    keys = await in_store(rt, PKG, "main", lambda s: list(s.iterate(start=RESERVED)))
    return [key for key, _ in keys if key.startswith((DEADLINE, EXPIRY_INDEX))]


async def test_an_expired_key_is_absent_to_every_read_before_any_sweep(
    runtime: Runtime, clock: FakeClock
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"session:1", b"token", ttl=30.0)
        await db.set(b"stays", b"v")
        assert await db.ttl(b"session:1") == 30.0
        assert await db.ttl(b"stays") is None
        clock.advance(10)
        assert await db.ttl(b"session:1") == 20.0
        assert await db.get(b"session:1") == b"token"
        tx_id = await db.begin_tx()
        clock.advance(20)  # the deadline, exactly: expired
        with pytest.raises(kv.KeyNotFound):
            await db.get(b"session:1")
        assert await db.exists(b"session:1") is False
        assert await db.get_many([b"session:1", b"stays"]) == [None, b"v"]
        assert [k async for k, _ in db.scan()] == [b"stays"]
        assert [k async for k in db.keys(reverse=True)] == [b"stays"]
        with pytest.raises(kv.KeyNotFound):
            await db.ttl(b"session:1")
        with pytest.raises(kv.KeyNotFound):
            await db.expire(b"session:1", 5.0)
        with pytest.raises(kv.KeyNotFound):
            await db.persist(b"session:1")
        # Reads inside a transaction, and the atomics, see it absent too.
        assert await db.exists(b"session:1", tx_id=tx_id) is False
        with pytest.raises(kv.KeyNotFound):
            await db.get(b"session:1", tx_id=tx_id)
        page = await db.list_page(tx_id=tx_id)
        assert [k for k, _ in page.items] == [b"stays"]
        await db.rollback_tx(tx_id)
        await db.compare_and_swap(b"session:1", None, b"fresh")  # absent: the swap holds
        assert await db.ttl(b"session:1") is None  # a write without ttl: no expiry
        await db.set(b"n", b"41", ttl=1.0)
        clock.advance(1)
        assert await db.increment(b"n") == 1  # expired: counts from 0, with no TTL
        assert await db.ttl(b"n") is None

    await run_as(runtime, APP, body)


async def test_set_without_ttl_clears_it_and_expire_persist_set_it_again(
    runtime: Runtime, clock: FakeClock
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"k", b"1", ttl=5.0)
        await db.set(b"k", b"2")  # as Redis SET: the expiry goes
        assert await db.ttl(b"k") is None
        await db.expire(b"k", 2.5)
        assert await db.ttl(b"k") == 2.5
        await db.expire(b"k", 100)  # a later deadline replaces it
        assert await db.ttl(b"k") == 100.0
        await db.persist(b"k")
        await db.persist(b"k")  # no expiry is fine
        assert await db.ttl(b"k") is None
        await db.set(b"c", b"1", ttl=10.0)
        assert await db.increment(b"c", 4) == 5  # as Redis INCR: the expiry stays
        assert await db.ttl(b"c") == 10.0
        await db.set_many({b"a": b"1", b"b": b"2"}, ttl=3.0)
        assert await db.ttl(b"a") == await db.ttl(b"b") == 3.0
        await db.set_many({b"a": b"3"})  # a batch without ttl clears it too
        assert await db.ttl(b"a") is None
        await db.write_batch([(b"b", None)])
        with pytest.raises(kv.KeyNotFound):
            await db.ttl(b"b")
        with pytest.raises(kv.KeyNotFound):
            await db.ttl(b"never")
        with pytest.raises(kv.KeyNotFound):
            await db.expire(b"never", 1.0)
        with pytest.raises(ValueError, match="positive"):
            await db.set(b"k", b"v", ttl=0)
        with pytest.raises(ValueError, match="positive"):
            await db.expire(b"k", float("nan"))
        clock.advance(1000)
        assert sorted([k async for k, _ in db.scan()]) == [b"a", b"k"]

    await run_as(runtime, APP, body)
    # Only the keys still with a TTL keep records (c: its deadline and index entry).
    assert await records(runtime) == [
        EXPIRY_INDEX + (1_010_000).to_bytes(8, "big") + b"c",
        DEADLINE + b"c",
    ]


async def test_the_sweeper_removes_expired_keys_in_bounded_steps(
    runtime: Runtime, clock: FakeClock
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set_many({b"a": b"1", b"b": b"2", b"c": b"3"}, ttl=1.0)
        await db.set(b"d", b"4", ttl=60.0)
        await db.set(b"e", b"5")

    await run_as(runtime, APP, body)
    assert await sweep_expired(runtime) == 0  # nothing due yet
    clock.advance(1)
    assert await sweep_expired(runtime) == 2  # a step takes at most expiry_sweep_keys
    assert await sweep_expired(runtime) == 1
    assert await sweep_expired(runtime) == 0
    data = await in_store(runtime, PKG, "main", lambda s: list(s.iterate(stop=RESERVED)))
    assert [k for k, _ in data] == [b"d", b"e"]
    assert await records(runtime) == [
        EXPIRY_INDEX + (1_060_000).to_bytes(8, "big") + b"d",
        DEADLINE + b"d",
    ]

    async def after(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        assert await db.ttl(b"d") == 59.0
        assert await db.delete_range() == 2  # what was left: d and e
        clock.advance(100)
        assert await sweep_expired(runtime) == 0  # d went with its records

    await run_as(runtime, APP, after)
    assert await records(runtime) == []


async def _use_lease(
    db: kv.Kv[bytes, bytes], held: bytes, meanwhile: Callable[[], Awaitable[None]]
) -> None:
    async with db.transaction() as tx:
        assert await tx.get(b"lease") == held
        await meanwhile()
        tx.set(b"used", b"lease")


async def test_an_expiry_counts_as_a_write_to_the_conflict_check(
    runtime: Runtime, clock: FakeClock
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"lease", b"mine", ttl=5.0)

        async def advance() -> None:
            clock.advance(5)

        with pytest.raises(kv.TransactionConflict):  # it expires (no sweep) before the commit
            await _use_lease(db, b"mine", advance)
        assert await db.exists(b"used") is False
        await db.set(b"lease", b"again", ttl=5.0)

        async def expire_and_sweep() -> None:
            clock.advance(5)
            assert await sweep_expired(runtime) == 1  # the sweeper's delete is a write too

        with pytest.raises(kv.TransactionConflict):
            await _use_lease(db, b"again", expire_and_sweep)
        await db.set(b"lease", b"third", ttl=5.0)
        tx_id = await db.begin_tx()
        assert await db.get(b"lease", tx_id=tx_id) == b"third"
        await db.expire(b"lease", 50.0)  # changing the deadline is a write of the key
        await db.set(b"x", b"1", tx_id=tx_id)
        with pytest.raises(kv.TransactionConflict):
            await db.commit_tx(tx_id)
        async with db.transaction() as tx:  # unread: no conflict
            tx.set(b"lease", b"fourth", ttl=2.0)
            tx.set(b"plain", b"p", ttl=9.0)
            tx.set(b"plain", b"p")  # a later set without ttl wins
        assert await db.get(b"lease") == b"fourth"
        assert await db.ttl(b"lease") == 2.0
        assert await db.ttl(b"plain") is None
        tx_id = await db.begin_tx()
        await db.set(b"staged", b"s", tx_id=tx_id, ttl=4.0)
        await db.set(b"other", b"o", tx_id=tx_id, ttl=4.0)
        await db.delete(b"other", tx_id=tx_id)
        await db.commit_tx(tx_id)
        assert await db.ttl(b"staged") == 4.0
        assert await db.exists(b"other") is False

    await run_as(runtime, APP, body)
    assert DEADLINE + b"other" not in await records(runtime)


async def _transaction_setting(db: kv.Kv[bytes, bytes], key: bytes, *, ttl: float) -> None:
    async with db.transaction() as tx:
        tx.set(key, b"v", ttl=ttl)


@pytest.mark.usefixtures("staging_path")  # tx.set with a ttl, in C and in Python
async def test_the_ttl_policy_of_a_db(runtime: Runtime, clock: FakeClock) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"k", b"v", ttl=5.0)
        await db.set_ttl_policy(max_ttl=60.0)
        with pytest.raises(kv.TtlTooLarge, match="60000 ms"):
            await db.set(b"k", b"v", ttl=61.0)
        with pytest.raises(kv.TtlTooLarge):
            await db.expire(b"k", 3600.0)
        await db.set(b"k", b"v", ttl=60.0)
        await db.set_ttl_policy()  # no maximum but kv's own, about 100 years
        with pytest.raises(kv.TtlTooLarge, match="3153600000000 ms"):
            await db.expire(b"k", 1e12)
        with pytest.raises(ValueError, match="does not fit"):
            await db.expire(b"k", 1e17)
        await db.set_ttl_policy(enabled=False)  # every expiry goes with it
        assert await db.ttl(b"k") is None
        for refused in (
            db.set(b"j", b"v", ttl=1.0),
            db.set_many({b"j": b"v"}, ttl=1.0),
            db.expire(b"k", 1.0),
        ):
            with pytest.raises(kv.TtlDisabled):
                await refused
        with pytest.raises(kv.TtlDisabled):
            await _transaction_setting(db, b"j", ttl=1.0)
        clock.advance(3600)
        assert await db.get(b"k") == b"v"
        assert await db.exists(b"j") is False
        await db.set_ttl_policy()  # enabled again, no maximum
        await db.set(b"j", b"v", ttl=1e6)
        assert await db.ttl(b"j") == 1e6

    await run_as(runtime, APP, body)


@pytest.mark.parametrize("storage", [e for e in ENGINES if PERSISTS[e]], indirect=True)
async def test_deadlines_and_the_policy_survive_a_restart(
    home: Path, config: KvConfig, clock: FakeClock, storage: str
) -> None:
    """A deadline is absolute (wall clock) and kept with the data: a restart keeps
    it, and a key that expired while the runtime was down is absent at once."""

    async def before(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"short", b"1", ttl=10.0)
        await db.set(b"long", b"2", ttl=100.0)
        await db.set_ttl_policy(max_ttl=200.0)

    async with Runtime(home=home, config=config, storage=storage) as rt:
        set_expiry_clock(rt, clock)
        await run_as(rt, APP, before)
    clock.advance(30)  # while it is down

    async def after(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        assert await db.exists(b"short") is False
        assert await db.ttl(b"long") == 70.0
        with pytest.raises(kv.TtlTooLarge):
            await db.expire(b"long", 201.0)

    async with Runtime(home=home, config=config, storage=storage) as rt:
        set_expiry_clock(rt, clock)
        await run_as(rt, APP, after)
        assert await sweep_expired(rt) == 1
        assert await records(rt) == [
            EXPIRY_INDEX + (1_100_000).to_bytes(8, "big") + b"long",
            DEADLINE + b"long",
        ]


async def _raw(ctx: ProcessContext, action: KvAction, blob: bytes | None = None) -> KvResponse:
    body = encode_request(KvRequest(package_id=PKG, db="main", action=action))
    message = await ctx.send_and_await_response(KV_PROCESS_ID, body, blob=blob)
    return decode_response(message.body)


async def test_ttl_edges_on_the_wire_get_typed_errors(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"k", b"v")
        malformed = ErrResponse(error=MalformedRequest())
        assert await _raw(ctx, SetExpiring(key=b"k", tx_id=None, ttl_ms=0), b"v") == malformed
        assert await _raw(ctx, Expire(key=b"k", ttl_ms=0)) == malformed
        assert await _raw(ctx, SetTtlPolicy(enabled=True, max_ttl_ms=0)) == malformed
        huge = await _raw(
            ctx, SetManyExpiring(count=1, ttl_ms=2**64 - 1), encode_items([(b"a", b"1")])
        )
        assert huge == ErrResponse(error=TtlTooLarge(ttl_ms=2**64 - 1, max_ms=MAX_TTL_MS))
        reserved = ErrResponse(error=KeyReserved())
        assert await _raw(ctx, SetExpiring(key=RESERVED, tx_id=None, ttl_ms=5), b"v") == reserved
        assert await _raw(ctx, Expire(key=DEADLINE + b"k", ttl_ms=5)) == reserved
        assert await _raw(ctx, Persist(key=RESERVED)) == reserved
        assert await _raw(ctx, Ttl(key=RESERVED)) == ErrResponse(error=KeyNotFound())
        assert await _raw(ctx, Ttl(key=b"k")) == TtlResponse(ttl_ms=None)
        assert await db.get_many([b"k", b"a"]) == [b"v", None]  # nothing refused was written

    await run_as(runtime, APP, body)
