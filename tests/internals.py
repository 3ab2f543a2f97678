"""Private access to a running Runtime's kernel pieces, for tests only.

The Runtime keeps its bus, capability store and kv process private (they
carry power no caller should get by accident); a test that must look inside
reaches them here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kvruntime import Runtime
from kvruntime.kernel.bus import Bus
from kvruntime.kernel.capabilities import CapabilityStore
from kvruntime.kvservice.loop import KvProcess

if TYPE_CHECKING:  # the network extra is imported only where used
    from kvruntime.kernel.nats_transport import NatsTransport

__all__ = ["bus_of", "caps_of", "kv_of", "nats_port_of", "set_tx_clock", "transport_of"]


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


def set_tx_clock(rt: Runtime, clock: Callable[[], float]) -> None:
    """Make the running ``rt``'s kv process measure transactions' idle time by ``clock``."""
    kv_of(rt).txs.clock = clock


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
