"""Capability attacks not covered in tests/kvruntime: stale capabilities,
guessed transaction ids, and db names that try to leave ``{home}/kv``.

For names, the whole temporary folder is snapshotted around each attack:
nothing may appear or vanish outside ``{home}/kv`` and the capability store.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import anyio
import pytest

from kvruntime import (
    Address,
    CapabilityNotHeld,
    ProcessContext,
    ProcessId,
    Request,
    Runtime,
    kv,
)
from kvruntime.kvservice.access import kv_capability
from protocol.codec import decode_response, encode_request
from protocol.ids import KV_PROCESS_ID, PackageId
from protocol.messages import ErrResponse, Get, KvRequest, MalformedRequest, Open, RemoveDb
from tests.conftest import run_as
from tests.internals import bus_of
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.anyio

PKG = PackageId.parse("alpha:pub.os")
OWNER = "owner:alpha:pub.os"
SIBLING = "sibling:alpha:pub.os"
OUTSIDER = "outsider:beta:pub.os"


def outside_kv(root: Path, home: Path) -> dict[Path, int]:
    """Every path under ``root`` but not under {home}/kv or {home}/kernel, with its size."""
    mine = (home / "kv", home / "kernel")
    return {
        p: p.lstat().st_size
        for p in root.rglob("*")
        if not any(p == m or m in p.parents for m in mine)
    }


# Names that look like separators or parents, or differ only in normal form.
# Each is a valid single component: it must live under {home}/kv/{package}/.
TRICKY_VALID = [
    "a\uff0fb",  # fullwidth solidus
    "..\u2215x",  # division slash
    "\u2215etc\u2215passwd",
    "\u2024\u2024",  # one dot leader twice: looks like ".."
    "\uff0e\uff0e",  # fullwidth full stops
    "\u202egnp.exe",  # right-to-left override
    "x\u200d",  # zero-width joiner
    "caf\u00e9",  # NFC
    "cafe\u0301",  # NFD of the same text: a different db
    "\u2126",  # ohm sign; NFKC would make it omega
    "~",
    "$HOME",
    "\n",
    "\u3000",  # ideographic space
    "é" * 127 + "x",  # 255 bytes
]
# Names that are not one component of at most 255 bytes.
TRICKY_INVALID = [
    "..",
    "../kv",
    "../../../outside",
    "/tmp",
    "a/../../b",
    "\\..\\..",
    "x\x00/../..",
    "é" * 128,  # 256 bytes
    "\u00a0" * 128,
    "",
]


async def raw(ctx: ProcessContext, db: str, action: Open | RemoveDb | Get) -> object:
    body = encode_request(KvRequest(package_id=PKG, db=db, action=action))
    return decode_response((await ctx.send_and_await_response(KV_PROCESS_ID, body)).body)


async def test_db_names_never_leave_the_kv_root(
    rt: Runtime, home: Path, tmp_path: Path, figures: Figures
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim").write_text("keep me")
    (tmp_path / "passwd").write_text("keep me too")
    await run_as(rt, OWNER, lambda ctx: kv.open(ctx, PKG, "seed"))
    before = outside_kv(tmp_path, home)

    async def body(ctx: ProcessContext) -> None:
        for name in TRICKY_INVALID:
            for action in (Open(), RemoveDb(), Get(key=b"k")):
                assert await raw(ctx, name, action) == ErrResponse(error=MalformedRequest())
        for name in TRICKY_VALID:
            db = await kv.open(ctx, PKG, name)
            await db.set(b"name", name.encode())
        for name in TRICKY_VALID:  # each its own db: no two names share one
            assert await kv.handle(ctx, PKG, name).get(b"name") == name.encode()
        for name in TRICKY_VALID:
            await kv.remove_db(ctx, PKG, name)

    await run_as(rt, OWNER, body)
    figures.add("attacks: hostile db names tried", 3 * len(TRICKY_INVALID) + len(TRICKY_VALID))
    assert outside_kv(tmp_path, home) == before
    assert (tmp_path / "outside" / "victim").read_text() == "keep me"
    package_dir = home / "kv" / str(PKG)
    assert sorted(p.name for p in package_dir.iterdir()) == ["seed"]
    assert unicodedata.normalize("NFC", "cafe\u0301") == "caf\u00e9"  # they did differ


async def test_guessing_a_transaction_id_finds_nothing(rt: Runtime, figures: Figures) -> None:
    tx_ids: list[int] = []

    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        tx = await db.begin_tx()
        await db.set(b"k", b"owner's", tx_id=tx)
        tx_ids.append(tx)
        await db.share(SIBLING, write=True)
        await db.share(OUTSIDER, write=True)

    await run_as(rt, OWNER, owner)
    tx = tx_ids[0]
    guesses = [tx, *range(max(tx - 100, 0), tx + 100), 0, 1, 2**64 - 1]

    async def guesser(ctx: ProcessContext) -> None:
        db = kv.handle(ctx, PKG, "db")
        for guess in guesses:
            with pytest.raises(kv.NoTx):
                await db.set(b"k", b"guessed", tx_id=guess)
            with pytest.raises(kv.NoTx):
                await db.commit_tx(guess)

    await run_as(rt, SIBLING, guesser)
    await run_as(rt, OUTSIDER, guesser)
    figures.add("attacks: transaction ids guessed", 4 * len(guesses))

    async def owner_commits(ctx: ProcessContext) -> bytes:
        db = kv.handle(ctx, PKG, "db")
        await db.commit_tx(tx)
        return await db.get(b"k")

    assert await run_as(rt, OWNER, owner_commits) == b"owner's"


async def test_a_capability_offered_before_removal_grants_nothing_after(
    rt: Runtime, figures: Figures
) -> None:
    """An attached capability the receiver saves only after the db was removed
    and re-created must not open the new db."""
    offered = anyio.Event()
    removed = anyio.Event()
    outcome: list[str] = []

    async def receiver(ctx: ProcessContext) -> None:
        await ctx.receive()  # the message carrying the capability
        offered.set()
        await removed.wait()
        cap = kv_capability(ctx.our.node, "read", PKG, "db")
        try:
            ctx.save_capabilities([cap])
        except CapabilityNotHeld:
            outcome.append("refused at save")
            return
        try:
            await kv.handle(ctx, PKG, "db").get(b"secret")
        except kv.NoReadCap:
            outcome.append("refused at use")
        else:
            outcome.append("read the new db's secret")

    handle = await rt.spawn(OUTSIDER, receiver, request_capabilities=["kv:distro:sys"], public=True)

    async def owner(ctx: ProcessContext) -> None:
        db = await kv.open(ctx, PKG, "db")
        cap = kv_capability(ctx.our.node, "read", PKG, "db")
        await ctx.send(OUTSIDER, b"here", capabilities=[cap])
        await offered.wait()
        await kv.remove_db(ctx, PKG, "db")
        db = await kv.open(ctx, PKG, "db")  # a new db under the old name
        await db.set(b"secret", b"new data")
        removed.set()

    await run_as(rt, OWNER, owner)
    with anyio.fail_after(5):
        await handle.wait()
    figures.add("attacks: stale capabilities replayed", 1)
    assert len(outcome) == 1, outcome
    assert outcome[0].startswith("refused"), outcome


async def test_a_capability_attached_by_another_node_cannot_be_saved(
    rt: Runtime, figures: Figures
) -> None:
    """A remote node could claim any capability of ours; the receiver must not keep it."""
    await run_as(rt, OWNER, lambda ctx: kv.open(ctx, PKG, "db"))
    outcome: list[str] = []

    async def receiver(ctx: ProcessContext) -> None:
        message = await ctx.receive()
        try:
            ctx.save_capabilities(message.capabilities)
        except CapabilityNotHeld:
            outcome.append("refused")
            return
        await kv.handle(ctx, PKG, "db").set(b"k", b"forged")
        outcome.append("wrote with a forged capability")

    handle = await rt.spawn(OUTSIDER, receiver, request_capabilities=["kv:distro:sys"], public=True)
    forged = kv_capability(rt.node, "write", PKG, "db")
    await rt.deliver_from_network(
        Request(
            id=bus_of(rt).next_id(),
            source=Address(node="evil.os", process=ProcessId.parse("x:evil:evil.os")),
            target=Address(node=rt.node, process=ProcessId.parse(OUTSIDER)),
            body=b"take this",
            capabilities=(forged,),
        )
    )
    with anyio.fail_after(5):
        await handle.wait()
    figures.add("attacks: forged remote capabilities", 1)
    assert outcome == ["refused"]
