"""The bus's hot path on both event loops kvruntime runs on: plain asyncio and uvloop.

The mailbox and the awaited request make their futures as ``asyncio.Future``
and the deadlines read plain asyncio's clock without its Python method
(issue 12): round trips, order per sender, mailbox backpressure and
timeouts must behave the same on either loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from kvruntime import ProcessContext, Request, Runtime, SendError, SendErrorKind, kv
from tests.conftest import run_as

pytestmark = pytest.mark.anyio

#: uvloop is a dependency of the bench group, which `make test` installs:
#: missing, these tests fail (it is never a skip).
LOOPS = [
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
]


@pytest.fixture(params=LOOPS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Each test runs once per loop."""
    return request.param


async def test_the_loop_is_the_one_asked_for(anyio_backend: Any) -> None:
    import asyncio

    loop = type(asyncio.get_running_loop())
    uvloop = anyio_backend[1]["use_uvloop"]
    assert (loop.__module__.startswith("uvloop")) is uvloop


async def test_sequential_sets_and_gets_round_trip(home: Path) -> None:
    async with Runtime(home=home) as rt:

        async def body(ctx: ProcessContext) -> list[bytes | None]:
            db = await kv.open(ctx, ctx.package_id, "db")
            seen: list[bytes | None] = []
            for i in range(200):
                key = b"k%d" % (i % 7)
                await db.set(key, b"v%d" % i)
                seen.append(await db.get(key))
            await db.delete(b"k0")
            seen.append(await db.get(b"k0", None))
            return seen

        seen = await run_as(rt, "client:app:pub.os", body)
    assert seen == [b"v%d" % i for i in range(200)] + [None]


async def test_64_concurrent_senders_each_see_their_own_order(home: Path) -> None:
    async with Runtime(home=home) as rt:
        results: dict[int, list[bytes]] = {}

        def sender(index: int) -> Any:
            async def main(ctx: ProcessContext) -> None:
                db = await kv.open(ctx, ctx.package_id, "db")
                key = b"s%d" % index
                got = []
                for i in range(30):
                    await db.set(key, b"%d" % i)
                    got.append(await db.get(key))
                results[index] = got

            return main

        handles = [
            await rt.spawn(f"s{i}:app:pub.os", sender(i), request_capabilities=["kv:distro:sys"])
            for i in range(64)
        ]
        async with anyio.create_task_group() as tg:
            for handle in handles:
                tg.start_soon(handle.wait)
    assert results == {i: [b"%d" % n for n in range(30)] for i in range(64)}


async def test_a_silent_target_times_out_and_the_next_request_is_answered(home: Path) -> None:
    async with Runtime(home=home) as rt:
        answer = anyio.Event()

        async def silent(ctx: ProcessContext) -> None:
            first = await ctx.receive()
            assert isinstance(first, Request)
            await answer.wait()  # never answers the first in time
            second = await ctx.receive()
            assert isinstance(second, Request)
            await ctx.respond(second, b"answered")

        await rt.spawn("silent:svc:pub.os", silent, public=True)

        async def body(ctx: ProcessContext) -> tuple[SendError, bytes]:
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response("silent:svc:pub.os", b"one", timeout=0.05)
            answer.set()
            response = await ctx.send_and_await_response("silent:svc:pub.os", b"two", timeout=30)
            return caught.value, response.body

        error, second = await run_as(rt, "client:app:pub.os", body, kv=False)
    assert error.kind is SendErrorKind.TIMEOUT
    assert second == b"answered"


async def test_a_full_mailbox_holds_senders_back_and_loses_nothing(home: Path) -> None:
    async with Runtime(home=home, mailbox_capacity=4) as rt:
        taken: list[bytes] = []
        go = anyio.Event()

        async def slow(ctx: ProcessContext) -> None:
            await go.wait()  # the mailbox fills while this waits
            while len(taken) < 40:
                message = await ctx.receive()
                assert isinstance(message, Request)
                taken.append(message.body)
                await ctx.respond(message, message.body)

        await rt.spawn("slow:svc:pub.os", slow, public=True)

        async def body(ctx: ProcessContext) -> list[bytes]:
            answers: list[bytes] = []

            async def one(i: int) -> None:
                response = await ctx.send_and_await_response(
                    "slow:svc:pub.os", b"%d" % i, timeout=30
                )
                answers.append(response.body)

            async with anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(one, i)
                await anyio.sleep(0.05)
                go.set()
            return answers

        answers = await run_as(rt, "client:app:pub.os", body, kv=False)
    assert sorted(answers) == sorted(b"%d" % i for i in range(40))
    assert sorted(taken) == sorted(answers)
