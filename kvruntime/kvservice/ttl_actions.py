"""The kv process's TTL actions: SetExpiring, SetManyExpiring, Expire, Persist,
Ttl and SetTtlPolicy (PROTOCOL.md, "Keys with a TTL").

A TTL is whole milliseconds, at least 1; the deadline it gives is now (the
wall clock, ``Expiries.now``) plus the TTL, stored as ``expiry.py`` says.

Invariants:
1. A write with a TTL is one write: its data ops and its deadline ops go in
   one batch, through the same write path as every other write (queued, or
   staged in a transaction, or applied at once), so its atomicity, order and
   conflict rules are the write path's.
2. The policy is checked after the size and reserved-key checks (step 6),
   before the transaction lookup (step 7): ``TtlDisabled``, ``TtlTooLarge``.
3. Expire and Persist count as writes of their key for the conflict check;
   Expire, Persist and Ttl answer ``KeyNotFound`` for a key absent or expired.
"""

from __future__ import annotations

import functools
from typing import Final

import anyio.to_thread

from protocol.blobs import decode_items
from protocol.codec import DecodeError
from protocol.ids import ProcessId
from protocol.messages import (
    Expire,
    KeyNotFound,
    KvError,
    MalformedRequest,
    NoTx,
    OkResponse,
    Persist,
    SetExpiring,
    SetManyExpiring,
    SetTtlPolicy,
    Ttl,
    TtlDisabled,
    TtlResponse,
    TtlTooLarge,
)

from ..kernel.message import Request
from ..storage.store import Store, StoreError
from .checks import (
    batch_blob,
    key_reserved,
    key_too_large,
    ops_refused,
    value_too_large,
)
from .context import Context, Outcome
from .expiry import TtlPolicy, deadline_op
from .reserved import SETTINGS
from .transactions import DbKey
from .writes import LONG_BATCH_ITEMS, plain_write

__all__ = [
    "MAX_TTL_MS",
    "expire",
    "persist",
    "set_expiring",
    "set_many_expiring",
    "set_ttl_policy",
    "ttl",
]

#: The longest TTL any db accepts: about 100 years, so a deadline always fits 8 bytes.
MAX_TTL_MS: Final = 100 * 365 * 24 * 3600 * 1000

_KEY_NOT_FOUND: Final = KeyNotFound()
_MALFORMED: Final = MalformedRequest()
_OK: Final = OkResponse()
_TTL_DISABLED: Final = TtlDisabled()


def _deadline(ctx: Context, db: DbKey, store: Store, ttl_ms: int) -> int | KvError:
    """The deadline ``ttl_ms`` from now, or what the db's policy says against it."""
    if ttl_ms < 1:
        return _MALFORMED
    policy = ctx.expiry.of(store, db).policy
    if not policy.enabled:
        return _TTL_DISABLED
    limit = MAX_TTL_MS if policy.max_ttl_ms is None else min(policy.max_ttl_ms, MAX_TTL_MS)
    if ttl_ms > limit:
        return TtlTooLarge(ttl_ms=ttl_ms, max_ms=limit)
    return ctx.expiry.now() + ttl_ms


def set_expiring(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: SetExpiring
) -> Outcome:
    """SetExpiring: Set, with the key's deadline in the same write (invariant 1)."""
    key, value = action.key, msg.blob or b""
    error: KvError | None
    if error := (
        key_too_large(ctx.config, key) or value_too_large(ctx.config, value) or key_reserved(key)
    ):
        return error
    deadline = _deadline(ctx, db, store, action.ttl_ms)
    if not isinstance(deadline, int):
        return deadline
    ops = [(key, value), deadline_op(key, deadline)]
    if action.tx_id is None:
        ctx.queue_writes(msg, db, store, ops)
        return None
    tx = ctx.transaction(sender, action.tx_id, db)
    if isinstance(tx, NoTx):
        return tx
    writes = dict(ops)
    size = tx.size_after_many(writes)
    if error := ctx.txs.too_large(tx, size):
        return error
    ctx.txs.stage_many(tx, writes, size)
    ctx.answer(msg, _OK)
    return None


def set_many_expiring(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: SetManyExpiring
) -> Outcome:
    """SetManyExpiring: SetMany, every key with the same deadline, in one write."""
    blob = batch_blob(ctx.config, msg.blob, action.count)
    if not isinstance(blob, bytes):
        return blob
    try:
        items = list(decode_items(blob, action.count))
    except DecodeError:
        return _MALFORMED
    ops: list[tuple[bytes, bytes | None]] = list(items)
    if error := ops_refused(ctx.config, ops):
        return error
    deadline = _deadline(ctx, db, store, action.ttl_ms)
    if not isinstance(deadline, int):
        return deadline
    with_deadlines: list[tuple[bytes, bytes | None]] = []
    for key, value in items:
        with_deadlines += ((key, value), deadline_op(key, deadline))
    return plain_write(ctx, msg, db, store, with_deadlines, len(blob))


def _present(ctx: Context, db: DbKey, store: Store, key: bytes) -> bool | KvError:
    """Whether ``key`` is present and not expired (after the pending writes)."""
    ctx.flush_pending(store)
    try:
        value = store.get(key)
    except StoreError as exc:
        return exc.error
    return value is not None and not ctx.expiry.expired(store, db, key)


def expire(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Expire
) -> Outcome:
    """Expire: give the present key a deadline ``ttl_ms`` from now."""
    key = action.key
    error: KvError | None
    if error := key_too_large(ctx.config, key) or key_reserved(key):
        return error
    deadline = _deadline(ctx, db, store, action.ttl_ms)
    if not isinstance(deadline, int):
        return deadline
    return _set_deadline(ctx, msg, db, store, key, deadline)


def persist(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Persist
) -> Outcome:
    """Persist: take the present key's deadline off (none is fine)."""
    key = action.key
    error: KvError | None
    if error := key_too_large(ctx.config, key) or key_reserved(key):
        return error
    return _set_deadline(ctx, msg, db, store, key, None)


def _set_deadline(
    ctx: Context, msg: Request, db: DbKey, store: Store, key: bytes, deadline: int | None
) -> Outcome:
    present = _present(ctx, db, store, key)
    if not isinstance(present, bool):
        return present
    if not present:
        return _KEY_NOT_FOUND
    if error := ctx.write_now(db, store, [deadline_op(key, deadline)]):
        return error
    ctx.txs.record_writes(db, [key])  # invariant 3
    ctx.answer(msg, _OK)
    return None


def ttl(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: Ttl
) -> Outcome:
    """Ttl: the milliseconds the present key has left, or None if it never expires."""
    key = action.key
    if error := key_too_large(ctx.config, key):
        return error
    if key_reserved(key):  # kv's own: absent, as every read answers it
        return _KEY_NOT_FOUND
    present = _present(ctx, db, store, key)
    if not isinstance(present, bool):
        return present
    if not present:
        return _KEY_NOT_FOUND
    deadline = ctx.expiry.of(store, db).deadlines.get(key)
    left = None if deadline is None else deadline - ctx.expiry.now()
    ctx.answer(msg, TtlResponse(ttl_ms=left))
    return None


def set_ttl_policy(
    ctx: Context, msg: Request, sender: ProcessId, db: DbKey, store: Store, action: SetTtlPolicy
) -> Outcome:
    """SetTtlPolicy: store the db's TTL settings. Disabling TTLs also takes every
    deadline off, in the same write: no key of the db expires any more."""
    if action.max_ttl_ms is not None and action.max_ttl_ms < 1:
        return _MALFORMED
    policy = TtlPolicy(enabled=action.enabled, max_ttl_ms=action.max_ttl_ms)
    index = ctx.expiry.of(store, db)
    ctx.flush_pending(store)
    ops: list[tuple[bytes, bytes | None]] = [(SETTINGS, policy.encode())]
    cleared = list(index.deadlines) if not policy.enabled else []
    ops += [deadline_op(key, None) for key in cleared]
    if len(ops) >= LONG_BATCH_ITEMS:  # many deadlines to take off: long work, as a batch
        return _write_policy_in_thread(ctx, msg, db, store, ops, policy, cleared)
    if error := ctx.write_now(db, store, ops):
        return error
    index.policy = policy
    ctx.txs.record_writes(db, cleared)
    ctx.answer(msg, _OK)
    return None


async def _write_policy_in_thread(
    ctx: Context,
    msg: Request,
    db: DbKey,
    store: Store,
    ops: list[tuple[bytes, bytes | None]],
    policy: TtlPolicy,
    cleared: list[bytes],
) -> KvError | None:
    """SetTtlPolicy's one write, in a worker thread (the db is held meanwhile)."""
    index = ctx.expiry.of(store, db)
    ops = ctx.expiry.complete(store, db, ops)
    job = functools.partial(store.write, ops, sync=ctx.config.sync_writes)
    try:
        await anyio.to_thread.run_sync(job)
    except StoreError as exc:
        ctx.dbs.discard(store)  # a failed write may leave a torn log record; reopen
        return exc.error
    index.policy = policy
    ctx.txs.record_writes(db, cleared)
    ctx.answer(msg, _OK)
    return None
