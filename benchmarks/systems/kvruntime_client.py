"""kvruntime through the bus and the client, as a sibling process uses it.

Each workload runs inside a process spawned on one ``Runtime`` (the process
opens its db before the clock starts). The concurrent workloads spawn one
process per sender; the clock starts when all of them have opened their db
and stops when the last one is done. The runtime keeps its defaults (no
fsync, as LevelDB's default) but one: it shares this process's descriptors
with the peers' open LevelDBs (1000 of them at once, 4,000 descriptors), so
it keeps at most ``MAX_OPEN_DBS`` open rather than its whole budget (~3,500
under a limit of 20,000); the many-dbs child (``workloads/many_dbs.py``)
measures the defaults alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import anyio

from kvruntime import KvConfig, ProcessContext, Runtime, kv

from ..data import Dataset
from . import check_read

__all__ = ["MAX_OPEN_DBS", "KvruntimeDriver"]

T = TypeVar("T")
_PACKAGE = "bench:bench.os"
#: Open dbs at most in the shared benchmark process (see the module's docstring).
MAX_OPEN_DBS = 2000


class KvruntimeDriver:
    """A Runtime on a scratch home; workloads run in processes spawned on it."""

    name = "kvruntime"
    how = "Runtime + kv client in sibling processes (concurrent: one process per sender)"

    def __init__(self, workdir: Path) -> None:
        self._home = workdir / "kvruntime"
        self._stack = contextlib.AsyncExitStack()
        self._rt: Runtime | None = None
        self._created: set[int] = set()  # the db counts whose dbs exist (and are granted)

    async def __aenter__(self) -> KvruntimeDriver:
        config = KvConfig(max_open_dbs=MAX_OPEN_DBS)
        self._rt = await self._stack.enter_async_context(Runtime(home=self._home, config=config))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _run(self, body: Callable[[ProcessContext], Awaitable[T]], name: str = "main") -> T:
        assert self._rt is not None
        out: list[T] = []

        async def main(ctx: ProcessContext) -> None:
            out.append(await body(ctx))

        handle = await self._rt.spawn(
            f"{name}:{_PACKAGE}", main, request_capabilities=["kv:distro:sys"]
        )
        await handle.wait()
        return out[0]

    async def _together(
        self, bodies: Sequence[Callable[[kv.Kv[bytes, bytes]], Awaitable[None]]], db_name: str
    ) -> float:
        """Run each body in its own process; time from all-ready to all-done."""
        assert self._rt is not None
        ready, go = anyio.Event(), anyio.Event()
        waiting = len(bodies)

        def make_main(
            body: Callable[[kv.Kv[bytes, bytes]], Awaitable[None]],
        ) -> Callable[[ProcessContext], Awaitable[None]]:
            async def main(ctx: ProcessContext) -> None:
                nonlocal waiting
                db = await kv.open(ctx, ctx.package_id, db_name)
                waiting -= 1
                if waiting == 0:
                    ready.set()
                await go.wait()
                await body(db)

            return main

        handles = [
            await self._rt.spawn(
                f"s{i}:{_PACKAGE}", make_main(body), request_capabilities=["kv:distro:sys"]
            )
            for i, body in enumerate(bodies)
        ]
        await ready.wait()
        t0 = time.perf_counter()
        go.set()
        for handle in handles:
            await handle.wait()
        return time.perf_counter() - t0

    async def set_seq(self, data: Dataset) -> float:
        async def body(ctx: ProcessContext) -> float:
            db = await kv.open(ctx, ctx.package_id, "main")
            put = db.set
            t0 = time.perf_counter()
            for key, value in zip(data.keys, data.values, strict=True):
                await put(key, value)
            return time.perf_counter() - t0

        return await self._run(body)

    async def get_seq(self, keys: Sequence[bytes]) -> float:
        async def body(ctx: ProcessContext) -> float:
            db = await kv.open(ctx, ctx.package_id, "main")
            get, got = db.get, 0
            t0 = time.perf_counter()
            for key in keys:
                got += len(await get(key))
            elapsed = time.perf_counter() - t0
            check_read(self.name, got, 100 * len(keys))
            return elapsed

        return await self._run(body)

    async def get_latencies(self, keys: Sequence[bytes]) -> list[int]:
        async def body(ctx: ProcessContext) -> list[int]:
            db = await kv.open(ctx, ctx.package_id, "main")
            get, clock, out = db.get, time.perf_counter_ns, []
            for key in keys:
                t0 = clock()
                await get(key)
                out.append(clock() - t0)
            return out

        return await self._run(body)

    async def set_concurrent(self, shares: Sequence[Dataset]) -> float:
        def body(share: Dataset) -> Callable[[kv.Kv[bytes, bytes]], Awaitable[None]]:
            async def run(db: kv.Kv[bytes, bytes]) -> None:
                put = db.set
                for key, value in zip(share.keys, share.values, strict=True):
                    await put(key, value)

            return run

        return await self._together([body(share) for share in shares], "main")

    async def get_concurrent(self, shares: Sequence[Sequence[bytes]]) -> float:
        got = 0

        def body(share: Sequence[bytes]) -> Callable[[kv.Kv[bytes, bytes]], Awaitable[None]]:
            async def run(db: kv.Kv[bytes, bytes]) -> None:
                nonlocal got
                get, mine = db.get, 0
                for key in share:
                    mine += len(await get(key))
                got += mine

            return run

        elapsed = await self._together([body(share) for share in shares], "main")
        check_read(self.name, got, 100 * sum(len(share) for share in shares))
        return elapsed

    async def set_many(self, batches: Sequence[Dataset]) -> float:
        async def body(ctx: ProcessContext) -> float:
            db = await kv.open(ctx, ctx.package_id, "main")
            items = [batch.pairs() for batch in batches]
            t0 = time.perf_counter()
            for pairs in items:
                await db.set_many(pairs)
            return time.perf_counter() - t0

        return await self._run(body)

    async def transaction(self, txs: Sequence[Dataset]) -> float:
        async def body(ctx: ProcessContext) -> float:
            db = await kv.open(ctx, ctx.package_id, "main")
            t0 = time.perf_counter()
            for tx in txs:
                async with db.transaction() as pipelined:
                    put = pipelined.set
                    for key, value in zip(tx.keys, tx.values, strict=True):
                        put(key, value)
            return time.perf_counter() - t0

        return await self._run(body)

    async def transaction_awaited(self, txs: Sequence[Dataset]) -> float:
        async def body(ctx: ProcessContext) -> float:
            db = await kv.open(ctx, ctx.package_id, "main")
            t0 = time.perf_counter()
            for tx in txs:
                tx_id = await db.begin_tx()
                for key, value in zip(tx.keys, tx.values, strict=True):
                    await db.set(key, value, tx_id=tx_id)
                await db.commit_tx(tx_id)
            return time.perf_counter() - t0

        return await self._run(body)

    async def load_scan(self, data: Dataset) -> None:
        async def body(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, ctx.package_id, "scan")
            for chunk in data.chunks(1000):
                await db.set_many(chunk.pairs())

        await self._run(body)

    async def scan(self) -> tuple[float, int]:
        async def body(ctx: ProcessContext) -> tuple[float, int]:
            db = await kv.open(ctx, ctx.package_id, "scan")
            seen = 0
            t0 = time.perf_counter()
            async for _item in db.scan():
                seen += 1
            return time.perf_counter() - t0, seen

        return await self._run(body)

    async def multi_db(self, dbs: int, data: Dataset) -> float:
        async def body(ctx: ProcessContext) -> float:
            names = [f"multi-{dbs}-{i}" for i in range(dbs)]
            if dbs in self._created:  # created and granted in an earlier round
                handles = [kv.handle(ctx, ctx.package_id, name) for name in names]
            else:
                handles = [await kv.open(ctx, ctx.package_id, name) for name in names]
                self._created.add(dbs)
            puts = [db.set for db in handles]
            t0 = time.perf_counter()
            for i, (key, value) in enumerate(zip(data.keys, data.values, strict=True)):
                await puts[i % dbs](key, value)
            return time.perf_counter() - t0

        return await self._run(body)
