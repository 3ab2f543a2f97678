"""The kv process's extended writes: batches, atomics and range deletes.

SetMany, DeleteMany, WriteBatch and CommitBatch (the pipelined transaction's
writes); Increment and CompareAndSwap; DeleteRange.

Invariants:
1. Atomic against every writer: the kv process serves one request at a time,
   so a read-modify-write (Increment, CompareAndSwap, DeleteRange) first
   flushes the db's pending writes, then reads, then applies its result in
   one write before the next request is served.
2. SetMany, DeleteMany and WriteBatch without a tx_id join the db's pending
   writes, which reach LevelDB as one write batch: all of a batch lands or
   none does; later duplicates win. A large one (``LONG_BATCH_ITEMS`` ops or
   ``LONG_BATCH_BYTES`` of blob) is long work instead: written alone, in one
   write batch, in a worker thread, while the kv process serves other dbs
   (``kv_process.py``, rules 1-6: its db and its sender wait meanwhile).
   WriteBatch and CommitBatch with a tx_id
   stage all of their writes in the transaction or none (TransactionTooLarge).
3. Every applied write is passed to ``Transactions.record_writes`` so that
   the conflict check of a commit sees it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Final

import anyio.to_thread

from protocol.blobs import decode_cas, decode_items, decode_keys, decode_writes
from protocol.codec import DecodeError
from protocol.ids import ProcessId
from protocol.messages import (
    CasMismatch,
    DeleteRangeResponse,
    IncrementResponse,
    IntegerOverflow,
    MalformedRequest,
    NotAnInteger,
    OkResponse,
    ValueTooLarge,
)

from ..kernel.message import Request
from ..storage.store import Store, StoreError
from .checks import batch_blob, first, key_too_large, ops_too_large, value_too_large
from .reads import bounds
from .transactions import DbKey, Transaction

if TYPE_CHECKING:
    from .loop import KvProcess

__all__ = [
    "LONG_BATCH_BYTES",
    "LONG_BATCH_ITEMS",
    "commit_batch",
    "compare_and_swap",
    "delete_range",
    "increment",
    "parse_counter",
    "write_batch",
    "write_many",
]

#: A plain batch write this large is written in a worker thread (invariant 2).
LONG_BATCH_ITEMS: Final = 2000
LONG_BATCH_BYTES: Final = 1 << 20

_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1
_MAX_COUNTER_DIGITS: Final = 20  # "-9223372036854775808"


def parse_counter(value: bytes) -> int | None:
    """The signed 64-bit integer stored as ASCII decimal in ``value``, or None.

    Accepted: ``0`` or an optional ``-`` then digits without a leading zero
    (Redis's rule); no sign ``+``, no spaces, nothing outside int64.
    """
    if not 0 < len(value) <= _MAX_COUNTER_DIGITS:
        return None
    digits = value[1:] if value[:1] == b"-" else value
    if not digits.isdigit() or (digits[:1] == b"0" and value != b"0"):
        return None
    number = int(value)
    return number if _I64_MIN <= number <= _I64_MAX else None


# --- batches ----------------------------------------------------------------------------


def write_many(
    kv: KvProcess, msg: Request, db: DbKey, store: Store, count: int, put: bool
) -> Awaitable[None] | None:
    """SetMany (``put``) or DeleteMany: one atomic batch in the pending writes, or
    written in a thread if large (invariant 2)."""
    blob = batch_blob(kv, msg, count)
    if blob is None:
        return None
    ops: list[tuple[bytes, bytes | None]]
    try:
        ops = (
            list(decode_items(blob, count))
            if put
            else [(k, None) for k in decode_keys(blob, count)]
        )
    except DecodeError:
        kv.fail(msg, MalformedRequest())
        return None
    if ops_too_large(kv, msg, ops):
        return None
    return _plain_write(kv, msg, db, store, ops, len(blob))


def _plain_write(
    kv: KvProcess,
    msg: Request,
    db: DbKey,
    store: Store,
    ops: list[tuple[bytes, bytes | None]],
    size: int,
) -> Awaitable[None] | None:
    if len(ops) >= LONG_BATCH_ITEMS or size >= LONG_BATCH_BYTES:
        return _write_in_thread(kv, msg, db, store, ops)
    kv.queue_writes(msg, db, store, ops)
    return None


async def _write_in_thread(
    kv: KvProcess, msg: Request, db: DbKey, store: Store, ops: list[tuple[bytes, bytes | None]]
) -> None:
    """Write ``ops`` as one batch in a worker thread, then answer (long work: the
    db is held, so nothing else writes it or closes its store meanwhile)."""
    kv.flush_pending(store)
    job = functools.partial(store.write, ops, sync=kv.config.sync_writes)
    try:
        await anyio.to_thread.run_sync(job)
    except StoreError as exc:
        kv.dbs.discard(store)  # a failed write may leave a torn log record; reopen
        return kv.fail(msg, exc.error)
    kv.txs.record_writes(db, map(first, ops))
    kv.answer(msg, OkResponse())


def _writes_blob(
    kv: KvProcess, msg: Request, count: int
) -> list[tuple[bytes, bytes | None]] | None:
    """The writes in the blob once they pass step 6, else answer and None."""
    blob = batch_blob(kv, msg, count)
    if blob is None:
        return None
    try:
        ops = decode_writes(blob, count)
    except DecodeError:
        kv.fail(msg, MalformedRequest())
        return None
    return None if ops_too_large(kv, msg, ops) else ops


def _stage(
    kv: KvProcess,
    msg: Request,
    sender: ProcessId,
    db: DbKey,
    tx_id: int,
    ops: list[tuple[bytes, bytes | None]],
) -> Transaction | None:
    """Stage every op in ``tx_id`` (step 7), or none of them: answer and None."""
    tx = kv.transaction(msg, sender, tx_id, db)
    if tx is None:
        return None
    writes = dict(ops)  # later entries win
    size = tx.size_after_many(writes)
    if error := kv.txs.too_large(tx, size):
        kv.fail(msg, error)
        return None
    kv.txs.stage_many(tx, writes, size)
    return tx


def write_batch(
    kv: KvProcess,
    msg: Request,
    sender: ProcessId,
    db: DbKey,
    store: Store,
    tx_id: int | None,
    count: int,
) -> Awaitable[None] | None:
    """WriteBatch: one atomic batch (no ``tx_id``), or staged in ``tx_id`` (invariant 2)."""
    ops = _writes_blob(kv, msg, count)
    if ops is None:
        return None
    if tx_id is None:  # one atomic batch, like SetMany (invariant 2)
        return _plain_write(kv, msg, db, store, ops, len(msg.blob or b""))
    if _stage(kv, msg, sender, db, tx_id, ops) is not None:
        kv.answer(msg, OkResponse())
    return None


def commit_batch(
    kv: KvProcess, msg: Request, sender: ProcessId, db: DbKey, store: Store, tx_id: int, count: int
) -> None:
    """Stage the blob's writes in ``tx_id``, then commit it exactly as Commit does."""
    ops = _writes_blob(kv, msg, count)
    if ops is None:
        return
    tx = _stage(kv, msg, sender, db, tx_id, ops)
    if tx is None:  # NoTx, or TransactionTooLarge: nothing staged, the tx stays open
        return
    kv.commit(msg, tx, db, store)


# --- read-modify-writes (invariant 1) -------------------------------------------------


def increment(kv: KvProcess, msg: Request, db: DbKey, store: Store, key: bytes, delta: int) -> None:
    """Increment: the int64 counter at ``key`` plus ``delta``, written at once."""
    if key_too_large(kv, msg, key):
        return
    kv.flush_pending(store)
    try:
        stored = store.get(key)
    except StoreError as exc:
        return kv.fail(msg, exc.error)
    current = 0 if stored is None else parse_counter(stored)
    if current is None:
        return kv.fail(msg, NotAnInteger())
    value = current + delta
    if not _I64_MIN <= value <= _I64_MAX:
        return kv.fail(msg, IntegerOverflow())
    if not kv.write_now(msg, db, store, [(key, b"%d" % value)]):
        return
    kv.answer(msg, IncrementResponse(value=value))


def compare_and_swap(kv: KvProcess, msg: Request, db: DbKey, store: Store, key: bytes) -> None:
    """CompareAndSwap: write the blob's new value if ``key`` holds the expected one."""
    if key_too_large(kv, msg, key):
        return
    blob = msg.blob or b""
    if len(blob) > 2 * kv.config.max_value_bytes + 16:
        return kv.fail(msg, ValueTooLarge(size=len(blob), max=2 * kv.config.max_value_bytes))
    try:
        expected, new = decode_cas(blob)
    except DecodeError:
        return kv.fail(msg, MalformedRequest())
    if value_too_large(kv, msg, new):
        return
    kv.flush_pending(store)
    try:
        current = store.get(key)
    except StoreError as exc:
        return kv.fail(msg, exc.error)
    if current != expected:
        return kv.fail(msg, CasMismatch(present=current is not None), current)
    if kv.write_now(msg, db, store, [(key, new)]):
        kv.answer(msg, OkResponse())


async def delete_range(
    kv: KvProcess,
    msg: Request,
    db: DbKey,
    store: Store,
    prefix: bytes | None,
    start: bytes | None,
    end: bytes | None,
) -> None:
    """DeleteRange: every key under ``prefix`` or in ``start <= key < end``, in one batch."""
    if key_too_large(kv, msg, prefix, start, end):
        return
    lo, hi = bounds(prefix, start, end)
    if lo is not None and hi is not None and lo >= hi:
        return kv.answer(msg, DeleteRangeResponse(count=0))
    kv.flush_pending(store)
    keep = kv.txs.tracks(db)
    # In a thread, so that a large range does not stall the event loop; invariant 1
    # still holds, as the kv loop awaits it before serving anything else.
    job = functools.partial(_delete_range_sync, store, lo, hi, keep, kv.config.sync_writes)
    try:
        count, deleted = await anyio.to_thread.run_sync(job)
    except StoreError as exc:
        kv.dbs.discard(store)  # a failed write may leave a torn log record; reopen
        return kv.fail(msg, exc.error)
    if keep:
        kv.txs.record_writes(db, deleted)
    kv.answer(msg, DeleteRangeResponse(count=count))


def _delete_range_sync(
    store: Store, lo: bytes | None, hi: bytes | None, keep: bool, sync: bool
) -> tuple[int, list[bytes]]:
    """Delete every key in ``lo <= key < hi`` in one batch, from one snapshot.

    Return how many went, and which (only if ``keep``: a transaction may need them).
    """
    count = 0
    kept: list[bytes] = []

    def ops() -> Iterator[tuple[bytes, bytes | None]]:
        nonlocal count
        for key in store.iterate(start=lo, stop=hi, include_value=False):
            count += 1
            if keep:
                kept.append(key)
            yield key, None

    store.write(ops(), sync=sync)
    return count, kept
