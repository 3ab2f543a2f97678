"""The Redis Cluster engine: a node's dbs in a Redis Cluster (issue 13).

``Runtime(storage="redis-cluster://h:p,...")`` picks it; the kv process
drives it as a ``BatchEngine`` (``kvservice/networked.py``): it serves a
batch against what the engine has *at hand*, and the engine does the network
work once per batch, one pipeline per master, through redis-py's
``redis.asyncio.cluster`` (which follows MOVED/ASK and refreshes the
topology).

Layout, per db, under one hash tag (so every key of a db is in one slot and
one Lua script changes them atomically): ``kv{T}v``, a hash key -> value, and
``kv{T}k``, a sorted set of the keys (all scores 0: ordered by bytes, as
``ZRANGE BYLEX`` reads them). ``T`` is the percent-encoded
``namespace/node/package/db`` (``?namespace=`` of the URL, empty by
default), so runtimes of different nodes share a cluster without colliding.
The dbs of a node are the set ``kvdbs{N}`` (N: the namespace and the node).

What is not LevelDB's: a scan page is one snapshot (one script), but an
``iterate`` from a worker thread (a DeleteRange) reads pages of
``_THREAD_PAGE`` keys, each its own snapshot; as the kv process holds the db
meanwhile (one writer, invariant 1), no write lands between them.

Invariants (beside those of ``engine.py``):
1. One writer per namespace: only this node's kv process writes its keys, so
   what it wrote and read in this batch (``at hand``) is the current state.
   What a worker thread writes drops what is at hand (it is fetched again).
   Two runtimes with the same node name on one cluster are not supported.
2. Inline calls (on the event loop) never touch the network: ``get`` and
   ``read_page``/``iterate`` answer from what this batch fetched, else raise
   ``NotAtHand`` (the kv loop fetches it as long work on the db and serves
   the request again); ``write`` buffers its ops (and lays them over what is
   at hand). ``BatchEngine.prefetch``/``commit`` send the buffers, each as one
   ``EVAL`` (atomic: all of a batch or none), before any read of that db;
   every commit that fails is logged in ``failures`` (the kv process answers
   the error to what waited for it).
3. Called from a worker thread (long work: a DeleteRange, a large batch,
   open/remove), the same methods run on the event loop through
   ``anyio.from_thread`` and wait for the network: a write is committed when
   it returns.
4. A failed round trip is ``StoreError(IoError)`` for the dbs of that master
   only; the store is then discarded (what it had at hand is dropped) and
   the next batch starts afresh.
5. Start refuses a cluster that cannot be reached, or whose
   ``maxmemory-policy`` is not ``noeviction`` (an evicting policy may drop
   acknowledged data): ``StorageUnavailable``.
6. Durability (``?durability=``): ``async`` (default) answers once the master
   applied the batch (replication is asynchronous: a failover may lose the
   last writes); ``wait`` also waits for ``WAIT 1`` (one replica has it)
   before answering, else the answer is an IoError.
"""

from __future__ import annotations

import itertools
import logging
import threading
import urllib.parse
from collections.abc import Callable, Container, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, cast, overload

import anyio
import anyio.from_thread
import attrs
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from protocol.ids import PackageId, validate_db_name
from protocol.messages import IoError, KvError, LevelDbError

from .engine import DbKey, NoSuchDb, StorageUnavailable
from .store import NotAtHand, PageRead, StoreError, fill_page, prefix_end

__all__ = ["RedisClusterEngine", "RedisStore", "parse_url"]

log = logging.getLogger("kvruntime.storage.redis")

SCHEME: Final = "redis-cluster"

_Ops: TypeAlias = list[tuple[bytes, bytes | None]]
#: A range as a store caches it: (start, stop, reverse, include_value).
_Range: TypeAlias = tuple[bytes | None, bytes | None, bool, bool]

# ARGV: n, then n (key, value) sets, then the keys to delete. Atomic: one script.
_WRITE: Final = b"""
local h, z = KEYS[1], KEYS[2]
local n = tonumber(ARGV[1])
local hs, zs = {}, {}
for i = 0, n - 1 do
  local k = ARGV[2 + 2 * i]
  hs[#hs + 1] = k; hs[#hs + 1] = ARGV[3 + 2 * i]
  zs[#zs + 1] = '0'; zs[#zs + 1] = k
  if #hs >= 2000 then
    redis.call('HSET', h, unpack(hs)); redis.call('ZADD', z, unpack(zs)); hs, zs = {}, {}
  end
end
if #hs > 0 then redis.call('HSET', h, unpack(hs)); redis.call('ZADD', z, unpack(zs)) end
local ds = {}
for i = 2 + 2 * n, #ARGV do
  ds[#ds + 1] = ARGV[i]
  if #ds >= 2000 then
    redis.call('HDEL', h, unpack(ds)); redis.call('ZREM', z, unpack(ds)); ds = {}
  end
end
if #ds > 0 then redis.call('HDEL', h, unpack(ds)); redis.call('ZREM', z, unpack(ds)) end
return 1
"""

# ARGV: min, max (ZRANGE BYLEX bounds), reverse, with values, count. One snapshot.
_RANGE: Final = b"""
local ks
if ARGV[3] == '1' then
  ks = redis.call('ZRANGE', KEYS[2], ARGV[2], ARGV[1], 'BYLEX', 'REV', 'LIMIT', 0, ARGV[5])
else
  ks = redis.call('ZRANGE', KEYS[2], ARGV[1], ARGV[2], 'BYLEX', 'LIMIT', 0, ARGV[5])
end
local vs = {}
if ARGV[4] == '1' then
  for i = 1, #ks, 1000 do
    local part = redis.call('HMGET', KEYS[1], unpack(ks, i, math.min(i + 999, #ks)))
    for j = 1, #part do vs[#vs + 1] = part[j] end
  end
end
return {ks, vs}
"""

#: Entries fetched at first for an unbounded ``iterate`` (doubled as it goes on).
_FIRST_RANGE: Final = 64
#: Entries per round trip when a worker thread iterates.
_THREAD_PAGE: Final = 1000
#: Retries of a command that met a connection error (see ``start``).
_RETRIES: Final = 3
#: Failed commits the engine remembers (the kv process reads the recent ones).
_FAILURES_KEPT: Final = 1024


def parse_url(url: str) -> tuple[list[tuple[str, int]], str, str]:
    """``redis-cluster://h:p,h:p[?durability=async|wait][&namespace=NAME]`` ->
    (nodes, durability, namespace).

    ValueError for anything else.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URL: {url!r}")
    nodes: list[tuple[str, int]] = []
    for item in parts.netloc.split(","):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{url!r}: expected host:port[,host:port...], got {item!r}")
        nodes.append((host, int(port)))
    query = urllib.parse.parse_qs(parts.query, strict_parsing=False)
    durability = query.pop("durability", ["async"])[-1]
    namespace = query.pop("namespace", [""])[-1]
    if durability not in ("async", "wait") or query or parts.path not in ("", "/"):
        raise ValueError(f"{url!r}: the options are durability=async|wait and namespace=NAME")
    return nodes, durability, namespace


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _lex_min(start: bytes | None) -> bytes:
    return b"-" if start is None else b"[" + start


def _lex_max(stop: bytes | None) -> bytes:
    return b"+" if stop is None else b"(" + stop


def _io_error(label: str, exc: BaseException) -> StoreError:
    return StoreError(IoError(message=f"[{label}] redis cluster: {type(exc).__name__}: {exc}"))


def _squash(ops: _Ops) -> list[bytes]:
    """The ARGV of ``_WRITE`` for ``ops`` (later ops on a key win)."""
    last = dict(ops)
    sets = [(k, v) for k, v in last.items() if v is not None]
    argv: list[bytes] = [b"%d" % len(sets)]
    argv.extend(itertools.chain.from_iterable(sets))
    argv.extend(k for k, v in last.items() if v is None)
    return argv


@attrs.define(eq=False, kw_only=True)
class _Range_:
    entries: list[Any]  # (key, value) pairs, or keys alone
    complete: bool


@attrs.define(eq=False, kw_only=True)
class RedisStore:
    """One db in the cluster, as a ``Store`` (see the module's invariants 2-4)."""

    engine: RedisClusterEngine
    db_key: DbKey
    label: str
    values: bytes  # the hash's key
    order: bytes  # the sorted set's key
    _at_hand: dict[bytes, bytes | None] = attrs.field(init=False, factory=dict)
    _ranges: dict[_Range, _Range_] = attrs.field(init=False, factory=dict)
    _buffer: _Ops = attrs.field(init=False, factory=list)
    _fetch_error: IoError | LevelDbError | None = attrs.field(init=False, default=None)
    _lock: anyio.Lock | None = attrs.field(init=False, default=None)
    _closed: bool = attrs.field(init=False, default=False)

    @property
    def closed(self) -> bool:
        """Whether ``close`` has run."""
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise StoreError(LevelDbError(message=f"[{self.label}] store is closed"))

    def _inline(self) -> bool:
        return threading.get_ident() == self.engine.loop_thread

    # --- the Store calls ------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value at hand, else NotAtHand (inline); fetched (from a thread)."""
        self._check()
        if not self._inline():
            return anyio.from_thread.run(self._fetch_get, key)
        try:
            return self._at_hand[key]
        except KeyError:
            pass
        if self._fetch_error is not None:
            raise StoreError(self._fetch_error)
        raise NotAtHand(self, ("get", key))

    def write(self, ops: Iterable[tuple[bytes, bytes | None]], *, sync: bool = False) -> None:
        """Buffer ``ops`` for this batch's commit (inline); commit them now (from a thread)."""
        self._check()
        batch = list(ops)  # if iterating raises, nothing is written
        if not self._inline():
            anyio.from_thread.run(self._write_now, batch)
            return
        self._buffer.extend(batch)
        self._at_hand.update(batch)
        self._ranges.clear()  # a cached range may no longer be what the db holds
        self.engine.touched.add(self)
        self.engine.dirty.add(self)

    @overload
    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: Literal[True] = True,
    ) -> Generator[tuple[bytes, bytes], None, None]: ...

    @overload
    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: Literal[False],
    ) -> Generator[bytes, None, None]: ...

    def iterate(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        prefix: bytes | None = None,
        reverse: bool = False,
        include_value: bool = True,
    ) -> Generator[tuple[bytes, bytes], None, None] | Generator[bytes, None, None]:
        """Entries in key order. Inline: what is at hand, then NotAtHand for more;
        from a thread: fetched a page at a time (each page one snapshot)."""
        if prefix is not None:
            if start is not None or stop is not None:
                raise ValueError("iterate takes prefix or start/stop, not both")
            start, stop = prefix, prefix_end(prefix)
        self._check()
        wanted: _Range = (start, stop, reverse, include_value)
        if self._inline():
            return self._iterate_at_hand(wanted)
        return self._iterate_fetching(wanted)

    def _iterate_at_hand(self, wanted: _Range) -> Generator[Any, None, None]:
        cached = self._ranges.get(wanted)
        entries = [] if cached is None else cached.entries
        yield from entries
        if cached is None or not cached.complete:
            raise NotAtHand(self, ("range", wanted, max(_FIRST_RANGE, 2 * len(entries))))

    def _iterate_fetching(self, wanted: _Range) -> Generator[Any, None, None]:
        start, stop, reverse, include_value = wanted
        while True:
            self._check()
            found = anyio.from_thread.run(
                self._fetch_range, (start, stop, reverse, include_value), _THREAD_PAGE
            )
            yield from found.entries
            if found.complete or not found.entries:
                return
            last = found.entries[-1][0] if include_value else found.entries[-1]
            if reverse:
                stop = last
            else:
                start = last + b"\x00"

    def read_page(
        self,
        *,
        start: bytes | None,
        stop: bytes | None,
        reverse: bool,
        include_value: bool,
        limit: int,
        max_bytes: int,
    ) -> PageRead:
        """See ``Store.read_page``: the page is fetched in one script (one snapshot)."""
        self._check()
        wanted: _Range = (start, stop, reverse, include_value)
        if not self._inline():
            found = anyio.from_thread.run(self._fetch_range, wanted, limit + 1)
        else:
            cached = self._ranges.get(wanted)
            if cached is None or not (cached.complete or len(cached.entries) > limit):
                if self._fetch_error is not None:
                    raise StoreError(self._fetch_error)
                raise NotAtHand(self, ("range", wanted, limit + 1))
            found = cached
        return fill_page(iter(found.entries), include_value, limit, max_bytes)

    def close(self) -> None:
        """Close the store; idempotent. Its data stays in the cluster."""
        self._closed = True
        self.forget()

    # --- what the engine does with it (on the event loop) -----------------------------

    def forget(self) -> None:
        """Drop what is at hand (the next batch fetches afresh)."""
        self._at_hand.clear()
        self._ranges.clear()
        self._fetch_error = None

    def take_buffer(self) -> list[bytes] | None:
        """The ARGV of the buffered writes, emptying the buffer; None if empty."""
        self.engine.dirty.discard(self)
        if not self._buffer:
            return None
        ops, self._buffer = self._buffer, []
        return _squash(ops)

    def locked(self) -> anyio.Lock:
        """The lock that orders this store's round trips (made on the event loop)."""
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    def keep_fetched(self, keys: Sequence[bytes], values: Sequence[bytes | None]) -> None:
        """Hold fetched values at hand; what this batch wrote since stays."""
        at_hand = self._at_hand
        for key, value in zip(keys, values, strict=True):
            at_hand.setdefault(key, value)

    def fetch_failed(self, error: IoError | LevelDbError) -> None:
        """Reads of this batch that are not at hand answer ``error``."""
        self._fetch_error = error

    async def fetch(self, need: tuple[Any, ...]) -> None:
        """Bring what ``need`` (a NotAtHand's) names at hand; StoreError if it fails."""
        if need[0] == "get":
            await self._fetch_get(need[1])
        else:
            self._ranges[need[1]] = await self._fetch_range(need[1], need[2])

    async def _fetch_get(self, key: bytes) -> bytes | None:
        async with self.locked():  # (long work only: not the hot path)
            await self._commit_locked()
            try:
                value = cast("bytes | None", await self.engine.client.hget(self.values, key))
            except RedisError as exc:
                raise _io_error(self.label, exc) from exc
        self._at_hand.setdefault(key, value)
        return value

    async def _fetch_range(self, wanted: _Range, count: int) -> _Range_:
        start, stop, reverse, include_value = wanted
        async with self.locked():
            await self._commit_locked()
            args = [_lex_min(start), _lex_max(stop), b"1" if reverse else b"0"]
            args += [b"1" if include_value else b"0", b"%d" % count]
            try:
                keys, values = await self.engine.client.execute_command(
                    "EVAL", _RANGE, 2, self.values, self.order, *args
                )
            except RedisError as exc:
                raise _io_error(self.label, exc) from exc
        entries: list[Any] = list(zip(keys, values, strict=True)) if include_value else keys
        return _Range_(entries=entries, complete=len(keys) < count)

    async def _write_now(self, ops: _Ops) -> None:
        async with self.locked():
            self._buffer.extend(ops)
            await self._commit_locked()
            self.forget()  # what is at hand may predate these writes

    async def _commit_locked(self) -> None:
        argv = self.take_buffer()
        if argv is None:
            return
        try:
            await self.engine.client.execute_command(
                "EVAL", _WRITE, 2, self.values, self.order, *argv
            )
            await self.engine.replicated(self.values)
        except RedisError as exc:
            self.forget()
            error = _io_error(self.label, exc)
            self.engine.failed(self, error.error)
            raise error from exc


@attrs.define(eq=False)
class RedisClusterEngine:
    """An ``Engine`` and ``BatchEngine`` (``engine.py``) on a Redis Cluster."""

    nodes: list[tuple[str, int]]
    node: str
    durability: str = "async"
    #: Seconds a round trip may take before it is an IoError.
    timeout: float = 5.0
    client: RedisCluster = attrs.field(init=False)
    loop_thread: int = attrs.field(init=False, default=-1)
    #: Key namespace (``?namespace=``): runtimes that share a node name stay apart.
    namespace: str = ""
    #: Stores written or read since the last ``end_round``.
    touched: set[RedisStore] = attrs.field(init=False, factory=set)
    #: Stores with buffered writes (``commit`` sends them).
    dirty: set[RedisStore] = attrs.field(init=False, factory=set)
    #: Failed commits, ``(seq, store, error)``, the latest ``_FAILURES_KEPT``.
    failures: list[tuple[int, Any, KvError]] = attrs.field(init=False, factory=list)
    _seq: int = attrs.field(init=False, default=0)
    _dbs: set[DbKey] = attrs.field(init=False, factory=set)
    _stores: dict[DbKey, RedisStore] = attrs.field(init=False, factory=dict)
    _registry: bytes = attrs.field(init=False)

    @classmethod
    def from_url(cls, url: str, node: str) -> RedisClusterEngine:
        """The engine a ``redis-cluster://`` URL names, for ``node``'s dbs."""
        nodes, durability, namespace = parse_url(url)
        return cls(nodes, node, durability, namespace=namespace)

    def __attrs_post_init__(self) -> None:
        self._registry = f"kvdbs{{{self._tag(self.node)}}}".encode()

    def _tag(self, name: str) -> str:
        return _quote(f"{self.namespace}/{name}" if self.namespace else name)

    # --- lifecycle (on the event loop) -------------------------------------------------

    async def start(self) -> None:
        """Connect, check the eviction policy, load the node's dbs (invariant 5)."""
        self.loop_thread = threading.get_ident()
        where = ",".join(f"{h}:{p}" for h, p in self.nodes)
        self.client = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in self.nodes],
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            # A lost shard answers IoError after ~0.3 s of retries, not redis-py's
            # default ~2.5 s (10 retries): the batches behind it wait that long.
            retry=Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.2), _RETRIES),
        )
        try:
            await self.client.initialize()
            policies = await self.client.config_get(
                "maxmemory-policy", target_nodes=RedisCluster.PRIMARIES
            )
            members = await self.client.smembers(self._registry)
        except Exception as exc:  # redis-py's cluster errors are not all RedisErrors
            await self.client.aclose()
            raise StorageUnavailable(f"redis cluster at {where} is unreachable: {exc}") from exc
        evicting = sorted(
            f"{name}: {policy}" for name, policy in _policies(policies) if policy != "noeviction"
        )
        if evicting:
            await self.client.aclose()
            raise StorageUnavailable(
                f"redis cluster at {where} may evict data (maxmemory-policy "
                f"{', '.join(evicting)}): set maxmemory-policy noeviction"
            )
        for member in members:
            package, _, db = (
                (member if isinstance(member, bytes) else member.encode())
                .decode()
                .partition("\x00")
            )
            self._dbs.add((PackageId.parse(package), db))

    async def aclose(self) -> None:
        """Close the connections (after ``close_all``)."""
        await self.client.aclose()

    # --- the batch seam (on the event loop) ---------------------------------------------

    async def prefetch(self, wanted: dict[RedisStore, list[bytes]]) -> None:
        """Commit each store's buffer, then fetch ``wanted`` keys, one pipeline per master."""
        if len(wanted) == 1:  # one db (the common case): one master, nothing to group
            await self._prefetch_group(list(wanted), wanted)
            return
        await _each(self._by_master(wanted), self._prefetch_group, wanted)

    async def _prefetch_group(
        self, stores: list[RedisStore], wanted: dict[RedisStore, list[bytes]]
    ) -> None:
        async with _all_locked(stores):
            commands: list[tuple[Any, ...]] = []
            writes = []
            for store in stores:
                self.touched.add(store)
                if (argv := store.take_buffer()) is not None:
                    writes.append(store)
                    commands.append(("EVAL", _WRITE, 2, store.values, store.order, *argv))
                commands.append(("HMGET", store.values, *wanted[store]))
            try:
                results = await self._send(commands)
                if writes:
                    await self.replicated(stores[0].values)
            except (RedisError, OSError) as exc:
                results = [exc] * (len(writes) + len(stores))
        it = iter(results)
        for store in stores:
            failed = next(it) if store in writes else None
            got = next(it)
            for outcome in (failed, got):
                if isinstance(outcome, BaseException):
                    store.forget()
                    error = _io_error(store.label, outcome).error
                    store.fetch_failed(error)
                    if outcome is failed:
                        self.failed(store, error)
                    break
            else:
                store.keep_fetched(wanted[store], got)

    async def commit(self) -> None:
        """Send every buffered write, one pipeline per master; failures to ``failures``."""
        pending = [s for s in self.dirty if s._buffer]
        self.dirty.clear()
        if len(pending) == 1:  # one db (the common case): one master, nothing to group
            await self._commit_group(pending)
        elif pending:
            await _each(self._by_master(pending), self._commit_group)

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """The results of ``commands`` (all to one master), an exception in place of
        each that failed: one command alone, else one pipeline."""
        if len(commands) == 1:
            try:
                return [await self.client.execute_command(*commands[0])]
            except RedisError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)

    def failed(self, store: RedisStore, error: KvError) -> None:
        """Log a failed commit of ``store``'s writes."""
        self.failures.append((self._seq, store, error))
        self._seq += 1
        del self.failures[:-_FAILURES_KEPT]

    def failure_seq(self) -> int:
        """The ``seq`` the next failure will have."""
        return self._seq

    async def _commit_group(self, stores: list[RedisStore]) -> None:
        async with _all_locked(stores):
            commands: list[tuple[Any, ...]] = []
            sent = []
            for store in stores:
                if (argv := store.take_buffer()) is not None:
                    sent.append(store)
                    commands.append(("EVAL", _WRITE, 2, store.values, store.order, *argv))
            if not sent:
                return
            try:
                results = await self._send(commands)
                await self.replicated(sent[0].values)
            except (RedisError, OSError) as exc:
                results = [exc] * len(sent)
        for store, outcome in zip(sent, results, strict=True):
            if isinstance(outcome, BaseException):
                store.forget()
                self.failed(store, _io_error(store.label, outcome).error)

    async def replicated(self, key: bytes) -> None:
        """In ``wait`` durability, WAIT for one replica of ``key``'s master (else nothing).

        A RedisError when no replica acknowledged in time.
        """
        if self.durability != "wait":
            return
        node = self.client.get_node_from_key(key.decode())
        acked = await self.client.execute_command(
            "WAIT", 1, int(self.timeout * 1000), target_nodes=node
        )
        if int(acked) < 1:
            raise RedisError(
                f"no replica of {node.name if node else key!r} acknowledged the write (WAIT 1)"
            )

    def end_round(self, keep: Container[DbKey]) -> None:
        """Drop what this batch had at hand, but for the dbs in ``keep`` (held)."""
        kept = set()
        for store in self.touched:
            if store.db_key in keep:
                kept.add(store)
            else:
                store.forget()
        self.touched = kept

    def _by_master(self, stores: Iterable[RedisStore]) -> list[list[RedisStore]]:
        groups: dict[str, list[RedisStore]] = {}
        for store in stores:
            try:
                name = self.client.get_node_from_key(store.values.decode()).name  # type: ignore[union-attr]
            except Exception:  # no master for the slot now: alone, so it fails alone
                name = f"? {store.label}"
            groups.setdefault(name, []).append(store)
        return list(groups.values())

    # --- the Engine calls ---------------------------------------------------------------

    def exists(self, package_id: PackageId, db: str) -> bool:
        """Whether ``db`` exists (from the registry loaded at start, kept since)."""
        return (package_id, validate_db_name(db)) in self._dbs

    def get(self, package_id: PackageId, db: str) -> RedisStore | None:
        """The store of an existing db (a store is a name: opening one costs nothing)."""
        key = (package_id, db)
        store = self._stores.get(key)
        if store is None and key in self._dbs:
            store = self._stores[key] = self._store(key)
        return store

    @property
    def open_count(self) -> int:
        """How many stores are open now (a store is a name: those asked for since start)."""
        return len(self._stores)

    def keys_of(self, package_id: PackageId, db: str) -> tuple[bytes, bytes]:
        """The Redis keys of a db: its hash of values and its sorted set of keys."""
        store = self._store((package_id, validate_db_name(db)))
        return store.values, store.order

    def _store(self, key: DbKey) -> RedisStore:
        tag = self._tag(f"{self.node}/{key[0]}/{key[1]}")
        return RedisStore(
            engine=self,
            db_key=key,
            label=f"{key[0]}, {key[1]}",
            values=f"kv{{{tag}}}v".encode(),
            order=f"kv{{{tag}}}k".encode(),
        )

    def open(
        self, package_id: PackageId, db: str, *, create: bool, evict: bool = True
    ) -> RedisStore:
        """The store of ``db``; created (any stale keys of it dropped first) if ``create``."""
        key = (package_id, validate_db_name(db))
        if key not in self._dbs:
            if not create:
                raise NoSuchDb(package_id, db)
            self._on_loop(self._create, key)
        store = self.get(*key)
        assert store is not None
        return store

    async def _create(self, key: DbKey) -> None:
        store = self._store(key)
        try:  # a removal cut short may have left keys: a new db starts empty
            await self.client.unlink(store.values, store.order)
            await self.client.sadd(self._registry, _member(key))
        except RedisError as exc:
            raise _io_error(store.label, exc) from exc
        self._dbs.add(key)

    def evict(self, *, keep: Container[DbKey]) -> None:
        """Nothing to bound: a store holds nothing between batches."""

    def discard(self, store: Any) -> None:
        """Drop ``store`` (its write failed): the next ``get`` makes a fresh one."""
        key = getattr(store, "db_key", None)
        if key is not None and self._stores.get(key) is store:
            del self._stores[key]
        store.close()

    def remove(self, package_id: PackageId, db: str) -> bool:
        """Delete ``db`` and its keys (from a worker thread); whether it existed."""
        key = (package_id, validate_db_name(db))
        if key not in self._dbs:
            return False
        self._on_loop(self._remove, key)
        return True

    async def _remove(self, key: DbKey) -> None:
        store = self._stores.pop(key, None) or self._store(key)
        async with store.locked():  # writes answered before the removal land before it
            await store._commit_locked()
        store.close()
        try:  # out of the registry first: the db is gone at once, whole
            await self.client.srem(self._registry, _member(key))
            self._dbs.discard(key)
            await self.client.unlink(store.values, store.order)
        except RedisError as exc:
            raise _io_error(store.label, exc) from exc

    def sweep_trash(self) -> int:
        """Nothing to sweep: a removed db's keys go with it (a re-created db drops stale ones)."""
        return 0

    def list_dbs(self) -> list[DbKey]:
        """Every existing db of this node, sorted."""
        return sorted(self._dbs, key=lambda key: (str(key[0]), key[1]))

    def path_for(self, package_id: PackageId, db: str) -> Path | None:
        """None: the dbs keep no files here. Raises IdError for an invalid name."""
        validate_db_name(db)
        return None

    def close_all(self) -> None:
        """Close every store (the client closes in ``aclose``)."""
        for store in self._stores.values():
            store.close()
        self._stores.clear()

    def _on_loop(self, job: Callable[[DbKey], Any], key: DbKey) -> None:
        if threading.get_ident() == self.loop_thread:
            raise RuntimeError("RedisClusterEngine.open/remove run in a worker thread")
        anyio.from_thread.run(job, key)


def _member(key: DbKey) -> bytes:
    return f"{key[0]}\x00{key[1]}".encode()


def _policies(answer: Any) -> Iterator[tuple[str, str]]:
    """(node, maxmemory-policy) pairs of a CONFIG GET sent to every primary."""
    if isinstance(answer, dict) and "maxmemory-policy" in answer:
        yield "all", str(answer["maxmemory-policy"])
        return
    for name, found in dict(answer).items():
        yield str(name), str(dict(found).get("maxmemory-policy"))


async def _each(groups: list[list[RedisStore]], job: Callable[..., Any], *args: Any) -> None:
    """``job(group, *args)`` for every group at once (one alone: no task)."""
    if len(groups) == 1:
        await job(groups[0], *args)
        return
    async with anyio.create_task_group() as tg:
        for group in groups:
            tg.start_soon(job, group, *args)


async def _acquire(lock: anyio.Lock) -> None:
    """``lock.acquire()``, without a trip through the event loop when it is free."""
    try:
        lock.acquire_nowait()
    except anyio.WouldBlock:
        await lock.acquire()


class _all_locked:
    """Holds the locks of several stores (one batch's, taken in a fixed order)."""

    def __init__(self, stores: list[RedisStore]) -> None:
        if len(stores) == 1:  # one db: no order to keep
            self._locks = [stores[0].locked()]
        else:
            self._locks = [s.locked() for s in sorted(stores, key=lambda s: s.values)]

    async def __aenter__(self) -> None:
        for lock in self._locks:
            await _acquire(lock)

    async def __aexit__(self, *exc: object) -> None:
        for lock in reversed(self._locks):
            lock.release()
