"""kvruntime through the bus and the client, as a sibling process uses it.

Each workload runs inside a process spawned on one ``Runtime`` (the process
opens its db before the clock starts). The concurrent workloads spawn one
process per sender; the clock starts when all of them have opened their db
and stops when the last one is done. The runtime keeps its defaults (no
fsync, as LevelDB's default) but one: it shares this process's descriptors
with the peers' open LevelDBs (1000 of them at once, 4,000 descriptors), so
it keeps at most ``MAX_OPEN_DBS`` open rather than its whole budget (~3,500
under a limit of 20,000).

Each db count of the many-dbs workload has a Runtime of its own (its own
home), started on its first round and kept for the next: so the 10 000-db
round robin, which no budget holds open, cannot evict the 1000-db
workload's dbs between its rounds, and each row measures its own count.
After each round the driver records what that runtime holds
(``db_footprint``): the descriptors open under its home (read from
``/proc/self/fd``) and this process's RSS growth since it started.
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
from ..machine import rss_bytes
from . import Footprint, check_read, descriptors_under

__all__ = ["MAX_OPEN_DBS", "MAX_OPEN_DBS_PER_COUNT", "KvruntimeDriver"]

T = TypeVar("T")
_PACKAGE = "bench:bench.os"
#: Open dbs at most in the shared benchmark process (see the module's docstring).
MAX_OPEN_DBS = 2000
#: Open dbs at most in each many-dbs runtime: the 1000-db one holds all of its
#: dbs; the 10 000-db one shares the descriptors with it and with the peers.
MAX_OPEN_DBS_PER_COUNT = 1000


class KvruntimeDriver:
    """A Runtime on a scratch home; workloads run in processes spawned on it."""

    name = "kvruntime"
    how = "Runtime + kv client in sibling processes (concurrent: one process per sender)"

    def __init__(self, workdir: Path) -> None:
        self._home = workdir / "kvruntime"
        self._stack = contextlib.AsyncExitStack()
        self._rt: Runtime | None = None
        self._workdir = workdir
        self._created: set[int] = set()  # the db counts whose dbs exist (and are granted)
        #: Per db count: its own Runtime, its home, and this process's RSS before it started.
        self._db_runtimes: dict[int, tuple[Runtime, Path, int]] = {}
        self._footprints: dict[int, Footprint] = {}

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

    async def _run(
        self,
        body: Callable[[ProcessContext], Awaitable[T]],
        name: str = "main",
        runtime: Runtime | None = None,
    ) -> T:
        rt = runtime or self._rt
        assert rt is not None
        out: list[T] = []

        async def main(ctx: ProcessContext) -> None:
            out.append(await body(ctx))

        handle = await rt.spawn(f"{name}:{_PACKAGE}", main, request_capabilities=["kv:distro:sys"])
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

    async def _db_runtime(self, dbs: int) -> tuple[Runtime, Path, int]:
        """The Runtime of the ``dbs``-db workload, started on first use."""
        if dbs not in self._db_runtimes:
            home = self._workdir / f"kvruntime-dbs-{dbs}"
            rss_before = rss_bytes()
            config = KvConfig(max_open_dbs=MAX_OPEN_DBS_PER_COUNT)
            rt = await self._stack.enter_async_context(Runtime(home=home, config=config))
            self._db_runtimes[dbs] = (rt, home, rss_before)
        return self._db_runtimes[dbs]

    def db_footprint(self, dbs: int) -> Footprint | None:
        """What the ``dbs``-db runtime held after its last round."""
        return self._footprints.get(dbs)

    async def scan_pages(self) -> tuple[float, int]:
        async def body(ctx: ProcessContext) -> tuple[float, int]:
            db = await kv.open(ctx, ctx.package_id, "scan")
            seen = 0
            t0 = time.perf_counter()
            async for page in db.scan_pages():
                for _item in page.items:
                    seen += 1
            return time.perf_counter() - t0, seen

        return await self._run(body)

    async def multi_db(self, dbs: int, data: Dataset) -> float:
        rt, home, rss_before = await self._db_runtime(dbs)

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

        elapsed = await self._run(body, runtime=rt)
        self._footprints[dbs] = Footprint(
            descriptors=descriptors_under(home), rss_growth_bytes=rss_bytes() - rss_before
        )
        return elapsed
