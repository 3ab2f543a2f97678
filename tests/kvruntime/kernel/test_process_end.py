"""A process that ends leaves nobody waiting on the requests still in its mailbox."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import anyio
import pytest

from kvruntime import (
    ProcessContext,
    ProcessHandle,
    ProcessId,
    ProcessKilled,
    Request,
    Response,
    Runtime,
    SendError,
)
from kvruntime.kernel.bus import Bus
from tests.internals import bus_of

pytestmark = pytest.mark.anyio

TARGET = ProcessId.parse("target:svc:pub.os")
ECHO = "echo:svc:pub.os"
CLIENT = "client:app:pub.os"
#: Far beyond what the test waits: an answer within it did not come from a timeout.
LONG = 30.0
#: How long the test lets an answer take.
SOON = 3.0


async def echo(ctx: ProcessContext) -> None:
    """Answer every request with its body."""
    while True:
        message = await ctx.receive()
        if isinstance(message, Request):
            await ctx.respond(message, message.body)


async def _queued(rt: Runtime, process: ProcessId, count: int) -> None:
    """Check, once every task waits, that ``count`` messages sit in ``process``'s mailbox."""
    await anyio.wait_all_tasks_blocked()
    slot = bus_of(rt).slot(process)
    assert slot is not None
    assert len(slot.mailbox) == count


async def _end(how: str, target: ProcessHandle, go: anyio.Event) -> None:
    """End ``target`` as ``how`` says, and check that it ended so."""
    if how == "killed":
        target.kill()
    else:
        go.set()
    expected = {"returns": None, "fails": RuntimeError, "killed": ProcessKilled}[how]
    with contextlib.nullcontext() if expected is None else pytest.raises(expected):
        await target.wait()


@pytest.mark.parametrize("how", ["returns", "fails", "killed"])
async def test_queued_requests_of_an_ended_process_are_answered_at_once(
    home: Path, how: str
) -> None:
    """Awaiting senders get SendError(OFFLINE) now, not at their timeout; reserved room frees.

    The client may await one mailbox answer at a time (inflight_limit=1):
    had the room reserved for the lost answer not been freed, its next
    ``send`` with ``expects_response`` would wait ``LONG`` seconds.
    """
    go = anyio.Event()

    async def target(ctx: ProcessContext) -> None:
        await go.wait()
        if how == "fails":
            raise RuntimeError("target failed")
        if how == "killed":
            await anyio.sleep_forever()

    outcomes: list[str] = []
    elapsed: list[float] = []

    async def ask(ctx: ProcessContext, body: bytes) -> None:
        started = time.monotonic()
        outcome = "no answer yet"
        with anyio.move_on_after(SOON):
            try:
                await ctx.send_and_await_response(TARGET, body, timeout=LONG)
            except SendError as exc:
                outcome = exc.kind.name
            else:
                outcome = "answered"
        outcomes.append(outcome)
        elapsed.append(time.monotonic() - started)

    async def client(ctx: ProcessContext) -> list[bytes]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, ctx, b"a")
            tg.start_soon(ask, ctx, b"b")
            await ctx.send(TARGET, b"c", expects_response=LONG)  # takes the only room
        answers = []
        with anyio.move_on_after(SOON):
            await ctx.send(ECHO, b"after", expects_response=LONG)  # needs that room
            message = await ctx.receive()
            assert isinstance(message, Response)
            answers.append(message.body)
        return answers

    async with Runtime(home=home, inflight_limit=1) as rt:
        handle = await rt.spawn(TARGET, target, public=True)
        await rt.spawn(ECHO, echo, public=True)
        result: list[list[bytes]] = []

        async def run_client(ctx: ProcessContext) -> None:
            result.append(await client(ctx))

        client_handle = await rt.spawn(CLIENT, run_client)
        await _queued(rt, TARGET, 3)
        await _end(how, handle, go)
        await client_handle.wait()

    assert outcomes == ["OFFLINE", "OFFLINE"]
    assert max(elapsed) < SOON
    assert result == [[b"after"]]


async def test_a_queued_request_whose_sender_ended_first_goes_with_the_mailbox(
    home: Path,
) -> None:
    """Nobody is left to tell: the request is dropped, not kept in the closed mailbox."""
    async with Runtime(home=home) as rt:
        bus: Bus = bus_of(rt)
        go = anyio.Event()

        async def target(ctx: ProcessContext) -> None:
            await go.wait()

        async def sender(ctx: ProcessContext) -> None:
            await ctx.send(TARGET, b"fire and forget", expects_response=LONG)

        handle = await rt.spawn(TARGET, target, public=True)
        await (await rt.spawn(CLIENT, sender)).wait()  # ended before the target
        await _queued(rt, TARGET, 1)
        slot = bus.slot(TARGET)
        assert slot is not None
        go.set()
        await handle.wait()
        assert slot.mailbox.closed
        assert len(slot.mailbox) == 0
