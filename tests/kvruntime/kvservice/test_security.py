"""Who may do what: the order of checks, remote senders, capabilities, names, hostile bodies.

Everything goes through the bus as a sender would; requests from another
node come in through ``Runtime.deliver_from_network`` and their answers are
read from the bus's network outbox.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import msgpack
import pytest

from kvruntime import (
    Address,
    CapabilityNotHeld,
    KvConfig,
    ProcessContext,
    ProcessId,
    Request,
    Runtime,
    SendError,
    SendErrorKind,
    kv,
)
from kvruntime.kernel.bus import messaging_capability
from kvruntime.kvservice.access import kv_capability
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import (
    BeginTx,
    Commit,
    Delete,
    ErrResponse,
    Exists,
    Get,
    KeyTooLarge,
    KvAction,
    KvError,
    KvRequest,
    MalformedRequest,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    NoTx,
    NoWriteCap,
    Open,
    RemoteNotAllowed,
    RemoveDb,
    Set,
    ValueTooLarge,
)
from tests.conftest import run_as
from tests.internals import bus_of, caps_of

pytestmark = pytest.mark.anyio

PKG_A = PackageId.parse("alpha:pub.os")
PKG_B = PackageId.parse("beta:pub.os")
OWNER_A = "owner:alpha:pub.os"
OWNER_B = "owner:beta:pub.os"
MAX_KEY = 64


@pytest.fixture
def config() -> KvConfig:
    """A small key limit, so an oversized key is cheap."""
    return KvConfig(max_key_bytes=MAX_KEY)


async def raw(
    ctx: ProcessContext,
    package_id: PackageId,
    db: str,
    action: KvAction,
    *,
    blob: bytes | None = None,
) -> KvError | None:
    """Send one request; return its error, or None for a success."""
    body = encode_request(KvRequest(package_id=package_id, db=db, action=action))
    response = decode_response(
        (await ctx.send_and_await_response(KV_PROCESS_ID, body, blob=blob)).body
    )
    return response.error if isinstance(response, ErrResponse) else None


async def open_db(rt: Runtime, process: str, db: str, items: dict[bytes, bytes]) -> None:
    """As ``process``: open ``db`` of its own package and write ``items``."""

    async def body(ctx: ProcessContext) -> None:
        handle = await kv.open(ctx, ctx.package_id, db)
        for key, value in items.items():
            await handle.set(key, value)

    await run_as(rt, process, body)


def every_action(tx_id: int, key: bytes = b"k") -> list[tuple[KvAction, bytes | None, bool]]:
    """Each non-Open action with its blob and whether it needs the write capability."""
    return [
        (Get(key=key), None, False),
        (Exists(key=key), None, False),
        (Set(key=key, tx_id=None), b"v", True),
        (Set(key=key, tx_id=tx_id), b"v", True),
        (Delete(key=key, tx_id=None), None, True),
        (BeginTx(), None, True),
        (Commit(tx_id=tx_id), None, True),
    ]


# --- remote senders -----------------------------------------------------------------


async def test_remote_senders_are_refused_after_decoding(rt: Runtime) -> None:
    await open_db(rt, OWNER_A, "db", {b"k": b"v"})
    remote = Address(node="far.os", process=ProcessId.parse(OWNER_A))

    def body(action: KvAction, db: str = "db") -> bytes:
        return encode_request(KvRequest(package_id=PKG_A, db=db, action=action))

    # The network seam checks messaging as the bus does: only a remote holder of
    # kv's messaging capability reaches kv, which still refuses it.
    caps_of(rt).grant(remote, [messaging_capability(rt.kv_address)])
    not_allowed, malformed = RemoteNotAllowed(), MalformedRequest()
    cases: list[tuple[bytes, bytes | None, KvError]] = [
        (body(Get(key=b"k")), None, not_allowed),
        (body(Open()), None, not_allowed),
        (body(RemoveDb()), None, not_allowed),
        (body(Set(key=b"k", tx_id=None)), b"new", not_allowed),
        (body(Open(), db="../db"), None, malformed),  # decoding and names come first
        (body(Set(key=b"k", tx_id=None)), None, malformed),  # a Set without its blob
        (b"\xc1garbage", None, malformed),
    ]
    for raw_body, blob, expected in cases:
        request = Request(
            id=bus_of(rt).next_id(),
            source=remote,
            target=rt.kv_address,
            body=raw_body,
            blob=blob,
            metadata="meta",
            expects_response=5.0,
        )
        await rt.deliver_from_network(request)
        with anyio.fail_after(5):
            response = await rt.network_response()
        assert (response.id, response.target) == (request.id, remote)
        assert response.metadata is None
        assert decode_response(response.body) == ErrResponse(error=expected)

    async def check(ctx: ProcessContext) -> bytes:
        return await kv.handle(ctx, PKG_A, "db").get(b"k")

    assert await run_as(rt, OWNER_A, check) == b"v"  # neither removed nor overwritten


# --- package, existence, capability, size, transaction: in that order ----------------


async def test_open_and_remove_db_only_for_the_own_package(rt: Runtime, home: Path) -> None:
    await open_db(rt, OWNER_A, "db", {b"k": b"v"})

    async def intruder(ctx: ProcessContext) -> None:
        for db in ("db", "never-made"):
            for action in (Open(), RemoveDb()):
                assert await raw(ctx, PKG_A, db, action) == MismatchingPackageId()
        with pytest.raises(kv.MismatchingPackageId, match="mismatching package ID"):
            await kv.open(ctx, PKG_A, "db")

    await run_as(rt, OWNER_B, intruder)
    assert not (home / "kv" / str(PKG_A) / "never-made").exists()
    assert not (home / "kv" / str(PKG_B)).exists()

    async def check(ctx: ProcessContext) -> bytes:
        return await kv.handle(ctx, PKG_A, "db").get(b"k")

    assert await run_as(rt, OWNER_A, check) == b"v"


async def test_missing_db_is_nodb_for_its_package_and_a_cap_error_for_others(
    rt: Runtime, home: Path
) -> None:
    await open_db(rt, OWNER_A, "db", {})
    nodb = NoDb(package_id=PKG_A, db="missing")

    async def insider(ctx: ProcessContext) -> None:  # same package, holds nothing
        for action, blob, _ in every_action(tx_id=7):
            assert await raw(ctx, PKG_A, "missing", action, blob=blob) == nodb
        assert await raw(ctx, PKG_A, "missing", RemoveDb()) == nodb
        with pytest.raises(kv.NoDb, match=r"db \[alpha:pub.os, missing\] does not exist"):
            await kv.handle(ctx, PKG_A, "missing").get(b"k")
        # the db that exists: this process never opened it, so it holds no capability
        for action, blob, write in every_action(tx_id=7):
            expected = NoWriteCap() if write else NoReadCap()
            assert await raw(ctx, PKG_A, "db", action, blob=blob) == expected

    async def outsider(ctx: ProcessContext) -> None:
        for db in ("missing", "db"):  # outsiders cannot tell which dbs exist
            for action, blob, write in every_action(tx_id=7):
                expected = NoWriteCap() if write else NoReadCap()
                assert await raw(ctx, PKG_A, db, action, blob=blob) == expected

    await run_as(rt, "sibling:alpha:pub.os", insider)
    await run_as(rt, OWNER_B, outsider)
    assert not (home / "kv" / str(PKG_A) / "missing").exists()


async def test_capability_is_checked_before_sizes_and_sizes_before_transactions(
    rt: Runtime,
) -> None:
    await open_db(rt, OWNER_A, "db", {})
    huge = b"x" * (MAX_KEY + 1)

    async def outsider(ctx: ProcessContext) -> None:
        for action, blob, write in every_action(tx_id=7, key=huge):
            expected = NoWriteCap() if write else NoReadCap()
            assert await raw(ctx, PKG_A, "db", action, blob=blob) == expected

    async def owner(ctx: ProcessContext) -> None:
        too_long = KeyTooLarge(size=MAX_KEY + 1, max=MAX_KEY)
        for tx_id in (None, 7):
            assert await raw(ctx, PKG_A, "db", Set(key=huge, tx_id=tx_id), blob=b"v") == too_long
            assert await raw(ctx, PKG_A, "db", Delete(key=huge, tx_id=tx_id)) == too_long
        big_value = b"v" * (KvConfig().max_value_bytes + 1)
        assert await raw(ctx, PKG_A, "db", Set(key=b"k", tx_id=7), blob=big_value) == (
            ValueTooLarge(size=len(big_value), max=KvConfig().max_value_bytes)
        )
        assert await raw(ctx, PKG_A, "db", Set(key=b"k", tx_id=7), blob=b"v") == NoTx(tx_id=7)
        with pytest.raises(kv.NoTx, match="no transaction 7 found"):
            await kv.handle(ctx, PKG_A, "db").commit_tx(7)

    await run_as(rt, OWNER_B, outsider)
    await run_as(rt, OWNER_A, owner)


# --- capabilities -------------------------------------------------------------------


async def test_capabilities_are_scoped_by_package_and_db(rt: Runtime) -> None:
    await open_db(rt, OWNER_A, "foo", {b"k": b"from alpha"})
    await open_db(rt, OWNER_B, "foo", {b"k": b"from beta"})
    reader = "reader:gamma:pub.os"
    writer = "writer:gamma:pub.os"

    async def share(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, ctx.package_id, "foo")
        await db.share(reader)
        await db.share(Address.parse(f"our.os@{writer}"), write=True)

    await run_as(rt, OWNER_A, share)

    async def read_only(ctx: ProcessContext) -> None:
        foo_a, foo_b = kv.handle(ctx, PKG_A, "foo"), kv.handle(ctx, PKG_B, "foo")
        assert await foo_a.get(b"k") == b"from alpha"
        assert await foo_a.exists(b"k")
        for attempt in (foo_a.set(b"k", b"x"), foo_a.delete(b"k"), foo_a.begin_tx()):
            with pytest.raises(kv.NoWriteCap, match="no write capability for requested DB"):
                await attempt
        with pytest.raises(kv.NoReadCap, match="no read capability for requested DB"):
            await foo_b.get(b"k")
        with pytest.raises(CapabilityNotHeld):  # it holds read, not write
            await foo_a.share(writer, write=True)
        with pytest.raises(kv.MismatchingPackageId):
            await kv.remove_db(ctx, PKG_A, "foo")

    async def read_write(ctx: ProcessContext) -> None:
        foo_a, foo_b = kv.handle(ctx, PKG_A, "foo"), kv.handle(ctx, PKG_B, "foo")
        await foo_a.set(b"k2", b"by writer")
        tx = await foo_a.begin_tx()
        await foo_a.delete(b"k2", tx_id=tx)
        await foo_a.set(b"k3", b"in tx", tx_id=tx)
        await foo_a.commit_tx(tx)
        assert await foo_a.get(b"k3") == b"in tx"
        assert not await foo_a.exists(b"k2")
        with pytest.raises(kv.NoWriteCap):
            await foo_b.set(b"k", b"x")

    async def owner_b(ctx: ProcessContext) -> None:  # holds beta/foo, which is not alpha/foo
        with pytest.raises(kv.NoReadCap):
            await kv.handle(ctx, PKG_A, "foo").get(b"k")
        assert await kv.handle(ctx, PKG_B, "foo").get(b"k") == b"from beta"

    await run_as(rt, reader, read_only)
    await run_as(rt, writer, read_write)
    await run_as(rt, OWNER_B, owner_b)


async def test_messaging_permission_and_attached_capabilities_are_enforced(
    rt: Runtime,
) -> None:
    await open_db(rt, OWNER_A, "foo", {b"k": b"v"})
    body = encode_request(KvRequest(package_id=PKG_A, db="foo", action=Get(key=b"k")))

    async def no_messaging(ctx: ProcessContext) -> None:
        for attempt in (
            kv.open(ctx, ctx.package_id, "mine"),
            kv.handle(ctx, PKG_A, "foo").get(b"k"),
        ):
            with pytest.raises(SendError) as caught:
                await attempt
            assert caught.value.kind is SendErrorKind.FORBIDDEN

    async def forger(ctx: ProcessContext) -> None:
        forged = kv_capability(ctx.our.node, "read", PKG_A, "foo")
        with pytest.raises(SendError) as caught:
            await ctx.send_and_await_response(KV_PROCESS_ID, body, capabilities=[forged])
        assert caught.value.kind is SendErrorKind.CAPABILITY_NOT_HELD
        with pytest.raises(CapabilityNotHeld):
            await kv.handle(ctx, PKG_A, "foo").share(OWNER_B)
        with pytest.raises(CapabilityNotHeld):
            ctx.save_capabilities([forged])
        assert not ctx.holds(forged)

    await run_as(rt, "locked:gamma:pub.os", no_messaging, kv=False)
    await run_as(rt, "forger:gamma:pub.os", forger)

    async def outsider(ctx: ProcessContext) -> None:
        assert await raw(ctx, PKG_A, "foo", Get(key=b"k")) == NoReadCap()

    await run_as(rt, OWNER_B, outsider)  # nothing was granted on the way


async def test_a_capability_attached_to_a_message_can_be_saved_by_its_receiver(
    rt: Runtime,
) -> None:
    await open_db(rt, OWNER_A, "foo", {b"k": b"v"})
    got: list[bytes] = []

    async def receiver(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        ctx.save_capabilities(message.capabilities)
        got.append(await kv.handle(ctx, PKG_A, "foo").get(b"k"))
        with pytest.raises(kv.NoWriteCap):
            await kv.handle(ctx, PKG_A, "foo").set(b"k", b"x")

    handle = await rt.spawn(
        "receiver:gamma:pub.os", receiver, request_capabilities=["kv:distro:sys"], public=True
    )

    async def giver(ctx: ProcessContext) -> None:
        cap = kv_capability(ctx.our.node, "read", PKG_A, "foo")
        await ctx.send("receiver:gamma:pub.os", b"here", capabilities=[cap])

    await run_as(rt, OWNER_A, giver)
    with anyio.fail_after(5):
        await handle.wait()
    assert got == [b"v"]


# --- db names -----------------------------------------------------------------------

BAD_NAMES = ["..", ".", "a/b", "/abs", "a\\b", "nul\x00", "x" * 256, "é" * 128, "", "../../x"]


def tree(root: Path) -> set[Path]:
    """Every path under ``root``."""
    return set(root.rglob("*"))


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_bad_db_names_are_malformed_and_touch_nothing(
    rt: Runtime, home: Path, name: str
) -> None:
    await open_db(rt, OWNER_A, "db", {})
    before = tree(home.parent)

    async def body(ctx: ProcessContext) -> None:
        actions: list[tuple[KvAction, bytes | None, bool]] = [
            (Open(), None, True),
            (RemoveDb(), None, True),
            *every_action(7),
        ]
        for action, blob, _ in actions:
            assert await raw(ctx, PKG_A, name, action, blob=blob) == MalformedRequest()
        with pytest.raises(kv.IdError, match="db name"):  # the client checks before sending
            await kv.open(ctx, PKG_A, name)

    await run_as(rt, OWNER_A, body)
    assert tree(home.parent) == before
    assert not await anyio.Path("/abs").exists()


async def test_bad_package_ids_in_bodies_are_malformed(rt: Runtime, home: Path) -> None:
    before = tree(home.parent)

    async def body(ctx: ProcessContext) -> None:
        for package_name, publisher_node in [("..", "pub.os"), ("alpha", ".."), ("a/b", "x")]:
            wire = {
                "package_id": {"package_name": package_name, "publisher_node": publisher_node},
                "db": "db",
                "action": "Open",
            }
            message = await ctx.send_and_await_response(
                KV_PROCESS_ID, msgpack.packb(wire, use_bin_type=True)
            )
            assert decode_response(message.body) == ErrResponse(error=MalformedRequest())

    await run_as(rt, OWNER_A, body)
    assert tree(home.parent) == before


async def test_a_strange_but_valid_name_lives_under_its_package(rt: Runtime, home: Path) -> None:
    names = ["🎂 Geburtstage: ü…", "..hidden..", "é" * 127 + "x", "-rf *"]

    async def body(ctx: ProcessContext) -> None:
        for name in names:
            db = await kv.open(ctx, ctx.package_id, name)
            await db.set(b"k", name.encode())
        for name in names:
            assert await kv.handle(ctx, ctx.package_id, name).get(b"k") == name.encode()

    await run_as(rt, OWNER_A, body)
    package_dir = home / "kv" / str(PKG_A)
    assert {p.name for p in package_dir.iterdir()} == set(names)
    assert all((package_dir / name / "CURRENT").is_file() for name in names)


# --- hostile bodies -----------------------------------------------------------------


def hostile_bodies() -> list[bytes]:
    """Bodies that must each be answered with MalformedRequest."""
    good = {
        "package_id": {"package_name": "alpha", "publisher_node": "pub.os"},
        "db": "db",
        "action": {"Get": b"k"},
    }

    def pack(value: object) -> bytes:
        packed: bytes = msgpack.packb(value, use_bin_type=True)
        return packed

    # {"action": {"Get": [[[...[b"k"]...]]]}}, 2000 levels deep, built by hand
    # (msgpack's packer refuses to nest that deep).
    deep = (
        b"\x83"
        + pack("package_id")
        + pack(good["package_id"])
        + pack("db")
        + pack("db")
        + pack("action")
        + b"\x81"
        + pack("Get")
        + b"\x91" * 2000
        + pack(b"k")
    )
    return [
        b"",
        b"\xc1",
        b"\xff" * 64,
        pack(good) + b"\x00",  # trailing bytes
        pack({**good, "action": {"Get": "k"}}),  # str where bin is due
        pack({**good, "action": {"Set": {"key": b"k", "tx_id": -1}}}),
        pack({**good, "action": {"Commit": {"tx_id": True}}}),
        pack({**good, "action": {"Commit": {"tx_id": 7.0}}}),
        pack(good)[:-3],  # truncated
        pack({**good, "action": "Get"}),  # payload missing
        pack({**good, "action": {"Drop": b"k"}}),  # unknown tag
        pack({**good, "extra": 1}),
        pack({"db": "db", "action": "Open"}),
        pack({**good, "db": 7}),
        deep,
        pack({**good, "action": {"Get": msgpack.ExtType(1, b"x")}}),
        pack([good]),
        pack(good).replace(b"\xa2db", b"\xa2\xff\xfe"),  # db name is not UTF-8
        pack({**good, "action": {"Get": b"k" * (2 * 1024 * 1024)}}),  # over the body limit
    ]


async def test_hostile_bodies_are_malformed_while_others_are_served(rt: Runtime) -> None:
    bodies = hostile_bodies()
    writes = 300

    async def attacker(ctx: ProcessContext) -> int:
        answered = 0
        for _ in range(5):
            for body in bodies:
                message = await ctx.send_and_await_response(KV_PROCESS_ID, body, metadata="m")
                assert decode_response(message.body) == ErrResponse(error=MalformedRequest())
                assert message.metadata is None
                answered += 1
        return answered

    async def writer(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, ctx.package_id, "db")
        for i in range(writes):
            await db.set(b"%d" % i, b"v%d" % i)
        for i in range(writes):
            assert await db.get(b"%d" % i) == b"v%d" % i

    results: list[int] = []

    async def attack() -> None:
        results.append(await run_as(rt, OWNER_B, attacker))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(attack)
            tg.start_soon(run_as, rt, OWNER_A, writer)
    assert results == [5 * len(bodies)]
