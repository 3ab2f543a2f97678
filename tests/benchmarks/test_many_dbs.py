"""The many-dbs workload on kvruntime: one Runtime per db count, and what each holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.data import Dataset
from benchmarks.systems import kvruntime_client
from benchmarks.systems.kvruntime_client import KvruntimeDriver
from kvruntime.storage.file_budget import FDS_PER_DB

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_each_db_count_keeps_its_own_dbs_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget of 20 open dbs per runtime: 10 + 20 dbs on one runtime would
    # evict the 10-db workload's dbs; on a runtime per count nothing is evicted.
    monkeypatch.setattr(kvruntime_client, "MAX_OPEN_DBS_PER_COUNT", 20)
    async with KvruntimeDriver(tmp_path) as driver:
        for dbs in (10, 20, 10):
            assert await driver.multi_db(dbs, Dataset.make(40, salt=f"t{dbs}")) > 0
        ten, twenty = driver.db_footprint(10), driver.db_footprint(20)
    assert ten is not None
    assert twenty is not None
    # Each runtime holds its dbs and one LevelDB more: the kernel's capability store.
    assert ten.descriptors == (10 + 1) * FDS_PER_DB
    assert twenty.descriptors == (20 + 1) * FDS_PER_DB
    assert driver.db_footprint(30) is None


def test_a_run_measures_each_row_on_both_loops_with_what_it_holds(tmp_path: Path) -> None:
    assert main(["--quick", "--only", "dbs_100", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert doc["machine"]["event_loops"] == ["uvloop", "asyncio"]
    cells = {(c["system"], c["loop"]): c for c in doc["results"]}
    for loop in ("uvloop", "asyncio"):
        ours = cells["kvruntime", loop]
        assert ours["workload"] == "dbs_100"
        assert ours["ops_per_s"] > 0
        assert ours["descriptors"] == (100 + 1) * FDS_PER_DB
        assert ours["rss_growth_bytes"] is not None
        assert cells["plyvel", loop]["ops_per_s"] > 0
    assert (tmp_path / "latest.png").exists()
    assert (tmp_path / "latest-asyncio.png").exists()
