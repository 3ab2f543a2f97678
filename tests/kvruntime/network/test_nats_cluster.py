"""On a 3-server NATS cluster: the server a node is on dies under traffic.

Its in-flight requests fail with SendError (not hang to their timeouts), and
the node carries on through another server of the cluster, both within 2 s.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from kvruntime import ProcessContext, Request, Response, Runtime, SendError, node_public_key
from tests.conftest import run_as
from tests.internals import nats_port_of

from .conftest import OwnNatsCluster

pytestmark = pytest.mark.anyio

IN_FLIGHT = 16


async def test_a_killed_server_fails_in_flight_requests_and_the_node_carries_on(
    own_nats_cluster: OwnNatsCluster, tmp_path: Path
) -> None:
    homes = {name: tmp_path / name for name in ("alice.os", "bob.os")}
    keys = {name: node_public_key(home) for name, home in homes.items()}
    held: list[Request] = []
    all_held = anyio.Event()

    async def slow(ctx: ProcessContext) -> None:
        """Holds the first IN_FLIGHT requests unanswered; answers the rest."""
        while True:
            message = await ctx.receive()
            if not isinstance(message, Request):
                continue
            if len(held) < IN_FLIGHT:
                held.append(message)
                if len(held) == IN_FLIGHT:
                    all_held.set()
            else:
                await ctx.respond(message, b"still here")

    def node(name: str, peer: str) -> Runtime:
        return Runtime(
            home=homes[name],
            node=name,
            network=own_nats_cluster.urls,
            peers={peer: keys[peer]},
            storage="memory",
        )

    async with node("bob.os", "alice.os") as bob, node("alice.os", "bob.os") as alice:
        await bob.spawn("slow:app:dev.os", slow, public=True)
        outcomes: list[BaseException | Response] = []

        async def one(ctx: ProcessContext) -> None:
            try:
                outcomes.append(
                    await ctx.send_and_await_response("bob.os@slow:app:dev.os", b"x", timeout=60)
                )
            except SendError as exc:
                outcomes.append(exc)

        async def traffic(ctx: ProcessContext) -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(IN_FLIGHT):
                    tg.start_soon(one, ctx)

        async def after(ctx: ProcessContext) -> Response:
            while True:  # until alice is on another server and bob's interest reached it
                try:
                    return await ctx.send_and_await_response(
                        "bob.os@slow:app:dev.os", b"y", timeout=1
                    )
                except SendError:
                    await anyio.sleep(0.05)

        with anyio.fail_after(30):  # far below the requests' 60 s: failed, not timed out
            handle = await alice.spawn("client:app:dev.os", traffic)
            await all_held.wait()
            killed = anyio.current_time()
            own_nats_cluster.kill(nats_port_of(alice))
            await handle.wait()
            failed = anyio.current_time() - killed
            answer = await run_as(alice, "client:app:dev.os", after, kv=False)
            carried_on = anyio.current_time() - killed
    assert len(outcomes) == IN_FLIGHT
    assert all(isinstance(outcome, SendError) for outcome in outcomes), outcomes
    assert answer.body == b"still here"
    # The bound (an acceptance bound, not a speed target: here both
    # take milliseconds to a tenth of a second, on 2 loaded cores).
    assert failed < 2.0, f"in-flight requests failed {failed:.2f} s after the kill"
    assert carried_on < 2.0, f"answered through another server {carried_on:.2f} s after the kill"
