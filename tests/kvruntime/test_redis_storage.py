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
