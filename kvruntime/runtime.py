"""The host runtime: owns the bus, the capability store and every process.

Lifecycle (``async with Runtime(home=...) as rt``):
- entry opens the capability store under ``{home}/kernel``, starts the bus
  and the kv process at ``kv:distro:sys`` (storage under ``{home}/kv``);
- exit stops the spawned processes (their mains are cancelled), then closes
  the kv mailbox so the kv process answers everything already queued and
  stops, then closes every database and the capability store.
Nothing here is global: two runtimes on two homes run side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType

import anyio
import anyio.to_thread
import attrs

from protocol.ids import Address, ProcessId

from ._mailbox import Mailbox
from .bus import Bus, Slot, messaging_capability
from .capabilities import CapabilityStore
from .config import KvConfig
from .errors import RuntimeClosed
from .kv_process import KV_PROCESS_ID, KvProcess
from .message import Message, Request
from .process import ProcessContext, ProcessHandle
from .storage import Databases

__all__ = ["Main", "Runtime"]

log = logging.getLogger("kvruntime.runtime")

#: A process's code.
Main = Callable[[ProcessContext], Awaitable[None]]


@attrs.define(eq=False)
class Runtime:
    """A node: the kernel pieces, the kv process, and the processes you spawn."""

    home: Path = attrs.field(converter=Path)
    node: str = "our.os"
    config: KvConfig = attrs.Factory(KvConfig)
    #: Mailbox bound of spawned processes.
    mailbox_capacity: int = 256
    #: Responses a spawned process may await through its mailbox at once.
    inflight_limit: int = 1024

    _tg: anyio.abc.TaskGroup | None = attrs.field(default=None, init=False)
    _bus: Bus | None = attrs.field(default=None, init=False)
    _kv: KvProcess | None = attrs.field(default=None, init=False)
    _kv_done: anyio.Event = attrs.field(factory=anyio.Event, init=False)
    _handles: dict[ProcessId, ProcessHandle] = attrs.Factory(dict)

    @property
    def bus(self) -> Bus:
        """The bus (raises RuntimeClosed outside ``async with``)."""
        if self._bus is None:
            raise RuntimeClosed("the runtime is not running")
        return self._bus

    @property
    def kv(self) -> KvProcess:
        """The kv process (raises RuntimeClosed outside ``async with``)."""
        if self._kv is None:
            raise RuntimeClosed("the runtime is not running")
        return self._kv

    @property
    def kv_address(self) -> Address:
        """The address of kv:distro:sys on this node."""
        return Address(node=self.node, process=KV_PROCESS_ID)

    async def __aenter__(self) -> Runtime:
        caps = CapabilityStore(self.home / "kernel" / "capabilities")
        await anyio.to_thread.run_sync(caps.open)
        bus = Bus(node=self.node, caps=caps)
        dbs = Databases(
            root=self.home / "kv",
            max_open=self.config.max_open_dbs,
            sync_writes=self.config.sync_writes,
        )
        kv_slot = Slot(
            address=self.kv_address,
            mailbox=Mailbox[Message](self.config.mailbox_capacity),
            public=False,
            inflight_limit=0,
        )
        bus.attach(kv_slot)
        self._bus = bus
        self._kv = KvProcess(slot=kv_slot, bus=bus, caps=caps, dbs=dbs, config=self.config)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run_kv, name="kv:distro:sys")
        return self

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
            for handle in list(self._handles.values()):
                handle.kill()
            for handle in list(self._handles.values()):
                await handle._done.wait()
            kv.slot.mailbox.close()  # kv answers what is queued, then stops
            await self._kv_done.wait()
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            kv.dbs.close_all()
            bus.caps.close()
            self._tg = self._bus = self._kv = None

    async def _run_kv(self) -> None:
        try:
            await self.kv.run()
        finally:
            self.bus.detach(self.kv.slot)
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
        bus = self.bus
        pid = process_id if isinstance(process_id, ProcessId) else ProcessId.parse(process_id)
        address = Address(node=self.node, process=pid)
        slot = Slot(
            address=address,
            mailbox=Mailbox[Message](self.mailbox_capacity),
            public=public,
            inflight_limit=self.inflight_limit,
        )
        bus.attach(slot)  # raises if this id is running already
        wanted = [
            messaging_capability(Address(node=self.node, process=_pid(target)))
            for target in request_capabilities
        ]
        try:
            bus.caps.grant(pid, wanted)
        except BaseException:
            bus.detach(slot)
            raise
        handle = ProcessHandle(address=address)
        self._handles[pid] = handle
        ctx = ProcessContext(bus, slot)
        self._tg.start_soon(self._run_process, handle, slot, main, ctx, name=str(pid))
        return handle

    async def _run_process(
        self, handle: ProcessHandle, slot: Slot, main: Main, ctx: ProcessContext
    ) -> None:
        try:
            with handle._scope:
                await main(ctx)
                handle._finished = True
        except Exception as exc:  # a process's failure is its own, not the runtime's
            log.error("process %s failed: %r", handle.address.process, exc)
            handle._error = exc
        finally:
            self.bus.detach(slot)
            self._handles.pop(handle.address.process, None)
            handle._done.set()

    async def deliver_from_network(self, request: Request) -> None:
        """Hand in a request from another node, as a networking layer would."""
        await self.bus.deliver_from_network(request)


def _pid(target: str | ProcessId) -> ProcessId:
    return target if isinstance(target, ProcessId) else ProcessId.parse(target)
