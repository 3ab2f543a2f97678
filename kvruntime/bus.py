"""The bus: routes requests into bounded mailboxes and responses to their waiters.

Invariants:
1. A request is *accepted* when it enters the target's mailbox; mailboxes
   are FIFO, so a receiver sees one sender's requests in acceptance order,
   also when the sender sends from several tasks.
2. Delivering a response never blocks the responder: it completes the
   waiting future of ``send_and_await_response``, or goes past the bound
   into a mailbox whose room the receiver reserved (its in-flight limit),
   or is dropped (nobody waits any more) with a debug log. The reserved room
   is held until the receiver *takes* the response, not merely until it
   arrives: a process that never reads its answers stops at its in-flight
   limit instead of piling them up in its mailbox.
3. A request reaches a non-public process only from a holder of that
   process's messaging capability, and carries only capabilities its
   sender holds; otherwise the sender gets ``SendError`` in its own task.
   A receiver may save an attached capability only if its sender still
   held it at delivery and nobody revoked it since (``withdraw_offers``).
4. Requests from other nodes come in through ``deliver_from_network`` (the
   seam a networking layer plugs into) and responses to them leave through
   ``network_outbox``; there is no network in this runtime.
5. A process that ends (returns, fails or is killed) leaves no sender
   waiting on a request still queued in its mailbox: ``detach`` fails an
   awaiting sender with ``SendError(OFFLINE)`` at once, and frees the room a
   ``send`` with ``expects_response`` reserved (no message arrives for it).
   Like a response, this never blocks (invariant 2).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Iterable
from typing import Final

import anyio
import attrs

from protocol.ids import Address, ProcessId

from ._deadlines import Deadlines
from ._mailbox import Mailbox, MailboxClosed, MailboxFull
from .capabilities import CapabilityStore
from .errors import SendError, SendErrorKind
from .message import Capability, Message, Request, Response

__all__ = ["MESSAGING", "Bus", "Slot", "messaging_capability"]

log = logging.getLogger("kvruntime.bus")

#: The params of a messaging capability (as Hyperware spells it).
MESSAGING: Final = '"messaging"'


def messaging_capability(target: Address) -> Capability:
    """The capability that allows sending requests to the process at ``target``."""
    return Capability(issuer=target, params=MESSAGING)


@attrs.define(eq=False)
class Slot:
    """A running process as the bus sees it: its address, mailbox and waiters."""

    address: Address
    mailbox: Mailbox[Message]
    public: bool
    #: Most responses this process may await through its mailbox at once.
    inflight_limit: int
    messaging_key: str = attrs.field(init=False)
    #: Request id -> the future ``send_and_await_response`` waits on.
    waiters: dict[int, asyncio.Future[Response]] = attrs.Factory(dict)
    #: When each of ``waiters`` times out.
    deadlines: Deadlines = attrs.field(init=False)
    #: Request id -> deadline, for responses that go to the mailbox (``send`` with
    #: ``expects_response``); a response after its deadline is dropped.
    expected: dict[int, float] = attrs.Factory(dict)
    #: Responses put in the mailbox past its bound and not received yet; they
    #: count against ``inflight_limit`` until the process takes them.
    unread_responses: int = 0
    room: asyncio.Event = attrs.Factory(asyncio.Event)
    #: Capabilities that arrived attached to messages, which the process may save.
    offered: dict[str, Capability] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        self.messaging_key = messaging_capability(self.address).key
        self.deadlines = Deadlines(self.waiters)

    async def reserve_response_room(self, request_id: int, timeout: float) -> None:
        """Reserve mailbox room for the response to ``request_id``, waiting for a free one."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            expected = self.expected
            if len(expected) + self.unread_responses >= self.inflight_limit:
                for rid in [r for r, deadline in expected.items() if deadline <= now]:
                    del expected[rid]
            if len(expected) + self.unread_responses < self.inflight_limit:
                expected[request_id] = now + timeout
                return
            self.room.clear()
            wait = min(expected.values()) - now if expected else math.inf
            with anyio.move_on_after(wait):
                await self.room.wait()

    def took(self, message: Message) -> None:
        """Note that the process took ``message`` from its mailbox."""
        if isinstance(message, Response) and self.unread_responses:
            self.unread_responses -= 1
            self.room.set()


@attrs.define(eq=False)
class Bus:
    """Routes messages between the processes of one node."""

    node: str
    caps: CapabilityStore
    #: Responses addressed to other nodes, for a networking layer to carry.
    network_outbox: Mailbox[Response] = attrs.Factory(lambda: Mailbox[Response](1024))
    _slots: dict[ProcessId, Slot] = attrs.Factory(dict)
    _ids: itertools.count[int] = attrs.Factory(lambda: itertools.count(1))

    def next_id(self) -> int:
        """A fresh message id."""
        return next(self._ids)

    def attach(self, slot: Slot) -> None:
        """Register a running process."""
        pid = slot.address.process
        if pid in self._slots:
            raise ValueError(f"process {pid} is already running")
        self._slots[pid] = slot

    def detach(self, slot: Slot) -> None:
        """Unregister a process, close its mailbox and fail its waiters (invariant 5)."""
        pid = slot.address.process
        if self._slots.get(pid) is slot:
            del self._slots[pid]
        for message in slot.mailbox.drain():
            if isinstance(message, Request):
                self._unanswerable(message)
        for fut in slot.waiters.values():
            if not fut.done():
                fut.set_exception(SendError(SendErrorKind.CLOSED, f"process {pid} ended"))
        slot.waiters.clear()
        slot.deadlines.close()

    def _unanswerable(self, request: Request) -> None:
        """``request`` was queued for a process that ended without taking it.

        Its sender learns at once, without blocking anyone: an awaiting
        ``send_and_await_response`` fails with ``SendError(OFFLINE)``; for a
        ``send`` with ``expects_response`` nothing arrives, but the room it
        reserved for the answer is freed now rather than at its deadline.
        """
        if request.source.node != self.node:
            return  # the network layer's sender: no waiter here
        sender = self._slots.get(request.source.process)
        if sender is None:
            return
        waiter = sender.waiters.pop(request.id, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_exception(
                    SendError(
                        SendErrorKind.OFFLINE,
                        f"process {request.target} ended before answering request {request.id}",
                    )
                )
        elif sender.expected.pop(request.id, None) is not None:
            sender.room.set()

    def slot(self, process: ProcessId) -> Slot | None:
        """The running process with this id, if any."""
        return self._slots.get(process)

    def check_request(self, sender: Slot, request: Request) -> Slot:
        """Return the target's slot, or raise SendError (invariant 3)."""
        target = request.target
        if target.node != self.node:
            raise SendError(SendErrorKind.OFFLINE, f"no route to node {target.node!r}")
        slot = self._slots.get(target.process)
        if slot is None:
            raise SendError(SendErrorKind.OFFLINE, f"no process at {target}")
        pid = sender.address.process
        caps = self.caps
        if not slot.public and not caps.holds(pid, slot.messaging_key):
            raise SendError(
                SendErrorKind.FORBIDDEN,
                f"{pid} may not message {target.process}: "
                f"request the {target.process} capability when spawning it",
            )
        for cap in request.capabilities:
            if not caps.holds(pid, cap.key):
                raise SendError(
                    SendErrorKind.CAPABILITY_NOT_HELD,
                    f"{pid} attached a capability it does not hold: {cap.issuer} {cap.params}",
                )
        return slot

    def try_deliver(self, slot: Slot, request: Request) -> bool:
        """Queue ``request`` now if there is room; False if the sender must wait."""
        try:
            slot.mailbox.put_nowait(request)
        except MailboxFull:
            return False
        except MailboxClosed:
            raise SendError(SendErrorKind.OFFLINE, f"process {request.target} ended") from None
        if request.capabilities:
            self._offer(slot, request)
        return True

    async def deliver(self, slot: Slot, request: Request) -> None:
        """Queue ``request``, waiting for room (backpressure)."""
        try:
            await slot.mailbox.put(request)
        except MailboxClosed:
            raise SendError(SendErrorKind.OFFLINE, f"process {request.target} ended") from None
        if request.capabilities:
            self._offer(slot, request)

    def respond(self, response: Response) -> None:
        """Deliver ``response`` without blocking (invariant 2)."""
        target = response.target
        if target.node != self.node:
            try:
                self.network_outbox.put_nowait(response)
            except (MailboxFull, MailboxClosed):
                log.warning("dropped a response to %s: network outbox full", target)
            return
        slot = self._slots.get(target.process)
        if slot is None:
            log.debug("dropped response %d: %s is not running", response.id, target)
            return
        waiter = slot.waiters.pop(response.id, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(response)
            return
        if slot.expected.pop(response.id, None) is not None:
            try:
                slot.mailbox.put_reserved(response)
            except MailboxClosed:
                return
            slot.unread_responses += 1  # its room is freed when the process takes it
            if response.capabilities:
                self._offer(slot, response)
            return
        log.debug("dropped response %d to %s: nobody waits for it", response.id, target)

    async def deliver_from_network(self, request: Request) -> None:
        """Hand in a request from another node (the networking layer's seam)."""
        if request.source.node == self.node:
            raise ValueError("deliver_from_network takes requests from other nodes only")
        slot = self._slots.get(request.target.process)
        if slot is None:
            raise SendError(SendErrorKind.OFFLINE, f"no process at {request.target}")
        await self.deliver(slot, request)

    def withdraw_offers(self, caps: Iterable[Capability]) -> None:
        """Forget ``caps`` wherever a message offered them (they were revoked)."""
        keys = [cap.key for cap in caps]
        for slot in self._slots.values():
            for key in keys:
                slot.offered.pop(key, None)

    def _offer(self, slot: Slot, message: Request | Response) -> None:
        # Only what the sender holds *now* is offered: a capability revoked
        # while its message waited for room, or claimed by another node (whose
        # processes hold nothing here), can never be saved.
        caps, sender = self.caps, message.source.process
        for cap in message.capabilities:
            if caps.holds(sender, cap.key):
                slot.offered[cap.key] = cap
