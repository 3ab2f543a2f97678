"""The kv process's writes: single keys, batches, atomics and range deletes.

Set and Delete (plain, or staged in a transaction); SetMany, DeleteMany,
WriteBatch and CommitBatch (the pipelined transaction's writes); Increment
and CompareAndSwap; DeleteRange.

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
   (``loop.py``, rules 1-6: its db and its sender wait meanwhile).
   WriteBatch and CommitBatch with a tx_id
   stage all of their writes in the transaction or none (TransactionTooLarge).
3. Every applied write is passed to ``Transactions.record_writes`` so that
   the conflict check of a commit sees it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Final

import anyio.to_thread

from protocol.blobs import decode_cas, decode_items, decode_keys, decode_writes
from protocol.codec import DecodeError
from protocol.ids import ProcessId
from protocol.messages import (
    CasMismatch,
    CommitBatch,
    CompareAndSwap,
    Delete,
    DeleteMany,
    DeleteRange,
    DeleteRangeResponse,
    Increment,
    IncrementResponse,
    IntegerOverflow,
    KeyReserved,
    KeyTooLarge,
    KvError,
    MalformedRequest,
    NotAnInteger,
    NoTx,
    OkResponse,
    Set,
    SetMany,
    ValueTooLarge,
    WriteBatch,
)

from ..kernel.message import Request
from ..storage.store import Store, StoreError
from .changelog import Feeds
from .checks import (
    batch_blob,
    first,
    key_reserved,
    key_too_large,
    ops_refused,
    value_too_large,
)
from .context import Context, Outcome
from .expiry import DbExpiry, deadline_op, unstage_deadlines
from .reads import bounds
from .reserved import RESERVED
from .transactions import DbKey, Transaction

__all__ = [
    "LONG_BATCH_BYTES",
    "LONG_BATCH_ITEMS",
    "commit_batch",
    "compare_and_swap",
    "delete",
    "delete_many",
    "delete_range",
    "increment",
    "parse_counter",
    "plain_write",
    "set_",
    "set_many",
    "write_batch",
]

#: A plain batch write this large is written in a worker thread (invariant 2).
LONG_BATCH_ITEMS: Final = 2000
LONG_BATCH_BYTES: Final = 1 << 20

_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1
_MAX_COUNTER_DIGITS: Final = 20  # "-9223372036854775808"
_MALFORMED: Final = MalformedRequest()
_KEY_RESERVED: Final = KeyReserved()
_OK: Final = OkResponse()

_Ops = list[tuple[bytes, bytes | None]]


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


# --- single keys (the hot path) --------------------------------------------------------


def set_(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Set
) -> Outcome:
    """Set: the blob at the key, in the pending writes or staged in the transaction."""
    key, value = action.key, msg.blob
    if action.tx_id is None and value is not None:  # the hot path: no call to _write_one
        cfg = ctx.config
        if len(key) <= cfg.max_key_bytes and key < RESERVED and len(value) <= cfg.max_value_bytes:
            ctx.queue_writes(msg, db, store, [(key, value)])
            return None
    # Any check that fails, or a transaction: _write_one answers in its order.
    return _write_one(ctx, msg, sender, db, store, key, value, action.tx_id)


def delete(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Delete
) -> Outcome:
    """Delete: the key, in the pending writes or staged in the transaction."""
    return _write_one(ctx, msg, sender, db, store, action.key, None, action.tx_id)


def _write_one(
    ctx: Context,
    msg: Request,
    sender: ProcessId,
    db: DbKey,
    store: Store,
    key: bytes,
    value: bytes | None,
    tx_id: int | None,
) -> Outcome:
    cfg = ctx.config
    if len(key) > cfg.max_key_bytes:
        return KeyTooLarge(size=len(key), max=cfg.max_key_bytes)
    if key >= RESERVED:  # reserved.is_reserved, inlined: the hot path
        return _KEY_RESERVED
    if value is not None and len(value) > cfg.max_value_bytes:
        return ValueTooLarge(size=len(value), max=cfg.max_value_bytes)
    if tx_id is None:
        ctx.queue_writes(msg, db, store, [(key, value)])
        return None
    tx = ctx.transaction(sender, tx_id, db)
    if isinstance(tx, NoTx):
        return tx
    if error := ctx.txs.too_large(tx, tx.size_after(key, value)):
        return error
    ctx.txs.stage(tx, key, value)
    unstage_deadlines(ctx.txs, tx, (key,))
    ctx.answer(msg, _OK)
    return None


# --- batches ----------------------------------------------------------------------------


def set_many(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: SetMany
) -> Outcome:
    """SetMany: one atomic batch in the pending writes, or written in a thread if
    large (invariant 2)."""
    return _write_many(ctx, msg, db, store, action.count, put=True)


def delete_many(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: DeleteMany
) -> Outcome:
    """DeleteMany: as SetMany, deleting its keys."""
    return _write_many(ctx, msg, db, store, action.count, put=False)


def _write_many(
    ctx: Context, msg: Request, db: DbKey, store: Store, count: int, *, put: bool
) -> Outcome:
    blob = batch_blob(ctx.config, msg.blob, count)
    if not isinstance(blob, bytes):
        return blob
    ops: _Ops
    try:
        ops = (
            decode_items(blob, count)  # type: ignore[assignment]  # a new list, ours to keep
            if put
            else [(k, None) for k in decode_keys(blob, count)]
        )
    except DecodeError:
        return _MALFORMED
    if error := ops_refused(ctx.config, ops):
        return error
    return plain_write(ctx, msg, db, store, ops, len(blob))


def plain_write(
    ctx: Context, msg: Request, db: DbKey, store: Store, ops: _Ops, size: int
) -> Outcome:
    """Queue ``ops`` as one atomic batch, or write them in a thread if large (invariant 2)."""
    if len(ops) >= LONG_BATCH_ITEMS or size >= LONG_BATCH_BYTES:
        return _write_in_thread(ctx, msg, db, store, ops)
    ctx.queue_writes(msg, db, store, ops)
    return None


async def _write_in_thread(
    ctx: Context, msg: Request, db: DbKey, store: Store, ops: _Ops
) -> KvError | None:
    """Write ``ops`` as one batch in a worker thread, then answer (long work: the
    db is held, so nothing else writes it or closes its store meanwhile)."""
    ctx.flush_pending(store)
    ops = ctx.expiry.complete(store, db, ops)  # keys with a TTL (expiry.py)
    logged = ctx.feeds.with_log(store, ops)  # change feeds (changelog.py)
    job = functools.partial(store.write, logged, sync=ctx.config.sync_writes)
    try:
        await anyio.to_thread.run_sync(job)
    except StoreError as exc:
        ctx.dbs.discard(store)  # a failed write may leave a torn log record; reopen
        return exc.error
    ctx.txs.record_writes(db, map(first, ops))
    ctx.answer(msg, _OK)
    return None


def _writes_blob(ctx: Context, msg: Request, count: int) -> _Ops | KvError:
    """The writes in the blob once they pass step 6, else the error."""
    blob = batch_blob(ctx.config, msg.blob, count)
    if not isinstance(blob, bytes):
        return blob
    try:
        ops = decode_writes(blob, count)
    except DecodeError:
        return _MALFORMED
    return ops_refused(ctx.config, ops) or ops


def _stage(
    ctx: Context, sender: ProcessId, db: DbKey, tx_id: int, ops: _Ops
) -> Transaction | KvError:
    """Stage every op in ``tx_id`` (step 7), or none of them: the error."""
    tx = ctx.transaction(sender, tx_id, db)
    if isinstance(tx, NoTx):
        return tx
    writes = dict(ops)  # later entries win
    size = tx.size_after_many(writes)
    if error := ctx.txs.too_large(tx, size):
        return error
    ctx.txs.stage_many(tx, writes, size)
    unstage_deadlines(ctx.txs, tx, writes)
    return tx


def write_batch(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: WriteBatch
) -> Outcome:
    """WriteBatch: one atomic batch (no ``tx_id``), or staged in ``tx_id`` (invariant 2)."""
    ops = _writes_blob(ctx, msg, action.count)
    if not isinstance(ops, list):
        return ops
    if action.tx_id is None:  # one atomic batch, like SetMany (invariant 2)
        return plain_write(ctx, msg, db, store, ops, len(msg.blob or b""))
    tx = _stage(ctx, sender, db, action.tx_id, ops)
    if not isinstance(tx, Transaction):
        return tx
    ctx.answer(msg, _OK)
    return None


def commit_batch(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: CommitBatch
) -> Outcome:
    """Stage the blob's writes in ``tx_id``, then commit it exactly as Commit does."""
    ops = _writes_blob(ctx, msg, action.count)
    if not isinstance(ops, list):
        return ops
    tx = _stage(ctx, sender, db, action.tx_id, ops)
    if not isinstance(tx, Transaction):  # NoTx, or TransactionTooLarge: the tx stays open
        return tx
    return ctx.commit(msg, tx, db, store)


# --- read-modify-writes (invariant 1) -------------------------------------------------


def increment(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Increment
) -> Outcome:
    """Increment: the int64 counter at the key plus ``delta``, written at once."""
    key = action.key
    error: KvError | None
    if error := key_too_large(ctx.config, key) or key_reserved(key):
        return error
    ctx.flush_pending(store)
    try:
        stored = store.get(key)
    except StoreError as exc:
        return exc.error
    index = ctx.expiry.of(store, db)
    deadline = index.deadlines.get(key)
    if deadline is not None and index.expired(key, ctx.expiry.now()):
        stored = deadline = None  # expired: absent, and the new counter has no TTL
    current = 0 if stored is None else parse_counter(stored)
    if current is None:
        return NotAnInteger()
    value = current + action.delta
    if not _I64_MIN <= value <= _I64_MAX:
        return IntegerOverflow()
    ops: list[tuple[bytes, bytes | None]] = [(key, b"%d" % value)]
    if deadline is not None:  # Increment keeps the key's expiry, as Redis INCR does
        ops.append(deadline_op(key, deadline))
    if error := ctx.write_now(db, store, ops):
        return error
    ctx.answer(msg, IncrementResponse(value=value))
    return None


def compare_and_swap(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: CompareAndSwap
) -> Outcome:
    """CompareAndSwap: write the blob's new value if the key holds the expected one."""
    key, cfg = action.key, ctx.config
    error: KvError | None
    if error := key_too_large(cfg, key) or key_reserved(key):
        return error
    blob = msg.blob or b""
    if len(blob) > 2 * cfg.max_value_bytes + 16:
        return ValueTooLarge(size=len(blob), max=2 * cfg.max_value_bytes)
    try:
        expected, new = decode_cas(blob)
    except DecodeError:
        return _MALFORMED
    if error := value_too_large(cfg, new):
        return error
    ctx.flush_pending(store)
    try:
        current = store.get(key)
    except StoreError as exc:
        return exc.error
    if current is not None and ctx.expiry.expired(store, db, key):
        current = None
    if current != expected:  # the one error answered with a blob: the current value
        ctx.fail(msg, CasMismatch(present=current is not None), current)
        return None
    if error := ctx.write_now(db, store, [(key, new)]):
        return error
    ctx.answer(msg, _OK)
    return None


def delete_range(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: DeleteRange
) -> Outcome:
    """DeleteRange: every key under ``prefix`` or in ``start <= key < end``, in one
    batch, written in a worker thread (long work)."""
    if error := key_too_large(ctx.config, action.prefix, action.start, action.end):
        return error
    lo, hi = bounds(action.prefix, action.start, action.end)
    if lo is not None and lo >= hi:
        ctx.answer(msg, DeleteRangeResponse(count=0))
        return None
    return _delete_range(ctx, msg, db, store, lo, hi)


async def _delete_range(
    ctx: Context, msg: Request, db: DbKey, store: Store, lo: bytes | None, hi: bytes | None
) -> KvError | None:
    ctx.flush_pending(store)
    keep = ctx.txs.tracks(db)
    index = ctx.expiry.of(store, db)  # keys with a TTL: their records go too (expiry.py)
    # In a thread, so that a large range does not stall the event loop; invariant 1
    # still holds, as the kv loop holds the db until it is done.
    # Whether the db is logged is learnt here, on the loop (change feeds, changelog.py):
    # the thread then touches only this held db's log.
    feeds = ctx.feeds if ctx.feeds.log_of(store) is not None else None
    job = functools.partial(
        _delete_range_sync,
        store,
        lo,
        hi,
        keep,
        ctx.config.sync_writes,
        index,
        ctx.expiry.now(),
        feeds,
    )
    try:
        count, deleted = await anyio.to_thread.run_sync(job)
    except StoreError as exc:
        ctx.dbs.discard(store)  # a failed write may leave a torn log record; reopen
        return exc.error
    if keep:
        ctx.txs.record_writes(db, deleted)
    ctx.answer(msg, DeleteRangeResponse(count=count))
    return None


def _delete_range_sync(
    store: Store,
    lo: bytes | None,
    hi: bytes | None,
    keep: bool,
    sync: bool,
    index: DbExpiry,
    now: int,
    feeds: Feeds | None,
) -> tuple[int, list[bytes]]:
    """Delete every key in ``lo <= key < hi`` in one batch, from one snapshot, with
    the expiry records of those that have one (``index``, updated once written).

    Return how many went (an expired key does not count: it was absent), and
    which (only if ``keep``: a transaction may need them). With ``feeds`` (a
    logged db) each key gets its "delete" change, in the batch (an expired key
    the sweeper had not removed yet too: PROTOCOL.md, "Change feeds").
    """
    count = 0
    kept: list[bytes] = []
    deadlines = index.deadlines
    forgotten: list[bytes] = []

    def ops() -> Iterator[tuple[bytes, bytes | None]]:
        nonlocal count
        for key in store.iterate(start=lo, stop=hi, include_value=False):
            deadline = deadlines.get(key) if deadlines else None
            if deadline is None or deadline > now:
                count += 1
            if keep:
                kept.append(key)
            yield key, None
            if deadline is not None:
                forgotten.append(key)
                yield from index.clear_ops(key, deadline)

    if feeds is None:
        store.write(ops(), sync=sync)
    else:  # change feeds: the ops in full, then their changes (changelog.py)
        store.write(feeds.with_log(store, list(ops())), sync=sync)
    index.forget(forgotten)  # after the write; the db is held, so no one reads it meanwhile
    return count, kept
