"""Processes as their code sees them: the context ``ctx`` and the spawn handle.

A process is ``async def main(ctx) -> None``. Through ``ctx`` it sends
requests (awaiting the response, or not), receives messages, answers
requests, and handles the capabilities it holds.

Invariants (the bus's, seen from the process; see ``bus.py``):
1. What leaves through ``ctx`` is checked in the caller's own task: body and
   blob are made exact ``bytes`` (``TypeError`` for anything not bytes-like),
   the target must accept the sender, attached capabilities must be held.
2. ``respond`` answers only a request delivered to this process and not yet
   answered (``RespondError`` otherwise); the bus takes an answer only from
   the process its request went to.
3. A capability is saved only from an offer whose offerer still holds it
   (for another node's offerer: as this node knows, ``Bus.vouched``), and
   saving consumes the offer.
4. Holders are Addresses: this process holds what ``ctx.our`` holds.
5. Capabilities this node issued that go to another node's process (sent,
   answered or shared) are granted to that address here (bus invariant 8).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import anyio

from protocol.ids import Address, PackageId, ProcessId

from .bus import Bus, Slot
from .errors import (
    CapabilityNotHeld,
    ProcessKilled,
    RespondError,
    SendError,
    SendErrorKind,
)
from .message import BytesLike, Capability, Message, Request, Response, exact_bytes

__all__ = ["ProcessContext", "ProcessHandle", "Target"]

#: Where a message goes: an Address (or its string ``node@process``), or a
#: ProcessId (or its string) on the local node.
Target = Address | ProcessId | str


class ProcessContext:
    """What a running process uses to talk to the rest of the node.

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = ("__weakref__", "_bus", "_slot", "_targets", "extensions")

    _bus: Bus
    _slot: Slot
    _targets: dict[str, Address]
    #: Client-side state keyed by library (e.g. handles the kv client opened); not for routing.
    extensions: dict[str, Any]

    def __init__(self, bus: Bus, slot: Slot) -> None:
        self._bus = bus
        self._slot = slot
        self._targets = {}
        self.extensions = {}

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
            if isinstance(target, str) and "@" in target:
                address = Address.parse(target)  # node@process: maybe another node's
            else:
                pid = target if isinstance(target, ProcessId) else ProcessId.parse(target)
                address = Address(node=self._bus.node, process=pid)
            if len(self._targets) < 1024:
                self._targets[key] = address
        return address

    def _request(
        self,
        target: Target,
        body: BytesLike,
        blob: BytesLike | None,
        metadata: str | None,
        capabilities: Iterable[Capability],
        expects_response: float | None,
    ) -> tuple[Request, Slot]:
        """A request from this process, and the slot of its target once the bus allows it."""
        if type(body) is not bytes:
            body = exact_bytes(body, "body")
        if blob is not None and type(blob) is not bytes:
            blob = exact_bytes(blob, "blob")
        request = Request(  # by position: this is the hot path (see message.py)
            self._bus.next_id(),
            self._slot.address,
            target if type(target) is Address else self.resolve(target),
            body,
            blob,
            metadata,
            capabilities if type(capabilities) is tuple else tuple(capabilities),
            expects_response,
        )
        return request, self._bus.check_request(self._slot, request)

    async def send_and_await_response(
        self,
        target: Target,
        body: BytesLike,
        *,
        blob: BytesLike | None = None,
        metadata: str | None = None,
        capabilities: Iterable[Capability] = (),
        timeout: float = 5.0,
    ) -> Response:
        """Send a request and return its response.

        Raises SendError when the target is not running, refuses the sender,
        or does not answer within ``timeout`` seconds (waiting for mailbox
        room counts against the timeout); TypeError, before sending, when
        ``body`` or ``blob`` is not bytes-like (they travel as exact bytes).
        """
        bus, slot = self._bus, self._slot
        # _request, inline (the hot path: its call and tuple cost more than these lines)
        if type(body) is not bytes:
            body = exact_bytes(body, "body")
        if blob is not None and type(blob) is not bytes:
            blob = exact_bytes(blob, "blob")
        request = Request(  # by position (see message.py)
            bus.next_id(),
            slot.address,
            target if type(target) is Address else self.resolve(target),
            body,
            blob,
            metadata,
            capabilities if type(capabilities) is tuple else tuple(capabilities),
            timeout,
        )
        target_slot = bus.check_request(slot, request)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = asyncio.Future(loop=loop)  # as mailbox.py's
        slot.waiters[request.id] = (waiter, target_slot.address)
        slot.deadlines.add(loop, request.id, request.target, timeout)
        try:
            transmit = target_slot.transmit  # another node's: maybe sent from this task
            if not (transmit is not None and await transmit(request)) and not bus.try_deliver(
                target_slot, request
            ):
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
        body: BytesLike,
        *,
        blob: BytesLike | None = None,
        metadata: str | None = None,
        capabilities: Iterable[Capability] = (),
        expects_response: float | None = None,
    ) -> int:
        """Send a request without waiting for its answer; return its id.

        With ``expects_response`` the answer arrives later through
        ``receive``; at most ``inflight_limit`` such answers may be pending,
        and a further send waits (as for a full mailbox) until one arrives.
        Raises as ``send_and_await_response`` does, without the timeout.
        """
        bus, slot = self._bus, self._slot
        request, target_slot = self._request(
            target, body, blob, metadata, capabilities, expects_response
        )
        if expects_response is not None:
            await slot.reserve_response_room(request.id, expects_response, target_slot.address)
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
        body: BytesLike,
        *,
        blob: BytesLike | None = None,
        metadata: str | None = None,
        capabilities: Iterable[Capability] = (),
    ) -> None:
        """Answer ``request``, a request this process received and has not answered yet.

        Raises RespondError for any other request (one built by hand, or one
        answered already), TypeError when body or blob is not bytes-like, and
        CapabilityNotHeld for an attached capability this process does not hold.
        """
        if request._answerer is not self._slot:
            raise RespondError(
                f"{self.process_id} did not receive or has answered request {request.id}"
            )
        body = exact_bytes(body, "body")
        blob = None if blob is None else exact_bytes(blob, "blob")
        caps = tuple(capabilities)
        for cap in caps:
            if not self._bus.caps.holds(self.our, cap.key):
                raise CapabilityNotHeld(f"{self.process_id} does not hold {cap.params}")
        request._answerer = None
        bus = self._bus
        if caps and request.source.node != bus.node:
            bus.hand_over(request.source, caps)  # they mean something here: granted here
        response = Response(
            id=request.id,
            source=self.our,
            target=request.source,
            body=body,
            blob=blob,
            metadata=metadata,
            capabilities=caps,
        )
        if bus.network_answer is not None and response.target.node != bus.node:
            await bus.network_answer(response)  # from this task: no hop through the outbox
        else:
            bus.respond(response)

    def capabilities(self) -> list[Capability]:
        """Every capability this process holds."""
        return self._bus.caps.held_by(self.our)

    def holds(self, capability: Capability) -> bool:
        """Whether this process holds ``capability``."""
        return self._bus.caps.holds(self.our, capability.key)

    def save_capabilities(self, capabilities: Iterable[Capability]) -> None:
        """Keep capabilities that arrived attached to a message sent to this process.

        Each offer is used up by saving it. Raises CapabilityNotHeld, saving
        none, for one that no message offered (or whose offer was used or
        withdrawn), or whose offerer no longer holds it.
        """
        offered, store = self._slot.offered, self._bus.caps
        caps = list(capabilities)
        for cap in caps:
            offer = offered.get(cap.key)
            if offer is None:
                raise CapabilityNotHeld(f"no message offered {cap.issuer} {cap.params}")
            if not self._bus.vouched(offer[1], cap):
                raise CapabilityNotHeld(
                    f"{cap.issuer} {cap.params} is no longer held by {offer[1]}, who offered it"
                )
        store.grant(self.our, caps)
        for cap in caps:
            offered.pop(cap.key, None)

    def share_capabilities(self, target: Target, capabilities: Iterable[Capability]) -> None:
        """Grant capabilities this process holds to the process at ``target``, at once.

        ``target`` may be another node's process: the grant is kept here, on
        the node that issued the capabilities, where they mean something (the
        other node is not told). Raises CapabilityNotHeld, granting none, for
        one this process does not hold, or, to another node's process, for one
        another node issued (only that node can grant it).
        """
        address = self.resolve(target)
        node = self._bus.node
        caps = list(capabilities)
        for cap in caps:
            if not self.holds(cap):
                raise CapabilityNotHeld(f"{self.process_id} does not hold {cap.params}")
            if address.node != node and cap.issuer.node != node:
                raise CapabilityNotHeld(
                    f"{cap.issuer} {cap.params} was issued by node {cap.issuer.node!r}: "
                    f"only it can grant it to {address}"
                )
        self._bus.caps.grant(address, caps)


class ProcessHandle:
    """A spawned process: wait for it, or stop it. (A plain slotted class, as
    ``ProcessContext``.)"""

    __slots__ = ("__weakref__", "_abandoned", "_done", "_error", "_finished", "_scope", "address")

    address: Address
    _scope: anyio.CancelScope
    _done: anyio.Event
    _error: BaseException | None
    _finished: bool
    #: Set when runtime exit gave up waiting for main (see ``Runtime.shutdown_grace``).
    _abandoned: bool

    def __init__(self, *, address: Address) -> None:
        self.address = address
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._error = None
        self._finished = False
        self._abandoned = False

    @property
    def running(self) -> bool:
        """Whether main is still running."""
        return not self._done.is_set()

    async def wait(self) -> None:
        """Return when main returns; re-raise its error, or ProcessKilled if it was stopped
        (or abandoned at shutdown)."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        if self._abandoned:
            raise ProcessKilled(
                f"process {self.address.process} ignored the stop at shutdown and was abandoned"
            )
        if not self._finished:
            raise ProcessKilled(f"process {self.address.process} was stopped")

    def kill(self) -> None:
        """Stop the process (its main is cancelled)."""
        self._scope.cancel()
