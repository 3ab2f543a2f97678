"""The conformance suite's fixtures: every test runs once per storage engine.

Adding an engine is one entry in ``ENGINES`` (and, for a networked one, a
fixture that starts its server and gives its URL). Redis Cluster runs on one
real 3-master + 3-replica cluster per session (``localcluster``); each test
has a namespace of its own in it (``?namespace=``), so tests never see each
other's dbs. A cluster that cannot start fails the tests, with the reason.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kvruntime import KvConfig, Runtime
from kvruntime.storage.localcluster import LocalCluster

#: The storage settings the suite runs on.
ENGINES = ("leveldb", "memory", "redis-cluster")

#: Whether data outlives a restart of the runtime, per engine.
PERSISTS = {"leveldb": True, "memory": False, "redis-cluster": True}

_namespaces = itertools.count()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One real cluster for the session; ClusterStartError (a failure) if it cannot start."""
    cluster = LocalCluster(tmp_path_factory.mktemp("conformance-redis")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=ENGINES)
def storage(request: pytest.FixtureRequest) -> str:
    """The storage setting of this run (a fresh namespace of the cluster for Redis)."""
    if request.param == "redis-cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return f"{cluster.url}?namespace=t{next(_namespaces)}"
    return str(request.param)


@pytest.fixture
def config() -> KvConfig:
    """Small bounds, so that every limit error and page bound is cheap to reach."""
    return KvConfig(max_key_bytes=32, max_value_bytes=128, max_scan_items=3, max_batch_items=4)


@pytest.fixture
async def runtime(home: Path, config: KvConfig, storage: str) -> AsyncIterator[Runtime]:
    """A running runtime on ``storage``."""
    async with Runtime(home=home, config=config, storage=storage) as rt:
        yield rt
