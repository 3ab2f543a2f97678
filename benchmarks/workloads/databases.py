"""Throughput of sets spread round-robin over 1 to 1000 databases.

kvruntime keeps at most ``KvConfig.max_open_dbs`` (128) LevelDBs open and
reopens the least recently used on demand, so past 128 dbs this measures
that limit at work. The peers: plyvel keeps every db open (one LevelDB each);
pykka's actor does the same; redis uses a key prefix per db; SQLite one
table per db in one file.
"""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver
from . import Outcome, Workload

__all__ = ["databases"]


def databases(count: int) -> Workload[Dataset]:
    """The workload for ``count`` databases."""

    def prepare(sizes: Sizes, round_: int) -> Dataset:
        return Dataset.make(sizes.multi_db_ops, salt=f"dbs-{count}-{round_}")

    async def run(driver: Driver, data: Dataset) -> Outcome:
        return Outcome(ops=len(data), seconds=await driver.multi_db(count, data))

    return Workload(
        key=f"dbs_{count}",
        title=f"set across {count} db{'s' if count > 1 else ''}",
        prepare=prepare,
        run=run,
        group="databases",
    )
