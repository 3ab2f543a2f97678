"""The client's errors: one documented family, bad input refused before sending,
and reads through a label that never create a db."""

from __future__ import annotations

import re
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import kvruntime
from kvruntime import PackageId, ProcessContext, Runtime, kv
from protocol import messages as m
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

APP = "app:mine:pub.os"
OTHER_APP = "other:mine:pub.os"  # another process of the same package
MINE = PackageId.parse("mine:pub.os")


def dbs(home: Path) -> set[str]:
    """The dbs of package ``mine:pub.os`` on disk."""
    folder = home / "kv" / "mine:pub.os"
    return {path.name for path in folder.iterdir()} if folder.is_dir() else set()


def tree(root: Path) -> set[Path]:
    """Every path under ``root``."""
    return set(root.rglob("*"))


# --- a read through a label never creates a db -------------------------------------------


async def test_a_label_read_of_a_missing_db_is_nodb_and_creates_nothing(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        stores = kv.stores(ctx)
        reads: list[Callable[[], Awaitable[object]]] = [
            lambda: kv.get(ctx, "never", b"k"),
            lambda: kv.get(ctx, "never", b"k", None),
            lambda: kv.exists(ctx, "never", b"k"),
            lambda: kv.delete(ctx, "never", b"k"),
            lambda: stores.never.get(b"k"),
            lambda: stores.never.get(b"k", b"default"),
            lambda: stores["never"].exists(b"k"),
            lambda: stores["never"].delete(b"k"),
        ]
        for read in reads:
            with pytest.raises(kv.NoDb, match=r"db \[mine:pub\.os, never\] does not exist") as hit:
                await read()
            assert hit.value.error == m.NoDb(package_id=MINE, db="never")
        assert "never" not in dbs(rt.home)
        # A write creates it; the label reads it from then on.
        await kv.set(ctx, "never", b"k", b"v")
        assert await kv.get(ctx, "never", b"k") == b"v"
        assert await stores.never.exists(b"k")

    await run_as(rt, APP, body)
    assert "never" in dbs(rt.home)


async def test_a_label_read_opens_a_db_another_process_of_the_package_created(
    rt: Runtime,
) -> None:
    async def writer(ctx: ProcessContext) -> None:
        await kv.set(ctx, "shared", b"k", b"v")

    await run_as(rt, APP, writer)

    async def reader(ctx: ProcessContext) -> list[object]:
        # This process never opened "shared": the label opens it, as it exists.
        return [
            await kv.get(ctx, "shared", b"k"),
            await kv.stores(ctx).shared.exists(b"k"),
            await (await kv.stores(ctx).shared.handle()).capabilities(),
        ]

    assert await run_as(rt, OTHER_APP, reader) == [b"v", True, ["read", "write"]]


async def test_a_label_read_of_a_db_removed_meanwhile_is_nodb(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        await kv.set(ctx, "gone", b"k", b"v")
        await kv.remove_db(ctx, ctx.package_id, "gone")
        with pytest.raises(kv.NoDb):
            await kv.get(ctx, "gone", b"k", None)
        with pytest.raises(kv.NoDb):
            await kv.stores(ctx).gone.exists(b"k")

    await run_as(rt, APP, body)
    assert "gone" not in dbs(rt.home)


async def test_open_without_create_is_nodb_for_a_missing_db_and_opens_an_existing_one(
    rt: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> None:
        with pytest.raises(kv.NoDb, match=r"db \[mine:pub\.os, absent\] does not exist"):
            await kv.open(ctx, ctx.package_id, "absent", create=False)
        assert "absent" not in dbs(rt.home)
        made = await kv.open(ctx, ctx.package_id, "made")  # create=True is the default
        await made.set(b"k", b"v")

    await run_as(rt, APP, body)
    assert dbs(rt.home) == {"made"}

    async def other(ctx: ProcessContext) -> list[object]:
        # This process holds nothing on "made": create=False opens it, as it exists.
        db = await kv.open(ctx, ctx.package_id, "made", create=False)
        return [await db.get(b"k"), await db.capabilities()]

    assert await run_as(rt, OTHER_APP, other) == [b"v", ["read", "write"]]


# --- names and ids: IdError before sending -------------------------------------------------

BAD_NAMES = ["\ud800", "a\udfffb", "", ".", "..", "a/b", "a\\b", "nul\x00", "x" * 256]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_a_bad_db_name_is_id_error_and_touches_nothing(
    rt: Runtime, home: Path, name: str
) -> None:
    before = tree(home)

    async def body(ctx: ProcessContext) -> None:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: kv.open(ctx, ctx.package_id, name),
            lambda: kv.remove_db(ctx, ctx.package_id, name),
            lambda: kv.get(ctx, name, b"k"),
            lambda: kv.set(ctx, name, b"k", b"v"),
            lambda: kv.exists(ctx, name, b"k"),
            lambda: kv.delete(ctx, name, b"k"),
            lambda: kv.stores(ctx)[name].get(b"k"),
            lambda: kv.stores(ctx)[name].set(b"k", b"v"),
            lambda: kv.stores(ctx)[name].handle(),
        ]
        for call in calls:
            with pytest.raises(kv.IdError, match="db name"):
                await call()
        with pytest.raises(kv.IdError, match="db name"):
            kv.handle(ctx, ctx.package_id, name)

    await run_as(rt, APP, body)
    assert tree(home) == before


@pytest.mark.parametrize("package", ["Mine:pub.os", "mine", "mine:pub.os:x", "mine:..", 5])
async def test_a_bad_package_id_is_id_error(rt: Runtime, package: Any) -> None:
    async def body(ctx: ProcessContext) -> None:
        with pytest.raises(kv.IdError):
            await kv.open(ctx, package, "db")
        with pytest.raises(kv.IdError):
            kv.handle(ctx, package, "db")
        with pytest.raises(kv.IdError):
            await kv.remove_db(ctx, package, "db")

    await run_as(rt, APP, body)


@pytest.mark.usefixtures("scan_path")
@pytest.mark.parametrize("target", ["nobody", "a:b", "A:b:c.os", "x@y", 7])
async def test_a_bad_process_id_is_id_error(rt: Runtime, target: Any) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        with pytest.raises(kv.IdError):
            await db.share(target)
        with pytest.raises(kv.IdError):
            await db.revoke(target)

    await run_as(rt, APP, body)


# --- keys and values: TypeError before sending -------------------------------------------


class LyingBytes(bytes):
    """A bytes subclass whose ``len`` says 1 whatever it holds."""

    def __len__(self) -> int:
        return 1


class StrCodec:
    """A broken codec: its encode gives str, not bytes."""

    def encode(self, value: str) -> Any:
        return value

    def decode(self, data: bytes) -> str:
        return data.decode()


async def drain(items: AsyncIterator[object]) -> None:
    async for _ in items:
        pass


async def chunks(*parts: Any) -> AsyncIterator[Any]:
    for part in parts:
        yield part


#: A misuse of a handle (typed Any: the point is to pass what the types forbid).
Misuse = Callable[[Any], Awaitable[object]]


async def _in_tx(db: Any, act: Callable[[Any], Any]) -> None:
    async with db.transaction() as tx:
        await act(tx)


async def _awaited(value: object) -> object:
    return await value if isinstance(value, Awaitable) else value


# Each misuse, and the start of its message. The handle is on a db that does not
# exist, so anything sent would be answered NoDb: a TypeError shows nothing was.
MISUSES: list[tuple[str, Misuse, str]] = [
    ("get", lambda db: db.get("k"), "key must be bytes"),
    ("get tx", lambda db: db.get(1, tx_id=1), "key must be bytes"),
    ("get_stream", lambda db: db.get_stream("k"), "key must be bytes"),
    ("set key", lambda db: db.set("k", b"v"), "key must be bytes"),
    ("set value", lambda db: db.set(b"k", "v"), "value must be bytes"),
    ("set int", lambda db: db.set(b"k", 5), "value must be bytes"),
    ("set tx", lambda db: db.set(b"k", None, tx_id=1), "value must be bytes"),
    ("set chunks", lambda db: db.set(b"k", chunks(b"a", "b")), "value chunk 1 must be bytes"),
    ("set int chunk", lambda db: db.set(b"k", chunks(3)), "value chunk 0 must be bytes"),
    ("delete", lambda db: db.delete("k"), "key must be bytes"),
    ("exists", lambda db: db.exists(["k"]), "key must be bytes"),
    ("get_many", lambda db: db.get_many([b"a", "b"]), "key 1 must be bytes"),
    ("get_many tx", lambda db: db.get_many([3], tx_id=1), "key 0 must be bytes"),
    ("set_many key", lambda db: db.set_many({"a": b"v"}), "key 0 must be bytes"),
    ("set_many value", lambda db: db.set_many([(b"a", b"1"), (b"b", 2)]), "value 1 must be bytes"),
    (
        "set_many pair",
        lambda db: db.set_many([(b"a", b"1", b"x")]),
        "item 0 must be a (key, value) pair",
    ),
    ("set_many no pair", lambda db: db.set_many([b"ab"]), "item 0 must be a (key, value) pair"),
    ("delete_many", lambda db: db.delete_many([None]), "key 0 must be bytes"),
    ("write_batch key", lambda db: db.write_batch([(None, b"v")]), "key 0 must be bytes"),
    (
        "write_batch value",
        lambda db: db.write_batch({b"a": None, b"b": "v"}),
        "value 1 must be bytes",
    ),
    ("list_page start", lambda db: db.list_page(start="a"), "start must be bytes"),
    ("list_page end", lambda db: db.list_page(end=1), "end must be bytes"),
    ("list_page prefix", lambda db: db.list_page(prefix=5), "prefix must be bytes"),
    ("list_page cursor", lambda db: db.list_page(cursor="c"), "cursor must be bytes"),
    ("scan", lambda db: drain(db.scan(start="a")), "start must be bytes"),
    ("keys", lambda db: drain(db.keys(prefix=[1])), "prefix must be bytes"),
    ("delete_range", lambda db: db.delete_range(end="z"), "end must be bytes"),
    ("delete_range prefix", lambda db: db.delete_range(prefix=3), "prefix must be bytes"),
    ("increment", lambda db: db.increment("n"), "key must be bytes"),
    ("cas key", lambda db: db.compare_and_swap("k", None, b"v"), "key must be bytes"),
    ("cas expected", lambda db: db.compare_and_swap(b"k", "x", b"v"), "expected must be bytes"),
    ("cas new", lambda db: db.compare_and_swap(b"k", None, 1), "new must be bytes"),
    ("tx set key", lambda db: _in_tx(db, lambda tx: tx.set("k", b"v")), "key must be bytes"),
    ("tx set value", lambda db: _in_tx(db, lambda tx: tx.set(b"k", "v")), "value must be bytes"),
    ("tx delete", lambda db: _in_tx(db, lambda tx: tx.delete(2)), "key must be bytes"),
    ("tx get", lambda db: _in_tx(db, lambda tx: _awaited(tx.get("k"))), "key must be bytes"),
    ("tx exists", lambda db: _in_tx(db, lambda tx: _awaited(tx.exists("k"))), "key must be bytes"),
]


@pytest.mark.usefixtures("staging_path")  # tx.set in C and in Python
@pytest.mark.parametrize(
    ("misuse", "message"), [case[1:] for case in MISUSES], ids=[case[0] for case in MISUSES]
)
async def test_a_key_or_value_that_is_not_bytes_is_type_error_before_sending(
    rt: Runtime, misuse: Misuse, message: str
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, ctx.package_id, "absent")
        with pytest.raises(kv.NoDb):
            await db.get(b"k")  # sent, it is answered NoDb
        with pytest.raises(TypeError, match=rf"^{re.escape(message)}.*, got \w+"):
            await misuse(db)

    await run_as(rt, APP, body)


async def test_the_label_forms_check_the_key_before_sending(rt: Runtime, home: Path) -> None:
    before = tree(home)

    async def body(ctx: ProcessContext) -> None:
        label: Any = kv  # the label forms, untyped: the point is to pass what types forbid
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: label.get(ctx, "lbl", "k"),
            lambda: label.set(ctx, "lbl", "k", b"v"),
            lambda: label.exists(ctx, "lbl", 1),
            lambda: label.delete(ctx, "lbl", None),
            lambda: label.stores(ctx).lbl.get("k"),
        ]
        for call in calls:
            with pytest.raises(TypeError, match=r"^key must be bytes"):
                await call()
        with pytest.raises(
            TypeError, match=r"^value must be bytes, bytearray or memoryview, got str"
        ):
            await label.set(ctx, "lbl", b"k", "v")

    await run_as(rt, APP, body)
    assert tree(home) == before  # no db "lbl": nothing was sent


@pytest.mark.usefixtures("staging_path")  # tx.set in C and in Python
async def test_bytes_like_keys_and_values_are_taken_as_bytes(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[object]:
        db: Any = await kv.open(ctx, ctx.package_id, "db")  # Any: the types say bytes
        await db.set(bytearray(b"a"), memoryview(b"1"))
        await db.set_many([(bytearray(b"b"), b"2"), (b"c", memoryview(b"3"))])
        await db.write_batch([(memoryview(b"d"), bytearray(b"4"))])
        async with db.transaction() as tx:
            tx.set(bytearray(b"e"), bytearray(b"5"))
        return [await db.get_many([b"a", bytearray(b"b"), b"c", b"d", memoryview(b"e")])]

    assert await run_as(rt, APP, body) == [[b"1", b"2", b"3", b"4", b"5"]]


async def test_a_bytes_subclass_is_measured_as_the_bytes_it_holds(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, ctx.package_id, "absent", max_value_bytes=8, max_key_bytes=4)
        with pytest.raises(kv.ValueTooLarge, match="value of 9 bytes"):
            await db.set(b"k", LyingBytes(b"x" * 9))
        with pytest.raises(kv.KeyTooLarge, match="key of 5 bytes"):
            await db.get(LyingBytes(b"x" * 5))
        with pytest.raises(kv.ValueTooLarge, match="value of 9 bytes"):
            await db.set_many([(b"k", LyingBytes(b"x" * 9))])

    await run_as(rt, APP, body)


async def test_chunks_are_measured_as_the_bytes_they_hold(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, ctx.package_id, "absent", max_value_bytes=8)
        with pytest.raises(kv.ValueTooLarge, match="value of 10 bytes"):
            await db.set(b"k", chunks(LyingBytes(b"x" * 5), LyingBytes(b"y" * 5)))

    await run_as(rt, APP, body)


async def test_a_stream_of_chunks_of_no_size_is_value_error_before_sending(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, ctx.package_id, "absent")
        with pytest.raises(ValueError, match="chunk_size must be at least 1, got 0"):
            await db.get_stream(b"k", chunk_size=0)

    await run_as(rt, APP, body)


async def test_a_number_outside_its_wire_range_is_value_error_before_sending(
    rt: Runtime,
) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, ctx.package_id, "absent")  # anything sent: NoDb
        uint, int64, both = "a uint on the wire", "an int64 on the wire", "not both"
        calls: list[tuple[Callable[[], Awaitable[object]], str]] = [
            (lambda: db.get(b"k", tx_id=-1), uint),
            (lambda: db.set(b"k", b"v", tx_id=2**64), uint),
            (lambda: db.increment(b"n", 2**63), int64),
            (lambda: db.list_page(limit=-1), uint),
            (lambda: db.list_page(prefix=b"a", start=b"b"), both),
            (lambda: db.delete_range(prefix=b"a", end=b"b"), both),
            (lambda: db.commit_tx(-5), uint),
        ]
        for call, message in calls:
            with pytest.raises(ValueError, match=message):  # sent, it would be NoDb
                await call()

    await run_as(rt, APP, body)


@pytest.mark.usefixtures("scan_path")
async def test_a_codec_that_gives_no_bytes_is_type_error(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[bytes]:
        db = await kv.open(ctx, ctx.package_id, "db")
        broken = db.typed(StrCodec(), kv.BYTES)
        with pytest.raises(TypeError, match=r"^StrCodec\.encode gave str for the key"):
            await broken.set("k", b"v")
        # BYTES under another codec refuses what bytes() would misread (5 -> 5 NULs).
        json_keys: Any = db.typed(kv.JSON, kv.BYTES)
        with pytest.raises(
            TypeError, match=r"^value must be bytes, bytearray or memoryview, got int"
        ):
            await json_keys.set({"id": 1}, 5)
        with pytest.raises(TypeError, match=r"^value 0 must be bytes"):
            await json_keys.set_many([({"id": 2}, 5)])
        with pytest.raises(TypeError, match=r"^BytesCodec encodes bytes"):
            kv.BYTES.encode(typing.cast(bytes, 5))
        return [key async for key in db.keys()]

    assert await run_as(rt, APP, body) == []


# --- one documented family ---------------------------------------------------------------

#: What a process using the client may catch, besides TypeError/ValueError for local misuse.
FAMILY = [
    "KvError",
    "UnexpectedResponse",
    "IdError",
    "SendError",
    "CapabilityNotHeld",
]


def test_the_family_is_exported_from_kvruntime_and_kv_and_documented() -> None:
    doc = kv.__doc__ or ""
    for name in FAMILY:
        from_kv = getattr(kv, name)
        assert getattr(kvruntime, name) is from_kv, name
        assert name in kvruntime.__all__, name
        assert name in kv.__all__, name
        assert issubclass(from_kv, Exception), name
        assert (from_kv.__doc__ or "").strip(), name
        assert f"``{name}``" in doc, f"kv's docstring does not document {name}"
    assert kv.SendErrorKind is kvruntime.SendErrorKind
    assert issubclass(kv.IdError, ValueError)


def test_every_kv_error_variant_has_a_documented_class_under_kv_error() -> None:
    variants = typing.get_args(m.KvError)
    assert len(variants) >= 20
    for variant in variants:
        cls = getattr(kv, variant.__name__)
        assert issubclass(cls, kvruntime.KvError), variant
        assert variant.__name__ in kv.__all__, variant
        assert (cls.__doc__ or "").strip(), variant
    assert "``KvError``" in (kv.__doc__ or "")
