"""The child of the TTL crash test: one writer of keys with a TTL, journalling every ack.

Run as ``python -m tests.reliability.ttl_crash_driver HOME JOURNAL SEED``. It
starts a Runtime on HOME and writes db ``ttl`` of ``PACKAGE`` until the parent
SIGKILLs it, over a small pool of keys so that writes overlap: sets with and
without a TTL, set_many with a TTL, expire, persist and delete. TTLs are days
long, so nothing expires during the test. Before each write one line ``I K``
per key (an intent), after its acknowledgement one line per key of its new
state: ``A K`` (present, with a TTL), ``P K`` (present, without) or ``G K``
(gone); ``READY`` once the db is open. One ``os.write`` per line on an
``O_APPEND`` descriptor, as ``crash_driver`` journals.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import anyio

from kvruntime import KvConfig, ProcessContext, Runtime, kv

__all__ = ["DB", "PACKAGE", "POOL"]

PACKAGE = "ttlcrash:test.os"
DB = "ttl"
#: The keys written.
POOL = [b"k%02d" % i for i in range(40)]


async def _writer(ctx: ProcessContext, fd: int, rng: random.Random) -> None:
    def line(kind: str, *keys: bytes) -> None:
        os.write(fd, "".join(f"{kind} {key.hex()}\n" for key in keys).encode())

    db = await kv.open(ctx, PACKAGE, DB)
    os.write(fd, b"READY\n")
    present: set[bytes] = set()
    while True:
        roll, key, ttl = rng.random(), rng.choice(POOL), rng.uniform(1e5, 1e6)
        if roll < 0.3:
            line("I", key)
            await db.set(key, b"v", ttl=ttl)
            line("A", key)
        elif roll < 0.45:
            line("I", key)
            await db.set(key, b"v")
            line("P", key)
        elif roll < 0.6:
            keys = rng.sample(POOL, 3)
            line("I", *keys)
            await db.set_many(dict.fromkeys(keys, b"v"), ttl=ttl)
            line("A", *keys)
            present.update(keys)
            continue
        elif roll < 0.75 and key in present:
            line("I", key)
            await db.expire(key, ttl)
            line("A", key)
        elif roll < 0.9 and key in present:
            line("I", key)
            await db.persist(key)
            line("P", key)
        else:
            line("I", key)
            await db.delete(key)
            line("G", key)
            present.discard(key)
            continue
        present.add(key)


async def _main(home: Path, journal: Path, seed: int) -> None:
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rng = random.Random(seed)

    async def main(ctx: ProcessContext) -> None:
        await _writer(ctx, fd, rng)

    async with Runtime(home=home, config=KvConfig()) as rt:
        handle = await rt.spawn(f"w:{PACKAGE}", main, request_capabilities=["kv:distro:sys"])
        await handle.wait()


if __name__ == "__main__":
    _home, _journal, _seed = sys.argv[1:4]
    anyio.run(_main, Path(_home), Path(_journal), int(_seed))
