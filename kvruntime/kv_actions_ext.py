"""The kv actions beyond Hyperware's: scans, batches, atomics, tx reads, range deletes.

WriteBatch and CommitBatch (the pipelined transaction's writes) are here too.

``KvProcess`` has already run checks 1 to 5 of PROTOCOL.md (decode, remote,
existence, capability) when it hands a request here; these handlers run the
rest in order: sizes (6), then the blob of a batch (6b: ``TransactionTooLarge``
for an oversized blob, then ``MalformedRequest`` for a malformed one), then
the transaction lookup (7).

Invariants:
1. Atomic against every writer: the kv process serves one request at a time,
   so a read-modify-write (Increment, CompareAndSwap, DeleteRange) first
   flushes the db's pending writes, then reads, then applies its result in
   one write before the next request is served.
2. SetMany, DeleteMany and WriteBatch without a tx_id join the db's pending
   writes, which reach LevelDB as one write batch: all of a batch lands or
   none does; later duplicates win. WriteBatch and CommitBatch with a tx_id
   stage all of their writes in the transaction or none (TransactionTooLarge).
3. Every applied write is passed to ``Transactions.record_writes`` so that
   the conflict check of a commit sees it; every read inside a transaction
   of committed data is noted in its read set.
4. A scan page is bounded by ``max_scan_items`` and ``max_scan_bytes``
   whatever the client asks, and is read from one LevelDB snapshot; its
   cursor is the last key returned, so resuming continues strictly after it
   (before it, in reverse) and never repeats or skips a key that existed
   throughout.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Final

import anyio.to_thread
import attrs

from protocol.blobs import (
    decode_cas,
    decode_items,
    decode_keys,
    decode_writes,
    encode_optional_values,
    encode_scan_page,
)
from protocol.codec import DecodeError
from protocol.ids import PackageId, ProcessId
from protocol.messages import (
    BatchTooLarge,
    CapabilitiesResponse,
    CasMismatch,
    CommitBatch,
    CompareAndSwap,
    DeleteMany,
    DeleteRange,
    DeleteRangeResponse,
    ExistsResponse,
    GetMany,
    GetManyResponse,
    GetResponse,
    Increment,
    IncrementResponse,
    IntegerOverflow,
    IoError,
    KeyNotFound,
    KeyTooLarge,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NotAnInteger,
    OkResponse,
    Rollback,
    Scan,
    ScanResponse,
    SetMany,
    TransactionConflict,
    TransactionTooLarge,
    TxExists,
    TxGet,
    TxGetMany,
    ValueTooLarge,
    WriteBatch,
)

from .capabilities import CapabilityStoreError
from .message import Request
from .store import Store, StoreError
from .transactions import DbKey, Transaction

if TYPE_CHECKING:
    from .kv_process import KvProcess

__all__ = ["ExtendedActions", "parse_counter", "prefix_end"]

#: The key and the value of a (key, value) op, for C-level passes over batches.
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)

_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1
_MAX_COUNTER_DIGITS: Final = 20  # "-9223372036854775808"

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


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


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


def _bounds(
    prefix: bytes | None, start: bytes | None, end: bytes | None
) -> tuple[bytes | None, bytes | None]:
    """The range ``lo <= key < hi`` of a prefix or a start/end pair."""
    if prefix is not None:
        return prefix, prefix_end(prefix)
    return start, end


def _entries(
    store: Store, lo: bytes | None, hi: bytes | None, *, reverse: bool, keys_only: bool
) -> Generator[tuple[bytes, bytes | None], None, None]:
    if keys_only:
        for key in store.iterate(start=lo, stop=hi, reverse=reverse, include_value=False):
            yield key, None
    else:
        yield from store.iterate(start=lo, stop=hi, reverse=reverse)


def _merged(
    committed: Iterator[tuple[bytes, bytes | None]],
    staged: list[tuple[bytes, bytes | None]],
    *,
    reverse: bool,
    keys_only: bool,
) -> Iterator[tuple[bytes, bytes | None]]:
    """Committed entries with a transaction's staged writes laid over them, in order.

    ``staged`` is sorted in scan order; a staged None (delete) hides the key.
    """
    pending = iter(staged)
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


@attrs.define(eq=False)
class ExtendedActions:
    """Serves the extended actions for ``kv`` (whose answer/fail/flush it uses)."""

    kv: KvProcess

    # --- entry points --------------------------------------------------------------

    async def serve(
        self, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: ExtAction
    ) -> None:
        """Serve ``action`` (checks 1-5 passed) and queue its answer."""
        match action:
            case Scan():
                self._scan(msg, sender, db, store, action)
            case TxGet(key=key, tx_id=tx_id) | TxExists(key=key, tx_id=tx_id):
                self._tx_read(msg, sender, db, store, key, tx_id, isinstance(action, TxGet))
            case GetMany(count=count):
                self._get_many(msg, sender, db, store, count, None)
            case TxGetMany(count=count, tx_id=tx_id):
                self._get_many(msg, sender, db, store, count, tx_id)
            case SetMany(count=count) | DeleteMany(count=count):
                self._write_many(msg, db, store, count, isinstance(action, SetMany))
            case Increment(key=key, delta=delta):
                self._increment(msg, db, store, key, delta)
            case CompareAndSwap(key=key):
                self._compare_and_swap(msg, db, store, key)
            case Rollback(tx_id=tx_id):
                tx = self.kv.transaction(msg, sender, tx_id, db)
                if tx is not None:
                    self.kv.txs.finish(tx)
                    self.kv.answer(msg, OkResponse())
            case DeleteRange(prefix=prefix, start=start, end=end):
                await self._delete_range(msg, db, store, prefix, start, end)
            case WriteBatch(tx_id=tx_id, count=count):
                self._write_batch(msg, sender, db, store, tx_id, count)
            case CommitBatch(tx_id=tx_id, count=count):
                self._commit_batch(msg, sender, db, store, tx_id, count)
            case _:
                raise AssertionError(f"not an extended action: {action!r}")

    def revoke(self, msg: Request, sender: ProcessId, db: DbKey, target: ProcessId) -> None:
        """Revoke: checked like Open/RemoveDb (package, then existence).

        Then the target's two capabilities on the db go, and its open
        transactions on the db with them.
        """
        package_id, name = db
        if not _in_package(sender, package_id):
            return self.kv.fail(msg, MismatchingPackageId())
        if not self.kv.dbs.exists(package_id, name):
            return self.kv.fail(msg, NoDb(package_id=package_id, db=name))
        try:
            self.kv.caps.revoke(target, self.kv.caps_of(package_id, name))
        except CapabilityStoreError as exc:
            return self.kv.fail(msg, IoError(message=f"cannot revoke capabilities: {exc}"))
        # Its open transactions on the db go too: staged writes it may no
        # longer commit are dropped at once, and a later use answers NoTx.
        self.kv.txs.drop_owned(target, db)
        return self.kv.answer(msg, OkResponse())

    def capabilities(self, msg: Request, sender: ProcessId, db: DbKey) -> None:
        """Capabilities: any capability on the db may ask; none is NoReadCap (step 5)."""
        package_id, name = db
        exists = self.kv.dbs.exists(package_id, name)
        if not exists and _in_package(sender, package_id):
            return self.kv.fail(msg, NoDb(package_id=package_id, db=name))
        read_cap, write_cap = self.kv.caps_of(package_id, name)
        read = self.kv.caps.holds(sender, read_cap.key)
        write = self.kv.caps.holds(sender, write_cap.key)
        if not (read or write):
            return self.kv.fail(msg, NoReadCap())
        if not exists:
            return self.kv.fail(msg, NoDb(package_id=package_id, db=name))
        return self.kv.answer(msg, CapabilitiesResponse(read=read, write=write))

    # --- checks ------------------------------------------------------------------------

    def _key_too_large(self, msg: Request, *keys: bytes | None) -> bool:
        limit = self.kv.config.max_key_bytes
        for key in keys:
            if key is not None and len(key) > limit:
                self.kv.fail(msg, KeyTooLarge(size=len(key), max=limit))
                return True
        return False

    def _value_too_large(self, msg: Request, value: bytes | None) -> bool:
        limit = self.kv.config.max_value_bytes
        if value is not None and len(value) > limit:
            self.kv.fail(msg, ValueTooLarge(size=len(value), max=limit))
            return True
        return False

    def _batch_blob(self, msg: Request, count: int) -> bytes | None:
        """The blob of a batch once its count and size pass (6, 6b), else answer and None."""
        cfg = self.kv.config
        if count > cfg.max_batch_items:
            self.kv.fail(msg, BatchTooLarge(count=count, max=cfg.max_batch_items))
            return None
        blob = msg.blob or b""
        if len(blob) > cfg.max_transaction_bytes:
            self.kv.fail(msg, TransactionTooLarge(size=len(blob), max=cfg.max_transaction_bytes))
            return None
        return blob

    # --- reads ---------------------------------------------------------------------------

    def _scan(self, msg: Request, sender: ProcessId, db: DbKey, store: Store, scan: Scan) -> None:
        cfg, kv = self.kv.config, self.kv
        if self._key_too_large(msg, scan.prefix, scan.start, scan.end, scan.cursor):
            return
        tx: Transaction | None = None
        if scan.tx_id is not None:
            tx = kv.transaction(msg, sender, scan.tx_id, db)
            if tx is None:
                return
        lo, hi = _bounds(scan.prefix, scan.start, scan.end)
        if scan.cursor is not None:  # strictly after (before, in reverse) the cursor
            if scan.reverse:
                hi = scan.cursor if hi is None else min(hi, scan.cursor)
            else:
                after = scan.cursor + b"\x00"
                lo = after if lo is None else max(lo, after)
        limit = max(1, min(scan.limit or cfg.max_scan_items, cfg.max_scan_items))
        page: list[tuple[bytes, bytes | None]] = []
        more = False
        if lo is None or hi is None or lo < hi:
            kv.flush_pending(store)
            try:
                more = self._fill(page, store, tx, lo, hi, scan, limit)
            except StoreError as exc:
                return kv.fail(msg, exc.error)
        if tx is not None:  # what the page covered, for the conflict check
            last = page[-1][0] if more else None
            if last is None:
                tx.reads.note_range(lo, hi, kv.txs.version(db))
            elif scan.reverse:
                tx.reads.note_range(last, hi, kv.txs.version(db))
            else:
                tx.reads.note_range(lo, last + b"\x00", kv.txs.version(db))
        cursor = page[-1][0] if more else None
        blob = encode_scan_page(page, keys_only=scan.keys_only)
        kv.answer(msg, ScanResponse(count=len(page), cursor=cursor), blob)

    def _fill(
        self,
        page: list[tuple[bytes, bytes | None]],
        store: Store,
        tx: Transaction | None,
        lo: bytes | None,
        hi: bytes | None,
        scan: Scan,
        limit: int,
    ) -> bool:
        """Fill ``page`` from one snapshot; whether entries remain after it."""
        max_bytes = self.kv.config.max_scan_bytes
        reverse, keys_only = scan.reverse, scan.keys_only
        if tx is None or not tx.writes:  # the common case, read in C-speed chunks
            entries_read, more = store.read_page(
                start=lo,
                stop=hi,
                reverse=reverse,
                include_value=not keys_only,
                limit=limit,
                max_bytes=max_bytes,
            )
            page.extend(entries_read)
            return more
        committed = _entries(store, lo, hi, reverse=reverse, keys_only=keys_only)
        entries: Iterator[tuple[bytes, bytes | None]] = committed
        if tx.writes:
            staged = sorted(
                (item for item in tx.writes.items() if _inside(item[0], lo, hi)),
                reverse=reverse,
            )
            entries = _merged(committed, staged, reverse=reverse, keys_only=keys_only)
        size = 0
        try:
            for key, value in entries:
                if len(page) == limit:
                    return True
                size += len(key) + (len(value) if value is not None else 0)
                if page and size > max_bytes:
                    return True
                page.append((key, value))
            return False
        finally:
            committed.close()

    def _tx_read(
        self,
        msg: Request,
        sender: ProcessId,
        db: DbKey,
        store: Store,
        key: bytes,
        tx_id: int,
        get: bool,
    ) -> None:
        kv = self.kv
        if self._key_too_large(msg, key):
            return
        tx = kv.transaction(msg, sender, tx_id, db)
        if tx is None:
            return
        if key in tx.writes:  # its own write: no read of committed data
            value = tx.writes[key]
        else:
            kv.flush_pending(store)
            try:
                value = store.get(key)
            except StoreError as exc:
                return kv.fail(msg, exc.error)
            tx.reads.note_key(key, kv.txs.version(db))
        if not get:
            return kv.answer(msg, ExistsResponse(exists=value is not None))
        if value is None:
            return kv.fail(msg, KeyNotFound())
        return kv.answer(msg, GetResponse(key=key), value)

    def _get_many(
        self,
        msg: Request,
        sender: ProcessId,
        db: DbKey,
        store: Store,
        count: int,
        tx_id: int | None,
    ) -> None:
        """GetMany, or TxGetMany (``tx_id``): each key read as TxGet would read it."""
        kv = self.kv
        blob = self._batch_blob(msg, count)
        if blob is None:
            return
        try:
            keys = decode_keys(blob, count)
        except DecodeError:
            return kv.fail(msg, MalformedRequest())
        if self._key_too_large(msg, *keys):
            return
        tx: Transaction | None = None
        if tx_id is not None:
            tx = kv.transaction(msg, sender, tx_id, db)
            if tx is None:
                return
        kv.flush_pending(store)
        values: list[bytes | None] = []
        try:
            for key in keys:
                if tx is not None and key in tx.writes:  # its own write
                    values.append(tx.writes[key])
                    continue
                values.append(store.get(key))
                if tx is not None:
                    tx.reads.note_key(key, kv.txs.version(db))
        except StoreError as exc:
            return kv.fail(msg, exc.error)
        kv.answer(msg, GetManyResponse(count=count), encode_optional_values(values))

    # --- writes ----------------------------------------------------------------------------

    def _write_many(self, msg: Request, db: DbKey, store: Store, count: int, put: bool) -> None:
        kv = self.kv
        blob = self._batch_blob(msg, count)
        if blob is None:
            return
        ops: list[tuple[bytes, bytes | None]]
        try:
            ops = (
                list(decode_items(blob, count))
                if put
                else [(k, None) for k in decode_keys(blob, count)]
            )
        except DecodeError:
            return kv.fail(msg, MalformedRequest())
        if ops:
            limits = self.kv.config
            # C-level passes over the batch; the per-item checks only name the culprit.
            if max(map(len, map(_first, ops))) > limits.max_key_bytes:
                self._key_too_large(msg, *map(_first, ops))
                return
            if put and max(map(len, map(_second, ops))) > limits.max_value_bytes:
                for _, value in ops:
                    if self._value_too_large(msg, value):
                        return
        kv.queue_writes(msg, db, store, ops)

    # --- pipelined transactions: WriteBatch, CommitBatch --------------------------------

    def _writes_blob(self, msg: Request, count: int) -> list[tuple[bytes, bytes | None]] | None:
        """The writes in the blob once they pass step 6, else answer and None."""
        blob = self._batch_blob(msg, count)
        if blob is None:
            return None
        try:
            ops = decode_writes(blob, count)
        except DecodeError:
            self.kv.fail(msg, MalformedRequest())
            return None
        if ops:
            limits = self.kv.config
            # C-level passes; the per-item checks only name the culprit.
            if max(map(len, map(_first, ops))) > limits.max_key_bytes:
                self._key_too_large(msg, *map(_first, ops))
                return None
            # filter(None, ...) drops deletes (and empty values, which fit anyway).
            values = list(filter(None, map(_second, ops)))
            if values and max(map(len, values)) > limits.max_value_bytes:
                for value in values:
                    if self._value_too_large(msg, value):
                        return None
        return ops

    def _stage(
        self,
        msg: Request,
        sender: ProcessId,
        db: DbKey,
        tx_id: int,
        ops: list[tuple[bytes, bytes | None]],
    ) -> Transaction | None:
        """Stage every op in ``tx_id`` (step 7), or none of them: answer and None."""
        kv = self.kv
        tx = kv.transaction(msg, sender, tx_id, db)
        if tx is None:
            return None
        writes = dict(ops)  # later entries win
        size = tx.size_after_many(writes)
        if size > kv.config.max_transaction_bytes:
            kv.fail(msg, TransactionTooLarge(size=size, max=kv.config.max_transaction_bytes))
            return None
        tx.stage_many(writes, size)
        return tx

    def _write_batch(
        self,
        msg: Request,
        sender: ProcessId,
        db: DbKey,
        store: Store,
        tx_id: int | None,
        count: int,
    ) -> None:
        kv = self.kv
        ops = self._writes_blob(msg, count)
        if ops is None:
            return
        if tx_id is None:  # one atomic batch, like SetMany (invariant 2)
            return kv.queue_writes(msg, db, store, ops)
        if self._stage(msg, sender, db, tx_id, ops) is not None:
            kv.answer(msg, OkResponse())

    def _commit_batch(
        self, msg: Request, sender: ProcessId, db: DbKey, store: Store, tx_id: int, count: int
    ) -> None:
        """Stage the blob's writes in ``tx_id``, then commit it exactly as Commit does."""
        kv = self.kv
        ops = self._writes_blob(msg, count)
        if ops is None:
            return
        tx = self._stage(msg, sender, db, tx_id, ops)
        if tx is None:  # NoTx, or TransactionTooLarge: nothing staged, the tx stays open
            return
        if kv.txs.conflicts(tx):  # a key it read changed: apply nothing, end it
            kv.txs.finish(tx)
            return kv.fail(msg, TransactionConflict(tx_id=tx_id))
        kv.flush_pending(store)  # earlier plain writes land before the transaction
        kv.txs.finish(tx)
        try:
            store.write(tx.writes.items(), sync=kv.config.sync_writes)
        except StoreError as exc:
            kv.dbs.discard(store)  # a failed write may leave a torn log record; reopen
            return kv.fail(msg, exc.error)
        kv.txs.record_writes(db, tx.writes)
        kv.answer(msg, OkResponse())

    def _increment(self, msg: Request, db: DbKey, store: Store, key: bytes, delta: int) -> None:
        kv = self.kv
        if self._key_too_large(msg, key):
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
        if not self._apply(msg, db, store, [(key, b"%d" % value)]):
            return
        kv.answer(msg, IncrementResponse(value=value))

    def _compare_and_swap(self, msg: Request, db: DbKey, store: Store, key: bytes) -> None:
        kv = self.kv
        if self._key_too_large(msg, key):
            return
        blob = msg.blob or b""
        if len(blob) > 2 * kv.config.max_value_bytes + 16:
            return kv.fail(msg, ValueTooLarge(size=len(blob), max=2 * kv.config.max_value_bytes))
        try:
            expected, new = decode_cas(blob)
        except DecodeError:
            return kv.fail(msg, MalformedRequest())
        if self._value_too_large(msg, new):
            return
        kv.flush_pending(store)
        try:
            current = store.get(key)
        except StoreError as exc:
            return kv.fail(msg, exc.error)
        if current != expected:
            return kv.fail(msg, CasMismatch(present=current is not None), current)
        if self._apply(msg, db, store, [(key, new)]):
            kv.answer(msg, OkResponse())

    async def _delete_range(
        self,
        msg: Request,
        db: DbKey,
        store: Store,
        prefix: bytes | None,
        start: bytes | None,
        end: bytes | None,
    ) -> None:
        kv = self.kv
        if self._key_too_large(msg, prefix, start, end):
            return
        lo, hi = _bounds(prefix, start, end)
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

    def _apply(
        self, msg: Request, db: DbKey, store: Store, ops: list[tuple[bytes, bytes | None]]
    ) -> bool:
        """Write ``ops`` now, in one batch; answer the error and return False if it fails."""
        try:
            store.write(ops, sync=self.kv.config.sync_writes)
        except StoreError as exc:
            self.kv.dbs.discard(store)  # a failed write may leave a torn log record; reopen
            self.kv.fail(msg, exc.error)
            return False
        self.kv.txs.record_writes(db, (key for key, _ in ops))
        return True


def _inside(key: bytes, lo: bytes | None, hi: bytes | None) -> bool:
    return (lo is None or key >= lo) and (hi is None or key < hi)


def _in_package(process: ProcessId, package_id: PackageId) -> bool:
    return (
        process.package_name == package_id.package_name
        and process.publisher_node == package_id.publisher_node
    )
