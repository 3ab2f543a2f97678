"""Requests published to other nodes and awaiting their answers: the in-flight bound.

The NATS transport keeps one ``Link`` per peer and one ``InFlight`` table.
A request that expects an answer takes one of its link's ``INFLIGHT`` slots
when published (under a fresh reply token) and gives it back when it is
answered, failed, or its sender's deadline passed (``reap``: the sender's own
deadline already said TIMEOUT), whichever comes first.

Invariants:
1. ``link.inflight`` is the number of entries of that link in the table;
   ``add`` is only called while it is below ``INFLIGHT`` (``room`` waits).
2. Every entry leaves the table exactly once (``take``, ``take_all`` or the
   reaper), and gives its slot back then.
3. The deadline heap holds at most about four entries per request in flight
   (plus a constant): answered requests' deadlines are dropped in a rebuild.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
from typing import Final

import anyio
import attrs

from .mailbox import Mailbox
from .message import Message, Request
from .session import Session

__all__ = ["INFLIGHT", "OUTBOX", "Flying", "InFlight", "Link"]

#: Requests to one peer waiting to be published.
OUTBOX: Final = 256
#: Requests to one peer published and awaiting their answer.
INFLIGHT: Final = 256


@attrs.define(eq=False)
class Link:
    """This node's side of one peer: its queue, its sessions, its in-flight count."""

    name: str
    subject: str
    outbox: Mailbox[Message] = attrs.Factory(lambda: Mailbox[Message](OUTBOX))
    #: The session this node opened with the peer, used for what this node sends.
    session: Session | None = None
    handshaking: anyio.Lock = attrs.Factory(anyio.Lock)
    #: Requests published and unanswered (invariant 1).
    inflight: int = 0
    room: anyio.Event = attrs.Factory(anyio.Event)
    #: Sessions the peer opened with this node, oldest first.
    accepted: collections.deque[bytes] = attrs.Factory(collections.deque)
    #: The reply token of the last liveness probe.
    probe: str | None = None
    #: Probes in a row that NATS answered "nobody listens".
    probe_misses: int = 0
    #: The carrier is sending a batch it took from ``outbox`` (what comes next waits behind).
    busy: bool = False

    async def wait_for_room(self) -> None:
        """Wait until fewer than INFLIGHT requests to this peer are in flight."""
        while self.inflight >= INFLIGHT:
            if self.room.is_set():
                self.room = anyio.Event()
            await self.room.wait()


@attrs.define(eq=False)
class Flying:
    """A request published under some reply token, in session ``sid``."""

    link: Link
    request: Request
    sid: bytes
    #: Sent again after its peer asked for a new session (it is not sent a third time).
    resent: bool = False
    #: Sent again after NATS found nobody listening (once: see ``UNREACHED_RETRY``).
    retried: bool = False


@attrs.define(eq=False)
class InFlight:
    """Reply token -> the request in flight under it (see the module's invariants)."""

    _flying: dict[str, Flying] = attrs.Factory(dict)
    #: (deadline in loop time, reply token).
    _deadlines: list[tuple[float, str]] = attrs.Factory(list)
    _wake: anyio.Event = attrs.Factory(anyio.Event)
    _tokens: itertools.count[int] = attrs.Factory(itertools.count)

    def __len__(self) -> int:
        return len(self._flying)

    def token(self) -> str:
        """A reply token never used before."""
        return str(next(self._tokens))

    def add(self, flying: Flying, deadline: float) -> str:
        """Record ``flying`` until ``deadline`` (loop time); return its reply token."""
        token = self.token()
        self._flying[token] = flying
        flying.link.inflight += 1
        heap = self._deadlines
        if not heap or deadline < heap[0][0]:
            self._wake.set()
        heapq.heappush(heap, (deadline, token))
        if len(heap) > 4 * len(self._flying) + 1024:  # invariant 3
            self._deadlines = [(d, t) for d, t in heap if t in self._flying]
            heapq.heapify(self._deadlines)
        return token

    def take(self, token: str) -> Flying | None:
        """The request in flight under ``token``, out of the table; None if there is none."""
        flying = self._flying.pop(token, None)
        if flying is not None:
            _landed(flying)
        return flying

    def take_all(self, link: Link | None = None) -> list[Flying]:
        """Every request in flight (to ``link``, or to anyone), out of the table."""
        tokens = [t for t, f in self._flying.items() if link is None or f.link is link]
        return [flying for token in tokens if (flying := self.take(token)) is not None]

    async def reap(self) -> None:
        """Forever: take out the requests whose deadlines passed (their senders said TIMEOUT)."""
        while True:
            now = anyio.current_time()
            heap = self._deadlines
            while heap and heap[0][0] <= now:
                _, token = heapq.heappop(heap)
                self.take(token)
            self._wake = anyio.Event()
            with anyio.move_on_after(heap[0][0] - now if heap else math.inf):
                await self._wake.wait()


def _landed(flying: Flying) -> None:
    link = flying.link
    link.inflight -= 1
    link.room.set()
