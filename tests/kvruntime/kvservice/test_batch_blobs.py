"""SetMany and WriteBatch blobs through the bus, as the compiled reader sees them.

kv reads a batch's blob in C (``protocol/_cblobs.c``) and hands its ops to
LevelDB's write batch in C (``storage/_cwrite.c``). A blob that reader refuses
(truncated, trailing bytes, an ext type, a wrong count) answers
MalformedRequest and writes nothing; one past a limit answers the typed error
with its numbers; a well-formed one in non-minimal headers is written. The
db is checked after each, through the client.
"""

from __future__ import annotations

import msgpack
import pytest

from kvruntime import KvConfig, ProcessContext, Runtime, kv
from kvruntime.client._exchange import request
from protocol.blobs import HAVE_C, encode_items, encode_writes
from protocol.messages import KvAction, SetMany, WriteBatch
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

OWNER = "app:demo:alice.os"
_GOOD = encode_items([(b"k", b"new"), (b"j", b"new")])
_GOOD_WRITES = encode_writes([(b"k", b"new"), (b"j", None)])


@pytest.fixture
def config() -> KvConfig:
    return KvConfig(max_key_bytes=8, max_value_bytes=16)


def test_kv_reads_batches_in_c() -> None:
    assert HAVE_C, "protocol._cblobs is not built"


_MALFORMED: list[tuple[str, bytes, int]] = [
    ("truncated", _GOOD[:-1], 2),
    ("truncated in a header", _GOOD[:3], 2),
    ("trailing bytes", _GOOD + b"\xc0", 2),
    ("one entry short", _GOOD, 3),
    ("one entry over", _GOOD, 1),
    ("an ext value", b"\x92\x92\xc4\x01k\xd4\x01\x00\x92\xc4\x01j\xc4\x01v", 2),
    ("an ext blob", msgpack.packb(msgpack.ExtType(1, b"x")), 2),
    ("a str key", msgpack.packb([["k", b"v"], [b"j", b"v"]], use_bin_type=True), 2),
    ("a nil value in SetMany", encode_writes([(b"k", b"v"), (b"j", None)]), 2),
    ("a bin length past the blob", b"\x92\x92\xc4\x01k\xc6\xff\xff\xff\xff", 2),
    ("a map", msgpack.packb({b"k": b"v", b"j": b"v"}, use_bin_type=True), 2),
]


@pytest.mark.parametrize(("case", "blob", "count"), _MALFORMED, ids=[c[0] for c in _MALFORMED])
async def test_a_malformed_set_many_answers_malformed_and_writes_nothing(
    rt: Runtime, case: str, blob: bytes, count: int
) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "b")
        await db.set_many([(b"k", b"old"), (b"j", b"old")])
        with pytest.raises(kv.MalformedRequest):
            await request(ctx, ctx.package_id, "b", SetMany(count=count), blob=blob, timeout=5)
        return await db.get_many([b"k", b"j"])

    assert await run_as(rt, OWNER, body) == [b"old", b"old"]


_REFUSED: list[tuple[str, KvAction, bytes, type[kv.KvError], str]] = [
    (
        "a key past the limit",
        SetMany(count=2),
        encode_items([(b"k", b"v"), (b"j" * 9, b"v")]),
        kv.KeyTooLarge,
        "key of 9 bytes exceeds the limit of 8",
    ),
    (
        "a value past the limit",
        SetMany(count=2),
        encode_items([(b"k", b"v" * 17), (b"j", b"v")]),
        kv.ValueTooLarge,
        "value of 17 bytes exceeds the limit of 16",
    ),
    (
        "a reserved key",
        SetMany(count=2),
        encode_items([(b"k", b"v"), (b"\xff" * 8, b"v")]),
        kv.KeyReserved,
        "reserved for kv",
    ),
    (
        "a write's key past the limit",
        WriteBatch(tx_id=None, count=2),
        encode_writes([(b"k", None), (b"j" * 9, b"v")]),
        kv.KeyTooLarge,
        "key of 9 bytes exceeds the limit of 8",
    ),
]


@pytest.mark.parametrize(
    ("case", "action", "blob", "error", "message"), _REFUSED, ids=[c[0] for c in _REFUSED]
)
async def test_a_batch_past_a_limit_answers_its_typed_error_and_writes_nothing(
    rt: Runtime, case: str, action: KvAction, blob: bytes, error: type[kv.KvError], message: str
) -> None:
    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "b")
        await db.set_many([(b"k", b"old"), (b"j", b"old")])
        with pytest.raises(error, match=message):
            await request(ctx, ctx.package_id, "b", action, blob=blob, timeout=5)
        return await db.get_many([b"k", b"j"])

    assert await run_as(rt, OWNER, body) == [b"old", b"old"]


async def test_well_formed_batches_are_written_whatever_their_headers(rt: Runtime) -> None:
    """array16 and bin16 for short lengths are msgpack too; the writes land in order."""
    non_minimal = (
        b"\xdc\x00\x02"
        + b"\xdc\x00\x02\xc5\x00\x01k\xc5\x00\x03new"
        + b"\xdd\x00\x00\x00\x02\xc6\x00\x00\x00\x01j\xc4\x03new"
    )

    async def body(ctx: ProcessContext) -> list[list[bytes | None]]:
        db = await kv.open(ctx, ctx.package_id, "b")
        seen = []
        await request(ctx, ctx.package_id, "b", SetMany(count=2), blob=non_minimal, timeout=5)
        seen.append(await db.get_many([b"k", b"j"]))
        await request(
            ctx, ctx.package_id, "b", WriteBatch(tx_id=None, count=2), blob=_GOOD_WRITES, timeout=5
        )
        seen.append(await db.get_many([b"k", b"j"]))
        await db.set_many([(b"a", b"1"), (b"a", b"2"), (b"b", b"3")])  # the client's C packing
        async with db.transaction() as tx:
            tx.set(b"c", b"4")
            tx.delete(b"b")
        seen.append(await db.get_many([b"a", b"b", b"c"]))
        return seen

    assert await run_as(rt, OWNER, body) == [
        [b"new", b"new"],
        [b"new", None],
        [b"2", None, b"4"],
    ]


async def test_the_client_refuses_what_it_cannot_pack_in_c_as_before(rt: Runtime) -> None:
    """Pairs the C packer declines (bytes-like, over a limit) take the checked path."""

    async def body(ctx: ProcessContext) -> list[bytes | None]:
        db = await kv.open(ctx, ctx.package_id, "b")
        await db.set_many([(bytearray(b"x"), memoryview(b"1")), [b"y", b"2"]])  # type: ignore[list-item]
        with pytest.raises(kv.ValueTooLarge):
            await db.set_many([(b"z", b"v" * 17)])
        with pytest.raises(kv.KeyTooLarge):
            await db.write_batch([(b"z" * 9, None)])
        with pytest.raises(TypeError, match="key 0"):
            await db.set_many([("s", b"v")])  # type: ignore[list-item]
        return await db.get_many([b"x", b"y", b"z"])

    assert await run_as(rt, OWNER, body) == [b"1", b"2", None]
