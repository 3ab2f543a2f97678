"""What an action's handler may use of the kv process: the ``Context`` seam.

A handler (``reads``, ``writes``, ``access``, ``actions``) is given a
``Context``, never the ``KvProcess`` itself: the limits, the open
transactions, the dbs and the capability store, and the few ways it may
answer or write. ``KvProcess`` (``loop.py``) is the one implementation; a
handler module imports this module, not the loop, so the loop may import
the handlers without a cycle.

What a handler returns (``Outcome``) is the one way it reports a failure the
loop answers for it: a ``KvError`` (answered as ``ErrResponse``), None (the
handler queued its answer, or its write, itself), or the long work that will
(rules 1-6 of ``loop.py``: a coroutine run in the kv process's task group).
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, Protocol, TypeAlias

from protocol.ids import PackageId, ProcessId
from protocol.messages import KvError, KvResponse, NoTx

from ..kernel.bus import Bus
from ..kernel.capabilities import CapabilityStore
from ..kernel.message import Capability, Request
from ..storage.engine import Engine
from ..storage.store import Store
from .changelog import Feeds
from .config import KvConfig
from .expiry import Expiries
from .transactions import DbKey, Transaction, Transactions

__all__ = ["Context", "Outcome", "Work"]

#: Long work on one db: a coroutine run in its own task while the loop serves
#: other dbs; it ends with a request to serve first (a reopened db's), an
#: error to answer, or None (it answered). (``Any``: what ``async def`` gives.)
Work: TypeAlias = Coroutine[Any, Any, "Request | KvError | None"]

#: What a handler returns: an error the loop answers, long work, or None.
Outcome: TypeAlias = "KvError | Work | None"


class Context(Protocol):
    """The kv process as its handlers see it."""

    @property
    def config(self) -> KvConfig:
        """The limits and knobs."""

    @property
    def txs(self) -> Transactions:
        """The open transactions."""

    @property
    def dbs(self) -> Engine:
        """The dbs, open or on disk."""

    @property
    def feeds(self) -> Feeds:
        """The change logs and the watches (issue 14)."""

    @property
    def expiry(self) -> Expiries:
        """The expiry index of every open db (keys with a TTL)."""

    @property
    def caps(self) -> CapabilityStore:
        """Who holds which capability."""

    @property
    def bus(self) -> Bus:
        """The bus (its node, and the offers it holds)."""

    def caps_of(self, package_id: PackageId, db: str) -> tuple[Capability, Capability]:
        """The (read, write) capabilities of a db."""

    def transaction(self, sender: ProcessId, tx_id: int, db: DbKey) -> Transaction | NoTx:
        """The transaction ``tx_id`` of ``sender`` on ``db``, or the NoTx to answer."""

    def answer(self, msg: Request, response: KvResponse, blob: bytes | None = None) -> None:
        """Queue ``response`` to ``msg``; it leaves after the next flush."""

    def fail(self, msg: Request, error: KvError, blob: bytes | None = None) -> None:
        """Queue ``error`` as the answer (with ``blob``: CasMismatch's current value)."""

    def flush(self) -> None:
        """Write every pending write, then send every queued answer."""

    @property
    def pending(self) -> Mapping[Store, object]:
        """The stores with plain writes waiting for the next flush (a hot read tests
        ``store in pending`` then calls ``flush``: ``flush_pending`` inline)."""

    def flush_pending(self, store: Store) -> None:
        """Flush if ``store`` has pending writes, so that a read of it sees them."""

    def write_now(
        self,
        db: DbKey,
        store: Store,
        ops: Iterable[tuple[bytes, bytes | None]],
        *,
        expired: bool = False,
    ) -> KvError | None:
        """Write ``ops`` in one batch now (logged for the conflict check, and in the
        change log: ``Feeds.with_log``), or the error.

        ``expired``: the ops are the sweeper's deletes of expired keys (the
        change log records them as kind "expire")."""

    def queue_writes(
        self, msg: Request, db: DbKey, store: Store, ops: list[tuple[bytes, bytes | None]]
    ) -> None:
        """Add ``ops`` to ``store``'s pending batch; ``msg`` is answered after the flush.

        Ops of one request that carry expiry records (``expiry.deadline_op``) end
        with one, so that the hot path sees them with one comparison."""

    def commit(self, msg: Request, tx: Transaction, db: DbKey, store: Store) -> KvError | None:
        """Apply ``tx``'s writes atomically and answer, or the error (the tx ends either way)."""
