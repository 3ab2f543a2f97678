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
   Holders are Addresses: a request from another node passes the same
   check (``deliver_from_network``), and holds nothing of a local process
   that has its process id. A process marked ``answers_remote`` takes every
   request from another node without that check, to answer it itself.
4. A receiver may save an attached capability only while the process that
   attached it still holds it: an offer records its offerer, ``save``
   checks it again and consumes the offer, and ``withdraw_offers`` takes
   back what a revoke or a removal took.
5. A response is taken only from the process its request was delivered
   to, once: each waiter (and each room reserved for a mailbox answer)
   records the address of that process, and a response from anyone else
   is dropped with a warning. ``ProcessContext.respond`` answers only a
   request the bus delivered to it and that it has not answered
   (``Request._answerer``), so a forgery fails in the forger's own task.
6. Requests from other nodes come in through ``deliver_from_network`` (the
   seam a networking layer plugs into) and responses to them leave through
   ``network_outbox``, or, answered by a process, through ``network_answer``
   in the responder's own task (it waits only while the transport's write
   buffer is full: backpressure, as a full local mailbox). Requests to
   other nodes go to the slot that ``network_route`` (the transport's, when
   the runtime has a network) gives for the remote address, whose
   ``transmit`` may send them from the sender's task; without a route, they
   are ``SendError(OFFLINE)``.
   A transport that learns a request failed calls ``fail_request``.
7. A process that ends (returns, fails or is killed) leaves no sender
   waiting on a request still queued in its mailbox: ``detach`` fails an
   awaiting sender with ``SendError(OFFLINE)`` at once, and frees the room a
   ``send`` with ``expects_response`` reserved (no message arrives for it).
   Like a response, this never blocks (invariant 2).
8. A capability means something on the node that issued it (the node of
   its issuer address), whose store says who holds it. A message to
   another node's process hands that address the capabilities this node
   issued that it carries: they are granted to it here when it is sent
   (``hand_over``; this node cannot see whether the far process saves
   them), and stay granted as any grant does. A capability attached by
   another node's process is believed (``vouched``: offered, and saveable)
   when this node's store says that address holds it, or when its issuer
   is on the sender's node: that node's authenticated frame vouches for its
   own capabilities. Anything else another node attaches is never offered.
9. What the node holds for a process's unread answers is bounded in bytes
   too, not only in count: ``Slot.unread_bytes`` is the size (body and blob)
   of the responses queued in its mailbox and not taken yet. While it is
   over the process's ``answer_budget`` the process is *backlogged*: listed
   in ``Bus.backlogged``, and each of ``Bus.on_backlogged`` is called then
   (in the responder's task; it must not block), so an answerer may
   defer serving it (kv does: rule 8 of ``kvservice/loop.py``) until it
   reads back within its budget or ends; ``when_read`` asks for that wakeup.
   A response is still always delivered (invariant 2): the budget never
   stops one answer, however large, so it never deadlocks a request.
   An answerer that defers a backlogged sender bounds what it keeps for it
   with ``hold_sender``: that sender's further requests to it wait in the
   sender's own task (backpressure, as for a full mailbox, but for that
   sender alone) until ``release_sender``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import anyio

from protocol.ids import Address, ProcessId

from .capabilities import CapabilityStore
from .deadlines import Deadlines, Waiter
from .errors import SendError, SendErrorKind
from .mailbox import Mailbox, MailboxClosed, MailboxFull
from .message import Capability, Message, Request, Response, exact_bytes

__all__ = ["MESSAGING", "Bus", "Slot", "messaging_capability"]

log = logging.getLogger("kvruntime.kernel.bus")

#: The params of a messaging capability (as Hyperware spells it).
MESSAGING: Final = '"messaging"'


def messaging_capability(target: Address) -> Capability:
    """The capability that allows sending requests to the process at ``target``."""
    return Capability(issuer=target, params=MESSAGING)


class Slot:
    """A running process as the bus sees it: its address, mailbox and waiters.

    A plain slotted class (what ``@attrs.define(eq=False, repr=False)`` made
    of it, without attrs' class builder at every start; issue 15): compared
    by identity, shown by ``object``'s repr.
    """

    __slots__ = (
        "__weakref__",
        "address",
        "answer_budget",
        "answers_remote",
        "backlog",
        "backlogged",
        "deadlines",
        "expected",
        "holding",
        "inflight_limit",
        "mailbox",
        "messaging_key",
        "offered",
        "on_read",
        "public",
        "room",
        "transmit",
        "unread_bytes",
        "unread_responses",
        "waiters",
    )

    address: Address
    mailbox: Mailbox[Message]
    public: bool
    #: Most responses this process may await through its mailbox at once.
    inflight_limit: int
    #: The process takes every request from another node and answers it itself
    #: (kv refuses them all, and says so): the network seam skips the messaging
    #: check for it. Attached capabilities are still offered only if held here.
    answers_remote: bool
    #: Another node's process (a transport's stand-in): sends a request at once
    #: in the sender's own task when nothing waits before it; None: queue it.
    transmit: Callable[[Request], Awaitable[bool]] | None
    messaging_key: str
    #: Request id -> the future ``send_and_await_response`` waits on, and the answerer.
    waiters: dict[int, Waiter]
    #: When each of ``waiters`` times out.
    deadlines: Deadlines
    #: Request id -> (deadline, answerer), for responses that go to the mailbox
    #: (``send`` with ``expects_response``); a response after its deadline is dropped.
    expected: dict[int, tuple[float, Address]]
    #: Responses put in the mailbox past its bound and not received yet; they
    #: count against ``inflight_limit`` until the process takes them.
    unread_responses: int
    room: asyncio.Event
    #: Bytes (body and blob) of the ``unread_responses`` (invariant 9).
    unread_bytes: int
    #: Past this many ``unread_bytes`` the process is backlogged (invariant 9).
    answer_budget: int
    #: Whether it is, and so in ``backlog`` (the bus's ``backlogged``, set at attach).
    backlogged: bool
    backlog: dict[ProcessId, Slot]
    #: Called once when it reads back within its budget, or ends (``Bus.when_read``).
    on_read: list[Callable[[], None]]
    #: Local senders whose requests to this process wait (``Bus.hold_sender``),
    #: each with the event its release sets; empty but while one is held.
    holding: dict[ProcessId, asyncio.Event]
    #: Capability key -> (capability, offerer): what arrived attached to a message
    #: and may be saved while its offerer still holds it (invariant 4).
    offered: dict[str, tuple[Capability, Address]]

    def __init__(
        self,
        *,
        address: Address,
        mailbox: Mailbox[Message],
        public: bool,
        inflight_limit: int,
        answers_remote: bool = False,
        transmit: Callable[[Request], Awaitable[bool]] | None = None,
        answer_budget: int = 64 << 20,
    ) -> None:
        self.address = address
        self.mailbox = mailbox
        self.public = public
        self.inflight_limit = inflight_limit
        self.answers_remote = answers_remote
        self.transmit = transmit
        self.messaging_key = messaging_capability(address).key
        self.waiters = {}
        self.deadlines = Deadlines(self.waiters)
        self.expected = {}
        self.unread_responses = 0
        self.room = asyncio.Event()
        self.unread_bytes = 0
        self.answer_budget = answer_budget
        self.backlogged = False
        self.backlog = {}
        self.on_read = []
        self.holding = {}
        self.offered = {}

    async def reserve_response_room(
        self, request_id: int, timeout: float, answerer: Address
    ) -> None:
        """Reserve mailbox room for ``answerer``'s response to ``request_id``, waiting for it."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            expected = self.expected
            if len(expected) + self.unread_responses >= self.inflight_limit:
                for rid in [r for r, (deadline, _) in expected.items() if deadline <= now]:
                    del expected[rid]
            if len(expected) + self.unread_responses < self.inflight_limit:
                expected[request_id] = (now + timeout, answerer)
                return
            self.room.clear()
            wait = (
                min(deadline for deadline, _ in expected.values()) - now if expected else math.inf
            )
            with anyio.move_on_after(wait):
                await self.room.wait()

    def took(self, message: Message) -> None:
        """Note that the process took ``message`` from its mailbox."""
        if isinstance(message, Response) and self.unread_responses:
            self.unread_responses -= 1
            self.room.set()
            blob = message.blob
            self.unread_bytes -= len(message.body) + (0 if blob is None else len(blob))
            if self.backlogged and self.unread_bytes <= self.answer_budget:
                self.read_back()

    def read_back(self) -> None:
        """No longer backlogged (read back within its budget, or ended): wake who asked."""
        self.backlogged = False
        self.backlog.pop(self.address.process, None)
        woken, self.on_read = self.on_read, []
        for wake in woken:
            try:
                wake()
            except Exception:  # one waker's bug must not cost the reader its message
                log.exception("a wakeup for %s failed", self.address)


class Bus:
    """Routes messages between the processes of one node. (A plain slotted
    class, as ``Slot``.)"""

    __slots__ = (
        "__weakref__",
        "_by_identity",
        "_last_answered",
        "_last_sent",
        "_slots",
        "backlogged",
        "caps",
        "network_answer",
        "network_outbox",
        "network_route",
        "next_id",
        "node",
        "on_backlogged",
    )

    node: str
    caps: CapabilityStore
    #: Responses addressed to other nodes, for a networking layer to carry.
    network_outbox: Mailbox[Response]
    #: The stand-in slot of a process on another node (a transport's), or None: single node.
    network_route: Callable[[Address], Slot] | None
    #: Sends a process's answer to another node in the responder's own task
    #: (a transport's); None: answers go through ``network_outbox``.
    network_answer: Callable[[Response], Awaitable[None]] | None
    _slots: dict[ProcessId, Slot]
    #: The local processes whose unread answers are over their budget (invariant 9):
    #: empty but while one is, so an answerer's look costs one test.
    backlogged: dict[ProcessId, Slot]
    #: Called with a local process's id when it becomes backlogged (invariant 9).
    on_backlogged: list[Callable[[ProcessId], None]]
    #: id(address) -> (address, its slot), for the local addresses ``check_request``
    #: and ``respond`` found: they hash no ProcessId (a Python call) for an address
    #: object they have seen. Each entry keeps its address alive (its id is not
    #: reused while cached); ``attach`` and ``detach`` clear it; bounded.
    _by_identity: dict[int, tuple[Address, Slot]]
    #: The last address each of them found, with its slot (or None): before the
    #: dict, one identity test (a sender sends to one process, mostly kv; kv
    #: answers the sender of its last request). Reset with ``_by_identity``.
    _last_sent: tuple[Address, Slot] | None
    _last_answered: tuple[Address, Slot] | None
    #: A fresh message id at each call: the ``__next__`` of a counter of this bus's
    #: own, so that taking one is a C call, with no Python frame (the hot path).
    next_id: Callable[[], int]

    def __init__(self, *, node: str, caps: CapabilityStore) -> None:
        self.node = node
        self.caps = caps
        self.network_outbox = Mailbox[Response](1024)
        self.network_route = None
        self.network_answer = None
        self._slots = {}
        self.backlogged = {}
        self.on_backlogged = []
        self._by_identity = {}
        self._last_sent = None
        self._last_answered = None
        self.next_id = itertools.count(1).__next__

    def attach(self, slot: Slot) -> None:
        """Register a running process."""
        pid = slot.address.process
        if pid in self._slots:
            raise ValueError(f"process {pid} is already running")
        self._slots[pid] = slot
        slot.backlog = self.backlogged
        self._forget_addresses()

    def detach(self, slot: Slot) -> None:
        """Unregister a process, close its mailbox and fail its waiters (invariant 7)."""
        pid = slot.address.process
        if self._slots.get(pid) is slot:
            del self._slots[pid]
        self._forget_addresses()
        for message in slot.mailbox.drain():
            if isinstance(message, Request):
                self._unanswerable(message)
        for fut, _ in slot.waiters.values():
            if not fut.done():
                fut.set_exception(SendError(SendErrorKind.CLOSED, f"process {pid} ended"))
        slot.waiters.clear()
        slot.deadlines.close()
        slot.unread_responses = slot.unread_bytes = 0  # drained: nobody will read them
        for sender in list(slot.holding):  # they go on, and find the mailbox closed
            self.release_sender(slot, sender)
        if slot.backlogged:
            slot.read_back()

    def _unanswerable(self, request: Request) -> None:
        """``request`` was queued for a process that ended without taking it.

        Its sender learns at once, without blocking anyone: an awaiting
        ``send_and_await_response`` fails with ``SendError(OFFLINE)``; for a
        ``send`` with ``expects_response`` nothing arrives, but the room it
        reserved for the answer is freed now rather than at its deadline.
        """
        self.fail_request(
            request,
            SendError(
                SendErrorKind.OFFLINE,
                f"process {request.target} ended before answering request {request.id}",
            ),
        )

    def fail_request(self, request: Request, error: SendError) -> None:
        """``request`` will get no answer: its awaiting sender fails with ``error``.

        For a ``send`` with ``expects_response`` nothing arrives, but the room
        it reserved for the answer is freed now. Never blocks.
        """
        if request.source.node != self.node:
            return  # the network layer's sender: no waiter here
        sender = self._slots.get(request.source.process)
        if sender is None:
            return
        waiter = sender.waiters.pop(request.id, None)
        if waiter is not None:
            if not waiter[0].done():
                waiter[0].set_exception(error)
        elif sender.expected.pop(request.id, None) is not None:
            sender.room.set()

    def when_read(self, process: ProcessId, wake: Callable[[], None]) -> bool:
        """Call ``wake`` once when the backlogged local ``process`` reads back within
        its budget or ends (invariant 9); False, and no call, if it is not backlogged.
        ``wake`` runs in the reader's task: it must only schedule work, never block."""
        slot = self.backlogged.get(process)
        if slot is None:
            return False
        slot.on_read.append(wake)
        return True

    def hold_sender(self, slot: Slot, sender: ProcessId) -> None:
        """Make the local ``sender``'s further requests to ``slot`` wait (invariant 9)."""
        if sender not in slot.holding:
            slot.holding[sender] = asyncio.Event()

    def release_sender(self, slot: Slot, sender: ProcessId) -> None:
        """Let the requests of ``sender`` that ``hold_sender`` stopped go on."""
        held = slot.holding.pop(sender, None)
        if held is not None:
            held.set()

    def slot(self, process: ProcessId) -> Slot | None:
        """The running process with this id, if any."""
        return self._slots.get(process)

    def _forget_addresses(self) -> None:
        self._by_identity.clear()
        self._last_sent = self._last_answered = None

    def _local(self, address: Address) -> Slot | None:
        """The running process at ``address`` (of this node), kept in ``_by_identity``."""
        slot = self._slots.get(address.process)
        if slot is not None:
            if len(self._by_identity) >= 4096:
                self._by_identity.clear()
            self._by_identity[id(address)] = (address, slot)
        return slot

    def check_request(self, sender: Slot, request: Request) -> Slot:
        """Return the target's slot, or raise SendError (invariant 3)."""
        target = request.target
        if target.node != self.node:
            if self.network_route is None:
                raise SendError(SendErrorKind.OFFLINE, f"no route to node {target.node!r}")
            slot = self.network_route(target)  # public: the remote node checks the sender
        elif (last := self._last_sent) is not None and last[0] is target:
            slot = last[1]
        elif (seen := self._by_identity.get(id(target))) is not None and seen[0] is target:
            slot = seen[1]
            self._last_sent = seen
        else:
            found = self._local(target)
            if found is None:
                raise SendError(SendErrorKind.OFFLINE, f"no process at {target}")
            slot = found
        holder = sender.address
        caps = self.caps
        if not slot.public and not caps.holds(holder, slot.messaging_key):
            raise _forbidden(holder, target)
        for cap in request.capabilities:
            if not caps.holds(holder, cap.key):
                raise SendError(
                    SendErrorKind.CAPABILITY_NOT_HELD,
                    f"{holder.process} attached a capability it does not hold: "
                    f"{cap.issuer} {cap.params}",
                )
        if request.capabilities and target.node != self.node:
            self.hand_over(target, request.capabilities)
        return slot

    def hand_over(self, target: Address, caps: Iterable[Capability]) -> None:
        """Grant ``target``, another node's process, the ``caps`` issued on this node
        (a message carries them to it: invariant 8). Others mean nothing here."""
        mine = [cap for cap in caps if cap.issuer.node == self.node]
        if mine:
            self.caps.grant(target, mine)

    def vouched(self, holder: Address, cap: Capability) -> bool:
        """Whether ``holder`` may pass on ``cap``, as this node knows (invariant 8)."""
        node = holder.node
        return self.caps.holds(holder, cap.key) or (node != self.node and cap.issuer.node == node)

    def try_deliver(self, slot: Slot, request: Request) -> bool:
        """Queue ``request`` now if there is room; False if the sender must wait."""
        request._answerer = slot
        if (
            slot.holding
            and request.source.process in slot.holding
            and request.source.node == self.node
        ):
            return False  # held: ``deliver`` waits for the release
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
        """Queue ``request``, waiting for room (backpressure) and while its sender
        is held (``hold_sender``)."""
        request._answerer = slot
        source = request.source
        while (
            slot.holding
            and source.node == self.node
            and (held := slot.holding.get(source.process)) is not None
        ):
            await held.wait()
        try:
            await slot.mailbox.put(request)
        except MailboxClosed:
            raise SendError(SendErrorKind.OFFLINE, f"process {request.target} ended") from None
        if request.capabilities:
            self._offer(slot, request)

    def respond(self, response: Response) -> None:
        """Deliver ``response`` without blocking (invariants 2 and 5)."""
        target = response.target
        if target.node != self.node:
            try:
                self.network_outbox.put_nowait(response)
            except MailboxFull:
                log.warning("dropped a response to %s: network outbox full", target)
            except MailboxClosed:
                log.debug("dropped a response to %s: the network is closed", target)
            return
        last = self._last_answered
        if last is not None and last[0] is target:
            slot: Slot | None = last[1]
        elif (seen := self._by_identity.get(id(target))) is not None and seen[0] is target:
            slot = seen[1]
            self._last_answered = seen
        else:
            slot = self._local(target)
        if slot is None:
            log.debug("dropped response %d: %s is not running", response.id, target)
            return
        rid, source = response.id, response.source
        waiter = slot.waiters.get(rid)
        if waiter is not None:
            future, answerer = waiter
            if answerer is not source and answerer != source:
                return _refused(response, answerer)
            # Taken once: a later response finds the future done (the waiting
            # send_and_await_response removes its waiter when it resumes).
            if not future.done():
                future.set_result(response)
            return
        expected = slot.expected.get(rid)
        if expected is not None:
            if expected[1] is not source and expected[1] != source:
                return _refused(response, expected[1])
            del slot.expected[rid]
            try:
                slot.mailbox.put_reserved(response)
            except MailboxClosed:
                return
            slot.unread_responses += 1  # its room is freed when the process takes it
            blob = response.blob
            slot.unread_bytes += len(response.body) + (0 if blob is None else len(blob))
            if slot.unread_bytes > slot.answer_budget and not slot.backlogged:
                slot.backlogged = True
                self.backlogged[pid := slot.address.process] = slot
                for listener in self.on_backlogged:
                    listener(pid)
            if response.capabilities:
                self._offer(slot, response)
            return
        log.debug("dropped response %d to %s: nobody waits for it", rid, target)

    async def deliver_from_network(self, request: Request, *, wait: bool = True) -> None:
        """Hand in a request from another node (the networking layer's seam).

        Checked as a local request is (invariant 3): SendError when no process
        runs at the target or the target is not public (nor ``answers_remote``)
        and the source does not hold its messaging capability; TypeError when
        body or blob is not bytes. A full mailbox is waited for, unless
        ``wait`` is False: then it is ``SendError(BUSY)`` at once.
        """
        source, target = request.source, request.target
        if source.node == self.node:
            raise ValueError("deliver_from_network takes requests from other nodes only")
        request.body = exact_bytes(request.body, "body")
        if request.blob is not None:
            request.blob = exact_bytes(request.blob, "blob")
        slot = self._slots.get(target.process) if target.node == self.node else None
        if slot is None:
            raise SendError(SendErrorKind.OFFLINE, f"no process at {target}")
        if (
            not slot.public
            and not slot.answers_remote
            and not self.caps.holds(source, slot.messaging_key)
        ):
            raise _forbidden(source, target)
        if wait:
            await self.deliver(slot, request)
        elif not self.try_deliver(slot, request):
            raise SendError(SendErrorKind.BUSY, f"process {target} is busy: its mailbox is full")

    def awaits_answer(self, request: Request) -> bool:
        """Whether this node's sender of ``request`` still waits for its answer."""
        sender = self._slots.get(request.source.process)
        if sender is None:
            return False
        waiter = sender.waiters.get(request.id)  # answered: done, until its sender resumes
        return (waiter is not None and not waiter[0].done()) or request.id in sender.expected

    def withdraw_offers(self, caps: Iterable[Capability], *, of: Address | None = None) -> None:
        """Forget offers of ``caps`` made to ``of`` (a revoked holder), or to anyone."""
        keys = [cap.key for cap in caps]
        if of is None:
            slots: Iterable[Slot] = self._slots.values()
        else:
            slot = self._slots.get(of.process) if of.node == self.node else None
            slots = () if slot is None else (slot,)
        for slot in slots:
            for key in keys:
                slot.offered.pop(key, None)

    def _offer(self, slot: Slot, message: Request | Response) -> None:
        # Only what the sender holds *now* is offered: a capability revoked
        # while its message waited for room, or one another node claims and
        # neither issued nor was granted here (invariant 8), is never offered.
        sender = message.source
        for cap in message.capabilities:
            if self.vouched(sender, cap):
                slot.offered[cap.key] = (cap, sender)


def _forbidden(holder: Address, target: Address) -> SendError:
    return SendError(
        SendErrorKind.FORBIDDEN,
        f"{holder.process if holder.node == target.node else holder} may not message "
        f"{target.process}: request the {target.process} capability when spawning it",
    )


def _refused(response: Response, answerer: Address) -> None:
    log.warning(
        "dropped a response to %s from %s: request %d went to %s",
        response.target,
        response.source,
        response.id,
        answerer,
    )
