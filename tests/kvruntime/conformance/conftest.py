"""The conformance suite's fixtures: every test runs once per storage engine.

Adding an engine is one entry in ``ENGINES`` (and, for a networked one, a
fixture that starts its server and gives its URL). Redis Cluster runs on one
real 3-master + 3-replica cluster per session (``redis_cluster`` in
``tests/conftest.py``); each test has a namespace of its own in it
(``?namespace=``), so tests never see each other's dbs. A cluster that
cannot start fails the tests, with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kvruntime import KvConfig, Runtime
from tests.conftest import FakeClock
from tests.internals import set_expiry_clock

#: The storage settings the suite runs on.
ENGINES = ("leveldb", "memory", "redis-cluster")

#: Whether data outlives a restart of the runtime, per engine.
PERSISTS = {"leveldb": True, "memory": False, "redis-cluster": True}


@pytest.fixture(params=ENGINES)
def storage(request: pytest.FixtureRequest) -> str:
    """The storage setting of this run (a fresh namespace of the cluster for Redis)."""
    if request.param == "redis-cluster":  # the session's cluster (tests/conftest.py)
        return str(request.getfixturevalue("redis_storage"))
    return str(request.param)


@pytest.fixture
def config() -> KvConfig:
    """Small bounds, so that every limit error and page bound is cheap to reach."""
    return KvConfig(max_key_bytes=32, max_value_bytes=128, max_scan_items=3, max_batch_items=4)


@pytest.fixture
def clock() -> FakeClock:
    """The clock kv reads deadlines by (keys with a TTL): it moves only when told."""
    return FakeClock()


@pytest.fixture
async def runtime(
    home: Path, config: KvConfig, storage: str, clock: FakeClock
) -> AsyncIterator[Runtime]:
    """A running runtime on ``storage``, whose deadlines follow ``clock``."""
    async with Runtime(home=home, config=config, storage=storage) as rt:
        set_expiry_clock(rt, clock)
        yield rt
