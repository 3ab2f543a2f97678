"""The limit: plyvel called directly, in-process, no messaging at all.

Concurrent senders have no meaning for a synchronous in-process call, so the
concurrent workloads run the same put/get loop over all the senders' pairs:
the figure the issue's "≥ 0.25 x the plyvel loop" target compares with.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import plyvel

from ..data import Dataset
from . import check_descriptors, check_read

__all__ = ["LimitDriver"]


class LimitDriver:
    """plyvel in-process: put loop, get loop, write batch, iterator."""

    name = "plyvel"
    how = "plyvel.DB in-process (the limit); concurrent = the same loop over all senders' pairs"

    def __init__(self, workdir: Path) -> None:
        self._dir = workdir / "plyvel"
        self._db: Any = None
        self._scan: Any = None

    async def __aenter__(self) -> LimitDriver:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._db = plyvel.DB(str(self._dir / "main"), create_if_missing=True)
        self._scan = plyvel.DB(str(self._dir / "scan"), create_if_missing=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._db.close()
        self._scan.close()

    async def set_seq(self, data: Dataset) -> float:
        put = self._db.put
        t0 = time.perf_counter()
        for key, value in zip(data.keys, data.values, strict=True):
            put(key, value)
        return time.perf_counter() - t0

    async def get_seq(self, keys: Sequence[bytes]) -> float:
        get = self._db.get
        got = 0
        t0 = time.perf_counter()
        for key in keys:
            got += len(get(key))
        elapsed = time.perf_counter() - t0
        check_read(self.name, got, 100 * len(keys))
        return elapsed

    async def get_latencies(self, keys: Sequence[bytes]) -> list[int]:
        get, clock = self._db.get, time.perf_counter_ns
        out = []
        for key in keys:
            t0 = clock()
            get(key)
            out.append(clock() - t0)
        return out

    async def set_concurrent(self, shares: Sequence[Dataset]) -> float:
        total = 0.0
        for share in shares:
            total += await self.set_seq(share)
        return total

    async def get_concurrent(self, shares: Sequence[Sequence[bytes]]) -> float:
        total = 0.0
        for share in shares:
            total += await self.get_seq(share)
        return total

    async def set_many(self, batches: Sequence[Dataset]) -> float:
        db = self._db
        t0 = time.perf_counter()
        for batch in batches:
            with db.write_batch() as wb:
                put = wb.put
                for key, value in zip(batch.keys, batch.values, strict=True):
                    put(key, value)
        return time.perf_counter() - t0

    async def transaction(self, txs: Sequence[Dataset]) -> float:
        # LevelDB's transaction is the write batch: the same code as set_many.
        return await self.set_many(txs)

    async def transaction_awaited(self, txs: Sequence[Dataset]) -> float:
        # In-process: nothing to await per set; the limit stays the write batch.
        return await self.set_many(txs)

    async def load_scan(self, data: Dataset) -> None:
        with self._scan.write_batch() as wb:
            for key, value in zip(data.keys, data.values, strict=True):
                wb.put(key, value)

    async def scan(self) -> tuple[float, int]:
        seen = 0
        t0 = time.perf_counter()
        with self._scan.iterator() as it:
            for _key, _value in it:
                seen += 1
        return time.perf_counter() - t0, seen

    async def multi_db(self, dbs: int, data: Dataset) -> float:
        check_descriptors(self.name, dbs)
        root = self._dir / f"multi-{dbs}"
        root.mkdir(parents=True, exist_ok=True)
        handles = [plyvel.DB(str(root / str(i)), create_if_missing=True) for i in range(dbs)]
        try:
            puts = [db.put for db in handles]
            t0 = time.perf_counter()
            for i, (key, value) in enumerate(zip(data.keys, data.values, strict=True)):
                puts[i % dbs](key, value)
            return time.perf_counter() - t0
        finally:
            for db in handles:
                db.close()
            shutil.rmtree(root, ignore_errors=True)
