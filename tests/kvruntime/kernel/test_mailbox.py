"""Unit tests of the bounded mailbox (kvruntime._mailbox) on the asyncio loop."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from kvruntime.kernel.mailbox import Mailbox, MailboxClosed, MailboxFull

pytestmark = pytest.mark.anyio


async def drain(mailbox: Mailbox[str]) -> list[str]:
    """Everything queued now, without waiting."""
    return await mailbox.get_batch(len(mailbox)) if len(mailbox) else []


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Mailbox[int](0)
    assert Mailbox[int](3).capacity == 3


async def test_fifo() -> None:
    mailbox = Mailbox[int](8)
    for i in range(5):
        mailbox.put_nowait(i)
    await mailbox.put(5)
    assert len(mailbox) == 6
    assert [await mailbox.get() for _ in range(6)] == [0, 1, 2, 3, 4, 5]
    assert len(mailbox) == 0


async def test_get_waits_for_an_item() -> None:
    mailbox = Mailbox[str](1)
    got: list[str] = []

    async def getter() -> None:
        got.append(await mailbox.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(getter)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        mailbox.put_nowait("hello")
    assert got == ["hello"]


async def test_full_mailbox_makes_put_wait() -> None:
    mailbox = Mailbox[str](2)
    mailbox.put_nowait("a")
    await mailbox.put("b")
    with pytest.raises(MailboxFull):
        mailbox.put_nowait("c")
    done: list[str] = []

    async def putter() -> None:
        await mailbox.put("c")
        done.append("c")

    async with anyio.create_task_group() as tg:
        tg.start_soon(putter)
        await anyio.wait_all_tasks_blocked()
        assert done == []  # backpressure: the putter waits for room
        assert len(mailbox) == 2
        assert await mailbox.get() == "a"  # room: the putter is admitted
    assert done == ["c"]
    assert await drain(mailbox) == ["b", "c"]


async def test_waiting_putters_are_admitted_in_fifo_order() -> None:
    mailbox = Mailbox[str](1)
    mailbox.put_nowait("first")
    async with anyio.create_task_group() as tg:
        for name in ("p1", "p2", "p3"):
            tg.start_soon(mailbox.put, name)
            await anyio.wait_all_tasks_blocked()  # p1 waits before p2 starts, ...
        received = [await mailbox.get() for _ in range(4)]
    assert received == ["first", "p1", "p2", "p3"]


async def test_a_later_put_never_overtakes_a_waiting_putter() -> None:
    mailbox = Mailbox[str](2)
    mailbox.put_nowait("a")
    mailbox.put_nowait("b")
    async with anyio.create_task_group() as tg:
        tg.start_soon(mailbox.put, "waiting")
        await anyio.wait_all_tasks_blocked()
        assert await mailbox.get() == "a"
        # The room went to the waiting putter, not to this later put.
        with pytest.raises(MailboxFull):
            mailbox.put_nowait("late")
        late_put = False

        async def late() -> None:
            nonlocal late_put
            await mailbox.put("late")
            late_put = True

        tg.start_soon(late)
        await anyio.wait_all_tasks_blocked()
        assert not late_put
        assert await mailbox.get() == "b"
    assert await drain(mailbox) == ["waiting", "late"]


async def test_put_reserved_goes_past_the_bound() -> None:
    mailbox = Mailbox[str](1)
    mailbox.put_nowait("request")
    mailbox.put_reserved("response 1")
    mailbox.put_reserved("response 2")
    assert len(mailbox) == 3 > mailbox.capacity
    with pytest.raises(MailboxFull):
        mailbox.put_nowait("more")
    assert await drain(mailbox) == ["request", "response 1", "response 2"]


async def test_put_reserved_wakes_a_getter() -> None:
    mailbox = Mailbox[str](1)
    got: list[str] = []

    async def getter() -> None:
        got.append(await mailbox.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(getter)
        await anyio.wait_all_tasks_blocked()
        mailbox.put_reserved("response")
    assert got == ["response"]


async def test_close_fails_putters_and_lets_getters_drain_first() -> None:
    mailbox = Mailbox[str](2)
    mailbox.put_nowait("a")
    mailbox.put_nowait("b")
    putter_errors: list[BaseException] = []

    async def putter(item: str) -> None:
        try:
            await mailbox.put(item)
        except MailboxClosed as exc:
            putter_errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(putter, "x")
        tg.start_soon(putter, "y")
        await anyio.wait_all_tasks_blocked()
        mailbox.close()
    assert len(putter_errors) == 2
    assert mailbox.closed
    mailbox.close()  # idempotent
    # What was queued before the close is still delivered, then MailboxClosed.
    assert await mailbox.get() == "a"
    assert await mailbox.get_batch(10) == ["b"]
    with pytest.raises(MailboxClosed):
        await mailbox.get()
    with pytest.raises(MailboxClosed):
        await mailbox.get_batch(10)
    # Nothing goes in after close, by any door.
    with pytest.raises(MailboxClosed):
        mailbox.put_nowait("z")
    with pytest.raises(MailboxClosed):
        await mailbox.put("z")
    with pytest.raises(MailboxClosed):
        mailbox.put_reserved("z")
    assert len(mailbox) == 0


async def test_drain_closes_and_hands_back_what_is_queued() -> None:
    mailbox = Mailbox[str](2)
    mailbox.put_nowait("a")
    mailbox.put_reserved("b")
    putter_errors: list[BaseException] = []

    async def putter() -> None:
        try:
            await mailbox.put("waiting for room")
        except MailboxClosed as exc:
            putter_errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(putter)
        await anyio.wait_all_tasks_blocked()
        assert mailbox.drain() == ["a", "b"]  # a waiting putter's item was never queued
    assert len(putter_errors) == 1
    assert mailbox.closed
    assert len(mailbox) == 0
    assert mailbox.drain() == []
    with pytest.raises(MailboxClosed):
        await mailbox.get()


async def test_close_wakes_a_waiting_getter() -> None:
    mailbox = Mailbox[str](1)
    errors: list[BaseException] = []

    async def getter() -> None:
        try:
            await mailbox.get_batch(4)
        except MailboxClosed as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(getter)
        tg.start_soon(getter)
        await anyio.wait_all_tasks_blocked()
        mailbox.close()
    assert len(errors) == 2


async def test_get_batch_takes_at_most_limit_in_order() -> None:
    mailbox = Mailbox[int](16)
    for i in range(7):
        mailbox.put_nowait(i)
    assert await mailbox.get_batch(3) == [0, 1, 2]
    assert await mailbox.get_batch(3) == [3, 4, 5]
    assert await mailbox.get_batch(3) == [6]
    mailbox.put_nowait(7)
    assert await mailbox.get_batch(100) == [7]


async def test_get_batch_waits_for_one_and_admits_putters() -> None:
    mailbox = Mailbox[int](2)
    batches: list[list[int]] = []

    async def consumer() -> None:
        batches.append(await mailbox.get_batch(10))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await anyio.wait_all_tasks_blocked()
        assert batches == []
        mailbox.put_nowait(1)
    assert batches == [[1]]

    mailbox.put_nowait(2)
    mailbox.put_nowait(3)
    async with anyio.create_task_group() as tg:
        tg.start_soon(mailbox.put, 4)
        tg.start_soon(mailbox.put, 5)
        tg.start_soon(mailbox.put, 6)
        await anyio.wait_all_tasks_blocked()
        # The batch frees all the room at once: the waiting putters are admitted
        # up to the bound, in order; the third still waits.
        assert await mailbox.get_batch(10) == [2, 3]
        await anyio.wait_all_tasks_blocked()
        assert len(mailbox) == 2
        assert await mailbox.get_batch(10) == [4, 5]
    assert await mailbox.get_batch(10) == [6]


async def test_a_cancelled_putter_item_is_never_delivered() -> None:
    mailbox = Mailbox[str](1)
    mailbox.put_nowait("a")
    async with anyio.create_task_group() as tg:
        with anyio.move_on_after(0.01) as scope:
            await mailbox.put("withdrawn")
        assert scope.cancelled_caught
        tg.start_soon(mailbox.put, "kept")
        await anyio.wait_all_tasks_blocked()
        assert await mailbox.get() == "a"
        # The room went to the next live putter, not to the cancelled one.
        assert await mailbox.get() == "kept"
    mailbox.put_nowait("b")
    assert await drain(mailbox) == ["b"]


async def test_a_cancelled_getter_passes_its_wake_up_on() -> None:
    mailbox = Mailbox[str](4)
    got: list[str] = []

    async def getter() -> None:
        got.append(await mailbox.get())

    # The first getter waits, is woken by the put, and is cancelled before it
    # runs: the wake-up it swallowed must reach the second getter.
    first = asyncio.ensure_future(mailbox.get())
    await anyio.wait_all_tasks_blocked()
    async with anyio.create_task_group() as tg:
        tg.start_soon(getter)
        await anyio.wait_all_tasks_blocked()
        mailbox.put_nowait("x")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert got == ["x"]
    assert len(mailbox) == 0


@pytest.mark.parametrize("how", ["cancel scope", "task.cancel"])
async def test_cancelled_putter_racing_its_admission_is_consistent(how: str) -> None:
    """A put either returns (item delivered) or raises (item never delivered).

    The race: the putter is admitted (its item given room) and cancelled in
    the same loop iteration, before it resumes; a consumer then keeps reading.
    """
    mailbox = Mailbox[str](1)
    mailbox.put_nowait("a")
    outcome: list[str] = []

    async def putter() -> None:
        try:
            await mailbox.put("b")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        outcome.append("returned")

    if how == "cancel scope":
        async with anyio.create_task_group() as tg:
            tg.start_soon(putter)
            await anyio.wait_all_tasks_blocked()
            assert await mailbox.get() == "a"  # admits "b" without yielding
            tg.cancel_scope.cancel()
    else:
        task = asyncio.ensure_future(putter())
        await anyio.wait_all_tasks_blocked()
        assert await mailbox.get() == "a"  # admits "b" without yielding
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    mailbox.put_reserved("after")
    delivered = await drain(mailbox)
    assert delivered in (["b", "after"], ["after"])
    if outcome == ["returned"]:
        assert delivered == ["b", "after"]
    else:
        assert outcome == ["cancelled"]
        assert delivered == ["after"], "a put that raised delivered its item"
