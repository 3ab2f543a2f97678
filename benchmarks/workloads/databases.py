"""Throughput of sets spread round-robin over 1 to 10 000 databases.

kvruntime keeps as many LevelDBs open as the process's file limit allows
(``kvruntime/storage/file_budget.py``: ~3,500 under a limit of 20,000) and
reopens the least recently used on demand, so past that budget this
measures reopening at work. The peers: plyvel keeps every db open (one
LevelDB each); pykka's actor does the same (both refuse, as Unsupported, a
count whose descriptors the limit cannot hold); redis uses a key prefix per
db; SQLite one table per db in one file. Each round writes at least once to
every db (``max(multi_db_ops, count)`` sets). A driver that tells what its store
holds (``Footprinted``: kvruntime, one Runtime per count) has its descriptors
and RSS growth recorded after each round.
"""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver, Footprinted
from . import Outcome, Workload

__all__ = ["databases"]


def databases(count: int) -> Workload[Dataset]:
    """The workload for ``count`` databases."""

    def prepare(sizes: Sizes, round_: int) -> Dataset:
        return Dataset.make(max(sizes.multi_db_ops, count), salt=f"dbs-{count}-{round_}")

    async def run(driver: Driver, data: Dataset) -> Outcome:
        seconds = await driver.multi_db(count, data)
        footprint = driver.db_footprint(count) if isinstance(driver, Footprinted) else None
        return Outcome(ops=len(data), seconds=seconds, footprint=footprint)

    return Workload(
        key=f"dbs_{count}",
        title=f"set across {count} db{'s' if count > 1 else ''}",
        prepare=prepare,
        run=run,
        group="databases",
    )
