"""Processes as their code sees them: the context ``ctx`` and the spawn handle.

A process is ``async def main(ctx) -> None``. Through ``ctx`` it sends
requests (awaiting the response, or not), receives messages, answers
requests, and handles the capabilities it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import anyio
import attrs

from protocol.ids import Address, PackageId, ProcessId

from .bus import Bus, Slot
from .errors import CapabilityNotHeld, ProcessKilled, SendError, SendErrorKind
from .message import Capability, Message, Request, Response

__all__ = ["ProcessContext", "ProcessHandle", "Target"]

#: Where a message goes: an Address, or a ProcessId (or its string) on the local node.
Target = Address | ProcessId | str


@attrs.define(eq=False)
class ProcessContext:
    """What a running process uses to talk to the rest of the node."""

    _bus: Bus
    _slot: Slot
    _targets: dict[str, Address] = attrs.Factory(dict)
    #: Client-side state keyed by library (e.g. handles the kv client opened); not for routing.
    extensions: dict[str, Any] = attrs.Factory(dict)

    @property
    def our(self) -> Address:
        """This process's address."""
        return self._slot.address

    @property
    def process_id(self) -> ProcessId:
        """This process's id."""
        return self._slot.address.process

    @property
    def package_id(self) -> PackageId:
        """The package this process belongs to."""
        return self._slot.address.process.package_id

    def resolve(self, target: Target) -> Address:
        """The Address of ``target`` (a ProcessId string means this node)."""
        if isinstance(target, Address):
            return target
        key = str(target)
        address = self._targets.get(key)
        if address is None:
            pid = target if isinstance(target, ProcessId) else ProcessId.parse(target)
            address = Address(node=self._bus.node, process=pid)
            if len(self._targets) < 1024:
                self._targets[key] = address
        return address

    def _request(
        self,
        target: Target,
        body: bytes,
        blob: bytes | None,
        metadata: str | None,
        capabilities: Iterable[Capability],
        expects_response: float | None,
    ) -> tuple[Request, Slot]:
        """A request from this process, and the slot of its target once the bus allows it."""
        request = Request(  # by position: this is the hot path (see message.py)
            self._bus.next_id(),
            self._slot.address,
            self.resolve(target),
            body,
            blob,
            metadata,
            tuple(capabilities),
            expects_response,
        )
        return request, self._bus.check_request(self._slot, request)

    async def send_and_await_response(
        self,
        target: Target,
        body: bytes,
        *,
        blob: bytes | None = None,
        metadata: str | None = None,
        capabilities: Iterable[Capability] = (),
        timeout: float = 5.0,
    ) -> Response:
        """Send a request and return its response.

        Raises SendError when the target is not running, refuses the sender,
        or does not answer within ``timeout`` seconds (waiting for mailbox
        room counts against the timeout).
        """
        bus, slot = self._bus, self._slot
        request, target_slot = self._request(target, body, blob, metadata, capabilities, timeout)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        slot.waiters[request.id] = waiter
        slot.deadlines.add(loop, request.id, request.target, timeout)
        try:
            if not bus.try_deliver(target_slot, request):
                with anyio.move_on_after(timeout) as waited:
                    await bus.deliver(target_slot, request)  # withdrawn if cancelled
                if waited.cancelled_caught:
                    raise SendError(
                        SendErrorKind.TIMEOUT,
                        f"{request.target} did not accept the request within {timeout:g}s",
                    )
            return await waiter
        finally:
            slot.waiters.pop(request.id, None)

    async def send(
        self,
        target: Target,
        body: bytes,
        *,
        blob: bytes | None = None,
        metadata: str | None = None,
        capabilities: Iterable[Capability] = (),
        expects_response: float | None = None,
    ) -> int:
        """Send a request without waiting for its answer; return its id.

        With ``expects_response`` the answer arrives later through
        ``receive``; at most ``inflight_limit`` such answers may be pending,
        and a further send waits (as for a full mailbox) until one arrives.
        """
        bus, slot = self._bus, self._slot
        request, target_slot = self._request(
            target, body, blob, metadata, capabilities, expects_response
        )
        if expects_response is not None:
            await slot.reserve_response_room(request.id, expects_response)
        try:
            if not bus.try_deliver(target_slot, request):
                await bus.deliver(target_slot, request)
        except BaseException:
            slot.expected.pop(request.id, None)
            raise
        return request.id

    async def receive(self) -> Message:
        """The next message (request, or response to a ``send`` with ``expects_response``)."""
        message = await self._slot.mailbox.get()
        self._slot.took(message)
        return message

    async def respond(
        self,
        request: Request,
        body: bytes,
        *,
        blob: bytes | None = None,
        metadata: str | None = None,
        capabilities: Iterable[Capability] = (),
    ) -> None:
        """Answer ``request``."""
        caps = tuple(capabilities)
        for cap in caps:
            if not self._bus.caps.holds(self.process_id, cap.key):
                raise CapabilityNotHeld(f"{self.process_id} does not hold {cap.params}")
        self._bus.respond(
            Response(
                id=request.id,
                source=self.our,
                target=request.source,
                body=body,
                blob=blob,
                metadata=metadata,
                capabilities=caps,
            )
        )

    def capabilities(self) -> list[Capability]:
        """Every capability this process holds."""
        return self._bus.caps.held_by(self.process_id)

    def holds(self, capability: Capability) -> bool:
        """Whether this process holds ``capability``."""
        return self._bus.caps.holds(self.process_id, capability.key)

    def save_capabilities(self, capabilities: Iterable[Capability]) -> None:
        """Keep capabilities that arrived attached to a message sent to this process.

        Raises CapabilityNotHeld for one that no message offered.
        """
        offered = self._slot.offered
        caps = list(capabilities)
        for cap in caps:
            if cap.key not in offered:
                raise CapabilityNotHeld(f"no message offered {cap.issuer} {cap.params}")
        self._bus.caps.grant(self.process_id, caps)

    def share_capabilities(self, target: Target, capabilities: Iterable[Capability]) -> None:
        """Grant capabilities this process holds to the process at ``target``, at once.

        Raises CapabilityNotHeld for one this process does not hold.
        """
        address = self.resolve(target)
        if address.node != self._bus.node:
            raise SendError(SendErrorKind.OFFLINE, f"no route to node {address.node!r}")
        caps = list(capabilities)
        for cap in caps:
            if not self.holds(cap):
                raise CapabilityNotHeld(f"{self.process_id} does not hold {cap.params}")
        self._bus.caps.grant(address.process, caps)


@attrs.define(eq=False)
class ProcessHandle:
    """A spawned process: wait for it, or stop it."""

    address: Address
    _scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    _done: anyio.Event = attrs.Factory(anyio.Event)
    _error: BaseException | None = None
    _finished: bool = False

    @property
    def running(self) -> bool:
        """Whether main is still running."""
        return not self._done.is_set()

    async def wait(self) -> None:
        """Return when main returns; re-raise its error, or ProcessKilled if it was stopped."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        if not self._finished:
            raise ProcessKilled(f"process {self.address.process} was stopped")

    def kill(self) -> None:
        """Stop the process (its main is cancelled)."""
        self._scope.cancel()
