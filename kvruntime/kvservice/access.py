"""The kv process's actions on a db itself: Open, RemoveDb, Revoke, Capabilities.

They run before (and instead of) the capability check of data actions, each
with checks of its own in PROTOCOL.md's order: the package (Open, RemoveDb,
Revoke: ``MismatchingPackageId``), then existence, then what they grant,
revoke or tell. Also ``kv_capability``: the capability this kv issues.

RemoveDb, in this order, so that a crash or a failure at any point leaves no
grant that opens a later db of the same name: 1. every grant on the db is
revoked in one durable write (a failure answers ``IoError`` and changes
nothing); offers are withdrawn and transactions dropped; 2. the directory is
renamed away, atomically (a failure answers the error: the db stays, with
no grant left, and the owner's ``Open`` grants it again); 3. the renamed
trash is deleted, or swept by the next start if that is cut short.
"""

from __future__ import annotations

import functools
import logging
from typing import Final

import anyio.to_thread

from protocol.codec import encode_capability_params
from protocol.ids import KV_PROCESS_ID, Address, PackageId, ProcessId
from protocol.messages import (
    AddCapFailed,
    Capabilities,
    CapabilitiesResponse,
    IoError,
    KvCapabilityParams,
    KvError,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    OkResponse,
    Open,
    RemoveDb,
    Revoke,
)

from ..kernel.capabilities import CapabilityStoreError
from ..kernel.message import Capability, Request
from ..storage.store import StoreError
from .context import Context, Outcome
from .transactions import DbKey

__all__ = ["capabilities", "kv_capability", "open_db", "remove_db", "revoke"]

log = logging.getLogger("kvruntime.kv")

_OK: Final = OkResponse()


def kv_capability(node: str, kind: str, package_id: PackageId, db: str) -> Capability:
    """The capability kv:distro:sys on ``node`` issues for ``kind`` access to a db."""
    params = KvCapabilityParams(
        kind="read" if kind == "read" else "write", package_id=package_id, db=db
    )
    return Capability(
        issuer=Address(node=node, process=KV_PROCESS_ID),
        params=encode_capability_params(params),
    )


def open_db(ctx: Context, msg: Request, sender: ProcessId, db: DbKey, action: Open) -> Outcome:
    """Open: the sender's own package's db, created if missing (in a thread); grants
    read and write."""
    package_id, name = db
    if not sender.belongs_to(package_id):
        return MismatchingPackageId()
    if ctx.dbs.get(package_id, name) is None:
        return _open_then_grant(ctx, msg, db)
    return _grant(ctx, msg, db)


async def _open_then_grant(ctx: Context, msg: Request, db: DbKey) -> KvError | None:
    package_id, name = db
    try:
        store = await anyio.to_thread.run_sync(
            functools.partial(ctx.dbs.open, package_id, name, create=True, evict=False)
        )
        log = await anyio.to_thread.run_sync(ctx.feeds.load, store)  # change feeds (issue 14)
    except StoreError as exc:
        return exc.error
    ctx.feeds.opened(store, log)
    return _grant(ctx, msg, db)


def _grant(ctx: Context, msg: Request, db: DbKey) -> KvError | None:
    try:
        ctx.caps.grant(msg.source, ctx.caps_of(*db))
    except CapabilityStoreError as exc:
        log.error("cannot grant capabilities on [%s, %s]: %s", db[0], db[1], exc)
        return AddCapFailed()
    ctx.answer(msg, _OK)
    return None


def remove_db(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, action: RemoveDb
) -> Outcome:
    """RemoveDb, all or nothing for access (see the module's removal order)."""
    package_id, name = db
    if not sender.belongs_to(package_id):
        return MismatchingPackageId()
    if not ctx.dbs.exists(package_id, name):
        return NoDb(package_id=package_id, db=name)
    return _remove(ctx, msg, db)


async def _remove(ctx: Context, msg: Request, db: DbKey) -> KvError | None:
    package_id, name = db
    ctx.flush()
    caps = ctx.caps_of(package_id, name)
    try:  # 1. no grant survives: durable before anything is removed
        ctx.caps.revoke_everywhere(caps)
    except CapabilityStoreError as exc:
        log.error("cannot revoke the capabilities of [%s, %s]: %s", package_id, name, exc)
        return IoError(message=f"cannot revoke capabilities: {exc}")
    ctx.bus.withdraw_offers(caps)
    ctx.txs.drop_db(db)
    ctx.feeds.end(db, "the db was removed", ctx.answer)  # change feeds (issue 14)
    try:  # 2. the directory renamed away (atomic), 3. its files deleted
        await anyio.to_thread.run_sync(ctx.dbs.remove, package_id, name)
    except StoreError as exc:
        return exc.error
    ctx.answer(msg, _OK)
    return None


def revoke(ctx: Context, msg: Request, sender: ProcessId, db: DbKey, action: Revoke) -> Outcome:
    """Revoke: checked like Open/RemoveDb (package, then existence).

    Then the target's two capabilities on the db go, and its open
    transactions on the db with them.
    """
    package_id, name = db
    if not sender.belongs_to(package_id):
        return MismatchingPackageId()
    if not ctx.dbs.exists(package_id, name):
        return NoDb(package_id=package_id, db=name)
    caps = ctx.caps_of(package_id, name)
    holder = Address(node=ctx.bus.node, process=action.process)
    try:
        ctx.caps.revoke(holder, caps)
    except CapabilityStoreError as exc:
        return IoError(message=f"cannot revoke capabilities: {exc}")
    ctx.bus.withdraw_offers(caps, of=holder)  # an offer it has not saved yet goes too
    # Its open transactions on the db go too: staged writes it may no
    # longer commit are dropped at once, and a later use answers NoTx.
    ctx.txs.drop_owned(action.process, db)
    ctx.feeds.end(db, "read access was revoked", ctx.answer, holder=holder)  # issue 14
    ctx.answer(msg, _OK)
    return None


def capabilities(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, action: Capabilities
) -> Outcome:
    """Capabilities: any capability on the db may ask; none is NoReadCap (step 5)."""
    package_id, name = db
    exists = ctx.dbs.exists(package_id, name)
    if not exists and sender.belongs_to(package_id):
        return NoDb(package_id=package_id, db=name)
    read_cap, write_cap = ctx.caps_of(package_id, name)
    read = ctx.caps.holds(msg.source, read_cap.key)
    write = ctx.caps.holds(msg.source, write_cap.key)
    if not (read or write):
        return NoReadCap()
    if not exists:
        return NoDb(package_id=package_id, db=name)
    ctx.answer(msg, CapabilitiesResponse(read=read, write=write))
    return None
