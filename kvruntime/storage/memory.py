"""The in-memory engine: ``MemoryEngine`` and its ``MemoryStore``, for fast tests.

Persistence: none. The dbs live in this process's memory as long as the
engine object; ``Runtime`` makes a new engine at each start, so a restarted
runtime starts with no db (its capability store, under ``home``, persists as
with every engine, so grants outlive the dbs they name).

Invariants (beside those of ``engine.py``):

1. A store holds its entries as a ``_State``: a dict of values and the sorted
   list of its keys (bisect for ranges). A snapshot is a reference to the
   current state, marked shared; a write to a shared state first copies it
   (copy-on-write), so a snapshot never changes. ``write`` builds its result
   on a private state and swaps it in whole under the store's lock: a batch is
   atomic, and a failing batch (its ops raise while iterated) changes nothing.
2. A closed store raises ``StoreError(LevelDbError("... store is closed"))``
   from every call, as ``LevelDbStore`` does; ``discard`` keeps the data
   (a memory write cannot fail half-way), ``close_all`` drops it.
3. Nothing is bounded: ``evict`` closes nothing and ``sweep_trash`` finds nothing.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Container, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

import attrs

from protocol.ids import PackageId, validate_db_name
from protocol.messages import LevelDbError

from .engine import DbKey, NoSuchDb
from .store import PageRead, Store, StoreError, fill_page, prefix_end

__all__ = ["MemoryEngine", "MemoryStore"]


@attrs.define(eq=False)
class _State:
    values: dict[bytes, bytes] = attrs.Factory(dict)
    keys: list[bytes] = attrs.Factory(list)  # sorted
    shared: bool = False  # a snapshot refers to it: copy before changing

    def copy(self) -> _State:
        return _State(values=dict(self.values), keys=list(self.keys))


@attrs.define(eq=False, kw_only=True)
class MemoryStore:
    """A ``Store`` on a dict and a sorted key list (see the module's invariants)."""

    label: str  # "package_id, db", used in error messages
    _state: _State = attrs.field(init=False, factory=_State, repr=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)
    _closed: bool = attrs.field(init=False, default=False)

    @property
    def closed(self) -> bool:
        """Whether ``close`` has run."""
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise StoreError(LevelDbError(message=f"[{self.label}] store is closed"))

    def _snapshot(self) -> _State:
        with self._lock:
            self._check()
            state = self._state
            state.shared = True
            return state

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None when absent."""
        self._check()
        return self._state.values.get(key)

    def write(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        """Apply ``(key, value)`` ops as one atomic batch; None deletes; later ops win.

        ``sync`` is accepted and means nothing: nothing reaches a disk.
        """
        self._check()
        batch = list(ops)  # if iterating raises, nothing is written
        with self._lock:
            self._check()
            state = self._state.copy() if self._state.shared else self._state
            values, keys = state.values, state.keys
            for key, value in batch:
                if value is None:
                    if values.pop(key, None) is not None:
                        del keys[bisect.bisect_left(keys, key)]
                else:
                    if key not in values:
                        bisect.insort(keys, key)
                    values[key] = value
            self._state = state

    @overload
    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: Literal[True] = True,
    ) -> Generator[tuple[bytes, bytes], None, None]: ...

    @overload
    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: Literal[False],
    ) -> Generator[bytes, None, None]: ...

    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: bool = True,
    ) -> Generator[tuple[bytes, bytes], None, None] | Generator[bytes, None, None]:
        """Entries in key order from a snapshot taken now; see ``Store.iterate``."""
        if prefix is not None:
            if start is not None or stop is not None:
                raise ValueError("iterate takes prefix or start/stop, not both")
            start, stop = prefix, prefix_end(prefix)
        raw = _entries(self._snapshot(), start, stop, reverse, include_value)
        return self._guarded(raw)

    def _guarded(self, raw: Iterator[Any]) -> Generator[Any, None, None]:
        while True:
            self._check()  # before each step, the end included, as LevelDbStore
            try:
                item = next(raw)
            except StopIteration:
                return
            yield item

    def read_page(
        self,
        *,
        start: bytes | None,
        stop: bytes | None,
        reverse: bool,
        include_value: bool,
        limit: int,
        max_bytes: int,
    ) -> PageRead:
        """See ``Store.read_page``; the page bounds are ``LevelDbStore``'s, by the same code."""
        raw = _entries(self._snapshot(), start, stop, reverse, include_value)
        return fill_page(raw, include_value, limit, max_bytes)

    def close(self) -> None:
        """Close the store; idempotent. Its entries stay with its engine."""
        self._closed = True


def _entries(
    state: _State, start: bytes | None, stop: bytes | None, reverse: bool, include_value: bool
) -> Iterator[Any]:
    keys = state.keys
    lo = 0 if start is None else bisect.bisect_left(keys, start)
    hi = len(keys) if stop is None else bisect.bisect_left(keys, stop)
    chosen = keys[lo:hi] if lo < hi else []
    if reverse:
        chosen.reverse()
    if not include_value:
        return iter(chosen)
    values = state.values
    return ((key, values[key]) for key in chosen)


@attrs.define(eq=False)
class MemoryEngine:
    """An ``Engine`` (``engine.py``) whose dbs live in this process; persists nothing."""

    _dbs: dict[DbKey, MemoryStore] = attrs.field(init=False, factory=dict)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)

    def exists(self, package_id: PackageId, db: str) -> bool:
        """Whether ``db`` was created and not removed since."""
        return (package_id, validate_db_name(db)) in self._dbs

    def get(self, package_id: PackageId, db: str) -> Store | None:
        """The store of ``db``, or None if it does not exist."""
        return self._dbs.get((package_id, db))

    def open(self, package_id: PackageId, db: str, *, create: bool, evict: bool = True) -> Store:
        """The store of ``db``, created if missing and ``create``; NoSuchDb otherwise."""
        key = (package_id, validate_db_name(db))
        with self._lock:
            store = self._dbs.get(key)
            if store is None:
                if not create:
                    raise NoSuchDb(package_id, db)
                store = self._dbs[key] = MemoryStore(label=f"{package_id}, {db}")
            return store

    def evict(self, *, keep: Container[DbKey]) -> None:
        """Nothing to bound: closes nothing."""

    def discard(self, store: Store) -> None:
        """Nothing to do: a memory write never fails half-way, and the data stays."""

    def remove(self, package_id: PackageId, db: str) -> bool:
        """Delete ``db`` and its entries; whether it existed."""
        with self._lock:
            store = self._dbs.pop((package_id, validate_db_name(db)), None)
        if store is None:
            return False
        store.close()
        return True

    def sweep_trash(self) -> int:
        """No trash: 0."""
        return 0

    def list_dbs(self) -> list[DbKey]:
        """Every existing db, sorted."""
        with self._lock:
            return sorted(self._dbs, key=lambda key: (str(key[0]), key[1]))

    @property
    def open_count(self) -> int:
        """How many dbs exist: each one's store is its data, open until removed."""
        return len(self._dbs)

    def path_for(self, package_id: PackageId, db: str) -> Path | None:
        """None: no db has files. Raises IdError for an invalid name."""
        validate_db_name(db)
        return None

    def close_all(self) -> None:
        """Close every store and drop every db (nothing persists)."""
        with self._lock:
            stores = list(self._dbs.values())
            self._dbs.clear()
        for store in stores:
            store.close()
