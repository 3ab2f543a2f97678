"""``set_many`` of 1000 pairs, in each system's batch form."""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver
from . import Outcome, Workload

__all__ = ["SET_MANY"]


def _data(sizes: Sizes, round_: int) -> list[Dataset]:
    data = Dataset.make(sizes.batch_size * sizes.batches, salt=f"batch-{round_}")
    return data.chunks(sizes.batch_size)


async def _run(driver: Driver, batches: list[Dataset]) -> Outcome:
    ops = sum(len(batch) for batch in batches)
    return Outcome(ops=ops, seconds=await driver.set_many(batches))


SET_MANY = Workload(key="set_many", title="set_many of 1000 (pairs/s)", prepare=_data, run=_run)
