"""The child of the crash test: a Runtime under write load, journalling every ack.

Run as ``python -m tests.reliability.crash_driver HOME JOURNAL GENERATION SEED``.
It starts a Runtime on HOME and spawns ``SENDERS`` writer processes that
write until the parent SIGKILLs the whole process. Each writer mixes:

- single sets, awaited one by one (db ``data``);
- bursts of sets in flight together, which kv serves as one write batch;
- deletes of keys it set earlier;
- transactions of several sets on db ``ledger``, committed at once.

After each acknowledgement (and before each commit or delete, as intent) the
writer appends one line to JOURNAL with a single ``os.write`` on an
``O_APPEND`` descriptor. A completed write(2) sits in the kernel's page cache,
which a SIGKILL of this process does not lose, so every line the parent reads
describes something that really happened before the kill. (An fsync per line
would only add protection against power loss, which this test does not
simulate.) Line shapes, with ``K`` a key in hex:

``S db K``   a set of K was acknowledged;
``d db K``   a delete of K is about to be sent;  ``D db K`` it was acknowledged;
``B n K...`` transaction n with these keys is about to be committed;
``T n``      its commit was acknowledged;
``H``        generation 0 shared read access on ``data`` with the reader;
``READY``    every writer holds its handles;  ``E text`` a writer failed.

Values are derived from keys (``value_of``), so the parent can check them.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

import anyio

from kvruntime import KvConfig, Main, ProcessContext, Runtime, kv

__all__ = ["PACKAGE", "READER", "SENDERS", "value_of", "writer_id"]

#: The package every writer belongs to.
PACKAGE = "crash:test.os"
#: Writer processes per generation.
SENDERS = 3
#: A process of another package, granted read access to ``data`` once.
READER = "reader:other:test.os"


def writer_id(index: int) -> str:
    """The process id of writer ``index``."""
    return f"w{index}:{PACKAGE}"


def value_of(key: bytes) -> bytes:
    """The value written at ``key``: a digest of it, 32 to 128 bytes long."""
    digest = hashlib.sha256(key).digest()
    return digest * (1 + digest[0] % 4)


class Journal:
    """Appends lines with one write(2) each."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, text: str) -> None:
        """Append ``text`` and a newline atomically."""
        os.write(self._fd, (text + "\n").encode())


async def _writer(
    ctx: ProcessContext,
    journal: Journal,
    gen: int,
    index: int,
    rng: random.Random,
    ready: anyio.Event,
) -> None:
    data = await kv.open(ctx, PACKAGE, "data")
    ledger = await kv.open(ctx, PACKAGE, "ledger")
    if gen == 0 and index == 0:
        await data.share(READER)
        journal.line("H")
    ready.set()
    mine: list[bytes] = []
    n = 0

    def fresh(kind: str) -> bytes:
        nonlocal n
        n += 1
        return f"{gen}/{index}/{kind}/{n}".encode()

    while True:
        roll = rng.random()
        if roll < 0.35:
            key = fresh("s")
            await data.set(key, value_of(key))
            journal.line(f"S data {key.hex()}")
            mine.append(key)
        elif roll < 0.6:
            keys = [fresh("b") for _ in range(rng.randint(2, 12))]

            async def one(key: bytes) -> None:
                await data.set(key, value_of(key))
                journal.line(f"S data {key.hex()}")

            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(one, key)
            mine.extend(keys)
        elif roll < 0.7 and mine:
            key = mine.pop(rng.randrange(len(mine)))
            journal.line(f"d data {key.hex()}")
            await data.delete(key)
            journal.line(f"D data {key.hex()}")
        else:
            keys = [fresh("t") for _ in range(rng.randint(2, 8))]
            tx = await ledger.begin_tx()
            for key in keys:
                await ledger.set(key, value_of(key), tx_id=tx)
            name = f"{gen}-{index}-{n}"
            journal.line(f"B {name} " + " ".join(k.hex() for k in keys))
            await ledger.commit_tx(tx)
            journal.line(f"T {name}")


async def _main(home: Path, journal_path: Path, gen: int, seed: int) -> None:
    journal = Journal(journal_path)
    readies = [anyio.Event() for _ in range(SENDERS)]

    def spawnable(index: int) -> Main:
        rng = random.Random(seed * 1000 + index)

        async def main(ctx: ProcessContext) -> None:
            try:
                await _writer(ctx, journal, gen, index, rng, readies[index])
            except Exception as exc:
                journal.line(f"E {writer_id(index)}: {exc!r}")
                raise

        return main

    async with Runtime(home=home, config=KvConfig()) as rt:
        handles = [
            await rt.spawn(writer_id(i), spawnable(i), request_capabilities=["kv:distro:sys"])
            for i in range(SENDERS)
        ]
        for event in readies:
            await event.wait()
        journal.line("READY")
        for handle in handles:
            await handle.wait()


if __name__ == "__main__":
    _home, _journal, _gen, _seed = sys.argv[1:5]
    anyio.run(_main, Path(_home), Path(_journal), int(_gen), int(_seed))
