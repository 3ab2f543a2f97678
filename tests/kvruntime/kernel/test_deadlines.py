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
