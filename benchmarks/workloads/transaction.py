"""A transaction of 100 sets and a commit (the limit: a write batch of the same 100)."""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver
from . import Outcome, Workload

__all__ = ["TRANSACTION"]


def _data(sizes: Sizes, round_: int) -> list[Dataset]:
    data = Dataset.make(sizes.tx_size * sizes.txs, salt=f"tx-{round_}")
    return data.chunks(sizes.tx_size)


async def _run(driver: Driver, txs: list[Dataset]) -> Outcome:
    ops = sum(len(tx) for tx in txs)
    return Outcome(ops=ops, seconds=await driver.transaction(txs))


TRANSACTION = Workload(
    key="transaction", title="tx of 100 sets + commit (sets/s)", prepare=_data, run=_run
)
