"""The same from 64 concurrent senders, each awaiting its own operations."""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver
from . import Outcome, Workload

__all__ = ["GET_CONC", "SET_CONC"]


def _data(sizes: Sizes, round_: int) -> list[Dataset]:
    total = sizes.concurrent_senders * sizes.concurrent_ops_per_sender
    return Dataset.make(total, salt=f"conc-{round_}").split(sizes.concurrent_senders)


async def _set(driver: Driver, shares: list[Dataset]) -> Outcome:
    ops = sum(len(share) for share in shares)
    return Outcome(ops=ops, seconds=await driver.set_concurrent(shares))


async def _get(driver: Driver, shares: list[Dataset]) -> Outcome:
    ops = sum(len(share) for share in shares)
    return Outcome(ops=ops, seconds=await driver.get_concurrent([s.keys for s in shares]))


SET_CONC = Workload(key="set_conc", title="set, 64 concurrent senders", prepare=_data, run=_set)
GET_CONC = Workload(
    key="get_conc",
    title="get, 64 concurrent senders",
    prepare=_data,
    run=_get,
    reads_from="set_conc",
)
