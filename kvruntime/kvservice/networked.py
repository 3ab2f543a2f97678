"""The kv process on a networked engine (a ``BatchEngine``: Redis Cluster, issue 13).

``NetworkedKvProcess`` is ``KvProcess`` (``loop.py``) with the three places
where an embedded engine answers inline and a networked one must wait:

1. Before a batch is served, the keys its reads name (Get, Exists, GetMany,
   Increment, CompareAndSwap, and their transactional forms) are fetched in
   one ``prefetch``: one pipeline per shard, which first sends the writes
   still buffered for those dbs. The batch is then served inline, exactly
   as on an embedded engine, against what is *at hand*.
2. A read that is not at hand (a key no prefetch named, a scan page)
   raises ``NotAtHand``: that is long work on the db (rules 1-6 of
   ``loop.py`` hold as for any long work: the db and the sender are held),
   which fetches what is missing and serves the request again, first. Long
   work that meets one (before it writes: it reads first) does the same.
3. ``flush`` hands each db's pending writes to its store, which buffers them
   (reads of the db see them at once); no answer leaves then. ``_settle``
   then awaits ``commit`` (each db's writes one script, one pipeline per
   shard; with ``durability=wait`` a replica has them) and only then sends
   the answers, in serving order. Settles run one at a time, so answers
   leave in the order they were queued, whatever task settles them.

An answer that waited for a write that failed, and every answer queued
since the previous settle for a request on that db (a read may have seen
the write), answers the failure's error instead (an ``IoError``: that
shard is lost; the other dbs are served).

Keys with a TTL (``expiry.py``): a db's expiry index is read from its
records, which are not at hand inline either. The first request that needs
the index of a store raises ``NotAtHand(store, ("expiry", db))``: long work
on the db loads it (``DbExpiry.load`` in a worker thread, where the store's
calls wait for the network), then the request is served again. A failed
commit drops the index of its store (the write may or may not have landed),
so the next use loads it afresh: a read never trusts deadlines the store
may not hold. The sweeper's steps go through the batch path: its deletes
are buffered like any write and ``sweep_step`` settles them.

Change feeds (``changelog.py``, invariant 6): a db's log state (its last seq
and the sizes of its records) is loaded with its expiry index, by the same
long work (``NotAtHand(store, ("log",))`` or ``("expiry", db)``), never
inline: a write is queued only once both are known, so ``flush`` adds its
change records to the same buffered ops, and the db's commit script writes
data and changes at once (one hash tag). A failed commit drops the log
state with the index (read again: a seq the failed write took is given
again). After each commit, ``_settle`` answers the parked watchers of the
dbs it logged from the changes the logs keep in memory (``recent``); a
watcher behind them, or a WatchNext that must catch up, reads the log as
long work (the range fetched, the request served again).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar, Final, cast

import anyio
import anyio.to_thread

from protocol.blobs import decode_keys
from protocol.codec import DecodeError
from protocol.ids import PackageId, ProcessId
from protocol.messages import (
    CompareAndSwap,
    ErrResponse,
    Exists,
    Expire,
    Get,
    GetMany,
    Increment,
    IoError,
    KvAction,
    KvError,
    KvResponse,
    Persist,
    Ttl,
    TxExists,
    TxGet,
    TxGetMany,
    WatchNext,
)
from protocol.prefix import RequestDecoder

from ..kernel.message import Request, Response
from ..storage.engine import BatchEngine, Engine
from ..storage.store import NotAtHand, Store, StoreError
from .changelog import DbLog, Feeds
from .context import Work
from .expiry import DbExpiry
from .loop import KvProcess, _Entry, _internal_error, log
from .transactions import DbKey

if TYPE_CHECKING:
    from ..kernel.bus import Bus, Slot
    from ..kernel.capabilities import CapabilityStore
    from .config import KvConfig

__all__ = ["NetworkedKvProcess"]

#: The actions whose one key a prefetch fetches.
_ONE_KEY: Final = (Get, Exists, TxGet, TxExists, Increment, CompareAndSwap, Expire, Persist, Ttl)
_MANY_KEYS: Final = (GetMany, TxGetMany)
_UNKNOWN: Final = object()
#: The error of writes queued before a failed commit dropped their db's log state.
_LOG_LOST: Final = IoError(message="a commit of this db failed meanwhile; retry the write")


class _DecodedOnce(RequestDecoder):
    """A ``RequestDecoder`` that hands back, once, the parts a round's prefetch decoded.

    ``decoded`` maps ``id(body)`` to its parts; it holds only bodies of the round
    being served (alive, so no other live body has their id) and is emptied before
    the round settles. A body served with the same object (a sender's reused
    bytes) gets the same parts: they depend on its bytes alone.
    """

    __slots__ = ("decoded",)

    def __init__(self) -> None:
        super().__init__()
        self.decoded: dict[int, tuple[PackageId, str, KvAction]] = {}

    def decode_parts(self, body: bytes) -> tuple[PackageId, str, KvAction]:
        """The parts the prefetch kept for ``body``, else decoded."""
        if self.decoded and (parts := self.decoded.pop(id(body), None)) is not None:
            return parts
        return super().decode_parts(body)


class NetworkedKvProcess(KvProcess):
    """The kv process on a ``BatchEngine`` (see the module docstring); a plain
    slotted class, as ``KvProcess``."""

    __slots__ = ("_lost", "_mark", "_once", "_settling")

    networked: ClassVar[bool] = True
    #: Orders the settles (answers leave in the order they were queued).
    _settling: anyio.Lock
    #: The engine's failure seq when the previous settle took its answers.
    _mark: int
    #: Stores whose buffering failed at a flush (closed): their answers' error.
    _lost: dict[Store, KvError]
    #: The decoder ``_serve`` uses: a round's requests are decoded once, by ``_wanted``.
    _once: _DecodedOnce

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
        super().__init__(slot=slot, bus=bus, caps=caps, dbs=dbs, config=config, clock=clock)
        self._settling = anyio.Lock()
        self._mark = 0
        self._lost = {}
        self._once = _DecodedOnce()
        self._decoder = self._once
        self.expiry.loads_inline = False  # an index is loaded as long work (see above)
        self.feeds.loads_inline = False  # and so is a log state, with it
        self.feeds.recent_items = 4 * self.config.watch_window_items

    @property
    def engine(self) -> BatchEngine:
        """The dbs, as the networked engine they are."""
        return cast(BatchEngine, self.dbs)

    # --- 1. a batch: prefetch, serve inline, settle ---------------------------------

    async def _serve_round(self, batch: list[Request | Response]) -> None:
        engine = self.engine
        requests = [m for m in batch if isinstance(m, Request)]
        decoded = self._once.decoded
        try:
            if wanted := self._wanted(requests, decoded):
                await engine.prefetch(wanted)
            self._serve_batch(batch)
        finally:
            decoded.clear()  # their bodies may go: their ids with them
        await self._settle()
        engine.end_round(self._held_dbs)

    def _wanted(
        self,
        requests: Iterable[Request],
        decoded: dict[int, tuple[PackageId, str, KvAction]] | None = None,
    ) -> dict[Store, list[bytes]]:
        """The keys the reads among ``requests`` name, per open store; each body's
        parts kept in ``decoded`` (by ``id``), for ``_serve`` to take (decoded once)."""
        wanted: dict[Store, list[bytes]] = {}
        decode, dbs = RequestDecoder.decode_parts, self.dbs
        decoder = self._once
        for msg in requests:
            body = msg.body
            try:
                parts = decode(decoder, body)
            except DecodeError:
                continue  # another form, or malformed: served as it comes
            if decoded is not None:
                decoded[id(body)] = parts
            package_id, db, action = parts
            if isinstance(action, _ONE_KEY):
                keys = [action.key]
            elif isinstance(action, _MANY_KEYS) and msg.blob is not None:
                try:
                    keys = decode_keys(msg.blob, action.count)
                except DecodeError:
                    continue
            else:
                continue
            if (store := dbs.get(package_id, db)) is not None:
                wanted.setdefault(store, []).extend(keys)
        return wanted

    # --- 2. a read not at hand: long work that fetches, then serves again -------------

    def _failed_serving(self, message: Request, exc: Exception) -> None:
        if not isinstance(exc, NotAtHand):
            return super()._failed_serving(message, exc)
        store = cast(Store, exc.store)
        db: DbKey = getattr(store, "db_key")  # noqa: B009 (a networked store's name)
        self._start(message, message.source.process, db, self._fetch(message, exc))
        return None

    async def _fetch(self, msg: Request, missing: NotAtHand) -> Request | KvError | None:
        """Bring what ``msg`` needs at hand (its db is held), then have it served again."""
        store = cast(Store, missing.store)
        if missing.need[0] in ("expiry", "log"):  # the db's index and log state
            db: DbKey = getattr(store, "db_key")  # noqa: B009 (a networked store's name)
            expiry, feeds = self.expiry, self.feeds
            try:
                if store not in feeds.logs:
                    log_state = await anyio.to_thread.run_sync(Feeds.load, store)
                    feeds.opened(store, log_state)
                if store not in expiry.by_store:
                    index = await anyio.to_thread.run_sync(DbExpiry.load, store, db)
                    expiry.adopt(store, index)
            except StoreError as exc:
                return exc.error
            return msg
        if missing.need[0] == "get":  # every key of the request, in one round trip
            key = cast(bytes, missing.need[1])
            wanted = self._wanted([msg])
            keys = wanted.setdefault(store, [])
            if key not in keys:  # a key the handler reads beside those the request names
                keys.append(key)
            await self.engine.prefetch(wanted)  # a failure is at hand: the read answers it
            return msg
        fetch = getattr(store, "fetch")  # noqa: B009 (a networked store's call)
        try:
            await fetch(missing.need)
        except StoreError as exc:
            return exc.error
        return msg

    async def _run_work(self, msg: Request, sender: ProcessId, db: DbKey, work: Work) -> None:
        await super()._run_work(msg, sender, db, self._fetching_again(msg, work))
        await self._settle()

    async def _fetching_again(self, msg: Request, work: Work) -> Request | KvError | None:
        """``work``; if it needs what is not at hand (a long write's expiry index: long
        work reads before it writes), that is fetched and ``msg`` served again."""
        try:
            return await work
        except NotAtHand as missing:
            return await self._fetch(msg, missing)

    async def sweep_step(self) -> int:
        """A sweeper step through the batch path: its deletes buffered, then committed."""
        gone = self.sweep_expired()
        if gone:
            await self._settle()
        return gone

    # --- 3. writes buffered at flush, committed before their answers leave -----------

    def flush(self) -> None:
        """Hand the pending writes to their stores (buffered), with their change
        records if the db is logged; the answers wait for ``_settle``."""
        if not self.pending:
            return
        feeds = self.feeds
        logs = feeds.logs
        for store, ops in self.pending.items():
            try:
                log_state = logs.get(store, _UNKNOWN)
                if log_state is _UNKNOWN:  # dropped by a failed commit since they were queued
                    raise StoreError(_LOG_LOST)
                if log_state is not None:
                    ops = feeds.with_log(store, ops)
                store.write(ops, sync=False)
            except StoreError as exc:  # a closed store: its writes answer the error
                self._lost[store] = exc.error
                self.dbs.discard(store)
        self.pending.clear()

    async def _answer_parked(self) -> None:
        """Parked requests served (loop.py's rule 8): their answers leave once settled."""
        await self._settle()

    async def _settle(self) -> None:
        """Commit every buffered write, then send the answers queued so far."""
        self.flush()
        outbox, self._outbox = self._outbox, []
        lost, self._lost = self._lost, {}
        engine = self.engine
        mark, self._mark = self._mark, engine.failure_seq()
        try:  # free (the common case): no trip through the event loop
            self._settling.acquire_nowait()
        except anyio.WouldBlock:
            await self._settling.acquire()
        try:
            durable = self.feeds.take_dirty()  # what this commit makes durable
            try:
                await engine.commit()
            except Exception:  # a bug costs these answers, never the loop
                log.exception("kv failed committing a batch")
                lost.update((e[3], _internal_error()) for e in outbox if e[3] is not None)
            if engine.failure_seq() != mark:  # a commit failed since the last settle
                failures = engine.failures
                lost.update((store, error) for seq, store, error in failures if seq >= mark)
            for store in lost:  # its writes may or may not have landed: reload its state
                self.expiry.drop(store)
                self.feeds.drop(store)
            if lost:
                outbox = self._failed(outbox, lost)
            self._send(outbox, lost)
            if durable:  # wake the parked watchers of what was just committed
                self._notify(durable)
        finally:
            self._settling.release()

    def _notify(self, durable: dict[DbLog, int]) -> None:
        """Answer parked watchers from their logs' recent changes up to ``durable``,
        at once (their answers wait for no write); one behind them is served
        again (long work); a held db's watchers wait for its long work's settle."""
        woken: list[_Entry] = []
        since = self.metrics.clock()

        def answer(msg: Request, response: KvResponse, blob: bytes | None) -> None:
            woken.append((msg, response, blob, None, WatchNext, since))

        self.feeds.notify(self.dbs_get, answer, self._serve_one, durable, self._held_dbs)
        self._send(woken, {})

    def _failed(self, outbox: list[_Entry], lost: dict[Store, KvError]) -> list[_Entry]:
        """``outbox`` with every answer on a db in ``lost`` replaced by its error."""
        by_db = {getattr(store, "db_key", None): error for store, error in lost.items()}
        db_of = functools.partial(_db_of, self)
        return [
            (msg, ErrResponse(error=error), None, waited, action, since)
            if (error := by_db.get(db_of(msg))) is not None and waited not in lost
            else (msg, response, blob, waited, action, since)
            for msg, response, blob, waited, action, since in outbox
        ]


def _db_of(kv: NetworkedKvProcess, msg: Request) -> DbKey | None:
    """The db ``msg`` names (decoded again: only answers of a failed db pay for it)."""
    try:
        package_id, db, _, _ = kv._decoder.decode_parts_in_any_form(msg.body)
    except DecodeError:
        return None
    return (package_id, db)
