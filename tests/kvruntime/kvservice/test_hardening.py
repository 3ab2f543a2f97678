"""No single request may break or exhaust the kv process: a failing flush,
a batch read with a huge answer, staging past the node's bound, and a
RemoveDb that fails or is cut short by a crash."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from pathlib import Path

import anyio
import pytest

from kvruntime import KvConfig, ProcessContext, Response, Runtime, kv
from kvruntime.client._exchange import request
from kvruntime.storage.databases import Databases
from kvruntime.storage.leveldb import LevelDbStore
from kvruntime.storage.store import StoreError
from protocol.blobs import encode_keys, encode_writes
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import (
    AnswerTooLarge,
    ErrResponse,
    GetMany,
    IoError,
    KvRequest,
    KvResponse,
    LevelDbError,
    OkResponse,
    Set,
    WriteBatch,
)
from tests.conftest import run_as
from tests.internals import kv_of

pytestmark = pytest.mark.anyio

OWNER = "app:demo:alice.os"
OTHER = "other:demo:alice.os"
READER = "reader:elsewhere:bob.os"
PKG = PackageId.parse("demo:alice.os")


@pytest.fixture
def config() -> KvConfig:
    """Small answer and staging bounds, so that a test crosses them."""
    return KvConfig(
        max_value_bytes=8000,
        max_answer_bytes=10_000,
        max_transaction_bytes=10_000,
        max_staged_bytes_total=15_000,
    )


def set_body(db: str, key: bytes) -> bytes:
    return encode_request(KvRequest(package_id=PKG, db=db, action=Set(key=key, tx_id=None)))


async def answers_of(ctx: ProcessContext, ids: list[int]) -> dict[int, KvResponse]:
    got: dict[int, KvResponse] = {}
    while len(got) < len(ids):
        with anyio.fail_after(10):
            message = await ctx.receive()
        assert isinstance(message, Response)
        got[message.id] = decode_response(message.body)
    return got


# --- a failing flush ---------------------------------------------------------------


async def test_any_failure_in_a_flush_answers_its_writes_and_serves_the_rest(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = LevelDbStore.write

    def write(
        self: LevelDbStore, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False
    ) -> None:
        if self.label.endswith(", bad"):
            raise TypeError("injected: a blob plyvel refuses")
        real_write(self, ops, sync=sync)

    async def body(ctx: ProcessContext) -> None:
        good = await kv.open(ctx, PKG, "good")
        await kv.open(ctx, PKG, "bad")
        monkeypatch.setattr(LevelDbStore, "write", write)
        ids = [  # sent without awaiting: one batch, one flush
            await ctx.send(KV_PROCESS_ID, set_body(db, key), blob=b"v", expects_response=10)
            for db, key in (("good", b"a"), ("bad", b"x"), ("good", b"b"))
        ]
        got = await answers_of(ctx, ids)
        assert got[ids[0]] == got[ids[2]] == OkResponse()
        failed = got[ids[1]]
        assert isinstance(failed, ErrResponse)
        assert isinstance(failed.error, LevelDbError)
        monkeypatch.undo()
        assert await good.get_many([b"a", b"b"]) == [b"v", b"v"]
        bad = kv.handle(ctx, PKG, "bad")
        assert await bad.get(b"x", None) is None  # nothing of the failed write landed
        await bad.set(b"x", b"later")  # and the db works again
        assert await bad.get(b"x") == b"later"

    await run_as(rt, OWNER, body)


# --- GetMany answers are bounded ------------------------------------------------------


async def test_get_many_answer_past_the_bound_is_refused_early(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[bytes] = []
    real_get = LevelDbStore.get

    def get(self: LevelDbStore, key: bytes) -> bytes | None:
        reads.append(key)
        return real_get(self, key)

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "b")
        await db.set(b"big", b"x" * 4000)
        assert await db.get_many([b"big", b"big"]) == [b"x" * 4000] * 2  # 8000: fits
        monkeypatch.setattr(LevelDbStore, "get", get)
        with pytest.raises(kv.AnswerTooLarge, match="exceeds the limit of 10000"):
            await db.get_many([b"big"] * 1000)
        assert len(reads) <= 3, "kept reading after the bound was passed"
        # Raw: the typed error, with its size and bound.
        response, _ = await _raw_get_many(ctx, [b"big"] * 3)
        assert response == ErrResponse(error=AnswerTooLarge(size=12000, max=10_000))
        tx = await db.begin_tx()
        await db.set(b"staged", b"y" * 900, tx_id=tx)
        with pytest.raises(kv.AnswerTooLarge):
            await db.get_many([b"staged"] * 5 + [b"big"] * 2, tx_id=tx)
        assert await db.get_many([b"staged", b"big"], tx_id=tx) == [b"y" * 900, b"x" * 4000]

    await run_as(rt, OWNER, body)


async def _raw_get_many(ctx: ProcessContext, keys: list[bytes]) -> tuple[KvResponse, bytes | None]:
    body = encode_request(KvRequest(package_id=PKG, db="b", action=GetMany(count=len(keys))))
    message = await ctx.send_and_await_response(KV_PROCESS_ID, body, blob=encode_keys(keys))
    return decode_response(message.body), message.blob


# --- staged bytes have a node-wide bound ------------------------------------------------


async def test_staged_bytes_are_bounded_across_senders(rt: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "s")
        await db.share(OTHER, write=True)

    await run_as(rt, OWNER, owner)
    first: list[int] = []

    async def stage_first(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "s")
        tx = await db.begin_tx()
        await db.set(b"a", b"v" * 7999, tx_id=tx)  # 8000 of the 15000
        first.append(tx)

    async def stage_second(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "s")
        tx = await db.begin_tx()
        with pytest.raises(kv.TransactionTooLarge, match="16000 bytes exceeds the limit of 15000"):
            await db.set(b"b", b"v" * 7999, tx_id=tx)
        with pytest.raises(kv.TransactionTooLarge):
            await _stage_batch(ctx, tx)
        await db.set(b"b", b"v" * 5999, tx_id=tx)  # 14000 fits
        await db.rollback_tx(tx)

    await run_as(rt, OWNER, stage_first)
    await run_as(rt, OTHER, stage_second)

    async def release_then_stage(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "s")
        await db.rollback_tx(first[0])  # frees its 8000 bytes
        tx = await db.begin_tx()
        await db.set(b"a", b"v" * 7999, tx_id=tx)
        await db.commit_tx(tx)
        assert await db.get(b"a") == b"v" * 7999

    await run_as(rt, OWNER, release_then_stage)
    assert kv_of(rt).txs.staged_bytes == 0


async def _stage_batch(ctx: ProcessContext, tx: int) -> None:
    await request(
        ctx,
        PKG,
        "s",
        WriteBatch(tx_id=tx, count=1),
        blob=encode_writes([(b"c", b"v" * 7999)]),
        timeout=5,
    )


# --- removal: all or nothing, crash-safe -------------------------------------------------


async def test_remove_db_that_cannot_revoke_answers_the_error_and_keeps_the_db(
    rt: Runtime, home: Path
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "r")
        await db.set(b"k", b"v")
        await db.share(READER)
        kv_of(rt).caps.close()  # the capability table can no longer be written
        with pytest.raises(kv.IoError, match="revoke"):
            await kv.remove_db(ctx, PKG, "r")
        assert await db.get(b"k") == b"v"  # nothing removed

    await run_as(rt, OWNER, body)
    assert (home / "kv" / str(PKG) / "r" / "CURRENT").is_file()


@pytest.mark.parametrize("cut_at", ["before_rename", "before_delete"])
async def test_a_remove_db_cut_short_leaves_no_grant_to_a_later_db(
    home: Path, config: KvConfig, cut_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The removal fails at ``cut_at``: what it leaves on disk is what a SIGKILL
    there leaves. After a restart the owner re-creates the db: the old reader
    must not open it, and no trash is left."""

    async def setup(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "r")
        await db.set(b"secret", b"old")
        await db.share(READER)

    async def reader_reads(ctx: ProcessContext) -> bytes:
        return await kv.handle(ctx, PKG, "r").get(b"secret")

    def cannot_remove(self: object, package_id: PackageId, db: str) -> bool:
        raise StoreError(IoError(message="injected: the rename failed"))

    def cannot_delete(path: object, *args: object, **kwargs: object) -> None:
        raise OSError("injected: cut before the files were deleted")

    async with Runtime(home=home, config=config) as rt:
        await run_as(rt, OWNER, setup)
        assert await run_as(rt, READER, reader_reads) == b"old"
        if cut_at == "before_rename":
            monkeypatch.setattr(Databases, "remove", cannot_remove)
        else:
            monkeypatch.setattr(shutil, "rmtree", cannot_delete)

        async def remove_db(ctx: ProcessContext) -> None:
            with contextlib.suppress(kv.KvError):
                await kv.remove_db(ctx, PKG, "r")

        await run_as(rt, OWNER, remove_db)
        monkeypatch.undo()
    async with Runtime(home=home, config=config) as rt:

        async def recreate(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, PKG, "r")
            await db.set(b"secret", b"new")

        await run_as(rt, OWNER, recreate)

        async def reader_tries(ctx: ProcessContext) -> None:
            with pytest.raises(kv.NoReadCap):
                await kv.handle(ctx, PKG, "r").get(b"secret")

        await run_as(rt, READER, reader_tries)
    assert not list((home / "kv").glob(".removed-*")), "trash left after a restart"
