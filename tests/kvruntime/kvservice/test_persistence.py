"""What lives on disk: restarts, removal, the LRU of open dbs, and broken stores."""

from __future__ import annotations

from pathlib import Path

import anyio
import plyvel
import pytest

from kvruntime import KvConfig, ProcessContext, Response, Runtime, kv
from kvruntime.kvservice.access import kv_capability
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import (
    AddCapFailed,
    ErrResponse,
    Get,
    KvAction,
    KvRequest,
    LevelDbError,
    NoDb,
    OkResponse,
    Open,
    RemoveDb,
    Set,
)
from tests.conftest import run_as
from tests.internals import caps_of, kv_of

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")
SIBLING = "sibling:app:pub.os"
READER = "reader:other:pub.os"


@pytest.fixture
def config() -> KvConfig:
    """At most two dbs open at once, so the LRU is exercised."""
    return KvConfig(max_open_dbs=2)


def db_dir(home: Path, db: str) -> Path:
    """Where ``db`` of PKG lives."""
    return home / "kv" / str(PKG) / db


def kv_caps_of(ctx: ProcessContext) -> set[str]:
    """The db capabilities (not the messaging one) ``ctx``'s process holds, as their params."""
    return {
        c.params
        for c in ctx.capabilities()
        if c.issuer.process == KV_PROCESS_ID and "db_key" in c.params
    }


# --- restart ------------------------------------------------------------------------


async def test_data_and_capabilities_survive_a_restart(home: Path, config: KvConfig) -> None:
    async def first_run(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, PKG, "db")
        for i in range(100):
            await db.set(b"%d" % i, b"value %d" % i)
        tx = await db.begin_tx()
        await db.set(b"tx", b"committed", tx_id=tx)
        await db.commit_tx(tx)
        await db.delete(b"0")
        await db.share(READER)
        pending = await db.begin_tx()
        await db.set(b"pending", b"never committed", tx_id=pending)
        return pending

    async with Runtime(home=home, config=config) as rt:
        pending = await run_as(rt, APP, first_run)

    async def owner(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "db")  # no Open: the capabilities were kept
        for i in range(1, 100):
            assert await db.get(b"%d" % i) == b"value %d" % i
        assert not await db.exists(b"0")
        assert await db.get(b"tx") == b"committed"
        assert not await db.exists(b"pending")
        with pytest.raises(kv.NoTx):
            await db.commit_tx(pending)
        await db.set(b"second run", b"yes")

    async def reader(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "db")
        assert await db.get(b"50") == b"value 50"
        with pytest.raises(kv.NoWriteCap):
            await db.set(b"50", b"x")

    async def sibling(ctx: ProcessContext) -> None:  # never opened it: still nothing
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, PKG, "db").get(b"50")

    for _ in range(2):
        async with Runtime(home=home, config=config) as rt:
            await run_as(rt, READER, reader)
            await run_as(rt, APP, owner)
            await run_as(rt, SIBLING, sibling)


# --- removal ------------------------------------------------------------------------


async def test_remove_db_deletes_closes_revokes_and_drops_transactions(
    rt: Runtime, home: Path
) -> None:
    async def setup(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, PKG, "db")
        await db.set(b"k", b"v")
        await db.share(READER)
        tx = await db.begin_tx()
        await db.set(b"staged", b"x", tx_id=tx)
        return tx

    async def reader_before(ctx: ProcessContext) -> None:
        assert await kv.handle(ctx, PKG, "db").get(b"k") == b"v"
        assert len(kv_caps_of(ctx)) == 1

    tx = await run_as(rt, APP, setup)
    await run_as(rt, SIBLING, lambda ctx: kv.open(ctx, PKG, "db"))
    await run_as(rt, READER, reader_before)
    assert (db_dir(home, "db") / "CURRENT").is_file()

    async def remove(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "db")
        await kv.remove_db(ctx, PKG, "db")
        assert not kv_caps_of(ctx)
        for attempt in (db.get(b"k"), db.exists(b"k"), db.set(b"k", b"v"), db.commit_tx(tx)):
            with pytest.raises(kv.NoDb) as caught:
                await attempt
            assert caught.value.error == NoDb(package_id=PKG, db="db")
        with pytest.raises(kv.NoDb):
            await kv.remove_db(ctx, PKG, "db")

    async def reader_after(ctx: ProcessContext) -> None:
        assert not kv_caps_of(ctx)
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, PKG, "db").get(b"k")

    async def sibling_after(ctx: ProcessContext) -> None:
        assert not kv_caps_of(ctx)
        with pytest.raises(kv.NoDb):
            await kv.handle(ctx, PKG, "db").get(b"k")

    await run_as(rt, APP, remove)
    await run_as(rt, READER, reader_after)
    await run_as(rt, SIBLING, sibling_after)
    assert not db_dir(home, "db").exists()  # and no request re-created it

    async def reopen(ctx: ProcessContext) -> None:
        # Open succeeds on the same path: the old handle (and its LOCK) was closed.
        db = await kv.open(ctx, PKG, "db")
        assert not await db.exists(b"k")
        assert not await db.exists(b"staged")
        with pytest.raises(kv.NoTx):
            await db.commit_tx(tx)  # the transaction went with the db

    await run_as(rt, APP, reopen)
    await run_as(rt, READER, reader_after)  # a new db with the old name shares nothing


async def test_remove_in_the_middle_of_a_batch_keeps_request_order(rt: Runtime, home: Path) -> None:
    async def body(ctx: ProcessContext) -> list[Response]:
        await kv.open(ctx, PKG, "db")
        actions: list[tuple[KvAction, bytes | None]] = [
            (Set(key=b"a", tx_id=None), b"1"),
            (Set(key=b"b", tx_id=None), b"2"),
            (RemoveDb(), None),
            (Get(key=b"a"), None),
            (Set(key=b"c", tx_id=None), b"3"),
        ]
        for action, blob in actions:
            body = encode_request(KvRequest(package_id=PKG, db="db", action=action))
            await ctx.send(KV_PROCESS_ID, body, blob=blob, expects_response=5)
        answers = []
        for _ in actions:
            with anyio.fail_after(5):
                message = await ctx.receive()
            assert isinstance(message, Response)
            answers.append(message)
        return answers

    answers = await run_as(rt, APP, body)
    nodb = ErrResponse(error=NoDb(package_id=PKG, db="db"))
    assert [decode_response(a.body) for a in answers] == [OkResponse()] * 3 + [nodb] * 2
    assert not db_dir(home, "db").exists()


async def test_removal_survives_a_restart(home: Path, config: KvConfig) -> None:
    async def setup(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        await db.set(b"k", b"v")
        await db.share(READER)
        await kv.remove_db(ctx, PKG, "db")

    async with Runtime(home=home, config=config) as rt:
        await run_as(rt, APP, setup)

    async def owner(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoDb):
            await kv.handle(ctx, PKG, "db").get(b"k")

    async def reader(ctx: ProcessContext) -> None:
        assert not kv_caps_of(ctx)
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, PKG, "db").get(b"k")

    async with Runtime(home=home, config=config) as rt:
        await run_as(rt, APP, owner)
        await run_as(rt, READER, reader)
    assert not db_dir(home, "db").exists()


# --- the LRU of open dbs -------------------------------------------------------------


async def test_more_dbs_than_may_be_open_keep_every_value(rt: Runtime) -> None:
    names = [f"db{i}" for i in range(5)]

    async def body(ctx: ProcessContext) -> None:
        dbs = [await kv.open(ctx, PKG, name) for name in names]
        tx = await dbs[0].begin_tx()  # outlives the eviction of its db
        for round_ in range(4):
            for i, db in enumerate(dbs):
                await db.set(b"round %d" % round_, b"%d in db%d" % (round_, i))
                if round_:
                    assert await db.get(b"round %d" % (round_ - 1)) == b"%d in db%d" % (
                        round_ - 1,
                        i,
                    )
            await dbs[0].set(b"tx %d" % round_, b"staged", tx_id=tx)
        await dbs[0].commit_tx(tx)
        for i, db in enumerate(dbs):
            for round_ in range(4):
                assert await db.get(b"round %d" % round_) == b"%d in db%d" % (round_, i)
        assert [await dbs[0].get(b"tx %d" % r) for r in range(4)] == [b"staged"] * 4

    await run_as(rt, APP, body)
    assert sum(kv_of(rt).dbs.get(PKG, name) is not None for name in names) <= 2

    async def remove_evicted(ctx: ProcessContext) -> None:
        await kv.remove_db(ctx, PKG, "db1")  # closed by now: evicted long ago
        with pytest.raises(kv.NoDb):
            await kv.handle(ctx, PKG, "db1").get(b"round 0")
        assert await kv.handle(ctx, PKG, "db4").get(b"round 3") == b"3 in db4"

    assert kv_of(rt).dbs.get(PKG, "db1") is None
    await run_as(rt, APP, remove_evicted)
    assert not db_dir(rt.home, "db1").exists()


# --- broken stores ------------------------------------------------------------------


async def test_a_locked_or_corrupt_db_answers_a_store_error_and_others_go_on(
    home: Path, config: KvConfig
) -> None:
    async def setup(ctx: ProcessContext) -> None:
        for name in ("locked", "corrupt", "fine"):
            await (await kv.open(ctx, PKG, name)).set(b"k", name.encode())

    async with Runtime(home=home, config=config) as rt:
        await run_as(rt, APP, setup)
    (db_dir(home, "corrupt") / "CURRENT").write_text("MANIFEST-999999\n")
    intruder = plyvel.DB(str(db_dir(home, "locked")))  # another program holds the db

    async def body(ctx: ProcessContext) -> None:
        with pytest.raises(kv.IoError, match=r"^IO error: \[app:pub.os, locked\] lock") as io:
            await kv.handle(ctx, PKG, "locked").get(b"k")
        assert str(home) not in str(io.value)  # the error does not reveal where home is
        with pytest.raises(kv.LevelDbError, match=r"^LevelDB internal error: .*Corruption"):
            await kv.handle(ctx, PKG, "corrupt").get(b"k")
        get = encode_request(KvRequest(package_id=PKG, db="corrupt", action=Get(key=b"k")))
        message = await ctx.send_and_await_response(KV_PROCESS_ID, get, metadata="m")
        answer = decode_response(message.body)
        assert isinstance(answer, ErrResponse)
        assert isinstance(answer.error, LevelDbError)
        assert "Corruption" in answer.error.message
        assert message.metadata is None
        assert await kv.handle(ctx, PKG, "fine").get(b"k") == b"fine"
        intruder.close()
        assert await kv.handle(ctx, PKG, "locked").get(b"k") == b"locked"
        await kv.remove_db(ctx, PKG, "corrupt")  # a corrupt db can still be removed
        assert not await (await kv.open(ctx, PKG, "corrupt")).exists(b"k")

    try:
        async with Runtime(home=home, config=config) as rt:
            await run_as(rt, APP, body)
    finally:
        intruder.close()


async def test_a_failing_capability_store_answers_add_cap_failed(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        await db.set(b"k", b"v")
        caps_of(rt).close()  # the capability table can no longer be written
        with pytest.raises(kv.AddCapFailed, match="failed to generate capability for new DB"):
            await kv.open(ctx, PKG, "new")
        request = encode_request(KvRequest(package_id=PKG, db="new", action=Open()))
        message = await ctx.send_and_await_response(KV_PROCESS_ID, request, metadata="m")
        assert decode_response(message.body) == ErrResponse(error=AddCapFailed())
        assert message.metadata is None
        assert not ctx.holds(kv_capability(ctx.our.node, "read", PKG, "new"))
        assert await db.get(b"k") == b"v"  # the kv process goes on serving

    await run_as(rt, APP, body)


async def test_a_db_symlinked_out_of_the_kv_root_is_refused_for_every_action(
    rt: Runtime, home: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()

    async def body(ctx: ProcessContext) -> None:
        await kv.open(ctx, PKG, "db")
        db_dir(home, "evil").symlink_to(outside, target_is_directory=True)
        evil = kv.handle(ctx, PKG, "evil")
        for attempt in (
            kv.open(ctx, PKG, "evil"),
            evil.get(b"k"),
            evil.set(b"k", b"v"),
            kv.remove_db(ctx, PKG, "evil"),
        ):
            with pytest.raises(kv.IoError, match=r"\[app:pub.os, evil\] lies outside the kv root"):
                await attempt

    await run_as(rt, APP, body)
    assert list(outside.iterdir()) == []
    assert db_dir(home, "evil").is_symlink()
