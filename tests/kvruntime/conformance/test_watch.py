"""Change feeds (issue 14) on every engine that has them, through the client.

``db.watch`` yields every change of every write path, in commit order, one
per key; resumes strictly after a seq (after a restart too, on an engine
that persists); answers ``WatchCompacted`` past the retained log, ends with
``WatchEnded`` on RemoveDb or Revoke, and is bounded per process. Keys
with a TTL: a write with one is a "set", the sweeper's removal an "expire"
(deadlines on the FakeClock, swept by hand, as in test_ttl.py). kv's own
records are read through ``in_store`` (in a worker thread, where every
engine's store answers, the networked one too).
"""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from kvruntime.kvservice.reserved import CHANGE_LOG, LAST_SEQ, RESERVED
from protocol.ids import PackageId, ProcessId
from tests.conftest import FakeClock, run_as
from tests.internals import in_store, kv_of, store_of, sweep_expired

from .conftest import ENGINES, PERSISTS

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
OTHER = "other:app:pub.os"
PKG = PackageId.parse("app:pub.os")


@pytest.fixture
def config() -> KvConfig:
    """Small windows and a short log, so that every bound is cheap to reach."""
    return KvConfig(
        max_key_bytes=32,
        max_value_bytes=128,
        max_batch_items=8,
        watch_log_entries=40,
        watch_window_items=4,
        max_watches_per_process=3,
        expiry_sweep_keys=2,
        expiry_sweep_seconds=3600.0,  # swept by hand (sweep_expired), on the FakeClock
    )


async def _take(changes: kv.Changes[bytes, bytes], n: int) -> list[tuple[str, bytes, bytes | None]]:
    out: list[tuple[str, bytes, bytes | None]] = []
    with anyio.fail_after(10):
        async for change in changes:
            out.append((change.kind, change.key, change.value))
            if len(out) == n:
                break
    return out


async def test_every_write_path_logs_its_changes_in_commit_order(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"before", b"0")  # before the watch: not seen
        async with db.watch() as changes:
            await db.set(b"a", b"1")
            await db.delete(b"a")
            await db.set_many([(b"b", b"2"), (b"c", b"3")])
            await db.delete_many([b"b"])
            await db.write_batch([(b"d", b"4"), (b"c", None)])
            tx_id = await db.begin_tx()
            await db.set(b"e", b"5", tx_id=tx_id)
            await db.commit_tx(tx_id)
            async with db.transaction() as tx:  # pipelined: one CommitBatch
                tx.set(b"f", b"6")
            assert await db.increment(b"n", 2) == 2
            await db.compare_and_swap(b"n", b"2", b"7")
            assert await db.delete_range(prefix=b"d") == 1
            got = await _take(changes, 12)
            assert got == [
                ("set", b"a", b"1"),
                ("delete", b"a", None),
                ("set", b"b", b"2"),
                ("set", b"c", b"3"),
                ("delete", b"b", None),
                ("set", b"d", b"4"),
                ("delete", b"c", None),
                ("set", b"e", b"5"),
                ("set", b"f", b"6"),
                ("set", b"n", b"2"),
                ("set", b"n", b"7"),
                ("delete", b"d", None),
            ]
            assert changes.position == changes.start + 12

    await run_as(runtime, APP, body)


async def test_seqs_increase_and_a_watch_resumes_strictly_after_since(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        async with db.watch() as changes:
            for i in range(10):
                await db.set(b"k%d" % i, b"%d" % i)
            seqs = []
            with anyio.fail_after(10):
                async for change in changes:
                    seqs.append(change.seq)
                    if len(seqs) == 10:
                        break
        assert seqs == list(range(seqs[0], seqs[0] + 10))
        async with db.watch(since=seqs[4]) as again:
            assert [key for _, key, _ in await _take(again, 5)] == [
                b"k%d" % i for i in range(5, 10)
            ]

    await run_as(runtime, APP, body)


async def test_prefix_and_range_filters(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        async with db.watch(prefix=b"user:") as users, db.watch(start=b"b", end=b"d") as mid:
            for key in [b"a", b"user:1", b"b", b"c", b"d", b"user:2", b"zz"]:
                await db.set(key, b"v")
            assert [k for _, k, _ in await _take(users, 2)] == [b"user:1", b"user:2"]
            assert [k for _, k, _ in await _take(mid, 2)] == [b"b", b"c"]

    await run_as(runtime, APP, body)


async def test_compacted_log_answers_watch_compacted_with_the_oldest_held(
    runtime: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        async with db.watch() as changes:
            start = changes.start
            for i in range(0, 60, 6):  # 60 changes, 40 retained
                await db.set_many([(b"k%d" % (i + j), b"v") for j in range(6)])
            with pytest.raises(kv.WatchCompacted) as caught:
                await _take(changes, 1)
        assert caught.value.oldest == start + 21
        assert caught.value.last == start + 60
        with pytest.raises(kv.WatchCompacted):
            async with db.watch(since=start + 5):
                pass
        with pytest.raises(kv.WatchCompacted):  # a position the db never reached
            async with db.watch(since=start + 1000):
                pass
        async with db.watch(since=start + 20) as held:  # the oldest held follows
            assert len(await _take(held, 40)) == 40

    await run_as(runtime, APP, body)


async def test_snapshot_and_changes_give_the_data_with_no_gap_and_no_repeat(
    runtime: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        for i in range(8):
            await db.set(b"k%d" % i, b"0")
        done = anyio.Event()

        async def writer() -> None:
            for round_ in range(1, 4):  # 27 changes: within the retained 40
                for i in range(8):
                    await db.set(b"k%d" % i, b"%d" % round_)
                await db.delete(b"k%d" % round_)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer)
            await anyio.lowlevel.checkpoint()
            async with db.watch(snapshot=True) as changes:
                mirror = dict(changes.snapshot)
                seen: list[int] = []
                await done.wait()
                last = await _last_seq(db)
                with anyio.fail_after(10):
                    while changes.position < last:
                        change = await changes.__anext__()
                        seen.append(change.seq)
                        if change.value is None:
                            mirror.pop(change.key, None)
                        else:
                            mirror[change.key] = change.value
        assert seen == sorted(set(seen))  # in order, none twice
        assert mirror == {k: v async for k, v in db.scan()}

    await run_as(runtime, APP, body)


async def _last_seq(db: kv.Kv[bytes, bytes]) -> int:
    async with db.watch() as probe:
        return probe.start


async def test_remove_db_ends_its_watches(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "gone")
        async with db.watch() as changes, anyio.create_task_group() as tg:

            async def remove_soon() -> None:
                await anyio.sleep(0.05)
                await kv.remove_db(ctx, PKG, "gone")

            tg.start_soon(remove_soon)
            with anyio.fail_after(10), pytest.raises(kv.WatchEnded, match="removed"):
                await _take(changes, 1)

    await run_as(runtime, APP, body)


async def test_revoke_ends_the_watches_of_the_revoked_process(runtime: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.share(ProcessId.parse(OTHER))

    await run_as(runtime, APP, owner)
    ended = anyio.Event()

    async def watcher(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "main")
        async with db.watch() as changes:
            with anyio.fail_after(10), pytest.raises(kv.WatchEnded, match="revoked"):
                await _take(changes, 1)
        ended.set()

    async def revoker(ctx: ProcessContext) -> None:
        await anyio.sleep(0.1)
        await kv.handle(ctx, PKG, "main").revoke(ProcessId.parse(OTHER))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_as, runtime, OTHER, watcher)
        tg.start_soon(run_as, runtime, APP, revoker)
    assert ended.is_set()


async def test_read_capability_required(runtime: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        await kv.open(ctx, PKG, "main")

    async def stranger(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoReadCap):
            async with kv.handle(ctx, PKG, "main").watch():
                pass

    await run_as(runtime, APP, owner)
    await run_as(runtime, OTHER, stranger)


async def test_watches_per_process_are_bounded(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        async with db.watch(), db.watch(), db.watch():
            with pytest.raises(kv.TooManyWatches, match="at most 3"):
                async with db.watch():
                    pass
        async with db.watch():  # the ended ones freed their places
            pass

    await run_as(runtime, APP, body)
    assert len(kv_of(runtime).feeds) == 0


async def test_a_watcher_that_stops_reading_costs_kv_nothing_and_catches_up(
    runtime: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        async with db.watch() as changes:
            first = await _take_one_after(db, changes)
            for i in range(30):  # the watcher does not read meanwhile
                await db.set(b"k%d" % i, b"%d" % i)
            # kv holds no change for it: only its cursor (no request is parked).
            (state,) = kv_of(runtime).feeds.watches_of((PKG, "main"))
            assert state.parked is None
            got = await _take(changes, 30)
        assert first == ("set", b"first", b"1")
        assert got == [("set", b"k%d" % i, b"%d" % i) for i in range(30)]

    await run_as(runtime, APP, body)


async def test_a_parked_watcher_woken_by_a_write_of_many_changes_gets_them_all(
    runtime: Runtime,
) -> None:
    """One DeleteRange of 20 keys logs more changes than a networked engine keeps in
    memory (4 windows of 4): the parked watcher catches up from the log."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        keys = [b"k%02d" % i for i in range(20)]
        for i in range(0, 20, 4):
            await db.set_many([(key, b"v") for key in keys[i : i + 4]])
        async with db.watch() as changes, anyio.create_task_group() as tg:
            got: list[tuple[str, bytes, bytes | None]] = []

            async def take() -> None:
                got.extend(await _take(changes, 20))

            tg.start_soon(take)
            with anyio.fail_after(10):
                while not any(w.parked for w in kv_of(runtime).feeds.watches_of((PKG, "main"))):  # noqa: ASYNC110  # kv offers no event
                    await anyio.sleep(0.001)
            assert await db.delete_range(prefix=b"k") == 20
        assert got == [("delete", key, None) for key in keys]

    await run_as(runtime, APP, body)


async def _take_one_after(
    db: kv.Kv[bytes, bytes], changes: kv.Changes[bytes, bytes]
) -> tuple[str, bytes, bytes | None]:
    await db.set(b"first", b"1")
    (one,) = await _take(changes, 1)
    return one


async def test_a_db_never_watched_writes_no_log(runtime: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"a", b"1")
        await db.set_many([(b"b", b"2")])

    await run_as(runtime, APP, body)
    assert await in_store(runtime, PKG, "main", lambda s: s.get(LAST_SEQ)) is None
    assert await in_store(runtime, PKG, "main", lambda s: list(s.iterate(prefix=CHANGE_LOG))) == []


@pytest.mark.parametrize("storage", [e for e in ENGINES if PERSISTS[e]], indirect=True)
async def test_a_watch_resumes_after_a_restart(home: Path, config: KvConfig, storage: str) -> None:
    """On the engines that persist (for Redis, one namespace for both runtimes);
    the log state is read again after the restart."""
    async with Runtime(home=home, config=config, storage=storage) as rt:

        async def before(ctx: ProcessContext) -> int:
            db = await kv.open(ctx, PKG, "main")
            async with db.watch() as changes:
                await db.set(b"a", b"1")
                await db.set(b"b", b"2")
                await _take(changes, 1)
                return changes.position

        position = await run_as(rt, APP, before)
    async with Runtime(home=home, config=config, storage=storage) as rt:

        async def after(ctx: ProcessContext) -> list[tuple[str, bytes, bytes | None]]:
            db = await kv.open(ctx, PKG, "main")
            await db.set(b"c", b"3")  # written after the restart: logged too
            async with db.watch(since=position) as changes:
                return await _take(changes, 2)

        assert await run_as(rt, APP, after) == [("set", b"b", b"2"), ("set", b"c", b"3")]


async def test_a_dbs_log_state_is_read_when_it_is_opened_not_inline_later(
    home: Path, config: KvConfig
) -> None:
    """Opening a db (Open, or a request reopening one on disk) reads its log state
    in the open's worker thread: its first write or watch reads nothing inline
    (what an engine that cannot read inline needs; LevelDB, which persists)."""
    async with Runtime(home=home, config=config, storage="leveldb") as rt:

        async def before(ctx: ProcessContext) -> int:
            watched = await kv.open(ctx, PKG, "watched")
            await kv.open(ctx, PKG, "plain")
            async with watched.watch() as changes:
                await watched.set(b"a", b"1")
                await _take(changes, 1)
                return changes.position

        position = await run_as(rt, APP, before)
    async with Runtime(home=home, config=config, storage="leveldb") as rt:

        async def after(ctx: ProcessContext) -> None:
            await kv.open(ctx, PKG, "watched")  # Open: the db is opened in a thread
            plain = kv.handle(ctx, PKG, "plain")
            assert await plain.exists(b"x") is False  # a request reopening it from disk

        await run_as(rt, APP, after)
        logs = kv_of(rt).feeds.logs
        watched, plain = store_of(rt, PKG, "watched"), store_of(rt, PKG, "plain")
        assert watched in logs
        assert plain in logs
        log = logs[watched]
        assert log is not None
        assert log.last == position
        assert len(log.sizes) == 1
        assert logs[plain] is None  # never watched: known not logged


async def test_keys_with_a_ttl_log_set_then_expire_when_the_sweeper_removes_them(
    runtime: Runtime, clock: FakeClock
) -> None:
    """A write with a TTL is a "set"; Expire and Persist change only a deadline and
    log nothing; a read of an expired key logs nothing; the sweeper's removal is
    an "expire" change (no value), in its own write."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        async with db.watch() as changes:
            await db.set(b"session:1", b"t1", ttl=30.0)
            await db.set_many([(b"session:2", b"t2"), (b"session:3", b"t3")], ttl=10.0)
            async with db.transaction() as tx:
                tx.set(b"lease", b"me", ttl=5.0)
            await db.expire(b"session:1", 10.0)  # a new deadline: no change
            await db.persist(b"session:3")  # no deadline any more: no change
            await db.set(b"mark", b"1")
            assert await _take(changes, 5) == [
                ("set", b"session:1", b"t1"),
                ("set", b"session:2", b"t2"),
                ("set", b"session:3", b"t3"),
                ("set", b"lease", b"me"),
                ("set", b"mark", b"1"),
            ]
            clock.advance(10)  # session:1, session:2 and the lease are due
            assert await db.get_many([b"session:1", b"session:2", b"lease"]) == [None] * 3
            assert not await db.exists(b"session:1")
            await db.set(b"mark", b"2")  # the reads above logged nothing
            assert await _take(changes, 1) == [("set", b"mark", b"2")]
            got = await _swept_while_parked(runtime, changes, 3)
            assert sorted(got) == [
                ("expire", b"lease", None),
                ("expire", b"session:1", None),
                ("expire", b"session:2", None),
            ]
            # Each in the write that removed its key: log and data agree.
            data = await in_store(runtime, PKG, "main", lambda s: list(s.iterate(stop=RESERVED)))
            assert [k for k, _ in data] == [b"mark", b"session:3"]
            await db.set(b"mark", b"3")
            assert await _take(changes, 1) == [("set", b"mark", b"3")]  # no spurious one

    await run_as(runtime, APP, body)


async def _swept_while_parked(
    rt: Runtime, changes: kv.Changes[bytes, bytes], n: int
) -> list[tuple[str, bytes, bytes | None]]:
    """Sweep (steps of 2) while the watcher's WatchNext waits at kv: the sweep wakes it."""
    got: list[tuple[str, bytes, bytes | None]] = []

    async def take() -> None:
        got.extend(await _take(changes, n))

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        with anyio.fail_after(10):
            while not any(w.parked for w in kv_of(rt).feeds.watches_of((PKG, "main"))):  # noqa: ASYNC110  # kv offers no event
                await anyio.sleep(0.001)
        swept = [await sweep_expired(rt) for _ in range(3)]
    assert swept == [2, 1, 0]  # steps of expiry_sweep_keys
    return got


async def test_a_commit_that_removes_expired_keys_logs_their_expire(
    runtime: Runtime, clock: FakeClock
) -> None:
    """At a commit kv removes the db's expired keys first (an expiry is a write to
    the conflict check): those removals are "expire" changes too."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"old", b"v", ttl=1.0)
        async with db.watch() as changes:
            clock.advance(2)
            async with db.transaction() as tx:
                assert await tx.get(b"other", None) is None
                tx.set(b"new", b"n")
            assert await _take(changes, 2) == [("expire", b"old", None), ("set", b"new", b"n")]

    await run_as(runtime, APP, body)


async def test_a_user_write_that_reaches_an_expired_key_first_is_its_only_change(
    runtime: Runtime, clock: FakeClock
) -> None:
    """The "expire" change is kv's removal; a user write that reaches an expired
    key first is that write's change, and no "expire" follows."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        async with db.watch() as changes:
            await db.set_many([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], ttl=1.0)
            clock.advance(1)
            await db.set(b"a", b"again")
            await db.delete(b"b")
            assert await db.delete_range(prefix=b"c") == 0  # expired: it was absent
            assert await sweep_expired(runtime) == 0
            await db.set(b"mark", b"1")
            assert await _take(changes, 7) == [
                ("set", b"a", b"1"),
                ("set", b"b", b"2"),
                ("set", b"c", b"3"),
                ("set", b"a", b"again"),
                ("delete", b"b", None),
                ("delete", b"c", None),
                ("set", b"mark", b"1"),
            ]

    await run_as(runtime, APP, body)


async def test_kv_records_never_show_in_a_watch_a_snapshot_or_a_scan(
    runtime: Runtime, clock: FakeClock
) -> None:
    """The change log and the expiry records share the reserved keyspace: a watch
    shows no deadline, a snapshot no expired key nor record, a scan no log record."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "main")
        await db.set(b"gone", b"1", ttl=1.0)
        await db.set(b"kept", b"2", ttl=60.0)
        await db.set(b"plain", b"3")
        async with db.watch() as changes:
            await db.set(b"kept", b"4", ttl=60.0)
            await db.delete(b"plain")
            assert await _take(changes, 2) == [("set", b"kept", b"4"), ("delete", b"plain", None)]
        clock.advance(1)
        async with db.watch(snapshot=True) as again:
            assert dict(again.snapshot) == {b"kept": b"4"}
        assert [k async for k, _ in db.scan()] == [b"kept"]
        assert [k async for k in db.keys(reverse=True)] == [b"kept"]
        assert await db.delete_range() == 1
        # DeleteRange left kv's records alone.
        assert await in_store(runtime, PKG, "main", lambda s: s.get(LAST_SEQ)) is not None
        assert await in_store(runtime, PKG, "main", lambda s: list(s.iterate(prefix=CHANGE_LOG)))

    await run_as(runtime, APP, body)


async def test_a_since_of_a_removed_db_is_never_a_position_of_its_successor(
    runtime: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "again")
        async with db.watch() as changes:
            for i in range(5):
                await db.set(b"k%d" % i, b"old")
            await _take(changes, 5)
            old = changes.position
        await kv.remove_db(ctx, PKG, "again")
        db = await kv.open(ctx, PKG, "again")
        async with db.watch() as fresh:
            assert fresh.start > old  # the new db's seqs start above the old one's
        with pytest.raises(kv.WatchCompacted):
            async with db.watch(since=old):
                pass

    await run_as(runtime, APP, body)
