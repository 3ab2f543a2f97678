"""The capability store: which address holds which capability, kept under ``home``.

Invariants:
1. The in-memory index and the table agree after every call that returns: a
   change is written (one atomic batch) before memory changes, so a failed
   write leaves both as they were.
2. Capabilities are held by Addresses (node and process): a process of
   another node that reuses a local process id holds nothing of the local
   one's. A process restarted under the same address keeps its grants.
3. Lookups are by ``Capability.key`` (issuer plus canonical params), a str
   whose hash Python caches, under an Address. An Address's hash is a Python
   call (attrs caches its value, not the call), so ``holds`` finds a holder
   it has seen by the object's identity: ``_by_identity`` keeps each such
   holder alive (so its id is not reused while cached) beside its dict of
   held capabilities, which, once made, is never replaced (grants and
   revokes change it in place). Bounded: cleared past 4096 holders.
4. The table is a ``LevelDbStore``, the seam the kv dbs use. Every failure of
   it or of the file system becomes ``CapabilityStoreError`` here (``HomeInUse``
   when another runtime holds the table's lock), and a failed ``open`` leaves
   nothing open.
5. Rows are ``holder NUL issuer NUL params`` with an empty value, beside the
   version row ``NUL "version"``. A table without one is version 1, written
   when holders were ProcessIds: ``open`` rewrites its rows as this node's
   Addresses, with the version row, in one atomic batch. A row that does not
   parse is skipped (logged), kept, and never granted; a newer version is
   refused.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from protocol.ids import Address, ProcessId

from ..storage.leveldb import LevelDbStore
from ..storage.store import Store, StoreError
from .message import Capability

__all__ = ["CapabilityStore", "CapabilityStoreError", "HomeInUse"]

log = logging.getLogger("kvruntime.kernel.capabilities")

_SEP = "\x00"
_VERSION_KEY = b"\x00version"
_VERSION = b"2"
#: How LevelDB says another opener holds the table (``store.py`` hides the path as <db>).
_LOCKED = re.compile(r"^\[[^\]]*\] lock \S*LOCK: ")


class CapabilityStoreError(Exception):
    """The capability table could not be opened, read or written."""


class HomeInUse(CapabilityStoreError):
    """Another runtime holds this home's capability table open."""


class CapabilityStore:
    """Grants, revokes and answers who holds what; persisted in LevelDB at ``path``.

    ``node`` is the node of the runtime that owns the table: the holders of a
    version-1 table become its processes.

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = ("__weakref__", "_by_identity", "_db", "_held", "node", "path")

    path: Path
    node: str
    _db: Store | None
    _held: dict[Address, dict[str, Capability]]
    #: id(holder) -> (holder, its dict in ``_held``): see invariant 3.
    _by_identity: dict[int, tuple[Address, dict[str, Capability]]]

    def __init__(self, path: Path, node: str) -> None:
        self.path = path
        self.node = node
        self._db = None
        self._held = {}
        self._by_identity = {}

    def open(self) -> None:
        """Open (creating) the table and load it into memory. Blocking."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CapabilityStoreError(
                f"cannot create the capability store at {self.path}: {exc}"
            ) from exc
        try:
            db = LevelDbStore.open(self.path, label="capabilities", create=True)
        except StoreError as exc:
            if _LOCKED.match(exc.error.message):
                raise HomeInUse(
                    f"the capability store at {self.path} is in use by another runtime"
                ) from exc
            raise CapabilityStoreError(
                f"cannot open capability store at {self.path}: {exc}"
            ) from exc
        try:
            self._load(db)
        except StoreError as exc:
            db.close()
            raise CapabilityStoreError(
                f"cannot read capability store at {self.path}: {exc}"
            ) from exc
        except BaseException:
            db.close()
            raise
        self._db = db

    def _load(self, db: Store) -> None:
        version = db.get(_VERSION_KEY)
        if version not in (None, _VERSION):
            raise CapabilityStoreError(
                f"capability store at {self.path} has version {version!r}, newer than this code"
            )
        legacy = version is None
        migrated: list[tuple[bytes, bytes | None]] = []
        skipped = 0
        for key, _ in db.iterate():
            if key == _VERSION_KEY:
                continue
            row = _parse(key, self.node if legacy else None)
            if row is None:
                skipped += 1  # written by nothing we know: leave it, never grant it
                continue
            holder, cap = row
            self._held.setdefault(holder, {})[cap.key] = cap
            if legacy:
                migrated += [(key, None), (_row(holder, cap), b"")]
        if skipped:
            log.warning("capability store at %s: skipped %d unreadable rows", self.path, skipped)
        if legacy:
            db.write([*migrated, (_VERSION_KEY, _VERSION)], sync=True)

    def close(self) -> None:
        """Close the table."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def holds(self, holder: Address, key: str) -> bool:
        """Whether ``holder`` holds the capability whose ``Capability.key`` is ``key``."""
        seen = self._by_identity.get(id(holder))
        if seen is not None and seen[0] is holder:  # invariant 3: no Address hash
            return key in seen[1]
        held = self._held.get(holder)
        if held is None:
            return False
        if len(self._by_identity) >= 4096:
            self._by_identity.clear()
        self._by_identity[id(holder)] = (holder, held)
        return key in held

    def held_by(self, holder: Address) -> list[Capability]:
        """Every capability ``holder`` holds."""
        return list(self._held.get(holder, {}).values())

    def holders(self) -> list[tuple[Address, Capability]]:
        """Every (holder, capability) pair in the store."""
        return [(a, c) for a, caps in self._held.items() for c in caps.values()]

    def grant(self, holder: Address, caps: Iterable[Capability]) -> None:
        """Give ``caps`` to ``holder`` (already held ones are no-ops)."""
        held = self._held.get(holder, {})
        new = [c for c in caps if c.key not in held]
        if not new:
            return
        self._write(put=[(holder, c) for c in new], delete=[])
        held = self._held.setdefault(holder, held)
        for cap in new:
            held[cap.key] = cap

    def revoke(self, holder: Address, caps: Iterable[Capability]) -> None:
        """Take ``caps`` from ``holder`` (ones it does not hold are no-ops)."""
        held = self._held.get(holder, {})
        gone = [c for c in caps if c.key in held]
        if not gone:
            return
        self._write(put=[], delete=[(holder, c) for c in gone])
        for cap in gone:
            del held[cap.key]

    def revoke_everywhere(self, caps: Iterable[Capability]) -> int:
        """Take ``caps`` from every holder; return how many grants went."""
        keys = {c.key for c in caps}
        gone = [(a, c) for a, held in self._held.items() for k, c in held.items() if k in keys]
        if gone:
            self._write(put=[], delete=gone)
            for holder, cap in gone:
                del self._held[holder][cap.key]
        return len(gone)

    def _write(
        self, *, put: list[tuple[Address, Capability]], delete: list[tuple[Address, Capability]]
    ) -> None:
        if self._db is None:
            raise CapabilityStoreError("the capability store is closed")
        ops: list[tuple[bytes, bytes | None]] = [(_row(a, c), b"") for a, c in put]
        ops += [(_row(a, c), None) for a, c in delete]
        try:
            self._db.write(ops)
        except StoreError as exc:
            raise CapabilityStoreError(f"cannot write the capability store: {exc}") from exc


def _row(holder: Address, cap: Capability) -> bytes:
    return f"{holder}{_SEP}{cap.issuer}{_SEP}{cap.params}".encode()


def _parse(key: bytes, legacy_node: str | None) -> tuple[Address, Capability] | None:
    """The holder and capability of a row; with ``legacy_node``, a version-1 row."""
    try:
        holder, issuer, params = key.decode("utf-8").split(_SEP, 2)
        if legacy_node is None:
            address = Address.parse(holder)
        else:
            address = Address(node=legacy_node, process=ProcessId.parse(holder))
        return address, Capability(issuer=Address.parse(issuer), params=params)
    except ValueError:  # bad UTF-8, too few fields, a bad id (IdError), params not JSON
        return None
