"""Every action of kv:distro:sys, through raw bodies and the client, and per-sender ordering.

Runs a real Runtime on a real LevelDB; nothing here reaches into the kv
process except to read what is on disk after the runtime has closed.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import attrs
import plyvel
import pytest

from kvruntime import KvConfig, ProcessContext, Response, Runtime, kv
from kvruntime.kvservice.actions import TABLE, OfTheDb, OnData
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import (
    BeginTx,
    BeginTxResponse,
    Commit,
    Delete,
    ErrResponse,
    Exists,
    ExistsResponse,
    Get,
    GetResponse,
    KeyNotFound,
    KeyTooLarge,
    KvAction,
    KvError,
    KvRequest,
    KvResponse,
    MalformedRequest,
    OkResponse,
    Open,
    RemoveDb,
    Set,
    ValueTooLarge,
)
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

APP = "main:app:pub.os"
PKG = PackageId.parse("app:pub.os")
MAX_KEY = 32
MAX_VALUE = 128


@pytest.fixture
def config() -> KvConfig:
    """Small size limits, so the limit errors are cheap to reach."""
    return KvConfig(max_key_bytes=MAX_KEY, max_value_bytes=MAX_VALUE)


async def call(
    ctx: ProcessContext,
    db: str,
    action: KvAction,
    *,
    blob: bytes | None = None,
    metadata: str | None = None,
) -> tuple[KvResponse, Response]:
    """Send one raw KvRequest on this process's package; return the decoded answer and message."""
    body = encode_request(KvRequest(package_id=ctx.package_id, db=db, action=action))
    message = await ctx.send_and_await_response(KV_PROCESS_ID, body, blob=blob, metadata=metadata)
    return decode_response(message.body), message


def keys_on_disk(home: Path, db: str) -> dict[bytes, bytes]:
    """Everything LevelDB holds for ``db`` of PKG (read after the runtime closed)."""
    handle = plyvel.DB(str(home / "kv" / str(PKG) / db))
    try:
        return dict(handle.iterator())
    finally:
        handle.close()


# --- every action, raw ------------------------------------------------------------


async def test_every_action_raw_echoes_metadata_on_success_only(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        step = 0

        async def ok(action: KvAction, blob: bytes | None = None) -> tuple[KvResponse, Response]:
            nonlocal step
            step += 1
            response, message = await call(ctx, "db", action, blob=blob, metadata=f"m{step}")
            assert message.metadata == f"m{step}", (action, response)
            assert not isinstance(response, ErrResponse), (action, response)
            return response, message

        async def err(action: KvAction, blob: bytes | None = None) -> KvError:
            response, message = await call(ctx, "db", action, blob=blob, metadata="lost")
            assert message.metadata is None
            assert message.blob is None
            assert isinstance(response, ErrResponse)
            return response.error

        assert (await ok(Open()))[0] == OkResponse()
        assert (await ok(Open()))[0] == OkResponse()  # idempotent
        assert (await ok(Set(key=b"k", tx_id=None), b"v1"))[0] == OkResponse()
        response, message = await ok(Get(key=b"k"))
        assert (response, message.blob) == (GetResponse(key=b"k"), b"v1")
        assert (await ok(Exists(key=b"k")))[0] == ExistsResponse(exists=True)
        assert (await ok(Exists(key=b"nope")))[0] == ExistsResponse(exists=False)
        assert await err(Get(key=b"nope")) == KeyNotFound()
        assert (await ok(Set(key=b"", tx_id=None), b""))[0] == OkResponse()  # empty key, value
        response, message = await ok(Get(key=b""))
        assert (response, message.blob) == (GetResponse(key=b""), b"")
        assert (await ok(Delete(key=b"k", tx_id=None)))[0] == OkResponse()
        assert (await ok(Delete(key=b"k", tx_id=None)))[0] == OkResponse()  # missing is Ok
        assert await err(Get(key=b"k")) == KeyNotFound()
        begun, _ = await ok(BeginTx())
        assert isinstance(begun, BeginTxResponse)
        assert (await ok(Set(key=b"t", tx_id=begun.tx_id), b"tv"))[0] == OkResponse()
        assert (await ok(Delete(key=b"", tx_id=begun.tx_id)))[0] == OkResponse()
        assert (await ok(Commit(tx_id=begun.tx_id)))[0] == OkResponse()
        response, message = await ok(Get(key=b"t"))
        assert message.blob == b"tv"
        assert (await ok(Exists(key=b"")))[0] == ExistsResponse(exists=False)
        assert (await ok(RemoveDb()))[0] == OkResponse()

    await run_as(rt, APP, body)


async def test_set_without_blob_is_malformed_and_writes_nothing(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        await call(ctx, "db", Open())
        begun, _ = await call(ctx, "db", BeginTx())
        assert isinstance(begun, BeginTxResponse)
        for tx_id in (None, begun.tx_id):
            response, message = await call(ctx, "db", Set(key=b"k", tx_id=tx_id), metadata="x")
            assert response == ErrResponse(error=MalformedRequest())
            assert message.metadata is None
        assert (await call(ctx, "db", Commit(tx_id=begun.tx_id)))[0] == OkResponse()
        response, _ = await call(ctx, "db", Exists(key=b"k"))
        assert response == ExistsResponse(exists=False)

    await run_as(rt, APP, body)


# --- size limits ------------------------------------------------------------------


async def test_size_limits_answer_typed_errors_and_write_nothing(
    home: Path, config: KvConfig
) -> None:
    big_key, big_value = b"k" * (MAX_KEY + 1), b"v" * (MAX_VALUE + 1)
    too_long = KeyTooLarge(size=MAX_KEY + 1, max=MAX_KEY)

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        await db.set(b"k" * MAX_KEY, b"v" * MAX_VALUE)  # both at their limit: accepted
        await db.set(b"keep", b"old")
        tx = await db.begin_tx()
        refused: list[tuple[KvAction, bytes | None]] = [
            (Set(key=big_key, tx_id=None), b"v"),
            (Set(key=big_key, tx_id=tx), b"v"),
            (Delete(key=big_key, tx_id=None), None),
            (Get(key=big_key), None),
            (Exists(key=big_key), None),
        ]
        for action, blob in refused:
            assert (await call(ctx, "db", action, blob=blob))[0] == ErrResponse(error=too_long)
        with pytest.raises(kv.ValueTooLarge) as caught:
            await db.set(b"keep", big_value)
        assert caught.value.error == ValueTooLarge(size=MAX_VALUE + 1, max=MAX_VALUE)
        assert str(caught.value) == f"value of {MAX_VALUE + 1} bytes exceeds the limit of 128"
        with pytest.raises(kv.ValueTooLarge):
            await db.set(b"new", big_value, tx_id=tx)
        with pytest.raises(kv.KeyTooLarge, match="key of 33 bytes exceeds the limit of 32"):
            await db.get(big_key)
        await db.commit_tx(tx)
        assert await db.get(b"keep") == b"old"
        assert not await db.exists(b"new")

    async with Runtime(home=home, config=config) as rt:
        await run_as(rt, APP, body)
    assert keys_on_disk(home, "db") == {b"k" * MAX_KEY: b"v" * MAX_VALUE, b"keep": b"old"}


async def test_refused_writes_inside_one_batch_leave_their_neighbours_alone(
    home: Path, config: KvConfig
) -> None:
    writes = [
        (b"a", b"1"),
        (b"k" * (MAX_KEY + 1), b"2"),
        (b"b", b"v" * (MAX_VALUE + 1)),
        (b"c", b"3"),
    ]

    async def body(ctx: ProcessContext) -> list[KvResponse]:
        await kv.open(ctx, PKG, "db")
        for key, value in writes:  # sent back to back: served as one batch
            request = KvRequest(package_id=PKG, db="db", action=Set(key=key, tx_id=None))
            await ctx.send(KV_PROCESS_ID, encode_request(request), blob=value, expects_response=5)
        answers = []
        for _ in writes:
            with anyio.fail_after(5):
                message = await ctx.receive()
            assert isinstance(message, Response)
            answers.append(decode_response(message.body))
        return answers

    async with Runtime(home=home, config=config) as rt:
        answers = await run_as(rt, APP, body)
    assert answers == [
        OkResponse(),
        ErrResponse(error=KeyTooLarge(size=MAX_KEY + 1, max=MAX_KEY)),
        ErrResponse(error=ValueTooLarge(size=MAX_VALUE + 1, max=MAX_VALUE)),
        OkResponse(),
    ]
    assert keys_on_disk(home, "db") == {b"a": b"1", b"c": b"3"}


async def test_client_refuses_a_streamed_value_over_its_limit_before_sending(
    rt: Runtime,
) -> None:
    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"0123456789"

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db", key_codec=kv.BYTES, value_codec=kv.BYTES)
        small = await kv.open(
            ctx, PKG, "db", key_codec=kv.BYTES, value_codec=kv.BYTES, max_value_bytes=25
        )
        await db.set(b"streamed", chunks(3))
        assert await db.get(b"streamed") == b"0123456789" * 3
        with pytest.raises(kv.ValueTooLarge, match="value of 30 bytes exceeds the limit of 25"):
            await small.set(b"refused", chunks(3))
        assert not await db.exists(b"refused")

    await run_as(rt, APP, body)


# --- the client's three shapes ------------------------------------------------------


async def test_client_shapes_see_the_same_db(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "birthdays")
        await db.set(b"alice", b"1990-04-01")
        await kv.set(ctx, "birthdays", b"bob", b"1985-12-24")
        stores = kv.stores(ctx)
        await stores.birthdays.set(b"carol", b"2001-01-01")
        assert await kv.get(ctx, "birthdays", b"alice") == b"1990-04-01"
        assert await stores.birthdays.get(b"bob") == b"1985-12-24"
        assert await stores["birthdays"].get(b"carol") == b"2001-01-01"
        assert await db.get(b"dave", None) is None
        assert await kv.get(ctx, "birthdays", b"dave", b"?") == b"?"
        with pytest.raises(kv.KeyNotFound, match="key not found"):
            await db.get(b"dave")
        await kv.delete(ctx, "birthdays", b"bob")
        assert not await kv.exists(ctx, "birthdays", b"bob")
        assert await stores.birthdays.exists(b"carol")
        typed = db.typed(kv.Utf8Codec(), kv.JSON)
        await typed.set("erin", {"year": 1970})
        assert await typed.get("erin") == {"year": 1970}
        assert await db.get(b"erin") == b'{"year":1970}'
        await kv.remove_db(ctx, ctx.package_id, "birthdays")
        with pytest.raises(kv.NoDb, match=r"db \[app:pub.os, birthdays\] does not exist"):
            await db.get(b"alice")

    await run_as(rt, APP, body)


# --- ordering -----------------------------------------------------------------------


async def test_concurrent_tasks_of_one_sender_are_applied_in_acceptance_order(
    home: Path,
) -> None:
    # A tiny kv mailbox makes most sends wait for room: acceptance order must survive it.
    config = attrs.evolve(KvConfig(), mailbox_capacity=4, max_batch=3)
    n = 200

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        # A request is accepted in the order its send starts (the mailbox queues
        # waiting senders FIFO), so this log is the acceptance order.
        accepted: list[tuple[str, int]] = []
        seen: dict[int, bytes] = {}

        async def write(i: int) -> None:
            accepted.append(("set", i))
            await db.set(b"k", b"%d" % i)

        async def read(i: int) -> None:
            accepted.append(("get", i))
            seen[i] = await db.get(b"k", b"")

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(read if i % 3 == 2 else write, i)
        assert len(accepted) == n
        last = b""
        for kind, i in accepted:
            if kind == "set":
                last = b"%d" % i
            else:  # a get sees exactly the writes accepted before it
                assert seen[i] == last, (i, accepted)
        assert len(seen) == n // 3
        assert await db.get(b"k") == last

    async with Runtime(home=home, config=config) as rt:
        await run_as(rt, APP, body)


async def test_concurrent_tasks_of_one_sender_are_answered_in_acceptance_order(
    home: Path,
) -> None:
    config = attrs.evolve(KvConfig(), mailbox_capacity=4, max_batch=3)
    n = 120

    async def body(ctx: ProcessContext) -> None:
        await kv.open(ctx, PKG, "db")
        sent: list[int] = []

        async def send(i: int) -> None:
            request = KvRequest(package_id=PKG, db="db", action=Set(key=b"%d" % i, tx_id=None))
            sent.append(
                await ctx.send(
                    KV_PROCESS_ID, encode_request(request), blob=b"v", expects_response=5
                )
            )

        received: list[int] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(send, i)
                for _ in range(n):
                    message = await ctx.receive()
                    assert isinstance(message, Response)
                    assert decode_response(message.body) == OkResponse()
                    received.append(message.id)
        # ids grow in the order sends start, which is the acceptance order
        assert sorted(sent) == sorted(received)
        assert received == sorted(received)

    async with Runtime(home=home, config=config) as rt:
        await run_as(rt, APP, body)


async def test_fire_and_forget_sends_come_back_in_order(rt: Runtime) -> None:
    n = 50

    async def body(ctx: ProcessContext) -> None:
        await kv.open(ctx, PKG, "db")
        ids = []
        for i in range(n):
            request = KvRequest(package_id=PKG, db="db", action=Set(key=b"k", tx_id=None))
            ids.append(
                await ctx.send(
                    KV_PROCESS_ID,
                    encode_request(request),
                    blob=str(i).encode(),
                    metadata=str(i),
                    expects_response=5,
                )
            )
        get = KvRequest(package_id=PKG, db="db", action=Get(key=b"k"))
        ids.append(await ctx.send(KV_PROCESS_ID, encode_request(get), expects_response=5))
        received = []
        for _ in range(n + 1):
            with anyio.fail_after(5):
                message = await ctx.receive()
            assert isinstance(message, Response)
            received.append(message)
        assert [m.id for m in received] == ids
        assert [m.metadata for m in received[:n]] == [str(i) for i in range(n)]
        assert all(decode_response(m.body) == OkResponse() for m in received[:n])
        assert decode_response(received[n].body) == GetResponse(key=b"k")
        assert received[n].blob == str(n - 1).encode()

    await run_as(rt, APP, body)


async def test_twenty_sibling_processes_write_and_read_their_own_keys(rt: Runtime) -> None:
    per_process = 25

    async def sibling(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "shared")
        me = ctx.process_id.process_name.encode()
        for i in range(per_process):
            await db.set(me + b"/%d" % i, me + b"=%d" % i)
        for i in range(per_process):
            assert await db.get(me + b"/%d" % i) == me + b"=%d" % i

    handles = [
        await rt.spawn(f"p{i}:app:pub.os", sibling, request_capabilities=["kv:distro:sys"])
        for i in range(20)
    ]
    for handle in handles:
        await handle.wait()

    async def check(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, ctx.package_id, "shared")
        for p in range(20):
            for i in range(per_process):
                assert await db.get(b"p%d/%d" % (p, i)) == b"p%d=%d" % (p, i)
        return 20 * per_process

    assert await run_as(rt, "checker:app:pub.os", check) == 500


def test_the_action_table_gives_every_action_one_rule() -> None:
    assert set(TABLE) == set(typing.get_args(KvAction))
    # A write rule for every action that changes data; the reads take the read capability.
    writes = {
        kind.__name__ for kind, rule in TABLE.items() if isinstance(rule, OnData) and rule.write
    }
    assert writes == {
        "Set", "Delete", "SetMany", "DeleteMany", "WriteBatch", "CommitBatch", "Increment",
        "CompareAndSwap", "DeleteRange", "BeginTx", "Commit", "Rollback",
        "SetExpiring", "SetManyExpiring", "Expire", "Persist", "SetTtlPolicy",
    }  # fmt: skip
    of_the_db = {kind.__name__ for kind, rule in TABLE.items() if isinstance(rule, OfTheDb)}
    assert of_the_db == {"Open", "RemoveDb", "Revoke", "Capabilities"}
