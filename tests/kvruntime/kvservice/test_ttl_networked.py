"""Keys with a TTL on a networked engine (Redis Cluster), where the conformance
suite does not reach: a TTL write whose commit fails.

The master of the db's slot refuses writes meanwhile (``min-replicas-to-write``
above its replicas: every write, deletes included, answers NOREPLICAS), so the
commit fails for certain and nothing of it lands; reads still work. Once the master takes
writes again, the expiry a read applies is the one the db holds, not the one
the failed write would have given (exactness: an expired key is never read).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.storage.localcluster import LocalCluster
from protocol.ids import PackageId
from tests.conftest import FakeClock, run_as
from tests.internals import redis_key_of, set_expiry_clock

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")


@contextlib.contextmanager
def refusing_writes(cluster: LocalCluster, key: bytes) -> Iterator[None]:
    """The master of ``key``'s slot (one replica) refuses every write meanwhile."""
    port = cluster.owner(key)
    cluster.config_set(port, "min-replicas-to-write", "2")
    try:
        yield
    finally:
        cluster.config_set(port, "min-replicas-to-write", "0")


async def test_a_failed_ttl_write_leaves_the_expiry_the_db_holds(
    redis_storage: str, redis_cluster: LocalCluster, home: Path
) -> None:
    clock = FakeClock()

    async def setup(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"expiring", b"v", ttl=5.0)
        await db.set(b"lasting", b"v")

    async def failing(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "main")
        with pytest.raises(kv.IoError, match="NOREPLICAS"):
            await db.persist(b"expiring")  # would take its deadline off
        with pytest.raises(kv.IoError, match="NOREPLICAS"):
            await db.expire(b"lasting", 1.0)  # would give it one

    async def after(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "main")
        assert await db.ttl(b"expiring") == 5.0
        assert await db.ttl(b"lasting") is None
        clock.advance(5)
        with pytest.raises(kv.KeyNotFound):  # its deadline stayed: expired
            await db.get(b"expiring")
        assert await db.exists(b"expiring") is False
        assert [k async for k, _ in db.scan()] == [b"lasting"]
        assert await db.get(b"lasting") == b"v"  # no deadline landed

    async with Runtime(home=home, storage=redis_storage) as rt:
        set_expiry_clock(rt, clock)
        await run_as(rt, APP, setup)
        with refusing_writes(redis_cluster, redis_key_of(rt, PKG, "main")):
            await run_as(rt, APP, failing)
        await run_as(rt, APP, after)
