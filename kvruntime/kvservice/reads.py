"""The kv process's reads: Get, Exists, Scan, TxGet/TxExists, GetMany/TxGetMany.

Also the key-range helpers (``prefix_end``, ``bounds``) that DeleteRange shares.

Invariants:
1. Every read inside a transaction of committed data is noted in its read
   set, so that the conflict check of its commit sees it; a key the
   transaction wrote itself is answered from its staged writes, unnoted.
2. A scan page is bounded by ``max_scan_items`` and ``max_scan_bytes``
   whatever the client asks, and is read from one LevelDB snapshot; its
   cursor is the last key returned, so resuming continues strictly after it
   (before it, in reverse) and never repeats or skips a key that existed
   throughout.
3. A read first flushes the db's pending writes, so it sees every write
   answered before it.
4. No read sees kv's own records (``reserved.py``): a reserved key reads as
   absent, and every range ends before them (``bounds``).
5. No read sees an expired key (``expiry.py``), swept or not: it reads as
   absent, and a scan of a db with keys with a TTL skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from itertools import chain
from typing import Final, cast

from protocol.blobs import ScanPageWriter, decode_keys, encode_optional_values
from protocol.codec import DecodeError
from protocol.ids import ProcessId
from protocol.messages import (
    AnswerTooLarge,
    Exists,
    ExistsResponse,
    Get,
    GetMany,
    GetManyResponse,
    GetResponse,
    KeyNotFound,
    KeyTooLarge,
    MalformedRequest,
    NoTx,
    Scan,
    ScanResponse,
    TxExists,
    TxGet,
    TxGetMany,
)

from ..kernel.message import Request
from ..storage.store import PageRead, Store, StoreError, prefix_end
from .checks import batch_blob, key_too_large
from .context import Context, Outcome
from .reserved import RESERVED, clamp_stop
from .transactions import DbKey, Transaction

__all__ = [
    "bounds",
    "exists",
    "get",
    "get_many",
    "prefix_end",
    "scan",
    "tx_exists",
    "tx_get",
    "tx_get_many",
]

_KEY_NOT_FOUND: Final = KeyNotFound()
_MALFORMED: Final = MalformedRequest()
_EMPTY_PAGE: Final = ScanPageWriter(keys_only=False).blob()  # no entry: an empty array


def bounds(
    prefix: bytes | None, start: bytes | None, end: bytes | None
) -> tuple[bytes | None, bytes]:
    """The range ``lo <= key < hi`` of a prefix or a start/end pair, ended
    before kv's own records (invariant 4)."""
    if prefix is not None:
        return prefix, clamp_stop(prefix_end(prefix))
    return start, clamp_stop(end)


def _user_get(ctx: Context, db: DbKey, store: Store, key: bytes) -> bytes | None:
    """The value of ``key``, None if absent; a reserved key (invariant 4) or an
    expired one (5) is absent."""
    if key >= RESERVED:
        return None
    value = store.get(key)
    return None if value is None or ctx.expiry.expired(store, db, key) else value


# --- single keys, outside a transaction (the hot path) ----------------------------


def get(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Get
) -> Outcome:
    """Get: the value of the key, or KeyNotFound."""
    key = action.key
    limit = ctx.config.max_key_bytes
    if len(key) > limit:
        return KeyTooLarge(size=len(key), max=limit)
    if key >= RESERVED:  # kv's own: absent (invariant 4), one compare on the hot path
        return _KEY_NOT_FOUND
    if store in ctx.pending:  # flush_pending, inline (the hot path)
        ctx.flush()
    try:
        value = store.get(key)
    except StoreError as exc:
        return exc.error
    if value is None:
        return _KEY_NOT_FOUND
    expiry = ctx.expiry  # invariant 5, tested only where a key may have a TTL
    if (expiry.armed or store not in expiry.by_store) and expiry.expired(store, db, key):
        return _KEY_NOT_FOUND
    ctx.answer(msg, GetResponse._parsed(key), value)
    return None


def exists(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Exists
) -> Outcome:
    """Exists: whether the key is present."""
    key = action.key
    limit = ctx.config.max_key_bytes
    if len(key) > limit:
        return KeyTooLarge(size=len(key), max=limit)
    ctx.flush_pending(store)
    try:
        value = _user_get(ctx, db, store, key)
    except StoreError as exc:
        return exc.error
    ctx.answer(msg, ExistsResponse(exists=value is not None))
    return None


# --- scans -------------------------------------------------------------------------


def scan(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Scan
) -> Outcome:
    """Scan: one bounded page of the range, from one snapshot (invariant 2)."""
    cfg = ctx.config
    if error := key_too_large(cfg, action.prefix, action.start, action.end, action.cursor):
        return error
    tx: Transaction | None = None
    if action.tx_id is not None:
        found = ctx.transaction(sender, action.tx_id, db)
        if isinstance(found, NoTx):
            return found
        tx = found
    lo, hi = bounds(action.prefix, action.start, action.end)
    if action.cursor is not None:  # strictly after (before, in reverse) the cursor
        if action.reverse:
            hi = min(hi, action.cursor)
        else:
            after = action.cursor + b"\x00"
            lo = after if lo is None else max(lo, after)
    limit = max(1, min(action.limit or cfg.max_scan_items, cfg.max_scan_items))
    if lo is None or lo < hi:
        ctx.flush_pending(store)
        try:
            expired = _expired_filter(ctx, db, store)
            blob, count, last, more = _fill(
                cfg.max_scan_bytes, store, tx, lo, hi, action, limit, expired
            )
        except StoreError as exc:
            return exc.error
    else:
        blob, count, last, more = _EMPTY_PAGE, 0, None, False
    cursor = last if more else None
    if tx is not None:  # what the page covered, for the conflict check
        version = ctx.txs.version(db)
        if cursor is None:
            tx.reads.note_range(lo, hi, version)
        elif action.reverse:
            tx.reads.note_range(cursor, hi, version)
        else:
            tx.reads.note_range(lo, cursor + b"\x00", version)
    ctx.answer(msg, ScanResponse(count=count, cursor=cursor), blob)
    return None


def _fill(
    max_bytes: int,
    store: Store,
    tx: Transaction | None,
    lo: bytes | None,
    hi: bytes | None,
    action: Scan,
    limit: int,
    expired: Callable[[bytes], bool] | None,
) -> PageRead:
    """A page from one snapshot: its blob, its count, its last key, whether
    entries remain after it.

    ``expired``: whether a key has expired (invariant 5); None when none can have.
    """
    reverse, keys_only = action.reverse, action.keys_only
    if (tx is None or not tx.writes) and expired is None:  # the common case: built by the store
        return store.read_page(
            start=lo,
            stop=hi,
            reverse=reverse,
            include_value=not keys_only,
            limit=limit,
            max_bytes=max_bytes,
        )
    committed = _entries(store, lo, hi, reverse=reverse, keys_only=keys_only, expired=expired)
    staged = iter(()) if tx is None else tx.staged_range(lo, hi, reverse=reverse)
    entries = _merged(committed, staged, reverse=reverse, keys_only=keys_only)
    taken: list[tuple[bytes, bytes | None]] = []
    more, size = False, 0
    try:
        for key, value in entries:
            if len(taken) == limit:
                more = True
                break
            size += len(key) + (len(value) if value is not None else 0)
            if taken and size > max_bytes:
                more = True
                break
            taken.append((key, value))
    finally:
        committed.close()
    page = ScanPageWriter(keys_only=keys_only)
    if keys_only:
        page.add([key for key, _ in taken])
    else:  # no value is None here: a staged delete hides its key (see _merged)
        page.add(cast("list[bytes]", list(chain.from_iterable(taken))))
    return page.blob(), page.count, (taken[-1][0] if taken else None), more


def _expired_filter(ctx: Context, db: DbKey, store: Store) -> Callable[[bytes], bool] | None:
    """Whether a key of ``store`` has expired, as of now; None if it has no key with a TTL."""
    index = ctx.expiry.of(store, db)
    if not index.deadlines:
        return None
    deadlines, now = index.deadlines, ctx.expiry.now()

    def expired(key: bytes) -> bool:
        deadline = deadlines.get(key)
        return deadline is not None and deadline <= now

    return expired


def _entries(
    store: Store,
    lo: bytes | None,
    hi: bytes | None,
    *,
    reverse: bool,
    keys_only: bool,
    expired: Callable[[bytes], bool] | None,
) -> Generator[tuple[bytes, bytes | None], None, None]:
    if keys_only:
        for key in store.iterate(start=lo, stop=hi, reverse=reverse, include_value=False):
            if expired is None or not expired(key):
                yield key, None
    else:
        for key, value in store.iterate(start=lo, stop=hi, reverse=reverse):
            if expired is None or not expired(key):
                yield key, value


def _merged(
    committed: Iterator[tuple[bytes, bytes | None]],
    staged: Iterator[tuple[bytes, bytes | None]],
    *,
    reverse: bool,
    keys_only: bool,
) -> Iterator[tuple[bytes, bytes | None]]:
    """Committed entries with a transaction's staged writes laid over them, in order.

    ``staged`` is sorted in scan order; a staged None (delete) hides the key.
    """
    pending = staged
    mine = next(pending, None)
    for key, value in committed:
        while mine is not None and (mine[0] > key if reverse else mine[0] < key):
            if mine[1] is not None:
                yield mine[0], None if keys_only else mine[1]
            mine = next(pending, None)
        if mine is not None and mine[0] == key:
            if mine[1] is not None:
                yield key, None if keys_only else mine[1]
            mine = next(pending, None)
            continue
        yield key, value
    while mine is not None:
        if mine[1] is not None:
            yield mine[0], None if keys_only else mine[1]
        mine = next(pending, None)


# --- reads inside a transaction, and batches of keys -----------------------------


def tx_get(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: TxGet
) -> Outcome:
    """TxGet: its own write first, else committed data (noted)."""
    return _tx_read(ctx, msg, sender, db, store, action.key, action.tx_id, get=True)


def tx_exists(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: TxExists
) -> Outcome:
    """TxExists: as TxGet, answering whether the key is present."""
    return _tx_read(ctx, msg, sender, db, store, action.key, action.tx_id, get=False)


def _tx_read(
    ctx: Context,
    msg: Request,
    sender: ProcessId,
    db: DbKey,
    store: Store,
    key: bytes,
    tx_id: int,
    *,
    get: bool,
) -> Outcome:
    if error := key_too_large(ctx.config, key):
        return error
    tx = ctx.transaction(sender, tx_id, db)
    if isinstance(tx, NoTx):
        return tx
    if key >= RESERVED:  # kv's own (invariant 4): absent, never a staged record
        value = None
    elif key in tx.writes:  # its own write: no read of committed data
        value = tx.writes[key]
    else:
        ctx.flush_pending(store)
        try:
            value = _user_get(ctx, db, store, key)
        except StoreError as exc:
            return exc.error
        tx.reads.note_key(key, ctx.txs.version(db))
    if not get:
        ctx.answer(msg, ExistsResponse(exists=value is not None))
    elif value is None:
        return _KEY_NOT_FOUND
    else:
        ctx.answer(msg, GetResponse(key=key), value)
    return None


def get_many(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: GetMany
) -> Outcome:
    """GetMany: each key read as Get would read it, in one answer."""
    return _get_many(ctx, msg, sender, db, store, action.count, None)


def tx_get_many(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: TxGetMany
) -> Outcome:
    """TxGetMany: each key read as TxGet would read it, in one answer."""
    return _get_many(ctx, msg, sender, db, store, action.count, action.tx_id)


def _get_many(
    ctx: Context,
    msg: Request,
    sender: ProcessId,
    db: DbKey,
    store: Store,
    count: int,
    tx_id: int | None,
) -> Outcome:
    cfg = ctx.config
    blob = batch_blob(cfg, msg.blob, count)
    if not isinstance(blob, bytes):
        return blob
    try:
        keys = decode_keys(blob, count)
    except DecodeError:
        return _MALFORMED
    if error := key_too_large(cfg, *keys):
        return error
    tx: Transaction | None = None
    if tx_id is not None:
        found = ctx.transaction(sender, tx_id, db)
        if isinstance(found, NoTx):
            return found
        tx = found
    ctx.flush_pending(store)
    limit = cfg.max_answer_bytes
    staged = tx.writes if tx is not None else None
    read: dict[bytes, bytes | None] = {}  # a key named twice is read once
    values: list[bytes | None] = []
    size = 0
    try:
        for key in keys:
            if key >= RESERVED:  # kv's own (invariant 4)
                value = None
            elif staged is not None and key in staged:  # its own write
                value = staged[key]
            elif key in read:
                value = read[key]
            else:
                value = read[key] = _user_get(ctx, db, store, key)
                if tx is not None:
                    tx.reads.note_key(key, ctx.txs.version(db))
            if value is not None:
                size += len(value)
                if size > limit:  # stop at once: the answer is refused (invariant 4)
                    return AnswerTooLarge(size=size, max=limit)
            values.append(value)
    except StoreError as exc:
        return exc.error
    ctx.answer(msg, GetManyResponse(count=count), encode_optional_values(values))
    return None
