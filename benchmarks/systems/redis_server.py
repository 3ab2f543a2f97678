"""redis-server on loopback, through ``redis.asyncio``: the service a user would reach for.

The benchmark starts its own ``redis-server`` (from PATH; ``make bench``
installs Debian's) on a free port with a temporary directory, with an
append-only file that is not fsynced (``appendfsync no``), the durability of
LevelDB without sync, and stops it afterwards. Db 0 holds the main data,
db 1 the scan store, db 2 the multi-db run, where each "database" is a key
prefix (redis has only 16 numbered dbs). Batch form: MSET. Transaction:
MULTI + 100 SET + EXEC in one transactional pipeline (the awaited form:
each of them awaited on one connection). Scan: SCAN pages of
1000 keys + MGET of their values (redis keeps no key order).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType

import anyio
import anyio.abc
import redis.asyncio as aioredis

from ..data import Dataset
from . import Missing, check_read

__all__ = ["RedisDriver", "redis_server_version"]

_PAGE = 1000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_version() -> str | None:
    """``redis-server --version``, or None when it is not on PATH."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


class RedisDriver:
    """A private redis-server and three ``redis.asyncio`` clients (dbs 0, 1, 2)."""

    name = "redis"
    how = "redis-server on loopback (appendonly, no fsync) via redis.asyncio; concurrent: 64 tasks"

    def __init__(self, workdir: Path) -> None:
        self._dir = workdir / "redis"
        self._proc: anyio.abc.Process | None = None
        self._clients: list[aioredis.Redis] = []

    @property
    def _main(self) -> aioredis.Redis:
        return self._clients[0]

    async def __aenter__(self) -> RedisDriver:
        exe = shutil.which("redis-server")
        if exe is None:
            raise Missing("redis-server is not on PATH (make bench installs Debian's redis-server)")
        self._dir.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        command = [
            exe,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "no",
        ]  # fmt: skip
        with (self._dir / "redis.log").open("wb") as log:
            self._proc = await anyio.open_process(command, stdout=log, stderr=subprocess.STDOUT)
        self._clients = [aioredis.Redis(host="127.0.0.1", port=port, db=db) for db in range(3)]
        deadline = time.monotonic() + 10
        while True:
            try:
                await self._main.ping()
                break
            except (ConnectionError, OSError, aioredis.ConnectionError) as exc:
                if self._proc.returncode is not None or time.monotonic() > deadline:
                    await self._close()
                    raise Missing(f"redis-server did not start: {exc}") from exc
                await anyio.sleep(0.05)
        return self

    async def _close(self) -> None:
        for client in self._clients:
            await client.aclose()
        if self._proc is not None:
            self._proc.terminate()
            with anyio.move_on_after(10):
                await self._proc.wait()
            if self._proc.returncode is None:
                self._proc.kill()
                await self._proc.wait()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def set_seq(self, data: Dataset) -> float:
        put = self._main.set
        t0 = time.perf_counter()
        for key, value in zip(data.keys, data.values, strict=True):
            await put(key, value)
        return time.perf_counter() - t0

    async def get_seq(self, keys: Sequence[bytes]) -> float:
        get, got = self._main.get, 0
        t0 = time.perf_counter()
        for key in keys:
            value = await get(key)
            got += len(value) if value is not None else 0
        elapsed = time.perf_counter() - t0
        check_read(self.name, got, 100 * len(keys))
        return elapsed

    async def get_latencies(self, keys: Sequence[bytes]) -> list[int]:
        get, clock, out = self._main.get, time.perf_counter_ns, []
        for key in keys:
            t0 = clock()
            await get(key)
            out.append(clock() - t0)
        return out

    async def set_concurrent(self, shares: Sequence[Dataset]) -> float:
        put = self._main.set

        async def sender(share: Dataset) -> None:
            for key, value in zip(share.keys, share.values, strict=True):
                await put(key, value)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for share in shares:
                tg.start_soon(sender, share)
        return time.perf_counter() - t0

    async def get_concurrent(self, shares: Sequence[Sequence[bytes]]) -> float:
        get, got = self._main.get, 0

        async def sender(share: Sequence[bytes]) -> None:
            nonlocal got
            for key in share:
                value = await get(key)
                got += len(value) if value is not None else 0

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for share in shares:
                tg.start_soon(sender, share)
        elapsed = time.perf_counter() - t0
        check_read(self.name, got, 100 * sum(len(share) for share in shares))
        return elapsed

    async def set_many(self, batches: Sequence[Dataset]) -> float:
        mset = self._main.mset
        mappings = [dict(batch.pairs()) for batch in batches]
        t0 = time.perf_counter()
        for mapping in mappings:
            await mset(mapping)
        return time.perf_counter() - t0

    async def transaction(self, txs: Sequence[Dataset]) -> float:
        t0 = time.perf_counter()
        for tx in txs:
            async with self._main.pipeline(transaction=True) as pipe:
                for key, value in zip(tx.keys, tx.values, strict=True):
                    pipe.set(key, value)
                await pipe.execute()
        return time.perf_counter() - t0

    async def transaction_awaited(self, txs: Sequence[Dataset]) -> float:
        # MULTI, each SET awaited (answered QUEUED), EXEC, on one connection.
        async with self._main.client() as conn:
            command: Callable[..., Awaitable[object]] = conn.execute_command
            t0 = time.perf_counter()
            for tx in txs:
                await command("MULTI")
                for key, value in zip(tx.keys, tx.values, strict=True):
                    await command("SET", key, value)
                await command("EXEC")
            return time.perf_counter() - t0

    async def load_scan(self, data: Dataset) -> None:
        scan_db = self._clients[1]
        await scan_db.flushdb()
        for chunk in data.chunks(_PAGE):
            await scan_db.mset(dict(chunk.pairs()))

    async def scan(self) -> tuple[float, int]:
        scan_db, seen, cursor = self._clients[1], 0, 0
        t0 = time.perf_counter()
        while True:
            cursor, keys = await scan_db.scan(cursor=cursor, count=_PAGE)
            if keys:
                seen += len(await scan_db.mget(keys))
            if cursor == 0:
                break
        return time.perf_counter() - t0, seen

    async def multi_db(self, dbs: int, data: Dataset) -> float:
        multi = self._clients[2]
        put = multi.set
        prefixed = [b"%d:%s" % (i % dbs, key) for i, key in enumerate(data.keys)]
        t0 = time.perf_counter()
        for key, value in zip(prefixed, data.values, strict=True):
            await put(key, value)
        elapsed = time.perf_counter() - t0
        await multi.flushdb()
        return elapsed
