"""SQLite through ``aiosqlite``: one table of blob key/value, Spin's default store.

One connection in autocommit mode (``isolation_level=None``), WAL journal
with ``synchronous=NORMAL`` (no fsync per commit, as LevelDB without sync).
Each set is its own implicit transaction. Batch form: ``executemany`` in one
BEGIN/COMMIT. Transaction: BEGIN, 100 awaited INSERTs, COMMIT. The
concurrent senders are 64 tasks sharing the connection (aiosqlite runs one
thread per connection, so they queue there as they would in an app). The
multi-db run uses one table per db in one file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import aiosqlite
import anyio

from ..data import Dataset
from . import check_read

__all__ = ["SqliteDriver"]

_UPSERT = "INSERT OR REPLACE INTO {table} (k, v) VALUES (?, ?)"
_SELECT = "SELECT v FROM {table} WHERE k = ?"


class SqliteDriver:
    """One aiosqlite connection on a WAL database file."""

    name = "sqlite"
    how = (
        "aiosqlite, one blob k/v table, WAL + synchronous=NORMAL, autocommit per set;"
        " concurrent: 64 tasks on one connection"
    )

    def __init__(self, workdir: Path) -> None:
        self._path = workdir / "sqlite" / "bench.db"
        self._db: aiosqlite.Connection | None = None

    @property
    def _conn(self) -> aiosqlite.Connection:
        assert self._db is not None
        return self._db

    async def __aenter__(self) -> SqliteDriver:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path, isolation_level=None, iter_chunk_size=1000)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        for table in ("kv", "scan"):
            await self._create(table)
        return self

    async def _create(self, table: str) -> None:
        await self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (k BLOB PRIMARY KEY, v BLOB NOT NULL)"
            " WITHOUT ROWID"
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._conn.close()

    async def set_seq(self, data: Dataset) -> float:
        execute, sql = self._conn.execute, _UPSERT.format(table="kv")
        t0 = time.perf_counter()
        for key, value in zip(data.keys, data.values, strict=True):
            await execute(sql, (key, value))
        return time.perf_counter() - t0

    async def _get_loop(self, keys: Sequence[bytes]) -> int:
        fetch, sql, got = self._conn.execute_fetchall, _SELECT.format(table="kv"), 0
        for key in keys:
            rows = await fetch(sql, (key,))
            for (value,) in rows:
                got += len(value)
        return got

    async def get_seq(self, keys: Sequence[bytes]) -> float:
        t0 = time.perf_counter()
        got = await self._get_loop(keys)
        elapsed = time.perf_counter() - t0
        check_read(self.name, got, 100 * len(keys))
        return elapsed

    async def get_latencies(self, keys: Sequence[bytes]) -> list[int]:
        fetch, sql = self._conn.execute_fetchall, _SELECT.format(table="kv")
        clock, out = time.perf_counter_ns, []
        for key in keys:
            t0 = clock()
            await fetch(sql, (key,))
            out.append(clock() - t0)
        return out

    async def set_concurrent(self, shares: Sequence[Dataset]) -> float:
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for share in shares:
                tg.start_soon(self.set_seq, share)
        return time.perf_counter() - t0

    async def get_concurrent(self, shares: Sequence[Sequence[bytes]]) -> float:
        got = 0

        async def sender(share: Sequence[bytes]) -> None:
            nonlocal got
            mine = await self._get_loop(share)
            got += mine

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for share in shares:
                tg.start_soon(sender, share)
        elapsed = time.perf_counter() - t0
        check_read(self.name, got, 100 * sum(len(share) for share in shares))
        return elapsed

    async def _write_many(self, table: str, pairs: list[tuple[bytes, bytes]]) -> None:
        conn = self._conn
        await conn.execute("BEGIN")
        try:
            await conn.executemany(_UPSERT.format(table=table), pairs)
        except (sqlite3.Error, ValueError):
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")

    async def set_many(self, batches: Sequence[Dataset]) -> float:
        items = [batch.pairs() for batch in batches]
        t0 = time.perf_counter()
        for pairs in items:
            await self._write_many("kv", pairs)
        return time.perf_counter() - t0

    async def transaction(self, txs: Sequence[Dataset]) -> float:
        execute, sql = self._conn.execute, _UPSERT.format(table="kv")
        t0 = time.perf_counter()
        for tx in txs:
            await execute("BEGIN")
            for key, value in zip(tx.keys, tx.values, strict=True):
                await execute(sql, (key, value))
            await execute("COMMIT")
        return time.perf_counter() - t0

    async def transaction_awaited(self, txs: Sequence[Dataset]) -> float:
        # Its transaction already awaits every statement.
        return await self.transaction(txs)

    async def load_scan(self, data: Dataset) -> None:
        await self._conn.execute("DELETE FROM scan")
        await self._write_many("scan", data.pairs())

    async def scan(self) -> tuple[float, int]:
        seen = 0
        t0 = time.perf_counter()
        async with self._conn.execute("SELECT k, v FROM scan ORDER BY k") as cursor:
            async for _row in cursor:
                seen += 1
        return time.perf_counter() - t0, seen

    async def multi_db(self, dbs: int, data: Dataset) -> float:
        tables = [f"multi_{dbs}_{i}" for i in range(dbs)]
        for table in tables:
            await self._create(table)
        sqls = [_UPSERT.format(table=table) for table in tables]
        execute = self._conn.execute
        t0 = time.perf_counter()
        for i, (key, value) in enumerate(zip(data.keys, data.values, strict=True)):
            await execute(sqls[i % dbs], (key, value))
        elapsed = time.perf_counter() - t0
        for table in tables:
            await execute(f"DROP TABLE {table}")
        return elapsed
