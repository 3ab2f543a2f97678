"""The kv process's access actions beyond Hyperware's: Revoke and Capabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.ids import PackageId, ProcessId
from protocol.messages import (
    CapabilitiesResponse,
    IoError,
    MismatchingPackageId,
    NoDb,
    NoReadCap,
    OkResponse,
)

from .capabilities import CapabilityStoreError
from .message import Request
from .transactions import DbKey

if TYPE_CHECKING:
    from .kv_process import KvProcess

__all__ = ["capabilities", "revoke"]


def revoke(kv: KvProcess, msg: Request, sender: ProcessId, db: DbKey, target: ProcessId) -> None:
    """Revoke: checked like Open/RemoveDb (package, then existence).

    Then the target's two capabilities on the db go, and its open
    transactions on the db with them.
    """
    package_id, name = db
    if not _in_package(sender, package_id):
        return kv.fail(msg, MismatchingPackageId())
    if not kv.dbs.exists(package_id, name):
        return kv.fail(msg, NoDb(package_id=package_id, db=name))
    try:
        kv.caps.revoke(target, kv.caps_of(package_id, name))
    except CapabilityStoreError as exc:
        return kv.fail(msg, IoError(message=f"cannot revoke capabilities: {exc}"))
    # Its open transactions on the db go too: staged writes it may no
    # longer commit are dropped at once, and a later use answers NoTx.
    kv.txs.drop_owned(target, db)
    return kv.answer(msg, OkResponse())


def capabilities(kv: KvProcess, msg: Request, sender: ProcessId, db: DbKey) -> None:
    """Capabilities: any capability on the db may ask; none is NoReadCap (step 5)."""
    package_id, name = db
    exists = kv.dbs.exists(package_id, name)
    if not exists and _in_package(sender, package_id):
        return kv.fail(msg, NoDb(package_id=package_id, db=name))
    read_cap, write_cap = kv.caps_of(package_id, name)
    read = kv.caps.holds(sender, read_cap.key)
    write = kv.caps.holds(sender, write_cap.key)
    if not (read or write):
        return kv.fail(msg, NoReadCap())
    if not exists:
        return kv.fail(msg, NoDb(package_id=package_id, db=name))
    return kv.answer(msg, CapabilitiesResponse(read=read, write=write))


def _in_package(process: ProcessId, package_id: PackageId) -> bool:
    return (
        process.package_name == package_id.package_name
        and process.publisher_node == package_id.publisher_node
    )
