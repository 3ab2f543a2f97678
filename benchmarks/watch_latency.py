"""``python -m benchmarks.watch_latency [--quick]``: change-feed delivery, beside Redis streams.

Delivery latency: one writer sets N keys, each awaited (as fast as it can:
the fastest single writer); each of W watchers (1, then 64; processes of
their own) takes every change in ``async for``. A sample is the time from
the writer's set call (a set that is acknowledged: the change is pushed by
the flush that acknowledges it) to a watcher's ``async for`` yielding that
change, per watcher and change; p50 and p99 in microseconds. (Measured from
the call, not from the acknowledgement: a Redis reader often has the entry
before the writer has read XADD's answer, so "after the ack" is not a time.)
Beside it, the same on a real redis-server (started here, on a free
loopback port, stopped by PID): XADD by one client, W clients each in XREAD
BLOCK on the stream. Also the RSS one process gains holding 1000 idle
watches (kv's state and the client's waiting tasks together).

Numbers from one run on a shared machine: ratios side by side mean more
than the absolute figures.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import cast

import anyio

from kvruntime import KvConfig, Main, ProcessContext, Runtime, kv

from .stats import percentile
from .systems.redis_server import _free_port

PACKAGE = "watchbench:bench.os"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def _kv_latency(home: Path, watchers: int, n: int) -> list[float]:
    sent: dict[bytes, int] = {}
    samples: list[float] = []
    config = KvConfig(max_watches_per_process=1000, max_watches=20_000)
    async with Runtime(home=home, config=config) as rt:
        ready = [anyio.Event() for _ in range(watchers)]

        async def owner(ctx: ProcessContext) -> None:
            await kv.open(ctx, PACKAGE, "feed")

        handle = await rt.spawn(f"owner:{PACKAGE}", owner, request_capabilities=["kv:distro:sys"])
        await handle.wait()

        def watcher(index: int) -> Main:
            async def main(ctx: ProcessContext) -> None:
                db = await kv.open(ctx, PACKAGE, "feed")
                async with db.watch() as changes:
                    ready[index].set()
                    seen = 0
                    async for change in changes:
                        arrived = time.perf_counter_ns()
                        samples.append((arrived - sent.get(change.key, arrived)) / 1000)
                        seen += 1
                        if seen == n:
                            return

            return main

        handles = [
            await rt.spawn(f"w{i}:{PACKAGE}", watcher(i), request_capabilities=["kv:distro:sys"])
            for i in range(watchers)
        ]
        for event in ready:
            await event.wait()

        async def writer(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PACKAGE, "feed")
            for i in range(n):
                key = b"k%d" % i
                sent[key] = time.perf_counter_ns()
                await db.set(key, b"v")

        writing = await rt.spawn(
            f"writer:{PACKAGE}", writer, request_capabilities=["kv:distro:sys"]
        )
        await writing.wait()
        with anyio.fail_after(120):
            for h in handles:
                await h.wait()
    return samples


async def _kv_idle_rss(home: Path, count: int) -> int:
    config = KvConfig(max_watches_per_process=count, max_watches=count)
    async with Runtime(home=home, config=config) as rt:
        grown: list[int] = []

        async def main(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PACKAGE, "idle")
            before = _rss_bytes()
            opened = anyio.Event()
            stop = anyio.Event()
            started = 0

            async def one() -> None:
                nonlocal started
                async with db.watch() as changes:
                    started += 1
                    if started == count:
                        opened.set()
                    with anyio.move_on_after(3600):
                        async for _ in changes:
                            pass
                    await stop.wait()

            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    tg.start_soon(one)
                await opened.wait()
                await anyio.sleep(0.5)  # every watcher's first ask is held at kv
                grown.append(_rss_bytes() - before)
                tg.cancel_scope.cancel()

        handle = await rt.spawn(f"idle:{PACKAGE}", main, request_capabilities=["kv:distro:sys"])
        await handle.wait()
    return grown[0]


async def _redis_latency(workdir: Path, watchers: int, n: int) -> list[float]:
    import redis.asyncio as aioredis

    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not on PATH (make bench installs Debian's)")
    port = _free_port()
    proc = await anyio.open_process(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sent: dict[bytes, int] = {}
    samples: list[float] = []
    try:
        writer = aioredis.Redis(host="127.0.0.1", port=port)
        for _ in range(200):
            try:
                await writer.ping()
                break
            except (ConnectionError, OSError, aioredis.ConnectionError):
                await anyio.sleep(0.05)
        await writer.delete("s")
        first = await writer.xadd("s", {"k": b"start"})
        readers = [aioredis.Redis(host="127.0.0.1", port=port) for _ in range(watchers)]

        async def reader(client: aioredis.Redis) -> None:
            last, seen = first, 0
            while seen < n:
                got = cast(
                    "list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]",
                    await client.xread({"s": last}, block=0, count=256),
                )
                for _, entries in got:
                    for entry_id, fields in entries:
                        arrived = time.perf_counter_ns()
                        key = fields[b"k"]
                        samples.append((arrived - sent.get(key, arrived)) / 1000)
                        last, seen = entry_id, seen + 1

        async with anyio.create_task_group() as tg:
            for client in readers:
                tg.start_soon(reader, client)
            await anyio.sleep(0.2)
            for i in range(n):
                key = b"k%d" % i
                sent[key] = time.perf_counter_ns()
                await writer.xadd("s", {"k": key})
        for client in [writer, *readers]:
            await client.aclose()
    finally:
        proc.terminate()
        with anyio.fail_after(10):
            await proc.wait()
    return samples


async def _main(quick: bool) -> None:
    n = 200 if quick else 2000
    print(f"Change-feed delivery, writer's set call -> watcher's async for ({n} sets, awaited)")
    print(f"{'system':<44} {'watchers':>8} {'p50 us':>9} {'p99 us':>9}")
    with tempfile.TemporaryDirectory(prefix="kvbench-watch-") as scratch:
        root = Path(scratch)
        for watchers in (1, 64):
            for name, run in (
                ("kvruntime (LevelDB, bus, client)", _kv_latency),
                ("redis-server XADD / XREAD BLOCK (redis.asyncio)", _redis_latency),
            ):
                workdir = root / f"{name[:5]}-{watchers}"
                workdir.mkdir()
                samples = await run(workdir, watchers, n)
                p50, p99 = percentile(samples, 50), percentile(samples, 99)
                print(f"{name:<44} {watchers:>8} {p50:>9.0f} {p99:>9.0f}")
        idle = root / "idle"
        idle.mkdir()
        grown = await _kv_idle_rss(idle, 1000)
        print(f"1000 idle watches: +{grown / 2**20:.1f} MiB RSS (target: at most 50 MiB)")


def main(argv: list[str] | None = None) -> None:
    """Run and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watch_latency", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x fewer sets")
    args = parser.parse_args(argv)
    anyio.run(_main, args.quick)


if __name__ == "__main__":
    main()
