"""Private access to a running Runtime's kernel pieces, for tests only.

The Runtime keeps its bus, capability store and kv process private (they
carry power no caller should get by accident); a test that must look inside
reaches them here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable

from kvruntime import Runtime
from kvruntime.kernel.bus import Bus
from kvruntime.kernel.capabilities import CapabilityStore
from kvruntime.kvservice.loop import KvProcess
from kvruntime.storage.store import Store
from protocol.ids import PackageId

__all__ = [
    "bus_of",
    "caps_of",
    "kv_of",
    "nats_port_of",
    "set_expiry_clock",
    "set_tx_clock",
    "store_of",
    "sweep_expired",
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


def sweep_expired(rt: Runtime) -> int:
    """Run one bounded step of ``rt``'s expired-key sweeper now; how many keys went."""
    return kv_of(rt).sweep_expired()


def nats_port_of(rt: Runtime) -> int:
    """The port of the NATS server the running ``rt``'s transport is connected to (issue 17)."""
    transport = rt._transport
    assert transport is not None, "the runtime has no network"
    assert transport._nc is not None, "not connected"
    url = transport._nc.connected_url
    assert url is not None, "not connected"
    assert url.port is not None, "no port"
    return url.port
