"""Shared fixtures: a real runtime on a real LevelDB in a temporary folder."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import hypothesis
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime
from kvruntime.storage.localcluster import LocalCluster
from tests import internals

# The reliability figures' hooks live here, where the xdist controller finds
# them (it loads this conftest, not tests/reliability's): tests/reliability/figures.py.
from tests.reliability.figures import (  # noqa: F401
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)

# No per-example deadline: a property test checks what is true, not how fast
# (speed lives in `make bench`); under a loaded xdist run examples took 0.4 s.
hypothesis.settings.register_profile("kvruntime", deadline=None)
hypothesis.settings.load_profile("kvruntime")


@pytest.fixture
def anyio_backend() -> str:
    """kvruntime runs on asyncio (its mailbox is built on asyncio futures)."""
    return "asyncio"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh runtime home."""
    return tmp_path / "home"


@pytest.fixture
def config() -> KvConfig:
    """The kv configuration for the test (override in a module for other limits)."""
    return KvConfig()


@pytest.fixture
async def rt(home: Path, config: KvConfig) -> AsyncIterator[Runtime]:
    """A running runtime on ``home``."""
    async with Runtime(home=home, config=config) as runtime:
        yield runtime


# --- the client's scan iterator (issue 12): a scan test runs on both paths ---


@pytest.fixture(params=["c", "py"])
def scan_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """``scan`` and ``keys`` through the compiled iterator ("c") or the async generator
    ("py"), for the test (use it as ``@pytest.mark.usefixtures("scan_path")``)."""
    with internals.scan_path(request.param):
        yield request.param


@pytest.fixture(params=["c", "py"])
def staging_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """A transaction's ``set`` through the compiled staging ("c") or its Python twin
    ("py"), for the test (use it as ``@pytest.mark.usefixtures("staging_path")``)."""
    with internals.staging_path(request.param):
        yield request.param


# --- Redis Cluster (issue 13): one real cluster per session, a namespace per test ---

_namespaces = itertools.count()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real 3-master + 3-replica cluster for the session (ClusterStartError, a
    failure with the reason, if it cannot start). Tests that kill servers start
    their own."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_storage(redis_cluster: LocalCluster) -> str:
    """A ``storage`` URL on the session's cluster, in a namespace of this test's own."""
    return f"{redis_cluster.url}?namespace=t{next(_namespaces)}"


@contextlib.contextmanager
def evicting(cluster: LocalCluster) -> Iterator[None]:
    """A master of the cluster set to an evicting maxmemory-policy meanwhile."""
    port = next(p for p in cluster.ports if cluster.master_of(p))
    cluster.config_set(port, "maxmemory-policy", "allkeys-lru")
    try:
        yield
    finally:
        cluster.config_set(port, "maxmemory-policy", "noeviction")


Body = Callable[[ProcessContext], Awaitable[Any]]


async def run_as(rt: Runtime, process: str, body: Body, *, kv: bool = True) -> Any:
    """Run ``body(ctx)`` as ``process`` (with the kv messaging capability) and return its result."""
    result: list[Any] = []

    async def main(ctx: ProcessContext) -> None:
        result.append(await body(ctx))

    handle = await rt.spawn(process, main, request_capabilities=["kv:distro:sys"] if kv else [])
    await handle.wait()
    return result[0]


@attrs.define
class FakeClock:
    """Monotonic seconds that move only when a test says so (inject it as a ``clock``)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- Scheduling (issue 11): the tests that wait on processes and servers first ---

#: Where the suite's longest tests live (servers killed and restarted, nodes,
#: demo runs and CLI processes started), the longest single modules first:
#: collected in this order, ahead of every other test. pytest-xdist hands
#: tests out in collection order: run last, one of them (a failover, a crash)
#: decides the wall time while the other workers idle; run first, the
#: thousands of short tests fill the workers' ends evenly.
LONG_FIRST = (
    "tests/reliability/test_redis_faults.py",
    "tests/kvruntime/network/test_nats_tls.py",
    "tests/reliability/test_crash.py",
    "tests/benchmarks/test_many_dbs.py",
    "tests/kvruntime/cli/test_host.py",
    "tests/test_examples.py",
    "tests/reliability/",
    "tests/benchmarks/",
    "tests/kvruntime/network/",
    "tests/kvruntime/cli/",
    "tests/kvruntime/explorer/",
    "tests/conformance/",
)


def _rank(item: pytest.Item) -> int:
    return next(
        (i for i, where in enumerate(LONG_FIRST) if item.nodeid.startswith(where)),
        len(LONG_FIRST),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Collect the tests under ``LONG_FIRST`` first (a stable sort: each
    module's tests stay together and in their order)."""
    items.sort(key=_rank)
