"""The timeouts of a process's awaited requests, on one loop timer.

A timer per request (``loop.call_later`` then ``cancel``) costs ~2 µs on
uvloop, about a tenth of a whole kv round trip. So each process keeps the
deadlines of the requests it awaits in a heap, and one timer armed for the
earliest of them.

Invariants:
1. A waiter still pending at its deadline fails with ``SendError(TIMEOUT)``
   once the loop reaches that time (as ``call_later`` would fail it).
2. Entries of answered requests are not removed one by one (that would
   cost what the timer did); they are dropped when they reach the top of
   the heap, and the heap is rebuilt from the pending ones whenever it
   holds more than twice the number pending at the last rebuild (plus a
   small slack; a bound kept, so that a send compares one length), so its
   size stays proportional to what is pending, not to how much was sent.
3. Request ids are unique on the bus, so a stale entry never matches a
   later waiter.
4. When the timer fires it is armed again for the earliest deadline of a
   request still pending (the answered ones are dropped first), or not
   at all: it wakes for work, never once per answered request, and a
   process that awaits nothing has no timer.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable
from typing import TypeAlias

from protocol.ids import Address

from .errors import SendError, SendErrorKind
from .message import Response

__all__ = ["Deadlines", "Waiter"]

#: What ``send_and_await_response`` waits on, and who alone may answer (the
#: bus's invariant 5).
Waiter: TypeAlias = tuple[asyncio.Future[Response], Address]

_SLACK = 64
_heappush = heapq.heappush

#: (deadline, request id, target, timeout): the last two only for the error message.
_Entry = tuple[float, int, Address, float]


def _clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, or the C function it returns, ``time.monotonic``, where that
    is plain asyncio's (its ``time`` is a Python method: a frame per request)."""
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


class Deadlines:
    """Fails the futures in ``waiters`` (request id -> future, answerer) whose deadline passed."""

    __slots__ = ("_bound", "_heap", "_loop", "_now", "_timer", "_timer_at", "_waiters")

    def __init__(self, waiters: dict[int, Waiter]) -> None:
        self._waiters = waiters
        self._heap: list[_Entry] = []
        #: The heap is rebuilt past this size (invariant 2).
        self._bound = _SLACK
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        #: The loop of the last ``add`` and its clock (``_clock``).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._now: Callable[[], float] = time.monotonic

    def __len__(self) -> int:
        return len(self._heap)

    def add(
        self, loop: asyncio.AbstractEventLoop, request_id: int, target: Address, timeout: float
    ) -> None:
        """Fail ``waiters[request_id]`` if it is still pending ``timeout`` seconds from now."""
        if loop is not self._loop:
            self._loop, self._now = loop, _clock(loop)
        deadline = self._now() + timeout
        if len(self._heap) > self._bound:
            self._prune()
        _heappush(self._heap, (deadline, request_id, target, timeout))
        if deadline < self._timer_at:
            self._arm(loop, deadline)

    def close(self) -> None:
        """Forget every deadline and stop the timer (the process ended)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        self._heap.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._expire, loop)
        self._timer_at = when

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        heap, waiters, now = self._heap, self._waiters, loop.time()
        while heap and heap[0][0] <= now:
            _, request_id, target, timeout = heapq.heappop(heap)
            waiter = waiters.get(request_id)
            if waiter is not None and not waiter[0].done():
                waiter[0].set_exception(
                    SendError(
                        SendErrorKind.TIMEOUT, f"no response from {target} within {timeout:g}s"
                    )
                )
        if heap and heap[0][1] not in waiters:  # answered ones: dropped (invariant 4)
            self._prune()
            heap = self._heap
        if heap:
            self._arm(loop, heap[0][0])

    def _prune(self) -> None:
        waiters = self._waiters
        self._heap = [entry for entry in self._heap if entry[1] in waiters]
        heapq.heapify(self._heap)
        self._bound = 2 * len(self._heap) + _SLACK
