"""Unit tests of the one-timer deadlines of awaited requests (kvruntime._deadlines)."""

from __future__ import annotations

import asyncio

import pytest

from kvruntime.kernel.deadlines import Deadlines, Waiter
from kvruntime.kernel.errors import SendError, SendErrorKind
from protocol.ids import Address

pytestmark = pytest.mark.anyio

TARGET = Address.parse("our@kv:distro:sys")


def _waiters() -> tuple[asyncio.AbstractEventLoop, dict[int, Waiter]]:
    return asyncio.get_running_loop(), {}


def _pending(loop: asyncio.AbstractEventLoop) -> Waiter:
    return loop.create_future(), TARGET


async def test_a_pending_waiter_fails_with_timeout_at_its_deadline() -> None:
    loop, waiters = _waiters()
    deadlines = Deadlines(waiters)
    waiters[1] = _pending(loop)
    started = loop.time()
    deadlines.add(loop, 1, TARGET, 0.05)
    with pytest.raises(SendError) as caught:
        await waiters[1][0]
    assert caught.value.kind is SendErrorKind.TIMEOUT
    assert "within 0.05s" in str(caught.value)
    assert loop.time() - started >= 0.05 - 0.002  # the loop's clock granularity


async def test_answered_waiters_are_left_alone() -> None:
    loop, waiters = _waiters()
    deadlines = Deadlines(waiters)
    waiters[1] = _pending(loop)
    deadlines.add(loop, 1, TARGET, 0.01)
    waiters.pop(1)[0].set_result(None)  # type: ignore[arg-type]
    await asyncio.sleep(0.03)  # the timer fired, found nothing pending
    assert len(deadlines) == 0


async def test_a_shorter_timeout_after_a_longer_one_fires_first() -> None:
    loop, waiters = _waiters()
    deadlines = Deadlines(waiters)
    waiters[1], waiters[2] = _pending(loop), _pending(loop)
    deadlines.add(loop, 1, TARGET, 30.0)
    deadlines.add(loop, 2, TARGET, 0.02)
    with pytest.raises(SendError):
        await waiters[2][0]
    assert not waiters[1][0].done()
    deadlines.close()


async def test_the_heap_stays_proportional_to_what_is_pending() -> None:
    loop, waiters = _waiters()
    deadlines = Deadlines(waiters)
    for request_id in range(10_000):  # each answered before the next is sent
        waiters[request_id] = _pending(loop)
        deadlines.add(loop, request_id, TARGET, 5.0)
        del waiters[request_id]
    assert len(deadlines) <= 2 * len(waiters) + 64 + 1
    deadlines.close()


async def test_close_stops_the_timer() -> None:
    loop, waiters = _waiters()
    deadlines = Deadlines(waiters)
    waiters[1] = _pending(loop)
    deadlines.add(loop, 1, TARGET, 0.01)
    deadlines.close()
    await asyncio.sleep(0.03)
    assert not waiters[1][0].done()
    assert len(deadlines) == 0


class _ManualLoop:
    """The two loop methods ``Deadlines`` uses, on a clock that moves only when told;
    ``timers`` is every ``call_at`` made (when, callback), in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, object]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: object, *args: object) -> asyncio.TimerHandle:
        self.timers.append((when, callback))
        return asyncio.TimerHandle(when, lambda: None, (), asyncio.get_running_loop())

    def fire(self, deadlines: Deadlines) -> None:
        """Move the clock to the last armed timer's time and run it."""
        self.now = self.timers[-1][0]
        deadlines._expire(self)  # type: ignore[arg-type]


async def test_the_timer_wakes_for_pending_requests_not_for_answered_ones() -> None:
    loop, waiters = _ManualLoop(), dict[int, Waiter]()
    deadlines = Deadlines(waiters)
    real = asyncio.get_running_loop()
    waiters[0] = real.create_future(), TARGET
    deadlines.add(loop, 0, TARGET, 1.0)  # type: ignore[arg-type]
    for request_id in range(1, 50):  # answered ones, sent while 0 waits
        loop.now = request_id / 100
        waiters[request_id] = real.create_future(), TARGET
        deadlines.add(loop, request_id, TARGET, 1.0)  # type: ignore[arg-type]
        del waiters[request_id]
    loop.now = 0.5
    waiters[99] = real.create_future(), TARGET
    deadlines.add(loop, 99, TARGET, 1.0)  # type: ignore[arg-type]
    assert len(loop.timers) == 1  # armed once, for request 0
    loop.fire(deadlines)
    assert isinstance(waiters[0][0].exception(), SendError)
    # Armed again once, for the pending request 99, past the 49 answered ones.
    assert [when for when, _ in loop.timers[1:]] == [1.5]
    loop.fire(deadlines)
    assert isinstance(waiters[99][0].exception(), SendError)
    assert len(loop.timers) == 2  # nothing pending: not armed again
    assert len(deadlines) == 0
