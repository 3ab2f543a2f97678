"""Keys with a TTL, beyond the conformance suite: the work kv does in the background.

The expired-key sweeper runs on its own, in the kv process's task group
(time is a FakeClock; the sweeper's own interval is real and short, so the
test waits, bounded, no timing asserted, for the task to have done its
step); large TTL writes run as long work, in one batch. Both on every engine
(on Redis Cluster the sweeper's deletes go through the batch path, and are
committed by its step).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from kvruntime.kvservice.reserved import DEADLINE
from kvruntime.kvservice.writes import LONG_BATCH_ITEMS
from kvruntime.storage.store import Store
from protocol.ids import PackageId
from tests.conftest import FakeClock, run_as
from tests.internals import in_store, redis_values_of, set_expiry_clock

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("app:pub.os")


@pytest.fixture(params=["leveldb", "memory", "redis-cluster"])
def storage(request: pytest.FixtureRequest) -> str:
    """The engine of this run (a fresh namespace of the session's cluster for Redis)."""
    if request.param == "redis-cluster":
        return str(request.getfixturevalue("redis_storage"))
    return str(request.param)


@pytest.fixture
async def rt(home: Path, storage: str) -> AsyncIterator[Runtime]:
    """A running runtime on ``storage``."""
    async with Runtime(home=home, storage=storage) as runtime:
        yield runtime


def _values(keys: list[bytes]) -> Callable[[Store], list[bytes | None]]:
    """What a store holds at ``keys``."""
    return lambda store: [store.get(key) for key in keys]


async def _durable(rt: Runtime, storage: str, keys: list[bytes]) -> list[bytes | None]:
    """What the db holds at ``keys``, committed: on Redis Cluster read from the
    cluster itself (a read through the store would commit what it buffers)."""
    if storage.startswith("redis-cluster://"):
        return await redis_values_of(rt, PKG, "main", keys)
    return await in_store(rt, PKG, "main", _values(keys))


async def test_the_background_sweeper_deletes_expired_keys_and_their_records(
    home: Path, storage: str
) -> None:
    clock = FakeClock()
    config = KvConfig(expiry_sweep_seconds=0.01, expiry_sweep_keys=1)

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set_many({b"a": b"1", b"b": b"2"}, ttl=1.0)
        await db.set(b"c", b"3")

    async with Runtime(home=home, config=config, storage=storage) as rt:
        set_expiry_clock(rt, clock)
        await run_as(rt, "main:app:pub.os", body)
        assert await in_store(rt, PKG, "main", _values([b"a"])) == [b"1"]  # not due yet
        clock.advance(1)
        swept = [b"a", b"b", DEADLINE + b"a", DEADLINE + b"b"]
        with anyio.fail_after(10):
            # The store has no event to wait on: poll it, bounded by fail_after.
            while await _durable(rt, storage, swept) != [None] * 4:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert await in_store(rt, PKG, "main", _values([b"c"])) == [b"3"]


async def test_large_ttl_writes_run_as_long_work_in_one_batch(rt: Runtime) -> None:
    count = LONG_BATCH_ITEMS + 10

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set_many({b"k%05d" % i: b"v" for i in range(count)}, ttl=60.0)
        assert await db.ttl(b"k00000") is not None
        await db.set_ttl_policy(enabled=False)  # takes every deadline off, in a thread
        assert await db.ttl(b"k00000") is None
        assert await db.ttl(b"k%05d" % (count - 1)) is None
        with pytest.raises(kv.TtlDisabled):
            await db.expire(b"k00000", 1.0)

    await run_as(rt, "main:app:pub.os", body)
    deadlines = await in_store(
        rt, PKG, "main", lambda s: list(s.iterate(start=DEADLINE, stop=DEADLINE + b"\xff" * 40))
    )
    assert deadlines == []
