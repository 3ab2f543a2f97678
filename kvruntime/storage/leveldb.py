"""The embedded engine: ``LevelDbStore``, a ``Store`` (``store.py``) on plyvel.

Invariants (see also ``databases.py`` for the databases that hold stores):

1. Every plyvel exception becomes a ``StoreError`` carrying protocol data
   (``IoError`` or ``LevelDbError``) here and nowhere else. The message names the
   db as ``[package_id, db]`` and hides the file-system location of ``root``.
2. A ``Store`` is for the synchronous stretch of code that uses it: never keep
   one across an ``await``. Another thread may close it meanwhile; a later call
   then raises ``StoreError`` ("store is closed"), it never crashes.
3. Closing never races a plyvel call. plyvel releases the GIL inside LevelDB
   but frees the C++ DB in ``close()`` without waiting, so a close from another
   thread would be a use-after-free. Each store counts its calls in flight
   (``list.append``/``pop`` are atomic under the GIL); ``close`` first raises
   ``_closing`` and then waits for the count to reach zero, and a call that sees
   ``_closing`` backs out. Calls never wait for one another (LevelDB is
   thread-safe), unlike with a mutex.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, overload

import plyvel

from protocol.messages import IoError, LevelDbError

from .store import PageRead, StoreError, fill_page

try:  # the loop of ``write`` in C (_cwrite.c, issue 12); else the Python loop
    from ._cwrite import apply as _apply
except ImportError:  # not built (no compiler at install)
    _apply = None  # type: ignore[assignment]

__all__ = ["LEVELDB_OPTIONS", "LevelDbStore"]

_PlyvelDB: TypeAlias = Any  # plyvel is untyped; its objects never leave LevelDbStore

_PLYVEL_ERRORS = (plyvel.Error, OSError, RuntimeError)

KiB = 1024
MiB = 1024 * KiB

#: Per-db LevelDB options sized so that thousands of dbs fit in one process
#: (``file_budget.py``). The memtable fills up to the write buffer before it is
#: written out (LevelDB's default 4 MiB; half keeps a thousand busy dbs within
#: 2 GiB, at a few percent of bulk write speed); the block cache holds read
#: blocks (LevelDB's default is 8 MiB per db, filled lazily; the OS page cache
#: holds the mapped table files anyway). ``max_open_files`` bounds the table
#: cache: LevelDB raises it to its minimum of 74 (64 tables).
LEVELDB_OPTIONS: Final[dict[str, int]] = {
    "write_buffer_size": 2 * MiB,
    "lru_cache_size": 1 * MiB,
    "max_open_files": 64,
}


def _store_error(label: str, exc: BaseException, hide: Path, alias: str) -> StoreError:
    """Translate ``exc`` into protocol data, naming the db and hiding ``hide``."""
    if isinstance(exc, RuntimeError):
        return StoreError(LevelDbError(message=f"[{label}] store is closed"))
    # plyvel passes LevelDB's status text as bytes: str() would show b'...'.
    arg = exc.args[0] if len(exc.args) == 1 else None
    detail = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(exc)
    detail = detail.replace(str(hide), alias)
    if isinstance(exc, OSError):  # plyvel.IOError included
        return StoreError(IoError(message=f"[{label}] {detail.removeprefix('IO error: ')}"))
    return StoreError(LevelDbError(message=f"[{label}] {detail}"))


def _is_leveldb(path: Path) -> bool:
    return (path / "CURRENT").is_file()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LevelDbStore:
    """A ``Store`` on one plyvel DB. Build it with ``LevelDbStore.open``.

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = ("__weakref__", "_closing", "_db", "_get", "_inflight", "label", "path", "sync")

    path: Path
    label: str  # "package_id, db", used in error messages
    sync: bool  # fsync every write
    _db: _PlyvelDB
    _get: Callable[[bytes], bytes | None]
    _inflight: list[None]
    _closing: bool

    def __init__(self, *, path: Path, label: str, db: _PlyvelDB, sync: bool = False) -> None:
        self.path = path
        self.label = label
        self.sync = sync
        self._db = db
        # Bound methods resolved once keep the hot calls thin.
        self._get = db.get
        self._inflight = []
        self._closing = False

    @classmethod
    def open(cls, path: Path, *, label: str, create: bool, sync: bool = False) -> LevelDbStore:
        """Open the LevelDB at ``path``, creating it only if ``create``. Blocking."""
        try:
            if not create and not _is_leveldb(path):  # LevelDB would create the dir
                raise plyvel.Error(f"{path} does not exist")
            db = plyvel.DB(str(path), create_if_missing=create, **LEVELDB_OPTIONS)
        except _PLYVEL_ERRORS as exc:
            raise _store_error(label, exc, path, "<db>") from exc
        return cls(path=path, label=label, db=db, sync=sync)

    @property
    def closed(self) -> bool:
        """Whether ``close`` has run (or begun)."""
        return self._closing or bool(self._db.closed)

    def _error(self, exc: BaseException) -> StoreError:
        return _store_error(self.label, exc, self.path, "<db>")

    # The guard of invariant 4 is written out in each method: a context
    # manager would cost more than the whole wrapper is allowed to.
    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None when absent."""
        self._inflight.append(None)
        try:
            if self._closing:
                raise RuntimeError("store is closed")
            return self._get(key)
        except _PLYVEL_ERRORS as exc:
            raise self._error(exc) from exc
        finally:
            self._inflight.pop()

    def write(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        """Apply ``(key, value)`` ops as one atomic batch; None deletes; later ops win."""
        self._inflight.append(None)
        try:
            if self._closing:
                raise RuntimeError("store is closed")
            if type(ops) is list and len(ops) == 1:  # one op is atomic as it is
                key, value = ops[0]
                if value is None:
                    self._db.delete(key, sync=sync or self.sync)
                else:
                    self._db.put(key, value, sync=sync or self.sync)
                return
            batch = self._db.write_batch(sync=sync or self.sync)
            put, delete = batch.put, batch.delete
            if _apply is not None and type(ops) is list:
                _apply(ops, put, delete)
            else:
                for key, value in ops:
                    if value is None:
                        delete(key)
                    else:
                        put(key, value)
            batch.write()
        except _PLYVEL_ERRORS as exc:
            raise self._error(exc) from exc
        finally:
            self._inflight.pop()

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
        if prefix is not None and (start is not None or stop is not None):
            raise ValueError("iterate takes prefix or start/stop, not both")
        self._inflight.append(None)
        try:  # created eagerly, so errors surface here and the snapshot is now
            if self._closing:
                raise RuntimeError("store is closed")
            raw = self._db.iterator(
                start=start,
                stop=stop,
                prefix=prefix,
                reverse=reverse,
                include_value=include_value,
            )
        except _PLYVEL_ERRORS as exc:
            raise self._error(exc) from exc
        finally:
            self._inflight.pop()
        return self._drain(raw)

    def _drain(self, raw: Any) -> Generator[Any, None, None]:
        inflight = self._inflight
        try:
            while True:
                inflight.append(None)
                try:
                    if self._closing:
                        raise RuntimeError("store is closed")
                    item = next(raw)
                except StopIteration:
                    return
                except _PLYVEL_ERRORS as exc:
                    raise self._error(exc) from exc
                finally:
                    inflight.pop()
                yield item
        finally:
            raw.close()  # holds the GIL throughout, so it cannot race DB.close

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
        """See ``Store.read_page``. One guarded call: ``fill_page`` writes the
        page's bytes straight from plyvel's iterator (in C where built), and a
        page of large values reads at most one entry past its byte bound."""
        self._inflight.append(None)
        try:
            if self._closing:
                raise RuntimeError("store is closed")
            raw = self._db.iterator(
                start=start, stop=stop, reverse=reverse, include_value=include_value
            )
            try:
                return fill_page(raw, include_value, limit, max_bytes)
            finally:
                raw.close()
        except _PLYVEL_ERRORS as exc:
            raise self._error(exc) from exc
        finally:
            self._inflight.pop()

    def close(self) -> None:
        """Close the database, after any call in flight in another thread; idempotent."""
        self._closing = True
        while self._inflight:
            time.sleep(0.0005)
        self._db.close()


#: Most entries ``read_page`` holds at once: few enough that a chunk's objects
#: are freed, and their memory reused, while still in cache.
