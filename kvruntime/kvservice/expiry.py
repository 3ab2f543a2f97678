"""Keys with a TTL: each db's expiry index, the records that keep it, its TTL policy.

A key's deadline is an absolute wall-clock time, in whole milliseconds since
the Unix epoch, kept in the db itself (``reserved.py``), in the same atomic
write as the data it describes:

- ``DEADLINE + key`` -> the deadline, 8 bytes big-endian;
- ``EXPIRY_INDEX + deadline + key`` -> empty: the keys in the order they expire;
- ``SETTINGS`` -> the db's TTL policy (``TtlPolicy``, as JSON).

A write names a deadline by carrying a ``(DEADLINE + key, deadline or None)``
op beside its data ops; ``DbExpiry.complete`` turns a write's ops into the
ops that keep every record right, and is applied to each request's write (an
atomic unit) where the write path queues or applies it (``loop.py``,
``writes.py``).

Invariants:
1. Once loaded (from the store's ``DEADLINE`` records, at first use),
   ``DbExpiry.deadlines`` holds exactly the deadlines the store holds with
   its queued writes applied: ``complete`` updates it when a write is queued;
   a write that fails discards its store, and the reopened store (another
   object) loads its index afresh. On a networked engine (``loads_inline``
   false: ``kvservice/networked.py``) a store's records cannot be read
   inline: ``of`` raises ``NotAtHand(store, ("expiry", db))`` and the kv
   process loads the index as long work on the db (``load`` in a worker
   thread, the db held), then serves the request again; a commit that fails
   there drops the index (``drop``), which is then loaded afresh.
2. In one write, a ``DEADLINE`` op for a key wins over its data ops (a
   transaction's staged writes carry no order); any other write of a key
   clears its expiry (as Redis ``SET`` does). While no open db has a key
   with a TTL (``Expiries.armed`` false), a plain Set, Delete or Get of a
   loaded db pays a flag test and a dict membership test, nothing more.
3. A key whose deadline is at or before now is absent to every read
   (``expired``), whatever the sweeper has done yet. The sweeper removes due
   keys in bounded steps (``due``) through the normal write path.
"""

from __future__ import annotations

import heapq
import json
import operator
import time
from collections.abc import Callable, Iterable
from typing import Final

from protocol.variant import Variant, frozen_value

from ..storage.store import NotAtHand, Store, prefix_end
from .reserved import DEADLINE, EXPIRY_INDEX, RESERVED, SETTINGS
from .transactions import DbKey, Transaction, Transactions

__all__ = [
    "DbExpiry",
    "Expiries",
    "TtlPolicy",
    "deadline_op",
    "decode_deadline",
    "unstage_deadlines",
]

_Ops = list[tuple[bytes, bytes | None]]

_DEADLINE_END: Final = prefix_end(DEADLINE)
_SKIP: Final = len(DEADLINE)
_first = operator.itemgetter(0)


def _encode(deadline: int) -> bytes:
    return deadline.to_bytes(8, "big")


def decode_deadline(record: bytes) -> int:
    """The deadline a ``DEADLINE`` record holds."""
    return int.from_bytes(record, "big")


def deadline_op(key: bytes, deadline: int | None) -> tuple[bytes, bytes | None]:
    """The op that gives ``key`` this ``deadline`` (None: no expiry) in a write."""
    return DEADLINE + key, None if deadline is None else _encode(deadline)


def _nothing() -> None:
    """``Expiries.on_armed`` until the kv process sets its own."""


@frozen_value(kw_only=True)  # attrs' class, built by @variant (issue 15)
class TtlPolicy(Variant):
    """A db's TTL settings: whether keys may have a TTL, and the longest (ms; None: any)."""

    enabled: bool = True
    max_ttl_ms: int | None = None

    def encode(self) -> bytes:
        """The ``SETTINGS`` record of this policy."""
        return json.dumps({"ttl": self.enabled, "max_ttl_ms": self.max_ttl_ms}).encode()

    @classmethod
    def decode(cls, record: bytes | None) -> TtlPolicy:
        """The policy a ``SETTINGS`` record holds (None: the default)."""
        if record is None:
            return cls()
        fields = json.loads(record)
        return cls(enabled=bool(fields["ttl"]), max_ttl_ms=fields["max_ttl_ms"])


class DbExpiry:
    """The expiry index of one open store of ``db`` (invariant 1).

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = ("__weakref__", "db", "deadlines", "heap", "policy")

    db: DbKey
    #: key -> deadline (ms).
    deadlines: dict[bytes, int]
    #: (deadline, key), a min-heap; an entry whose deadline is not the key's any
    #: more is stale and skipped.
    heap: list[tuple[int, bytes]]
    policy: TtlPolicy

    def __init__(
        self,
        db: DbKey,
        deadlines: dict[bytes, int] | None = None,
        heap: list[tuple[int, bytes]] | None = None,
        policy: TtlPolicy | None = None,
    ) -> None:
        self.db = db
        self.deadlines = {} if deadlines is None else deadlines
        self.heap = [] if heap is None else heap
        self.policy = TtlPolicy() if policy is None else policy

    @classmethod
    def load(cls, store: Store, db: DbKey) -> DbExpiry:
        """The index of ``store`` (of ``db``), read from its records."""
        deadlines = {
            key[_SKIP:]: decode_deadline(value)
            for key, value in store.iterate(start=DEADLINE, stop=_DEADLINE_END)
        }
        heap = [(deadline, key) for key, deadline in deadlines.items()]
        heapq.heapify(heap)
        return cls(db, deadlines, heap, TtlPolicy.decode(store.get(SETTINGS)))

    def expired(self, key: bytes, now: int) -> bool:
        """Whether ``key`` has a deadline at or before ``now`` (invariant 3)."""
        deadline = self.deadlines.get(key)
        return deadline is not None and deadline <= now

    def complete(self, ops: _Ops) -> _Ops:
        """The ops of one write with every expiry record kept right (invariant 2),
        the index updated to match."""
        final: dict[bytes, int | None] = {}  # user key -> its deadline after the write
        named: set[bytes] = set()  # keys whose deadline a DEADLINE op names
        out: _Ops = []
        for key, value in ops:
            if key < RESERVED:
                out.append((key, value))
                if key not in named:
                    final[key] = None
            elif key.startswith(DEADLINE):
                user = key[_SKIP:]
                final[user] = None if value is None else decode_deadline(value)
                named.add(user)
            else:  # another record of kv's (SETTINGS): as it is
                out.append((key, value))
        deadlines = self.deadlines
        for key, deadline in final.items():
            old = deadlines.get(key)
            if old == deadline:
                continue
            if old is not None:
                out.append((EXPIRY_INDEX + _encode(old) + key, None))
            if deadline is None:
                out.append((DEADLINE + key, None))
                del deadlines[key]
            else:
                out.append((DEADLINE + key, _encode(deadline)))
                out.append((EXPIRY_INDEX + _encode(deadline) + key, b""))
                deadlines[key] = deadline
                heapq.heappush(self.heap, (deadline, key))
        if len(self.heap) > 2 * len(deadlines) + 1024:  # drop the stale entries
            self.heap = [(deadline, key) for key, deadline in deadlines.items()]
            heapq.heapify(self.heap)
        return out

    def clear_ops(self, key: bytes, deadline: int) -> _Ops:
        """The ops that delete the records of ``key``'s ``deadline``."""
        return [(DEADLINE + key, None), (EXPIRY_INDEX + _encode(deadline) + key, None)]

    def forget(self, keys: list[bytes]) -> None:
        """Drop ``keys`` from the index once a write deleted their records (``clear_ops``)."""
        for key in keys:
            self.deadlines.pop(key, None)

    def due(self, now: int, limit: int) -> list[bytes]:
        """Up to ``limit`` keys whose deadline is at or before ``now``, soonest first.

        They stay in the index until the write deleting them is completed.
        """
        heap, deadlines = self.heap, self.deadlines
        found: list[bytes] = []
        seen: set[bytes] = set()
        while heap and heap[0][0] <= now and len(found) < limit:
            deadline, key = heapq.heappop(heap)
            if deadlines.get(key) == deadline and key not in seen:
                found.append(key)
                seen.add(key)
        for key in found:  # until the write lands, a due key stays due
            heapq.heappush(heap, (deadlines[key], key))
        return found


def unstage_deadlines(txs: Transactions, tx: Transaction, keys: Iterable[bytes]) -> None:
    """After a write without a TTL is staged in ``tx``: drop the deadline an earlier
    staged write gave its key (invariant 2: it would win at the commit)."""
    staged = tx.writes
    for key in keys:
        if DEADLINE + key in staged:
            txs.stage(tx, DEADLINE + key, None)


def _has_records(ops: _Ops) -> bool:
    """Whether ``ops`` hold a record of kv's: one C-level pass (``reserved.py``)."""
    return bool(ops) and max(map(_first, ops)) >= RESERVED


class Expiries:
    """The expiry index of every open store, loaded at first use (invariant 1).

    ``clock`` is the wall clock, in seconds since the epoch (a test injects its
    own); deadlines are whole milliseconds of it. (A plain slotted class, as
    ``DbExpiry``.)
    """

    __slots__ = ("__weakref__", "armed", "by_store", "clock", "loads_inline", "on_armed")

    clock: Callable[[], float]
    #: Whether any key of an open db has had a TTL since the last ``loaded``: until
    #: then a plain read or write of a store in ``by_store`` needs no expiry check
    #: (the hot path tests ``armed or store not in by_store``).
    armed: bool
    #: The index of every store loaded so far (closed ones go at ``loaded``).
    by_store: dict[Store, DbExpiry]
    #: Whether ``of`` may read a store's records inline (an embedded engine); if
    #: not, it raises ``NotAtHand`` for an index not loaded yet (invariant 1).
    loads_inline: bool
    #: Called whenever ``armed`` turns true: the kv process's sweeper waits for it
    #: while no open db has a key with a TTL.
    on_armed: Callable[[], object]

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.armed = False
        self.by_store = {}
        self.loads_inline = True
        self.on_armed = _nothing

    def now(self) -> int:
        """Now, in whole milliseconds of the wall clock."""
        return int(self.clock() * 1000)

    def of(self, store: Store, db: DbKey) -> DbExpiry:
        """The index of ``store`` (the open store of ``db``), loaded from it at first use."""
        found = self.by_store.get(store)
        if found is None:
            if not self.loads_inline:  # loaded as long work, then asked again
                raise NotAtHand(store, ("expiry", db))
            found = self.adopt(store, DbExpiry.load(store, db))
        return found

    def adopt(self, store: Store, index: DbExpiry) -> DbExpiry:
        """Keep ``index`` (``DbExpiry.load`` of ``store``, run elsewhere) as ``store``'s."""
        self.by_store[store] = index
        if index.deadlines:
            self._arm()
        return index

    def _arm(self) -> None:
        if not self.armed:
            self.armed = True
            self.on_armed()

    def drop(self, store: Store) -> None:
        """Forget ``store``'s index (a write of it failed): the next use loads it afresh."""
        self.by_store.pop(store, None)

    def expired(self, store: Store, db: DbKey, key: bytes) -> bool:
        """Whether ``key`` of ``store`` has expired: reads answer it as absent."""
        found = self.by_store.get(store) or self.of(store, db)
        return bool(found.deadlines) and found.expired(key, self.now())

    def complete(self, store: Store, db: DbKey, ops: _Ops) -> _Ops:
        """``ops`` of one write on ``store`` with its expiry records (``DbExpiry.complete``);
        ``ops`` themselves when there is nothing to keep (the common case)."""
        found = self.by_store.get(store) or self.of(store, db)
        if not found.deadlines and not _has_records(ops):
            return ops
        self._arm()
        return found.complete(ops)

    def loaded(self) -> list[tuple[Store, DbExpiry]]:
        """Every open store with its index; forgets the closed ones (and disarms when
        no open db has a key with a TTL)."""
        for store in [s for s in self.by_store if s.closed]:
            del self.by_store[store]
        self.armed = any(index.deadlines for index in self.by_store.values())
        return list(self.by_store.items())
