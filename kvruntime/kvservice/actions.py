"""The kv actions beyond Hyperware's, dispatched to the modules that serve them.

- ``kv_reads``: Scan, TxGet/TxExists, GetMany/TxGetMany;
- ``kv_writes``: SetMany/DeleteMany, WriteBatch/CommitBatch (the pipelined
  transaction's writes), Increment, CompareAndSwap, DeleteRange;
- ``kv_access``: Revoke, Capabilities;
- ``kv_checks``: the size checks they share.

``KvProcess`` has already run checks 1 to 5 of PROTOCOL.md (decode, remote,
existence, capability) when it hands a request here; the handlers run the
rest in order: sizes (6), then the blob of a batch (6b: ``TransactionTooLarge``
for an oversized blob, then ``MalformedRequest`` for a malformed one), then
the transaction lookup (7). Each handler answers through ``KvProcess``'s
seam (answer, fail, flush_pending, queue_writes, transaction).
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final

import attrs

from protocol.ids import ProcessId
from protocol.messages import (
    CommitBatch,
    CompareAndSwap,
    DeleteMany,
    DeleteRange,
    GetMany,
    Increment,
    OkResponse,
    Rollback,
    Scan,
    SetMany,
    TxExists,
    TxGet,
    TxGetMany,
    WriteBatch,
)

from ..kernel.message import Request
from ..storage.store import Store
from . import access as kv_access
from . import reads as kv_reads
from . import writes as kv_writes
from .transactions import DbKey

if TYPE_CHECKING:
    from .loop import KvProcess

__all__ = ["EXTENDED_ACTIONS", "ExtAction", "ExtendedActions"]

#: A request's action that these handlers serve after the capability check.
ExtAction = (
    Scan
    | TxGet
    | TxExists
    | GetMany
    | TxGetMany
    | SetMany
    | DeleteMany
    | Increment
    | CompareAndSwap
    | Rollback
    | DeleteRange
    | WriteBatch
    | CommitBatch
)
#: The types of ``ExtAction``, for a dispatch by ``type(action)``.
EXTENDED_ACTIONS: Final[frozenset[type[ExtAction]]] = frozenset(typing.get_args(ExtAction))


@attrs.define(eq=False)
class ExtendedActions:
    """Serves the extended actions for ``kv`` (whose answer/fail/flush it uses)."""

    kv: KvProcess

    def serve(
        self, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: ExtAction
    ) -> Awaitable[None] | None:
        """Serve ``action`` (checks 1-5 passed) and queue its answer; or return the
        coroutine that will, for the long work that waits for a thread (DeleteRange,
        a large batch write)."""
        kv = self.kv
        match action:
            case Scan():
                kv_reads.scan(kv, msg, sender, db, store, action)
            case TxGet(key=key, tx_id=tx_id) | TxExists(key=key, tx_id=tx_id):
                kv_reads.tx_read(kv, msg, sender, db, store, key, tx_id, isinstance(action, TxGet))
            case GetMany(count=count):
                kv_reads.get_many(kv, msg, sender, db, store, count, None)
            case TxGetMany(count=count, tx_id=tx_id):
                kv_reads.get_many(kv, msg, sender, db, store, count, tx_id)
            case SetMany(count=count) | DeleteMany(count=count):
                return kv_writes.write_many(kv, msg, db, store, count, isinstance(action, SetMany))
            case Increment(key=key, delta=delta):
                kv_writes.increment(kv, msg, db, store, key, delta)
            case CompareAndSwap(key=key):
                kv_writes.compare_and_swap(kv, msg, db, store, key)
            case Rollback(tx_id=tx_id):
                tx = kv.transaction(msg, sender, tx_id, db)
                if tx is not None:
                    kv.txs.finish(tx)
                    kv.answer(msg, OkResponse())
            case DeleteRange(prefix=prefix, start=start, end=end):
                return kv_writes.delete_range(kv, msg, db, store, prefix, start, end)
            case WriteBatch(tx_id=tx_id, count=count):
                return kv_writes.write_batch(kv, msg, sender, db, store, tx_id, count)
            case CommitBatch(tx_id=tx_id, count=count):
                kv_writes.commit_batch(kv, msg, sender, db, store, tx_id, count)
            case _:
                raise AssertionError(f"not an extended action: {action!r}")
        return None

    def revoke(self, msg: Request, sender: ProcessId, db: DbKey, target: ProcessId) -> None:
        """Revoke ``target``'s capabilities on ``db`` (see ``kv_access.revoke``)."""
        kv_access.revoke(self.kv, msg, sender, db, target)

    def capabilities(self, msg: Request, sender: ProcessId, db: DbKey) -> None:
        """Answer which capabilities ``sender`` holds on ``db`` (see ``kv_access``)."""
        kv_access.capabilities(self.kv, msg, sender, db)
