"""Change feeds: each db's change log, and the watches that read it.

The log lives in the db itself, in the reserved keyspace (``reserved.py``):
``CHANGE_LOG + seq`` (8 bytes, big-endian) holds one change, ``LAST_SEQ``
the last seq given. ``with_log`` adds a batch's change records, the new
last seq and the trimming of the oldest records to the *same* list of ops
the data goes in, so one ``Store.write`` (one atomic batch on every engine)
carries all of them: a crash never shows a change without its data, nor
data without its change.

When a db is logged: from its first watch on, for good (``LAST_SEQ`` is the
mark, so it survives restarts and a watch resumes after one). A db never
watched pays one dictionary lookup per flushed batch (per store, not per
write) and one ``get`` of ``LAST_SEQ`` the first time it is written after
being opened.

Watches hold no changes: a watch is a cursor (the last seq its watcher
acknowledged), a filter and at most one *parked* request, the watcher's
``WatchNext``. kv answers it with up to a window of changes read from the
log (``watch_window_items`` / ``watch_window_bytes``), at once if there are
some past the cursor, else after the flush that logs the next matching one.
A watcher that stops asking is sent nothing more and costs nothing more; it
catches up from the log when it asks again, or learns ``WatchCompacted``.

Invariants:
1. Seqs of a db increase by one per change and are never reused (``LAST_SEQ``
   is written with every batch that logs, and never trimmed). A db's first
   seq follows the wall clock in microseconds when it is first watched, so a
   db removed and created again (whose log starts anew) starts above every
   seq of the old one, unless the old one averaged more than a change per
   microsecond or the clock went back: a resumed ``since`` of the old db is
   answered ``WatchCompacted``, never read as a position of the new one.
2. Retention: at most ``watch_log_entries`` records and ``watch_log_bytes``
   bytes of them per db, trimmed oldest first in the batch that passes a bound.
3. A watch's answers hold, in seq order, every matching change after its
   cursor; ``last`` says how far the log was read (filtered changes included),
   so a cursor never skips an unread change: the answer to a cursor the log
   no longer covers is ``WatchCompacted``, never a gap.
4. One ``DbLog`` per open ``Store`` object: a reopened db reads its log
   state again (in the worker thread that opens it: ``load``, then
   ``opened`` on the loop; inline at first use only for a store opened
   another way), so a failed write (after which the store is discarded)
   leaves no stale state behind; closed stores are forgotten as the table grows.
5. Only user keys have changes: an op on a reserved key (a deadline, the
   expiry index, a setting: ``reserved.py``) is written but never logged, so
   no watch shows one; the log's own records are reserved keys, so no scan,
   read or DeleteRange shows or removes them. A write of only such records
   (Expire, Persist, SetTtlPolicy) logs nothing and takes no seq.
6. On a networked engine (``loads_inline`` false: ``kvservice/networked.py``)
   a store's log state cannot be read inline: ``log_of`` raises
   ``NotAtHand(store, ("log",))`` for a store not known yet, and the kv
   process loads it as long work on the db (``load`` in a worker thread,
   with the db's expiry index: both are known, or neither is, but for a db
   opened in a thread, whose log state ``opened`` gives first), then serves
   the request again. A commit that fails there drops the store's log state
   (``drop``): it is read again, so a seq the failed write took is given
   again and the log and the data agree. Each log also keeps its newest
   changes in memory (``recent``, bounded by ``recent_items`` and a window's
   bytes): a parked watcher is answered from them after the commit, up to
   the last seq that commit made durable (``take_dirty``) and never while
   long work holds its db; only a watcher behind them reads the store (long
   work there).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Container, Generator, Iterable, Iterator
from typing import Final, Literal, TypeAlias

import msgpack

from protocol.blobs import encode_changes
from protocol.ids import Address, ProcessId
from protocol.messages import (
    ErrResponse,
    KvError,
    KvResponse,
    TooManyWatches,
    WatchChangesResponse,
    WatchCompacted,
    WatchEnded,
)

from ..kernel.message import Request
from ..storage.store import NotAtHand, Store
from .config import KvConfig
from .reserved import CHANGE_LOG, LAST_SEQ, RESERVED
from .transactions import DbKey

__all__ = ["END_REASONS", "DbLog", "Feeds", "Kind", "WatchState", "log_key"]

#: What a change did to its key.
Kind: TypeAlias = Literal["set", "delete", "expire"]
#: How the kv process answers a parked request.
Answer: TypeAlias = Callable[[Request, KvResponse, "bytes | None"], None]

_Ops = list[tuple[bytes, bytes | None]]
#: A change as a watcher gets it: (seq, kind, key, value).
_Change = tuple[int, str, bytes, "bytes | None"]
_LOG_END: Final = CHANGE_LOG + b"\xff" * 9  # above every ``log_key``
#: Bytes counted per change a log keeps in memory beside its key and value (the
#: tuple and its seq): ``recent`` stays within ``watch_window_bytes`` for real.
_KEPT: Final = 100


def log_key(seq: int) -> bytes:
    """The key of change ``seq`` in its db's log."""
    return CHANGE_LOG + seq.to_bytes(8, "big")


class DbLog:
    """The change log of one open db, as kv keeps it in memory: its last seq and
    the size of each record it retains (oldest first). (A plain slotted class,
    as ``Feeds``.)"""

    __slots__ = ("__weakref__", "db", "last", "recent", "recent_size", "size", "sizes")

    last: int
    sizes: deque[int]
    size: int
    #: The db (package, name), once a watch names it: whose watches to wake.
    db: DbKey | None
    #: The newest changes, oldest first, where the engine keeps them (invariant 6).
    recent: deque[_Change]
    recent_size: int

    def __init__(self, *, last: int) -> None:
        self.last = last
        self.sizes = deque()
        self.size = 0
        self.db = None
        self.recent = deque()
        self.recent_size = 0

    @property
    def oldest(self) -> int:
        """The oldest seq still held (``last + 1`` when the log holds none)."""
        return self.last - len(self.sizes) + 1

    def covers(self, after: int) -> bool:
        """Whether every change after ``after`` is still held (invariant 3)."""
        return after == self.last or self.oldest - 1 <= after < self.last


class WatchState:
    """One watch: whose, on which db, which keys, how far acknowledged. (A plain
    slotted class, as ``Feeds``.)"""

    __slots__ = (
        "__weakref__",
        "after",
        "asked",
        "db",
        "hi",
        "holder",
        "lo",
        "owner",
        "parked",
        "watch_id",
    )

    watch_id: int
    owner: ProcessId
    holder: Address
    db: DbKey
    lo: bytes | None
    hi: bytes
    #: The watcher has seen every change up to this seq.
    after: int
    #: The watcher's ``WatchNext`` waiting for a change, if any.
    parked: Request | None
    #: When the watcher last asked (``Feeds.clock``).
    asked: float

    def __init__(
        self,
        watch_id: int,
        owner: ProcessId,
        holder: Address,
        db: DbKey,
        lo: bytes | None,
        hi: bytes,
        after: int,
        *,
        asked: float = 0.0,
    ) -> None:
        self.watch_id = watch_id
        self.owner = owner
        self.holder = holder
        self.db = db
        self.lo = lo
        self.hi = hi
        self.after = after
        self.parked = None
        self.asked = asked

    def matches(self, key: bytes) -> bool:
        """Whether ``key`` is in the watch's range."""
        lo = self.lo
        return (lo is None or key >= lo) and key < self.hi


_UNKNOWN: Final = object()
#: The ``reason`` label of ``/metrics``' ended watches for each WatchEnded reason;
#: the others are "unwatched", "idle" (dropped at a bound) and "compacted".
END_REASONS: Final = {
    "the db was removed": "db_removed",
    "read access was revoked": "access_revoked",
}


class Feeds:
    """The change logs of the open dbs and every watch of the node.

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = (
        "__weakref__",
        "_by_db",
        "_next_id",
        "_per_process",
        "_purge_at",
        "_watches",
        "clock",
        "config",
        "delivered",
        "dirty",
        "ended",
        "loads_inline",
        "logged",
        "logs",
        "recent_items",
        "wall_clock",
    )

    config: KvConfig
    clock: Callable[[], float]
    #: Nanoseconds since the epoch: where a db's first seq starts (``enable``).
    wall_clock: Callable[[], int]
    #: By open store: its log, or None when its db is not logged; a store not in
    #: it is not known yet (``log_of`` reads it). A plain dict, which the loop's
    #: flush reads inline (one ``get`` per store per batch: the cost to a db never
    #: watched); closed stores are purged as it grows (``_keep``).
    logs: dict[Store, DbLog | None]
    _purge_at: int
    _watches: dict[int, WatchState]
    _by_db: dict[DbKey, dict[int, WatchState]]
    _per_process: dict[Address, int]
    _next_id: int
    #: Logs written since the last ``notify``, whose parked watchers may have news.
    dirty: list[DbLog]
    #: Whether ``log_of`` may read a store's log state inline (an embedded engine);
    #: if not, it raises ``NotAtHand`` for a store not known yet (invariant 6).
    loads_inline: bool
    #: How many of its newest changes each log keeps in memory (0: none; invariant 6).
    recent_items: int
    # --- metrics (issue 15): counted per logged batch and per answer, never per request
    #: Changes written into the logs.
    logged: int
    #: Changes sent to watchers (in the answers to their WatchNext).
    delivered: int
    #: Watches ended, by reason (``END_REASONS``' values, a fixed set).
    ended: dict[str, int]

    def __init__(
        self,
        config: KvConfig,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] = time.time_ns,
        *,
        loads_inline: bool = True,
        recent_items: int = 0,
    ) -> None:
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.logs = {}
        self._purge_at = 64
        self._watches = {}
        self._by_db = {}
        self._per_process = {}
        self._next_id = 1
        self.dirty = []
        self.loads_inline = loads_inline
        self.recent_items = recent_items
        self.logged = 0
        self.delivered = 0
        self.ended = {}

    # --- the log ---------------------------------------------------------------------

    def log_of(self, store: Store) -> DbLog | None:
        """The log of ``store``'s db, None if the db is not logged (read from the
        store the first time this store object is seen, if ``opened`` was not
        given it)."""
        found = self.logs.get(store, _UNKNOWN)
        if found is _UNKNOWN:
            if not self.loads_inline:  # loaded as long work, then asked again
                raise NotAtHand(store, ("log",))
            found = self.load(store)
            self._keep(store, found)
        return found  # type: ignore[return-value]

    def opened(self, store: Store, log: DbLog | None) -> None:
        """``store`` was just opened and its log state read (``load``, in the open's
        worker thread): nothing is read inline at its first write or watch."""
        if store not in self.logs:
            self._keep(store, log)

    def drop(self, store: Store) -> None:
        """Forget ``store``'s log state (a write of it failed): read afresh at next use."""
        self.logs.pop(store, None)

    def _keep(self, store: Store, log: DbLog | None) -> None:
        logs = self.logs
        logs[store] = log
        if len(logs) > self._purge_at:  # forget closed stores (invariant 4)
            for gone in [s for s in logs if s.closed]:
                del logs[gone]
            self._purge_at = 2 * len(logs) + 64

    @staticmethod
    def load(store: Store) -> DbLog | None:
        """The log state ``store`` holds (None: its db is not logged). Reads only the
        store: a worker thread may call it while the db is held."""
        raw = store.get(LAST_SEQ)
        if raw is None:
            return None
        log = DbLog(last=int.from_bytes(raw, "big"))
        for key, value in store.iterate(start=CHANGE_LOG, stop=_LOG_END):
            log.sizes.append(len(key) + len(value))
            log.size += len(key) + len(value)
        return log

    def enable(self, store: Store, db: DbKey, *, sync: bool) -> DbLog:
        """Log ``store``'s db from now on (its first watch): ``LAST_SEQ`` is written,
        the wall clock in microseconds (invariant 1: a db removed and made again
        starts above every seq the old one gave, so a ``since`` of the old one
        is never taken for a position of the new one)."""
        log = self.log_of(store)
        if log is None:
            start = self.wall_clock() // 1000
            store.write([(LAST_SEQ, start.to_bytes(8, "big"))], sync=sync)
            log = DbLog(last=start)
            self._keep(store, log)
        log.db = db
        return log

    def with_log(self, store: Store, ops: _Ops, *, expired: bool = False) -> _Ops:
        """``ops``, followed by their change records, the new last seq and the
        trimming of the oldest records if ``store``'s db is logged; else ``ops``
        itself. Write the result in one batch, then call ``notify``.

        Only a user key's op is a change (invariant 5): "set" for a value,
        "delete" for None, or "expire" for None if ``expired`` (the sweeper's
        deletes of expired keys)."""
        log = self.logs.get(store, _UNKNOWN)
        if log is None:
            return ops
        if log is _UNKNOWN:
            log = self.log_of(store)
            if log is None:
                return ops
        assert isinstance(log, DbLog)
        return self._append(log, ops, "expire" if expired else "delete")

    def _append(self, log: DbLog, ops: _Ops, removed: Kind) -> _Ops:
        out = list(ops)
        seq, sizes, size = log.last, log.sizes, log.size
        # One Packer per batch (packb makes one per call; a shared one would meet
        # DeleteRange's worker thread); the loop below runs per change.
        pack, add, keep = msgpack.Packer(use_bin_type=True).pack, out.append, sizes.append
        remember = log.recent.append if self.recent_items else None
        for key, value in ops:
            if key >= RESERVED:  # kv's own record (a deadline, a setting): no change
                continue
            seq += 1
            record_key = CHANGE_LOG + seq.to_bytes(8, "big")  # log_key, inlined
            kind = removed if value is None else "set"
            record = pack((kind, key, value))
            add((record_key, record))
            grown = len(record_key) + len(record)
            keep(grown)
            size += grown
            if remember is not None:
                remember((seq, kind, key, value))
                log.recent_size += _KEPT + len(key) + (0 if value is None else len(value))
        if seq == log.last:  # only kv's records (Expire, Persist): nothing to log
            return out
        if remember is not None:
            self._trim_recent(log)
        cfg = self.config
        oldest = seq - len(sizes) + 1
        while sizes and (len(sizes) > cfg.watch_log_entries or size > cfg.watch_log_bytes):
            size -= sizes.popleft()
            out.append((log_key(oldest), None))
            oldest += 1
        out.append((LAST_SEQ, seq.to_bytes(8, "big")))
        self.logged += seq - log.last
        log.last, log.size = seq, size
        if self._by_db:
            self.dirty.append(log)
        return out

    def _trim_recent(self, log: DbLog) -> None:
        recent, most, most_bytes = log.recent, self.recent_items, self.config.watch_window_bytes
        while recent and (len(recent) > most or log.recent_size > most_bytes):
            _, _, key, value = recent.popleft()
            log.recent_size -= _KEPT + len(key) + (0 if value is None else len(value))

    # --- watches -----------------------------------------------------------------------

    def add(
        self, owner: ProcessId, holder: Address, db: DbKey, lo: bytes | None, hi: bytes, after: int
    ) -> WatchState | KvError:
        """A new watch, or TooManyWatches at a bound (idle watches go first)."""
        cfg = self.config
        if len(self._watches) >= cfg.max_watches or (
            self._per_process.get(holder, 0) >= cfg.max_watches_per_process
        ):
            self._drop_idle()
        if len(self._watches) >= cfg.max_watches:
            return TooManyWatches(max=cfg.max_watches)
        if self._per_process.get(holder, 0) >= cfg.max_watches_per_process:
            return TooManyWatches(max=cfg.max_watches_per_process)
        watch = WatchState(self._next_id, owner, holder, db, lo, hi, after, asked=self.clock())
        self._next_id += 1
        self._watches[watch.watch_id] = watch
        self._by_db.setdefault(db, {})[watch.watch_id] = watch
        self._per_process[holder] = self._per_process.get(holder, 0) + 1
        return watch

    def __len__(self) -> int:
        return len(self._watches)

    def lookup(self, watch_id: int, owner: ProcessId, db: DbKey) -> WatchState | None:
        """The watch ``watch_id`` if ``owner`` holds it on ``db``."""
        watch = self._watches.get(watch_id)
        if watch is None or watch.owner != owner or watch.db != db:
            return None
        return watch

    def remove(self, watch: WatchState, reason: str = "unwatched") -> None:
        """End ``watch`` (its parked request, if any, is forgotten unanswered);
        ``reason`` is one of ``END_REASONS``' values, counted for ``/metrics``."""
        if self._watches.pop(watch.watch_id, None) is None:
            return
        self.ended[reason] = self.ended.get(reason, 0) + 1
        on_db = self._by_db.get(watch.db)
        if on_db is not None:
            on_db.pop(watch.watch_id, None)
            if not on_db:
                del self._by_db[watch.db]
        left = self._per_process.get(watch.holder, 0) - 1
        if left > 0:
            self._per_process[watch.holder] = left
        else:
            self._per_process.pop(watch.holder, None)

    def _drop_idle(self) -> None:
        cutoff = self.clock() - self.config.watch_idle_seconds
        for watch in [w for w in self._watches.values() if w.asked < cutoff]:
            self.remove(watch, "idle")

    def end(self, db: DbKey, reason: str, answer: Answer, *, holder: Address | None = None) -> int:
        """End the watches on ``db`` (only ``holder``'s if given): a parked request
        is answered ``WatchEnded(reason)``; return how many ended."""
        watches = [
            w for w in self._by_db.get(db, {}).values() if holder is None or w.holder == holder
        ]
        ended = ErrResponse(error=WatchEnded(reason=reason))
        label = END_REASONS.get(reason, "ended")
        for watch in watches:
            if watch.parked is not None:
                answer(watch.parked, ended, None)
            self.remove(watch, label)
        return len(watches)

    # --- delivery ----------------------------------------------------------------------

    def read(
        self, store: Store, log: DbLog, watch: WatchState, upto: int | None = None
    ) -> tuple[WatchChangesResponse, bytes] | KvError | None:
        """The changes after ``watch.after`` (up to seq ``upto`` if given), up to a
        window, as an answer; None if none matches yet (``watch.after`` then moved
        past what was read); or WatchCompacted if the log no longer covers the
        cursor (invariant 3)."""
        after = watch.after
        if not log.covers(after):
            return WatchCompacted(oldest=log.oldest, last=log.last)
        end = log.last if upto is None else min(upto, log.last)
        if after >= end:
            return None
        cfg = self.config
        changes: list[_Change] = []
        size, last = 0, after
        lo, hi = watch.lo, watch.hi  # watch.matches, inlined: the loop runs per change
        max_bytes, max_items = cfg.watch_window_bytes, cfg.watch_window_items
        recent = log.recent
        if recent and recent[0][0] <= after + 1:  # at hand in memory (invariant 6)
            source: Iterator[_Change] = itertools.islice(recent, after + 1 - recent[0][0], None)
        else:
            source = _records(store, after, end)
        try:
            for change in source:
                seq, _, key, value = change
                if seq > end:  # past ``upto``: not durable yet (invariant 6)
                    break
                if (lo is None or key >= lo) and key < hi:
                    grown = size + len(key) + (0 if value is None else len(value))
                    if changes and grown > max_bytes:
                        break
                    changes.append(change)
                    size = grown
                    if len(changes) >= max_items:
                        last = seq
                        break
                last = seq
        finally:
            if isinstance(source, Generator):
                source.close()
        watch.after = last
        if not changes:
            return None
        self.delivered += len(changes)
        return WatchChangesResponse(count=len(changes), last=last), encode_changes(changes)

    def notify(
        self,
        store_of: Callable[[DbKey], Store | None],
        answer: Answer,
        again: Callable[[Request], None] | None = None,
        upto: dict[DbLog, int] | None = None,
        held: Container[DbKey] = (),
    ) -> None:
        """Answer the parked watchers of every db logged since the last call that
        now have a matching change (after a flush made them durable).

        On a networked engine (invariant 6): ``upto`` (``take_dirty``, before the
        commit) gives the logs to wake and the last seq of each that the commit
        made durable; a db in ``held`` (long work may be writing it) is woken by a
        later call; a watcher whose changes are not at hand has its parked request
        handed to ``again``, to be served anew (as long work)."""
        if upto is None:
            if not self.dirty:
                return
            dirty: dict[DbLog, int | None] = dict.fromkeys(self.dirty)
            self.dirty.clear()
        else:
            dirty = dict(upto)
        dbs = {log.db for log in dirty if log.db is not None}
        if any(log.db is None for log in dirty):  # a reopened db: which one is it?
            dbs.update(self._by_db)
        for db in dbs:
            watches = self._by_db.get(db)
            store = store_of(db) if watches else None
            log = None if store is None else self.logs.get(store)
            if watches is None or store is None or log is None or log not in dirty:
                continue  # closed or discarded since: the next WatchNext reads it again
            log.db = db
            if held and db in held:
                self.dirty.append(log)
                continue
            durable = dirty[log]
            for watch in list(watches.values()):
                if watch.parked is None:
                    continue
                try:
                    got = self.read(store, log, watch, durable)
                except NotAtHand:
                    if again is None:
                        raise
                    parked, watch.parked = watch.parked, None
                    again(parked)
                    continue
                if got is None:
                    continue
                parked, watch.parked = watch.parked, None
                if isinstance(got, tuple):
                    answer(parked, got[0], got[1])
                else:
                    answer(parked, ErrResponse(error=got), None)

    def take_dirty(self) -> dict[DbLog, int]:
        """The logs written since the last ``notify``, each with its last seq now:
        what a commit that starts now makes durable (``notify(upto=...)``)."""
        ready = {log: log.last for log in self.dirty}
        self.dirty.clear()
        return ready

    def touch(self, watch: WatchState) -> None:
        """The watcher asked now."""
        watch.asked = self.clock()

    def watches_of(self, db: DbKey) -> Iterable[WatchState]:
        """The watches on ``db``."""
        return tuple(self._by_db.get(db, {}).values())


def _records(store: Store, after: int, last: int) -> Generator[_Change, None, None]:
    """The changes after ``after`` up to ``last``, read from the log in ``store``."""
    unpack, skip = msgpack.unpackb, len(CHANGE_LOG)
    records = store.iterate(start=log_key(after + 1), stop=log_key(last + 1))
    try:
        for record_key, record in records:
            kind, key, value = unpack(record, raw=False)
            yield int.from_bytes(record_key[skip:], "big"), kind, key, value
    finally:
        records.close()
