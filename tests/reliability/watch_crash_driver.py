"""The child of the change-feed crash test: writers and a watcher, until SIGKILL.

Run as ``python -m tests.reliability.watch_crash_driver HOME JOURNAL SEED``.
It starts a Runtime on HOME; a watcher process watches db ``feed`` of
``PACKAGE`` strictly after the last seq the journal holds (0 the first
time), journals ``READY``, then ``WRITERS`` writer processes write sets,
deletes, batches, committed transactions, increments and sets with a 50 ms
TTL (so the sweeper's "expire" changes come among the writes) into ``feed``
until the parent SIGKILLs the whole process. The watcher appends ``C seq
kind keyhex`` to JOURNAL for each change it receives, with one ``os.write``
on an ``O_APPEND`` descriptor (what a SIGKILL cannot lose; see crash_driver.py).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import anyio

from kvruntime import KvConfig, ProcessContext, Runtime, kv

__all__ = ["CONFIG", "PACKAGE", "WATCHER", "last_journaled"]

PACKAGE = "feedcrash:test.os"
WATCHER = f"watcher:{PACKAGE}"
WRITERS = 2
#: A log long enough that nothing is trimmed in a run: the parent replays it all;
#: a sweeper step every 20 ms, so that keys with a TTL expire under the writes.
CONFIG = KvConfig(watch_log_entries=10_000_000, watch_log_bytes=1 << 40, expiry_sweep_seconds=0.02)


def last_journaled(path: Path) -> int:
    """The seq of the last complete ``C`` line of the journal at ``path``, or 0
    (the first life watches from now: the first watch of the db)."""
    last = 0
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines(keepends=True):
        if line.endswith("\n") and line.startswith("C "):
            last = int(line.split()[1])
    return last


async def _watcher(
    ctx: ProcessContext, journal: int, since: int | None, ready: anyio.Event
) -> None:
    db = await kv.open(ctx, PACKAGE, "feed")
    async with db.watch(since=since) as changes:
        os.write(journal, b"READY\n")
        ready.set()
        async for change in changes:
            os.write(journal, f"C {change.seq} {change.kind} {change.key.hex()}\n".encode())


async def _writer(ctx: ProcessContext, index: int, seed: int) -> None:
    rng = random.Random(seed * 100 + index)
    db = await kv.open(ctx, PACKAGE, "feed")
    n = 0
    while True:
        n += 1
        key = f"{seed}/{index}/{n % 50}".encode()
        roll = rng.random()
        if roll < 0.4:
            await db.set(key, b"v%d" % n)
        elif roll < 0.55:
            await db.delete(key)
        elif roll < 0.7:
            await db.set_many([(key + b"/%d" % i, b"m") for i in range(rng.randint(1, 6))])
        elif roll < 0.78:
            async with db.transaction() as tx:
                tx.set(key + b"/t", b"t%d" % n)
                tx.delete(key + b"/0")
        elif roll < 0.9:  # keys with a TTL: the sweeper's removals are "expire" changes
            await db.set(key + b"/ttl", b"e%d" % n, ttl=0.05)
        else:
            await db.increment(b"counter/%d" % index)


async def _main(home: Path, journal_path: Path, seed: int) -> None:
    since = last_journaled(journal_path) or None  # the first life: from now
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    ready = anyio.Event()
    async with Runtime(home=home, config=CONFIG) as rt:

        async def watcher(ctx: ProcessContext) -> None:
            await _watcher(ctx, journal, since, ready)

        handles = [await rt.spawn(WATCHER, watcher, request_capabilities=["kv:distro:sys"])]
        await ready.wait()
        for i in range(WRITERS):

            async def writer(ctx: ProcessContext, i: int = i) -> None:
                await _writer(ctx, i, seed)

            handles.append(
                await rt.spawn(f"w{i}:{PACKAGE}", writer, request_capabilities=["kv:distro:sys"])
            )
        for handle in handles:
            await handle.wait()


if __name__ == "__main__":
    _home, _journal, _seed = sys.argv[1:4]
    anyio.run(_main, Path(_home), Path(_journal), int(_seed))
