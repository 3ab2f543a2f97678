"""Sequential set and get from one sender, each operation awaited."""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver
from . import Outcome, Workload

__all__ = ["GET_SEQ", "SET_SEQ"]


def _data(sizes: Sizes, round_: int) -> Dataset:
    return Dataset.make(sizes.sequential_ops, salt=f"seq-{round_}")


async def _set(driver: Driver, data: Dataset) -> Outcome:
    return Outcome(ops=len(data), seconds=await driver.set_seq(data))


async def _get(driver: Driver, data: Dataset) -> Outcome:
    return Outcome(ops=len(data), seconds=await driver.get_seq(data.keys))


SET_SEQ = Workload(key="set_seq", title="sequential set, 1 sender", prepare=_data, run=_set)
GET_SEQ = Workload(
    key="get_seq",
    title="sequential get, 1 sender",
    prepare=_data,
    run=_get,
    reads_from="set_seq",
)
