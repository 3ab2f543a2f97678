"""The kv process's transaction actions: BeginTx, Commit, Rollback.

The state they act on (owned, bounded, expiring transactions; the conflict
check) is ``transactions.py``; reads and writes inside a transaction are
served by ``reads.py`` and ``writes.py``. A transaction that has expired is
no longer open: BeginTx expires idle ones before it refuses for the limit.
"""

from __future__ import annotations

from typing import Final

from protocol.ids import ProcessId
from protocol.messages import (
    BeginTx,
    BeginTxResponse,
    Commit,
    NoTx,
    OkResponse,
    Rollback,
    TooManyTransactions,
)

from ..kernel.message import Request
from ..storage.store import Store
from .context import Context, Outcome
from .transactions import DbKey

__all__ = ["begin_tx", "commit", "rollback"]

_OK: Final = OkResponse()


def begin_tx(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: BeginTx
) -> Outcome:
    """BeginTx: a fresh transaction of ``sender`` on ``db``, or TooManyTransactions."""
    txs = ctx.txs
    if not txs.can_begin(sender):
        # Idle ones are no longer open, even if the sweeper has not run yet.
        txs.expire()
    if not txs.can_begin(sender):
        return TooManyTransactions(max=txs.max_per_sender)
    ctx.answer(msg, BeginTxResponse(tx_id=txs.begin(sender, db).tx_id))
    return None


def commit(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Commit
) -> Outcome:
    """Commit: the transaction's writes, atomically, unless a key it read changed."""
    tx = ctx.transaction(sender, action.tx_id, db)
    if isinstance(tx, NoTx):
        return tx
    return ctx.commit(msg, tx, db, store)


def rollback(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Rollback
) -> Outcome:
    """Rollback: the transaction ends, nothing applied."""
    tx = ctx.transaction(sender, action.tx_id, db)
    if isinstance(tx, NoTx):
        return tx
    ctx.txs.finish(tx)
    ctx.answer(msg, _OK)
    return None
