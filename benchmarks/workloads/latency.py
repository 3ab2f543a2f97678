"""p50/p99 latency of a sequential get (keys stored by this round's sequential set)."""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver
from . import Outcome, Workload

__all__ = ["GET_LATENCY"]


def _data(sizes: Sizes, round_: int) -> Dataset:
    keys = Dataset.make(sizes.sequential_ops, salt=f"seq-{round_}")
    return Dataset(keys=keys.keys[: sizes.latency_ops], values=keys.values[: sizes.latency_ops])


async def _run(driver: Driver, data: Dataset) -> Outcome:
    latencies = await driver.get_latencies(data.keys)
    return Outcome(ops=len(latencies), seconds=sum(latencies) / 1e9, latencies_ns=latencies)


GET_LATENCY = Workload(
    key="get_latency",
    title="sequential get latency",
    prepare=_data,
    run=_run,
    group="latency",
    reads_from="set_seq",
)
