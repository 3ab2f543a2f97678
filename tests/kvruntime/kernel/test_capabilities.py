"""The capability store on disk: the store seam, typed errors, one home per runtime, migration."""

from __future__ import annotations

import logging
from pathlib import Path

import plyvel
import pytest

from kvruntime import (
    CapabilityStoreError,
    HomeInUse,
    PackageId,
    ProcessContext,
    Runtime,
    kv,
)
from kvruntime.kernel.capabilities import CapabilityStore
from kvruntime.kvservice.access import kv_capability
from protocol.ids import Address
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

NODE = "our.os"
OWNER = "owner:alpha:pub.os"
READER = "reader:beta:pub.os"
ALPHA = PackageId.parse("alpha:pub.os")


def table(home: Path) -> Path:
    return home / "kernel" / "capabilities"


def rows(home: Path) -> dict[bytes, bytes]:
    db = plyvel.DB(str(table(home)))
    try:
        return dict(db.iterator())
    finally:
        db.close()


async def _create_shared(ctx: ProcessContext) -> None:
    db = await kv.open(ctx, ALPHA, "shared")
    await db.set(b"k", b"v")
    await db.share(READER)


async def _read_shared(ctx: ProcessContext) -> bytes:
    return await kv.handle(ctx, ALPHA, "shared").get(b"k")


async def test_a_second_runtime_on_a_home_in_use_raises_home_in_use(home: Path) -> None:
    async with Runtime(home=home) as first:
        with pytest.raises(HomeInUse, match="in use by another runtime"):
            async with Runtime(home=home):
                raise AssertionError("a second runtime entered a home in use")
        await run_as(first, OWNER, _create_shared)
        assert await run_as(first, READER, _read_shared) == b"v"
    async with Runtime(home=home) as again:  # free once the first one exited
        assert await run_as(again, READER, _read_shared) == b"v"


async def test_a_home_that_is_a_file_raises_capability_store_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")
    with pytest.raises(CapabilityStoreError, match="cannot create the capability store") as caught:
        async with Runtime(home=home):
            raise AssertionError("entered a home that is a file")
    assert not isinstance(caught.value, HomeInUse)


async def test_rows_it_cannot_read_are_skipped_logged_and_never_granted(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Runtime(home=home) as rt:
        await run_as(rt, OWNER, _create_shared)
    db = plyvel.DB(str(table(home)))
    read = kv_capability(NODE, "read", ALPHA, "shared")
    garbage = [
        b"no separators at all",
        b"\xff\xfe not utf-8 \x00x\x00y",
        f"not an address\x00{read.issuer}\x00{read.params}".encode(),
        f"{NODE}@x:gamma:pub.os\x00{read.issuer}\x00not json".encode(),
    ]
    for key in garbage:
        db.put(key, b"")
    db.close()
    caplog.set_level(logging.WARNING, logger="kvruntime.kernel.capabilities")
    async with Runtime(home=home) as rt:
        assert await run_as(rt, READER, _read_shared) == b"v"

        async def stranger(ctx: ProcessContext) -> bool:
            return ctx.holds(read)

        assert await run_as(rt, "x:gamma:pub.os", stranger, kv=False) is False
    assert any("skipped 4 unreadable rows" in r.getMessage() for r in caplog.records)
    # The runtime closed the table: plyvel takes its lock at once.
    assert all(key in rows(home) for key in garbage)  # kept, not deleted


async def test_a_table_of_a_newer_version_is_refused_and_left_closed(home: Path) -> None:
    async with Runtime(home=home):
        pass
    db = plyvel.DB(str(table(home)))
    db.put(b"\x00version", b"99")
    db.close()
    with pytest.raises(CapabilityStoreError, match="newer than this code"):
        async with Runtime(home=home):
            raise AssertionError("entered")
    rows(home)  # not left open: its lock is free


async def test_a_home_written_before_holders_were_addresses_keeps_working(home: Path) -> None:
    """Version 1 keyed rows by ProcessId; they become this node's Addresses, once."""
    async with Runtime(home=home, node="alice.os") as rt:

        async def create(ctx: ProcessContext) -> None:
            db = await kv.open(ctx, ALPHA, "shared")
            await db.set(b"k", b"v")

        await run_as(rt, OWNER, create)
    # Rewrite the table as version 1 wrote it: ``process NUL issuer NUL params``.
    read = kv_capability("alice.os", "read", ALPHA, "shared")
    db = plyvel.DB(str(table(home)))
    for key, _ in db.iterator():
        db.delete(key)
    kv_messaging = '"messaging"'
    db.put(f"{READER}\x00alice.os@kv:distro:sys\x00{kv_messaging}".encode(), b"")
    db.put(f"{READER}\x00{read.issuer}\x00{read.params}".encode(), b"")
    db.put(f"{OWNER}\x00alice.os@kv:distro:sys\x00{kv_messaging}".encode(), b"")
    db.close()

    for _ in range(2):  # migrated on the first open; the second reads version 2
        async with Runtime(home=home, node="alice.os") as rt:
            # No capability requested at spawn: the reader's grants came from the old rows.
            assert await run_as(rt, READER, _read_shared, kv=False) == b"v"

            # The owner's messaging grant came along; its db grants were not in the rows.
            with pytest.raises(kv.NoReadCap):
                await run_as(rt, OWNER, _read_shared, kv=False)
        stored = rows(home)
        assert stored[b"\x00version"] == b"2"
        assert sorted(k.split(b"\x00")[0] for k in stored if not k.startswith(b"\x00")) == [
            f"alice.os@{OWNER}".encode(),
            f"alice.os@{READER}".encode(),
            f"alice.os@{READER}".encode(),
        ]


def test_holds_follows_every_grant_and_revoke_whatever_address_object_asks(
    tmp_path: Path,
) -> None:
    """``holds`` finds a holder it has seen by identity (invariant 3): every change
    of what it holds is still seen, by that object and by an equal one."""
    store = CapabilityStore(tmp_path / "caps", NODE)
    store.open()
    try:
        holder = Address.parse(f"{NODE}@{READER}")
        twin = Address.parse(f"{NODE}@{READER}")  # equal, another object
        cap = kv_capability(NODE, "read", ALPHA, "shared")
        other = kv_capability(NODE, "write", ALPHA, "shared")
        assert not store.holds(holder, cap.key)  # holds nothing yet
        store.grant(holder, [cap])
        assert store.holds(holder, cap.key)
        assert store.holds(twin, cap.key)
        assert not store.holds(holder, other.key)
        store.revoke(twin, [cap])
        assert not store.holds(holder, cap.key)
        assert not store.holds(twin, cap.key)
        store.grant(twin, [other])
        assert store.holds(holder, other.key)
        assert store.revoke_everywhere([other]) == 1
        assert not store.holds(holder, other.key)
        assert not store.holds(Address.parse(f"{NODE}@{OWNER}"), cap.key)
    finally:
        store.close()
