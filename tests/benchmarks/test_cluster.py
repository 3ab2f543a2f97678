"""The Redis Cluster rows of ``make bench`` (benchmarks/cluster.py) run end to end on
a real cluster, tiny: every workload measured on both systems, no speed asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.cluster import TARGETS, Sizes, measure, render
from kvruntime.storage.localcluster import LocalCluster

pytestmark = pytest.mark.anyio


async def test_every_workload_is_measured_on_both_systems(
    redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    sizes = Sizes(seq=20, senders=4, per_sender=5, batches=2, batch=50, scan_keys=2500, rounds=1)
    url = f"{redis_cluster.url}?durability=async&namespace=bench-{tmp_path.name}"
    table = await measure(url, tmp_path, sizes)
    assert list(table) == list(TARGETS)
    for row in table.values():
        assert row["kvruntime"] > 0
        assert row["redis-py"] > 0
        assert row["ratio"] == row["kvruntime"] / row["redis-py"]
    assert "set_many" in render(table)
