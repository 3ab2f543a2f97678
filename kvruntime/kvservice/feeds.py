"""The kv process's change-feed actions: Watch, WatchNext and Unwatch.

The log and the watches are ``changelog.py``'s; this module answers the
requests (read capability, checked by the loop from the action table).

- Watch: logs the db from now on if it was not (its first watch), flushes
  the db's pending writes, then starts the watch at the db's last seq
  (``since`` None) or at ``since`` if the log still covers it, else answers
  ``WatchCompacted``. With ``snapshot`` the answer also carries every
  matching entry as of that same position: the kv serves one request at a
  time, so no write falls between the read and the position (the consistent
  starting point: no gap, no repeat). The snapshot is bounded by
  ``max_answer_bytes`` (``AnswerTooLarge``).
- WatchNext(after): acknowledges every change up to ``after`` and asks for
  what follows: answered at once when the log holds a matching change past
  it, else parked until a flush logs one (``Feeds.notify``). A newer
  WatchNext of the same watch replaces a parked one (answered empty).
- Unwatch: ends the watch.

On a networked engine a log state or log records not at hand raise
``NotAtHand`` (``changelog.py``, invariant 6) before anything is answered:
the kv process fetches them as long work and serves the request again,
which these handlers allow (serving one again changes nothing twice).
"""

from __future__ import annotations

from typing import Final

from protocol.blobs import encode_items
from protocol.ids import ProcessId
from protocol.messages import (
    AnswerTooLarge,
    KvError,
    NoWatch,
    OkResponse,
    Unwatch,
    Watch,
    WatchChangesResponse,
    WatchCompacted,
    WatchNext,
    WatchResponse,
)

from ..kernel.message import Request
from ..storage.store import Store, StoreError
from .changelog import WatchState
from .checks import key_too_large
from .context import Context, Outcome
from .reads import bounds
from .transactions import DbKey

__all__ = ["unwatch", "watch", "watch_next"]

_OK: Final = OkResponse()


def watch(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Watch
) -> Outcome:
    """Watch: a new watch of ``db`` after ``since`` (None: now), with its snapshot."""
    if error := key_too_large(ctx.config, action.prefix, action.start, action.end):
        return error
    lo, hi = bounds(action.prefix, action.start, action.end)
    ctx.flush_pending(store)
    try:
        log = ctx.feeds.enable(store, db, sync=ctx.config.sync_writes)
    except StoreError as exc:
        return exc.error
    # The sweeper knows a db's deadlines once its index is loaded (at first use):
    # load it now, so that a db only watched since its opening logs its "expire"s.
    ctx.expiry.of(store, db)
    after = log.last if action.since is None else action.since
    if not log.covers(after):
        return WatchCompacted(oldest=log.oldest, last=log.last)
    blob, count = None, 0
    if action.snapshot and action.since is None:
        entries = _snapshot(ctx, db, store, lo, hi)
        if not isinstance(entries, list):
            return entries
        blob, count = encode_items(entries), len(entries)
    added = ctx.feeds.add(sender, msg.source, db, lo, hi, after)
    if not isinstance(added, WatchState):
        return added
    ctx.answer(msg, WatchResponse(watch_id=added.watch_id, position=after, count=count), blob)
    return None


def _snapshot(
    ctx: Context, db: DbKey, store: Store, lo: bytes | None, hi: bytes
) -> list[tuple[bytes, bytes]] | KvError:
    """Every entry in ``lo <= key < hi`` now, or AnswerTooLarge past the bound; an
    expired key is absent, as to every read (``expiry.py``), though the sweeper's
    "expire" change for it is still to come."""
    limit, size = ctx.config.max_answer_bytes, 0
    entries: list[tuple[bytes, bytes]] = []
    index = ctx.expiry.of(store, db)
    deadlines, now = index.deadlines, ctx.expiry.now()
    items = store.iterate(start=lo, stop=hi)
    try:
        for key, value in items:
            if deadlines and index.expired(key, now):
                continue
            size += len(key) + len(value)
            if size > limit:
                return AnswerTooLarge(size=size, max=limit)
            entries.append((key, value))
    except StoreError as exc:
        return exc.error
    finally:
        items.close()
    return entries


def watch_next(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: WatchNext
) -> Outcome:
    """WatchNext: the changes after ``after`` now, or parked until there are some."""
    feeds = ctx.feeds
    found = feeds.lookup(action.watch_id, sender, db)
    if found is None:
        return NoWatch(watch_id=action.watch_id)
    feeds.touch(found)
    if found.parked is not None:  # its watcher stopped waiting for it: answer it empty
        ctx.answer(found.parked, WatchChangesResponse(count=0, last=found.after))
        found.parked = None
    try:
        log = feeds.log_of(store)
        if log is None:  # the log is never switched off: a db written outside kv
            log = feeds.enable(store, db, sync=ctx.config.sync_writes)
        log.db = db
        found.after = action.after
        got = feeds.read(store, log, found)
    except StoreError as exc:
        return exc.error
    if got is None:
        found.parked = msg
        return None
    if not isinstance(got, tuple):
        feeds.remove(found, "compacted")
        return got
    ctx.answer(msg, got[0], got[1])
    return None


def unwatch(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Unwatch
) -> Outcome:
    """Unwatch: end the watch (a parked WatchNext is answered empty)."""
    found = ctx.feeds.lookup(action.watch_id, sender, db)
    if found is None:
        return NoWatch(watch_id=action.watch_id)
    if found.parked is not None:
        ctx.answer(found.parked, WatchChangesResponse(count=0, last=found.after))
    ctx.feeds.remove(found)
    ctx.answer(msg, _OK)
    return None
