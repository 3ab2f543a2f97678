"""The Redis Cluster engine on a real 3-master + 3-replica cluster, driven from
worker threads as long work does (the conformance suite drives it through the
kv process and the bus)."""

from __future__ import annotations

import functools

import anyio.to_thread
import pytest

from kvruntime.storage.engine import StorageUnavailable
from kvruntime.storage.localcluster import LocalCluster, free_ports
from kvruntime.storage.redis_cluster import RedisClusterEngine, parse_url
from protocol.blobs import decode_scan_page
from protocol.ids import PackageId
from tests.conftest import evicting

pytestmark = pytest.mark.anyio
PKG = PackageId.parse("app:pub.os")


@pytest.fixture
def cluster(redis_cluster: LocalCluster) -> LocalCluster:
    """The session's real cluster (tests/conftest.py); a failure to start fails the tests."""
    return redis_cluster


def test_url_names_nodes_and_durability() -> None:
    assert parse_url("redis-cluster://127.0.0.1:7001,h:7002?durability=wait") == (
        [("127.0.0.1", 7001), ("h", 7002)],
        "wait",
        "",
    )
    assert parse_url("redis-cluster://h:1?namespace=t1")[2] == "t1"
    with pytest.raises(ValueError, match="host:port"):
        parse_url("redis-cluster://127.0.0.1")


async def test_unreachable_cluster_is_a_clear_error() -> None:
    port = free_ports(1)[0]
    engine = RedisClusterEngine([("127.0.0.1", port)], "node")
    with pytest.raises(StorageUnavailable, match="unreachable"):
        await engine.start()


async def test_writes_reads_scans_and_removal_from_worker_threads(cluster: LocalCluster) -> None:
    engine = RedisClusterEngine.from_url(cluster.url, "n1")
    other = RedisClusterEngine.from_url(cluster.url, "n2")
    await engine.start()
    await other.start()
    try:
        store = await anyio.to_thread.run_sync(
            functools.partial(engine.open, PKG, "main", create=True)
        )
        mine = await anyio.to_thread.run_sync(
            functools.partial(other.open, PKG, "main", create=True)
        )
        assert engine.open_count == 1  # the open_dbs gauge of /metrics
        ops = [(b"b", b"2"), (b"a", b"1"), (b"a\xff", b"x"), (b"c", None)]
        await anyio.to_thread.run_sync(store.write, ops)
        await anyio.to_thread.run_sync(mine.write, [(b"z", b"other node")])
        assert await anyio.to_thread.run_sync(store.get, b"a") == b"1"
        blob, count, last, more = await anyio.to_thread.run_sync(
            functools.partial(
                store.read_page,
                start=None,
                stop=None,
                reverse=False,
                include_value=False,
                limit=2,
                max_bytes=1 << 20,
            )
        )
        assert (count, last, more) == (2, b"a\xff", True)
        assert decode_scan_page(blob, count, keys_only=True) == [(b"a", None), (b"a\xff", None)]
        listed = await anyio.to_thread.run_sync(
            lambda: list(store.iterate(reverse=True, include_value=True))
        )
        assert listed == [(b"b", b"2"), (b"a\xff", b"x"), (b"a", b"1")]
        assert engine.list_dbs() == [(PKG, "main")]
        assert await anyio.to_thread.run_sync(engine.remove, PKG, "main")
        assert not engine.exists(PKG, "main")
        assert engine.open_count == 0
        assert await anyio.to_thread.run_sync(mine.get, b"z") == b"other node"  # namespaced
    finally:
        engine.close_all()
        other.close_all()
        await engine.aclose()
        await other.aclose()


async def test_an_evicting_policy_refuses_to_start(cluster: LocalCluster) -> None:
    with evicting(cluster):
        engine = RedisClusterEngine.from_url(cluster.url, "n")
        with pytest.raises(StorageUnavailable, match="allkeys-lru"):
            await engine.start()
