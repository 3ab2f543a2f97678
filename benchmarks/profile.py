"""Where kvruntime spends its time: ``python -m benchmarks.profile [--workload W]``.

Runs one loop of the benchmark after a warm-up under cProfile and prints
the functions with the most self time, then the rate without the profiler
for scale: ``set_seq`` (one sender, each set awaited; the default),
``set_many`` (batches of 1000 pairs) or ``scan`` (``async for`` over
``db.scan()`` of a store of ``--count`` keys, and ``--pages``: over
``db.scan_pages()``). The runtime and the sender share one interpreter, so
the profile covers the client, the bus, the kv process and LevelDB calls
alike.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

import anyio

from kvruntime import ProcessContext, Runtime, kv

from .data import Dataset

__all__ = ["main", "profile_set", "profile_workload"]

_BATCH = 1000


async def profile_set(count: int, *, profiled: bool) -> tuple[float, cProfile.Profile | None]:
    """Set ``count`` pairs in turn; return (sets per second, the profile if taken)."""
    return await profile_workload("set_seq", count, profiled=profiled)


async def _loop(workload: str, db: kv.Kv[bytes, bytes], data: Dataset) -> int:
    """One pass of ``workload`` over ``data``; how many pairs it moved."""
    if workload == "set_seq":
        put = db.set
        for key, value in zip(data.keys, data.values, strict=True):
            await put(key, value)
        return len(data)
    if workload == "set_many":
        for chunk in data.chunks(_BATCH):
            await db.set_many(chunk.pairs())
        return len(data)
    seen = 0
    if workload == "scan_pages":
        async for page in db.scan_pages():
            seen += len(page.items)
        return seen
    async for _item in db.scan():
        seen += 1
    return seen


async def profile_workload(
    workload: str, count: int, *, profiled: bool
) -> tuple[float, cProfile.Profile | None]:
    """Run ``workload`` over ``count`` pairs; return (pairs per second, the profile if taken)."""
    data = Dataset.make(count, salt="profile")
    warm = Dataset.make(1000, salt="profile-warm")
    out: list[tuple[float, cProfile.Profile | None]] = []
    with tempfile.TemporaryDirectory(prefix="kvbench-profile-") as tmp:
        async with Runtime(home=Path(tmp)) as rt:

            async def main(ctx: ProcessContext) -> None:
                db = await kv.open(ctx, ctx.package_id, "profile")
                if workload.startswith("scan"):  # the store to read, and a first read
                    for chunk in data.chunks(_BATCH):
                        await db.set_many(chunk.pairs())
                    await _loop(workload, db, data)
                else:
                    await _loop(workload, db, warm)
                profiler = cProfile.Profile() if profiled else None
                t0 = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                moved = await _loop(workload, db, data)
                if profiler is not None:
                    profiler.disable()
                out.append((moved / (time.perf_counter() - t0), profiler))

            handle = await rt.spawn(
                "profile:bench:bench.os", main, request_capabilities=["kv:distro:sys"]
            )
            await handle.wait()
    return out[0]


def main(argv: list[str] | None = None) -> None:
    """Print the top functions by self time, and the unprofiled rate."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument(
        "--workload", choices=("set_seq", "set_many", "scan", "scan_pages"), default="set_seq"
    )
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    workload: str = args.workload
    rate, profiler = anyio.run(lambda: profile_workload(workload, args.count, profiled=True))
    assert profiler is not None
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(args.top)
    print(text.getvalue().replace(str(Path.cwd()) + "/", ""))
    plain, _ = anyio.run(lambda: profile_workload(workload, args.count, profiled=False))
    print(f"{workload}: {plain:,.0f} pairs/s unprofiled ({rate:,.0f} under cProfile)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
