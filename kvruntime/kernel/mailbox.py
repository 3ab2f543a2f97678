"""A bounded FIFO mailbox on asyncio futures: the runtime's hot-path primitive.

Why not ``anyio.create_memory_object_stream``: on this machine a request and
its response through anyio memory streams cost ~28 µs, through bare asyncio
futures about a quarter of that, and a kv request itself costs a few µs. So
the bus uses this small module (asyncio backend only) and keeps anyio for
task groups, cancel scopes and threads.

Invariants:
1. At most ``capacity`` items are queued by ``put``/``put_nowait``; a full
   mailbox makes ``put`` wait (backpressure), in FIFO order among waiters,
   and a waiting putter is never overtaken by a later one: freed room is
   *reserved* for the oldest waiter, which queues its item when it resumes.
   So a ``put`` either returns (its item is queued) or raises (it never
   is), whatever cancels it and whenever (as ``asyncio.Queue.put``).
2. ``put_reserved`` bypasses the bound. Only the bus uses it, for responses
   whose room the receiver reserved when it sent the request (its in-flight
   limit), so the total stays bounded: ``capacity + in-flight limit``.
3. ``close`` wakes every waiter: putters fail with ``MailboxClosed``; getters
   first drain what is queued, then fail with ``MailboxClosed``. ``drain``
   closes and hands back what is queued, for an owner that has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Mailbox", "MailboxClosed", "MailboxFull"]

T = TypeVar("T")

#: Futures are made as ``Future(loop=...)``, not ``loop.create_future()``: the
#: same object on both loops (uvloop's create_future makes this one), but on
#: plain asyncio create_future is a Python method, a frame per wait (issue 12).
_Future = asyncio.Future
_running_loop = asyncio.get_running_loop


class MailboxClosed(Exception):
    """The mailbox was closed: nothing more goes in, and it is drained."""


class MailboxFull(Exception):
    """``put_nowait`` found no room."""


class Mailbox(Generic[T]):
    """A bounded multi-producer FIFO queue whose consumer can take batches."""

    __slots__ = ("_capacity", "_closed", "_getters", "_items", "_putters", "_reserved")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a mailbox holds at least one item")
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        #: Room handed to admitted putters that have not resumed yet (invariant 1).
        self._reserved = 0
        self._closed = False

    @property
    def capacity(self) -> int:
        """How many items ``put`` may queue."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        """Queue ``item`` now, or raise MailboxFull / MailboxClosed."""
        if self._closed:
            raise MailboxClosed
        if self._putters or len(self._items) + self._reserved >= self._capacity:
            raise MailboxFull
        self._items.append(item)
        getters = self._getters
        while getters:  # _wake_getter, inline (the hot path: one call per request saved)
            getter = getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    async def put(self, item: T) -> None:
        """Queue ``item``, waiting for room while the mailbox is full."""
        try:
            self.put_nowait(item)
            return
        except MailboxFull:
            pass
        waiter: asyncio.Future[None] = _Future(loop=_running_loop())
        self._putters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Admitted, then cancelled before resuming: pass the room on.
                self._reserved -= 1
                self._admit_putters()
            else:
                with contextlib.suppress(ValueError):
                    self._putters.remove(waiter)
            raise
        self._reserved -= 1
        if self._closed:
            raise MailboxClosed
        self._items.append(item)
        self._wake_getter()

    def put_reserved(self, item: T) -> None:
        """Queue ``item`` past the bound (room reserved by the caller); see invariant 2."""
        if self._closed:
            raise MailboxClosed
        self._items.append(item)
        self._wake_getter()

    async def get(self) -> T:
        """Take the oldest item, waiting for one."""
        while not self._items:  # inline: a coroutine per wait (_wait_for_item) cost more
            getter = self._getter()
            try:
                await getter
            except BaseException:
                self._not_woken(getter)
                raise
        item = self._items.popleft()
        self._admit_putters()
        return item

    async def get_batch(self, limit: int) -> list[T]:
        """Take every queued item, at most ``limit``, waiting for at least one."""
        while not self._items:  # as in get, with _getter inline (a call per wait saved)
            if self._closed:
                raise MailboxClosed
            getter: asyncio.Future[None] = _Future(loop=_running_loop())
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                self._not_woken(getter)
                raise
        items = self._items
        if len(items) <= limit:
            batch = list(items)
            items.clear()
        else:
            batch = [items.popleft() for _ in range(limit)]
        if self._putters or items:  # someone to admit, or a getter to wake
            self._admit_putters()
        return batch

    def close(self) -> None:
        """Refuse further puts and wake everyone waiting."""
        if self._closed:
            return
        self._closed = True
        while self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():
                waiter.set_exception(MailboxClosed())
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)

    def drain(self) -> list[T]:
        """Close the mailbox and take everything still queued (nobody will read it)."""
        self.close()
        items = list(self._items)
        self._items.clear()
        return items

    def _getter(self) -> asyncio.Future[None]:
        """A future woken when an item comes (``_wake_getter``), queued; MailboxClosed
        if the mailbox is closed."""
        if self._closed:
            raise MailboxClosed
        getter: asyncio.Future[None] = _Future(loop=_running_loop())
        self._getters.append(getter)
        return getter

    def _not_woken(self, getter: asyncio.Future[None]) -> None:
        """The wait on ``getter`` was interrupted (cancelled, or the mailbox closed)."""
        if not getter.done():
            getter.cancel()
        if getter.cancelled():
            # Never woken: leave the queue. (Only on this rare path: a failed
            # deque.remove formats the repr of its argument, which is slow.)
            with contextlib.suppress(ValueError):
                self._getters.remove(getter)
        elif self._items:
            # Woken, then cancelled before taking: pass the wake-up on.
            self._wake_getter()

    def _wake_getter(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _admit_putters(self) -> None:
        items, putters = self._items, self._putters
        while putters and len(items) + self._reserved < self._capacity:
            waiter = putters.popleft()
            if waiter.done():  # cancelled while waiting
                continue
            self._reserved += 1
            waiter.set_result(None)
        if items:
            self._wake_getter()
