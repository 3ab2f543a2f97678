"""The LevelDB engine: LevelDBs under ``{home}/kv``, an LRU of open ones.

``Databases`` implements ``Engine`` (``engine.py``, whose invariants hold here too).

Layout: ``{root}/{package_name}:{publisher_node}/{db}/`` is one LevelDB.

``Databases`` maps ``(PackageId, db)`` to stores (``store.py``), keeping at most
``open_budget`` open in an LRU: the budget the process's file limit allows
(``file_budget.py``; the soft limit is raised to the hard one first), or
``max_open`` if that is lower. So the LRU closes a db before the process
could run out of descriptors. Every call is synchronous: the kv process runs
``get``/``exists`` and small store operations inline on its event loop, and
``open``/``remove``/``repair`` and large work in a worker thread.

Invariants:

1. Nothing outside ``root`` is ever touched: every path comes from ``path_for``,
   which validates the db name and refuses a symlinked package or db directory,
   so that the path resolves under ``root`` (which is stored resolved).
2. A store got from ``get``/``open`` is for the synchronous stretch of code that
   uses it (see ``store.py``): another thread's ``open`` may evict and close it.
3. ``Databases._lock`` guards only the LRU dict and the ``_busy`` set, never a
   plyvel call or a file-system operation. A key in ``_busy`` is being opened,
   removed, repaired or closed by exactly one thread, and is not in the LRU; so
   this process never opens one LevelDB twice (LevelDB's LOCK would refuse).
   ``get`` runs per request, so it takes no lock (one costs more than the rest
   of it): it looks the store up and marks its use with one dict call each,
   atomic under the GIL, and changes no dict's size; every iteration takes a
   snapshot first (``list(...)`` of a dict is atomic too). Recency is a tick
   per key in ``_used``, not an order to keep: ``_lru`` sorts by it when
   evicting. A ``get`` racing another thread may leave a tick slightly off (a
   store used more recently may go first): a store closed early is reopened
   by the next ``open``, which costs time only. A PackageId's hash is a Python
   call, so ``get`` finds a store it has found before by the identity of the
   PackageId asked (the kv's decoder hands back one object per package):
   ``_by_identity`` is filled under the lock, only while the store is still
   in ``_stores``, and cleared (under the lock) wherever a store leaves it; so
   a stale entry is as impossible as a stale ``_stores`` read.
4. ``remove`` renames a db's directory to ``root/.removed-*`` (atomic: the db
   is gone at once, whole) and only then deletes it; ``sweep_trash`` deletes
   the leftovers of a removal cut short, and ``KvProcess`` runs it at start.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Container, Generator
from pathlib import Path
from typing import TypeAlias

import plyvel

from protocol.ids import IdError, PackageId, validate_db_name
from protocol.messages import IoError

from .engine import NoSuchDb
from .file_budget import open_db_budget, raise_open_files_limit
from .leveldb import _PLYVEL_ERRORS, LevelDbStore, _fsync_dir, _is_leveldb, _store_error
from .store import Store, StoreError

__all__ = ["Databases", "NoSuchDb"]

_Key: TypeAlias = tuple[PackageId, str]

_TRASH = ".removed-"  # cannot be a package dir: package names match [a-z0-9-]+


def _delete(path: Path) -> None:
    """Delete a removed db's trash; what cannot go now is swept at the next start."""
    import shutil  # only when a db is removed: not on every start (issue 15)

    with contextlib.suppress(OSError):
        shutil.rmtree(path)


def _token_hex(size: int) -> str:
    """``secrets.token_hex(size)`` (``size`` bytes of the OS's CSPRNG, in hex)
    without importing ``secrets`` (and hmac, hashlib) into every start-up."""
    return os.urandom(size).hex()


def _resolved(root: str | os.PathLike[str]) -> Path:
    return Path(root).resolve()


def _budget(max_open: int | None) -> int:
    budget = open_db_budget(raise_open_files_limit())
    return budget if max_open is None else min(max_open, budget)


class Databases:
    """The dbs under ``root`` (``{home}/kv``), with at most ``open_budget`` open at once.

    The least recently used store is closed when the bound is passed, and is
    reopened by the next ``open``. Thread-safe; see the module's invariants.
    Building one raises the process's soft file limit to its hard limit.

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = (
        "__weakref__",
        "_busy",
        "_by_identity",
        "_changed",
        "_fs_lock",
        "_lock",
        "_recent",
        "_stores",
        "_ticks",
        "_trash_prefix",
        "_used",
        "max_open",
        "open_budget",
        "root",
        "sync_writes",
    )

    root: Path
    #: At most this many open (None: as many as the file limit allows).
    max_open: int | None
    sync_writes: bool  # fsync every write batch and directory change
    _stores: dict[_Key, LevelDbStore]
    #: (id(package_id), db) -> (package_id, its open store), invariant 3; each entry
    #: keeps its PackageId alive, so its id is not reused while cached. Bounded.
    _by_identity: dict[tuple[int, str], tuple[PackageId, LevelDbStore]]
    #: When each open store was last used, in ticks of ``_ticks`` (invariant 3).
    _used: dict[_Key, int]
    _ticks: itertools.count[int]
    _busy: set[_Key]
    _lock: threading.Lock
    _changed: threading.Condition
    _fs_lock: threading.Lock
    #: The store whose use was marked last: using it again needs no new tick.
    _recent: LevelDbStore | None
    _trash_prefix: str
    #: The most stores kept open: ``max_open`` held to what the file limit allows.
    open_budget: int

    def __init__(
        self, root: str | os.PathLike[str], max_open: int | None = None, sync_writes: bool = False
    ) -> None:
        if max_open is not None and max_open < 1:
            raise ValueError(f"'max_open' must be >= 1: {max_open}")
        self.root = _resolved(root)
        self.max_open = max_open
        self.sync_writes = sync_writes
        self._stores = {}
        self._by_identity = {}
        self._used = {}
        self._ticks = itertools.count()
        self._busy = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._fs_lock = threading.Lock()
        self._recent = None
        self._trash_prefix = _TRASH + _token_hex(4)
        self.open_budget = _budget(max_open)

    @property
    def open_count(self) -> int:
        """How many stores are open now."""
        with self._lock:
            return len(self._stores)

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
        seen = self._by_identity.get((id(package_id), db))  # no lock: see invariant 3
        if seen is not None and seen[0] is package_id:
            store: LevelDbStore | None = seen[1]
        else:
            store = self._stores.get((package_id, db))
            if store is None:
                return None
            self._remember(package_id, db, store)
        if store is not self._recent:
            self._used[(package_id, db)] = next(self._ticks)
            self._recent = store
        return store

    def _remember(self, package_id: PackageId, db: str, store: LevelDbStore) -> None:
        with self._lock:  # invariant 3: only while it is still open here
            if self._stores.get((package_id, db)) is store:
                if len(self._by_identity) >= 4096:
                    self._by_identity.clear()
                self._by_identity[(id(package_id), db)] = (package_id, store)

    def open(self, package_id: PackageId, db: str, *, create: bool, evict: bool = True) -> Store:
        """The store of ``db``, opened if needed; NoSuchDb if missing and not ``create``.

        Blocking: run it in a worker thread. With ``evict`` it closes the least
        recently used stores past ``open_budget``; without, the caller does (``evict``).
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
                self._used[key] = next(self._ticks)
                self._recent = new
                if evict:
                    victims = self._victims(keep=())
        self._close_victims(victims)
        return new

    def evict(self, *, keep: Container[_Key]) -> None:
        """Close the least recently used stores past ``open_budget``, but those in
        ``keep`` (they may stay past the bound until they are not). Blocking,
        like ``close``."""
        with self._lock:
            victims = self._victims(keep=keep)
        self._close_victims(victims)

    def _victims(self, *, keep: Container[_Key]) -> list[tuple[_Key, LevelDbStore]]:
        # Under _lock: take the stores to close out of the LRU, into _busy.
        excess = len(self._stores) - self.open_budget
        if excess <= 0:
            return []
        keys = [key for key in self._lru() if key not in keep][:excess]
        for key in keys:
            self._used.pop(key, None)
        victims = [(key, self._stores.pop(key)) for key in keys]
        if victims:
            self._by_identity.clear()
        self._busy.update(keys)
        return victims

    def _lru(self) -> list[_Key]:
        """The open dbs, least recently used first."""
        used = self._used
        keys = list(self._stores)  # a snapshot (invariant 3)
        return sorted(keys, key=lambda key: used.get(key, -1))

    def _pop(self, key: _Key) -> LevelDbStore | None:
        # Under _lock: take a store out of the LRU.
        self._used.pop(key, None)
        self._by_identity.clear()
        return self._stores.pop(key, None)

    def _close_victims(self, victims: list[tuple[_Key, LevelDbStore]]) -> None:
        for victim_key, victim in victims:
            try:
                victim.close()
            finally:
                self._release(victim_key)

    def discard(self, store: Store) -> None:
        """Close ``store`` if it is still open here, so the next ``open`` starts afresh.

        For a store whose write failed: LevelDB may have left a partial record
        at the end of its log, and on recovery it drops everything after such
        a record, so no further write may go to that log. Reopening replays
        the log (whose intact records are exactly the acknowledged writes) and
        starts a new one. Blocking, like ``close``.
        """
        with self._lock:
            key = next((k for k, s in list(self._stores.items()) if s is store), None)
            if key is None:
                return
            self._pop(key)
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
                store = self._pop((package_id, db))
            if store is not None:
                store.close()
            try:
                with self._fs_lock:
                    if not os.path.lexists(path):
                        return store is not None
                    trash = self.root / f"{self._trash_prefix}-{_token_hex(8)}"
                    path.rename(trash)
                    with contextlib.suppress(OSError):  # not empty, or already gone
                        path.parent.rmdir()
                    if self.sync_writes:
                        _fsync_dir(self.root)
            except OSError as exc:
                raise _store_error(label, exc, self.root, "<kv>") from exc
            # Removed from here on: deleting the trash may fail or be cut short,
            # and the next start sweeps what is left (invariant 4).
            _delete(trash)
        for leftover in self.root.glob(_TRASH + "*"):
            if not leftover.name.startswith(self._trash_prefix):
                _delete(leftover)
        return True

    def sweep_trash(self) -> int:
        """Delete what earlier runs left of removed dbs; how many. Blocking.

        Run at start, before any request: a removal cut short by a crash after
        its rename left a ``.removed-*`` directory under ``root``.
        """
        swept = 0
        with contextlib.suppress(OSError):  # no root yet: nothing to sweep
            for leftover in self.root.glob(_TRASH + "*"):
                if not leftover.name.startswith(self._trash_prefix):
                    _delete(leftover)
                    swept += 1
        return swept

    def repair(self, package_id: PackageId, db: str) -> None:
        """Close ``db`` and run LevelDB's repair on it; NoSuchDb if absent. Blocking."""
        path = self.path_for(package_id, db)
        with self._exclusive((package_id, db)):
            with self._lock:
                store = self._pop((package_id, db))
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
            self._by_identity.clear()
            self._used.clear()
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
