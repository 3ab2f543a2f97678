"""The kv process's access actions beyond Hyperware's: Revoke and Capabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.ids import Address, ProcessId
from protocol.messages import (
    CapabilitiesResponse,
    IoError,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    OkResponse,
)

from ..kernel.capabilities import CapabilityStoreError
from ..kernel.message import Request
from .transactions import DbKey

if TYPE_CHECKING:
    from .loop import KvProcess

__all__ = ["capabilities", "revoke"]


def revoke(kv: KvProcess, msg: Request, sender: ProcessId, db: DbKey, target: ProcessId) -> None:
    """Revoke: checked like Open/RemoveDb (package, then existence).

    Then the target's two capabilities on the db go, and its open
    transactions on the db with them.
    """
    package_id, name = db
    if not sender.belongs_to(package_id):
        return kv.fail(msg, MismatchingPackageId())
    if not kv.dbs.exists(package_id, name):
        return kv.fail(msg, NoDb(package_id=package_id, db=name))
    caps, holder = kv.caps_of(package_id, name), Address(node=kv.bus.node, process=target)
    try:
        kv.caps.revoke(holder, caps)
    except CapabilityStoreError as exc:
        return kv.fail(msg, IoError(message=f"cannot revoke capabilities: {exc}"))
    kv.bus.withdraw_offers(caps, of=holder)  # an offer it has not saved yet goes too
    # Its open transactions on the db go too: staged writes it may no
    # longer commit are dropped at once, and a later use answers NoTx.
    kv.txs.drop_owned(target, db)
    return kv.answer(msg, OkResponse())


def capabilities(kv: KvProcess, msg: Request, sender: ProcessId, db: DbKey) -> None:
    """Capabilities: any capability on the db may ask; none is NoReadCap (step 5)."""
    package_id, name = db
    exists = kv.dbs.exists(package_id, name)
    if not exists and sender.belongs_to(package_id):
        return kv.fail(msg, NoDb(package_id=package_id, db=name))
    read_cap, write_cap = kv.caps_of(package_id, name)
    read = kv.caps.holds(msg.source, read_cap.key)
    write = kv.caps.holds(msg.source, write_cap.key)
    if not (read or write):
        return kv.fail(msg, NoReadCap())
    if not exists:
        return kv.fail(msg, NoDb(package_id=package_id, db=name))
    return kv.answer(msg, CapabilitiesResponse(read=read, write=write))
