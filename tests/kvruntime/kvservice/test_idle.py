"""An idle kv process burns no CPU: its background tasks wake for work only.

The expired-key sweeper waits while no open db has a key with a TTL, and the
transaction expirer while no transaction is open; each starts its steps when
such work appears. Both read their clock at every step, so the clocks
injected here (counting their reads) show from the outside whether a task
woke: time itself is a FakeClock; only the tasks' periods are real and short.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import attrs
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from protocol.ids import PackageId
from tests.conftest import FakeClock, run_as
from tests.internals import in_store, kv_of, set_expiry_clock, set_tx_clock

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("app:pub.os")
#: A sweeper step every 10 ms, an expirer step every 50 ms (half the idle limit).
CONFIG = KvConfig(expiry_sweep_seconds=0.01, transaction_idle_seconds=0.1)


@attrs.define
class CountingClock(FakeClock):
    """A FakeClock that counts how often it was read."""

    reads: int = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


async def test_an_idle_kv_wakes_for_nothing_then_for_ttl_keys_and_transactions(
    home: Path,
) -> None:
    ttl_clock, tx_clock = CountingClock(), CountingClock()

    async def plain(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"plain", b"1")
        assert await db.get(b"plain") == b"1"

    async def with_work(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"brief", b"2", ttl=1.0)
        await db.begin_tx()  # left open, to expire

    async with Runtime(home=home, config=CONFIG) as rt:
        set_expiry_clock(rt, ttl_clock)
        set_tx_clock(rt, tx_clock)
        await run_as(rt, "main:app:pub.os", plain)
        before = ttl_clock.reads, tx_clock.reads
        await anyio.sleep(0.3)  # 30 sweeper periods, 6 expirer periods
        assert (ttl_clock.reads, tx_clock.reads) == before

        await run_as(rt, "main:app:pub.os", with_work)
        ttl_clock.advance(2.0)
        tx_clock.advance(1.0)
        with anyio.fail_after(10):
            # Background work has no event to wait on: poll it, bounded by fail_after.
            while kv_of(rt).open_transactions:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            while await in_store(rt, PKG, "main", lambda s: s.get(b"brief")) is not None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
