"""Where kvruntime's sequential set spends its time: ``python -m benchmarks.profile``.

Runs the ``set_seq`` loop of the benchmark (one sender, each set awaited,
after a warm-up) under cProfile and prints the functions with the most self
time, then the rate without the profiler for scale. The runtime and the
sender share one interpreter, so the profile covers the client, the bus,
the kv process and LevelDB calls alike.
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

__all__ = ["main", "profile_set"]


async def profile_set(count: int, *, profiled: bool) -> tuple[float, cProfile.Profile | None]:
    """Set ``count`` pairs in turn; return (sets per second, the profile if taken)."""
    data = Dataset.make(count, salt="profile")
    warm = Dataset.make(1000, salt="profile-warm")
    out: list[tuple[float, cProfile.Profile | None]] = []
    with tempfile.TemporaryDirectory(prefix="kvbench-profile-") as tmp:
        async with Runtime(home=Path(tmp)) as rt:

            async def main(ctx: ProcessContext) -> None:
                db = await kv.open(ctx, ctx.package_id, "profile")
                for key, value in zip(warm.keys, warm.values, strict=True):
                    await db.set(key, value)
                put = db.set
                profiler = cProfile.Profile() if profiled else None
                t0 = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                for key, value in zip(data.keys, data.values, strict=True):
                    await put(key, value)
                if profiler is not None:
                    profiler.disable()
                out.append((count / (time.perf_counter() - t0), profiler))

            handle = await rt.spawn(
                "profile:bench:bench.os", main, request_capabilities=["kv:distro:sys"]
            )
            await handle.wait()
    return out[0]


def main(argv: list[str] | None = None) -> None:
    """Print the top functions by self time, and the unprofiled rate."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    rate, profiler = anyio.run(lambda: profile_set(args.count, profiled=True))
    assert profiler is not None
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(args.top)
    print(text.getvalue().replace(str(Path.cwd()) + "/", ""))
    plain, _ = anyio.run(lambda: profile_set(args.count, profiled=False))
    print(f"sequential set: {plain:,.0f} sets/s unprofiled ({rate:,.0f} under cProfile)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
