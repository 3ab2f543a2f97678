"""The engine seam: what the kv service asks of the storage that holds its dbs.

An ``Engine`` maps ``(PackageId, db)`` to an open ``Store`` (``store.py``). Two
engines implement it: ``databases.Databases`` (LevelDB under ``{home}/kv``,
embedded, the default) and ``memory.MemoryEngine`` (dicts in this process, for
fast tests; it persists nothing). ``Runtime(storage=...)`` picks one.

Invariants every engine keeps (the conformance suite,
``tests/kvruntime/conformance``, checks them through the bus on each engine):

1. ``exists`` is true exactly for a db that ``open(create=True)`` made and no
   ``remove`` has removed since; ``open(create=False)`` of any other raises
   ``NoSuchDb``; ``list_dbs`` lists exactly the existing ones, sorted.
2. ``Store.write(ops)`` is the single write path: one call is one atomic batch
   (all of it or none; later ops on a key win), and an answered write is
   readable by every later ``get``/``iterate``/``read_page``.
3. ``iterate`` and ``read_page`` each read one snapshot: writes after the
   call starts are not seen by it.
4. A failure is a ``StoreError`` carrying protocol data (``IoError`` or
   ``LevelDbError``); nothing else escapes, except ``IdError`` for an invalid
   db name and ``NoSuchDb``.
5. ``discard(store)`` drops a store whose write failed so that the next
   ``open`` starts afresh; acknowledged data stays. ``remove`` deletes a db
   and every key in it, whole.
6. Names are validated (``validate_db_name``) before anything is created.

How calls are made (and how a networked engine fits):
- The kv process serves a batch of queued requests, then flushes: the plain
  writes of the batch go to each db's store in *one* ``Store.write`` per db.
  Reads of a db flush its pending writes first, so they see them.
- ``get``/``exists`` and the ``Store`` methods run inline on the kv process's
  event loop: an embedded engine answers them without an await per request.
  ``open``/``remove``/``repair``/``discard``/``evict``/``close_all`` may block and
  run in a worker thread.
- A networked engine (Redis Cluster, issue 13) cannot answer inline: it is
  also a ``BatchEngine``, the batch-level async form of this seam. The kv
  process (``kvservice/networked.py``) hands it each batch's reads before
  serving (``prefetch``, one pipeline per shard), serves the batch inline
  against what is *at hand* (a read that is not raises ``NotAtHand``: long
  work on that db fetches it, then the request is served again), and awaits
  ``commit`` (one pipeline per shard) before any answer of the batch
  leaves. An embedded engine is no ``BatchEngine``: its hot path stays
  inline, with no await per request.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import Protocol, TypeAlias, runtime_checkable

from protocol.ids import PackageId
from protocol.messages import KvError

from .store import Store

__all__ = ["BatchEngine", "DbKey", "Engine", "NoSuchDb", "StorageUnavailable"]

#: Names one db: its package and its name.
DbKey: TypeAlias = tuple[PackageId, str]


class NoSuchDb(LookupError):
    """The db does not exist and creating it was not asked for."""

    def __init__(self, package_id: PackageId, db: str) -> None:
        super().__init__(f"db [{package_id}, {db}] does not exist")
        self.package_id = package_id
        self.db = db


class StorageUnavailable(RuntimeError):
    """A networked engine cannot serve at start (unreachable, or unsafe settings)."""


class Engine(Protocol):
    """Where the dbs of a node live; see the module's invariants."""

    def exists(self, package_id: PackageId, db: str) -> bool:
        """Whether ``db`` exists (open or not). Cheap: runs per request."""

    def get(self, package_id: PackageId, db: str) -> Store | None:
        """The store if it is open, else None. Cheap: never blocks."""

    def open(self, package_id: PackageId, db: str, *, create: bool, evict: bool = True) -> Store:
        """The store of ``db``, opened if needed, created if missing and ``create``.

        ``NoSuchDb`` if it is missing and not ``create``. May block. With
        ``evict`` the engine may close other stores to keep its bound.
        """

    def evict(self, *, keep: Container[DbKey]) -> None:
        """Close the least recently used stores past the engine's bound, but those in ``keep``."""

    def discard(self, store: Store) -> None:
        """Drop ``store`` (its write failed) so that the next ``open`` starts afresh."""

    def remove(self, package_id: PackageId, db: str) -> bool:
        """Delete ``db`` and every key in it; whether there was anything."""

    def sweep_trash(self) -> int:
        """Finish removals an earlier run cut short; how many. Run at start."""

    def list_dbs(self) -> list[DbKey]:
        """Every existing db, sorted."""

    @property
    def open_count(self) -> int:
        """How many stores are open now (``/metrics``' ``open_dbs``). Cheap: never blocks."""

    def path_for(self, package_id: PackageId, db: str) -> Path | None:
        """The directory of ``db``'s files, or None for an engine that keeps none.

        Raises IdError for an invalid name.
        """

    def close_all(self) -> None:
        """Close every open store (at shutdown, once requests have drained)."""


@runtime_checkable
class BatchEngine(Engine, Protocol):
    """An engine whose stores answer from what each batch fetched (networked).

    Every call runs on the kv process's event loop. ``failures`` is the log of
    failed commits, ``(seq, store, error)`` with ``seq`` increasing: the
    answers that waited for a failed store's writes answer its error instead.
    """

    failures: list[tuple[int, Store, KvError]]

    async def start(self) -> None:
        """Connect and check the server (``StorageUnavailable`` if unusable)."""

    async def aclose(self) -> None:
        """Close the connections (after ``close_all``)."""

    async def prefetch(self, wanted: dict[Store, list[bytes]]) -> None:
        """Commit the buffered writes of these stores, then fetch ``wanted`` keys."""

    async def commit(self) -> None:
        """Send every buffered write (failures go to ``failures``)."""

    def end_round(self, keep: Container[DbKey]) -> None:
        """Drop what the batch had at hand, but for the dbs in ``keep``."""

    def failure_seq(self) -> int:
        """The ``seq`` the next failure will have."""
