"""Open transactions of the kv process: owned, bounded, expiring.

Invariants:
1. A transaction belongs to one (sender process, db) pair; looked up from
   any other sender or db it does not exist (``NoTx``), so an id is no
   bearer token.
2. Ids are 64 random bits (``os.urandom``, as ``secrets`` draws them):
   unguessable, never reused while open.
3. A sender holds at most ``max_per_sender`` transactions; each stages at
   most ``max_bytes`` of keys and values, and all of them together at most
   ``max_total_bytes`` (``staged_bytes`` is their sum, kept exact by
   ``stage``/``stage_many``/``finish``); each expires after ``idle_seconds``
   without use, as ``clock`` (``time.monotonic`` unless injected) tells.
   ``opened`` is called when the first transaction opens (none was open): the
   kv process's expirer waits for it while there is nothing to expire.
4. Optimistic conflict check (``conflicts.py``): while a db has an open
   transaction it has a WriteLog, and every applied write to it must be
   passed to ``record_writes``; a transaction remembers what it read
   (``reads``) and ``conflicts`` tells whether any of it changed since.
   The log goes when the db's last transaction does. ``conflicts`` is
   imported with the first transaction (a process that begins none, a
   ``kvruntime get``, never loads it).
5. A transaction lives no longer than its owner's access: RemoveDb drops
   every transaction on the db (``drop_db``), Revoke those of the revoked
   process on it (``drop_owned``); either way a later use answers ``NoTx``.
6. A transaction's staged keys are kept sorted (``staged_range``): new keys
   wait in ``_fresh`` and are merged into ``_sorted`` by the next range read
   (one at a time with ``insort`` when few, else one timsort of a sorted run
   and a short tail), so a scan page costs O(log n + page), not a sort of
   every staged write. Keys are never unstaged (a delete stages None).
"""

from __future__ import annotations

import bisect
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from protocol.ids import PackageId, ProcessId
from protocol.messages import TransactionTooLarge

if TYPE_CHECKING:
    from .conflicts import ReadSet, WriteLog

__all__ = ["DbKey", "Transaction", "Transactions"]


def _random_id() -> int:
    """64 bits from the OS's CSPRNG: ``secrets.randbits(64)`` without importing
    ``secrets`` (and hmac, hashlib, random) into every process's start-up."""
    return int.from_bytes(os.urandom(8), "big")


def _read_set() -> ReadSet:
    from .conflicts import ReadSet  # with the first transaction (invariant 4)

    return ReadSet()


#: A db: its package and its name.
DbKey = tuple[PackageId, str]


def _nothing() -> None:
    """``Transactions.opened`` until the kv process sets its own."""


class Transaction:
    """Writes staged by ``owner`` on ``db``; None as a value stages a delete.

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = (
        "__weakref__",
        "_fresh",
        "_sorted",
        "db",
        "last_used",
        "owner",
        "reads",
        "size",
        "start_version",
        "tx_id",
        "writes",
    )

    tx_id: int
    owner: ProcessId
    db: DbKey
    last_used: float
    writes: dict[bytes, bytes | None]
    size: int
    #: The db's write version when the transaction began.
    start_version: int
    #: What it read of the committed data, for the conflict check at commit.
    reads: ReadSet
    #: The staged keys in order, but for those staged since the last range read.
    _sorted: list[bytes]
    _fresh: list[bytes]

    def __init__(
        self, *, tx_id: int, owner: ProcessId, db: DbKey, last_used: float, start_version: int = 0
    ) -> None:
        self.tx_id = tx_id
        self.owner = owner
        self.db = db
        self.last_used = last_used
        self.writes = {}
        self.size = 0
        self.start_version = start_version
        self.reads = _read_set()
        self._sorted = []
        self._fresh = []

    def size_after(self, key: bytes, value: bytes | None) -> int:
        """The staged size if ``key`` were written to ``value``."""
        size = self.size + len(key) + (len(value) if value is not None else 0)
        if key in self.writes:
            old = self.writes[key]
            size -= len(key) + (len(old) if old is not None else 0)
        return size

    def size_after_many(self, writes: Mapping[bytes, bytes | None]) -> int:
        """The staged size if every write of ``writes`` (one value per key) were staged."""
        size, staged = self.size, self.writes
        for key, value in writes.items():
            size += len(key) + (len(value) if value is not None else 0)
            if key in staged:
                old = staged[key]
                size -= len(key) + (len(old) if old is not None else 0)
        return size

    def stage_many(self, writes: Mapping[bytes, bytes | None], size: int) -> None:
        """Stage every write of ``writes``; ``size`` is ``size_after_many(writes)``.

        Keys are unique on both sides, so the order of the staged writes does
        not change what a commit applies. Call it through ``Transactions``.
        """
        staged = self.writes
        self._fresh.extend(key for key in writes if key not in staged)
        staged.update(writes)
        self.size = size

    def stage(self, key: bytes, value: bytes | None) -> None:
        """Stage a write; a later write of the same key replaces an earlier one.

        Call it through ``Transactions`` (which keeps the node's total exact).
        """
        self.size = self.size_after(key, value)
        if key not in self.writes:
            self._fresh.append(key)
        self.writes[key] = value

    def staged_range(
        self, lo: bytes | None, hi: bytes | None, *, reverse: bool
    ) -> Iterator[tuple[bytes, bytes | None]]:
        """Staged writes with ``lo <= key < hi`` (None: unbounded), in key order
        (descending if ``reverse``); None values are staged deletes."""
        keys = self._settled()
        first = 0 if lo is None else bisect.bisect_left(keys, lo)
        end = len(keys) if hi is None else bisect.bisect_left(keys, hi)
        staged = self.writes
        indexes = range(end - 1, first - 1, -1) if reverse else range(first, end)
        return ((keys[i], staged[keys[i]]) for i in indexes)

    def _settled(self) -> list[bytes]:
        fresh, keys = self._fresh, self._sorted
        if fresh:
            if len(fresh) <= 32:
                for key in fresh:
                    bisect.insort(keys, key)
            else:  # a sorted run and a tail: timsort merges them in about O(n + k log k)
                keys.extend(fresh)
                keys.sort()
            fresh.clear()
        return keys


class Transactions:
    """The open transactions of one kv process. (A plain slotted class, as
    ``Transaction``.)"""

    __slots__ = (
        "__weakref__",
        "_by_id",
        "_per_db",
        "_per_sender",
        "clock",
        "idle_seconds",
        "logs",
        "max_bytes",
        "max_per_sender",
        "max_total_bytes",
        "opened",
        "staged_bytes",
    )

    max_per_sender: int
    max_bytes: int
    idle_seconds: float
    max_total_bytes: int
    #: Seconds, monotonic: what "idle" is measured by (a test may inject its own).
    clock: Callable[[], float]
    #: Called when a transaction opens while none was (invariant 3).
    opened: Callable[[], object]
    #: Bytes staged by every open transaction together.
    staged_bytes: int
    _by_id: dict[int, Transaction]
    _per_sender: Counter[ProcessId]
    _per_db: Counter[DbKey]
    #: The write log of each db with an open transaction (invariant 4); read-only
    #: outside: empty, no write needs ``record_writes`` (the hot path tests it).
    logs: dict[DbKey, WriteLog]

    def __init__(
        self,
        *,
        max_per_sender: int,
        max_bytes: int,
        idle_seconds: float,
        max_total_bytes: int = 1 << 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_sender = max_per_sender
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.max_total_bytes = max_total_bytes
        self.clock = clock
        self.opened = _nothing
        self.staged_bytes = 0
        self._by_id = {}
        self._per_sender = Counter()
        self._per_db = Counter()
        self.logs = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def can_begin(self, owner: ProcessId) -> bool:
        """Whether ``owner`` is below its limit of open transactions."""
        return self._per_sender[owner] < self.max_per_sender

    def begin(self, owner: ProcessId, db: DbKey) -> Transaction:
        """Open a transaction (check ``can_begin`` first)."""
        tx_id = _random_id()
        while tx_id in self._by_id:
            tx_id = _random_id()
        log = self.logs.get(db)
        if log is None:
            from .conflicts import WriteLog  # with the first transaction (invariant 4)

            log = self.logs[db] = WriteLog()
        tx = Transaction(
            tx_id=tx_id, owner=owner, db=db, last_used=self.clock(), start_version=log.version
        )
        self._by_id[tx_id] = tx
        self._per_sender[owner] += 1
        self._per_db[db] += 1
        if len(self._by_id) == 1:
            self.opened()
        return tx

    def too_large(self, tx: Transaction, size: int) -> TransactionTooLarge | None:
        """The error if ``tx`` may not grow to ``size`` staged bytes, else None:
        past its own limit, or past the node's (``max`` tells which)."""
        if size > self.max_bytes:
            return TransactionTooLarge(size=size, max=self.max_bytes)
        total = self.staged_bytes - tx.size + size
        if size > tx.size and total > self.max_total_bytes:
            return TransactionTooLarge(size=total, max=self.max_total_bytes)
        return None

    def stage(self, tx: Transaction, key: bytes, value: bytes | None) -> None:
        """Stage one write in ``tx`` (checked with ``too_large`` first)."""
        before = tx.size
        tx.stage(key, value)
        self.staged_bytes += tx.size - before

    def stage_many(self, tx: Transaction, writes: Mapping[bytes, bytes | None], size: int) -> None:
        """Stage ``writes`` in ``tx``; ``size`` is ``tx.size_after_many(writes)``."""
        self.staged_bytes += size - tx.size
        tx.stage_many(writes, size)

    def record_writes(self, db: DbKey, keys: Iterable[bytes]) -> None:
        """A write to ``db`` was applied (or queued in serving order) for ``keys``.

        Cheap when no transaction is open on ``db``: nothing is kept then.
        """
        log = self.logs.get(db)
        if log is not None:
            log.record(keys)

    def tracks(self, db: DbKey) -> bool:
        """Whether writes to ``db`` are being logged (a transaction is open on it)."""
        return db in self.logs

    def version(self, db: DbKey) -> int:
        """The current write version of ``db`` (0 when no transaction is open on it)."""
        log = self.logs.get(db)
        return 0 if log is None else log.version

    def conflicts(self, tx: Transaction) -> bool:
        """Whether a key ``tx`` read was written by another writer since it read it."""
        log = self.logs.get(tx.db)
        return log is not None and bool(tx.reads) and log.conflicts(tx.reads)

    def lookup(self, tx_id: int, owner: ProcessId, db: DbKey) -> Transaction | None:
        """The transaction ``tx_id`` if ``owner`` began it on ``db`` and it has not
        expired; a use, so it is idle from now on."""
        tx = self._by_id.get(tx_id)
        if tx is None or tx.owner != owner or tx.db != db:
            return None
        now = self.clock()
        if now - tx.last_used > self.idle_seconds:
            self.finish(tx)
            return None
        tx.last_used = now
        return tx

    def finish(self, tx: Transaction) -> None:
        """Forget ``tx`` (committed, rolled back, expired, revoked or its db removed)."""
        if self._by_id.pop(tx.tx_id, None) is None:
            return
        self.staged_bytes -= tx.size
        self._per_sender[tx.owner] -= 1
        if not self._per_sender[tx.owner]:
            del self._per_sender[tx.owner]
        self._per_db[tx.db] -= 1
        if not self._per_db[tx.db]:
            del self._per_db[tx.db]
            self.logs.pop(tx.db, None)
        elif (log := self.logs.get(tx.db)) is not None:
            log.trim(min(t.start_version for t in self._by_id.values() if t.db == tx.db))

    def drop_owned(self, owner: ProcessId, db: DbKey) -> int:
        """Forget every transaction ``owner`` holds on ``db`` (its access was revoked)."""
        gone = [tx for tx in self._by_id.values() if tx.owner == owner and tx.db == db]
        for tx in gone:
            self.finish(tx)
        return len(gone)

    def drop_db(self, db: DbKey) -> int:
        """Forget every transaction on ``db``; return how many."""
        gone = [tx for tx in self._by_id.values() if tx.db == db]
        for tx in gone:
            self.finish(tx)
        return len(gone)

    def expire(self) -> int:
        """Forget every transaction idle for longer than the limit; return how many."""
        now = self.clock()
        gone = [tx for tx in self._by_id.values() if now - tx.last_used > self.idle_seconds]
        for tx in gone:
            self.finish(tx)
        return len(gone)
