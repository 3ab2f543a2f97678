"""Change feeds survive SIGKILL: the log and the data agree, and a resumed watch
misses and repeats nothing.

Each life of ``watch_crash_driver`` runs writers and a watcher that resumes
strictly after the last change the previous lives journaled; the parent
SIGKILLs it under load. Then:

1. the db opened directly (LevelDB, paranoid checks): the change log holds
   seqs first..LAST_SEQ without a hole, and replaying it from nothing gives
   exactly the user data (a change is never on disk without its data, nor
   data without its change; the sweeper's "expire" removals included);
2. the watcher's journal, across every life, is seqs first..n in order, each
   once, and each line is the logged change at its seq;
3. a watch resumed through the client after the last kill yields exactly
   n+1..LAST_SEQ.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import anyio
import msgpack
import plyvel
import pytest

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.kvservice.reserved import CHANGE_LOG, LAST_SEQ, RESERVED
from tests.reliability.conftest import Figures
from tests.reliability.kill import kill_one_life
from tests.reliability.watch_crash_driver import CONFIG, PACKAGE, WATCHER, last_journaled


def _life(home: Path, journal: Path, rng: random.Random) -> None:
    """Run the driver once and SIGKILL it under load."""
    args = [str(home), str(journal), str(rng.randrange(2**31))]
    kill_one_life("watch_crash_driver", args, journal, rng, under_load=(0.05, 0.5))


def _read_db(
    path: Path,
) -> tuple[dict[bytes, bytes], dict[int, tuple[str, bytes, bytes | None]], int]:
    """The user data, the change log by seq, and LAST_SEQ, read with paranoid checks."""
    db = plyvel.DB(str(path), create_if_missing=False, paranoid_checks=True)
    try:
        data = dict(db.iterator(stop=RESERVED, verify_checksums=True))
        log: dict[int, tuple[str, bytes, bytes | None]] = {}
        for key, value in db.iterator(prefix=CHANGE_LOG, verify_checksums=True):
            kind, k, v = msgpack.unpackb(value, raw=False)
            log[int.from_bytes(key[len(CHANGE_LOG) :], "big")] = (kind, k, v)
        raw = db.get(LAST_SEQ)
        assert raw is not None, "a watched db holds its last seq"
        return data, log, int.from_bytes(raw, "big")
    finally:
        db.close()


def _journal(path: Path) -> list[tuple[int, str, bytes]]:
    out = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n") and line.startswith("C "):
            _, seq, kind, key = line.split()
            out.append((int(seq), kind, bytes.fromhex(key)))
    return out


def _crash_run(tmp_path: Path, kills: int, seed: int, figures: Figures) -> None:
    home, journal = tmp_path / "home", tmp_path / "journal"
    rng = random.Random(seed)
    for _ in range(kills):
        _life(home, journal, rng)
    data, log, last = _read_db(home / "kv" / PACKAGE / "feed")
    # 1. The log has no hole and replays to the data (the db was watched before
    # its first write: the log holds every change).
    first = min(log)
    assert sorted(log) == list(range(first, last + 1))
    replayed: dict[bytes, bytes] = {}
    for seq in range(first, last + 1):
        _kind, key, value = log[seq]
        if value is None:
            replayed.pop(key, None)
        else:
            replayed[key] = value
    assert replayed == data
    # The sweeper's removals were among them, each in the write that removed its key.
    assert any(kind == "expire" for kind, _, _ in log.values()), "no key expired in the run"
    # 2. The watcher, across lives: every change once, in order, as logged.
    seen = _journal(journal)
    assert [seq for seq, _, _ in seen] == list(range(first, first + len(seen)))
    assert all(log[seq][:2] == (kind, key) for seq, kind, key in seen)
    assert len(seen) > kills, "too few changes watched to mean anything"
    # 3. Resumed after the last kill, through the client: exactly what follows.
    since = last_journaled(journal)

    async def resume() -> list[int]:
        async with Runtime(home=home, config=CONFIG) as rt:

            async def watcher(ctx: ProcessContext) -> list[int]:
                db = await kv.open(ctx, PACKAGE, "feed")
                seqs: list[int] = []
                if since == last:
                    return seqs
                async with db.watch(since=since) as changes:
                    with anyio.fail_after(30):
                        async for change in changes:
                            seqs.append(change.seq)
                            if change.seq == last:
                                break
                return seqs

            result: list[list[int]] = []

            async def main(ctx: ProcessContext) -> None:
                result.append(await watcher(ctx))

            handle = await rt.spawn(WATCHER, main, request_capabilities=["kv:distro:sys"])
            await handle.wait()
            return result[0]

    assert anyio.run(resume) == list(range(since + 1, last + 1))
    figures.add("watch crash: SIGKILLs survived", kills)
    figures.add("watch crash: changes replayed against the data", last - first + 1)
    figures.add("watch crash: changes the watcher saw across lives", len(seen))


def test_sigkill_under_writes_keeps_log_and_data_in_agreement(
    tmp_path: Path, figures: Figures
) -> None:
    _crash_run(tmp_path, kills=6, seed=int(os.environ.get("KV_CRASH_SEED", "5")), figures=figures)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_watch_sigkill_soak(tmp_path: Path, figures: Figures) -> None:
    _crash_run(tmp_path, kills=60, seed=int(time.time()), figures=figures)
