"""Range deletes, revoke and the capability query through the bus."""

from __future__ import annotations

from collections.abc import Awaitable

import anyio
import pytest

from kvruntime import ProcessContext, Runtime, kv
from kvruntime.kvservice.access import kv_capability
from tests.conftest import run_as
from tests.internals import kv_of

pytestmark = pytest.mark.anyio

OWNER = "app:demo:alice.os"
SIBLING = "sibling:demo:alice.os"
READER = "reader:guest:bob.os"
WRITER = "writer:guest:bob.os"
OUTSIDER = "eve:other:eve.os"


async def test_delete_range_by_prefix_and_by_range_answers_the_count(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> tuple[int, int, int, list[bytes]]:
        db = await kv.open(ctx, ctx.package_id, "r")
        await db.set_many({b"tmp:%d" % i: b"x" for i in range(30)})
        await db.set_many({b"a": b"1", b"b": b"2", b"c": b"3", b"tmp": b"4", b"tmq": b"5"})
        by_prefix = await db.delete_range(prefix=b"tmp:")
        by_range = await db.delete_range(start=b"a", end=b"c")
        none = await db.delete_range(start=b"z", end=b"a")
        return by_prefix, by_range, none, [k async for k in db.keys()]

    assert await run_as(rt, OWNER, body) == (30, 2, 0, [b"c", b"tmp", b"tmq"])


async def test_delete_range_sees_writes_queued_before_it_and_without_bounds_empties(
    rt: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> tuple[int, list[bytes]]:
        db = await kv.open(ctx, ctx.package_id, "r")
        await db.set_many({b"%d" % i: b"v" for i in range(10)})
        return await db.delete_range(), [k async for k in db.keys()]

    assert await run_as(rt, OWNER, body) == (10, [])


async def _share(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ctx.package_id, "r")
    await db.set(b"k", b"v")
    await db.share(READER)
    await db.share(WRITER, write=True)


async def test_capabilities_lists_what_the_sender_holds(rt: Runtime) -> None:
    await run_as(rt, OWNER, _share)

    async def ask(ctx: ProcessContext) -> list[str]:
        return await kv.handle(ctx, "demo:alice.os", "r").capabilities()

    assert await run_as(rt, OWNER, ask) == ["read", "write"]
    assert await run_as(rt, READER, ask) == ["read"]
    assert await run_as(rt, WRITER, ask) == ["read", "write"]

    async def outsider(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, "demo:alice.os", "r").capabilities()
        with pytest.raises(kv.NoReadCap):  # an outsider learns nothing about existence
            await kv.handle(ctx, "demo:alice.os", "nope").capabilities()

    await run_as(rt, OUTSIDER, outsider)

    async def sibling(ctx: ProcessContext) -> None:  # same package, never opened it
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, "demo:alice.os", "r").capabilities()
        with pytest.raises(kv.NoDb):
            await kv.handle(ctx, "demo:alice.os", "nope").capabilities()

    await run_as(rt, SIBLING, sibling)


async def test_revoke_then_the_sharee_is_refused(rt: Runtime) -> None:
    await run_as(rt, OWNER, _share)

    async def reads(ctx: ProcessContext) -> bytes:
        return await kv.handle(ctx, "demo:alice.os", "r").get(b"k")

    assert await run_as(rt, READER, reads) == b"v"

    async def revoke(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "r")
        await db.revoke(READER)
        await db.revoke(WRITER)
        await db.revoke(READER)  # idempotent

    await run_as(rt, OWNER, revoke)

    async def refused(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "r")
        with pytest.raises(kv.NoReadCap):
            await db.get(b"k")
        with pytest.raises(kv.NoReadCap):
            await db.list_page()
        with pytest.raises(kv.NoWriteCap):
            await db.set(b"k", b"w")
        with pytest.raises(kv.NoReadCap):
            await db.capabilities()

    await run_as(rt, READER, refused)
    await run_as(rt, WRITER, refused)


async def test_only_the_owning_package_may_revoke(rt: Runtime) -> None:
    await run_as(rt, OWNER, _share)

    async def sharee(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "r")
        with pytest.raises(kv.MismatchingPackageId):
            await db.revoke(READER)

    await run_as(rt, WRITER, sharee)
    await run_as(rt, OUTSIDER, sharee)

    async def reads(ctx: ProcessContext) -> bytes:
        return await kv.handle(ctx, "demo:alice.os", "r").get(b"k")

    assert await run_as(rt, READER, reads) == b"v"

    async def missing_db(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoDb):
            await kv.handle(ctx, "demo:alice.os", "nope").revoke(READER)

    await run_as(rt, SIBLING, missing_db)


async def test_a_read_only_sharee_cannot_write_in_any_new_way(rt: Runtime) -> None:
    await run_as(rt, OWNER, _share)

    async def reader(ctx: ProcessContext) -> bytes:
        db = kv.handle(ctx, "demo:alice.os", "r")
        with pytest.raises(kv.NoWriteCap):
            await db.delete_range()
        with pytest.raises(kv.NoWriteCap):
            await db.increment(b"n")
        with pytest.raises(kv.NoWriteCap):
            await db.compare_and_swap(b"k", b"v", b"w")
        with pytest.raises(kv.NoWriteCap):
            await db.set_many({b"k": b"w"})
        with pytest.raises(kv.NoWriteCap):
            await db.delete_many([b"k"])
        with pytest.raises(kv.NoWriteCap):
            await db.begin_tx()
        with pytest.raises(kv.MismatchingPackageId):
            await db.revoke(WRITER)
        return await db.get(b"k")

    assert await run_as(rt, READER, reader) == b"v"

    async def outsider(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "r")
        with pytest.raises(kv.NoWriteCap):
            await db.delete_range(prefix=b"k")
        with pytest.raises(kv.NoReadCap):
            await db.get_many([b"k"])

    await run_as(rt, OUTSIDER, outsider)


async def test_a_write_only_holder_may_ask_its_capabilities(rt: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "r")
        await db.share(WRITER, write=True)
        await db.revoke(WRITER)
        write = kv_capability(ctx.our.node, "write", ctx.package_id, "r")
        ctx.share_capabilities(WRITER, [write])

    await run_as(rt, OWNER, owner)

    async def ask(ctx: ProcessContext) -> list[str]:
        return await kv.handle(ctx, "demo:alice.os", "r").capabilities()

    assert await run_as(rt, WRITER, ask) == ["write"]


async def _outcome(call: Awaitable[object]) -> str:
    """ "ok", or the name of the kv error ``call`` raised."""
    try:
        await call
    except kv.KvError as exc:
        return type(exc).__name__
    return "ok"


async def test_revoke_drops_the_sharees_open_transactions_on_the_db(rt: Runtime) -> None:
    """Staged writes of a revoked process are gone: a new share does not bring them back."""

    async def setup(ctx: ProcessContext) -> None:
        for name in ("r", "other"):
            db = await kv.open(ctx, ctx.package_id, name)
            await db.share(WRITER, write=True)

    await run_as(rt, OWNER, setup)
    begun, revoked, refused, regranted = (anyio.Event() for _ in range(4))

    async def writer(ctx: ProcessContext) -> tuple[int, str, str, bytes | None, bytes]:
        db = kv.handle(ctx, "demo:alice.os", "r")
        other = kv.handle(ctx, "demo:alice.os", "other")
        tx = await db.begin_tx()
        await db.set(b"k", b"staged", tx_id=tx)
        kept = await other.begin_tx()  # on another db: revoking "r" leaves it alone
        await other.set(b"k", b"kept", tx_id=kept)
        begun.set()
        await revoked.wait()
        open_after_revoke = kv_of(rt).open_transactions
        without_cap = await _outcome(db.commit_tx(tx))  # step 5 (capability) comes first
        refused.set()
        await regranted.wait()
        with_cap_again = await _outcome(db.commit_tx(tx))
        await other.commit_tx(kept)
        return (
            open_after_revoke,
            without_cap,
            with_cap_again,
            await db.get(b"k", None),
            (await other.get(b"k")),
        )

    async def owner(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "r")
        await begun.wait()
        await db.revoke(WRITER)
        revoked.set()
        await refused.wait()
        await db.share(WRITER, write=True)
        regranted.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_as, rt, OWNER, owner)
        seen = await run_as(rt, WRITER, writer)
    # Without the drop: 2 still open, and the re-granted commit applies b"staged".
    assert seen == (1, "NoWriteCap", "NoTx", None, b"kept")
