"""Crash safety of keys with a TTL: SIGKILL a writer of them, restart, check.

A child (``ttl_crash_driver``) writes keys with and without a TTL until it is
killed; after every kill the db opens with LevelDB's paranoid checks, and at
the end:

- kv's records agree with the data, read raw from LevelDB: every deadline
  record has its index entry and its key, and every index entry its
  deadline record (the data and its deadline are one atomic write);
- through the client, every key whose last write was acknowledged (and no
  later one begun) is present or gone as acknowledged, with a TTL exactly
  when its last write gave it one.
"""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import plyvel

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.kvservice.reserved import DEADLINE, EXPIRY_INDEX, RESERVED
from tests.reliability.conftest import Figures
from tests.reliability.kill import kill_one_life
from tests.reliability.ttl_crash_driver import DB, PACKAGE


def _life(home: Path, journal: Path, rng: random.Random) -> None:
    """Run the driver once and SIGKILL it under load."""
    args = [str(home), str(journal), str(rng.randrange(2**31))]
    kill_one_life("ttl_crash_driver", args, journal, rng, under_load=(0.05, 0.4))


def _expected(journal: Path) -> dict[bytes, str]:
    """The acknowledged state of each key whose last write was acknowledged."""
    state: dict[bytes, str] = {}
    for line in journal.read_text().splitlines():
        kind, _, key = line.partition(" ")
        if kind == "READY":
            continue
        state[bytes.fromhex(key)] = kind  # "I": begun, not acknowledged
    return {key: kind for key, kind in state.items() if kind != "I"}


def _records_agree(path: Path) -> int:
    """Check kv's expiry records against the data, raw; how many keys have a TTL."""
    db = plyvel.DB(str(path), create_if_missing=False, paranoid_checks=True)
    try:
        data = {k for k, _ in db.iterator(stop=RESERVED)}
        deadlines = {
            k[len(DEADLINE) :]: v for k, v in db.iterator(prefix=DEADLINE, fill_cache=False)
        }
        index = {
            (k[len(EXPIRY_INDEX) + 8 :], k[len(EXPIRY_INDEX) : len(EXPIRY_INDEX) + 8])
            for k, _ in db.iterator(prefix=EXPIRY_INDEX, fill_cache=False)
        }
    finally:
        db.close()
    assert set(deadlines) <= data, "a deadline outlived its key"
    assert index == set(deadlines.items()), "the expiry index and the deadlines disagree"
    return len(deadlines)


async def _verify(home: Path, expected: dict[bytes, str]) -> None:
    problems: list[str] = []

    async def check(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PACKAGE, DB)
        for key, kind in sorted(expected.items()):
            if kind == "G":
                if await db.exists(key):
                    problems.append(f"{key!r}: an acknowledged delete undone")
                continue
            try:
                left = await db.ttl(key)
            except kv.KeyNotFound:
                problems.append(f"{key!r}: an acknowledged write lost")
                continue
            if (left is not None) != (kind == "A"):
                problems.append(f"{key!r}: ttl {left} after an acknowledged {kind}")

    async with Runtime(home=home) as rt:
        handle = await rt.spawn(f"w:{PACKAGE}", check, request_capabilities=["kv:distro:sys"])
        await handle.wait()
    assert not problems, problems[:20]


def test_sigkill_keeps_keys_and_their_deadlines_together(tmp_path: Path, figures: Figures) -> None:
    home, journal = tmp_path / "home", tmp_path / "journal"
    rng = random.Random(14)
    with_ttl = 0
    for _ in range(6):
        _life(home, journal, rng)
        with_ttl = _records_agree(home / "kv" / PACKAGE / DB)
    expected = _expected(journal)
    assert len(expected) >= 20, "too few acknowledged writes to mean anything"
    assert with_ttl > 0
    anyio.run(_verify, home, expected)
    figures.add("ttl crash: SIGKILLs survived", 6)
    figures.add("ttl crash: keys checked", len(expected))
