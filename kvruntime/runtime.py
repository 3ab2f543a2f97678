"""The host runtime: owns the bus, the capability store and every process.

Lifecycle (``async with Runtime(home=...) as rt``):
- entry opens the capability store under ``{home}/kernel`` (``HomeInUse`` if
  another runtime holds it), starts the bus and the kv process at
  ``kv:distro:sys`` on the storage engine that ``storage`` names;
- exit stops the spawned processes (their mains are cancelled) and waits for
  them at most ``shutdown_grace`` seconds, then closes the kv mailbox so the
  kv process answers everything already queued and stops, then closes every
  database and the capability store.

Storage (``Runtime(home=..., storage=...)``), the engine the node's dbs live in:
- omitted (None) or ``"leveldb"``: the embedded LevelDB under ``{home}/kv``
  (``storage/databases.py``); the default, needing no server;
- ``"memory"``: in this process's memory (``storage/memory.py``), for fast
  tests; it persists nothing: a restart starts with no db;
- ``"redis-cluster://host:port,host:port[?durability=wait]"``: a Redis
  Cluster (``storage/redis_cluster.py``, issue 13); entry raises
  ``StorageUnavailable`` when it is unreachable or may evict data.
Anything else (another word, or a URL ``scheme://...`` whose scheme has no
engine here) is a ``ValueError`` at construction. A networked engine is one
more entry in ``_ENGINES`` keyed by its URL scheme. Whatever the engine, the
capability store stays under ``{home}/kernel``.

Invariants:
1. Nothing here is global: two runtimes on two homes run side by side.
2. The bus, the capability store and the kv process are private: no public
   name hands them (or any process's mailbox) out. The host reads what it
   needs as plain values (``list_dbs``, ``capability_holders``...).
3. Exit is bounded. Each spawned main runs in an asyncio task of its own
   that the Runtime owns, outside the task group of the kv process (a task
   group cannot leave a child behind). Exit cancels every main and awaits
   them for ``shutdown_grace`` seconds; a main still running then (one that
   shields itself from cancellation) is *abandoned*: logged by process id,
   detached from the bus (its sends fail, nothing reaches it), its handle
   set to ProcessKilled, and its task left to the event loop, which cancels
   it when it closes. That task is the one exception to structured
   concurrency here, and only after the grace has run out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

import anyio
import anyio.to_thread
import attrs

from protocol.ids import KV_PROCESS_ID, Address, PackageId, ProcessId

from .kernel.bus import Bus, Slot, messaging_capability
from .kernel.capabilities import CapabilityStore
from .kernel.errors import RuntimeClosed
from .kernel.mailbox import Mailbox
from .kernel.message import Capability, Message, Request, Response
from .kernel.process import ProcessContext, ProcessHandle
from .kvservice.config import KvConfig
from .kvservice.loop import KvProcess
from .storage.databases import Databases
from .storage.engine import BatchEngine, Engine

if TYPE_CHECKING:  # the network extra (nats-py, PyNaCl) is imported only when used
    from prometheus_client import CollectorRegistry

    from .kernel.nats_transport import NatsTransport

__all__ = ["DEFAULT_NODE", "Main", "Runtime"]

log = logging.getLogger("kvruntime.runtime")

#: A process's code.
Main = Callable[[ProcessContext], Awaitable[None]]

#: The node a Runtime runs as unless told otherwise.
DEFAULT_NODE: Final = "our.os"


def _leveldb(home: Path, config: KvConfig, spec: str, node: str) -> Engine:
    return Databases(root=home / "kv", max_open=config.max_open_dbs, sync_writes=config.sync_writes)


def _memory(home: Path, config: KvConfig, spec: str, node: str) -> Engine:
    from .storage.memory import MemoryEngine  # issue 15: not in every start-up

    return MemoryEngine()


def _redis_cluster(home: Path, config: KvConfig, spec: str, node: str) -> Engine:
    from .storage.redis_cluster import RedisClusterEngine  # redis-py, only when used

    return RedisClusterEngine.from_url(spec, node)


#: The engines ``storage`` may name: a word, or the scheme of a URL ``scheme://...``.
_ENGINES: Final[dict[str, Callable[[Path, KvConfig, str, str], Engine]]] = {
    "leveldb": _leveldb,
    "memory": _memory,
    "redis-cluster": _redis_cluster,
}


def _engine_name(spec: str | None) -> str:
    """The key of ``_ENGINES`` that ``spec`` names; ValueError if none."""
    if spec is None:
        return "leveldb"
    if not isinstance(spec, str):
        raise TypeError(f"storage must be a str or None, not {type(spec).__name__}")
    name = spec.split("://", 1)[0] if "://" in spec else spec
    if name not in _ENGINES:
        known = ", ".join(f"{n!r}" for n in _ENGINES)
        raise ValueError(f"unknown storage {spec!r}: expected one of {known}")
    return name


def _check_storage(instance: object, attribute: object, value: str | None) -> None:
    if _engine_name(value) == "redis-cluster" and value is not None:
        from .storage.redis_cluster import parse_url

        parse_url(value)  # ValueError for a malformed URL, at construction


def _check_peers(instance: object, attribute: object, value: Mapping[str, str]) -> None:
    if not value:
        return
    from .kernel.nats_transport import inbox_subject
    from .kernel.node_key import parse_public_key

    for name, key in value.items():
        inbox_subject(name)  # ValueError unless a node name
        parse_public_key(key)


@attrs.define(eq=False, repr=False)
class Runtime:
    """A node: the kernel pieces, the kv process, and the processes you spawn."""

    home: Path = attrs.field(converter=Path)
    node: str = DEFAULT_NODE
    config: KvConfig = attrs.Factory(KvConfig)
    #: Mailbox bound of spawned processes.
    mailbox_capacity: int = 256
    #: Responses a spawned process may await through its mailbox at once.
    inflight_limit: int = 1024
    # -- unread answers: a byte budget per process -------------------------
    #: Blob bytes of answers a spawned process may leave unread in its mailbox;
    #: past it, kv serves its further requests only once it reads (bus.py, Slot).
    answer_budget: int = 64 << 20
    # -----------------------------------------------------------------------
    #: Seconds exit waits for cancelled processes before abandoning them (invariant 3).
    shutdown_grace: float = 5.0
    #: The storage engine of the node's dbs (see the module docstring); None: LevelDB.
    storage: str | None = attrs.field(default=None, validator=_check_storage)
    # -- issue 17: many nodes ---------------------------------------------
    #: NATS server URLs, comma-separated (``nats://127.0.0.1:4222,nats://...``);
    #: None: this runtime is a single node and reaches no other.
    network: str | None = None
    #: The other nodes this one talks to: node name -> its public key (64 hex
    #: digits, ``kvruntime.node_public_key`` of its home). Checked at construction.
    peers: Mapping[str, str] = attrs.field(factory=dict, validator=_check_peers)
    _transport: NatsTransport | None = attrs.field(default=None, init=False)
    # -----------------------------------------------------------------------

    _tg: anyio.abc.TaskGroup | None = attrs.field(default=None, init=False)
    _bus: Bus | None = attrs.field(default=None, init=False)
    _kv: KvProcess | None = attrs.field(default=None, init=False)
    _kv_done: anyio.Event = attrs.field(factory=anyio.Event, init=False)
    _handles: dict[ProcessId, ProcessHandle] = attrs.Factory(dict)
    #: The tasks of the spawned mains (invariant 3); each removes itself when done.
    _tasks: set[asyncio.Task[None]] = attrs.Factory(set)
    # -- issue 15: grants the CLI takes back (``_revoke_at_close``) --------
    _to_revoke: list[tuple[Address, Capability]] = attrs.field(factory=list, init=False)
    # -----------------------------------------------------------------------

    @property
    def kv_address(self) -> Address:
        """The address of kv:distro:sys on this node."""
        return Address(node=self.node, process=KV_PROCESS_ID)

    def _running(self) -> tuple[Bus, KvProcess]:
        if self._bus is None or self._kv is None:
            raise RuntimeClosed("the runtime is not running")
        return self._bus, self._kv

    async def __aenter__(self) -> Runtime:
        caps = CapabilityStore(self.home / "kernel" / "capabilities", node=self.node)
        await anyio.to_thread.run_sync(caps.open)
        bus = Bus(node=self.node, caps=caps)
        dbs = _ENGINES[_engine_name(self.storage)](
            self.home, self.config, self.storage or "", self.node
        )
        kv_class = KvProcess
        if isinstance(dbs, BatchEngine):  # a networked engine (issue 13)
            from .kvservice.networked import NetworkedKvProcess  # issue 15: only when used

            try:
                await dbs.start()
            except BaseException:
                caps.close()
                raise
            kv_class = NetworkedKvProcess
        kv_slot = Slot(
            address=self.kv_address,
            mailbox=Mailbox[Message](self.config.mailbox_capacity),
            public=False,
            inflight_limit=0,
            answers_remote=True,  # issue 17: a remote request is answered RemoteNotAllowed
        )
        bus.attach(kv_slot)
        self._bus = bus
        self._kv = kv_class(slot=kv_slot, bus=bus, caps=caps, dbs=dbs, config=self.config)
        # --- metrics (issue 15): the gauges a scrape reads ---
        kv, mailbox = self._kv, kv_slot.mailbox
        kv.metrics.gauges["open_transactions"] = lambda: kv.open_transactions
        kv.metrics.gauges["mailbox_depth"] = lambda: len(mailbox)
        kv.metrics.gauges["open_dbs"] = lambda: dbs.open_count
        feeds = kv.feeds  # change feeds (issue 14): counted by the feeds, read at a scrape
        kv.metrics.gauges["watches"] = lambda: len(feeds)
        kv.metrics.counters["watch_changes_logged"] = lambda: feeds.logged
        kv.metrics.counters["watch_changes_delivered"] = lambda: feeds.delivered
        kv.metrics.counters["watches_ended"] = lambda: dict(feeds.ended)
        transport = await self._connect(bus)  # issue 17
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run_kv, name="kv:distro:sys")
        if transport is not None:
            await self._tg.start(transport.run, name="network")
        return self

    async def _connect(self, bus: Bus) -> NatsTransport | None:
        """The NATS transport of this node, connected, or None without ``network``."""
        if self.network is None:
            return None
        from .kernel.nats_transport import NatsTransport, inbox_subject
        from .kernel.node_key import load_node_key, parse_public_key

        inbox_subject(self.node)  # ValueError unless a node name NATS subjects can carry
        transport = NatsTransport(
            bus=bus,
            key=await anyio.to_thread.run_sync(load_node_key, self.home),
            peers={name: parse_public_key(key) for name, key in self.peers.items()},
            servers=[url.strip() for url in self.network.split(",") if url.strip()],
        )
        try:
            await transport.connect()
        except BaseException:
            bus.caps.close()
            self._bus = self._kv = None
            raise
        bus.network_route = transport.route
        bus.network_answer = transport.answer
        self._transport = transport
        return transport

    def network_dropped(self) -> dict[str, int]:
        """Frames from the network dropped so far, by reason (empty without ``network``)."""
        return dict(self._transport.dropped) if self._transport is not None else {}

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, bus, kv = self._tg, self._bus, self._kv
        if tg is None or bus is None or kv is None:
            raise RuntimeClosed("__aexit__ without __aenter__")
        with anyio.CancelScope(shield=True):
            await self._stop_processes(bus)
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            kv.slot.mailbox.close()  # kv answers what is queued, then stops
            await self._kv_done.wait()
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            kv.dbs.close_all()
            if isinstance(kv.dbs, BatchEngine):
                await kv.dbs.aclose()
            try:
                self._revoke_pending(bus.caps)  # issue 15
            finally:
                bus.caps.close()
                self._tg = self._bus = self._kv = None

    # --- issue 15: the CLI's own grants, taken back as the runtime closes ---
    def _revoke_at_close(self, grants: Iterable[tuple[Address, Capability]]) -> None:
        """Revoke ``grants`` (holder, capability) at exit, once every process and
        kv:distro:sys have stopped, just before the capability store closes.

        Internal, for the command line (``cli/_session.py`` invariant 3), which
        otherwise reopened the table after exit to do it. A failed write raises
        ``CapabilityStoreError`` from exit, after the store is closed.
        """
        self._to_revoke.extend(grants)

    def _revoke_pending(self, caps: CapabilityStore) -> None:
        pending, self._to_revoke = self._to_revoke, []
        by_holder: dict[Address, list[Capability]] = {}
        for holder, cap in pending:
            by_holder.setdefault(holder, []).append(cap)
        for holder, held in by_holder.items():
            caps.revoke(holder, held)

    async def _stop_processes(self, bus: Bus) -> None:
        """Cancel every spawned main; abandon those still running after the grace."""
        handles = list(self._handles.values())
        for handle in handles:
            handle.kill()
        with anyio.move_on_after(self.shutdown_grace):
            for handle in handles:
                await handle._done.wait()
        for handle in handles:
            if handle.running:
                pid = handle.address.process
                log.error(
                    "process %s did not stop within %gs of shutdown: abandoned",
                    pid,
                    self.shutdown_grace,
                )
                slot = bus.slot(pid)
                if slot is not None:
                    bus.detach(slot)
                self._handles.pop(pid, None)
                handle._abandoned = True
                handle._done.set()

    async def _run_kv(self) -> None:
        bus, kv = self._running()
        try:
            await kv.run()
        finally:
            bus.detach(kv.slot)
            self._kv_done.set()

    async def spawn(
        self,
        process_id: str | ProcessId,
        main: Main,
        *,
        request_capabilities: Iterable[str | ProcessId] = (),
        public: bool = False,
    ) -> ProcessHandle:
        """Start ``main(ctx)`` as the process ``process_id``.

        ``request_capabilities`` names processes this one may message (for
        instance ``"kv:distro:sys"``); the grants persist under ``home``.
        ``public`` lets any process message this one.
        """
        if self._tg is None:
            raise RuntimeClosed("spawn needs a running runtime (use `async with Runtime(...)`)")
        bus, _ = self._running()
        pid = process_id if isinstance(process_id, ProcessId) else ProcessId.parse(process_id)
        address = Address(node=self.node, process=pid)
        slot = Slot(
            address=address,
            mailbox=Mailbox[Message](self.mailbox_capacity),
            public=public,
            inflight_limit=self.inflight_limit,
            answer_budget=self.answer_budget,
        )
        bus.attach(slot)  # raises if this id is running already
        wanted = [
            messaging_capability(Address(node=self.node, process=_pid(target)))
            for target in request_capabilities
        ]
        try:
            bus.caps.grant(address, wanted)
        except BaseException:
            bus.detach(slot)
            raise
        handle = ProcessHandle(address=address)
        self._handles[pid] = handle
        ctx = ProcessContext(bus, slot)
        task = asyncio.get_running_loop().create_task(
            self._run_process(bus, handle, slot, main, ctx), name=str(pid)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return handle

    async def _run_process(
        self, bus: Bus, handle: ProcessHandle, slot: Slot, main: Main, ctx: ProcessContext
    ) -> None:
        try:
            with handle._scope:
                await main(ctx)
                handle._finished = True
        except asyncio.CancelledError:
            raise  # not from kill (its scope swallows that): the event loop is closing
        except BaseException as exc:  # a process's failure is its own, not the runtime's
            log.error("process %s failed: %r", handle.address.process, exc)
            handle._error = exc  # handed to whoever waits on the handle
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        finally:
            bus.detach(slot)
            pid = handle.address.process
            if self._handles.get(pid) is handle:
                del self._handles[pid]
            handle._done.set()

    def is_running(self, process_id: str | ProcessId) -> bool:
        """Whether a process runs at ``process_id`` (a spawned one, or kv:distro:sys)."""
        bus, _ = self._running()
        return bus.slot(_pid(process_id)) is not None

    def list_dbs(self) -> list[tuple[PackageId, str]]:
        """Every db of the storage engine, as (package, name) pairs, sorted."""
        return self._running()[1].dbs.list_dbs()

    def db_path(self, package_id: PackageId, db: str) -> Path:
        """Where the files of db ``db`` of ``package_id`` live under ``home``.

        ValueError on an engine that keeps no files (``"memory"``).
        """
        path = self._running()[1].dbs.path_for(package_id, db)
        if path is None:
            raise ValueError(f"the {self.storage!r} storage keeps no files")
        return path

    def capability_holders(self) -> list[tuple[Address, Capability]]:
        """Every (holder, capability) pair granted on this node."""
        return self._running()[0].caps.holders()

    # --- metrics (issue 15) ---
    def metrics_registry(self) -> CollectorRegistry:
        """A Prometheus registry of this runtime alone (``kvruntime_*`` series).

        Read-only: a scrape reads counts kv:distro:sys keeps (kvservice/metrics.py)
        and hands out nothing else of the node (invariant 2). Each call makes a
        new registry over the same counts.
        """
        return self._running()[1].metrics.registry()

    async def deliver_from_network(self, request: Request) -> None:
        """Hand in a request from another node, as a networking layer would.

        It is checked as a local request is: SendError when the target does
        not run, or is not public and the source does not hold its
        messaging capability; TypeError when body or blob is not bytes.
        """
        await self._running()[0].deliver_from_network(request)

    async def network_response(self) -> Response:
        """The next response addressed to another node, for a networking layer to carry."""
        return await self._running()[0].network_outbox.get()


def _pid(target: str | ProcessId) -> ProcessId:
    return target if isinstance(target, ProcessId) else ProcessId.parse(target)
