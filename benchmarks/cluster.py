"""``python -m benchmarks.cluster [--quick]``: kvruntime on a Redis Cluster beside
redis-py's cluster client used directly on the same cluster (issue 13).

One local cluster (``localcluster``: 3 masters + 3 replicas, append-only
files) serves both. Each workload runs on both systems in each round, their
order alternating; round 0 is a warm-up. The table shows the medians
(operations per second) and the ratio kvruntime / redis-py beside the
issue's target:

- ``set_seq`` / ``get_seq``: awaited one by one, 1 sender (target >= 0.7);
- ``set_conc`` / ``get_conc``: 64 concurrent senders (kvruntime: 64
  processes on one db; redis-py: 64 tasks on one client) (target >= 1.5);
- ``set_many``: batches of 1000 items, one ``SetMany`` vs one redis-py
  pipeline of 1000 ``SET`` (target >= 0.7);
- ``scan``: every entry of a 100k-key db, page after page, vs redis-py
  paging the db's own sorted set (``ZRANGE BYLEX`` + ``HMGET``, 1000 a
  page) (target >= 0.5).

The redis-py side does only the Redis commands: none of kvruntime's
capability checks, ordering or atomic batches. ``--out DIR`` writes
``cluster.json`` there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import anyio
import attrs

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.storage.localcluster import ClusterStartError, LocalCluster
from protocol.ids import PackageId

__all__ = ["TARGETS", "Sizes", "main", "measure"]

#: workload -> the ratio kvruntime / redis-py it must reach (issue 13).
TARGETS: Final = {
    "set_seq": 0.7,
    "get_seq": 0.7,
    "set_conc": 1.5,
    "get_conc": 1.5,
    "set_many": 0.7,
    "scan": 0.5,
}
PKG: Final = PackageId.parse("bench:bench.os")
VALUE: Final = b"v" * 100


@attrs.frozen
class Sizes:
    """How much each workload does per round."""

    seq: int = 2000
    senders: int = 64
    per_sender: int = 100
    batches: int = 20
    batch: int = 1000
    scan_keys: int = 100_000
    rounds: int = 3

    @classmethod
    def quick(cls) -> Sizes:
        """About 20x smaller (CI; no speed assertion)."""
        return cls(seq=200, per_sender=10, batches=3, scan_keys=5000, rounds=1)


Timed = Callable[[], Awaitable[tuple[int, float]]]


async def _timed(ops: int, job: Callable[[], Awaitable[object]]) -> tuple[int, float]:
    started = time.perf_counter()
    await job()
    return ops, time.perf_counter() - started


class _Kvruntime:
    """kvruntime on the cluster: processes spawned on one Runtime, one db per run."""

    def __init__(self, rt: Runtime, sizes: Sizes) -> None:
        self.rt, self.sizes = rt, sizes
        self._n = 0

    async def run(
        self,
        senders: int,
        body: Callable[[kv.Kv[bytes, bytes]], Awaitable[float | None]],
        db: str = "",
    ) -> float:
        """Seconds from every sender having opened the db until the last one is done;
        a body may return when its timed part started instead (the latest counts)."""
        name = db or f"w{self._n}"
        self._n += 1
        ready, go = anyio.Event(), anyio.Event()
        opened = 0
        marks: list[float] = []
        finished: list[float] = []

        async def main(ctx: ProcessContext) -> None:
            nonlocal opened
            handle = await kv.open(ctx, PKG, name)
            opened += 1
            if opened == senders:
                ready.set()
            await go.wait()
            if (mark := await body(handle)) is not None:
                marks.append(mark)
            finished.append(time.perf_counter())

        handles = [
            await self.rt.spawn(
                f"s{i}:bench:bench.os", main, request_capabilities=["kv:distro:sys"]
            )
            for i in range(senders)
        ]
        await ready.wait()
        started = time.perf_counter()
        go.set()
        for handle in handles:
            await handle.wait()
        assert len(finished) == senders, "a sender failed (see the log)"
        return max(finished) - max([started, *marks])

    def workloads(self) -> dict[str, Timed]:
        s = self.sizes
        keys = [b"key%08d" % i for i in range(max(s.seq, s.per_sender))]
        filled = anyio.Event()
        waiting = 0

        async def sets(db: kv.Kv[bytes, bytes], count: int) -> None:
            for key in keys[:count]:
                await db.set(key, VALUE)

        async def gets(db: kv.Kv[bytes, bytes], count: int, together: int) -> float:
            nonlocal waiting, filled
            await sets(db, count)  # untimed: the timed part starts once all have set
            waiting += 1
            if waiting == together:
                waiting, gate = 0, filled
                filled = anyio.Event()
                gate.set()
                mark = time.perf_counter()
            else:
                await filled.wait()
                mark = 0.0
            for key in keys[:count]:
                await db.get(key)
            return mark

        async def set_many(db: kv.Kv[bytes, bytes]) -> None:
            for b in range(s.batches):
                await db.set_many([(b"b%03d-%05d" % (b, i), VALUE) for i in range(s.batch)])

        async def scan(db: kv.Kv[bytes, bytes]) -> float:
            for start in range(0, s.scan_keys, 1000):  # untimed: the data
                part = range(start, min(start + 1000, s.scan_keys))
                await db.set_many([(b"scan%08d" % i, VALUE) for i in part])
            mark = time.perf_counter()
            count = 0
            async for _ in db.scan():
                count += 1
            assert count == s.scan_keys, count
            return mark

        async def timed(
            senders: int,
            ops: int,
            body: Callable[[kv.Kv[bytes, bytes]], Awaitable[float | None]],
            db: str = "",
        ) -> tuple[int, float]:
            return ops, await self.run(senders, body, db)

        conc = s.senders * s.per_sender
        return {
            "set_seq": lambda: timed(1, s.seq, lambda db: sets(db, s.seq)),
            "get_seq": lambda: timed(1, s.seq, lambda db: gets(db, s.seq, 1)),
            "set_conc": lambda: timed(s.senders, conc, lambda db: sets(db, s.per_sender)),
            "get_conc": lambda: timed(
                s.senders, conc, lambda db: gets(db, s.per_sender, s.senders)
            ),
            "set_many": lambda: timed(1, s.batches * s.batch, set_many),
            "scan": lambda: timed(1, s.scan_keys, scan, "scan"),
        }


class _RedisPy:
    """redis-py's ``redis.asyncio.cluster.RedisCluster`` on the same cluster."""

    def __init__(self, client: Any, sizes: Sizes, scan_keys: tuple[bytes, bytes]) -> None:
        self.client, self.sizes, self.scan_keys = client, sizes, scan_keys

    def workloads(self) -> dict[str, Timed]:
        s, rc = self.sizes, self.client
        keys = [b"rkey%08d" % i for i in range(max(s.seq, s.senders * s.per_sender))]

        async def set_seq() -> None:
            for key in keys[: s.seq]:
                await rc.set(key, VALUE)

        async def get_seq() -> None:
            for key in keys[: s.seq]:
                await rc.get(key)

        async def conc(op: str) -> None:
            async def task(i: int) -> None:
                for key in keys[i * s.per_sender : (i + 1) * s.per_sender]:
                    await (rc.set(key, VALUE) if op == "set" else rc.get(key))

            async with anyio.create_task_group() as tg:
                for i in range(s.senders):
                    tg.start_soon(task, i)

        async def set_many() -> None:
            for b in range(s.batches):
                pipe = rc.pipeline(transaction=False)
                for i in range(s.batch):
                    pipe.set(b"rb%03d-%05d" % (b, i), VALUE)
                await pipe.execute()

        async def scan() -> None:
            values, order = self.scan_keys
            low, count = b"-", 0
            while True:
                page = await rc.zrange(order, low, b"+", bylex=True, offset=0, num=1000)
                if not page:
                    break
                got = await rc.hmget(values, page)
                count += len(got)
                low = b"(" + page[-1]
            assert count == s.scan_keys, count

        return {
            "set_seq": lambda: _timed(s.seq, set_seq),
            "get_seq": lambda: _timed(s.seq, get_seq),
            "set_conc": lambda: _timed(s.senders * s.per_sender, lambda: conc("set")),
            "get_conc": lambda: _timed(s.senders * s.per_sender, lambda: conc("get")),
            "set_many": lambda: _timed(s.batches * s.batch, set_many),
            "scan": lambda: _timed(s.scan_keys, scan),
        }


async def measure(url: str, home: Path, sizes: Sizes) -> dict[str, dict[str, float]]:
    """workload -> {"kvruntime": ops/s, "redis-py": ops/s, "ratio": ..., "target": ...}."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    from kvruntime.storage.redis_cluster import RedisClusterEngine, parse_url

    nodes, _, prefix = parse_url(url)
    client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes])
    rates: dict[str, dict[str, list[float]]] = {}
    try:
        await client.initialize()
        for round_ in range(sizes.rounds + 1):
            async with Runtime(
                home=home / f"r{round_}", storage=f"{url}&namespace={prefix}b{round_}"
            ) as rt:
                ours = _Kvruntime(rt, sizes).workloads()
                # The kvruntime scan db of this round, paged by redis-py too.
                names = RedisClusterEngine(nodes, rt.node, namespace=f"{prefix}b{round_}")
                scan_keys = names.keys_of(PKG, "scan")
                theirs = _RedisPy(client, sizes, scan_keys).workloads()
                for name in TARGETS:
                    pair = [("kvruntime", ours[name]), ("redis-py", theirs[name])]
                    for system, job in pair if round_ % 2 else pair[::-1]:
                        if name == "scan" and system == "redis-py":
                            continue  # after kvruntime filled the db (below)
                        ops, seconds = await job()
                        if round_:
                            rates.setdefault(name, {}).setdefault(system, []).append(ops / seconds)
                        if name == "scan" and system == "kvruntime":
                            ops, seconds = await theirs["scan"]()
                            if round_:
                                rates[name].setdefault("redis-py", []).append(ops / seconds)
    finally:
        await client.aclose()
    table: dict[str, dict[str, float]] = {}
    for name, by in rates.items():
        ours_, theirs_ = statistics.median(by["kvruntime"]), statistics.median(by["redis-py"])
        table[name] = {
            "kvruntime": ours_,
            "redis-py": theirs_,
            "ratio": ours_ / theirs_,
            "target": TARGETS[name],
        }
    return table


def render(table: dict[str, dict[str, float]]) -> str:
    """The table as text."""
    lines = [
        "kvruntime on a Redis Cluster vs redis-py's cluster client on the same cluster",
        f"{'workload':<10} {'kvruntime ops/s':>16} {'redis-py ops/s':>15} {'ratio':>7} "
        f"{'target':>7}  met",
    ]
    for name, row in table.items():
        met = "yes" if row["ratio"] >= row["target"] else "NO"
        lines.append(
            f"{name:<10} {row['kvruntime']:>16,.0f} {row['redis-py']:>15,.0f} "
            f"{row['ratio']:>7.2f} {row['target']:>6.1f}x  {met}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start a local cluster, measure, print the table, stop the cluster."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="~20x smaller counts (CI)")
    parser.add_argument("--out", type=Path, default=None, help="write cluster.json here")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    with tempfile.TemporaryDirectory(prefix="kvbench-cluster-") as scratch:
        try:
            cluster = LocalCluster(Path(scratch) / "cluster").start()
        except ClusterStartError as exc:
            print(f"redis cluster benchmark: the cluster did not start: {exc}", file=sys.stderr)
            return 1
        try:
            url = cluster.url + "?durability=async"
            try:
                import uvloop  # noqa: F401

                options = {"use_uvloop": True}
            except ImportError:
                options = {}
            table = anyio.run(measure, url, Path(scratch), sizes, backend_options=options)
        finally:
            cluster.stop()
    print(render(table))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cluster.json").write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
