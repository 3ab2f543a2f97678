"""``Runtime(storage="redis-cluster://...")``: the setting, and its errors at start.

Through the public API only; the conformance suite (tests/kvruntime/conformance)
checks every action on the same engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kvruntime import ProcessContext, Runtime, StorageUnavailable, kv
from kvruntime.storage.localcluster import LocalCluster, free_ports
from protocol.ids import PackageId
from tests.conftest import evicting, run_as

pytestmark = pytest.mark.anyio
APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")


async def test_an_unreachable_cluster_is_a_clear_error_at_start(home: Path) -> None:
    port = free_ports(1)[0]
    with pytest.raises(StorageUnavailable, match=f"127.0.0.1:{port} is unreachable"):
        async with Runtime(home=home, storage=f"redis-cluster://127.0.0.1:{port}"):
            pass
    async with Runtime(home=home) as rt:  # the home was let go: it serves on LevelDB
        assert rt.list_dbs() == []


async def test_an_evicting_cluster_is_refused_at_start(
    home: Path, redis_cluster: LocalCluster, redis_storage: str
) -> None:
    refused = pytest.raises(StorageUnavailable, match="maxmemory-policy noeviction")
    with evicting(redis_cluster), refused:
        async with Runtime(home=home, storage=redis_storage):
            pass


def test_a_malformed_url_is_a_value_error_at_construction(home: Path) -> None:
    with pytest.raises(ValueError, match="host:port"):
        Runtime(home=home, storage="redis-cluster://127.0.0.1")
    with pytest.raises(ValueError, match="durability"):
        Runtime(home=home, storage="redis-cluster://127.0.0.1:1?durability=sometimes")


async def test_two_nodes_share_a_cluster_and_keep_capabilities_under_home(
    tmp_path: Path, redis_storage: str
) -> None:
    async def write(ctx: ProcessContext) -> None:
        await (await kv.open(ctx, PKG, "main")).set(b"k", ctx.our.node.encode())

    async def read(ctx: ProcessContext) -> bytes:
        return await kv.handle(ctx, PKG, "main").get(b"k")

    url = redis_storage + "&durability=wait"
    async with (
        Runtime(home=tmp_path / "a", node="a.os", storage=url) as a,
        Runtime(home=tmp_path / "b", node="b.os", storage=url) as b,
    ):
        await run_as(a, APP, write)
        await run_as(b, APP, write)
        assert await run_as(a, APP, read) == b"a.os"  # namespaced by node: no collision
        assert await run_as(b, APP, read) == b"b.os"
    assert (tmp_path / "a" / "kernel" / "capabilities").is_dir()
    assert not (tmp_path / "a" / "kv").exists()  # the dbs are in the cluster


async def test_large_batches_ranges_and_transaction_scans_on_the_cluster(
    home: Path, redis_storage: str
) -> None:
    """The paths an embedded engine never takes: a batch written from a worker
    thread, a DeleteRange and a transaction's scan fetched a page of keys at a
    time (each page its own snapshot; the db is held meanwhile), GetMany fetched
    in one round trip, a scan's page fetched before it is served."""
    keys = [b"k%05d" % i for i in range(5000)]

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set_many([(k, k[::-1]) for k in reversed(keys)])  # long work: in a thread
        assert [k async for k, _ in db.scan(page_size=700)] == keys
        assert [k async for k in db.keys(reverse=True, prefix=b"k04")] == keys[4000:5000][::-1]
        wanted = [*keys[10:20], b"none"]
        assert await db.get_many(wanted) == [*(k[::-1] for k in keys[10:20]), None]
        tx = await db.begin_tx()
        await db.set(b"k00002x", b"staged", tx_id=tx)
        await db.delete(b"k00003", tx_id=tx)
        seen = [k async for k, _ in db.scan(prefix=b"k00", tx_id=tx)]  # committed + staged
        assert seen == [*keys[:3], b"k00002x", *keys[4:1000]]
        await db.commit_tx(tx)
        assert await db.delete_range(start=b"k00500", end=b"k04500") == 4000
        left = [k async for k in db.keys()]
        assert left == [*keys[:3], b"k00002x", *keys[4:500], *keys[4500:]]
        assert await db.increment(b"n", 7) == 7

    async with Runtime(home=home, storage=redis_storage) as rt:
        await run_as(rt, APP, body)
