"""The action table: each KvAction type -> its rule and its handler.

The loop serves a request as decode -> rule -> checks -> handler -> outbox:
it looks the action's type up here, checks what the rule asks (a blob;
for a data action, the db's existence and the read or write capability,
PROTOCOL.md steps 4-5), then calls the handler, which runs the rest of the
checks (sizes, 6; the blob of a batch, 6b; the transaction, 7) and queues
its answer, or returns the error or the long work (``context.Outcome``).

- ``OfTheDb`` rules (Open, RemoveDb, Revoke, Capabilities, in ``access``):
  checks of their own, before any capability check, no store.
- ``OnData`` rules: the db's store once the sender may ``write`` (or read) it.

``TABLE`` covers every KvAction (a test checks it against
``typing.get_args(KvAction)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Generic, TypeVar, cast

from protocol.ids import ProcessId
from protocol.messages import (  # keys with a TTL (issue 14)
    BeginTx,
    Capabilities,
    Commit,
    CommitBatch,
    CompareAndSwap,
    Delete,
    DeleteMany,
    DeleteRange,
    Exists,
    Expire,
    Get,
    GetMany,
    Increment,
    KvAction,
    Open,
    Persist,
    RemoveDb,
    Revoke,
    Rollback,
    Scan,
    Set,
    SetExpiring,
    SetMany,
    SetManyExpiring,
    SetTtlPolicy,
    Ttl,
    TxExists,
    TxGet,
    TxGetMany,
    Unwatch,
    Watch,
    WatchNext,
    WriteBatch,
)
from protocol.variant import Variant, frozen_value

from ..kernel.message import Request
from ..storage.store import Store
from . import access, feeds, reads, ttl_actions, tx_actions, writes
from .context import Context, Outcome
from .transactions import DbKey

__all__ = ["TABLE", "OfTheDb", "OnData", "Rule"]

A = TypeVar("A", bound=KvAction)


@frozen_value(kw_only=True)  # attrs' class, built by @variant (issue 15)
class OfTheDb(Variant, Generic[A]):
    """An action on the db itself: served without a store, checks of its own."""

    needs_blob: bool = False
    serve: Callable[[Context, Request, ProcessId, DbKey, A], Outcome]


@frozen_value(kw_only=True)
class OnData(Variant, Generic[A]):
    """An action on the db's data: served on its store once the sender holds the
    write capability (``write``) or the read one."""

    write: bool
    needs_blob: bool = False
    serve: Callable[[Context, Request, ProcessId, DbKey, Store, A], Outcome]


#: A rule, as the loop reads it (the table ties each one to its action's type).
Rule = OfTheDb[KvAction] | OnData[KvAction]


# Each helper ties a handler to the type of the action it takes (mypy checks
# that at each call); the loop calls it with the action whose type it looked
# up, so the cast to the table's common type loses nothing.


def _db(
    kind: type[A], serve: Callable[[Context, Request, ProcessId, DbKey, A], Outcome]
) -> tuple[type[KvAction], Rule]:
    return cast("type[KvAction]", kind), cast("Rule", OfTheDb(serve=serve))


def _read(
    kind: type[A],
    serve: Callable[[Context, Request, ProcessId, DbKey, Store, A], Outcome],
    *,
    blob: bool = False,
) -> tuple[type[KvAction], Rule]:
    return cast("type[KvAction]", kind), cast(
        "Rule", OnData(write=False, needs_blob=blob, serve=serve)
    )


def _write(
    kind: type[A],
    serve: Callable[[Context, Request, ProcessId, DbKey, Store, A], Outcome],
    *,
    blob: bool = False,
) -> tuple[type[KvAction], Rule]:
    return cast("type[KvAction]", kind), cast(
        "Rule", OnData(write=True, needs_blob=blob, serve=serve)
    )


#: Every KvAction type -> its rule and handler.
TABLE: Final[dict[type[KvAction], Rule]] = dict(
    (
        _db(Open, access.open_db),
        _db(RemoveDb, access.remove_db),
        _db(Revoke, access.revoke),
        _db(Capabilities, access.capabilities),
        _read(Get, reads.get),
        _read(Exists, reads.exists),
        _read(Scan, reads.scan),
        _read(TxGet, reads.tx_get),
        _read(TxExists, reads.tx_exists),
        _read(GetMany, reads.get_many, blob=True),
        _read(TxGetMany, reads.tx_get_many, blob=True),
        _write(Set, writes.set_, blob=True),
        _write(Delete, writes.delete),
        _write(SetMany, writes.set_many, blob=True),
        _write(DeleteMany, writes.delete_many, blob=True),
        _write(WriteBatch, writes.write_batch, blob=True),
        _write(CommitBatch, writes.commit_batch, blob=True),
        _write(Increment, writes.increment),
        _write(CompareAndSwap, writes.compare_and_swap, blob=True),
        _write(DeleteRange, writes.delete_range),
        _write(BeginTx, tx_actions.begin_tx),
        _write(Commit, tx_actions.commit),
        _write(Rollback, tx_actions.rollback),
        _read(Watch, feeds.watch),  # change feeds (issue 14)
        _read(WatchNext, feeds.watch_next),
        _read(Unwatch, feeds.unwatch),
        # keys with a TTL (issue 14)
        _write(SetExpiring, ttl_actions.set_expiring, blob=True),
        _write(SetManyExpiring, ttl_actions.set_many_expiring, blob=True),
        _write(Expire, ttl_actions.expire),
        _write(Persist, ttl_actions.persist),
        _read(Ttl, ttl_actions.ttl),
        _write(SetTtlPolicy, ttl_actions.set_ttl_policy),
    )
)
