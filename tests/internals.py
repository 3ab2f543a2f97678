"""Private access to a running Runtime's kernel pieces, for tests only.

The Runtime keeps its bus, capability store and kv process private (they
carry power no caller should get by accident); a test that must look inside
reaches them here, in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, TypeVar

import anyio.to_thread

from kvruntime import Runtime
from kvruntime.kernel.bus import Bus
from kvruntime.kernel.capabilities import CapabilityStore
from kvruntime.kernel.message import Response
from kvruntime.kvservice.loop import KvProcess
from kvruntime.storage.store import Store
from protocol.ids import PackageId, ProcessId
from protocol.prefix import RequestDecoder

if TYPE_CHECKING:  # the network extra is imported only where used
    from kvruntime.kernel.nats_transport import NatsTransport

T = TypeVar("T")

__all__ = [
    "bus_of",
    "caps_of",
    "decoded_once",
    "in_store",
    "kv_of",
    "nats_port_of",
    "parked_of",
    "queued_answer_bytes",
    "redis_key_of",
    "redis_values_of",
    "scan_path",
    "set_expiry_clock",
    "set_tx_clock",
    "staging_path",
    "store_of",
    "sweep_expired",
    "transport_of",
    "waiting_of",
]


def bus_of(rt: Runtime) -> Bus:
    """The bus of the running ``rt``."""
    bus = rt._bus
    assert bus is not None, "the runtime is not running"
    return bus


def kv_of(rt: Runtime) -> KvProcess:
    """The kv process of the running ``rt``."""
    kv = rt._kv
    assert kv is not None, "the runtime is not running"
    return kv


def queued_answer_bytes(rt: Runtime, process: ProcessId) -> int:
    """The blob bytes of the responses queued in ``process``'s mailbox, not taken yet
    (counted from the mailbox itself, not from the bus's own accounting)."""
    slot = bus_of(rt).slot(process)
    assert slot is not None, f"{process} is not running"
    return sum(
        len(message.blob)
        for message in slot.mailbox._items
        if isinstance(message, Response) and message.blob is not None
    )


def parked_of(rt: Runtime, process: ProcessId) -> int:
    """How many requests of ``process`` the running ``rt``'s kv process keeps parked
    (its unread answers are over its budget)."""
    return len(kv_of(rt)._parked.get(process, ()))


def caps_of(rt: Runtime) -> CapabilityStore:
    """The capability store of the running ``rt``."""
    return bus_of(rt).caps


def store_of(rt: Runtime, package_id: PackageId, db: str) -> Store:
    """The open store of ``db`` in the running ``rt`` (write kv's own records with it)."""
    store = kv_of(rt).dbs.get(package_id, db)
    assert store is not None, f"db {db} is not open"
    return store


def set_tx_clock(rt: Runtime, clock: Callable[[], float]) -> None:
    """Make the running ``rt``'s kv process measure transactions' idle time by ``clock``."""
    kv_of(rt).txs.clock = clock


def set_expiry_clock(rt: Runtime, clock: Callable[[], float]) -> None:
    """Make the running ``rt``'s kv process read deadlines by ``clock`` (wall-clock
    seconds; a FakeClock), for keys with a TTL."""
    kv_of(rt).expiry.clock = clock


async def in_store(rt: Runtime, package_id: PackageId, db: str, call: Callable[[Store], T]) -> T:
    """``call(store)`` on the open store of ``db``, in a worker thread: there every
    engine's store answers whatever is asked (inline, a networked one answers only
    what a batch fetched; from a thread it waits for the network)."""
    store = store_of(rt, package_id, db)
    return await anyio.to_thread.run_sync(call, store)


async def sweep_expired(rt: Runtime) -> int:
    """Run one bounded step of ``rt``'s expired-key sweeper now, its writes done; how
    many keys went."""
    return await kv_of(rt).sweep_step()


def nats_port_of(rt: Runtime) -> int:
    """The port of the NATS server the running ``rt``'s transport is connected to (issue 17)."""
    transport = rt._transport
    assert transport is not None, "the runtime has no network"
    assert transport._nc is not None, "not connected"
    url = transport._nc.connected_url
    assert url is not None, "not connected"
    assert url.port is not None, "no port"
    return url.port


def transport_of(rt: Runtime) -> NatsTransport:
    """The running ``rt``'s NATS transport (issue 17)."""
    transport = rt._transport
    assert transport is not None, "the runtime has no network"
    return transport


def redis_key_of(rt: Runtime, package_id: PackageId, db: str) -> bytes:
    """A Redis key of the db (its hash of values) on the running ``rt``'s Redis
    Cluster engine: its slot is the db's slot (issue 13)."""
    from kvruntime.storage.redis_cluster import RedisClusterEngine

    engine = kv_of(rt).dbs
    assert isinstance(engine, RedisClusterEngine), "not on the redis-cluster engine"
    return engine.keys_of(package_id, db)[0]


async def redis_values_of(
    rt: Runtime, package_id: PackageId, db: str, keys: list[bytes]
) -> list[bytes | None]:
    """What the cluster itself holds at ``keys`` of the db, on the running ``rt``'s
    Redis Cluster engine: read past the store (writes it buffers are not seen)."""
    from kvruntime.storage.redis_cluster import RedisClusterEngine

    engine = kv_of(rt).dbs
    assert isinstance(engine, RedisClusterEngine), "not on the redis-cluster engine"
    values = engine.keys_of(package_id, db)[0]
    found = await engine.client.hmget(values, keys)
    return [value.encode() if isinstance(value, str) else value for value in found]


def decoded_once() -> RequestDecoder:
    """A fresh decoder of a networked engine's kv process (``networked._DecodedOnce``):
    ``decoded`` (``id(body)`` -> parts) is handed back once, instead of decoding."""
    from kvruntime.kvservice.networked import _DecodedOnce

    return _DecodedOnce()


# --- the client's per-entry scan iterator (issue 12) -----------------------------------


@contextlib.contextmanager
def scan_path(path: Literal["c", "py"]) -> Iterator[None]:
    """Make every ``scan`` and ``keys`` hand out entries through ``path``: "c", the
    compiled iterator (an AssertionError, a failure, when it was not built), or "py",
    the async generator that is its reference and fallback (``client._entries``)."""
    from kvruntime.client import _entries

    if path == "c":
        assert _entries.HAVE_C, "kvruntime.client._centries is not built"
        yield
        return
    assert path == "py", path
    namespace = vars(_entries)  # entries() reads its private _CEntries at each call
    compiled, namespace["_CEntries"] = namespace["_CEntries"], None
    try:
        yield
    finally:
        namespace["_CEntries"] = compiled


# --- the client's transaction staging (issue 12) ---------------------------------------


@contextlib.contextmanager
def staging_path(path: Literal["c", "py"]) -> Iterator[None]:
    """Make every transaction's ``set`` go through ``path``: "c", the compiled
    ``_cstaging.Staging.set`` (an AssertionError, a failure, when it was not built),
    or "py", ``StagingPy.set``, its reference and fallback (``client._staging``)."""
    from kvruntime.client import _staging
    from kvruntime.client._transaction import Transaction

    if path == "c":
        assert _staging.HAVE_C, "kvruntime.client._cstaging is not built"
        assert Transaction.set is vars(_staging.Staging)["set"]
        yield
        return
    assert path == "py", path
    setattr(Transaction, "set", _staging.StagingPy.set)  # noqa: B010 (mypy: a method)
    try:
        yield
    finally:
        delattr(Transaction, "set")


def waiting_of(rt: Runtime, process: ProcessId) -> int:
    """How many requests ``process`` of the running ``rt`` awaits an answer to."""
    slot = bus_of(rt).slot(process)
    assert slot is not None, f"{process} is not running"
    return len(slot.waiters)
