"""The capability store: which process holds which capability, kept under ``home``.

Invariants:
1. The in-memory index and the LevelDB table agree after every call that
   returns: a change is written (one atomic batch) before memory changes,
   so a failed write leaves both as they were.
2. Capabilities are held by ProcessIds, so a process restarted under the
   same id keeps what it was granted.
3. Lookups are by ``Capability.key`` (issuer plus canonical params), a str
   whose hash Python caches: ``holds`` is a set lookup on the hot path.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import attrs
import plyvel

from protocol.ids import Address, IdError, ProcessId

from .message import Capability

__all__ = ["CapabilityStore", "CapabilityStoreError"]

_SEP = "\x00"


class CapabilityStoreError(Exception):
    """The capability table could not be read or written."""


@attrs.define(eq=False)
class CapabilityStore:
    """Grants, revokes and answers who holds what; persisted in LevelDB at ``path``."""

    path: Path
    _db: plyvel.DB | None = attrs.field(default=None, init=False)
    _held: defaultdict[ProcessId, dict[str, Capability]] = attrs.field(
        init=False, factory=lambda: defaultdict(dict)
    )

    def open(self) -> None:
        """Open (creating) the table and load it into memory. Blocking."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._db = plyvel.DB(str(self.path), create_if_missing=True)
        except plyvel.Error as exc:
            raise CapabilityStoreError(
                f"cannot open capability store at {self.path}: {exc}"
            ) from exc
        for raw_key, _ in self._db.iterator():
            process, issuer, params = raw_key.decode("utf-8").split(_SEP, 2)
            try:
                cap = Capability(issuer=Address.parse(issuer), params=params)
                self._held[ProcessId.parse(process)][cap.key] = cap
            except (IdError, ValueError):
                continue  # written by nothing we know: leave it, never grant it

    def close(self) -> None:
        """Close the table."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def holds(self, process: ProcessId, key: str) -> bool:
        """Whether ``process`` holds the capability whose ``Capability.key`` is ``key``."""
        held = self._held.get(process)
        return held is not None and key in held

    def held_by(self, process: ProcessId) -> list[Capability]:
        """Every capability ``process`` holds."""
        return list(self._held.get(process, {}).values())

    def holders(self) -> list[tuple[ProcessId, Capability]]:
        """Every (process, capability) pair in the store."""
        return [(p, c) for p, caps in self._held.items() for c in caps.values()]

    def grant(self, process: ProcessId, caps: Iterable[Capability]) -> None:
        """Give ``caps`` to ``process`` (already held ones are no-ops)."""
        held = self._held[process]
        new = [c for c in caps if c.key not in held]
        if not new:
            return
        self._write(put=[(process, c) for c in new], delete=[])
        for cap in new:
            held[cap.key] = cap

    def revoke(self, process: ProcessId, caps: Iterable[Capability]) -> None:
        """Take ``caps`` from ``process`` (ones it does not hold are no-ops)."""
        held = self._held.get(process, {})
        gone = [c for c in caps if c.key in held]
        if not gone:
            return
        self._write(put=[], delete=[(process, c) for c in gone])
        for cap in gone:
            del held[cap.key]

    def revoke_everywhere(self, caps: Iterable[Capability]) -> int:
        """Take ``caps`` from every holder; return how many grants went."""
        keys = {c.key for c in caps}
        gone = [(p, c) for p, held in self._held.items() for k, c in held.items() if k in keys]
        if gone:
            self._write(put=[], delete=gone)
            for process, cap in gone:
                del self._held[process][cap.key]
        return len(gone)

    def _write(
        self, *, put: list[tuple[ProcessId, Capability]], delete: list[tuple[ProcessId, Capability]]
    ) -> None:
        if self._db is None:
            raise CapabilityStoreError("the capability store is closed")
        try:
            with self._db.write_batch(transaction=True) as batch:
                for process, cap in put:
                    batch.put(_row(process, cap), b"")
                for process, cap in delete:
                    batch.delete(_row(process, cap))
        except plyvel.Error as exc:
            raise CapabilityStoreError(f"cannot write the capability store: {exc}") from exc


def _row(process: ProcessId, cap: Capability) -> bytes:
    return f"{process}{_SEP}{cap.issuer}{_SEP}{cap.params}".encode()


def describe(cap: Capability) -> str:
    """A one-line human rendering of ``cap``."""
    return f"{cap.issuer} {json.loads(cap.params)}"
