"""Storage for the kv process: LevelDB databases under ``{home}/kv``.

Layout: ``{root}/{package_name}:{publisher_node}/{db}/`` is one LevelDB.

``Store`` is the typed seam in front of plyvel (which is untyped); ``LevelDbStore``
implements it. ``Databases`` maps ``(PackageId, db)`` to stores, keeping at most
``max_open`` open in an LRU. Every call is synchronous: the kv process runs
``get``/``exists`` and small store operations inline on its event loop, and
``open``/``remove``/``repair`` and large work in a worker thread.

Invariants:

1. Nothing outside ``root`` is ever touched: every path comes from ``path_for``,
   which validates the db name and refuses a symlinked package or db directory,
   so that the path resolves under ``root`` (which is stored resolved).
2. Every plyvel exception becomes a ``StoreError`` carrying protocol data
   (``IoError`` or ``LevelDbError``) here and nowhere else. The message names the
   db as ``[package_id, db]`` and hides the file-system location of ``root``.
3. A ``Store`` got from ``get``/``open`` is for the synchronous stretch of code
   that uses it: never keep one across an ``await``. Another thread's ``open``
   may evict and close it meanwhile; a later call then raises ``StoreError``
   ("store is closed"), it never crashes.
4. Closing never races a plyvel call. plyvel releases the GIL inside LevelDB
   but frees the C++ DB in ``close()`` without waiting, so a close from another
   thread would be a use-after-free. Each store counts its calls in flight
   (``list.append``/``pop`` are atomic under the GIL); ``close`` first raises
   ``_closing`` and then waits for the count to reach zero, and a call that sees
   ``_closing`` backs out. Calls never wait for one another (LevelDB is
   thread-safe), unlike with a mutex.
5. ``Databases._lock`` guards only the LRU dict and the ``_busy`` set, never a
   plyvel call or a file-system operation. A key in ``_busy`` is being opened,
   removed, repaired or closed by exactly one thread, and is not in the LRU; so
   this process never opens one LevelDB twice (LevelDB's LOCK would refuse).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import operator
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias, overload

import attrs
import plyvel

from protocol.ids import IdError, PackageId, validate_db_name
from protocol.messages import IoError, LevelDbError

__all__ = ["Databases", "LevelDbStore", "NoSuchDb", "Store", "StoreError"]

_PlyvelDB: TypeAlias = Any  # plyvel is untyped; its objects never leave LevelDbStore
_Key: TypeAlias = tuple[PackageId, str]
# plyvel.IOError subclasses OSError; RuntimeError is plyvel's "Database is closed".
_PLYVEL_ERRORS = (plyvel.Error, OSError, RuntimeError)
_TRASH = ".removed-"  # cannot be a package dir: package names match [a-z0-9-]+


class StoreError(Exception):
    """A storage call failed; ``error`` is the protocol error to answer with."""

    def __init__(self, error: LevelDbError | IoError) -> None:
        super().__init__(str(error))
        self.error = error


class NoSuchDb(LookupError):
    """The db does not exist and creating it was not asked for."""

    def __init__(self, package_id: PackageId, db: str) -> None:
        super().__init__(f"db [{package_id}, {db}] does not exist")
        self.package_id = package_id
        self.db = db


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


class Store(Protocol):
    """One open key-value database. Keys and values are bytes.

    Every method raises ``StoreError`` when the database fails or is closed.
    """

    @property
    def closed(self) -> bool:
        """Whether ``close`` has run."""

    def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None when absent."""

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value``."""

    def delete(self, key: bytes) -> None:
        """Delete ``key``; a missing key is fine."""

    def write(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        """Apply ``(key, value)`` ops as one atomic batch; None deletes; later ops win.

        If iterating ``ops`` raises, nothing is written. ``sync`` fsyncs the batch.
        """

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
        """Entries in key order (``reverse``: descending), from a snapshot taken now.

        The range is ``start <= key < stop`` or, instead, keys starting with
        ``prefix`` (ValueError if both are given). Yields ``(key, value)``, or
        keys alone when ``include_value`` is False. Exhaust it or ``close()`` it
        to release the snapshot.
        """

    def read_page(
        self,
        *,
        start: bytes | None,
        stop: bytes | None,
        reverse: bool,
        include_value: bool,
        limit: int,
        max_bytes: int,
    ) -> tuple[list[tuple[bytes, bytes | None]], bool]:
        """Up to ``limit`` entries of ``start <= key < stop`` from one snapshot.

        Stops once the entries hold more than ``max_bytes`` (keys plus values;
        a first entry is taken whatever its size). Returns the entries (value
        None when ``include_value`` is false) and whether more remain.
        """
        ...

    def close(self) -> None:
        """Close the database; idempotent."""


@attrs.define(eq=False, kw_only=True)
class LevelDbStore:
    """A ``Store`` on one plyvel DB. Build it with ``LevelDbStore.open``."""

    path: Path
    label: str  # "package_id, db", used in error messages
    sync: bool = False  # fsync every write
    _db: _PlyvelDB = attrs.field(repr=False, alias="db")
    _get: Callable[[bytes], bytes | None] = attrs.field(init=False, repr=False)
    _put: Callable[[bytes, bytes], None] = attrs.field(init=False, repr=False)
    _delete: Callable[[bytes], None] = attrs.field(init=False, repr=False)
    _inflight: list[None] = attrs.field(init=False, factory=list, repr=False)
    _closing: bool = attrs.field(init=False, default=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Bound methods resolved once keep the hot calls thin.
        self._get = self._db.get
        self._put = functools.partial(self._db.put, sync=True) if self.sync else self._db.put
        self._delete = (
            functools.partial(self._db.delete, sync=True) if self.sync else self._db.delete
        )

    @classmethod
    def open(cls, path: Path, *, label: str, create: bool, sync: bool = False) -> LevelDbStore:
        """Open the LevelDB at ``path``, creating it only if ``create``. Blocking."""
        try:
            if not create and not _is_leveldb(path):  # LevelDB would create the dir
                raise plyvel.Error(f"{path} does not exist")
            db = plyvel.DB(str(path), create_if_missing=create)
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

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value``."""
        self._inflight.append(None)
        try:
            if self._closing:
                raise RuntimeError("store is closed")
            self._put(key, value)
        except _PLYVEL_ERRORS as exc:
            raise self._error(exc) from exc
        finally:
            self._inflight.pop()

    def delete(self, key: bytes) -> None:
        """Delete ``key``; a missing key is fine."""
        self._inflight.append(None)
        try:
            if self._closing:
                raise RuntimeError("store is closed")
            self._delete(key)
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
            batch = self._db.write_batch(sync=sync or self.sync)
            put, delete = batch.put, batch.delete
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
    ) -> tuple[list[tuple[bytes, bytes | None]], bool]:
        """See ``Store.read_page``. One guarded call: chunks are taken with
        ``islice`` (C speed), sized from the largest entry seen so far, so a page
        of large values reads at most one entry past its byte bound."""
        self._inflight.append(None)
        try:
            if self._closing:
                raise RuntimeError("store is closed")
            raw = self._db.iterator(
                start=start, stop=stop, reverse=reverse, include_value=include_value
            )
            try:
                return _fill_page(raw, include_value, limit, max_bytes)
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


def _resolved(root: str | os.PathLike[str]) -> Path:
    return Path(root).resolve()


@attrs.define(eq=False)
class Databases:
    """The dbs under ``root`` (``{home}/kv``), with at most ``max_open`` open at once.

    The least recently used store is closed when the bound is passed, and is
    reopened by the next ``open``. Thread-safe; see the module's invariants.
    """

    root: Path = attrs.field(converter=_resolved)
    max_open: int = attrs.field(default=128, validator=attrs.validators.ge(1))
    sync_writes: bool = False  # fsync every write batch and directory change
    _stores: OrderedDict[_Key, LevelDbStore] = attrs.field(init=False, factory=OrderedDict)
    _busy: set[_Key] = attrs.field(init=False, factory=set)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _changed: threading.Condition = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: threading.Condition(self._lock), takes_self=True),
    )
    _fs_lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)
    _trash_prefix: str = attrs.field(init=False, factory=lambda: _TRASH + secrets.token_hex(4))

    def path_for(self, package_id: PackageId, db: str) -> Path:
        """The directory of ``db``. Creates nothing.

        Raises IdError for an invalid name, StoreError if it would lead outside root.
        """
        return Path(self._dir(package_id, db))

    def exists(self, package_id: PackageId, db: str) -> bool:
        """Whether ``db`` is open or is a LevelDB on disk (~0.3 us open, ~8 us not)."""
        with self._lock:
            if (package_id, db) in self._stores:
                return True
        return os.path.isfile(os.path.join(self._dir(package_id, db), "CURRENT"))

    def get(self, package_id: PackageId, db: str) -> Store | None:
        """The store if it is open (marking it recently used), else None. No disk access."""
        key = (package_id, db)
        with self._lock:
            store = self._stores.get(key)
            if store is not None:
                self._stores.move_to_end(key)
            return store

    def open(self, package_id: PackageId, db: str, *, create: bool) -> Store:
        """The store of ``db``, opened if needed; NoSuchDb if missing and not ``create``.

        Blocking: run it in a worker thread.
        """
        path = self.path_for(package_id, db)
        if (store := self.get(package_id, db)) is not None:
            return store
        key = (package_id, db)
        label = f"{package_id}, {db}"
        victims: list[tuple[_Key, LevelDbStore]] = []
        with self._exclusive(key):
            if (store := self.get(package_id, db)) is not None:
                return store  # another thread opened it while we waited
            if not create and not _is_leveldb(path):
                raise NoSuchDb(package_id, db)
            if create:
                self._make_dirs(path, label)
            new = LevelDbStore.open(path, label=label, create=create, sync=self.sync_writes)
            with self._lock:
                self._stores[key] = new
                while len(self._stores) > self.max_open:
                    victim_key, victim = self._stores.popitem(last=False)
                    self._busy.add(victim_key)
                    victims.append((victim_key, victim))
        for victim_key, victim in victims:
            try:
                victim.close()
            finally:
                self._release(victim_key)
        return new

    def discard(self, store: Store) -> None:
        """Close ``store`` if it is still open here, so the next ``open`` starts afresh.

        For a store whose write failed: LevelDB may have left a partial record
        at the end of its log, and on recovery it drops everything after such
        a record, so no further write may go to that log. Reopening replays
        the log (whose intact records are exactly the acknowledged writes) and
        starts a new one. Blocking, like ``close``.
        """
        with self._lock:
            key = next((k for k, s in self._stores.items() if s is store), None)
            if key is None:
                return
            del self._stores[key]
            self._busy.add(key)
        try:
            store.close()
        finally:
            self._release(key)

    def remove(self, package_id: PackageId, db: str) -> bool:
        """Close ``db`` and delete its files; whether there was anything. Blocking.

        The directory is first renamed away atomically, so a crash never leaves
        half a db; leftovers of an earlier run are swept here too.
        """
        path = self.path_for(package_id, db)
        label = f"{package_id}, {db}"
        with self._exclusive((package_id, db)):
            with self._lock:
                store = self._stores.pop((package_id, db), None)
            if store is not None:
                store.close()
            try:
                with self._fs_lock:
                    if not os.path.lexists(path):
                        return store is not None
                    trash = self.root / f"{self._trash_prefix}-{secrets.token_hex(8)}"
                    path.rename(trash)
                    with contextlib.suppress(OSError):  # not empty, or already gone
                        path.parent.rmdir()
                    if self.sync_writes:
                        _fsync_dir(self.root)
                shutil.rmtree(trash)
            except OSError as exc:
                raise _store_error(label, exc, self.root, "<kv>") from exc
        for leftover in self.root.glob(_TRASH + "*"):
            if not leftover.name.startswith(self._trash_prefix):
                shutil.rmtree(leftover, ignore_errors=True)
        return True

    def repair(self, package_id: PackageId, db: str) -> None:
        """Close ``db`` and run LevelDB's repair on it; NoSuchDb if absent. Blocking."""
        path = self.path_for(package_id, db)
        with self._exclusive((package_id, db)):
            with self._lock:
                store = self._stores.pop((package_id, db), None)
            if store is not None:
                store.close()
            if not path.is_dir():
                raise NoSuchDb(package_id, db)
            try:
                plyvel.repair_db(str(path))
            except _PLYVEL_ERRORS as exc:
                raise _store_error(f"{package_id}, {db}", exc, path, "<db>") from exc

    def list_dbs(self) -> list[tuple[PackageId, str]]:
        """Every LevelDB on disk, sorted; directories with invalid names are skipped."""
        found: list[tuple[PackageId, str]] = []
        try:
            for package_dir in sorted(self.root.iterdir()):
                try:
                    package_id = PackageId.parse(package_dir.name)
                except IdError:
                    continue
                if not package_dir.is_dir():
                    continue
                for db_dir in sorted(package_dir.iterdir()):
                    try:
                        validate_db_name(db_dir.name)
                    except IdError:
                        continue
                    if _is_leveldb(db_dir):
                        found.append((package_id, db_dir.name))
        except FileNotFoundError:
            return found
        except OSError as exc:
            raise _store_error("list", exc, self.root, "<kv>") from exc
        return found

    def close_all(self) -> None:
        """Close every open store (at shutdown, once requests have drained)."""
        with self._lock:
            stores = list(self._stores.items())
            self._stores.clear()
            self._busy.update(key for key, _ in stores)
        for key, store in stores:
            try:
                store.close()
            finally:
                self._release(key)

    def _dir(self, package_id: PackageId, db: str) -> str:
        # Strings, not pathlib: exists() runs per request. root is resolved and
        # both names are single validated components, so the path resolves under
        # root unless one of them is a symlink: two lstat calls, where
        # Path.resolve costs one per component of root as well.
        package_dir = os.path.join(self.root, str(package_id))
        path = os.path.join(package_dir, validate_db_name(db))
        if os.path.islink(package_dir) or os.path.islink(path):
            raise StoreError(IoError(message=f"[{package_id}, {db}] lies outside the kv root"))
        return path

    @contextlib.contextmanager
    def _exclusive(self, key: _Key) -> Generator[None, None, None]:
        """Hold ``key`` in ``_busy``: no other thread opens, closes or removes it."""
        with self._changed:
            while key in self._busy:
                self._changed.wait()
            self._busy.add(key)
        try:
            yield
        finally:
            self._release(key)

    def _release(self, key: _Key) -> None:
        with self._changed:
            self._busy.discard(key)
            self._changed.notify_all()

    def _make_dirs(self, path: Path, label: str) -> None:
        # Under _fs_lock so that remove() cannot rmdir the package dir in between.
        try:
            with self._fs_lock:
                if path.is_dir():
                    return
                path.mkdir(parents=True, exist_ok=True)
                if self.sync_writes:
                    _fsync_dir(path.parent)
                    _fsync_dir(self.root)
        except OSError as exc:
            raise _store_error(label, exc, self.root, "<kv>") from exc


def _fill_page(
    raw: Any, include_value: bool, limit: int, max_bytes: int
) -> tuple[list[tuple[bytes, bytes | None]], bool]:
    page: list[tuple[bytes, bytes | None]] = []
    size, largest, chunk = 0, 1, 1
    while len(page) < limit:
        taken = list(itertools.islice(raw, min(chunk, limit - len(page))))
        if not taken:
            return page, False
        if include_value:
            lengths = list(map(len, itertools.chain.from_iterable(taken)))
            sizes = list(map(operator.add, lengths[::2], lengths[1::2]))
            entries = taken
        else:
            sizes = list(map(len, taken))
            entries = list(zip(taken, itertools.repeat(None)))
        totals = list(itertools.accumulate(sizes, initial=size))[1:]
        fits = bisect.bisect_right(totals, max_bytes) or (0 if page else 1)
        page.extend(entries[:fits])
        if fits < len(entries):
            return page, True
        size = totals[-1]
        largest = max(largest, *sizes)
        chunk = max(1, min(2 * chunk, (max_bytes - size) // largest))
    return page, next(raw, None) is not None
