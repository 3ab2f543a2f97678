"""The access-control side of ``Kv``: share, revoke, and ask what is held."""

from __future__ import annotations

from typing import Literal

from protocol.codec import encode_capability_params
from protocol.ids import KV_PROCESS_ID, Address, PackageId
from protocol.messages import (
    Capabilities,
    CapabilitiesResponse,
    KvCapabilityParams,
    OkResponse,
    Revoke,
)

from ..kernel.message import Capability
from ..kernel.process import Target
from ._core import K, KvCore, V
from ._exchange import expect

__all__ = ["KvAccess"]


class KvAccess(KvCore[K, V]):
    """``Kv``'s access control."""

    __slots__ = ()

    async def revoke(self, target: Target) -> None:
        """Take this db's read and write capabilities from the process at ``target``.

        Only a process of the owning package may; others get MismatchingPackageId.
        """
        process = self._ctx.resolve(target).process
        expect(OkResponse, (await self._call(Revoke(process=process)))[0])

    async def capabilities(self) -> list[str]:
        """The kinds (``"read"``, ``"write"``) of capability this process holds on the db.

        Asked of the kv process; holding none raises NoReadCap.
        """
        held = expect(CapabilitiesResponse, (await self._call(Capabilities()))[0])
        return [kind for kind, has in (("read", held.read), ("write", held.write)) if has]

    async def share(self, target: Target, *, write: bool = False) -> None:
        """Grant the process at ``target`` read access to this db (and write, if ``write``).

        Takes effect at once; raises CapabilityNotHeld unless this process
        holds the capabilities it shares.
        """
        node = self._ctx.our.node
        caps = [_kv_capability(node, "read", self._package_id, self._db)]
        if write:
            caps.append(_kv_capability(node, "write", self._package_id, self._db))
        self._ctx.share_capabilities(target, caps)


def _kv_capability(
    node: str, kind: Literal["read", "write"], package_id: PackageId, db: str
) -> Capability:
    """The capability kv:distro:sys on ``node`` issues for ``kind`` access to a db."""
    params = KvCapabilityParams(kind=kind, package_id=package_id, db=db)
    return Capability(
        issuer=Address(node=node, process=KV_PROCESS_ID), params=encode_capability_params(params)
    )
