"""Flow control across the network: nothing a peer or a NATS user sends grows a node's memory.

The in-flight bound holds on the sending node (a remote process that never
answers), a remote process that never reads does not stall the node it runs
on, and a flood of frames from any NATS user is counted and dropped while
the node goes on serving.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import nats
import pytest

from kvruntime import ProcessContext, Request, Response, SendError, SendErrorKind
from kvruntime.kernel.nats_transport import INFLIGHT, OUTBOX
from tests.conftest import run_as
from tests.internals import transport_of

from .conftest import NatsServer
from .test_nats_transport import ECHO, echo, homes, node

pytestmark = pytest.mark.anyio

__all__ = ["homes"]  # the fixture, shared with test_nats_transport

HOLD = "bob.os@hold:app:dev.os"


async def test_requests_to_a_peer_stop_at_the_in_flight_bound_and_fail_typed(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    held: list[Request] = []
    reached = anyio.Event()

    async def hold(ctx: ProcessContext) -> None:
        while True:
            message = await ctx.receive()
            if isinstance(message, Request):
                held.append(message)  # never answered
                if len(held) == INFLIGHT:
                    reached.set()

    senders = INFLIGHT + OUTBOX + 40
    async with (
        node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
        node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
    ):
        await bob.spawn("hold:app:dev.os", hold, public=True)
        outcomes: list[SendError | Response] = []

        async def one(ctx: ProcessContext) -> None:
            try:
                outcomes.append(await ctx.send_and_await_response(HOLD, b"x", timeout=3))
            except SendError as exc:
                outcomes.append(exc)

        async def flood(ctx: ProcessContext) -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(senders):
                    tg.start_soon(one, ctx)

        transport = transport_of(alice)
        with anyio.fail_after(30):
            handle = await alice.spawn("client:app:dev.os", flood)
            await reached.wait()
            await anyio.sleep(0.3)  # time for any more to arrive, were the bound broken
            at_bound = (len(held), len(transport._flying), len(transport._links["bob.os"].outbox))
            await handle.wait()
        late = len(held)
    assert at_bound == (INFLIGHT, INFLIGHT, OUTBOX)
    assert len(outcomes) == senders
    assert {o.kind for o in outcomes if isinstance(o, SendError)} == {SendErrorKind.TIMEOUT}
    assert all(isinstance(o, SendError) for o in outcomes)
    # The queued requests whose senders had given up were never sent.
    assert late < INFLIGHT + OUTBOX


async def test_a_remote_process_that_never_reads_does_not_stall_its_node(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    async def deaf(ctx: ProcessContext) -> None:
        await anyio.sleep_forever()  # its mailbox (256) fills and stays full

    async with (
        node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
        node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
    ):
        await bob.spawn("deaf:app:dev.os", deaf, public=True)
        await bob.spawn("echo:app:dev.os", echo, public=True)

        async def talk(ctx: ProcessContext) -> tuple[SendError, Response]:
            for _ in range(300):
                await ctx.send("bob.os@deaf:app:dev.os", b"are you there")
            with pytest.raises(SendError) as caught:
                await ctx.send_and_await_response("bob.os@deaf:app:dev.os", b"?", timeout=30)
            return caught.value, await ctx.send_and_await_response(ECHO, b"hi", timeout=10)

        with anyio.fail_after(20):
            busy, answer = await run_as(alice, "client:app:dev.os", talk, kv=False)
        dropped = bob.network_dropped()
    assert busy.kind is SendErrorKind.BUSY
    assert answer.body == b"hi"
    assert dropped == {"busy": 300 - 256 + 1}


async def test_a_flood_of_frames_is_counted_and_dropped_and_the_node_serves_on(
    nats_server: NatsServer, homes: dict[str, Path]
) -> None:
    frames = 20_000
    spy = await nats.connect(nats_server.url)
    try:
        async with (
            node(homes["bob.os"], "bob.os", nats_server, {"alice.os": homes["alice.os"]}) as bob,
            node(homes["alice.os"], "alice.os", nats_server, {"bob.os": homes["bob.os"]}) as alice,
        ):
            await bob.spawn("echo:app:dev.os", echo, public=True)
            for i in range(frames):
                await spy.publish("kvr.in.bob_os", b"\x94\x02garbage %d" % i, reply="spy.x")
            await spy.flush()

            async def ask(ctx: ProcessContext) -> Response:
                return await ctx.send_and_await_response(ECHO, b"still here?", timeout=10)

            with anyio.fail_after(30):
                while sum(bob.network_dropped().values()) < frames:  # noqa: ASYNC110 (a counter)
                    await anyio.sleep(0.05)
                answer = await run_as(alice, "client:app:dev.os", ask, kv=False)
            dropped = bob.network_dropped()
    finally:
        await spy.close()
    assert answer.body == b"still here?"
    assert set(dropped) <= {"garbage", "inbox full"}
    assert sum(dropped.values()) == frames
