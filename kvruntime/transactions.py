"""Open transactions of the kv process: owned, bounded, expiring.

Invariants:
1. A transaction belongs to one (sender process, db) pair; looked up from
   any other sender or db it does not exist (``NoTx``), so an id is no
   bearer token.
2. Ids are 64 random bits (``secrets``): unguessable, never reused while open.
3. A sender holds at most ``max_per_sender`` transactions; each stages at
   most ``max_bytes`` of keys and values; each expires after
   ``idle_seconds`` without use.
"""

from __future__ import annotations

import secrets
from collections import Counter

import attrs

from protocol.ids import PackageId, ProcessId

__all__ = ["DbKey", "Transaction", "Transactions"]

#: A db: its package and its name.
DbKey = tuple[PackageId, str]


@attrs.define(eq=False)
class Transaction:
    """Writes staged by ``owner`` on ``db``; None as a value stages a delete."""

    tx_id: int
    owner: ProcessId
    db: DbKey
    last_used: float
    writes: dict[bytes, bytes | None] = attrs.Factory(dict)
    size: int = 0

    def size_after(self, key: bytes, value: bytes | None) -> int:
        """The staged size if ``key`` were written to ``value``."""
        size = self.size + len(key) + (len(value) if value is not None else 0)
        if key in self.writes:
            old = self.writes[key]
            size -= len(key) + (len(old) if old is not None else 0)
        return size

    def stage(self, key: bytes, value: bytes | None) -> None:
        """Stage a write; a later write of the same key replaces an earlier one."""
        self.size = self.size_after(key, value)
        self.writes.pop(key, None)  # re-insert: the batch applies writes in staging order
        self.writes[key] = value


@attrs.define(eq=False)
class Transactions:
    """The open transactions of one kv process."""

    max_per_sender: int
    max_bytes: int
    idle_seconds: float
    _by_id: dict[int, Transaction] = attrs.Factory(dict)
    _per_sender: Counter[ProcessId] = attrs.Factory(Counter)

    def __len__(self) -> int:
        return len(self._by_id)

    def can_begin(self, owner: ProcessId) -> bool:
        """Whether ``owner`` is below its limit of open transactions."""
        return self._per_sender[owner] < self.max_per_sender

    def begin(self, owner: ProcessId, db: DbKey, now: float) -> Transaction:
        """Open a transaction (check ``can_begin`` first)."""
        tx_id = secrets.randbits(64)
        while tx_id in self._by_id:
            tx_id = secrets.randbits(64)
        tx = Transaction(tx_id=tx_id, owner=owner, db=db, last_used=now)
        self._by_id[tx_id] = tx
        self._per_sender[owner] += 1
        return tx

    def lookup(self, tx_id: int, owner: ProcessId, db: DbKey, now: float) -> Transaction | None:
        """The transaction ``tx_id`` if ``owner`` began it on ``db`` and it has not expired."""
        tx = self._by_id.get(tx_id)
        if tx is None or tx.owner != owner or tx.db != db:
            return None
        if now - tx.last_used > self.idle_seconds:
            self.finish(tx)
            return None
        tx.last_used = now
        return tx

    def finish(self, tx: Transaction) -> None:
        """Forget ``tx`` (committed, rolled back, expired or its db removed)."""
        if self._by_id.pop(tx.tx_id, None) is not None:
            self._per_sender[tx.owner] -= 1
            if not self._per_sender[tx.owner]:
                del self._per_sender[tx.owner]

    def drop_db(self, db: DbKey) -> int:
        """Forget every transaction on ``db``; return how many."""
        gone = [tx for tx in self._by_id.values() if tx.db == db]
        for tx in gone:
            self.finish(tx)
        return len(gone)

    def expire(self, now: float) -> int:
        """Forget every transaction idle for longer than the limit; return how many."""
        gone = [tx for tx in self._by_id.values() if now - tx.last_used > self.idle_seconds]
        for tx in gone:
            self.finish(tx)
        return len(gone)
