"""The change-feed side of ``Kv``: ``db.watch(...)``, ``Changes`` and ``Change``.

::

    async with db.watch(prefix=b"user:", since=None) as changes:
        async for change in changes:
            change.seq, change.key, change.value, change.kind

How changes travel (PROTOCOL.md, "Change feeds"): ``Watch`` starts the watch
at a position; then the watcher asks ``WatchNext(after=position)``, which kv
answers with the next window of changes once there is one (held meanwhile:
kv pushes the changes into this process's waiting request when they are
written). Each ask acknowledges everything up to ``after``, so kv never has
more than one window in flight to a watcher: one that stops iterating
costs kv nothing, and catches up from the db's log when it reads again.

Invariants:
1. ``async for`` yields every change matching the filter, in seq order,
   each once, or raises ``WatchCompacted`` (the log no longer holds the
   position) or ``WatchEnded`` (db removed, read access revoked): never a gap.
2. ``changes.position`` is the seq of the last change yielded (or the start):
   ``since=changes.position`` resumes exactly after it, also after a restart.
3. With ``snapshot=True``, ``changes.snapshot`` holds every matching entry as
   of ``changes.start``, and the changes that follow are exactly those after
   it: read the snapshot, then iterate, and nothing is missed or repeated.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, Literal, cast

import anyio

from protocol.blobs import decode_changes, decode_items
from protocol.codec import DecodeError
from protocol.messages import (
    Unwatch,
    Watch,
    WatchChangesResponse,
    WatchNext,
    WatchResponse,
)
from protocol.messages import WatchEnded as WatchEndedError
from protocol.variant import Variant, frozen_value

from ..kernel.errors import SendError, SendErrorKind
from ._checks import as_bytes
from ._core import K, KvCore, V
from ._exchange import answer, expect
from .errors import KvError, NoDb, NoReadCap, UnexpectedResponse, WatchEnded

__all__ = ["Change", "Changes", "KvWatch"]

#: Seconds one ``WatchNext`` waits at kv before it is asked again (kv holds it
#: until a change comes; a quiet db costs one round trip per this many seconds).
POLL_SECONDS = 20.0


@frozen_value(kw_only=True)  # attrs' class, built by @variant (issue 15)
class Change(Variant, Generic[K, V]):
    """One change of a db: ``seq`` increases per db and is never reused."""

    seq: int
    key: K
    #: The new value; None for "delete" and "expire".
    value: V | None
    kind: Literal["set", "delete", "expire"]


class Changes(Generic[K, V]):
    """The changes of one watch, as an async iterator (``async for``)."""

    def __init__(self, db: KvWatch[K, V], watch_id: int, start: int) -> None:
        self._db = db
        self._watch_id = watch_id
        #: The position the watch started at (the snapshot's, with ``snapshot=True``).
        self.start = start
        #: The seq of the last change yielded (``start`` before the first).
        self.position = start
        #: Every matching entry as of ``start`` (empty without ``snapshot=True``).
        self.snapshot: list[tuple[K, V]] = []
        self._acked = start  # kv has sent everything up to here
        self._ready: deque[Change[K, V]] = deque()
        self._ended: BaseException | None = None

    @property
    def watch_id(self) -> int:
        """kv's id of this watch."""
        return self._watch_id

    def __aiter__(self) -> Changes[K, V]:
        return self

    async def __anext__(self) -> Change[K, V]:
        while not self._ready:
            if self._ended is not None:
                raise self._ended
            await self._ask()
        change = self._ready.popleft()
        self.position = change.seq
        return change

    async def _ask(self) -> None:
        """One WatchNext: the next window of changes (held by kv until there is one)."""
        db = self._db
        body = db._encoder.encode(WatchNext(watch_id=self._watch_id, after=self._acked))
        try:
            raw = await db._ctx.send_and_await_response(db._target, body, timeout=POLL_SECONDS)
            response, blob = answer(raw)
        except SendError as exc:
            if exc.kind is SendErrorKind.TIMEOUT:
                return  # a quiet db: ask again (kv answers the older ask empty)
            raise
        except (NoDb, NoReadCap) as exc:  # ended while not asking: the same typed end
            reason = "the db was removed" if isinstance(exc, NoDb) else "read access was revoked"
            self._ended = WatchEnded(WatchEndedError(reason=reason))
            raise self._ended from exc
        except KvError as exc:
            self._ended = exc
            raise
        response = expect(WatchChangesResponse, response)
        try:
            raw_changes = decode_changes(blob or b"", response.count)
        except DecodeError as exc:
            raise UnexpectedResponse(f"kv:distro:sys sent malformed changes: {exc}") from exc
        if raw_changes and raw_changes[0][0] <= self._acked:
            raise UnexpectedResponse("kv:distro:sys sent a change twice")
        key, value = db._key.decode, db._value.decode
        for seq, kind, k, v in raw_changes:
            self._ready.append(
                Change(
                    seq=seq,
                    key=key(k),
                    value=None if v is None else value(v),
                    kind=cast('Literal["set", "delete", "expire"]', kind),
                )
            )
        self._acked = max(self._acked, response.last)


class KvWatch(KvCore[K, V]):
    """``Kv``'s change feeds."""

    __slots__ = ()

    @contextlib.asynccontextmanager
    async def watch(
        self,
        prefix: bytes | str | None = None,
        *,
        start: K | None = None,
        end: K | None = None,
        since: int | None = None,
        snapshot: bool = False,
    ) -> AsyncIterator[Changes[K, V]]:
        """Watch the db's changes to keys under ``prefix`` (bytes, or text as
        UTF-8) or in ``start <= key < end`` (all keys if neither), strictly
        after seq ``since`` (None: from now).

        ``snapshot=True`` (with ``since`` None) also reads every matching entry
        as of the starting position into ``changes.snapshot``. Raises
        ``WatchCompacted`` when the db's log no longer holds ``since``,
        ``TooManyWatches`` at a bound, ``NoReadCap`` without read access.
        The watch ends when the block does.
        """
        if prefix is not None and (start is not None or end is not None):
            raise ValueError("watch takes a prefix or start/end, not both")
        if snapshot and since is not None:
            raise ValueError("a snapshot is taken at the watch's start: since must be None")
        if since is not None and not 0 <= since < 2**64:
            raise ValueError(f"since is a seq in 0..2**64-1, got {since}")
        raw_prefix = prefix.encode() if isinstance(prefix, str) else prefix
        action = Watch(
            prefix=None if raw_prefix is None else as_bytes(raw_prefix, "prefix"),
            start=None if start is None else self._key_bytes(start, "start"),
            end=None if end is None else self._key_bytes(end, "end"),
            since=since,
            snapshot=snapshot,
        )
        response, blob = await self._call(action)
        started = expect(WatchResponse, response)
        changes = Changes(self, started.watch_id, started.position)
        if snapshot:
            try:
                items = decode_items(blob or b"", started.count)
            except DecodeError as exc:
                raise UnexpectedResponse(f"kv:distro:sys sent a malformed snapshot: {exc}") from exc
            key, value = self._key.decode, self._value.decode
            changes.snapshot = [(key(k), value(v)) for k, v in items]
        try:
            yield changes
        finally:
            with contextlib.suppress(KvError, SendError):
                with anyio.CancelScope(shield=True):
                    await self._call(Unwatch(watch_id=started.watch_id))
