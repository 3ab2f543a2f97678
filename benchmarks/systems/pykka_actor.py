"""pykka: a ThreadingActor owning the plyvel databases, one ``ask`` per operation.

The actor library a Python user would reach for. ``ask`` blocks the caller
until the actor thread answers, so the loops call it directly (pykka's
futures are not asyncio-native); the concurrent workloads use one thread per
sender, each asking in turn. A transaction is ``begin`` + one ``ask`` per set
(staged in a plyvel write batch inside the actor) + ``commit``, as kvruntime's.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio.to_thread
import attrs
import plyvel
import pykka

from ..data import Dataset
from . import check_descriptors, check_read

__all__ = ["SCAN_PAGE", "PykkaDriver"]

#: Pairs per ``ask`` when scanning.
SCAN_PAGE = 1000


@attrs.frozen
class Put:
    """Store ``value`` at ``key`` (staged when a batch is open)."""

    key: bytes
    value: bytes


@attrs.frozen
class GetKey:
    """The value at ``key`` of db 0."""

    key: bytes


@attrs.frozen
class PutMany:
    """Store every pair in one write batch."""

    pairs: list[tuple[bytes, bytes]]


@attrs.frozen
class ScanPage:
    """Up to ``limit`` pairs in key order after ``after`` (from the start when None)."""

    after: bytes | None
    limit: int


@attrs.frozen
class Begin:
    """Open a write batch that later ``Put``s stage into."""


@attrs.frozen
class CommitBatch:
    """Write the open batch."""


@attrs.frozen
class OpenDbs:
    """Open ``count`` databases under ``root`` as dbs 0..count-1 of the multi store."""

    root: str
    count: int


@attrs.frozen
class PutMulti:
    """Store ``value`` at ``key`` of multi db ``db``."""

    db: int
    key: bytes
    value: bytes


@attrs.frozen
class CloseDbs:
    """Close the multi databases."""


#: Every message the actor understands.
Msg = Put | GetKey | PutMany | ScanPage | Begin | CommitBatch | OpenDbs | PutMulti | CloseDbs


class StoreActor(pykka.ThreadingActor):
    """Owns a plyvel DB and answers one message at a time."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._db: Any = plyvel.DB(path, create_if_missing=True)
        self._batch: Any = None
        self._multi: list[Any] = []

    def on_stop(self) -> None:
        for db in self._multi:
            db.close()
        self._db.close()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Put(key=key, value=value):
                (self._batch or self._db).put(key, value)
            case GetKey(key=key):
                return self._db.get(key)
            case PutMany(pairs=pairs):
                with self._db.write_batch() as wb:
                    for key, value in pairs:
                        wb.put(key, value)
            case ScanPage(after=after, limit=limit):
                page = []
                with self._db.iterator(start=after) as it:
                    for key, value in it:
                        if key == after:
                            continue
                        page.append((key, value))
                        if len(page) == limit:
                            break
                return page
            case Begin():
                self._batch = self._db.write_batch()
            case CommitBatch():
                self._batch.write()
                self._batch = None
            case OpenDbs(root=root, count=count):
                self._multi = [
                    plyvel.DB(f"{root}/{i}", create_if_missing=True) for i in range(count)
                ]
            case PutMulti(db=db, key=key, value=value):
                self._multi[db].put(key, value)
            case CloseDbs():
                for db in self._multi:
                    db.close()
                self._multi = []
            case _:
                raise TypeError(f"unknown message {message!r}")
        return None


def _threads(work: Sequence[Callable[[], None]]) -> float:
    """Run each callable in its own thread, started together; time until all are done."""
    barrier = threading.Barrier(len(work) + 1)

    def run(fn: Callable[[], None]) -> None:
        barrier.wait()
        fn()

    threads = [threading.Thread(target=run, args=(fn,)) for fn in work]
    for thread in threads:
        thread.start()
    barrier.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t0


class PykkaDriver:
    """One StoreActor (plus one for the scan store); the benchmark asks it."""

    name = "pykka"
    how = "pykka ThreadingActor wrapping plyvel, blocking ask per op (concurrent: 64 threads)"

    def __init__(self, workdir: Path) -> None:
        self._dir = workdir / "pykka"
        self._ref: Any = None
        self._scan: Any = None

    async def __aenter__(self) -> PykkaDriver:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._ref = StoreActor.start(str(self._dir / "main"))
        self._scan = StoreActor.start(str(self._dir / "scan"))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._ref.stop()
        self._scan.stop()

    def _set_loop(self, data: Dataset) -> None:
        ask = self._ref.ask
        for key, value in zip(data.keys, data.values, strict=True):
            ask(Put(key, value))

    def _get_loop(self, keys: Sequence[bytes]) -> int:
        ask, got = self._ref.ask, 0
        for key in keys:
            got += len(ask(GetKey(key)))
        return got

    async def set_seq(self, data: Dataset) -> float:
        t0 = time.perf_counter()
        self._set_loop(data)
        return time.perf_counter() - t0

    async def get_seq(self, keys: Sequence[bytes]) -> float:
        t0 = time.perf_counter()
        got = self._get_loop(keys)
        elapsed = time.perf_counter() - t0
        check_read(self.name, got, 100 * len(keys))
        return elapsed

    async def get_latencies(self, keys: Sequence[bytes]) -> list[int]:
        ask, clock, out = self._ref.ask, time.perf_counter_ns, []
        for key in keys:
            t0 = clock()
            ask(GetKey(key))
            out.append(clock() - t0)
        return out

    async def set_concurrent(self, shares: Sequence[Dataset]) -> float:
        work = [lambda share=share: self._set_loop(share) for share in shares]
        return await anyio.to_thread.run_sync(_threads, work)

    async def get_concurrent(self, shares: Sequence[Sequence[bytes]]) -> float:
        got: list[int] = []
        work = [lambda share=share: got.append(self._get_loop(share)) for share in shares]
        elapsed = await anyio.to_thread.run_sync(_threads, work)
        check_read(self.name, sum(got), 100 * sum(len(share) for share in shares))
        return elapsed

    async def set_many(self, batches: Sequence[Dataset]) -> float:
        ask = self._ref.ask
        items = [batch.pairs() for batch in batches]
        t0 = time.perf_counter()
        for pairs in items:
            ask(PutMany(pairs))
        return time.perf_counter() - t0

    async def transaction(self, txs: Sequence[Dataset]) -> float:
        ask = self._ref.ask
        t0 = time.perf_counter()
        for tx in txs:
            ask(Begin())
            for key, value in zip(tx.keys, tx.values, strict=True):
                ask(Put(key, value))
            ask(CommitBatch())
        return time.perf_counter() - t0

    async def transaction_awaited(self, txs: Sequence[Dataset]) -> float:
        # Its transaction already asks once per set.
        return await self.transaction(txs)

    async def load_scan(self, data: Dataset) -> None:
        self._scan.ask(PutMany(data.pairs()))

    async def scan(self) -> tuple[float, int]:
        # The actor's equivalent of a cursor: one ask per page of SCAN_PAGE pairs.
        ask, seen, after = self._scan.ask, 0, None
        t0 = time.perf_counter()
        while True:
            page = ask(ScanPage(after, SCAN_PAGE))
            seen += len(page)
            if len(page) < SCAN_PAGE:
                break
            after = page[-1][0]
        return time.perf_counter() - t0, seen

    async def multi_db(self, dbs: int, data: Dataset) -> float:
        check_descriptors(self.name, dbs)
        root = self._dir / f"multi-{dbs}"
        root.mkdir(parents=True, exist_ok=True)
        ask = self._ref.ask
        ask(OpenDbs(str(root), dbs))
        try:
            t0 = time.perf_counter()
            for i, (key, value) in enumerate(zip(data.keys, data.values, strict=True)):
                ask(PutMulti(i % dbs, key, value))
            return time.perf_counter() - t0
        finally:
            ask(CloseDbs())
            shutil.rmtree(root, ignore_errors=True)
