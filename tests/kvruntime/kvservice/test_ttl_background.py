"""Keys with a TTL, beyond the conformance suite: the work kv does in the background.

The expired-key sweeper runs on its own, in the kv process's task group
(time is a FakeClock; the sweeper's own interval is real and short, so the
test waits, bounded, no timing asserted, for the task to have done its
step); large TTL writes run as long work, in one batch.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from kvruntime.kvservice.reserved import DEADLINE
from kvruntime.kvservice.writes import LONG_BATCH_ITEMS
from protocol.ids import PackageId
from tests.conftest import FakeClock, run_as
from tests.internals import set_expiry_clock, store_of

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("app:pub.os")


async def test_the_background_sweeper_deletes_expired_keys_and_their_records(
    home: Path,
) -> None:
    clock = FakeClock()
    config = KvConfig(expiry_sweep_seconds=0.01, expiry_sweep_keys=1)

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set_many({b"a": b"1", b"b": b"2"}, ttl=1.0)
        await db.set(b"c", b"3")

    async with Runtime(home=home, config=config) as rt:
        set_expiry_clock(rt, clock)
        await run_as(rt, "main:app:pub.os", body)
        store = store_of(rt, PKG, "main")
        assert store.get(b"a") == b"1"  # not due: the sweeper leaves it
        clock.advance(1)
        with anyio.fail_after(10):
            # The store has no event to wait on: poll it, bounded by fail_after.
            while store.get(b"a") is not None or store.get(b"b") is not None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert store.get(DEADLINE + b"a") is None
        assert store.get(DEADLINE + b"b") is None
        assert store.get(b"c") == b"3"


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
    store = store_of(rt, PKG, "main")
    assert list(store.iterate(start=DEADLINE, stop=DEADLINE + b"\xff" * 40)) == []
