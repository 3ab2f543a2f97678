"""The kv client (``from kvruntime import kv``), used from processes as a program would."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import msgpack
import pytest

import kvruntime
from kvruntime import Address, CapabilityNotHeld, PackageId, ProcessContext, ProcessId, Runtime, kv
from kvruntime.client.errors import raise_kv_error
from protocol import messages as m
from tests.conftest import run_as
from tests.internals import bus_of

pytestmark = pytest.mark.anyio

APP = "app:mine:pub.os"
MINE = PackageId.parse("mine:pub.os")
SIBLING = "sibling:theirs:pub.os"
MiB = 1024 * 1024


async def chunks(*parts: bytes, pulled: list[int] | None = None) -> AsyncIterator[bytes]:
    """Yield ``parts``, counting in ``pulled`` how many were taken."""
    for part in parts:
        if pulled is not None:
            pulled.append(len(part))
        yield part


def sibling_address() -> Address:
    return Address(node="our.os", process=ProcessId.parse(SIBLING))


# --- get, set, typed views ------------------------------------------------------------


async def test_get_with_default_and_key_not_found(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        assert db.package_id == MINE
        assert db.db == "db"
        assert await db.get(b"missing", None) is None
        assert await db.get(b"missing", b"fallback") == b"fallback"
        with pytest.raises(kv.KeyNotFound, match=r"^key not found$") as caught:
            await db.get(b"missing")
        assert caught.value.error == m.KeyNotFound()
        assert isinstance(caught.value, kv.KvError)
        await db.set(b"k", b"")  # an empty value is a value, not a missing key
        assert await db.get(b"k", b"fallback") == b""
        assert await db.exists(b"k")
        await db.delete(b"k")
        await db.delete(b"k")  # deleting a missing key is fine
        assert not await db.exists(b"k")
        assert await db.get(b"k", 42) == 42

    await run_as(rt, APP, body)


async def test_typed_views_with_json_msgpack_and_utf8(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        typed = await kv.open(
            ctx, ctx.package_id, "typed", key_codec=kv.JSON, value_codec=kv.MSGPACK
        )
        value = {"name": "alice", "tags": ["a", "b"], "raw": b"\x00\xff", "n": -3}
        await typed.set({"id": 7, "kind": "user"}, value)
        assert await typed.get({"kind": "user", "id": 7}) == value  # JSON keys sort their fields
        assert await typed.exists({"id": 7, "kind": "user"})
        assert not await typed.exists({"id": 8, "kind": "user"})
        assert await typed.get({"id": 8, "kind": "user"}, "none") == "none"

        raw = typed.typed(kv.BYTES, kv.BYTES)  # the same db, as stored
        assert await raw.get(b'{"id":7,"kind":"user"}') == msgpack.packb(value, use_bin_type=True)

        text = raw.typed(kv.Utf8Codec(), kv.Utf8Codec())
        await text.set("ключ", "значение ✓")
        assert await text.get("ключ") == "значение ✓"
        assert await raw.get("ключ".encode()) == "значение ✓".encode()

        as_json = raw.typed(kv.Utf8Codec(), kv.JsonCodec[list[int]]())
        await as_json.set("numbers", [1, 2, 3])
        assert await raw.get(b"numbers") == b"[1,2,3]"
        assert await as_json.get("numbers") == [1, 2, 3]
        as_msgpack = raw.typed(kv.Utf8Codec(), kv.MsgpackCodec[dict[str, int]]())
        await as_msgpack.set("counts", {"x": 1})
        assert await as_msgpack.get("counts") == {"x": 1}
        await as_msgpack.delete("counts")
        assert await as_msgpack.get("counts", None) is None

    await run_as(rt, APP, body)


async def test_set_gathers_an_async_iterable_of_chunks(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        await db.set(b"k", chunks(b"hello", b"", b", ", b"world"))
        assert await db.get(b"k") == b"hello, world"
        await db.set(b"empty", chunks())
        assert await db.get(b"empty") == b""
        # Exactly at the limit is accepted.
        small = await kv.open(
            ctx, ctx.package_id, "db", key_codec=kv.BYTES, value_codec=kv.BYTES, max_value_bytes=10
        )
        await small.set(b"ten", chunks(b"01234", b"56789"))
        assert await db.get(b"ten") == b"0123456789"
        # Inside a transaction too.
        tx = await db.begin_tx()
        await db.set(b"tx", chunks(b"a", b"b", b"c"), tx_id=tx)
        assert not await db.exists(b"tx")
        await db.commit_tx(tx)
        assert await db.get(b"tx") == b"abc"

    await run_as(rt, APP, body)


async def test_chunks_over_the_limit_raise_before_anything_is_sent(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[int]:
        db = await kv.open(ctx, ctx.package_id, "db")
        await db.set(b"k", b"old")
        small = await kv.open(
            ctx, ctx.package_id, "db", key_codec=kv.BYTES, value_codec=kv.BYTES, max_value_bytes=10
        )
        pulled: list[int] = []
        before = bus_of(rt).next_id()
        with pytest.raises(
            kv.ValueTooLarge, match="value of 12 bytes exceeds the limit of 10"
        ) as caught:
            await small.set(b"k", chunks(b"012345", b"678901", b"never pulled", pulled=pulled))
        # No request was made: the bus handed out no message id in between.
        assert bus_of(rt).next_id() == before + 1
        assert caught.value.error == m.ValueTooLarge(size=12, max=10)
        assert await db.get(b"k") == b"old"  # nothing was written
        return pulled

    # Gathering stopped at the chunk that went over: the rest was never pulled.
    assert await run_as(rt, APP, body) == [6, 6]


async def test_default_client_limit_is_the_store_default(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        mib = b"\x00" * MiB
        with pytest.raises(kv.ValueTooLarge) as caught:
            await db.set(b"big", chunks(*[mib] * 17))
        assert caught.value.error == m.ValueTooLarge(size=17 * MiB, max=16 * MiB)
        assert not await db.exists(b"big")

    await run_as(rt, APP, body)


async def _refused_unsent(
    rt: Runtime, error: type[kv.KvError], call: typing.Awaitable[object]
) -> m.KvError:
    """Await ``call``; it must raise ``error`` without sending a request."""
    before = bus_of(rt).next_id()
    with pytest.raises(error) as caught:
        await call
    assert bus_of(rt).next_id() == before + 1  # no message id handed out in between
    return caught.value.error


async def test_plain_values_over_the_client_limit_raise_before_sending(rt: Runtime) -> None:
    """As for chunks: the store (16 MiB) would take them, the handle (10 bytes) does not."""

    async def body(ctx: ProcessContext) -> list[bytes | None]:
        small = await kv.open(ctx, ctx.package_id, "db", max_value_bytes=10)
        await small.set(b"k", b"old")
        await small.set(b"ten", b"0123456789")  # exactly at the limit
        tx = await small.begin_tx()
        eleven = b"01234567890"
        refused = [
            small.set(b"k", eleven),
            small.set(b"k", eleven, tx_id=tx),
            small.set_many([(b"a", b"1"), (b"k", eleven)]),
            small.compare_and_swap(b"k", b"old", eleven),
            small.typed(kv.BYTES, kv.BYTES).set(b"k", eleven),
        ]
        for call in refused:
            error = await _refused_unsent(rt, kv.ValueTooLarge, call)
            assert error == m.ValueTooLarge(size=11, max=10)
        # An expected value is only compared, never stored: no limit on it.
        with pytest.raises(kv.CasMismatch):
            await small.compare_and_swap(b"k", eleven, b"new")
        await small.commit_tx(tx)
        return await small.get_many([b"k", b"a", b"ten"])

    assert await run_as(rt, APP, body) == [b"old", None, b"0123456789"]


async def test_keys_over_the_client_limit_raise_before_sending(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "db", max_key_bytes=8)
        await db.set(b"12345678", b"at the limit")
        key = b"123456789"
        tx = await db.begin_tx()
        pulled: list[int] = []
        refused = [
            db.set(key, b"v"),
            db.set(key, b"v", tx_id=tx),
            db.set(key, b"value over the limit too"),  # the key is checked first
            db.set(key, chunks(b"never", pulled=pulled)),
            db.get(key),
            db.get(key, None, tx_id=tx),
            db.exists(key),
            db.delete(key),
            db.get_many([b"a", key]),
            db.set_many({key: b"v"}),
            db.delete_many([key]),
            db.increment(key),
            db.compare_and_swap(key, None, b"v"),
            db.list_page(start=key),
            db.delete_range(end=key),
            db.typed(kv.BYTES, kv.BYTES).get(key),
        ]
        for call in refused:
            error = await _refused_unsent(rt, kv.KeyTooLarge, call)
            assert error == m.KeyTooLarge(size=9, max=8)
        assert pulled == []
        await db.commit_tx(tx)
        return await db.get_many([b"12345678"])

    assert await run_as(rt, APP, body) == [b"at the limit"]


async def test_default_client_key_and_value_limits_are_the_store_defaults(rt: Runtime) -> None:
    """Refused without a round trip (the store would refuse them too), also by kv.handle."""

    async def body(ctx: ProcessContext) -> list[m.KvError]:
        db = await kv.open(ctx, ctx.package_id, "db")
        shared = kv.handle(ctx, ctx.package_id, "db")
        long_key, big_value = b"k" * (64 * 1024 + 1), b"v" * (16 * MiB + 1)
        errors = [
            await _refused_unsent(rt, kv.KeyTooLarge, db.set(long_key, b"v")),
            await _refused_unsent(rt, kv.ValueTooLarge, db.set(b"k", big_value)),
            await _refused_unsent(rt, kv.KeyTooLarge, shared.get(long_key)),
            await _refused_unsent(rt, kv.ValueTooLarge, shared.set(b"k", big_value)),
        ]
        larger = kv.handle(ctx, ctx.package_id, "db", max_key_bytes=128 * 1024)
        with pytest.raises(kv.KeyTooLarge):  # sent: the store's own limit answers
            await larger.get(long_key)
        return errors

    key_error = m.KeyTooLarge(size=64 * 1024 + 1, max=64 * 1024)
    value_error = m.ValueTooLarge(size=16 * MiB + 1, max=16 * MiB)
    assert await run_as(rt, APP, body) == [key_error, value_error, key_error, value_error]


async def test_get_stream_yields_the_value_in_chunks(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[list[bytes]]:
        db = await kv.open(ctx, ctx.package_id, "db")
        await db.set(b"k", b"0123456789")
        await db.set(b"empty", b"")
        results = []
        for key, size in ((b"k", 4), (b"k", 10), (b"k", 64 * 1024), (b"empty", 4)):
            results.append([chunk async for chunk in await db.get_stream(key, chunk_size=size)])
        with pytest.raises(kv.KeyNotFound):
            await db.get_stream(b"missing")
        return results

    assert await run_as(rt, APP, body) == [
        [b"0123", b"4567", b"89"],
        [b"0123456789"],
        [b"0123456789"],
        [],
    ]


# --- the three WASI shapes --------------------------------------------------------------


async def test_the_three_shapes_share_one_db(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        # A label per call: opens this package's db on first use.
        await kv.set(ctx, "birthdays", b"alice", b"1990-04-01")
        assert await kv.get(ctx, "birthdays", b"alice") == b"1990-04-01"
        assert await kv.get(ctx, "birthdays", b"nobody", b"?") == b"?"
        with pytest.raises(kv.KeyNotFound):
            await kv.get(ctx, "birthdays", b"nobody")
        assert await kv.exists(ctx, "birthdays", b"alice")

        # Attribute and item access.
        stores = kv.stores(ctx)
        assert await stores.birthdays.get(b"alice") == b"1990-04-01"
        await stores.birthdays.set(b"bob", b"1985-12-24")
        await stores["my-db"].set(b"x", b"1")
        assert await stores["my-db"].get(b"x") == b"1"
        assert await stores["my-db"].get(b"y", None) is None
        with pytest.raises(kv.KeyNotFound):
            await stores["my-db"].get(b"y")
        assert not await stores.birthdays.exists(b"x")  # two dbs, not one
        await stores.birthdays.delete(b"bob")
        assert not await kv.exists(ctx, "birthdays", b"bob")
        handle = await stores.birthdays.handle()
        assert (handle.package_id, handle.db) == (MINE, "birthdays")

        # A handle on the same db sees it all.
        db = await kv.open(ctx, ctx.package_id, "birthdays")
        assert await db.get(b"alice") == b"1990-04-01"
        await db.set(b"carol", b"2001-01-01")
        assert await kv.get(ctx, "birthdays", b"carol") == b"2001-01-01"
        await kv.delete(ctx, "birthdays", b"alice")
        assert not await db.exists(b"alice")
        mine = await kv.open(ctx, ctx.package_id, "my-db")
        assert await mine.get(b"x") == b"1"

        with pytest.raises(AttributeError):
            stores.__wrapped__  # noqa: B018 - dunder names are not db labels

    await run_as(rt, APP, body)
    assert (rt.home / "kv" / "mine:pub.os" / "my-db" / "CURRENT").is_file()


async def test_a_label_that_is_no_db_name_is_refused(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        with pytest.raises(kv.IdError, match="one path component"):
            await kv.set(ctx, "../escape", b"k", b"v")
        with pytest.raises(kv.IdError, match="one path component"):
            await kv.stores(ctx)["a/b"].get(b"k")

    await run_as(rt, APP, body)
    assert not (rt.home / "kv" / "escape").exists()


# --- sharing ------------------------------------------------------------------------


async def create_shared(ctx: ProcessContext) -> kv.Kv[bytes, bytes]:
    db = await kv.open(ctx, ctx.package_id, "shared")
    await db.set(b"k", b"v")
    return db


async def test_share_read_only(rt: Runtime) -> None:
    async def before(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, MINE, "shared").get(b"k")

    async def owner(ctx: ProcessContext) -> None:
        db = await create_shared(ctx)
        await db.share(sibling_address())  # read only, by Address

    await run_as(rt, APP, create_shared)
    await run_as(rt, SIBLING, before)  # the db exists, but is not shared yet
    await run_as(rt, APP, owner)

    async def sibling(ctx: ProcessContext) -> bytes:
        db = kv.handle(ctx, "mine:pub.os", "shared")  # no Open: another package's db
        assert await db.exists(b"k")
        with pytest.raises(kv.NoWriteCap, match="no write capability for requested DB"):
            await db.set(b"k", b"mine now")
        with pytest.raises(kv.NoWriteCap):
            await db.set(b"k", chunks(b"mine", b" now"))
        with pytest.raises(kv.NoWriteCap):
            await db.delete(b"k")
        with pytest.raises(kv.NoWriteCap):
            await db.begin_tx()
        with pytest.raises(kv.MismatchingPackageId):
            await kv.open(ctx, MINE, "shared")  # Open is for one's own package only
        with pytest.raises(CapabilityNotHeld):
            await db.share("third:other:pub.os", write=True)  # cannot pass on what it lacks
        return await db.get(b"k")

    assert await run_as(rt, SIBLING, sibling) == b"v"

    async def owner_check(ctx: ProcessContext) -> bytes:
        return await kv.handle(ctx, MINE, "shared").get(b"k")

    assert await run_as(rt, APP, owner_check) == b"v"  # the refused writes wrote nothing


async def test_share_read_and_write(rt: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        db = await create_shared(ctx)
        await db.share(SIBLING, write=True)  # by ProcessId string

    await run_as(rt, APP, owner)

    async def sibling(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, MINE, "shared").typed(kv.Utf8Codec(), kv.Utf8Codec())
        assert await db.get("k") == "v"
        await db.set("from-sibling", "hello")
        tx = await db.begin_tx()
        await db.set("in-tx", "staged", tx_id=tx)
        await db.delete("k", tx_id=tx)
        await db.commit_tx(tx)
        # Holding both, it may pass read access on.
        await db.share("third:other:pub.os")

    await run_as(rt, SIBLING, sibling)

    async def check(ctx: ProcessContext) -> tuple[bytes, bytes, bool]:
        db = kv.handle(ctx, MINE, "shared")
        return await db.get(b"from-sibling"), await db.get(b"in-tx"), await db.exists(b"k")

    assert await run_as(rt, APP, check) == (b"hello", b"staged", False)
    assert await run_as(rt, "third:other:pub.os", check) == (b"hello", b"staged", False)


async def test_share_needs_the_capabilities_shared(rt: Runtime) -> None:
    async def stranger(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, MINE, "shared")
        with pytest.raises(CapabilityNotHeld):
            await db.share(ctx.our)  # holds nothing on it

    await run_as(rt, APP, create_shared)
    await run_as(rt, SIBLING, stranger)

    async def sibling(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, MINE, "shared").get(b"k")

    await run_as(rt, SIBLING, sibling)


# --- remove_db ----------------------------------------------------------------------


async def test_remove_db(rt: Runtime) -> None:
    path = rt.home / "kv" / "mine:pub.os" / "gone"

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "gone")
        await db.set(b"k", b"v")
        await kv.set(ctx, "gone", b"label", b"cached handle")
        await db.share(SIBLING)
        assert path.is_dir()
        await kv.remove_db(ctx, "mine:pub.os", "gone")
        assert not path.exists()
        with pytest.raises(kv.NoDb, match=r"db \[mine:pub\.os, gone\] does not exist") as caught:
            await db.get(b"k")
        assert caught.value.error == m.NoDb(package_id=MINE, db="gone")
        with pytest.raises(kv.NoDb):
            await kv.remove_db(ctx, ctx.package_id, "gone")
        # The label shape forgot its handle, and a read does not re-create the db.
        with pytest.raises(kv.NoDb):
            await kv.get(ctx, "gone", b"label", None)
        assert not path.exists()
        # A write through the label does: empty, nothing kept from before.
        await kv.set(ctx, "gone", b"new", b"1")
        assert await kv.get(ctx, "gone", b"k", None) is None
        assert await kv.get(ctx, "gone", b"label", None) is None
        with pytest.raises(kv.MismatchingPackageId):
            await kv.remove_db(ctx, "theirs:pub.os", "gone")

    await run_as(rt, APP, body)

    async def sibling(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoReadCap):  # its shared capability went with the db
            await kv.handle(ctx, MINE, "gone").get(b"k")

    await run_as(rt, SIBLING, sibling)


# --- errors ---------------------------------------------------------------------------

PROTOCOL_ERRORS: list[Any] = [
    m.NoDb(package_id=MINE, db="db"),
    m.KeyNotFound(),
    m.NoTx(tx_id=2**64 - 1),
    m.NoWriteCap(),
    m.NoReadCap(),
    m.MismatchingPackageId(),
    m.AddCapFailed(),
    m.MalformedRequest(),
    m.LevelDbError(message="corruption"),
    m.IoError(message="disk full"),
    m.KeyTooLarge(size=70000, max=65536),
    m.ValueTooLarge(size=20, max=10),
    m.TooManyTransactions(max=64),
    m.RemoteNotAllowed(),
    m.TransactionTooLarge(size=9, max=8),
    m.CasMismatch(present=False),
    m.TransactionConflict(tx_id=7),
    m.NotAnInteger(),
    m.IntegerOverflow(),
    m.BatchTooLarge(count=11, max=10),
    m.AnswerTooLarge(size=9, max=8),
    m.KeyReserved(),
    m.TtlDisabled(),
    m.TtlTooLarge(ttl_ms=9, max_ms=8),
    m.WatchCompacted(oldest=5, last=9),
    m.WatchEnded(reason="the db was removed"),
    m.TooManyWatches(max=64),
    m.NoWatch(watch_id=7),
]


def test_the_error_samples_cover_every_variant() -> None:
    assert {type(e) for e in PROTOCOL_ERRORS} == set(typing.get_args(m.KvError))


@pytest.mark.parametrize("error", PROTOCOL_ERRORS, ids=lambda e: type(e).__name__)
def test_every_protocol_error_raises_its_own_exception(error: Any) -> None:
    expected = getattr(kv, type(error).__name__)
    with pytest.raises(kv.KvError) as caught:
        raise_kv_error(error)
    assert type(caught.value) is expected
    assert expected is not kv.KvError
    assert caught.value.error is error
    assert str(caught.value) == str(error)
    assert expected.__doc__
    assert expected.__name__ in kv.__all__


def test_the_exception_classes_are_distinct() -> None:
    classes = [getattr(kv, type(e).__name__) for e in PROTOCOL_ERRORS]
    assert len(set(classes)) == len(classes)
    assert all(issubclass(c, kv.KvError) for c in classes)


async def test_an_answer_of_the_wrong_kind_raises_unexpected_response(rt: Runtime) -> None:
    # A stand-in for kv that answers every request with the same body: the
    # client must not take a wrong success, or a malformed body, for an answer.
    async def impostor(ctx: ProcessContext) -> None:
        while True:
            request = await ctx.receive()
            assert isinstance(request, kvruntime.Request)
            await ctx.respond(request, request.body)  # the request's body: no KvResponse

    async def exists_only(ctx: ProcessContext) -> None:
        while True:
            request = await ctx.receive()
            assert isinstance(request, kvruntime.Request)
            await ctx.respond(request, b"\x81\xa6Exists\xc3")  # {"Exists": true}

    await rt.spawn("impostor:svc:pub.os", impostor, public=True)
    await rt.spawn("exists:svc:pub.os", exists_only, public=True)

    async def body(ctx: ProcessContext) -> list[str]:
        db = await kv.open(ctx, ctx.package_id, "db")
        seen = []
        for target in ("exists:svc:pub.os", "impostor:svc:pub.os"):
            db._target = ctx.resolve(target)  # white-box: point the handle elsewhere
            calls: list[Awaitable[object]] = [
                db.set(b"k", b"v"),
                db.delete(b"k"),
                db.get(b"k"),
                db.get_stream(b"k"),
                db.set(b"k", b"v", tx_id=1),
                db.delete(b"k", tx_id=1),
                db.get(b"k", tx_id=1),
                db.get_many([b"k"]),
                db.set_many({b"k": b"v"}),
                db.delete_many([b"k"]),
                db.write_batch({b"k": None}),
                db.list_page(),
                db.delete_range(),
                db.increment(b"n"),
                db.compare_and_swap(b"k", None, b"v"),
                db.begin_tx(),
                db.commit_tx(1),
                db.rollback_tx(1),
                db.capabilities(),
                db.revoke("other:demo:alice.os"),
            ]
            for call in calls:
                with pytest.raises(kv.UnexpectedResponse) as caught:
                    await call
                seen.append(str(caught.value).split(":")[0])
        db._target = ctx.resolve("exists:svc:pub.os")
        assert await db.exists(b"k") is True  # the one call this answer fits
        return seen

    assert await run_as(rt, "app:demo:alice.os", body) == ["kv"] * 40
