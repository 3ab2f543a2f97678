"""kv:distro:sys: a capability-secured LevelDB store served over the bus.

How a batch is served (the hot path):
1. The loop takes every request queued in the mailbox (up to ``max_batch``)
   and serves them one by one, in order, with no task per request.
2. A plain Set/Delete is checked, then appended to its db's pending write
   list; its answer waits in the outbox. Anything else that reads or writes
   a db first *flushes*: pending writes go to LevelDB, one WriteBatch per db.
3. Answers leave in serving order, after the flush that made their writes
   durable (or answering the flush's error). So one sender's answers keep
   the order of its requests, and an acknowledged write is in LevelDB.
4. Small LevelDB calls run inline; long work on one db (opening, reopening,
   removing it, a DeleteRange) runs in a worker thread, awaited by a task of
   the kv process's own task group, while the loop serves everything else.

Long work, and the order it keeps (the rules that make it safe):
- Rule 1: while db D has long work in flight, D is *held*: every later request
  naming D waits in the deferred queue, so nothing else touches D until the
  work is done (D's order and the atomicity of DeleteRange, as PROTOCOL.md
  states them, hold as if the loop had waited).
- Rule 2: the sender of the long work is held too, and so is every sender
  with a request in the deferred queue: any later request of a held sender
  waits behind, whatever its db. So one sender's requests are still served,
  and answered, in the order they were accepted.
- Rule 3: a db with a request in the deferred queue stays held until it is
  served, so the requests on one db are served in the order they came.
- Rule 4: when long work ends, its answer is queued, the holds it made go,
  and the deferred queue is served again in order (a request may be deferred
  anew behind other long work). So the queue is empty whenever no long work
  is in flight, and shutdown (which waits for the long work) answers it all.
- Rule 5: the deferred queue holds at most ``mailbox_capacity`` requests: at
  the bound the loop stops taking requests until long work ends (the
  mailbox's backpressure then reaches the senders). No unbounded buffer.
- Rule 6: a db's store is used across an await only by its own long work (it
  is held); opening in a thread evicts nothing: the loop closes the least
  recently used dbs past ``max_open_dbs`` itself, skipping held ones, after
  flushing (so no pending write ever meets a closed store).

RemoveDb, in this order, so that a crash or a failure at any point leaves no
grant that opens a later db of the same name: 1. every grant on the db is
revoked in one durable write (a failure answers ``IoError`` and changes
nothing); offers are withdrawn and transactions dropped; 2. the directory is
renamed away, atomically (a failure answers the error: the db stays, with
no grant left, and the owner's ``Open`` grants it again); 3. the renamed
trash is deleted, or swept by the next start if that is cut short.

The checks for each request run in PROTOCOL.md's order: decode and names
(MalformedRequest), remote sender, package of Open/RemoveDb, existence
(NoDb for the owning package), capability, sizes, transaction.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Iterable
from typing import Final, TypeAlias

import anyio
import anyio.to_thread
import attrs

from protocol.codec import DecodeError, encode_capability_params, encode_response
from protocol.hot import OK_BODY, get_response_body
from protocol.ids import KV_PROCESS_ID, Address, PackageId, ProcessId
from protocol.messages import (
    AddCapFailed,
    BeginTx,
    BeginTxResponse,
    Capabilities,
    Commit,
    CommitBatch,
    CompareAndSwap,
    Delete,
    DeleteMany,
    ErrResponse,
    Exists,
    ExistsResponse,
    Get,
    GetMany,
    IoError,
    KeyNotFound,
    KeyTooLarge,
    KvAction,
    KvCapabilityParams,
    KvError,
    KvResponse,
    LevelDbError,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NoTx,
    NoWriteCap,
    OkResponse,
    Open,
    RemoteNotAllowed,
    RemoveDb,
    Revoke,
    Scan,
    Set,
    SetMany,
    TooManyTransactions,
    TransactionConflict,
    TxExists,
    TxGet,
    TxGetMany,
    ValueTooLarge,
    WriteBatch,
)
from protocol.prefix import RequestDecoder

from ..kernel.bus import Bus, Slot
from ..kernel.capabilities import CapabilityStore, CapabilityStoreError
from ..kernel.mailbox import MailboxClosed
from ..kernel.message import Capability, Request, Response
from ..storage.engine import Engine, NoSuchDb
from ..storage.store import Store, StoreError
from .actions import EXTENDED_ACTIONS as _EXTENDED
from .actions import ExtendedActions
from .checks import first
from .config import KvConfig
from .transactions import DbKey, Transaction, Transactions

__all__ = ["KvProcess", "kv_capability"]

log = logging.getLogger("kvruntime.kv")

_MALFORMED: Final = MalformedRequest()
_NO_READ: Final = NoReadCap()
_NO_WRITE: Final = NoWriteCap()
#: Actions whose request must carry a blob (MalformedRequest without one).
_NEEDS_BLOB: Final[frozenset[type[KvAction]]] = frozenset(
    (Set, GetMany, TxGetMany, SetMany, DeleteMany, CompareAndSwap, WriteBatch, CommitBatch)
)
#: Actions that need only the read capability.
_READS: Final[frozenset[type[KvAction]]] = frozenset(
    (Get, Exists, Scan, TxGet, TxExists, GetMany, TxGetMany)
)
#: Actions on the db itself rather than its data: served before the capability check.
_OF_THE_DB: Final[frozenset[type[KvAction]]] = frozenset((Open, RemoveDb, Revoke, Capabilities))


class _Reopen(enum.Enum):
    """The db exists on disk but is not open: serving must wait for a thread to open it."""

    REOPEN = enum.auto()


_REOPEN: Final = _Reopen.REOPEN

#: Long work on one db: it may hand back the request to serve once it is done.
_Work: TypeAlias = Awaitable["Request | None"]

#: An outbox entry waits for its db's flush (a Store), or holds its answer and
#: blob; a success answer may come encoded already (bytes).
_Pending: TypeAlias = Store | tuple[KvResponse | bytes, bytes | None]


def kv_capability(node: str, kind: str, package_id: PackageId, db: str) -> Capability:
    """The capability kv:distro:sys on ``node`` issues for ``kind`` access to a db."""
    params = KvCapabilityParams(
        kind="read" if kind == "read" else "write", package_id=package_id, db=db
    )
    return Capability(
        issuer=Address(node=node, process=KV_PROCESS_ID),
        params=encode_capability_params(params),
    )


@attrs.define(eq=False)
class KvProcess:
    """The kv module: serves KvRequests from its mailbox until the mailbox closes."""

    slot: Slot
    bus: Bus
    caps: CapabilityStore
    dbs: Engine
    config: KvConfig
    _txs: Transactions = attrs.field(init=False)
    #: Plain writes waiting for the next flush, per db.
    _writes: dict[Store, list[tuple[bytes, bytes | None]]] = attrs.Factory(dict)
    #: Answers in serving order, waiting for the next flush.
    _outbox: list[tuple[Request, _Pending]] = attrs.Factory(list)
    #: (package, db) -> (read capability, write capability); bounded cache.
    _db_caps: dict[DbKey, tuple[Capability, Capability]] = attrs.Factory(dict)
    _ext: ExtendedActions = attrs.field(init=False)
    _decoder: RequestDecoder = attrs.field(init=False, factory=RequestDecoder)
    #: The task group long work runs in (set while ``run`` runs).
    _work: anyio.abc.TaskGroup | None = attrs.field(init=False, default=None)
    #: Dbs and senders held by long work or by deferred requests (rules 1-3), counted.
    _held_dbs: Counter[DbKey] = attrs.Factory(Counter)
    _held_senders: Counter[ProcessId] = attrs.Factory(Counter)
    #: Requests waiting behind long work, in the order they came (rule 4).
    _deferred: deque[tuple[Request, ProcessId, DbKey | None]] = attrs.Factory(deque)
    _room: anyio.Event = attrs.Factory(anyio.Event)

    def __attrs_post_init__(self) -> None:
        self._ext = ExtendedActions(self)
        cfg = self.config
        self._txs = Transactions(
            max_per_sender=cfg.max_transactions_per_sender,
            max_bytes=cfg.max_transaction_bytes,
            max_total_bytes=cfg.max_staged_bytes_total,
            idle_seconds=cfg.transaction_idle_seconds,
        )

    @property
    def open_transactions(self) -> int:
        """How many transactions are open."""
        return len(self._txs)

    async def run(self) -> None:
        """Serve until the mailbox is closed and drained."""
        mailbox = self.slot.mailbox
        if swept := await anyio.to_thread.run_sync(self.dbs.sweep_trash):
            log.info("swept %d removed db(s) left by an earlier run", swept)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._expire_transactions)
            async with anyio.create_task_group() as work:
                self._work = work
                while True:
                    if len(self._deferred) >= self.config.mailbox_capacity:  # rule 5
                        self._room = anyio.Event()
                        await self._room.wait()
                        continue
                    try:
                        batch = await mailbox.get_batch(self.config.max_batch)
                    except MailboxClosed:
                        break
                    self._serve_batch(batch)
            # Every long work has ended, so nothing is deferred any more (rule 4).
            self._work = None
            tg.cancel_scope.cancel()

    async def _expire_transactions(self) -> None:
        interval = max(0.05, min(self.config.transaction_idle_seconds / 2, 30.0))
        while True:
            await anyio.sleep(interval)
            if gone := self._txs.expire(time.monotonic()):
                log.info("expired %d idle transaction(s)", gone)

    def _serve_batch(self, batch: list[Request | Response]) -> None:
        for message in batch:
            if not isinstance(message, Request):
                log.debug("kv ignores a response it did not ask for: %d", message.id)
                continue
            self._serve_one(message)
        self._flush()

    def _serve_one(self, message: Request) -> None:
        try:
            self._serve(message)
        except StoreError as exc:  # e.g. a db path that leads out of the kv root
            self._fail(message, exc.error)
        except Exception:  # a bug must cost one answer, never the loop
            log.exception("kv failed serving request %d from %s", message.id, message.source)
            self._answer(message, ErrResponse(error=_internal_error()))

    # --- long work and the requests held behind it (rules 1-6) ---------------------

    def _defer(self, msg: Request, sender: ProcessId, db: DbKey | None) -> None:
        self._deferred.append((msg, sender, db))
        self._hold(sender, db)

    def _hold(self, sender: ProcessId, db: DbKey | None) -> None:
        self._held_senders[sender] += 1
        if db is not None:
            self._held_dbs[db] += 1

    def _unhold(self, sender: ProcessId, db: DbKey | None) -> None:
        held = self._held_senders
        held[sender] -= 1
        if not held[sender]:
            del held[sender]
        if db is not None:
            dbs = self._held_dbs
            dbs[db] -= 1
            if not dbs[db]:
                del dbs[db]

    def _start(self, msg: Request, sender: ProcessId, db: DbKey, work: _Work) -> None:
        """Run ``work`` (long work on ``db`` for ``msg``) in its own task (rules 1, 2)."""
        assert self._work is not None, "long work outside KvProcess.run"
        self._hold(sender, db)
        self._work.start_soon(self._run_work, msg, sender, db, work)

    async def _run_work(self, msg: Request, sender: ProcessId, db: DbKey, work: _Work) -> None:
        again: Request | None = None
        try:
            again = await work
        except StoreError as exc:
            self._fail(msg, exc.error)
        except Exception:  # a bug must cost one answer, never the loop
            log.exception("kv failed serving request %d from %s", msg.id, msg.source)
            self._answer(msg, ErrResponse(error=_internal_error()))
        finally:
            self._unhold(sender, db)
        self._drain(again)
        self._flush()
        self._evict()

    def _drain(self, first: Request | None = None) -> None:
        """Serve ``first`` then the deferred requests, in order (rule 4)."""
        waiting, self._deferred = self._deferred, deque()
        for _, sender, db in waiting:
            self._unhold(sender, db)
        if first is not None:
            self._serve_one(first)
        for msg, _, _ in waiting:
            self._serve_one(msg)
        if len(self._deferred) < self.config.mailbox_capacity:
            self._room.set()

    def _evict(self) -> None:
        """Close the least recently used dbs past ``max_open_dbs``, but held ones (rule 6)."""
        try:
            self.dbs.evict(keep=self._held_dbs)
        except Exception:  # a close that fails costs nothing else
            log.exception("kv failed closing a least recently used db")

    # --- one request -----------------------------------------------------------

    def _serve(self, msg: Request) -> None:
        """Serve ``msg``, start the long work that will, or defer it (rules 1-3)."""
        sender = msg.source.process
        if self._held_senders and sender in self._held_senders:
            return self._defer(msg, sender, None)
        try:
            package_id, db, action = self._decoder.decode_parts(msg.body)
        except DecodeError as exc:
            log.debug("malformed request %d from %s: %s", msg.id, msg.source, exc)
            return self._fail(msg, _MALFORMED)
        key = (package_id, db)
        if self._held_dbs and key in self._held_dbs:
            return self._defer(msg, sender, key)
        kind = type(action)
        if msg.blob is None and kind in _NEEDS_BLOB:
            self._fail(msg, _MALFORMED)
            return None
        if msg.source.node != self.bus.node:
            self._fail(msg, RemoteNotAllowed())
            return None
        work: _Work | None
        if kind in _OF_THE_DB:
            work = self._serve_of_the_db(msg, sender, package_id, db, action)
        else:
            store = self._authorised_store(msg, sender, package_id, db, write=kind not in _READS)
            if store is None:
                return None
            if store is _REOPEN:
                work = self._reopen(msg, package_id, db)
            elif kind in _EXTENDED:
                work = self._ext.serve(msg, sender, key, store, action)  # type: ignore[arg-type]
            else:
                return self._serve_core(msg, sender, key, store, action)
        if work is not None:
            self._start(msg, sender, key, work)
        return None

    def _serve_of_the_db(
        self, msg: Request, sender: ProcessId, package_id: PackageId, db: str, action: KvAction
    ) -> _Work | None:
        """Open, RemoveDb, Revoke and Capabilities: checks of their own, no store needed."""
        if isinstance(action, Open):
            return self._open(msg, sender, package_id, db)
        if isinstance(action, RemoveDb):
            return self._remove(msg, sender, package_id, db)
        if isinstance(action, Revoke):
            self._ext.revoke(msg, sender, (package_id, db), action.process)
        else:
            self._ext.capabilities(msg, sender, (package_id, db))
        return None

    def _serve_core(
        self, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: KvAction
    ) -> None:
        """Serve a Get, Exists, Set, Delete, BeginTx or Commit on ``store``."""
        cfg = self.config
        match action:
            case Get(key=key) | Exists(key=key):
                if len(key) > cfg.max_key_bytes:
                    return self._fail(msg, KeyTooLarge(size=len(key), max=cfg.max_key_bytes))
                if store in self._writes:
                    self._flush()
                try:
                    value = store.get(key)
                except StoreError as exc:
                    return self._fail(msg, exc.error)
                if isinstance(action, Exists):
                    return self._answer(msg, ExistsResponse(exists=value is not None))
                if value is None:
                    return self._fail(msg, KeyNotFound())
                self._outbox.append((msg, (get_response_body(key), value)))
                return None
            case Set(key=key, tx_id=tx_id) | Delete(key=key, tx_id=tx_id):
                value = msg.blob if isinstance(action, Set) else None
                if len(key) > cfg.max_key_bytes:
                    return self._fail(msg, KeyTooLarge(size=len(key), max=cfg.max_key_bytes))
                if value is not None and len(value) > cfg.max_value_bytes:
                    return self._fail(msg, ValueTooLarge(size=len(value), max=cfg.max_value_bytes))
                if tx_id is None:
                    return self.queue_writes(msg, db, store, [(key, value)])
                tx = self._transaction(msg, sender, tx_id, db)
                if tx is None:
                    return None
                if error := self._txs.too_large(tx, tx.size_after(key, value)):
                    return self._fail(msg, error)
                self._txs.stage(tx, key, value)
                return self._answer(msg, OkResponse())
            case BeginTx():
                now = time.monotonic()
                if not self._txs.can_begin(sender):
                    # Idle ones are no longer open, even if the sweeper has not run yet.
                    self._txs.expire(now)
                if not self._txs.can_begin(sender):
                    return self._fail(msg, TooManyTransactions(max=self._txs.max_per_sender))
                tx = self._txs.begin(sender, db, now)
                return self._answer(msg, BeginTxResponse(tx_id=tx.tx_id))
            case Commit(tx_id=tx_id):
                tx = self._transaction(msg, sender, tx_id, db)
                if tx is not None:
                    self.commit(msg, tx, db, store)
                return None
            case _:  # the others were served by _serve_of_the_db or ExtendedActions
                raise AssertionError(f"unhandled action {action!r}")

    def _open(
        self, msg: Request, sender: ProcessId, package_id: PackageId, db: str
    ) -> _Work | None:
        if not sender.belongs_to(package_id):
            self._fail(msg, MismatchingPackageId())
        elif self.dbs.get(package_id, db) is None:
            return self._open_then_grant(msg, sender, package_id, db)
        else:
            self._grant(msg, sender, package_id, db)
        return None

    async def _open_then_grant(
        self, msg: Request, sender: ProcessId, package_id: PackageId, db: str
    ) -> None:
        try:
            await anyio.to_thread.run_sync(
                functools.partial(self.dbs.open, package_id, db, create=True, evict=False)
            )
        except StoreError as exc:
            return self._fail(msg, exc.error)
        return self._grant(msg, sender, package_id, db)

    def _grant(self, msg: Request, sender: ProcessId, package_id: PackageId, db: str) -> None:
        try:
            self.caps.grant(msg.source, self._caps_of(package_id, db))
        except CapabilityStoreError as exc:
            log.error("cannot grant capabilities on [%s, %s]: %s", package_id, db, exc)
            return self._fail(msg, AddCapFailed())
        return self._answer(msg, OkResponse())

    async def _remove(
        self, msg: Request, sender: ProcessId, package_id: PackageId, db: str
    ) -> None:
        """RemoveDb, all or nothing for access (see the module's removal order)."""
        if not sender.belongs_to(package_id):
            return self._fail(msg, MismatchingPackageId())
        if not self.dbs.exists(package_id, db):
            return self._fail(msg, NoDb(package_id=package_id, db=db))
        self._flush()
        caps = self._caps_of(package_id, db)
        try:  # 1. no grant survives: durable before anything is removed
            self.caps.revoke_everywhere(caps)
        except CapabilityStoreError as exc:
            log.error("cannot revoke the capabilities of [%s, %s]: %s", package_id, db, exc)
            return self._fail(msg, IoError(message=f"cannot revoke capabilities: {exc}"))
        self.bus.withdraw_offers(caps)
        self._txs.drop_db((package_id, db))
        try:  # 2. the directory renamed away (atomic), 3. its files deleted
            await anyio.to_thread.run_sync(self.dbs.remove, package_id, db)
        except StoreError as exc:
            return self._fail(msg, exc.error)
        return self._answer(msg, OkResponse())

    def _authorised_store(
        self, msg: Request, sender: ProcessId, package_id: PackageId, db: str, *, write: bool
    ) -> Store | _Reopen | None:
        """The db's store if it exists and ``sender`` may use it, ``_REOPEN`` if it
        exists on disk but is not open; else answer and return None."""
        dbs = self.dbs
        store = dbs.get(package_id, db)
        exists = store is not None or dbs.exists(package_id, db)
        if not exists and sender.belongs_to(package_id):
            self._fail(msg, NoDb(package_id=package_id, db=db))
            return None
        read_cap, write_cap = self._caps_of(package_id, db)
        if not self.caps.holds(msg.source, (write_cap if write else read_cap).key):
            self._fail(msg, _NO_WRITE if write else _NO_READ)
            return None
        if store is not None:
            return store
        if not exists:
            self._fail(msg, NoDb(package_id=package_id, db=db))
            return None
        return _REOPEN

    async def _reopen(self, msg: Request, package_id: PackageId, db: str) -> Request | None:
        """Open a db that exists on disk (after a restart or an eviction) and hand
        ``msg`` back to be served first once it is open; else answer."""
        try:
            await anyio.to_thread.run_sync(
                functools.partial(self.dbs.open, package_id, db, create=False, evict=False)
            )
        except NoSuchDb:
            self._fail(msg, NoDb(package_id=package_id, db=db))
        except StoreError as exc:
            self._fail(msg, exc.error)
        else:
            return msg
        return None

    def _transaction(
        self, msg: Request, sender: ProcessId, tx_id: int, db: DbKey
    ) -> Transaction | None:
        tx = self._txs.lookup(tx_id, sender, db, time.monotonic())
        if tx is None:
            self._fail(msg, NoTx(tx_id=tx_id))
        return tx

    def _caps_of(self, package_id: PackageId, db: str) -> tuple[Capability, Capability]:
        key = (package_id, db)
        caps = self._db_caps.get(key)
        if caps is None:
            if len(self._db_caps) >= 4096:
                self._db_caps.clear()
            node = self.bus.node
            caps = (
                kv_capability(node, "read", package_id, db),
                kv_capability(node, "write", package_id, db),
            )
            self._db_caps[key] = caps
        return caps

    # --- answers ---------------------------------------------------------------

    def _answer(self, msg: Request, response: KvResponse, blob: bytes | None = None) -> None:
        self._outbox.append((msg, (response, blob)))

    def _fail(self, msg: Request, error: KvError, blob: bytes | None = None) -> None:
        self._outbox.append((msg, (ErrResponse(error=error), blob)))

    # --- the seam the extended actions (kv_actions_ext.py and its modules) use -------

    @property
    def txs(self) -> Transactions:
        """The open transactions."""
        return self._txs

    def answer(self, msg: Request, response: KvResponse, blob: bytes | None = None) -> None:
        """Queue ``response`` to ``msg``; it leaves after the next flush."""
        self._answer(msg, response, blob)

    def fail(self, msg: Request, error: KvError, blob: bytes | None = None) -> None:
        """Queue the error ``error`` (with ``blob``, for CasMismatch) as the answer to ``msg``."""
        self._fail(msg, error, blob)

    def flush_pending(self, store: Store) -> None:
        """Flush if ``store`` has pending writes, so that a read of it sees them."""
        if store in self._writes:
            self._flush()

    def write_now(
        self, msg: Request, db: DbKey, store: Store, ops: Iterable[tuple[bytes, bytes | None]]
    ) -> bool:
        """Write ``ops`` in one batch now and log them for the conflict check.

        On failure the db is closed (its log may end in a torn record; the next
        request reopens it), the error is answered, and False returned.
        """
        ops = list(ops)
        try:
            store.write(ops, sync=self.config.sync_writes)
        except StoreError as exc:
            self.dbs.discard(store)
            self._fail(msg, exc.error)
            return False
        except Exception:  # a bug or a bad op costs this answer, never the loop
            log.exception("kv failed writing for request %d from %s", msg.id, msg.source)
            self.dbs.discard(store)
            self._fail(msg, _internal_error())
            return False
        self._txs.record_writes(db, map(first, ops))
        return True

    def commit(self, msg: Request, tx: Transaction, db: DbKey, store: Store) -> None:
        """Apply ``tx``'s staged writes atomically, after the db's pending plain
        writes, and answer. If a key it read changed since, TransactionConflict
        and nothing applied. The transaction ends either way."""
        conflict = self._txs.conflicts(tx)
        self._txs.finish(tx)
        if conflict:
            return self._fail(msg, TransactionConflict(tx_id=tx.tx_id))
        self.flush_pending(store)
        if self.write_now(msg, db, store, tx.writes.items()):
            self._answer(msg, OkResponse())
        return None

    def queue_writes(
        self, msg: Request, db: DbKey, store: Store, ops: list[tuple[bytes, bytes | None]]
    ) -> None:
        """Add ``ops`` to ``store``'s pending batch; ``msg`` is answered after the flush."""
        self._writes.setdefault(store, []).extend(ops)
        self._outbox.append((msg, store))
        self._txs.record_writes(db, map(first, ops))

    def transaction(
        self, msg: Request, sender: ProcessId, tx_id: int, db: DbKey
    ) -> Transaction | None:
        """The transaction ``tx_id`` of ``sender`` on ``db``, or answer NoTx and None."""
        return self._transaction(msg, sender, tx_id, db)

    def caps_of(self, package_id: PackageId, db: str) -> tuple[Capability, Capability]:
        """The (read, write) capabilities of a db."""
        return self._caps_of(package_id, db)

    def _flush(self) -> None:
        """Write pending plain writes, one batch per db, then send every waiting answer."""
        failed: dict[Store, KvError] = {}
        if self._writes:
            sync = self.config.sync_writes
            for store, ops in self._writes.items():
                try:
                    store.write(ops, sync=sync)
                except StoreError as exc:
                    failed[store] = exc.error
                    self.dbs.discard(store)  # its log may end in a torn record
                except Exception:  # a bug or a bad op costs this db's writes, never the loop
                    log.exception("kv failed writing a batch to %s", store)
                    failed[store] = _internal_error()
                    self.dbs.discard(store)
            self._writes.clear()
        outbox, self._outbox = self._outbox, []
        respond, source = self.bus.respond, self.slot.address
        for msg, pending in outbox:
            if isinstance(pending, tuple):
                response, blob = pending
            elif pending in failed:
                response, blob = ErrResponse(error=failed[pending]), None
            else:
                response, blob = None, None  # a write that landed: "Ok"
            if msg.expects_response is None:
                if isinstance(response, ErrResponse):
                    log.warning("request %d from %s failed: %s", msg.id, msg.source, response.error)
                continue
            if response is None:
                body = OK_BODY
            elif isinstance(response, bytes):  # a success answer, encoded already
                body = response
            else:
                body = encode_response(response)
            metadata = None if isinstance(response, ErrResponse) else msg.metadata
            try:  # by position: this is the hot path (see message.py)
                respond(Response(msg.id, source, msg.source, body, blob, metadata))
            except Exception:  # one answer the bus refuses must not cost the others
                log.exception("kv could not answer request %d from %s", msg.id, msg.source)


def _internal_error() -> KvError:
    return LevelDbError(message="internal error in kv:distro:sys (logged)")
