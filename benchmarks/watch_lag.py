"""``python -m benchmarks.watch_lag [--quick] [--changes N]``: does a watcher keep up?

Issue 14's target: "a watcher keeps up with the fastest single writer: no
growing lag over 1M changes". One writer process writes N changes (1M; 50k
with ``--quick``) to one LevelDB db as fast as one sender can: ``set_many``
batches of ``BATCH`` keys, each awaited (the fastest single writer of the
write paths: the set benchmark's round trips carry 1 key each). A watcher
process takes every change in ``async for``. kv, the writer and the watcher
share one event loop, as the processes of one node do.

The lag is counted in changes: the writer's last acknowledged seq (the
watch's start plus the changes acknowledged so far: the writer is the db's
only writer) minus the seq the watcher's ``async for`` last yielded. It is
sampled every ``SAMPLE_SECONDS`` while the writer writes; printed: its
median and maximum, the median of the first and of the last tenth of the
samples (a lag that grows shows as a last tenth far above the first), the
writer's and the watcher's rates, and how long the watcher took to reach
the writer's last seq once the writer stopped. The log's default retention
(``watch_log_entries``, 100 000 changes) is kept: a watcher more than that
behind would get ``WatchCompacted``, which this run reports as a failure.

Numbers from one run on a shared machine; the shape (flat or growing) is
the finding, not the absolute rates.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import anyio
import attrs

from kvruntime import KvConfig, ProcessContext, Runtime, kv

from .stats import median

PACKAGE = "watchlag:bench.os"
#: Keys per ``set_many`` of the writer (under LONG_BATCH_ITEMS: it joins the flush).
BATCH = 1000
#: Seconds between two samples of the lag.
SAMPLE_SECONDS = 0.05
#: A last tenth whose median lag is above this many times the first tenth's,
#: plus a window and a batch (what a watcher that keeps up may be behind at a
#: sample), counts as growing.
GROWTH_FACTOR = 2.0


@attrs.define
class LagRun:
    """What one run measured."""

    #: How many changes the watcher had taken when it met WatchCompacted (None: never).
    compacted_at: int | None
    changes: int
    #: (seconds since the writer began, lag in changes), in time order.
    samples: list[tuple[float, int]]
    write_seconds: float
    #: Seconds from the writer's last acknowledgement to the watcher's last change.
    catch_up_seconds: float
    window: int

    @property
    def lags(self) -> list[int]:
        """The lag of every sample."""
        return [lag for _, lag in self.samples]

    def tenth(self, which: int) -> list[int]:
        """The lags of the first (0) or last (-1) tenth of the samples."""
        lags = self.lags
        size = max(1, len(lags) // 10)
        return lags[:size] if which == 0 else lags[-size:]

    @property
    def grows(self) -> bool:
        """Whether the last tenth's median lag is well above the first tenth's."""
        first, last = median(self.tenth(0)), median(self.tenth(-1))
        return last > GROWTH_FACTOR * first + self.window + BATCH


async def measure(home: Path, changes: int, config: KvConfig | None = None) -> LagRun:
    """Write ``changes`` changes from one writer while one watcher follows them."""
    config = config or KvConfig()
    batches = -(-changes // BATCH)
    total = batches * BATCH
    state = {"start": 0, "acked": 0, "seen": 0}
    samples: list[tuple[float, int]] = []
    compacted: list[int] = []
    watching, done_writing = anyio.Event(), anyio.Event()
    times = {"began": 0.0, "wrote": 0.0, "caught_up": 0.0}
    async with Runtime(home=home, config=config) as rt:

        async def watcher(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PACKAGE, "lag")
            async with db.watch() as feed:
                state["start"] = state["seen"] = feed.start
                watching.set()
                last = feed.start + total
                try:
                    async for change in feed:
                        state["seen"] = change.seq
                        if change.seq >= last:
                            break
                except kv.WatchCompacted:  # it fell behind the retained log
                    compacted.append(state["seen"] - feed.start)
            times["caught_up"] = time.perf_counter()

        async def writer(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PACKAGE, "lag")
            await watching.wait()
            value = b"v" * 8
            times["began"] = time.perf_counter()
            for batch in range(batches):
                base = batch * BATCH
                await db.set_many([(b"k%08d" % (base + i), value) for i in range(BATCH)])
                state["acked"] = base + BATCH
            times["wrote"] = time.perf_counter()
            done_writing.set()

        async def sampler() -> None:
            await watching.wait()
            while not done_writing.is_set() and not compacted:
                await anyio.sleep(SAMPLE_SECONDS)
                lag = state["start"] + state["acked"] - state["seen"]
                samples.append((time.perf_counter() - times["began"], lag))

        async def owner(ctx: ProcessContext) -> None:
            await kv.open(ctx, PACKAGE, "lag")

        made = await rt.spawn(f"owner:{PACKAGE}", owner, request_capabilities=["kv:distro:sys"])
        await made.wait()
        caps = ["kv:distro:sys"]
        handles = [
            await rt.spawn(f"watcher:{PACKAGE}", watcher, request_capabilities=caps),
            await rt.spawn(f"writer:{PACKAGE}", writer, request_capabilities=caps),
        ]
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler)
            with anyio.fail_after(3600):
                for handle in handles:
                    await handle.wait()
    return LagRun(
        compacted_at=compacted[0] if compacted else None,
        changes=total,
        samples=samples,
        write_seconds=times["wrote"] - times["began"],
        catch_up_seconds=max(0.0, times["caught_up"] - times["wrote"]),
        window=config.watch_window_items,
    )


def report(run: LagRun) -> list[str]:
    """The lines that describe ``run``."""
    if run.compacted_at is not None:
        return [
            f"FAILED: the watcher fell behind the retained log (WatchCompacted) after "
            f"{run.compacted_at:,} of {run.changes:,} changes; "
            f"the lag had reached {max(run.lags, default=0):,}"
        ]
    lags = run.lags
    rate = run.changes / run.write_seconds
    watched = run.changes / (run.write_seconds + run.catch_up_seconds)
    first, last = median(run.tenth(0)), median(run.tenth(-1))
    return [
        f"{run.changes} changes, set_many of {BATCH} keys, awaited: "
        f"{run.write_seconds:.1f} s, {rate:,.0f} changes/s written; "
        f"the watcher {watched:,.0f} changes/s",
        f"lag in changes, {len(lags)} samples every {SAMPLE_SECONDS * 1000:.0f} ms: "
        f"median {median(lags):,.0f}, max {max(lags):,}",
        f"first tenth median {first:,.0f}, last tenth median {last:,.0f}: "
        f"{'GROWS' if run.grows else 'does not grow'}",
        f"the watcher reached the writer's last seq {run.catch_up_seconds * 1000:.0f} ms "
        "after its last acknowledgement",
    ]


async def writer_alone(home: Path, changes: int) -> float:
    """Seconds the same writer takes on a db never watched (no log): the baseline."""
    batches = -(-changes // BATCH)
    took: list[float] = []
    async with Runtime(home=home) as rt:

        async def writer(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PACKAGE, "alone")
            value = b"v" * 8
            began = time.perf_counter()
            for batch in range(batches):
                base = batch * BATCH
                await db.set_many([(b"k%08d" % (base + i), value) for i in range(BATCH)])
            took.append(time.perf_counter() - began)

        handle = await rt.spawn(f"alone:{PACKAGE}", writer, request_capabilities=["kv:distro:sys"])
        await handle.wait()
    return took[0]


async def _main(changes: int) -> None:
    print(f"Change-feed lag: one writer, one watcher, {changes} changes (LevelDB)")
    with tempfile.TemporaryDirectory(prefix="kvbench-watchlag-") as scratch:
        run = await measure(Path(scratch) / "watched", changes)
        alone = await writer_alone(Path(scratch) / "alone", changes)
    for line in report(run):
        print(f"  {line}")
    if run.compacted_at is None:
        print(
            f"  the same writer on a db never watched (no log, no watcher): {alone:.1f} s, "
            f"{changes / alone:,.0f} changes/s; with them it took {run.write_seconds / alone:.2f}x "
            "as long (kv, writer and watcher share one event loop)"
        )


def main(argv: list[str] | None = None) -> None:
    """Run and print the lag report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watch_lag", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 000 changes, not 1 000 000")
    parser.add_argument("--changes", type=int, default=None, help="how many changes to write")
    args = parser.parse_args(argv)
    changes = args.changes or (50_000 if args.quick else 1_000_000)
    anyio.run(_main, changes)


if __name__ == "__main__":
    main()
