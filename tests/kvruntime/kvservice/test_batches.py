"""get_many / set_many / delete_many through the bus: one request each, atomic writes."""

from __future__ import annotations

import msgpack
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from kvruntime.client._exchange import request
from kvruntime.client.errors import check_pair_sizes
from protocol.blobs import encode_items, encode_keys, encode_writes
from protocol.ids import PackageId
from protocol.messages import (
    DeleteMany,
    GetMany,
    KvAction,
    SetMany,
    SetManyExpiring,
    TxGetMany,
    WriteBatch,
)
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

OWNER = "app:demo:alice.os"


@pytest.fixture
def config() -> KvConfig:
    """A small batch bound and value bound so that a test crosses them."""
    return KvConfig(max_batch_items=50, max_value_bytes=1000)


async def test_get_many_is_aligned_with_the_keys(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "b")
        await db.set_many({b"a": b"1", b"c": b"3"})
        return await db.get_many([b"c", b"missing", b"a", b"c"])

    assert await run_as(rt, OWNER, body) == [b"3", None, b"1", b"3"]


async def test_set_many_duplicates_last_wins(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "b")
        await db.set_many([(b"k", b"first"), (b"j", b"x"), (b"k", b"last")])
        await db.delete_many([b"j", b"j", b"nope"])
        return await db.get_many([b"k", b"j"])

    assert await run_as(rt, OWNER, body) == [b"last", None]


async def test_set_many_is_atomic_a_bad_item_writes_nothing(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "b")
        with pytest.raises(kv.ValueTooLarge):
            await db.set_many([(b"ok1", b"v"), (b"big", b"x" * 1001), (b"ok2", b"v")])
        return await db.get_many([b"ok1", b"big", b"ok2"])

    assert await run_as(rt, OWNER, body) == [None, None, None]


async def test_batch_over_the_item_bound_is_refused(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> int:
        db = await kv.open(ctx, ctx.package_id, "b")
        with pytest.raises(kv.BatchTooLarge, match="51 items exceeds the limit of 50"):
            await db.set_many((b"%d" % i, b"v") for i in range(51))
        with pytest.raises(kv.BatchTooLarge):
            await db.get_many(b"%d" % i for i in range(51))
        return len([k async for k in db.keys()])

    assert await run_as(rt, OWNER, body) == 0


async def test_a_malformed_batch_blob_is_malformed_request(rt: Runtime) -> None:
    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "b")
        package = PackageId.parse("demo:alice.os")
        for blob in (b"\x91\xc4\x01k", b"\x92\xc4\x01k\xc4\x01v", None, b"\xc1"):
            with pytest.raises(kv.MalformedRequest):
                await request(ctx, package, "b", SetMany(count=2), blob=blob, timeout=5)
        assert [k async for k in db.keys()] == []

    await run_as(rt, OWNER, body)


def _blob(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


# Blobs of the right count whose entries are of the wrong shape, each one a
# way past the C-level checks kv makes on a whole batch (a transposed batch of
# 2-byte bins gives ints, of 2-char strs gives strs; a nested array, a nil or
# an int where bin is due, an entry of one or three items).
_BAD_PAIRS: list[list[object]] = [
    [b"kv"],
    [b"ab", b"cd"],
    ["kv"],
    [[[b"k"], b"v"]],
    [[b"k", [b"v"]]],
    [[b"k", 1]],
    [[1, b"v"]],
    [[None, b"v"]],
    [[b"k", b"v"], b"ab"],
    [[b"k", b"v"], [b"j"]],
    [[b"k", b"v"], [b"j", b"w", b"x"]],
    [[b"k", b"v"], ["j", b"w"]],
]
_BAD_KEYS: list[list[object]] = [[[b"k"]], [1], [None], ["k"], [b"k", [b"j"]], [b"k", "j"]]


_BAD_BATCHES: list[tuple[KvAction, list[object]]] = [
    *((SetMany(count=len(e)), e) for e in _BAD_PAIRS),
    *((SetManyExpiring(count=len(e), ttl_ms=60_000), e) for e in _BAD_PAIRS[:4]),
    *((WriteBatch(tx_id=None, count=len(e)), e) for e in _BAD_PAIRS),
    *((DeleteMany(count=len(e)), e) for e in _BAD_KEYS),
    *((GetMany(count=len(e)), e) for e in _BAD_KEYS),
]


@pytest.mark.parametrize(
    ("action", "entries"),
    _BAD_BATCHES,
    ids=repr,
)
async def test_every_kind_of_bad_batch_entry_is_malformed_and_writes_nothing(
    rt: Runtime, action: KvAction, entries: list[object]
) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "b")
        await db.set_many([(b"k", b"old"), (b"j", b"old")])
        with pytest.raises(kv.MalformedRequest):
            await request(ctx, ctx.package_id, "b", action, blob=_blob(entries), timeout=5)
        return await db.get_many([b"k", b"j", b"kv", b"ab"])

    assert await run_as(rt, OWNER, body) == [b"old", b"old", None, None]


async def test_tx_get_many_checks_its_blob_before_the_transaction(rt: Runtime) -> None:
    """Step 6 (batch bound, blob shape, key size) answers before step 7 (NoTx)."""

    async def body(ctx: ProcessContext) -> list[str]:
        await kv.open(ctx, ctx.package_id, "b")
        package = PackageId.parse("demo:alice.os")
        seen = []
        for count, blob in (
            (51, encode_keys([b"k"] * 51)),
            (2, b"\x91\xc4\x01k"),
            (1, None),
            (1, encode_keys([b"k"])),
        ):
            with pytest.raises(kv.KvError) as caught:
                await request(
                    ctx, package, "b", TxGetMany(count=count, tx_id=7), blob=blob, timeout=5
                )
            seen.append(type(caught.value).__name__)
        return seen

    assert await run_as(rt, OWNER, body) == [
        "BatchTooLarge",
        "MalformedRequest",
        "MalformedRequest",
        "NoTx",
    ]


async def test_batches_need_capabilities(rt: Runtime) -> None:
    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "b")
        await db.set(b"k", b"v")
        await db.share("reader:guest:bob.os")

    await run_as(rt, OWNER, owner)

    async def reader(ctx: ProcessContext) -> list[bytes | None]:
        db = kv.handle(ctx, "demo:alice.os", "b")
        with pytest.raises(kv.NoWriteCap):
            await db.set_many({b"k": b"w"})
        with pytest.raises(kv.NoWriteCap):
            await db.delete_many([b"k"])
        return await db.get_many([b"k"])

    assert await run_as(rt, "reader:guest:bob.os", reader) == [b"v"]

    async def outsider(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, "demo:alice.os", "b")
        with pytest.raises(kv.NoReadCap):
            await db.get_many([b"k"])
        with pytest.raises(kv.NoWriteCap):
            await db.set_many({b"k": b"w"})
        with pytest.raises(kv.NoWriteCap):
            await db.delete_many([b"k"])

    await run_as(rt, "eve:other:eve.os", outsider)


async def test_a_raw_set_many_with_a_str_entry_is_refused_whole(rt: Runtime) -> None:
    """The client refuses a str entry before sending (TypeError); sent anyway, kv
    checks every entry and writes none."""

    async def body(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "typed")
        items: list[tuple[bytes, bytes]] = [(b"a", b"1"), ("b", b"2")]  # type: ignore[list-item]
        with pytest.raises(TypeError, match="key 1 must be bytes"):
            await db.set_many(items)
        with pytest.raises(kv.MalformedRequest):
            await request(
                ctx, db.package_id, "typed", SetMany(count=2), blob=encode_items(items), timeout=5
            )
        assert await db.get_many([b"a", b"b"]) == [None, None]

    await run_as(rt, "app:typed:pub.os", body)


async def test_the_kv_side_size_checks_of_batches(rt: Runtime) -> None:
    # Raw requests, past the client's own checks: the kv process answers as
    # PROTOCOL.md orders it, a key past the limit before a value past it, and
    # a delete (nil value) is never too large.
    big_key, big_value = b"k" * 70_000, b"v" * 1001
    cases: list[tuple[KvAction, bytes]] = [
        (SetMany(count=2), encode_items([(b"a", big_value), (big_key, b"v")])),
        (SetMany(count=2), encode_items([(b"a", b"v"), (b"b", big_value)])),
        (WriteBatch(tx_id=None, count=2), encode_writes([(b"a", None), (b"b", big_value)])),
        (WriteBatch(tx_id=None, count=2), encode_writes([(big_key, None), (b"b", b"v")])),
        (WriteBatch(tx_id=None, count=3), encode_writes([(b"a", None), (b"b", b"v"), (b"c", b"")])),
        # Values adding up past the limit, each within it (as keys past max_key_bytes).
        (SetMany(count=3), encode_items([(b"d" * 40_000, b"v" * 600)] * 2 + [(b"e", b"w" * 1000)])),
    ]

    async def body(ctx: ProcessContext) -> tuple[list[str], list[bytes | None]]:
        db = await kv.open(ctx, ctx.package_id, "b")
        await db.set(b"a", b"old")
        outcomes = []
        for action, blob in cases:
            try:
                await request(ctx, ctx.package_id, "b", action, blob=blob, timeout=5)
            except kv.KvError as exc:
                outcomes.append(type(exc).__name__)
            else:
                outcomes.append("Ok")
        return outcomes, await db.get_many([b"a", b"b", b"c", b"d" * 40_000, b"e"])

    outcomes, values = await run_as(rt, OWNER, body)
    assert outcomes == ["KeyTooLarge", "ValueTooLarge", "ValueTooLarge", "KeyTooLarge", "Ok", "Ok"]
    assert values == [None, b"v", b"", b"v" * 600, b"w" * 1000]  # only the last two landed


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([(b"a", b"v"), (b"b", None)], None),
        ([(b"a", b"v" * 11), (b"k" * 6, b"v")], kv.KeyTooLarge),  # the key wins
        ([(b"a", None), (b"b", b"v" * 11)], kv.ValueTooLarge),
        ([(b"k" * 6, None)], kv.KeyTooLarge),
        ([(b"a", b"v" * 10), (b"k" * 5, b"")], None),  # at the limits
    ],
)
def test_client_side_pair_size_checks(
    pairs: list[tuple[bytes, bytes | None]], expected: type[Exception] | None
) -> None:
    if expected is None:
        check_pair_sizes(pairs, max_key=5, max_value=10)
    else:
        with pytest.raises(expected):
            check_pair_sizes(pairs, max_key=5, max_value=10)
