"""A transaction of 100 sets and a commit (the limit: a write batch of the same 100).

Two rows: ``transaction`` is each system's best form (kvruntime's pipelined
``db.transaction()``, redis's MULTI/EXEC pipeline), the one the target is
judged on; ``transaction_awaited`` is begin + 100 awaited sets + commit, one
round trip per set, so that readers see what pipelining buys.
"""

from __future__ import annotations

from ..data import Dataset, Sizes
from ..systems import Driver
from . import Outcome, Workload

__all__ = ["TRANSACTION", "TRANSACTION_AWAITED"]


def _data(sizes: Sizes, round_: int) -> list[Dataset]:
    data = Dataset.make(sizes.tx_size * sizes.txs, salt=f"tx-{round_}")
    return data.chunks(sizes.tx_size)


async def _run(driver: Driver, txs: list[Dataset]) -> Outcome:
    ops = sum(len(tx) for tx in txs)
    return Outcome(ops=ops, seconds=await driver.transaction(txs))


async def _run_awaited(driver: Driver, txs: list[Dataset]) -> Outcome:
    ops = sum(len(tx) for tx in txs)
    return Outcome(ops=ops, seconds=await driver.transaction_awaited(txs))


TRANSACTION = Workload(
    key="transaction", title="tx of 100 sets + commit (sets/s)", prepare=_data, run=_run
)
TRANSACTION_AWAITED = Workload(
    key="transaction_awaited",
    title="tx, each set awaited (sets/s)",
    prepare=_data,
    run=_run_awaited,
)
