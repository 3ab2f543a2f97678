"""Crash safety: SIGKILL a runtime under write load, restart it, lose nothing acknowledged.

A child process (``crash_driver``) runs a Runtime with several writers and
journals every acknowledgement; this test kills it at random moments (now
during start-up, now under full load), restarts it on the same home, and at
the end checks through the client, as the writers themselves:

- every acknowledged set is there with its value, every acknowledged delete
  is gone;
- every transaction is all or nothing, and every acknowledged one is all;
- every db (and the capability store) opens with LevelDB's paranoid checks,
  without repair;
- capabilities survive: writers read their dbs through handles without
  opening them again, and a process of another package that was shared
  read access once still reads.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import anyio
import attrs
import plyvel
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from tests.reliability.conftest import Figures
from tests.reliability.crash_driver import PACKAGE, READER, value_of, writer_id
from tests.reliability.kill import kill_one_life


@attrs.define
class Journal:
    """What the children said they did, parsed."""

    acked: set[bytes] = attrs.Factory(set)
    deleting: set[bytes] = attrs.Factory(set)
    deleted: set[bytes] = attrs.Factory(set)
    txs: dict[str, list[bytes]] = attrs.Factory(dict)
    committed: set[str] = attrs.Factory(set)
    shared: bool = False
    errors: list[str] = attrs.Factory(list)

    @classmethod
    def read(cls, path: Path) -> Journal:
        """Parse the complete lines of ``path``."""
        journal = cls()
        text = path.read_text() if path.exists() else ""
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # cannot happen with one write(2) a line, but never trust half a line
            kind, *rest = line.split()
            match kind:
                case "S":
                    journal.acked.add(bytes.fromhex(rest[1]))
                case "d":
                    journal.deleting.add(bytes.fromhex(rest[1]))
                case "D":
                    journal.deleted.add(bytes.fromhex(rest[1]))
                case "B":
                    journal.txs[rest[0]] = [bytes.fromhex(k) for k in rest[1:]]
                case "T":
                    journal.committed.add(rest[0])
                case "H":
                    journal.shared = True
                case "E":
                    journal.errors.append(line)
                case "READY":
                    pass
                case _:
                    raise AssertionError(f"unknown journal line {line!r}")
        return journal


def _life(home: Path, journal: Path, gen: int, rng: random.Random) -> None:
    """Run the driver once and SIGKILL it: under load, or one time in five during start-up
    (opening dbs, granting capabilities)."""
    args = [str(home), str(journal), str(gen), str(rng.randrange(2**31))]
    kill_one_life("crash_driver", args, journal, rng, under_load=(0.02, 0.6), at_start=0.2)


def _paranoid_open(path: Path) -> None:
    """Open a LevelDB with every check on and no repair; raises if it is damaged."""
    db = plyvel.DB(str(path), create_if_missing=False, paranoid_checks=True)
    try:
        for _ in db.iterator(fill_cache=False, verify_checksums=True):
            pass
    finally:
        db.close()


async def _verify(home: Path, journal: Journal) -> int:
    """Check the home against the journal through the client; return writes verified."""
    verified = 0
    problems: list[str] = []

    async def as_writer(ctx: ProcessContext) -> None:
        nonlocal verified
        data = kv.handle(ctx, PACKAGE, "data")  # no open: the capability must have survived
        ledger = kv.handle(ctx, PACKAGE, "ledger")
        for key in journal.acked | journal.deleting:
            value = await data.get(key, None)
            if key in journal.deleted:
                if value is not None:
                    problems.append(f"acknowledged delete of {key!r} undone")
            elif value is not None and value != value_of(key):
                problems.append(f"{key!r} holds a wrong value")
            elif value is None and key not in journal.deleting:
                problems.append(f"acknowledged set of {key!r} lost")
            verified += 1
        for name, keys in journal.txs.items():
            present = [await ledger.get(key, None) for key in keys]
            found = sum(v is not None for v in present)
            if name in journal.committed and found != len(keys):
                problems.append(f"committed transaction {name} has {found}/{len(keys)} keys")
            elif found not in (0, len(keys)):
                problems.append(f"transaction {name} half applied: {found}/{len(keys)}")
            if any(v is not None and v != value_of(k) for k, v in zip(keys, present, strict=True)):
                problems.append(f"transaction {name} wrote wrong values")
            verified += len(keys) if name in journal.committed else 0

    async def as_reader(ctx: ProcessContext) -> None:
        data = kv.handle(ctx, PACKAGE, "data")
        for key in sorted(journal.acked - journal.deleting)[:200]:
            assert await data.get(key) == value_of(key)
        with pytest.raises(kv.NoWriteCap):
            await data.set(b"reader", b"never")

    async with Runtime(home=home, config=KvConfig()) as rt:
        for main, pid in [(as_writer, writer_id(0)), (as_reader, READER)]:
            handle = await rt.spawn(pid, main, request_capabilities=["kv:distro:sys"])
            await handle.wait()
    assert not problems, problems[:20]
    return verified


def _crash_run(tmp_path: Path, kills: int, seed: int, figures: Figures) -> None:
    home, journal_path = tmp_path / "home", tmp_path / "journal"
    rng = random.Random(seed)
    for gen in range(kills):
        _life(home, journal_path, gen, rng)
        # Nothing may refuse to open after a kill: no repair, ever.
        for db in (home / "kv" / PACKAGE).iterdir():
            _paranoid_open(db)
        _paranoid_open(home / "kernel" / "capabilities")
    journal = Journal.read(journal_path)
    assert not journal.errors, journal.errors[:5]
    assert journal.shared, "generation 0 never got to share; raise the kill delays"
    assert len(journal.committed) >= kills, "too few transactions committed to mean anything"
    verified = anyio.run(_verify, home, journal)
    figures.add("crash: SIGKILLs survived", kills)
    figures.add("crash: acknowledged writes verified", verified)
    figures.add("crash: transactions checked all-or-nothing", len(journal.txs))


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path, figures: Figures) -> None:
    _crash_run(tmp_path, kills=10, seed=int(os.environ.get("KV_CRASH_SEED", "5")), figures=figures)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_soak(tmp_path: Path, figures: Figures) -> None:
    _crash_run(tmp_path, kills=200, seed=int(time.time()), figures=figures)
