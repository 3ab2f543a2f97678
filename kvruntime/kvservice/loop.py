"""kv:distro:sys: a capability-secured LevelDB store served over the bus.

How a batch is served (the hot path):
1. The loop takes every request queued in the mailbox (up to ``max_batch``)
   and serves them one by one, in order, with no task per request (a batch
   with large blobs is served in fair rounds instead: rule 7).
2. A plain Set/Delete is checked, then appended to its db's pending write
   list; its answer waits in the outbox. Anything else that reads or writes
   a db first *flushes*: pending writes go to LevelDB, one WriteBatch per db.
3. Answers leave in serving order, after the flush that made their writes
   durable (or answering the flush's error). So one sender's answers keep
   the order of its requests, and an acknowledged write is in LevelDB.
4. Small LevelDB calls run inline; long work on one db (opening, reopening,
   removing it, a DeleteRange) runs in a worker thread, awaited by a task of
   the kv process's own task group, while the loop serves everything else.

Long work, and the order it keeps (the rules that make it safe):
- Rule 1: while db D has long work in flight, D is *held*: every later request
  naming D waits in the deferred queue, so nothing else touches D until the
  work is done (D's order and the atomicity of DeleteRange, as PROTOCOL.md
  states them, hold as if the loop had waited).
- Rule 2: the sender of the long work is held too, and so is every sender
  with a request in the deferred queue: any later request of a held sender
  waits behind, whatever its db. So one sender's requests are still served,
  and answered, in the order they were accepted.
- Rule 3: a db with a request in the deferred queue stays held until it is
  served, so the requests on one db are served in the order they came.
- Rule 4: when long work ends, its answer is queued, the holds it made go,
  and the deferred queue is served again in order (a request may be deferred
  anew behind other long work). So the queue is empty whenever no long work
  is in flight, and shutdown (which waits for the long work) answers it all.
- Rule 5: the deferred queue holds at most ``mailbox_capacity`` requests: at
  the bound the loop stops taking requests until long work ends (the
  mailbox's backpressure then reaches the senders). No unbounded buffer.
- Rule 6: a db's store is used across an await only by its own long work (it
  is held); opening in a thread evicts nothing: the loop closes the least
  recently used dbs past ``max_open_dbs`` itself, skipping held ones, after
  flushing (so no pending write ever meets a closed store).
- Rule 7: a taken batch is served in rounds (``rounds.py``): one round if its
  blobs are small, else round-robin across senders, each round bounded in
  blob bytes and ended by its flush. Between rounds the loop yields (the
  answers reach their senders), then takes what came (while the rounds left
  hold fewer than ``max_batch``) behind what is left, so a sender's requests
  keep their order and no sender's big writes delay another's request by
  more than about a round.
- Rule 8: a sender whose unread answers are over its byte budget (the bus's
  ``backlogged``, kernel invariant 9) is *parked*: its requests wait in its
  own queue, in order (the sender is held, as by rule 2), and are served
  when it reads back within its budget or ends (``Bus.when_read`` wakes a
  task of the loop's), a batch at a time, while every other sender is
  served. Once a sender's queue holds ``mailbox_capacity`` requests the bus
  holds its further requests to kv in its own task (``Bus.hold_sender``)
  until it is served again: its queue then holds at most twice that (what
  kv's mailbox held of it is parked too). A round flushes
  early once its answers hold ``ROUND_BYTES`` of blobs, so a sender goes
  over its budget by at most a round of answers (and one answer of any
  size is always served). At close, parked requests are served regardless.

Open, RemoveDb (and the order its removal keeps), Revoke and Capabilities
are served by ``access.py``; every other action by its handler in the action
table (``actions.py``).

On a networked engine (a ``BatchEngine``: Redis Cluster) the kv process is
``networked.NetworkedKvProcess``: the same loop, where a batch is served by
``_serve_round`` (prefetch, serve inline, commit, then answer) and a read not
at hand is long work under rules 1-6. The embedded engines keep the inline
path above, with no await per request.

One request is served as decode -> rule -> checks -> handler -> outbox, and
its checks run in PROTOCOL.md's order: decode and names (MalformedRequest),
the blob its rule requires, remote sender; then, for a data action, the db's
existence (NoDb for the owning package) and the capability its rule names
(here), and for one on the db its own checks; then the handler's: sizes,
transaction. A check returns what is wrong; ``_serve`` answers it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterable
from typing import ClassVar, Final, assert_never

import anyio
import anyio.lowlevel
import anyio.to_thread

from protocol.codec import DecodeError, encode_response
from protocol.forms import Form, encode_answer, form_of
from protocol.ids import Address, PackageId, ProcessId
from protocol.messages import (
    ErrResponse,
    KvAction,
    KvError,
    KvResponse,
    LevelDbError,
    MalformedRequest,
    NoDb,
    NoReadCap,
    NoTx,
    NoWriteCap,
    OkResponse,
    RemoteNotAllowed,
    TransactionConflict,
)
from protocol.prefix import RequestDecoder

from ..kernel.bus import Bus, Slot
from ..kernel.capabilities import CapabilityStore
from ..kernel.mailbox import MailboxClosed
from ..kernel.message import Capability, Request, Response
from ..storage.engine import Engine, NoSuchDb
from ..storage.store import Store, StoreError
from .access import kv_capability
from .actions import TABLE, OfTheDb, OnData
from .changelog import Feeds  # change feeds (issue 14)
from .checks import first
from .config import KvConfig
from .context import Context, Work
from .expiry import Expiries  # keys with a TTL (issue 14)
from .metrics import KvMetrics  # metrics (issue 15)
from .reserved import RESERVED
from .rounds import ROUND_BYTES, fair_round, split_round
from .transactions import DbKey, Transaction, Transactions

__all__ = ["KvProcess"]

log = logging.getLogger("kvruntime.kv")

_MALFORMED: Final = MalformedRequest()
_NO_READ: Final = NoReadCap()
_NO_WRITE: Final = NoWriteCap()
_OK: Final = OkResponse()

#: An outbox entry: the request, its answer and blob, the store whose flush
#: the answer waits for (a queued write: its flush's error replaces it), and,
#: for the metrics, the request's action type (None: not decoded) and when its
#: serving began (``KvProcess._since``, or what ``_waited`` kept for it).
_Entry = tuple[Request, KvResponse, "bytes | None", "Store | None", "type | None", int]


class KvProcess:
    """The kv module: serves KvRequests from its mailbox until the mailbox closes.

    It is the ``Context`` its handlers are given (``context.py``). A plain
    slotted class (what ``@attrs.define(eq=False, repr=False)`` made of it,
    without attrs' class builder at every start; issue 15): compared by
    identity, shown by ``object``'s repr.
    """

    __slots__ = (
        "__weakref__",
        "_action",
        "_answer_bytes",
        "_cap_keys",
        "_closing",
        "_db_caps",
        "_decoder",
        "_deferred",
        "_forms",
        "_held_dbs",
        "_held_senders",
        "_keys_with_ttl",
        "_outbox",
        "_parked",
        "_room",
        "_since",
        "_transactions_open",
        "_waited",
        "_work",
        "bus",
        "caps",
        "clock",
        "config",
        "dbs",
        "expiry",
        "feeds",
        "metrics",
        "pending",
        "slot",
        "txs",
    )

    slot: Slot
    bus: Bus
    caps: CapabilityStore
    dbs: Engine
    config: KvConfig
    #: Seconds, monotonic: when a transaction is idle (a test may inject its own).
    clock: Callable[[], float]
    #: What it served, for /metrics (metrics.py; issue 15).
    metrics: KvMetrics
    #: The expiry index of every open db, and the wall clock of deadlines (issue 14).
    expiry: Expiries
    #: The open transactions.
    txs: Transactions
    #: The change logs and the watches (changelog.py; issue 14).
    feeds: Feeds
    #: Plain writes waiting for the next flush, per db.
    pending: dict[Store, list[tuple[bytes, bytes | None]]]
    #: Answers in serving order, waiting for the next flush.
    _outbox: list[_Entry]
    #: The form and action of each request not in the canonical form, by ``id`` of
    #: its Request, until it is answered: its answer is written in that form.
    _forms: dict[int, tuple[Form, KvAction | None]]
    #: (package, db) -> (read capability, write capability); bounded cache.
    _db_caps: dict[DbKey, tuple[Capability, Capability]]
    #: An open store -> the keys of its db's (read, write) capabilities; bounded cache.
    _cap_keys: dict[Store, tuple[str, str]]
    _decoder: RequestDecoder
    #: The task group long work runs in (set while ``run`` runs).
    _work: anyio.abc.TaskGroup | None
    #: Dbs and senders held by long work or by deferred requests (rules 1-3), counted.
    _held_dbs: Counter[DbKey]
    _held_senders: Counter[ProcessId]
    #: Requests waiting behind long work, in the order they came (rule 4).
    _deferred: deque[tuple[Request, ProcessId, DbKey | None]]
    _room: anyio.Event
    #: What the background tasks wait on while they have nothing to do (an idle
    #: kv burns no CPU): set when a key gets a TTL, when a transaction opens.
    _keys_with_ttl: anyio.Event
    _transactions_open: anyio.Event
    #: Whether batches are served by ``_serve_round`` (a networked engine's kv process).
    networked: ClassVar[bool] = False
    #: For the metrics: when the batch being served began (``metrics.clock``),
    #: the action type of the request being served (None: not decoded), and, for
    #: a request that waits behind long work or is long work, its own (action
    #: type, start), by ``id``, until it is answered.
    _since: int
    _action: type | None
    _waited: dict[int, tuple[type | None, int]]
    # -- rule 8: senders over their answer budget ---------------------------
    #: The parked requests of each backlogged sender, in the order they came; each
    #: holds its sender (``_held_senders``) once for itself and once per request.
    _parked: dict[ProcessId, deque[Request]]
    #: The mailbox is closed: nothing is parked any more.
    _closing: bool
    #: Blob bytes answered since the last early flush (``answer``, ``fail``).
    _answer_bytes: int
    # -----------------------------------------------------------------------

    def __init__(
        self,
        *,
        slot: Slot,
        bus: Bus,
        caps: CapabilityStore,
        dbs: Engine,
        config: KvConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slot = slot
        self.bus = bus
        self.caps = caps
        self.dbs = dbs
        self.config = config
        self.clock = clock
        self.metrics = KvMetrics()
        self.expiry = Expiries()
        self.pending = {}
        self._outbox = []
        self._forms = {}
        self._db_caps = {}
        self._cap_keys = {}
        self._decoder = RequestDecoder()
        self._work = None
        self._held_dbs = Counter()
        self._held_senders = Counter()
        self._deferred = deque()
        self._room = anyio.Event()
        self._keys_with_ttl = anyio.Event()
        self._transactions_open = anyio.Event()
        self._since = 0
        self._action = None
        self._waited = {}
        self._parked = {}
        self._closing = False
        self._answer_bytes = 0
        self.txs = Transactions(
            max_per_sender=config.max_transactions_per_sender,
            max_bytes=config.max_transaction_bytes,
            max_total_bytes=config.max_staged_bytes_total,
            idle_seconds=config.transaction_idle_seconds,
            clock=clock,
        )
        self.feeds = Feeds(config, clock=clock)  # change feeds (issue 14)
        self.txs.opened = self._wake_expirer
        self.expiry.on_armed = self._wake_sweeper
        bus.on_backlogged.append(self._backlogged)  # rule 8

    @property
    def open_transactions(self) -> int:
        """How many transactions are open."""
        return len(self.txs)

    async def run(self) -> None:
        """Serve until the mailbox is closed and drained."""
        mailbox = self.slot.mailbox
        if swept := await anyio.to_thread.run_sync(self.dbs.sweep_trash):
            log.info("swept %d removed db(s) left by an earlier run", swept)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._expire_transactions)
            tg.start_soon(self._sweep_expired_keys)  # keys with a TTL (issue 14)
            async with anyio.create_task_group() as work:
                self._work = work
                capacity, max_batch = self.config.mailbox_capacity, self.config.max_batch
                networked = self.networked  # kvservice/networked.py: awaits its engine
                rest: list[Request | Response] = []  # taken, not served yet (rule 7)
                while True:
                    if self._deferred and len(self._deferred) >= capacity:
                        self._room = anyio.Event()  # rule 5
                        await self._room.wait()
                        continue
                    if rest:  # rule 7: let the last round's answers go, take what came
                        # Shielded: a taken request is served, even by a cancelled loop.
                        await anyio.lowlevel.cancel_shielded_checkpoint()
                        if len(mailbox) and (room := max_batch - len(rest)) > 0:
                            rest += await mailbox.get_batch(room)  # queued: no wait
                        batch, rest = fair_round(rest)
                    else:
                        try:
                            batch = await mailbox.get_batch(max_batch)
                        except MailboxClosed:
                            self._close_parked()  # rule 8
                            break
                        if len(batch) > 1:
                            batch, rest = split_round(batch)
                    if networked:
                        await self._serve_round(batch)
                    else:
                        self._serve_batch(batch)
            # Every long work has ended, so nothing is deferred any more (rule 4).
            self._work = None
            tg.cancel_scope.cancel()

    async def _expire_transactions(self) -> None:
        interval = max(0.05, min(self.config.transaction_idle_seconds / 2, 30.0))
        while True:
            while not self.txs:  # nothing to expire: wait for a transaction to open
                self._transactions_open = anyio.Event()
                await self._transactions_open.wait()
            await anyio.sleep(interval)
            if gone := self.txs.expire():
                log.info("expired %d idle transaction(s)", gone)

    def _wake_expirer(self) -> None:
        self._transactions_open.set()

    async def _serve_round(self, batch: list[Request | Response]) -> None:
        """Serve ``batch`` with awaits (a networked engine's kv process overrides it)."""
        self._serve_batch(batch)

    # --- keys with a TTL: the sweeper (issue 14; expiry.py) ----------------------------

    async def _sweep_expired_keys(self) -> None:
        while True:
            # No open db has a key with a TTL: wait until one does (Expiries.on_armed).
            while not self.expiry.armed:
                self._keys_with_ttl = anyio.Event()
                await self._keys_with_ttl.wait()
            await anyio.sleep(self.config.expiry_sweep_seconds)
            await self.sweep_step()

    def _wake_sweeper(self) -> None:
        self._keys_with_ttl.set()

    async def sweep_step(self) -> int:
        """One step of the sweeper, its writes done (``sweep_expired``; a networked
        engine's kv process also commits them, as a batch's)."""
        return self.sweep_expired()

    def sweep_expired(self) -> int:
        """One bounded step of the sweeper: delete up to ``expiry_sweep_keys`` expired
        keys of the open dbs no long work holds, through the normal write path
        (``write_now(expired=True)``: a logged db gets an "expire" change per key
        in the same write), then wake the watchers; how many went."""
        budget = self.config.expiry_sweep_keys
        now = self.expiry.now()
        gone = 0
        for store, index in self.expiry.loaded():
            if gone >= budget:
                break
            if not index.deadlines:
                continue
            db = index.db
            if db in self._held_dbs:
                continue
            due = index.due(now, budget - gone)
            if due:
                self.flush_pending(store)
                if self.write_now(db, store, [(key, None) for key in due], expired=True):
                    continue  # the store is discarded; it is swept once reopened
                gone += len(due)
        if gone:
            log.debug("swept %d expired key(s)", gone)
            self.flush()  # wake the watchers of their "expire" changes (change feeds)
        return gone

    def _reap_for_commit(self, tx: Transaction, db: DbKey, store: Store) -> bool:
        """Before a commit's conflict check, delete the db's expired keys (an expiry
        is a write to the check); False if more are due than one sweep step takes
        (then the commit counts as conflicting, conservatively)."""
        index = self.expiry.of(store, db)
        if not tx.reads or not index.deadlines:
            return True
        limit = self.config.expiry_sweep_keys
        due = index.due(self.expiry.now(), limit + 1)
        if not due:
            return True
        self.flush_pending(store)
        if self.write_now(db, store, [(key, None) for key in due[:limit]], expired=True):
            return False
        return len(due) <= limit

    def _serve_batch(self, batch: list[Request | Response]) -> None:
        metrics = self.metrics  # recorded into inline (metrics.py)
        self._since = metrics.clock()
        metrics.batch_sizes[len(batch)] += 1
        # Rule 8: a round's answers go early once they hold round_bytes (a batch of
        # one needs no look: its flush follows).
        many, round_bytes = len(batch) > 1, ROUND_BYTES
        for message in batch:
            if not isinstance(message, Request):
                log.debug("kv ignores a response it did not ask for: %d", message.id)
                continue
            try:  # _serve_one, inline: a call per request costs more than these lines
                self._serve(message)
            except Exception as exc:
                self._failed_serving(message, exc)
            if many and self._answer_bytes > round_bytes:
                self._answer_bytes = 0
                self.flush()
        self.flush()

    def _serve_one(self, message: Request) -> None:
        try:
            self._serve(message)
        except Exception as exc:
            self._failed_serving(message, exc)

    def _failed_serving(self, message: Request, exc: Exception) -> None:
        """Answer a request whose serving raised ``exc`` (called while it is handled)."""
        if isinstance(exc, StoreError):  # e.g. a db path that leads out of the kv root
            return self.fail(message, exc.error)
        # A bug must cost one answer, never the loop.
        log.exception("kv failed serving request %d from %s", message.id, message.source)
        self.fail(message, _internal_error())

    def _wait(self, msg: Request, action: type | None) -> None:
        """Keep ``msg``'s action and start for its answer: it waits behind long
        work, or is long work, and is answered later (the first start stays)."""
        self._waited.setdefault(id(msg), (action, self._since))

    # --- long work and the requests held behind it (rules 1-6) ---------------------

    def _defer(self, msg: Request, sender: ProcessId, db: DbKey | None) -> None:
        self._wait(msg, None if db is None else self._action)  # None: not decoded yet
        self._deferred.append((msg, sender, db))
        self._hold(sender, db)

    def _hold(self, sender: ProcessId, db: DbKey | None) -> None:
        self._held_senders[sender] += 1
        if db is not None:
            self._held_dbs[db] += 1

    def _unhold(self, sender: ProcessId, db: DbKey | None) -> None:
        held = self._held_senders
        held[sender] -= 1
        if not held[sender]:
            del held[sender]
        if db is not None:
            dbs = self._held_dbs
            dbs[db] -= 1
            if not dbs[db]:
                del dbs[db]

    def _start(self, msg: Request, sender: ProcessId, db: DbKey, work: Work) -> None:
        """Run ``work`` (long work on ``db`` for ``msg``) in its own task (rules 1, 2)."""
        assert self._work is not None, "long work outside KvProcess.run"
        self._wait(msg, self._action)
        self._hold(sender, db)
        self._work.start_soon(self._run_work, msg, sender, db, work)

    async def _run_work(self, msg: Request, sender: ProcessId, db: DbKey, work: Work) -> None:
        again: Request | None = None
        try:
            ended = await work
        except StoreError as exc:
            self.fail(msg, exc.error)
        except Exception:  # a bug must cost one answer, never the loop
            log.exception("kv failed serving request %d from %s", msg.id, msg.source)
            self.fail(msg, _internal_error())
        else:
            if isinstance(ended, Request):
                again = ended
            elif ended is not None:
                self.fail(msg, ended)
        finally:
            self._unhold(sender, db)
        self._drain(again)
        self.flush()
        self._evict()

    def _drain(self, first: Request | None = None) -> None:
        """Serve ``first`` then the deferred requests, in order (rule 4)."""
        waiting, self._deferred = self._deferred, deque()
        for _, sender, db in waiting:
            self._unhold(sender, db)
        if first is not None:
            self._serve_one(first)
        for msg, _, _ in waiting:
            self._serve_one(msg)
        if len(self._deferred) < self.config.mailbox_capacity:
            self._room.set()

    # --- senders over their answer budget (rule 8) ---------------------------------

    def _backlogged(self, sender: ProcessId) -> None:
        """The bus says ``sender`` is over its answer budget: hold it (rule 8)."""
        if self._closing or sender in self._parked:
            return
        if self.bus.when_read(sender, functools.partial(self._unpark, sender)):
            self._parked[sender] = deque()
            self._hold(sender, None)

    def _park(self, msg: Request, sender: ProcessId) -> None:
        """Queue ``msg`` behind its backlogged sender's parked requests."""
        queue = self._parked[sender]
        self._wait(msg, None)  # not decoded yet
        queue.append(msg)
        self._hold(sender, None)
        if len(queue) >= self.config.mailbox_capacity:  # bounded: its further sends wait
            self.bus.hold_sender(self.slot, sender)

    def _unpark(self, sender: ProcessId) -> None:
        """``sender`` read back within its budget (called in its task: schedule only)."""
        if self._work is not None:
            self._work.start_soon(self._serve_parked, sender)

    def _repark(self, sender: ProcessId, queue: deque[Request]) -> None:
        """Put ``queue`` back as ``sender``'s parked requests (or behind them)."""
        again = self._parked.get(sender)
        if again is None:
            self._parked[sender] = again = deque()
            self._hold(sender, None)
        for msg in queue:
            again.append(msg)
            self._hold(sender, None)
        if len(again) >= self.config.mailbox_capacity:
            self.bus.hold_sender(self.slot, sender)

    async def _serve_parked(self, sender: ProcessId) -> None:
        """Serve ``sender``'s parked requests in order, a batch at most, until it is
        backlogged again (the rest waits behind, as parked) or none is left."""
        queue = self._parked.pop(sender, None)
        self.bus.release_sender(self.slot, sender)
        if queue is None:
            return
        for _ in range(len(queue) + 1):
            self._unhold(sender, None)
        for _ in range(self.config.max_batch):
            if not queue:
                break
            self._serve_one(queue.popleft())
            if sender in self._parked:  # backlogged again: the rest waits behind
                self._repark(sender, queue)
                break
            if self._answer_bytes > ROUND_BYTES:
                self._answer_bytes = 0
                self.flush()
        else:
            if queue:  # a batch served: let others in, then the rest
                self._repark(sender, queue)
                self._unpark(sender)
        await self._answer_parked()

    async def _answer_parked(self) -> None:
        """Send the answers queued (a networked kv process settles them first)."""
        self.flush()

    def _close_parked(self) -> None:
        """The mailbox is closed: serve every parked request now (rule 8)."""
        self._closing = True
        for sender in list(self._parked):
            self._unpark(sender)
        for sender in list(self.slot.holding):
            self.bus.release_sender(self.slot, sender)

    def _evict(self) -> None:
        """Close the least recently used dbs past ``max_open_dbs``, but held ones (rule 6)."""
        try:
            self.dbs.evict(keep=self._held_dbs)
        except Exception:  # a close that fails costs nothing else
            log.exception("kv failed closing a least recently used db")

    # --- one request: decode -> rule -> checks -> handler -> outbox ------------------

    def _serve(self, msg: Request) -> None:
        """Serve ``msg``, start the long work that will, or defer it (rules 1-3)."""
        source = msg.source
        sender = source.process
        if self._held_senders and sender in self._held_senders:
            if sender in self._parked:
                return self._park(msg, sender)  # rule 8
            return self._defer(msg, sender, None)
        try:
            package_id, db, action = self._decoder.decode_parts(msg.body)
        except DecodeError:
            # Not the canonical form: the ARRAY or JSON form of Hyperware's own
            # types (protocol/forms.py), answered in the form it came in. Only
            # such bodies pay for the second reading.
            try:
                package_id, db, action, form = self._decoder.decode_parts_in_any_form(msg.body)
            except DecodeError as exc:
                log.debug("malformed request %d from %s: %s", msg.id, source, exc)
                if (form := form_of(msg.body)) is not Form.CANONICAL:
                    self._forms[id(msg)] = (form, None)
                self._action = None
                return self.fail(msg, _MALFORMED)
            if form is not Form.CANONICAL:
                self._forms[id(msg)] = (form, action)
        kind = self._action = type(action)
        key = (package_id, db)
        if self._held_dbs and key in self._held_dbs:
            return self._defer(msg, sender, key)
        rule = TABLE[kind]
        if msg.blob is None and rule.needs_blob:
            return self.fail(msg, _MALFORMED)
        if source.node != self.bus.node:
            return self.fail(msg, RemoteNotAllowed())
        match rule:
            case OnData():
                store = self.dbs.get(package_id, db)
                if store is None:  # on disk, not open: reopen, then serve it (long work)
                    if error := self._access(source, sender, key, None, rule.write):
                        return self.fail(msg, error)
                    return self._start(msg, sender, key, self._reopen(msg, key))
                # The db is open, so it exists: the capability alone (_access's step 5,
                # inline: the hot path, where a call costs more than the lookups).
                write = rule.write
                keys = self._cap_keys.get(store) or self._cap_keys_of(store, key)
                if not self.caps.holds(source, keys[1] if write else keys[0]):
                    return self.fail(msg, _NO_WRITE if write else _NO_READ)
                outcome = rule.serve(self, msg, sender, key, store, action)
            case OfTheDb():
                outcome = rule.serve(self, msg, sender, key, action)
            case _:
                assert_never(rule)
        if outcome is None:
            return None
        if isinstance(outcome, Coroutine):
            return self._start(msg, sender, key, outcome)
        return self.fail(msg, outcome)

    def _access(
        self, holder: Address, sender: ProcessId, db: DbKey, store: Store | None, write: bool
    ) -> KvError | None:
        """What stops ``sender`` from using the db (``store`` if open): steps 4-5, or None."""
        package_id, name = db
        exists = store is not None or self.dbs.exists(package_id, name)
        if not exists and sender.belongs_to(package_id):
            return NoDb(package_id=package_id, db=name)
        read_cap, write_cap = self.caps_of(package_id, name)
        if not self.caps.holds(holder, (write_cap if write else read_cap).key):
            return _NO_WRITE if write else _NO_READ
        if not exists:
            return NoDb(package_id=package_id, db=name)
        return None

    async def _reopen(self, msg: Request, db: DbKey) -> Request | KvError | None:
        """Open a db that exists on disk (after a restart or an eviction) and hand
        ``msg`` back to be served first once it is open; else the error."""
        package_id, name = db
        try:
            store = await anyio.to_thread.run_sync(
                functools.partial(self.dbs.open, package_id, name, create=False, evict=False)
            )
            log = await anyio.to_thread.run_sync(Feeds.load, store)  # change feeds (issue 14)
        except NoSuchDb:
            return NoDb(package_id=package_id, db=name)
        except StoreError as exc:
            return exc.error
        self.feeds.opened(store, log)
        return msg

    # --- the Context its handlers use (context.py) -------------------------------------

    def transaction(self, sender: ProcessId, tx_id: int, db: DbKey) -> Transaction | NoTx:
        """The transaction ``tx_id`` of ``sender`` on ``db``, or the NoTx to answer."""
        tx = self.txs.lookup(tx_id, sender, db)
        return NoTx(tx_id=tx_id) if tx is None else tx

    def _cap_keys_of(self, store: Store, db: DbKey) -> tuple[str, str]:
        """The keys of the (read, write) capabilities of ``db``, open as ``store``,
        kept in ``_cap_keys`` (by store: an identity hash, where a DbKey's hash is
        a Python call; bounded, so a closed store is held there until the clear)."""
        if len(self._cap_keys) >= 4096:
            self._cap_keys.clear()
        read_cap, write_cap = self.caps_of(*db)
        keys = self._cap_keys[store] = (read_cap.key, write_cap.key)
        return keys

    def caps_of(self, package_id: PackageId, db: str) -> tuple[Capability, Capability]:
        """The (read, write) capabilities of a db."""
        key = (package_id, db)
        caps = self._db_caps.get(key)
        if caps is None:
            if len(self._db_caps) >= 4096:
                self._db_caps.clear()
            node = self.bus.node
            caps = (
                kv_capability(node, "read", package_id, db),
                kv_capability(node, "write", package_id, db),
            )
            self._db_caps[key] = caps
        return caps

    def dbs_get(self, db: DbKey) -> Store | None:
        """The open store of ``db``, if open (for ``Feeds.notify``)."""
        return self.dbs.get(*db)

    def answer(self, msg: Request, response: KvResponse, blob: bytes | None = None) -> None:
        """Queue ``response`` to ``msg``; it leaves after the next flush."""
        # answer, fail and queue_writes append inline: a call costs more than this line.
        if blob is not None:
            self._answer_bytes += len(blob)  # rule 8
        if self._waited:
            return self._queue_waited(msg, response, blob, None)
        self._outbox.append((msg, response, blob, None, self._action, self._since))

    def fail(self, msg: Request, error: KvError, blob: bytes | None = None) -> None:
        """Queue ``error`` as the answer (with ``blob``: CasMismatch's current value)."""
        if blob is not None:
            self._answer_bytes += len(blob)  # rule 8
        if self._waited:
            return self._queue_waited(msg, ErrResponse(error=error), blob, None)
        self._outbox.append((msg, ErrResponse(error=error), blob, None, self._action, self._since))

    def _queue_waited(
        self, msg: Request, response: KvResponse, blob: bytes | None, waits: Store | None
    ) -> None:
        """Queue an answer while requests wait (``_wait``): ``msg`` may be one of them."""
        if kept := self._waited.pop(id(msg), None):
            action, since = kept
            # Deferred before decoding: it is being served now, so _action is its own.
            self._outbox.append((msg, response, blob, waits, action or self._action, since))
        else:
            self._outbox.append((msg, response, blob, waits, self._action, self._since))

    def flush_pending(self, store: Store) -> None:
        """Flush if ``store`` has pending writes, so that a read of it sees them."""
        if store in self.pending:
            self.flush()

    def write_now(
        self,
        db: DbKey,
        store: Store,
        ops: Iterable[tuple[bytes, bytes | None]],
        *,
        expired: bool = False,
    ) -> KvError | None:
        """Write ``ops`` in one batch now and log them for the conflict check, or
        the error: then the db is closed (its log may end in a torn record; the
        next request reopens it). The change log gets their changes in the same
        batch (``Feeds.with_log``); ``expired``: the sweeper's deletes of expired
        keys (the change log's kind "expire")."""
        ops = self.expiry.complete(store, db, list(ops))  # keys with a TTL (issue 14)
        try:
            logged = self.feeds.with_log(store, ops, expired=expired)  # change feeds (issue 14)
            store.write(logged, sync=self.config.sync_writes)
        except StoreError as exc:
            self.dbs.discard(store)
            return exc.error
        except Exception:  # a bug or a bad op costs this answer, never the loop
            log.exception("kv failed writing to %s", store)
            self.dbs.discard(store)
            return _internal_error()
        self.txs.record_writes(db, map(first, ops))
        return None

    def commit(self, msg: Request, tx: Transaction, db: DbKey, store: Store) -> KvError | None:
        """Apply ``tx``'s staged writes atomically, after the db's pending plain
        writes, and answer; or the error. If a key it read changed since,
        TransactionConflict and nothing applied. The transaction ends either way."""
        reaped = self._reap_for_commit(tx, db, store)  # an expiry is a write (issue 14)
        conflict = not reaped or self.txs.conflicts(tx)
        self.txs.finish(tx)
        if conflict:
            return TransactionConflict(tx_id=tx.tx_id)
        self.flush_pending(store)
        if error := self.write_now(db, store, tx.writes.items()):
            return error
        self.answer(msg, _OK)
        return None

    def queue_writes(
        self, msg: Request, db: DbKey, store: Store, ops: list[tuple[bytes, bytes | None]]
    ) -> None:
        """Add ``ops`` to ``store``'s pending batch; ``msg`` is answered after the flush."""
        expiry = self.expiry  # keys with a TTL (issue 14); records, if any, come last
        if expiry.armed or store not in expiry.by_store or (ops and ops[-1][0] >= RESERVED):
            ops = expiry.complete(store, db, ops)
        self.pending.setdefault(store, []).extend(ops)
        if self._waited:
            self._queue_waited(msg, _OK, None, store)
        else:
            self._outbox.append((msg, _OK, None, store, self._action, self._since))
        if self.txs.logs:  # a transaction is open somewhere: the conflict check
            self.txs.record_writes(db, map(first, ops))

    def flush(self) -> None:
        """Write pending plain writes, one batch per db, then send every waiting answer."""
        failed: dict[Store, KvError] = {}
        if self.pending:
            sync, feeds = self.config.sync_writes, self.feeds
            logs = feeds.logs
            for store, ops in self.pending.items():
                try:
                    if logs.get(store, ops) is not None:  # a logged db (or not known yet)
                        ops = feeds.with_log(store, ops)  # change feeds (issue 14)
                    store.write(ops, sync=sync)
                except StoreError as exc:
                    failed[store] = exc.error
                    self.dbs.discard(store)  # its log may end in a torn record
                except Exception:  # a bug or a bad op costs this db's writes, never the loop
                    log.exception("kv failed writing a batch to %s", store)
                    failed[store] = _internal_error()
                    self.dbs.discard(store)
            self.pending.clear()
        if self.feeds.dirty:  # change feeds: wake parked watchers (issue 14)
            self.feeds.notify(self.dbs_get, self.answer)
        outbox, self._outbox = self._outbox, []
        self._send(outbox, failed)

    def _send(self, outbox: list[_Entry], failed: dict[Store, KvError]) -> None:
        """Send ``outbox``'s answers in order; one that waited for a store in ``failed``
        answers its error."""
        if not outbox:
            return
        respond, source = self.bus.respond, self.slot.address
        metrics = self.metrics  # recorded into inline (metrics.py says what and why)
        now, batch_since = metrics.clock(), self._since
        ok_counts, written, read, late = metrics.ok_counts, 0, 0, 0
        for msg, response, blob, waited, action, since in outbox:
            if failed and waited in failed:
                response, blob = ErrResponse(error=failed[waited]), None
            if type(response) is ErrResponse:
                is_error = True
                metrics.failed(action, response.error)
            else:
                is_error = False
                ok_counts[action] += 1
                if msg.blob is not None:
                    written += len(msg.blob)
            if blob is not None:
                read += len(blob)
            if since != batch_since:  # it waited behind long work
                metrics.latency(now - since)
                late += 1
            form = self._forms.pop(id(msg), None) if self._forms else None
            if msg.expects_response is None:
                if is_error:
                    log.warning("request %d from %s failed: %s", msg.id, msg.source, response)
                continue
            metadata = None if is_error else msg.metadata
            try:  # by position: this is the hot path (see message.py)
                body = encode_response(response) if form is None else encode_answer(response, *form)
                respond(Response(msg.id, source, msg.source, body, blob, metadata))
            except Exception:  # one answer the bus refuses must not cost the others
                log.exception("kv could not answer request %d from %s", msg.id, msg.source)
        # The flush's counts: the latency of the answers of the batch it ends
        # (latency_slot, inline), the bytes.
        if in_batch := len(outbox) - late:
            nanoseconds = now - batch_since
            metrics.latency_counts[(nanoseconds // 1000).bit_length()] += in_batch
            metrics.latency_total += nanoseconds * in_batch
        if written:
            metrics.bytes_written += written
        if read:
            metrics.bytes_read += read


#: Checked by mypy: the kv process is the context its handlers are given.
_CONTEXT: Final[type[Context]] = KvProcess


def _internal_error() -> KvError:
    return LevelDbError(message="internal error in kv:distro:sys (logged)")
